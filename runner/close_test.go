package runner

import (
	"context"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kongbot/kongbot/steps"
	"github.com/kongbot/kongbot/store"
)

// TestCloseWaitsForATimerEventInFlight: a timer event already being sent
// when Close is called finishes before Close returns, so the owner can
// close the store right after.
func TestCloseWaitsForATimerEventInFlight(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "kongbot.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	w := newWorld(dir, "")
	rules := testRules()
	rules.RemindAfter = time.Millisecond // the approval reminder fires at once
	inFlight, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	var finished atomic.Bool
	block := func(kind steps.EventKind) {
		if kind != steps.EvTimer {
			return
		}
		once.Do(func() {
			close(inFlight)
			<-release
			finished.Store(true)
		})
	}
	r, err := New(Options{Store: st, Kong: w, Traffic: w, Rules: rules, Hooks: Hooks{
		AfterCommit: func(_ steps.Run, ev steps.Event) { block(ev.Kind) },
	}})
	if err != nil {
		t.Fatal(err)
	}
	plan, err := steps.PlanPath("0.13.1", "0.14.1")
	if err != nil {
		t.Fatal(err)
	}
	inv, _ := w.Inspect(context.Background(), "prod")
	run, err := r.Start(context.Background(), steps.NewRun("r1", "prod", requester, "C0RUNS", plan, inv, false, time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	if run, err = r.Send(context.Background(), "r1", steps.Event{Kind: steps.EvMarkDone, Step: run.Current, User: operator}); err != nil {
		t.Fatal(err)
	}
	if run.Status != steps.RunAwaitingApproval {
		t.Fatalf("run is %s at %s, want waiting for the outage approval", run.Status, run.Current)
	}
	select {
	case <-inFlight:
	case <-time.After(30 * time.Second):
		t.Fatal("no timer event was sent")
	}
	go func() {
		time.Sleep(100 * time.Millisecond)
		close(release)
	}()
	r.Close()
	if !finished.Load() {
		t.Fatal("Close returned while a timer event was still being sent")
	}
}
