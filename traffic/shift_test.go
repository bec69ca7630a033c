package traffic_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kongbot/kongbot/internal/loadgen"
	"github.com/kongbot/kongbot/steps"
	"github.com/kongbot/kongbot/traffic"
)

// hop2 is a gradual plan with short bakes, for tests.
func hop2(bake time.Duration, approvals ...int) traffic.Plan {
	return traffic.GradualPlan(bake, []int{5, 25, 50, 100}, approvals...)
}

func newTraffic(t *testing.T, g *traffic.Gateway) *traffic.Traffic {
	t.Helper()
	tr, err := traffic.New(traffic.Options{Gateways: map[string]*traffic.Gateway{"prod": g}})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// load runs the generator until stop is called, and returns its result.
func load(t testing.TB, url string, rate float64) (stop func() loadgen.Result) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan loadgen.Result, 1)
	go func() {
		res, err := loadgen.Run(ctx, loadgen.Options{URL: url, Rate: rate, Total: 200_000, Timeout: 10 * time.Second})
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	return func() loadgen.Result { cancel(); return <-done }
}

// waitFor polls cond for up to 10 s; the world (HAProxy closing sessions)
// settles asynchronously.
func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	var last string
	for range 200 {
		ok, msg := cond()
		if ok {
			return
		}
		last = msg
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: %s", what, last)
}

// TestShiftHop2NoFailedRequests is the acceptance test of issue 6: a full
// hop-2 shift 0 → 5 → 25 → 50 → 100 % through real HAProxy under a steady
// 300 requests/s loses no request, passes every gate, drains the old
// cluster, and the decommission check passes.
func TestShiftHop2NoFailedRequests(t *testing.T) {
	r := newRig(t)
	g := &traffic.Gateway{
		Backend: r.hap,
		Plans:   map[string]traffic.Plan{"hop2": hop2(1500 * time.Millisecond)},
		Gates:   traffic.Gates{MinRequests: 10, Interval: 250 * time.Millisecond},
		Probes:  []traffic.Probe{{Name: "new1", URL: r.new.nodes[0].srv.URL + "/test", WantStatus: 200}},
	}
	tr := newTraffic(t, g)
	ctx := context.Background()

	stop := load(t, r.proc.FrontURL+"/test", 300)
	time.Sleep(300 * time.Millisecond) // traffic flowing before the first move
	out := &sink{t: t}
	j := newJournal()
	c, err := shiftThrough(ctx, t, tr, "hop2", j, out)
	time.Sleep(300 * time.Millisecond) // and after the last
	res := stop()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("load: %s", res)
	if !c.OK {
		t.Fatalf("shift not OK: %v %+v", c.Missing, c.Pause)
	}
	if res.Failed != 0 {
		t.Fatalf("%d of %d requests failed during the shift: %s", res.Failed, res.Sent, res)
	}
	if res.Sent < 1500 {
		t.Fatalf("only %d requests sent; the load did not cover the shift", res.Sent)
	}
	if n := out.count(" of 4: weights"); n != 4 {
		t.Fatalf("%d moves reported, want 4: %q", n, out.all())
	}
	if v, _ := j.Get("traffic/hop2/good"); v != "100" {
		t.Fatalf("journal good stage = %q, want 100", v)
	}
	// Both new servers served; after the shift the old ones stopped.
	for _, u := range r.new.nodes {
		if u.n.Load() == 0 {
			t.Fatalf("new server %s got no traffic", u.addr())
		}
	}
	vc, err := tr.VerifyWeights(ctx, "prod", 100)
	if err != nil || !vc.OK {
		t.Fatalf("VerifyWeights(100) = %+v, %v", vc, err)
	}
	waitFor(t, "old cluster decommissioned", func() (bool, string) {
		dc, err := tr.VerifyDecommissioned(ctx, "prod")
		if err != nil {
			return false, err.Error()
		}
		return dc.OK, strings.Join(dc.Missing, "; ")
	})
	// Shift again is a no-op that reports success (idempotent after a crash).
	c, err = tr.Shift(ctx, "prod", "hop2", j, out)
	if err != nil || !c.OK {
		t.Fatalf("second Shift = %+v, %v", c, err)
	}
}

// TestShiftGateBreachRollsBack: the new cluster starts failing 20 % of its
// requests after the first stage passed; the second stage stops before its
// bake ends, the weights go back to old 95 / new 5, and the Pause names the
// figures. Resume after the fix completes the shift.
func TestShiftGateBreachRollsBack(t *testing.T) {
	r := newRig(t)
	const bake = 10 * time.Second
	plan := hop2(bake)
	plan.Stages[0].Bake = time.Second
	g := &traffic.Gateway{
		Backend: r.hap,
		Plans:   map[string]traffic.Plan{"hop2": plan},
		Gates:   traffic.Gates{MinRequests: 10, Interval: 250 * time.Millisecond},
	}
	tr := newTraffic(t, g)
	ctx := context.Background()
	stop := load(t, r.proc.FrontURL+"/test", 200)
	defer stop()

	out := &sink{t: t}
	out.on = func(line string) {
		if strings.HasPrefix(line, "stage 2 of 4: weights") {
			r.new.fail(20)
		}
	}
	j := newJournal()
	c, err := shiftThrough(ctx, t, tr, "hop2", j, out)
	if err != nil {
		t.Fatal(err)
	}
	if c.OK || c.Pause == nil || c.Pause.Kind != steps.PauseBreach {
		t.Fatalf("want a breach pause, got %+v", c)
	}
	msg := c.Pause.Message
	t.Logf("breach: %s", msg)
	for _, want := range []string{"new cluster 5xx", "> max 1.0 %", "weights rolled back to old 95 / new 5"} {
		if !strings.Contains(msg, want) {
			t.Errorf("breach message %q lacks %q", msg, want)
		}
	}
	if !slicesEqual(c.Pause.Choices, []steps.Choice{steps.ChoiceResume, steps.ChoiceRollBack, steps.ChoiceAbort}) {
		t.Errorf("choices = %v", c.Pause.Choices)
	}
	window := ""
	for _, f := range c.Facts {
		if f.Name == "window" {
			window = f.Value
		}
	}
	if d, err := time.ParseDuration(window); err != nil || d >= bake {
		t.Errorf("breach window %q: want it found during the bake (< %s)", window, bake)
	}
	if vc, err := r.hap.VerifyWeights(ctx, traffic.Split(5)); err != nil || !vc.OK {
		t.Fatalf("weights after breach: %+v, %v", vc, err)
	}
	if v, _ := j.Get("traffic/hop2/good"); v != "5" {
		t.Fatalf("journal good = %q, want 5", v)
	}

	// Asked again without an answer: the same question, nothing moves.
	c2, err := tr.Shift(ctx, "prod", "hop2", j, out)
	if err != nil || c2.Pause == nil || c2.Pause.Key != c.Pause.Key {
		t.Fatalf("re-ask = %+v, %v; want the same pause %s", c2, err, c.Pause.Key)
	}

	// An answer that was not offered changes nothing.
	_ = j.Put(c.Pause.Key, string(steps.ChoiceApprove))
	if _, err := tr.Shift(ctx, "prod", "hop2", j, out); err == nil {
		t.Fatal("an answer that was not offered was accepted")
	}

	// The fix, then Resume: the shift goes on from 5 % to 100 %.
	r.new.fail(0)
	for i := range g.Plans["hop2"].Stages {
		g.Plans["hop2"].Stages[i].Bake = time.Second
	}
	out.on = nil
	_ = j.Put(c.Pause.Key, string(steps.ChoiceResume))
	c, err = shiftThrough(ctx, t, tr, "hop2", j, out)
	if err != nil || !c.OK {
		t.Fatalf("after resume: %+v, %v", c, err)
	}
	if n := out.count("stage 1 of 4: weights"); n != 1 {
		t.Errorf("stage 1 ran %d times, want once (resume starts after the last good stage)", n)
	}
	stages := 0
	for _, f := range c.Facts {
		if strings.HasPrefix(f.Name, "stage ") {
			stages++
		}
	}
	if stages != 4 {
		t.Errorf("final check reports %d stages' figures, want all 4 (also those before the pause): %+v", stages, c.Facts)
	}
}

func slicesEqual[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestShiftApprovalsAndCrashResume: a stage configured for approval returns
// a Pause instead of moving; a fresh Traffic (a restarted bot) with the same
// journal picks up from the last good stage; Roll back all puts everything
// on the old cluster.
func TestShiftApprovalsAndCrashResume(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	mk := func() *traffic.Traffic {
		return newTraffic(t, &traffic.Gateway{
			Backend: r.hap,
			Plans:   map[string]traffic.Plan{"hop2": hop2(time.Second, 25, 100)},
			// Probes alone as figures would be too few: gate on a low minimum.
			Gates: traffic.Gates{MinRequests: 5, Interval: 200 * time.Millisecond},
		})
	}
	stop := load(t, r.proc.FrontURL+"/test", 250)
	defer stop()
	out := &sink{t: t}
	j := newJournal()

	c, err := shiftThrough(ctx, t, mk(), "hop2", j, out)
	if err != nil {
		t.Fatal(err)
	}
	if c.Pause == nil || c.Pause.Kind != steps.PauseApproval || !strings.Contains(c.Pause.Message, "stage 2 of 4") {
		t.Fatalf("want approval before stage 2, got %+v", c)
	}
	if vc, _ := r.hap.VerifyWeights(ctx, traffic.Split(5)); !vc.OK {
		t.Fatalf("weights moved past the approval: %v", vc.Missing)
	}

	// The bot restarts: a new Traffic, the same journal.
	_ = j.Put(c.Pause.Key, string(steps.ChoiceApprove))
	c, err = shiftThrough(ctx, t, mk(), "hop2", j, out)
	if err != nil {
		t.Fatal(err)
	}
	if c.Pause == nil || c.Pause.Kind != steps.PauseApproval || !strings.Contains(c.Pause.Message, "stage 4 of 4") {
		t.Fatalf("want approval before stage 4, got %+v", c)
	}
	if n := out.count("stage 1 of 4: weights"); n != 1 {
		t.Fatalf("stage 1 ran %d times after the restart, want 1", n)
	}
	if vc, _ := r.hap.VerifyWeights(ctx, traffic.Split(50)); !vc.OK {
		t.Fatalf("want 50 %% before the last approval: %v", vc.Missing)
	}

	// A lead chooses Roll back all.
	_ = j.Put(c.Pause.Key, string(steps.ChoiceRollBack))
	c, err = mk().Shift(ctx, "prod", "hop2", j, out)
	if err != nil || c.OK || c.Pause != nil || !strings.Contains(strings.Join(c.Missing, " "), "rolled back") {
		t.Fatalf("after roll back all: %+v, %v", c, err)
	}
	if vc, _ := r.hap.VerifyWeights(ctx, traffic.Split(0)); !vc.OK {
		t.Fatalf("weights after roll back all: %v", vc.Missing)
	}
	if v, _ := j.Get("traffic/hop2/good"); v != "0" {
		t.Fatalf("journal good after roll back = %q", v)
	}
	// Approvals do not survive a rollback: a retry asks again.
	c, err = shiftThrough(ctx, t, mk(), "hop2", j, out)
	if err != nil || c.Pause == nil || c.Pause.Kind != steps.PauseApproval || !strings.Contains(c.Pause.Message, "stage 2 of 4") {
		t.Fatalf("retry after rollback: %+v, %v", c, err)
	}
}

// TestShiftInconclusive: with no traffic through the load balancer the gate
// cannot judge the new cluster and asks a lead, holding the weights.
func TestShiftInconclusive(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	tr := newTraffic(t, &traffic.Gateway{
		Backend: r.hap,
		Plans:   map[string]traffic.Plan{"hop2": {Stages: []traffic.Stage{{NewPct: 100, Bake: time.Second}}}},
		Gates:   traffic.Gates{Interval: 200 * time.Millisecond},
	})
	j := newJournal()
	out := &sink{t: t}
	c, err := tr.Shift(ctx, "prod", "hop2", j, out)
	if err != nil {
		t.Fatal(err)
	}
	if c.Pause == nil || c.Pause.Kind != steps.PauseInconclusive || !strings.Contains(c.Pause.Message, "too little traffic: 0 answers") {
		t.Fatalf("want inconclusive (too little traffic), got %+v", c)
	}
	if vc, _ := r.hap.VerifyWeights(ctx, traffic.Split(100)); !vc.OK {
		t.Fatalf("weights not held at 100 %%: %v", vc.Missing)
	}
	// The lead accepts: the stage counts as good, the old cluster drains.
	_ = j.Put(c.Pause.Key, string(steps.ChoiceApprove))
	c, err = tr.Shift(ctx, "prod", "hop2", j, out)
	if err != nil || !c.OK {
		t.Fatalf("after approve: %+v, %v", c, err)
	}
	dc, err := tr.VerifyDecommissioned(ctx, "prod")
	if err != nil || !dc.OK {
		t.Fatalf("decommissioned: %+v, %v", dc, err)
	}
	// RollBack puts the old cluster back in service with all the traffic.
	if err := tr.RollBack(ctx, "prod", j, out); err != nil {
		t.Fatal(err)
	}
	if vc, _ := tr.VerifyWeights(ctx, "prod", 0); !vc.OK {
		t.Fatalf("after RollBack: %v", vc.Missing)
	}
	if dc, _ := tr.VerifyDecommissioned(ctx, "prod"); dc.OK {
		t.Fatal("old cluster still reads as decommissioned after RollBack")
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	r := newRig(t)
	tests := []struct {
		name string
		gw   *traffic.Gateway
		want string
	}{
		{"no backend", &traffic.Gateway{}, "no traffic backend"},
		{"plan not ending at 100", &traffic.Gateway{Backend: r.hap, Plans: map[string]traffic.Plan{"hop2": traffic.GradualPlan(time.Second, []int{5, 50})}}, "want 100"},
		{"probe without URL", &traffic.Gateway{Backend: r.hap, Probes: []traffic.Probe{{Name: "x"}}}, "has no URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := traffic.New(traffic.Options{Gateways: map[string]*traffic.Gateway{"prod": tt.gw}})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
	tr := newTraffic(t, &traffic.Gateway{Backend: r.hap})
	if _, err := tr.Shift(context.Background(), "stage", "hop2", newJournal(), &sink{t: t}); !errors.Is(err, traffic.ErrUnknownGateway) {
		t.Fatalf("unknown gateway: %v", err)
	}
	if _, err := tr.Shift(context.Background(), "prod", "hop9", newJournal(), &sink{t: t}); !errors.Is(err, traffic.ErrUnknownHop) {
		t.Fatalf("unknown hop: %v", err)
	}
	if _, err := tr.VerifyWeights(context.Background(), "prod", 120); !errors.Is(err, traffic.ErrBadWeights) {
		t.Fatalf("bad weights: %v", err)
	}
}

// TestShiftCrashMidBake: the bot dies while stage 2 bakes (after the move,
// before the verdict). A restarted bot with the same journal runs stage 2
// again from its move, not stage 1, and finishes.
func TestShiftCrashMidBake(t *testing.T) {
	r := newRig(t)
	g := &traffic.Gateway{
		Backend: r.hap,
		Plans:   map[string]traffic.Plan{"hop2": hop2(time.Second)},
		Gates:   traffic.Gates{MinRequests: 5, Interval: 200 * time.Millisecond},
	}
	stop := load(t, r.proc.FrontURL+"/test", 250)
	defer stop()
	j := newJournal()

	ctx, crash := context.WithCancel(context.Background())
	out := &sink{t: t}
	out.on = func(line string) {
		if strings.HasPrefix(line, "stage 2 of 4: weights") {
			crash()
		}
	}
	if _, err := shiftThrough(ctx, t, newTraffic(t, g), "hop2", j, out); !errors.Is(err, context.Canceled) {
		t.Fatalf("crashed shift: err = %v", err)
	}
	good, _ := j.Get("traffic/hop2/good")
	set, _ := j.Get("traffic/hop2/set")
	if good != "5" || set != "25" {
		t.Fatalf("journal after the crash: good %q set %q, want 5 and 25", good, set)
	}

	out2 := &sink{t: t}
	c, err := shiftThrough(context.Background(), t, newTraffic(t, g), "hop2", j, out2)
	if err != nil || !c.OK {
		t.Fatalf("after restart: %+v, %v", c, err)
	}
	lines := out2.all()
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "stage 2 of 4: weights old 75 / new 25") {
		t.Fatalf("restart began with %q, want stage 2's move", lines)
	}
}

// TestShiftOutage: hop 1 moves traffic while request-termination answers
// every request with Kong's own 503. Those answers are expected and do not
// trip the gate; a new cluster that does not answer at all does.
func TestShiftOutage(t *testing.T) {
	tests := []struct {
		name      string
		breakNew  bool
		wantOK    bool
		wantBreak string
	}{
		{name: "terminated clusters", wantOK: true},
		{name: "new cluster not listening", breakNew: true, wantBreak: "new cluster connection/response errors"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			for _, c := range []*cluster{r.old, r.new} {
				for _, u := range c.nodes {
					u.terminate.Store(true)
				}
			}
			probe := traffic.Probe{Name: "new1", URL: r.new.nodes[0].srv.URL + "/test", WantStatus: 200}
			if tt.breakNew {
				for _, u := range r.new.nodes {
					u.srv.Close()
				}
				probe.URL = r.new.nodes[0].srv.URL + "/test"
			}
			tr := newTraffic(t, &traffic.Gateway{
				Backend: r.hap,
				Plans:   map[string]traffic.Plan{"hop1": traffic.FastPlan(time.Second)},
				Gates:   traffic.Gates{MinRequests: 10, Interval: 200 * time.Millisecond},
				Probes:  []traffic.Probe{probe},
			})
			stop := load(t, r.proc.FrontURL+"/test", 100)
			c, err := tr.Shift(context.Background(), "prod", "hop1", newJournal(), &sink{t: t})
			res := stop()
			t.Logf("load: %s", res)
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantOK {
				if !c.OK {
					t.Fatalf("want OK, got %+v", c)
				}
				if res.ByStatus[503] == 0 {
					t.Fatalf("no termination answers seen: %s", res)
				}
				return
			}
			if c.Pause == nil || c.Pause.Kind != steps.PauseBreach || !strings.Contains(c.Pause.Message, tt.wantBreak) ||
				!strings.Contains(c.Pause.Message, "weights rolled back to old 100 / new 0") {
				t.Fatalf("want a breach naming %q, got %+v", tt.wantBreak, c)
			}
			t.Logf("breach: %s", c.Pause.Message)
		})
	}
}

// TestHopBackends: each hop can move its own servers; the calls that are
// not told the hop use the hop last shifted, or after a restart the hop
// HopOf names.
func TestHopBackends(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	hop1, err := traffic.NewHAProxy(traffic.HAProxyOptions{Address: "unix:" + r.proc.Socket, Backend: "kong", Old: []string{"old1"}, New: []string{"new1"}})
	if err != nil {
		t.Fatal(err)
	}
	gw := func() *traffic.Gateway {
		return &traffic.Gateway{
			Backend:     r.hap,
			HopBackends: map[string]traffic.Backend{"hop1": hop1},
			Plans:       map[string]traffic.Plan{"hop1": traffic.FastPlan(500 * time.Millisecond)},
			Gates:       traffic.Gates{Interval: 100 * time.Millisecond},
		}
	}
	tr := newTraffic(t, gw())
	if c, err := tr.Shift(ctx, "prod", "hop1", newJournal(), &sink{t: t}); err != nil || !c.OK {
		t.Fatalf("shift: %+v, %v", c, err)
	}
	// hop 1 moved old1 → new1 only; old2 and new2 are as they were.
	if c, _ := r.hap.VerifyWeights(ctx, traffic.Split(0)); c.OK {
		t.Fatal("the default backend's servers all read old 100 / new 0: hop1 moved nothing")
	}
	if c, err := tr.VerifyWeights(ctx, "prod", 100); err != nil || !c.OK {
		t.Fatalf("VerifyWeights after the shift: %+v, %v", c, err)
	}
	restarted, err := traffic.New(traffic.Options{Gateways: map[string]*traffic.Gateway{"prod": gw()},
		HopOf: func(g string) (string, bool) { return "hop1", g == "prod" }})
	if err != nil {
		t.Fatal(err)
	}
	if c, err := restarted.VerifyWeights(ctx, "prod", 100); err != nil || !c.OK {
		t.Fatalf("VerifyWeights after a restart with HopOf: %+v, %v", c, err)
	}
	if c, err := restarted.VerifyDecommissioned(ctx, "prod"); err != nil || !c.OK {
		t.Fatalf("VerifyDecommissioned after a restart with HopOf: %+v, %v", c, err)
	}
	blind := newTraffic(t, gw())
	if c, _ := blind.VerifyWeights(ctx, "prod", 100); c.OK {
		t.Fatal("without HopOf a restarted Traffic cannot know the hop, yet the default backend verified")
	}
}

// shiftThrough calls Shift and, where a stage saw too little traffic,
// answers Approve as a lead would and calls it again. On a loaded machine
// the load generator can fall short of its rate; that is not what these
// tests are about. Any other pause is returned.
func shiftThrough(ctx context.Context, t testing.TB, tr *traffic.Traffic, hop string, j *memJournal, out steps.Sink) (steps.Check, error) {
	t.Helper()
	c, err := tr.Shift(ctx, "prod", hop, j, out)
	for i := 0; err == nil && i < 8 && c.Pause != nil && c.Pause.Kind == steps.PauseInconclusive &&
		strings.Contains(c.Pause.Message, "too little traffic"); i++ {
		t.Logf("too little traffic on this machine; approving as a lead would: %s", c.Pause.Message)
		_ = j.Put(c.Pause.Key, string(steps.ChoiceApprove))
		c, err = tr.Shift(ctx, "prod", hop, j, out)
	}
	return c, err
}
