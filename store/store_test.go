package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// mustOpen opens a fresh store in t.TempDir and, at cleanup, checks the file
// is still a valid store whose audit chain verifies.
func mustOpen(t *testing.T) *Store {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kongbot.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		r, err := Open(path, Options{ReadOnly: true})
		if err != nil {
			t.Errorf("reopen at cleanup: %v", err)
			return
		}
		defer r.Close()
		if v, err := r.VerifyAudit(context.Background()); err != nil || !v.OK() {
			t.Errorf("audit at cleanup: %+v, %v", v.Broken, err)
		}
	})
	return s
}

func newRun(id, gw string) *Run {
	return &Run{ID: id, Gateway: gw, Status: "planned", Requester: "U1", Data: json.RawMessage(`{"step":0}`)}
}

func TestOpenCreatesAndReopens(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sub", "dir", "kongbot.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := s.Schema(); err != nil || n != SchemaVersion {
		t.Fatalf("schema = %d, %v", n, err)
	}
	if _, err := s.Commit(ctx, Change{Run: newRun("r1", "prod"), Audit: []AuditEntry{{Kind: "start"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Commit(ctx, Change{Run: newRun("r1", "prod")}); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("creating r1 twice = %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	r, err := s.Run(ctx, "r1")
	if err != nil || r.Version != 1 || r.Gateway != "prod" || string(r.Data) != `{"step":0}` {
		t.Fatalf("run after reopen = %+v, %v", r, err)
	}
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// makeBolt writes a bbolt file built by fn (not through our Open).
func makeBolt(t *testing.T, path string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRefusesBadFiles(t *testing.T) {
	tests := []struct {
		name    string
		make    func(t *testing.T, path string)
		want    error
		message string
	}{
		{"text file", func(t *testing.T, p string) {
			writeFile(t, p, bytes.Repeat([]byte("gateways:\n  - name: prod\n"), 400))
		}, ErrCorrupt, "not a readable bbolt database"},
		{"empty file", func(t *testing.T, p string) { writeFile(t, p, nil) }, ErrForeign, "empty file"},
		{"bbolt meta pages zeroed", func(t *testing.T, p string) {
			s, err := Open(p, Options{})
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
			b, _ := os.ReadFile(p)
			for i := 0; i < 2*4096 && i < len(b); i++ {
				b[i] = 0
			}
			writeFile(t, p, b)
		}, ErrCorrupt, "left untouched"},
		{"truncated store", func(t *testing.T, p string) {
			s, err := Open(p, Options{})
			if err != nil {
				t.Fatal(err)
			}
			for i := range 50 {
				if _, err := s.Commit(context.Background(), Change{Run: newRun(fmt.Sprintf("r%d", i), "prod"),
					Audit: []AuditEntry{{Kind: "start", Text: strings.Repeat("x", 2000)}}}); err != nil {
					t.Fatal(err)
				}
			}
			s.Close()
			b, _ := os.ReadFile(p)
			writeFile(t, p, b[:len(b)/2])
		}, ErrCorrupt, "truncated"},
		{"foreign bbolt file", func(t *testing.T, p string) {
			makeBolt(t, p, func(tx *bolt.Tx) error {
				b, err := tx.CreateBucket([]byte("widgets"))
				if err != nil {
					return err
				}
				return b.Put([]byte("a"), []byte("b"))
			})
		}, ErrForeign, "without kongbot's meta bucket"},
		{"bbolt file with someone else's meta", func(t *testing.T, p string) {
			makeBolt(t, p, func(tx *bolt.Tx) error {
				b, err := tx.CreateBucket([]byte("meta"))
				if err != nil {
					return err
				}
				return b.Put([]byte("format"), []byte("atlantis"))
			})
		}, ErrForeign, `format "atlantis"`},
		{"newer schema", func(t *testing.T, p string) {
			s, err := Open(p, Options{})
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
			db, _ := bolt.Open(p, 0o600, nil)
			_ = db.Update(func(tx *bolt.Tx) error {
				return tx.Bucket(bucketMeta).Put(keySchema, []byte("99"))
			})
			db.Close()
		}, ErrNewerSchema, "schema 99"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "kongbot.db")
			tt.make(t, path)
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for _, ro := range []bool{false, true} {
				s, err := Open(path, Options{ReadOnly: ro, Timeout: time.Second})
				if err == nil {
					s.Close()
					t.Fatalf("Open(readonly=%v) succeeded, want %v", ro, tt.want)
				}
				if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.message) || !strings.Contains(err.Error(), path) {
					t.Fatalf("Open(readonly=%v) = %v, want %v mentioning %q and the path", ro, err, tt.want, tt.message)
				}
			}
			after, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(before, after) {
				t.Fatalf("the refused file was modified (%d -> %d bytes)", len(before), len(after))
			}
		})
	}
}

func TestOpenHeldByAnotherOpener(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kongbot.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, ro := range []bool{false, true} {
		_, err := Open(path, Options{ReadOnly: ro, Timeout: 50 * time.Millisecond})
		if !errors.Is(err, ErrHeld) {
			t.Fatalf("second Open(readonly=%v) = %v, want ErrHeld", ro, err)
		}
		want := "store " + path + " is held by another process (is kongbot already running?)"
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("error %q does not say %q", err, want)
		}
	}
}

func TestReadOnlyRefusesWrites(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "kongbot.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	r, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Commit(ctx, Change{Run: newRun("r1", "prod")}); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("Commit on read-only = %v", err)
	}
	if _, err := Open(filepath.Join(t.TempDir(), "missing.db"), Options{ReadOnly: true}); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("read-only open of a missing file = %v", err)
	}
}

func TestCommitIsAllOrNothing(t *testing.T) {
	ctx := context.Background()
	s := mustOpen(t)
	c, err := s.Commit(ctx, Change{
		Run:     newRun("r1", "prod"),
		Lock:    &Lock{Gateway: "prod", Run: "r1", Requester: "U1"},
		Audit:   []AuditEntry{{Kind: "start", Actor: "U1"}, {Kind: "plan", Data: json.RawMessage(`{ "steps" : 12 }`)}},
		Outbox:  []Message{{Key: "summary", Payload: json.RawMessage(`{"text":"hi"}`)}},
		Journal: []JournalEntry{{Key: "k", Value: "v"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.Run.Version != 1 || len(c.Audit) != 2 || c.Audit[1].Seq != 2 || c.Outbox[0].Run != "r1" || c.Audit[0].Run != "r1" {
		t.Fatalf("committed = %+v", c)
	}

	state := func() string {
		r, _ := s.Run(ctx, "r1")
		a, _ := s.Audit(ctx, "r1")
		o, _ := s.Outbox(ctx, "r1")
		j, _ := s.Journal(ctx, "r1")
		l, _ := s.Locks(ctx)
		return fmt.Sprintf("v%d %s a%d o%d j%v l%v", r.Version, r.Status, len(a), len(o), j, l)
	}
	before := state()

	stale := newRun("r1", "prod") // version 0: stale
	stale.Status = "running"
	other := newRun("r2", "prod")
	tests := []struct {
		name string
		ch   Change
		want error
	}{
		{"stale version", Change{Run: stale, Audit: []AuditEntry{{Kind: "x"}}, Outbox: []Message{{Key: "summary"}}, Journal: []JournalEntry{{Key: "k", Value: "changed"}}}, ErrConflict},
		{"lock held by another run", Change{Run: other, Lock: &Lock{Gateway: "prod", Run: "r2", Requester: "U2"}, Audit: []AuditEntry{{Kind: "start"}}}, nil},
		{"audit without kind", Change{Journal: []JournalEntry{{Run: "r1", Key: "k", Value: "changed"}}, Audit: []AuditEntry{{Run: "r1"}}}, ErrInvalid},
		{"payload not JSON", Change{Journal: []JournalEntry{{Run: "r1", Key: "k", Value: "changed"}}, Outbox: []Message{{Run: "r1", Payload: json.RawMessage(`{`)}}}, ErrInvalid},
		{"run without gateway", Change{Run: &Run{ID: "r9"}, Audit: []AuditEntry{{Kind: "x"}}}, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Commit(ctx, tt.ch)
			if err == nil {
				t.Fatal("Commit succeeded")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			var le *LockedError
			if tt.want == nil && (!errors.As(err, &le) || le.Holder.Run != "r1" || le.Holder.Requester != "U1") {
				t.Fatalf("err = %v, want LockedError naming r1 and U1", err)
			}
			if got := state(); got != before {
				t.Fatalf("state changed by a refused commit:\n%s\n%s", before, got)
			}
			if _, err := s.Run(ctx, "r2"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("r2 exists after refused commit: %v", err)
			}
		})
	}
}

func TestLock(t *testing.T) {
	ctx := context.Background()
	s := mustOpen(t)
	steps := []struct {
		op         string // lock | unlock
		gw, run    string
		wantOK     bool
		wantHolder string
	}{
		{"lock", "prod", "r1", true, "r1"},
		{"lock", "prod", "r2", false, "r1"},
		{"lock", "prod", "r1", true, "r1"}, // resume re-takes its own lock
		{"lock", "staging", "r2", true, "r2"},
		{"unlock", "prod", "r2", false, ""}, // not r2's lock: nothing happens
		{"lock", "prod", "r3", false, "r1"},
		{"unlock", "prod", "r1", false, ""},
		{"lock", "prod", "r3", true, "r3"},
	}
	for i, st := range steps {
		if st.op == "unlock" {
			if err := s.Unlock(ctx, st.gw, st.run); err != nil {
				t.Fatalf("step %d: %v", i, err)
			}
			continue
		}
		ok, holder, err := s.TryLock(ctx, st.gw, st.run, "U-"+st.run)
		if err != nil || ok != st.wantOK || holder.Run != st.wantHolder || holder.Requester != "U-"+st.wantHolder || holder.Since.IsZero() {
			t.Fatalf("step %d TryLock(%s,%s) = %v %+v %v", i, st.gw, st.run, ok, holder, err)
		}
	}
}

func TestLockContention(t *testing.T) {
	ctx := context.Background()
	s := mustOpen(t)
	const n = 16
	var wg sync.WaitGroup
	winners := make(chan string, n)
	holders := make(chan string, n)
	for i := range n {
		wg.Go(func() {
			run := fmt.Sprintf("r%d", i)
			ok, h, err := s.TryLock(ctx, "prod", run, "U"+run)
			if err != nil {
				t.Error(err)
				return
			}
			if ok {
				winners <- run
			}
			holders <- h.Run
		})
	}
	wg.Wait()
	close(winners)
	close(holders)
	var won []string
	for w := range winners {
		won = append(won, w)
	}
	if len(won) != 1 {
		t.Fatalf("%d runs got the lock: %v", len(won), won)
	}
	for h := range holders {
		if h != won[0] {
			t.Fatalf("a loser was told the holder is %s, the winner is %s", h, won[0])
		}
	}
}

func TestTerminalRunReleasesItsLock(t *testing.T) {
	ctx := context.Background()
	s := mustOpen(t)
	c, err := s.Commit(ctx, Change{Run: newRun("r1", "prod"), Lock: &Lock{Gateway: "prod", Run: "r1", Requester: "U1"}})
	if err != nil {
		t.Fatal(err)
	}
	r := *c.Run
	r.Status, r.Terminal = "succeeded", true
	if _, err := s.Commit(ctx, Change{Run: &r}); err != nil {
		t.Fatal(err)
	}
	if l, _ := s.Locks(ctx); len(l) != 0 {
		t.Fatalf("locks after terminal commit: %+v", l)
	}
	active, _ := s.Runs(ctx, RunFilter{ActiveOnly: true})
	all, _ := s.Runs(ctx, RunFilter{Gateway: "prod"})
	if len(active) != 0 || len(all) != 1 {
		t.Fatalf("active=%v all=%v", active, all)
	}
}

func TestOutboxOrdering(t *testing.T) {
	ctx := context.Background()
	s := mustOpen(t)
	now := time.Now()
	for i, run := range []string{"r1", "r2", "r1", "r2", "r1"} {
		if _, err := s.Enqueue(ctx, Message{Run: run, Key: fmt.Sprintf("m%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	keys := func(ms []Message) string {
		var ks []string
		for _, m := range ms {
			ks = append(ks, m.Run+":"+m.Key)
		}
		return strings.Join(ks, ",")
	}
	pending := func() []Message {
		t.Helper()
		p, err := s.Pending(ctx, now, 0)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	if got := keys(pending()); got != "r1:m0,r2:m1" {
		t.Fatalf("pending = %s", got)
	}
	// r1's head fails: it is not due for a minute, and r1's later messages wait
	// behind it; r2 is not held back.
	p := pending()
	if err := s.MarkFailed(ctx, p[0], "rate limited", now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkDelivered(ctx, p[1], &MessageRef{Channel: "C1", TS: "111.1"}); err != nil {
		t.Fatal(err)
	}
	if got := keys(pending()); got != "r2:m3" {
		t.Fatalf("pending after r1 failure = %s", got)
	}
	later, _ := s.Pending(ctx, now.Add(2*time.Minute), 0)
	if got := keys(later); got != "r1:m0,r2:m3" {
		t.Fatalf("pending a minute later = %s", got)
	}
	if later[0].Attempts != 1 || later[0].LastError != "rate limited" {
		t.Fatalf("failed message = %+v", later[0])
	}
	for _, m := range later {
		if err := s.MarkDelivered(ctx, m, &MessageRef{Channel: "C1", TS: "222." + m.Key}); err != nil {
			t.Fatal(err)
		}
	}
	if got := keys(pending()); got != "r1:m2" {
		t.Fatalf("pending = %s", got)
	}
	if got, _ := s.Pending(ctx, now, 1); len(got) != 1 {
		t.Fatalf("limit ignored: %d", len(got))
	}
	ref, ok, err := s.MessageRef(ctx, "r2", "m1")
	if err != nil || !ok || ref.TS != "111.1" {
		t.Fatalf("ref = %+v %v %v", ref, ok, err)
	}
	if _, ok, _ := s.MessageRef(ctx, "r1", "m4"); ok {
		t.Fatal("undelivered message has a ref")
	}
	all, _ := s.Outbox(ctx, "r1")
	if keys(all) != "r1:m0,r1:m2,r1:m4" || !all[0].Delivered || all[0].Attempts != 2 || all[1].Delivered {
		t.Fatalf("r1 outbox = %+v", all)
	}
	if err := s.MarkDelivered(ctx, Message{Run: "r1", ID: 999}, nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("MarkDelivered unknown = %v", err)
	}
	// Pruning removes delivered messages only; refs and pending stay.
	n, err := s.PruneDelivered(ctx, time.Now().Add(time.Hour))
	if err != nil || n != 3 {
		t.Fatalf("pruned %d, %v; want the 3 delivered messages", n, err)
	}
	if got := keys(pending()); got != "r1:m2" {
		t.Fatalf("pending after prune = %s", got)
	}
	if _, ok, _ := s.MessageRef(ctx, "r2", "m1"); !ok {
		t.Fatal("prune dropped a message ref")
	}
}

func TestJournalAndSchedules(t *testing.T) {
	ctx := context.Background()
	s := mustOpen(t)
	for _, kv := range [][2]string{{"api/a", "1"}, {"api/b", "2"}, {"plugin", "p1"}} {
		if err := s.JournalPut(ctx, "r1", kv[0], kv[1]); err != nil {
			t.Fatal(err)
		}
	}
	_ = s.JournalPut(ctx, "r10", "api/z", "other run")
	if v, ok, _ := s.JournalGet(ctx, "r1", "plugin"); !ok || v != "p1" {
		t.Fatalf("get = %q %v", v, ok)
	}
	if keys, _ := s.JournalKeys(ctx, "r1", "api/"); strings.Join(keys, ",") != "api/a,api/b" {
		t.Fatalf("keys = %v", keys)
	}
	if err := s.JournalPut(ctx, "", "k", "v"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("journal without run = %v", err)
	}

	id, err := s.NewScheduleID(ctx)
	if err != nil || id != "s1" {
		t.Fatalf("id = %q %v", id, err)
	}
	due := time.Date(2026, 12, 1, 22, 0, 0, 0, time.UTC)
	sc := Schedule{ID: id, Gateway: "prod", Target: "1.0.3", Spec: "0 22 * * 6", NextDue: due, CreatedBy: "U1"}
	if err := s.PutSchedule(ctx, sc, AuditEntry{Kind: "schedule", Actor: "U1", Text: "scheduled"}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Schedule(ctx, id)
	if err != nil || !got.NextDue.Equal(due) || got.CreatedBy != "U1" || got.Created.IsZero() {
		t.Fatalf("schedule = %+v %v", got, err)
	}
	if err := s.PutSchedule(ctx, Schedule{ID: "s2"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("incomplete schedule = %v", err)
	}
	if err := s.DeleteSchedule(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSchedule(ctx, id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete = %v", err)
	}
	if all, _ := s.Schedules(ctx); len(all) != 0 {
		t.Fatalf("schedules = %v", all)
	}
}
