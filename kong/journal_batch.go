package kong

import (
	"fmt"
	"sync"

	"github.com/kongbot/kongbot/steps"
)

// journalRW is the part of a journal the conversion's phases use.
type journalRW interface {
	Get(key string) (string, bool)
	Put(key, value string) error
}

// batchJournal buffers Puts and writes them to the run's journal with
// PutMany, limit keys per durable write, so a conversion of thousands of
// APIs costs a few hundred store commits rather than one per created
// entity. Only records whose loss a resume tolerates go through it: a
// resume finds and adopts what Kong created (writeOne), and the intent
// record (jcBefore) that makes a resume look is flushed before any write.
type batchJournal struct {
	j     steps.Journal
	limit int

	mu      sync.Mutex
	pending map[string]string // not yet handed to PutMany
	inway   map[string]string // handed to PutMany, not yet confirmed
	err     error             // the first failed write; later Puts fail too

	flushMu sync.Mutex // one PutMany at a time keeps writes in order
}

func newBatchJournal(j steps.Journal, limit int) *batchJournal {
	return &batchJournal{j: j, limit: max(limit, 1), pending: map[string]string{}, inway: map[string]string{}}
}

func (b *batchJournal) Get(key string) (string, bool) {
	b.mu.Lock()
	v, ok := b.pending[key]
	if !ok {
		v, ok = b.inway[key]
	}
	b.mu.Unlock()
	if ok {
		return v, true
	}
	return b.j.Get(key)
}

// Put buffers the key; it returns the error of an earlier failed write, or
// of the write it triggers when the buffer is full.
func (b *batchJournal) Put(key, value string) error {
	b.mu.Lock()
	if b.err != nil {
		err := b.err
		b.mu.Unlock()
		return err
	}
	b.pending[key] = value
	full := len(b.pending) >= b.limit
	b.mu.Unlock()
	if full {
		return b.Flush()
	}
	return nil
}

// Flush writes everything buffered as one durable write per batch.
func (b *batchJournal) Flush() error {
	b.flushMu.Lock()
	defer b.flushMu.Unlock()
	b.mu.Lock()
	if b.err != nil || len(b.pending) == 0 {
		err := b.err
		b.mu.Unlock()
		return err
	}
	kv := b.pending
	b.pending = map[string]string{}
	for k, v := range kv {
		b.inway[k] = v
	}
	b.mu.Unlock()
	err := b.j.PutMany(kv)
	b.mu.Lock()
	defer b.mu.Unlock()
	if err != nil {
		b.err = fmt.Errorf("writing %d keys: %w", len(kv), err)
		return b.err
	}
	for k, v := range kv {
		if b.inway[k] == v {
			delete(b.inway, k)
		}
	}
	return nil
}
