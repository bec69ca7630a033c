package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Run is a run as the store keeps it: the engine's JSON document (Data) and
// the fields the store indexes and the CLI shows without decoding Data.
type Run struct {
	ID        string    `json:"id"`
	Gateway   string    `json:"gateway"`
	Status    string    `json:"status"`
	Terminal  bool      `json:"terminal"`
	Requester string    `json:"requester,omitempty"`
	Created   time.Time `json:"created"`
	Updated   time.Time `json:"updated"`
	// Version counts commits of this run. A Commit must carry the version
	// it read (0 for a new run); the store sets the new one.
	Version uint64          `json:"version"`
	Data    json.RawMessage `json:"data,omitempty"`
}

// JournalEntry is one key of a run's step journal.
type JournalEntry struct {
	Run   string `json:"run"`
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Change is everything one state transition writes. Commit applies it in one
// transaction: all of it is durable when Commit returns nil, none of it
// otherwise.
type Change struct {
	// Run is the run's new state; nil when the change touches no run.
	Run *Run
	// Audit entries to append; Run defaults to Change.Run.ID, At to now.
	Audit []AuditEntry
	// Outbox messages to queue; Run defaults to Change.Run.ID.
	Outbox []Message
	// Journal keys to write.
	Journal []JournalEntry
	// Lock takes the gateway lock for Lock.Run. If another run holds it the
	// whole change is refused with a *LockedError.
	Lock *Lock
	// Unlock releases the gateway lock if Unlock.Run holds it.
	Unlock *Lock
	// Schedules to create or replace, and schedule IDs to delete.
	PutSchedules    []Schedule
	DeleteSchedules []string
	// State keys to write (state.go); a nil Value deletes the key.
	State []StateEntry
}

// Committed is what Commit wrote, with the fields the store assigned
// (run version, audit sequence numbers and hashes, message IDs).
type Committed struct {
	Run    *Run
	Audit  []AuditEntry
	Outbox []Message
}

// Commit writes a change in one fsynced transaction.
//
// A run in the change must carry the Version it was read at; a mismatch is
// ErrConflict and nothing is written. When the run becomes terminal, the
// gateway lock it holds is released in the same transaction, so a finished
// run can never leave its gateway locked.
func (s *Store) Commit(ctx context.Context, ch Change) (Committed, error) {
	var out Committed
	now := s.now().UTC()
	err := s.update(ctx, func(tx *bolt.Tx) error {
		out = Committed{}
		runID := ""
		if ch.Run != nil {
			r, err := putRun(tx, *ch.Run, now)
			if err != nil {
				return err
			}
			out.Run = &r
			runID = r.ID
			if r.Terminal {
				if err := unlock(tx, r.Gateway, r.ID); err != nil {
					return err
				}
			}
		}
		if ch.Lock != nil {
			l := *ch.Lock
			if l.Since.IsZero() {
				l.Since = now
			}
			ok, holder, err := tryLock(tx, l)
			if err != nil {
				return err
			}
			if !ok {
				return &LockedError{Holder: holder}
			}
		}
		if ch.Unlock != nil {
			if err := unlock(tx, ch.Unlock.Gateway, ch.Unlock.Run); err != nil {
				return err
			}
		}
		for _, j := range ch.Journal {
			if j.Run == "" {
				j.Run = runID
			}
			if err := journalPut(tx, j); err != nil {
				return err
			}
		}
		for _, e := range ch.Audit {
			if e.Run == "" {
				e.Run = runID
			}
			if e.At.IsZero() {
				e.At = now
			}
			written, err := appendAudit(tx, e)
			if err != nil {
				return err
			}
			out.Audit = append(out.Audit, written)
		}
		for _, m := range ch.Outbox {
			if m.Run == "" {
				m.Run = runID
			}
			if m.Created.IsZero() {
				m.Created = now
			}
			written, err := enqueue(tx, m)
			if err != nil {
				return err
			}
			out.Outbox = append(out.Outbox, written)
		}
		for _, sc := range ch.PutSchedules {
			if err := putSchedule(tx, sc, now); err != nil {
				return err
			}
		}
		for _, id := range ch.DeleteSchedules {
			if err := deleteSchedule(tx, id); err != nil {
				return err
			}
		}
		for _, e := range ch.State {
			if err := putState(tx, e); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return Committed{}, err
	}
	return out, nil
}

func putRun(tx *bolt.Tx, r Run, now time.Time) (Run, error) {
	if r.ID == "" || strings.ContainsRune(r.ID, 0) {
		return Run{}, fmt.Errorf("run ID %q: %w", r.ID, ErrInvalid)
	}
	if r.Gateway == "" {
		return Run{}, fmt.Errorf("run %s has no gateway: %w", r.ID, ErrInvalid)
	}
	b := tx.Bucket(bucketRuns)
	old := b.Get([]byte(r.ID))
	switch {
	case old == nil && r.Version != 0:
		return Run{}, fmt.Errorf("run %s (version %d) does not exist: %w", r.ID, r.Version, ErrNotFound)
	case old == nil:
		if r.Created.IsZero() {
			r.Created = now
		}
	case r.Version == 0:
		return Run{}, fmt.Errorf("run %s already exists: %w", r.ID, ErrConflict)
	default:
		var prev Run
		if err := json.Unmarshal(old, &prev); err != nil {
			return Run{}, fmt.Errorf("decoding run %s: %w", r.ID, err)
		}
		if prev.Version != r.Version {
			return Run{}, fmt.Errorf("run %s: committed at version %d, stored is %d: %w", r.ID, r.Version, prev.Version, ErrConflict)
		}
		r.Created = prev.Created
	}
	r.Version++
	r.Updated = now
	if len(r.Data) > 0 && !json.Valid(r.Data) {
		return Run{}, fmt.Errorf("run %s data is not JSON: %w", r.ID, ErrInvalid)
	}
	buf, err := json.Marshal(r)
	if err != nil {
		return Run{}, fmt.Errorf("encoding run %s: %w", r.ID, err)
	}
	if err := b.Put([]byte(r.ID), buf); err != nil {
		return Run{}, fmt.Errorf("writing run %s: %w", r.ID, err)
	}
	return r, nil
}

// NewRunID hands out a short, unique, human-typable run ID ("r1", "r2", ...)
// for `/kong upgrade abort r7`.
func (s *Store) NewRunID(ctx context.Context) (string, error) {
	var id string
	err := s.update(ctx, func(tx *bolt.Tx) error {
		n, err := nextCounter(tx, keyRunSeq)
		id = fmt.Sprintf("r%d", n)
		return err
	})
	return id, err
}

func nextCounter(tx *bolt.Tx, key []byte) (uint64, error) {
	meta := tx.Bucket(bucketMeta)
	var n uint64
	if v := meta.Get(key); len(v) == 8 {
		n = beU64(v)
	}
	n++
	return n, meta.Put(key, u64(n))
}

// Run reads one run.
func (s *Store) Run(ctx context.Context, id string) (Run, error) {
	var r Run
	err := s.view(ctx, func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketRuns).Get([]byte(id))
		if v == nil {
			return fmt.Errorf("run %s: %w", id, ErrNotFound)
		}
		return json.Unmarshal(v, &r)
	})
	return r, err
}

// RunFilter selects runs for Runs.
type RunFilter struct {
	Gateway    string // empty: every gateway
	ActiveOnly bool   // only runs that are not terminal
	Limit      int    // 0: no limit
}

// Runs lists runs, most recently created first.
func (s *Store) Runs(ctx context.Context, f RunFilter) ([]Run, error) {
	var out []Run
	err := s.view(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRuns).ForEach(func(k, v []byte) error {
			var r Run
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("decoding run %s: %w", k, err)
			}
			if (f.Gateway != "" && r.Gateway != f.Gateway) || (f.ActiveOnly && r.Terminal) {
				return nil
			}
			out = append(out, r)
			return nil
		})
	})
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.After(out[j].Created)
		}
		return out[i].ID > out[j].ID
	})
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out, err
}

func hasRunPrefix(k []byte, run string) bool {
	return len(k) > len(run) && k[len(run)] == 0 && bytes.HasPrefix(k, []byte(run))
}
