package runner

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/kongbot/kongbot/steps"
	"github.com/kongbot/kongbot/store"
)

// BenchmarkDurableTransitions measures one durable transition end to end:
// load the run and its journal, apply the engine's pure transition, and
// commit the run, its audit entry and its outbox message in one fsynced
// bbolt transaction (NoSync=false). The event is a re-inspection with a new
// fingerprint while the run awaits approval, so every transition changes the
// run, appends to the audit chain and queues an approval request, and none
// runs a side effect.
func BenchmarkDurableTransitions(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	st, err := store.Open(filepath.Join(dir, "kongbot.db"), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	w := newWorld(dir, "")
	r, err := New(Options{Store: st, Kong: w, Traffic: w, Rules: testRules()})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	plan, _ := steps.PlanPath("0.13.1", "0.14.1")
	inv, _ := w.Inspect(ctx, "prod")
	run, err := r.Start(ctx, steps.NewRun("r1", "prod", requester, "C0RUNS", plan, inv, false, time.Now()))
	if err != nil {
		b.Fatal(err)
	}
	// provision (manual, Done) -> snapshot -> the outage group's approval.
	if run, err = r.Send(ctx, "r1", steps.Event{Kind: steps.EvMarkDone, Step: run.Current, User: operator}); err != nil {
		b.Fatal(err)
	}
	if run.Status != steps.RunAwaitingApproval {
		b.Fatalf("run is %s at %s, want awaiting approval", run.Status, run.Current)
	}
	lat := make([]time.Duration, 0, b.N)
	i := 0
	start := time.Now()
	for b.Loop() {
		i++
		t0 := time.Now()
		if _, err := r.Send(ctx, "r1", steps.Event{Kind: steps.EvReinspect, Fingerprint: fmt.Sprintf("fp-%d", i)}); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	elapsed := time.Since(start)
	slices.Sort(lat)
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "transitions/s")
	b.ReportMetric(float64(lat[len(lat)*50/100].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[min(len(lat)-1, len(lat)*99/100)].Microseconds())/1000, "p99-ms")
}
