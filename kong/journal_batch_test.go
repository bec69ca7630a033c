package kong

import (
	"errors"
	"testing"
)

// countingJournal records each PutMany and can refuse them.
type countingJournal struct {
	*memJournal
	batches []int
	refuse  bool
}

func (c *countingJournal) PutMany(kv map[string]string) error {
	if c.refuse {
		return errors.New("disk gone")
	}
	c.batches = append(c.batches, len(kv))
	return c.memJournal.PutMany(kv)
}

func TestBatchJournal(t *testing.T) {
	tests := []struct {
		name        string
		limit, puts int
		refuse      bool
		wantBatches []int // durable writes after the final Flush
		wantErr     bool
	}{
		{"one batch at the end", 10, 3, false, []int{3}, false},
		{"full batches as they fill", 2, 5, false, []int{2, 2, 1}, false},
		{"nothing to write", 4, 0, false, nil, false},
		{"a refused write fails later puts and the flush", 2, 3, true, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			under := &countingJournal{memJournal: newJournal(), refuse: tc.refuse}
			b := newBatchJournal(under, tc.limit)
			var putErr error
			for i := 0; i < tc.puts; i++ {
				k := jConv("api", string(rune('a'+i)))
				err := b.Put(k, "v")
				if err != nil {
					putErr = err
					continue
				}
				if v, ok := b.Get(k); !ok || v != "v" {
					t.Fatalf("Get(%s) right after Put = %q %v", k, v, ok)
				}
			}
			err := b.Flush()
			if (err != nil) != tc.wantErr || (putErr != nil) != tc.wantErr {
				t.Fatalf("flush %v, put %v, want errors %v", err, putErr, tc.wantErr)
			}
			if len(under.batches) != len(tc.wantBatches) {
				t.Fatalf("batches %v, want %v", under.batches, tc.wantBatches)
			}
			for i := range tc.wantBatches {
				if under.batches[i] != tc.wantBatches[i] {
					t.Fatalf("batches %v, want %v", under.batches, tc.wantBatches)
				}
			}
			if !tc.wantErr && len(under.Keys("conv/")) != tc.puts {
				t.Fatalf("%d keys durable, want %d", len(under.Keys("conv/")), tc.puts)
			}
		})
	}
}
