package store

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestOpenSurvivesDamagedPages damages one byte at a time across a real
// store file (page headers, branch and leaf elements, values) and opens it.
// Each open either refuses with an error and leaves the file byte-identical,
// or succeeds on a file whose damage bbolt cannot see (inside a value), in
// which case reads and the audit check report errors instead of panicking.
func TestOpenSurvivesDamagedPages(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	orig := filepath.Join(dir, "orig.db")
	s, err := Open(orig, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		if _, err := s.Commit(ctx, Change{Run: newRun(fmt.Sprintf("r%d", i), "prod"),
			Audit:  []AuditEntry{{Kind: "start", Text: strings.Repeat("a", 300)}},
			Outbox: []Message{{Key: "summary"}}}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	good, _ := os.ReadFile(orig)
	pages := len(good) / 4096
	refused, opened := 0, 0
	for p := range pages {
		for _, off := range []int{8, 10, 16, 23, 28, 555, 4070} {
			b := bytes.Clone(good)
			i := p*4096 + off
			b[i] ^= 0xA5
			path := filepath.Join(dir, "damaged.db")
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Errorf("page %d offset %d: panic: %v", p, off, r)
					}
				}()
				st, err := Open(path, Options{ReadOnly: true})
				if err != nil {
					refused++
					after, _ := os.ReadFile(path)
					if !bytes.Equal(after, b) {
						t.Errorf("page %d offset %d: refused file was modified", p, off)
					}
					return
				}
				opened++
				defer st.Close()
				_, _ = st.Runs(ctx, RunFilter{})
				_, _ = st.VerifyAudit(ctx)
				_, _ = st.Pending(ctx, time.Now(), 0)
			}()
			os.Remove(path)
		}
	}
	t.Logf("%d pages: %d damaged copies refused, %d opened", pages, refused, opened)
	if refused == 0 {
		t.Fatal("no damage was detected at all")
	}
}
