package store

import (
	"context"
	"fmt"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// StateEntry is one key of the background jobs' small durable state (the
// scheduler's digest due time, a health watch's last seen conditions). It
// lives in the meta bucket under "state/", so the file layout and schema
// are unchanged.
type StateEntry struct {
	Key   string
	Value []byte // nil deletes the key
}

const statePrefix = "state/"

func putState(tx *bolt.Tx, e StateEntry) error {
	if e.Key == "" || strings.ContainsRune(e.Key, 0) {
		return fmt.Errorf("state key %q: %w", e.Key, ErrInvalid)
	}
	k := []byte(statePrefix + e.Key)
	if e.Value == nil {
		return tx.Bucket(bucketMeta).Delete(k)
	}
	return tx.Bucket(bucketMeta).Put(k, e.Value)
}

// PutState writes state keys in one transaction (with Commit, a state key
// can be written together with the outbox messages it accounts for).
func (s *Store) PutState(ctx context.Context, entries ...StateEntry) error {
	_, err := s.Commit(ctx, Change{State: entries})
	return err
}

// State reads one state key.
func (s *Store) State(ctx context.Context, key string) ([]byte, bool, error) {
	var out []byte
	err := s.view(ctx, func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get([]byte(statePrefix + key)); v != nil {
			out = append([]byte{}, v...)
		}
		return nil
	})
	return out, out != nil, err
}
