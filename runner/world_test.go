package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/kongbot/kongbot/steps"
)

// world is a gateway on disk for the runner tests: its state survives the
// process (the crash test kills and restarts it), every side effect is
// appended to a ledger opened O_APPEND|O_SYNC so the parent process can
// count them, and named crash points stop the process mid-effect.
type world struct {
	dir     string
	crashAt string // the crash point that blocks this process, if reached

	mu sync.Mutex
}

type worldState struct {
	Schema      steps.SchemaState `json:"schema"`
	Started014  bool              `json:"started_014"`
	OldStopped  bool              `json:"old_stopped"`
	Termination string            `json:"termination"` // plugin ID, "" when off
	Plugins     int               `json:"plugins"`     // plugin IDs handed out
	NewPct      int               `json:"new_pct"`
}

func newWorld(dir, crashAt string) *world { return &world{dir: dir, crashAt: crashAt} }

func (w *world) load() worldState {
	s := worldState{Schema: steps.Schema013}
	if b, err := os.ReadFile(filepath.Join(w.dir, "world.json")); err == nil {
		if err := json.Unmarshal(b, &s); err != nil {
			panic(err)
		}
	}
	return s
}

// save writes the state atomically and durably: the world is as crash-safe
// as a real gateway's datastore would be.
func (w *world) save(s worldState) {
	b, _ := json.Marshal(s)
	tmp := filepath.Join(w.dir, "world.json.tmp")
	f, err := os.Create(tmp)
	if err != nil {
		panic(err)
	}
	if _, err := f.Write(b); err != nil {
		panic(err)
	}
	if err := f.Sync(); err != nil {
		panic(err)
	}
	f.Close()
	if err := os.Rename(tmp, filepath.Join(w.dir, "world.json")); err != nil {
		panic(err)
	}
}

// effect appends one line to the ledger, synchronously.
func (w *world) effect(name string) {
	f, err := os.OpenFile(filepath.Join(w.dir, "ledger"), os.O_WRONLY|os.O_CREATE|os.O_APPEND|os.O_SYNC, 0o600)
	if err != nil {
		panic(err)
	}
	defer f.Close()
	if _, err := fmt.Fprintln(f, name); err != nil {
		panic(err)
	}
}

// crash blocks the process forever at the named point, after telling the
// parent (marker file) that it is there; the parent then SIGKILLs it.
func (w *world) crash(point string) {
	if w.crashAt == "" || w.crashAt != point {
		return
	}
	if err := os.WriteFile(filepath.Join(w.dir, "crashed-at"), []byte(point), 0o600); err != nil {
		panic(err)
	}
	for {
		time.Sleep(time.Hour)
	}
}

func ledgerCounts(dir string) map[string]int {
	b, _ := os.ReadFile(filepath.Join(dir, "ledger"))
	out := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l != "" {
			out[l]++
		}
	}
	return out
}

// people does a manual step as people would.
func (w *world) people(step string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.load()
	switch step {
	case "hop1.start-new-cluster":
		s.Started014 = true
	case "hop1.decommission-old":
		s.OldStopped = true
	}
	w.save(s)
}

var avail = []string{"key-auth", "request-termination", "okta-auth"}

func (w *world) Inspect(ctx context.Context, gw string) (steps.Inventory, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.load()
	inv := steps.Inventory{Gateway: gw, Schema: s.Schema, ReadAt: time.Now(),
		Counts: steps.Counts{APIs: 1, Plugins: map[string]int{"key-auth": 1, "okta-auth": 1}}}
	for i := 1; i <= 2; i++ {
		n := steps.Node{Name: fmt.Sprintf("kong-old-%d", i), Generation: "0.13.1"}
		if !s.OldStopped {
			n.Reachable, n.Version, n.DatabaseOK, n.Available = true, "0.13.1", true, avail
		}
		inv.Nodes = append(inv.Nodes, n)
		m := steps.Node{Name: fmt.Sprintf("kong-new-%d", i), Generation: "0.14.1"}
		if s.Started014 {
			m.Reachable, m.Version, m.DatabaseOK, m.Available = true, "0.14.1", true, avail
		} else {
			m.Error = "connection refused"
		}
		inv.Nodes = append(inv.Nodes, m)
	}
	return inv, nil
}

func (w *world) Migrate(ctx context.Context, gw, target string, verb steps.MigrationVerb, out steps.Sink) (steps.MigrationResult, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if target != "0.14.1" || verb != steps.MigrateUp {
		return steps.MigrationResult{}, fmt.Errorf("world: unexpected migration %s %s", target, verb)
	}
	// Every call is counted, not only those that change the schema: a Do
	// run twice shows here even when the second run finds nothing to do.
	w.effect("call migrate-0.14.1-up")
	out.Line("stdout", "migrating core on database kong...")
	w.crash("migrate:before")
	s := w.load()
	if s.Schema == steps.Schema013 {
		s.Schema = steps.Schema014
		w.save(s)
		w.effect("migrate-0.14.1-up")
	}
	out.Line("stdout", "18 migrations ran")
	w.crash("migrate:after")
	return steps.MigrationResult{Schema: s.Schema, LogLines: 2}, nil
}

func (w *world) EnableTermination(ctx context.Context, gw string, j steps.Journal) (string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if id, ok := j.Get("termination.plugin"); ok {
		return id, nil
	}
	s := w.load()
	if s.Termination == "" { // the real adapter finds its own plugin by tag
		s.Plugins++
		s.Termination = fmt.Sprintf("plugin-%d", s.Plugins)
		w.save(s)
		w.effect("termination-create")
	}
	w.crash("termination:after")
	return s.Termination, j.Put("termination.plugin", s.Termination)
}

func (w *world) DisableTermination(ctx context.Context, gw string, j steps.Journal) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.load()
	if s.Termination != "" {
		s.Termination = ""
		w.save(s)
		w.effect("termination-delete")
	}
	return nil
}

func (w *world) VerifyTermination(ctx context.Context, gw string, want bool) (steps.Check, error) {
	on := w.load().Termination != ""
	if on == want {
		return steps.Check{OK: true}, nil
	}
	return steps.Check{Missing: []string{fmt.Sprintf("termination on=%v, want %v", on, want)}}, nil
}

var errUnused = errors.New("world: not used by hop 1")

func (w *world) PlanConversion(context.Context, string) (steps.ConversionPlan, error) {
	return steps.ConversionPlan{}, errUnused
}
func (w *world) Convert(context.Context, string, steps.Journal, steps.Sink) (steps.Check, error) {
	return steps.Check{}, errUnused
}
func (w *world) VerifyConversion(context.Context, string, steps.Journal) (steps.Check, error) {
	return steps.Check{}, errUnused
}
func (w *world) DeleteAPIs(context.Context, string, steps.Journal, steps.Sink) error {
	return errUnused
}

func (w *world) Smoke(ctx context.Context, gw string, gen steps.Generation) (steps.Check, error) {
	s := w.load()
	if s.Started014 && s.Termination == "" {
		return steps.Check{OK: true}, nil
	}
	return steps.Check{Missing: []string{"GET /test through kong-new-1: 503"}}, nil
}

// Snapshot writes a small archive: the rows per table, read back by
// VerifySnapshot, so a missing or damaged file fails the step's Verify.
func (w *world) Snapshot(ctx context.Context, gw, label string) (string, error) {
	w.effect("snapshot")
	path := filepath.Join(w.dir, label+".dump")
	b, _ := json.Marshal(map[string]int64{"apis": 1, "plugins": int64(w.load().Plugins)})
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return "", err
	}
	return path, nil
}

func (w *world) VerifySnapshot(ctx context.Context, gw, archive string) (steps.SnapshotSummary, error) {
	b, err := os.ReadFile(archive)
	if err != nil {
		return steps.SnapshotSummary{}, fmt.Errorf("snapshot archive %s cannot be read: %w", archive, err)
	}
	sum := steps.SnapshotSummary{Archive: archive, Bytes: int64(len(b))}
	if err := json.Unmarshal(b, &sum.Tables); err != nil {
		return steps.SnapshotSummary{}, fmt.Errorf("snapshot archive %s is corrupted: %w", archive, err)
	}
	for _, n := range sum.Tables {
		sum.Rows += n
	}
	return sum, nil
}

func (w *world) Shift(ctx context.Context, gw, hop string, j steps.Journal, out steps.Sink) (steps.Check, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.load()
	if s.NewPct != 100 {
		s.NewPct = 100
		w.save(s)
		w.effect("traffic-shift")
	}
	return steps.Check{OK: true}, nil
}

func (w *world) RollBack(ctx context.Context, gw string, j steps.Journal, out steps.Sink) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.load()
	if s.NewPct != 0 {
		s.NewPct = 0
		w.save(s)
		w.effect("traffic-back")
	}
	return nil
}

func (w *world) VerifyWeights(ctx context.Context, gw string, want int) (steps.Check, error) {
	if got := w.load().NewPct; got != want {
		return steps.Check{Missing: []string{fmt.Sprintf("new generation has %d%%, want %d%%", got, want)}}, nil
	}
	return steps.Check{OK: true}, nil
}

func (w *world) VerifyDecommissioned(ctx context.Context, gw string) (steps.Check, error) {
	if w.load().NewPct != 100 {
		return steps.Check{Missing: []string{"old generation still has traffic"}}, nil
	}
	return steps.Check{OK: true}, nil
}

var (
	_ steps.Kong    = (*world)(nil)
	_ steps.Traffic = (*world)(nil)
)
