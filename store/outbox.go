package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Message is one Slack message the bot still has to post or edit. Messages
// of one run are delivered in the order they were committed; a message that
// fails holds back the later ones of its run (not of other runs) until it is
// delivered.
type Message struct {
	ID  uint64 `json:"id"`  // assigned by the store, increasing
	Run string `json:"run"` // "" for messages that belong to no run (digest)
	// Key names the Slack message this one posts or edits, e.g. "summary"
	// or "step/hop1.migrations-up". The first delivery of a key posts; later
	// ones edit the message whose ts was recorded for it (MessageRef), so a
	// restarted bot edits the same messages instead of posting new ones.
	Key     string          `json:"key,omitempty"`
	Channel string          `json:"channel,omitempty"`
	Kind    string          `json:"kind,omitempty"` // what the renderer makes of Payload
	Payload json.RawMessage `json:"payload,omitempty"`
	Created time.Time       `json:"created"`

	Delivered   bool      `json:"delivered"`
	DeliveredAt time.Time `json:"delivered_at,omitzero"`
	Attempts    int       `json:"attempts"`
	NextAttempt time.Time `json:"next_attempt,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
}

// MessageRef is where a delivered message lives in Slack.
type MessageRef struct {
	Channel  string `json:"channel"`
	TS       string `json:"ts"`
	ThreadTS string `json:"thread_ts,omitempty"`
}

func enqueue(tx *bolt.Tx, m Message) (Message, error) {
	if len(m.Payload) > 0 && !json.Valid(m.Payload) {
		return Message{}, fmt.Errorf("outbox payload is not JSON: %w", ErrInvalid)
	}
	b := tx.Bucket(bucketOutbox)
	seq, err := b.NextSequence()
	if err != nil {
		return Message{}, err
	}
	m.ID = seq
	m.Delivered, m.Attempts, m.LastError = false, 0, ""
	m.Created = m.Created.UTC()
	buf, err := json.Marshal(m)
	if err != nil {
		return Message{}, err
	}
	k := runKey(m.Run, u64(seq))
	if err := b.Put(k, buf); err != nil {
		return Message{}, err
	}
	return m, tx.Bucket(bucketOutboxQueue).Put(k, nil)
}

// Enqueue queues messages outside of a run transition (digest, replies to
// schedules). Transitions queue theirs through Commit.
func (s *Store) Enqueue(ctx context.Context, msgs ...Message) ([]Message, error) {
	c, err := s.Commit(ctx, Change{Outbox: msgs})
	return c.Outbox, err
}

// Pending returns the messages to deliver now: for each run, its oldest
// undelivered message if that one is due (NextAttempt <= now). Later
// messages of a run wait for the earlier ones, which keeps a step's "done"
// edit from overtaking its "running" post.
func (s *Store) Pending(ctx context.Context, now time.Time, limit int) ([]Message, error) {
	var out []Message
	err := s.view(ctx, func(tx *bolt.Tx) error {
		box := tx.Bucket(bucketOutbox)
		c := tx.Bucket(bucketOutboxQueue).Cursor()
		lastRun := "\x00none"
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			run := string(k[:len(k)-9])
			if run == lastRun {
				continue // only the head of each run's queue
			}
			lastRun = run
			var m Message
			if err := json.Unmarshal(box.Get(k), &m); err != nil {
				return fmt.Errorf("decoding outbox message %q: %w", k, err)
			}
			if m.NextAttempt.After(now) {
				continue
			}
			out = append(out, m)
			if limit > 0 && len(out) >= limit {
				return nil
			}
		}
		return nil
	})
	return out, err
}

// Outbox lists every message of a run, delivered or not, in order.
func (s *Store) Outbox(ctx context.Context, run string) ([]Message, error) {
	var out []Message
	err := s.view(ctx, func(tx *bolt.Tx) error {
		prefix := runKey(run, nil)
		c := tx.Bucket(bucketOutbox).Cursor()
		for k, v := c.Seek(prefix); k != nil && len(k) == len(prefix)+8 && string(k[:len(prefix)]) == string(prefix); k, v = c.Next() {
			var m Message
			if err := json.Unmarshal(v, &m); err != nil {
				return fmt.Errorf("decoding outbox message %q: %w", k, err)
			}
			out = append(out, m)
		}
		return nil
	})
	return out, err
}

func (s *Store) updateMessage(ctx context.Context, run string, id uint64, fn func(tx *bolt.Tx, m *Message) error) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		k := runKey(run, u64(id))
		box := tx.Bucket(bucketOutbox)
		v := box.Get(k)
		if v == nil {
			return fmt.Errorf("outbox message %d of run %q: %w", id, run, ErrNotFound)
		}
		var m Message
		if err := json.Unmarshal(v, &m); err != nil {
			return fmt.Errorf("decoding outbox message %d: %w", id, err)
		}
		if err := fn(tx, &m); err != nil {
			return err
		}
		buf, err := json.Marshal(m)
		if err != nil {
			return err
		}
		if err := box.Put(k, buf); err != nil {
			return err
		}
		if m.Delivered {
			return tx.Bucket(bucketOutboxQueue).Delete(k)
		}
		return nil
	})
}

// MarkDelivered records a delivery. When ref is not nil it becomes the
// message key's Slack location, in the same transaction, so the next message
// with that key edits it.
func (s *Store) MarkDelivered(ctx context.Context, m Message, ref *MessageRef) error {
	return s.updateMessage(ctx, m.Run, m.ID, func(tx *bolt.Tx, stored *Message) error {
		stored.Delivered = true
		stored.DeliveredAt = s.now().UTC()
		stored.Attempts++
		stored.LastError = ""
		if ref != nil && stored.Key != "" {
			buf, err := json.Marshal(ref)
			if err != nil {
				return err
			}
			return tx.Bucket(bucketMessageRefs).Put(runKey(stored.Run, []byte(stored.Key)), buf)
		}
		return nil
	})
}

// MarkFailed records a failed attempt; the message is tried again at next.
func (s *Store) MarkFailed(ctx context.Context, m Message, reason string, next time.Time) error {
	return s.updateMessage(ctx, m.Run, m.ID, func(_ *bolt.Tx, stored *Message) error {
		stored.Attempts++
		stored.LastError = reason
		stored.NextAttempt = next.UTC()
		return nil
	})
}

// SetMessageRef records where a message key lives in Slack.
func (s *Store) SetMessageRef(ctx context.Context, run, key string, ref MessageRef) error {
	buf, err := json.Marshal(ref)
	if err != nil {
		return err
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMessageRefs).Put(runKey(run, []byte(key)), buf)
	})
}

// MessageRef returns where a run's message key was posted, if it was.
func (s *Store) MessageRef(ctx context.Context, run, key string) (MessageRef, bool, error) {
	var ref MessageRef
	var ok bool
	err := s.view(ctx, func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketMessageRefs).Get(runKey(run, []byte(key)))
		if v == nil {
			return nil
		}
		ok = true
		return json.Unmarshal(v, &ref)
	})
	return ref, ok, err
}

// PruneDelivered deletes delivered messages created before cutoff and
// returns how many it deleted. Undelivered messages are never pruned, and
// the Slack locations of message keys (MessageRef) are kept.
func (s *Store) PruneDelivered(ctx context.Context, cutoff time.Time) (int, error) {
	n := 0
	err := s.update(ctx, func(tx *bolt.Tx) error {
		box := tx.Bucket(bucketOutbox)
		var dead [][]byte
		err := box.ForEach(func(k, v []byte) error {
			var m Message
			if err := json.Unmarshal(v, &m); err != nil {
				return fmt.Errorf("decoding outbox message %q: %w", k, err)
			}
			if m.Delivered && m.Created.Before(cutoff) {
				dead = append(dead, append([]byte(nil), k...))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range dead {
			if err := box.Delete(k); err != nil {
				return err
			}
		}
		n = len(dead)
		return nil
	})
	return n, err
}
