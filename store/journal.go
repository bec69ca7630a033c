package store

import (
	"context"
	"fmt"
	"sort"
	"strings"

	bolt "go.etcd.io/bbolt"
)

func journalPut(tx *bolt.Tx, j JournalEntry) error {
	if j.Run == "" || strings.ContainsRune(j.Run, 0) || j.Key == "" {
		return fmt.Errorf("journal entry needs a run and a key: %w", ErrInvalid)
	}
	return tx.Bucket(bucketJournal).Put(runKey(j.Run, []byte(j.Key)), []byte(j.Value))
}

// JournalPut writes one key of a run's journal, durably, before returning.
func (s *Store) JournalPut(ctx context.Context, run, key, value string) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		return journalPut(tx, JournalEntry{Run: run, Key: key, Value: value})
	})
}

// JournalGet reads one key of a run's journal.
func (s *Store) JournalGet(ctx context.Context, run, key string) (string, bool, error) {
	var v string
	var ok bool
	err := s.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketJournal).Get(runKey(run, []byte(key)))
		if b != nil {
			v, ok = string(b), true
		}
		return nil
	})
	return v, ok, err
}

// Journal reads a run's whole journal.
func (s *Store) Journal(ctx context.Context, run string) (map[string]string, error) {
	out := map[string]string{}
	err := s.view(ctx, func(tx *bolt.Tx) error {
		prefix := runKey(run, nil)
		c := tx.Bucket(bucketJournal).Cursor()
		for k, v := c.Seek(prefix); k != nil && hasRunPrefix(k, run); k, v = c.Next() {
			out[string(k[len(prefix):])] = string(v)
		}
		return nil
	})
	return out, err
}

// JournalKeys lists a run's journal keys that start with prefix, sorted.
func (s *Store) JournalKeys(ctx context.Context, run, prefix string) ([]string, error) {
	all, err := s.Journal(ctx, run)
	if err != nil {
		return nil, err
	}
	var keys []string
	for k := range all {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys, nil
}
