package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Lock is a gateway's lock: at most one active run per gateway.
type Lock struct {
	Gateway   string    `json:"gateway"`
	Run       string    `json:"run"`
	Requester string    `json:"requester"`
	Since     time.Time `json:"since"`
}

func tryLock(tx *bolt.Tx, l Lock) (bool, Lock, error) {
	if l.Gateway == "" || l.Run == "" {
		return false, Lock{}, fmt.Errorf("lock needs a gateway and a run: %w", ErrInvalid)
	}
	b := tx.Bucket(bucketLocks)
	if v := b.Get([]byte(l.Gateway)); v != nil {
		var cur Lock
		if err := json.Unmarshal(v, &cur); err != nil {
			return false, Lock{}, fmt.Errorf("decoding lock of %s: %w", l.Gateway, err)
		}
		// The same run taking its lock again (on resume) keeps the original.
		return cur.Run == l.Run, cur, nil
	}
	l.Since = l.Since.UTC()
	buf, err := json.Marshal(l)
	if err != nil {
		return false, Lock{}, err
	}
	return true, l, b.Put([]byte(l.Gateway), buf)
}

func unlock(tx *bolt.Tx, gateway, run string) error {
	b := tx.Bucket(bucketLocks)
	v := b.Get([]byte(gateway))
	if v == nil {
		return nil
	}
	var cur Lock
	if err := json.Unmarshal(v, &cur); err != nil {
		return fmt.Errorf("decoding lock of %s: %w", gateway, err)
	}
	if cur.Run != run {
		return nil // someone else's lock is not ours to drop
	}
	return b.Delete([]byte(gateway))
}

// TryLock takes the gateway's lock for run. Contention is not an error: it
// returns acquired=false and the holder, so the bot can say who holds the
// gateway. A run that already holds the lock gets it again.
func (s *Store) TryLock(ctx context.Context, gateway, run, requester string) (acquired bool, holder Lock, err error) {
	err = s.update(ctx, func(tx *bolt.Tx) error {
		acquired, holder, err = tryLock(tx, Lock{Gateway: gateway, Run: run, Requester: requester, Since: s.now()})
		return err
	})
	return acquired, holder, err
}

// Unlock releases the gateway's lock if run holds it; otherwise it does nothing.
func (s *Store) Unlock(ctx context.Context, gateway, run string) error {
	return s.update(ctx, func(tx *bolt.Tx) error { return unlock(tx, gateway, run) })
}

// Locks lists the held gateway locks, by gateway.
func (s *Store) Locks(ctx context.Context) ([]Lock, error) {
	var out []Lock
	err := s.view(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketLocks).ForEach(func(_, v []byte) error {
			var l Lock
			if err := json.Unmarshal(v, &l); err != nil {
				return err
			}
			out = append(out, l)
			return nil
		})
	})
	return out, err
}
