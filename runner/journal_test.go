package runner

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/kongbot/kongbot/store"
)

// TestJournalPutMany checks that a batch is written all or nothing and
// survives reopening the store.
func TestJournalPutMany(t *testing.T) {
	tests := []struct {
		name    string
		kv      map[string]string
		wantErr bool
		want    map[string]string // the journal after reopening
	}{
		{"batch", map[string]string{"conv/a/service": "s1", "conv/a/route": "r1", "conv/b/service": "s2"}, false,
			map[string]string{"seed": "1", "conv/a/service": "s1", "conv/a/route": "r1", "conv/b/service": "s2"}},
		{"empty", map[string]string{}, false, map[string]string{"seed": "1"}},
		{"one bad key writes nothing", map[string]string{"conv/a/service": "s1", "": "x"}, true, map[string]string{"seed": "1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), "kongbot.db")
			st, err := store.Open(path, store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			j, err := OpenJournal(ctx, st, "r1")
			if err != nil {
				t.Fatal(err)
			}
			if err := j.Put("seed", "1"); err != nil {
				t.Fatal(err)
			}
			err = j.PutMany(tc.kv)
			if (err != nil) != tc.wantErr {
				t.Fatalf("PutMany: %v, want error %v", err, tc.wantErr)
			}
			for k, v := range tc.want {
				if got, _ := j.Get(k); got != v {
					t.Errorf("Get(%q) = %q before reopening, want %q", k, got, v)
				}
			}
			if _, ok := j.Get(""); ok {
				t.Error("a refused batch is visible through Get")
			}
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			st, err = store.Open(path, store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			got, err := st.Journal(ctx, "r1")
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Errorf("journal after reopening %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("journal[%q] = %q after reopening, want %q", k, got[k], v)
				}
			}
		})
	}
}
