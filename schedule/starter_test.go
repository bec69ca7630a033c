package schedule

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kongbot/kongbot/steps"
)

type planner struct{}

func (planner) Plan(_ context.Context, gateway, target string) (steps.Plan, steps.Inventory, error) {
	p, err := steps.PlanPath("0.14.1", target)
	return p, steps.Inventory{Gateway: gateway, Schema: steps.Schema014}, err
}

// PlanStarter opens a scheduled run on the runner's own path: a stored run
// of the scheduler's creator, holding the gateway's lock; a second one is
// refused while the first holds it.
func TestPlanStarterOpensARunThroughTheRunner(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, fri, nil)
	ps := PlanStarter{Planner: planner{}, Runner: e.runner, Store: e.st, Now: e.clock.Now}
	e.sched.o.Starter = ps
	if _, err := e.sched.Schedule(ctx, "UOPS", "C1", at(fri.Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sched.Schedule(ctx, "UOPS", "C1", at(fri.Add(2*time.Hour))); err != nil {
		t.Fatal(err)
	}
	e.clock.Set(fri.Add(time.Hour))
	e.tick()
	rec, err := e.st.Run(ctx, "r1")
	if err != nil || rec.Requester != "UOPS" || rec.Gateway != "prod" {
		t.Fatalf("run %+v %v", rec, err)
	}
	if !hasAudit(e.audit("r1"), "run-created", "UOPS asked to upgrade prod from 0.14.1 to 1.0.3") {
		t.Errorf("audit %+v", e.audit("r1"))
	}
	locks, _ := e.st.Locks(ctx)
	if len(locks) != 1 || locks[0].Run != "r1" {
		t.Fatalf("locks %+v", locks)
	}
	e.clock.Set(fri.Add(2 * time.Hour))
	if err := e.sched.Tick(ctx); err == nil || !strings.Contains(err.Error(), "gateway prod is being upgraded by run r1 (started by <@UOPS>)") {
		t.Fatalf("second run: %v", err)
	}
	if sc, _ := e.st.Schedule(ctx, "s2"); sc.State != StateFailed {
		t.Errorf("s2 %+v", sc)
	}
	if _, err := e.st.Run(ctx, "r2"); err == nil {
		t.Error("a refused run was stored")
	}
}

// Run ticks at once and when kicked, without waiting for MaxSleep.
func TestRunTicks(t *testing.T) {
	e := newEnv(t, fri, func(o *Options) { o.MaxSleep = time.Hour })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.sched.Run(ctx) }()
	if _, err := e.sched.Schedule(context.Background(), "UOPS", "C1", at(fri.Add(time.Minute))); err != nil {
		t.Fatal(err)
	}
	e.clock.Set(fri.Add(time.Minute))
	e.sched.kick()
	deadline := time.Now().Add(10 * time.Second)
	for len(e.starter.started()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		e.sched.kick()
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := e.starter.started(); len(got) != 1 {
		t.Fatalf("started %v", got)
	}
}
