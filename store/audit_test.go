package store

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// seedAudit writes 6 entries alternating between runs r1 and r2:
// seq 1,3,5 are r1's and 2,4,6 are r2's.
func seedAudit(t *testing.T, s *Store) {
	t.Helper()
	ctx := context.Background()
	for i := 1; i <= 6; i++ {
		run := "r1"
		if i%2 == 0 {
			run = "r2"
		}
		if _, err := s.Commit(ctx, Change{Audit: []AuditEntry{{Run: run, Kind: "note", Actor: "U1", Text: fmt.Sprintf("entry %d", i), Data: json.RawMessage(`{"i":` + fmt.Sprint(i) + `}`)}}}); err != nil {
			t.Fatal(err)
		}
	}
}

func rawUpdate(t *testing.T, s *Store, fn func(tx *bolt.Tx) error) {
	t.Helper()
	if err := s.db.Update(fn); err != nil {
		t.Fatal(err)
	}
}

func editEntry(seq uint64, fn func(e *AuditEntry)) func(tx *bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAudit)
		var e AuditEntry
		if err := json.Unmarshal(b.Get(u64(seq)), &e); err != nil {
			return err
		}
		fn(&e)
		buf, _ := json.Marshal(e)
		return b.Put(u64(seq), buf)
	}
}

func TestAuditChainDetectsTampering(t *testing.T) {
	tests := []struct {
		name       string
		tamper     func(tx *bolt.Tx) error
		wantSeq    uint64 // first broken link of the global chain
		wantReason string
		wantRun1   string // reason expected for r1's own chain ("" = intact)
	}{
		{"text edited", editEntry(3, func(e *AuditEntry) { e.Text = "entry 3, approved by nobody" }), 3, "content does not match its hash", "content does not match"},
		{"actor edited and rehashed", editEntry(3, func(e *AuditEntry) {
			e.Actor = "U666"
			e.Hash, _ = entryHash(*e)
		}), 4, "link to the previous entry does not match", "link to the run's previous entry"},
		{"middle entry deleted", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketAudit).Delete(u64(3))
		}, 3, "entry is missing", "missing from the log"},
		{"middle entry and its index deleted", func(tx *bolt.Tx) error {
			if err := tx.Bucket(bucketAuditByRun).Delete(runKey("r1", u64(3))); err != nil {
				return err
			}
			return tx.Bucket(bucketAudit).Delete(u64(3))
		}, 3, "entry is missing", "link to the run's previous entry"},
		{"tail deleted", func(tx *bolt.Tx) error {
			if err := tx.Bucket(bucketAuditByRun).Delete(runKey("r2", u64(6))); err != nil {
				return err
			}
			return tx.Bucket(bucketAudit).Delete(u64(6))
		}, 6, "removed from the end", ""},
		{"data edited", editEntry(5, func(e *AuditEntry) { e.Data = json.RawMessage(`{"i":50}`) }), 5, "content does not match", "content does not match"},
		{"entry moved to another run", editEntry(2, func(e *AuditEntry) { e.Run = "r1" }), 2, "content does not match", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			s, err := Open(filepath.Join(t.TempDir(), "kongbot.db"), Options{NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			seedAudit(t, s)
			if v, err := s.VerifyAudit(ctx); err != nil || !v.OK() || v.Entries != 6 {
				t.Fatalf("before tampering: %+v %v", v, err)
			}
			for _, run := range []string{"r1", "r2"} {
				if v, err := s.VerifyRunAudit(ctx, run); err != nil || !v.OK() || v.Entries != 3 {
					t.Fatalf("%s before tampering: %+v %v", run, v, err)
				}
			}
			rawUpdate(t, s, tt.tamper)
			v, err := s.VerifyAudit(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if v.OK() || v.Broken.Seq != tt.wantSeq || !strings.Contains(v.Broken.Reason, tt.wantReason) {
				t.Fatalf("VerifyAudit = %+v, want break at %d (%s)", v.Broken, tt.wantSeq, tt.wantReason)
			}
			r1, err := s.VerifyRunAudit(ctx, "r1")
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tt.wantRun1 == "" && !r1.OK():
				t.Fatalf("r1 chain reported broken: %+v", r1.Broken)
			case tt.wantRun1 != "" && (r1.OK() || !strings.Contains(r1.Broken.Reason, tt.wantRun1)):
				t.Fatalf("VerifyRunAudit(r1) = %+v, want %q", r1.Broken, tt.wantRun1)
			}
		})
	}
}

func TestAuditEntriesAreChained(t *testing.T) {
	ctx := context.Background()
	s := mustOpen(t)
	seedAudit(t, s)
	es, err := s.Audit(ctx, "r2")
	if err != nil || len(es) != 3 {
		t.Fatalf("audit = %v %v", es, err)
	}
	if es[0].Seq != 2 || es[0].RunPrev != "" || es[1].RunPrev != es[0].Hash || es[1].Prev == es[0].Hash {
		t.Fatalf("links: %+v", es)
	}
	if string(es[2].Data) != `{"i":6}` || es[2].Text != "entry 6" || es[2].At.IsZero() {
		t.Fatalf("entry = %+v", es[2])
	}
}

func TestBackupWhileWriting(t *testing.T) {
	ctx := context.Background()
	s := mustOpen(t)
	dir := t.TempDir()
	var committed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	writerDone := make(chan struct{})
	wg.Go(func() {
		defer close(writerDone)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			id := fmt.Sprintf("r%d", i)
			if _, err := s.Commit(ctx, Change{Run: newRun(id, "prod"), Audit: []AuditEntry{{Kind: "start"}, {Kind: "plan"}},
				Outbox: []Message{{Key: "summary"}}}); err != nil {
				t.Error(err)
				return
			}
			committed.Add(1)
		}
	})
	var last BackupInfo
	for i := range 5 {
		before := committed.Load()
		path := filepath.Join(dir, "backup.db")
		info, err := s.Backup(ctx, path)
		if err != nil {
			t.Fatalf("backup %d: %v", i, err)
		}
		// The copy is one consistent transaction: every run has its two
		// audit entries, and it holds at least what was committed before.
		if int64(info.Runs) < before || info.Audit != 2*info.Runs || info.AuditBreak != "" {
			t.Fatalf("backup %d: %+v (committed before: %d)", i, info, before)
		}
		b, err := Open(path, Options{ReadOnly: true})
		if err != nil {
			t.Fatalf("backup %d does not open: %v", i, err)
		}
		runs, _ := b.Runs(ctx, RunFilter{})
		b.Close()
		if len(runs) != info.Runs {
			t.Fatalf("backup %d has %d runs, info says %d", i, len(runs), info.Runs)
		}
		last = info
		for committed.Load() == before { // let at least one more commit land
			select {
			case <-writerDone:
				t.Fatal("the writer stopped")
			default:
				runtime.Gosched()
			}
		}
	}
	close(stop)
	wg.Wait()
	if last.Runs == 0 {
		t.Fatal("no run was backed up")
	}
	matches, _ := filepath.Glob(filepath.Join(dir, ".backup.db.tmp-*"))
	if len(matches) != 0 {
		t.Fatalf("temporary files left: %v", matches)
	}
	other := filepath.Join(dir, "notes.txt")
	_ = os.WriteFile(other, []byte("keep me"), 0o600)
	if _, err := s.Backup(ctx, other); err == nil || !strings.Contains(err.Error(), "is not a kongbot store") {
		t.Fatalf("backup over a foreign file = %v", err)
	}
	if b, _ := os.ReadFile(other); string(b) != "keep me" {
		t.Fatal("a foreign file was replaced by a backup")
	}
	if _, err := s.Backup(ctx, s.Path()); err == nil || !strings.Contains(err.Error(), "is the store itself") {
		t.Fatalf("backup onto itself = %v", err)
	}
}
