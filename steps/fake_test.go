package steps

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// fakeGateway stands for the kong and traffic adapters in these pure-core
// tests: an in-memory gateway whose state the Do functions change and the
// Verify functions read back, with the same refusals the real one has.
type fakeGateway struct {
	name     string
	from     string
	started  map[Generation]bool // nodes answering, per generation
	config   map[Generation]bool // nodes configured, per generation
	schema   SchemaState
	apis     int
	services int
	plugins  map[string]int
	term     bool
	newPct   map[string]int // traffic share of the new generation, per hop
	hop      string         // hop whose weights VerifyWeights reads
	calls    map[string]int // calls per operation, e.g. "migrate 0.14.1 up"
	failNext map[string]error
	pauseAt  string // Shift returns a Pause once when set
	// snapshots are the archives Snapshot wrote, with their rows per table.
	snapshots map[string]map[string]int64
}

func newFakeGateway(from string) *fakeGateway {
	g := &fakeGateway{
		name: "prod", from: from,
		started: map[Generation]bool{Generation(from): true},
		config:  map[Generation]bool{Generation(from): true, gen0141: true, gen103: true},
		apis:    2,
		plugins: map[string]int{"key-auth": 2, "okta-auth": 1},
		newPct:  map[string]int{},
		calls:   map[string]int{},
	}
	switch {
	case strings.HasPrefix(from, "0.13."):
		g.schema = Schema013
	case strings.HasPrefix(from, "0.14."):
		g.schema = Schema014
	default:
		g.schema = Schema10
	}
	return g
}

func (g *fakeGateway) fail(op string) error {
	g.calls[op]++
	if err, ok := g.failNext[op]; ok {
		delete(g.failNext, op)
		return err
	}
	return nil
}

func (g *fakeGateway) Inspect(ctx context.Context, gw string) (Inventory, error) {
	if err := g.fail("inspect"); err != nil {
		return Inventory{}, err
	}
	inv := Inventory{Gateway: gw, Schema: g.schema, Counts: Counts{APIs: g.apis, Services: g.services, Plugins: g.plugins}, ReadAt: time.Now()}
	for _, gen := range []Generation{Generation(g.from), gen0141, gen103} {
		if !g.config[gen] || slices.ContainsFunc(inv.Nodes, func(n Node) bool { return n.Generation == gen }) {
			continue
		}
		for i := 1; i <= 2; i++ {
			n := Node{Name: fmt.Sprintf("kong-%s-%d", gen, i), Generation: gen}
			if g.started[gen] {
				n.Reachable, n.Version, n.DatabaseOK = true, string(gen), true
				n.Available = append(slices.Clone(bundled014), "okta-auth")
			} else {
				n.Error = "connection refused"
			}
			inv.Nodes = append(inv.Nodes, n)
		}
	}
	return inv, nil
}

func (g *fakeGateway) Migrate(ctx context.Context, gw, target string, verb MigrationVerb, out Sink) (MigrationResult, error) {
	op := fmt.Sprintf("migrate %s %s", target, verb)
	if err := g.fail(op); err != nil {
		return MigrationResult{}, err
	}
	switch {
	case target == "0.14.1" && verb == MigrateUp:
		if g.schema == Schema013 {
			g.schema = Schema014
		}
	case target == "1.0.3" && verb == MigrateUp:
		if g.apis > 0 {
			return MigrationResult{ExitCode: 1, Schema: g.schema, Refusal: "apis-present"}, nil
		}
		if g.schema != Schema014 {
			return MigrationResult{ExitCode: 1, Schema: g.schema}, nil
		}
		g.schema = Schema10Pending
	case target == "1.0.3" && verb == MigrateFinish:
		if g.schema == Schema10Pending {
			g.schema = Schema10
		}
	default:
		return MigrationResult{}, fmt.Errorf("fake: unexpected migration %s", op)
	}
	return MigrationResult{Schema: g.schema}, nil
}

func (g *fakeGateway) EnableTermination(ctx context.Context, gw string, j Journal) (string, error) {
	if err := g.fail("termination on"); err != nil {
		return "", err
	}
	g.term = true
	return "plugin-1", j.Put("termination.plugin", "plugin-1")
}

func (g *fakeGateway) DisableTermination(ctx context.Context, gw string, j Journal) error {
	if err := g.fail("termination off"); err != nil {
		return err
	}
	g.term = false
	return nil
}

func (g *fakeGateway) VerifyTermination(ctx context.Context, gw string, want bool) (Check, error) {
	if g.term == want {
		return Check{OK: true}, nil
	}
	return Check{Missing: []string{fmt.Sprintf("termination is %v", g.term)}}, nil
}

func (g *fakeGateway) PlanConversion(ctx context.Context, gw string) (ConversionPlan, error) {
	g.calls["plan conversion"]++
	var p ConversionPlan
	for i := 0; i < g.apis; i++ {
		p.Items = append(p.Items, ConversionItem{API: fmt.Sprintf("api%d", i), Service: fmt.Sprintf("api%d", i), Route: "paths=/x"})
	}
	return p, nil
}

func (g *fakeGateway) Convert(ctx context.Context, gw string, j Journal, out Sink) (Check, error) {
	if err := g.fail("convert"); err != nil {
		return Check{}, err
	}
	if _, ok := j.Get("converted"); !ok {
		g.services += g.apis
	}
	return Check{OK: true}, j.Put("converted", "yes")
}

func (g *fakeGateway) VerifyConversion(ctx context.Context, gw string, j Journal) (Check, error) {
	_, ok := j.Get("converted")
	return Check{OK: ok}, nil
}

func (g *fakeGateway) DeleteAPIs(ctx context.Context, gw string, j Journal, out Sink) error {
	if err := g.fail("delete apis"); err != nil {
		return err
	}
	g.apis = 0
	return nil
}

func (g *fakeGateway) Smoke(ctx context.Context, gw string, gen Generation) (Check, error) {
	g.calls["smoke"]++
	if !g.started[gen] || g.term {
		return Check{Missing: []string{"probe /test: 503"}}, nil
	}
	return Check{OK: true}, nil
}

func (g *fakeGateway) Snapshot(ctx context.Context, gw, label string) (string, error) {
	if err := g.fail("snapshot"); err != nil {
		return "", err
	}
	path := "/var/backups/" + label + ".dump"
	if g.snapshots == nil {
		g.snapshots = map[string]map[string]int64{}
	}
	g.snapshots[path] = map[string]int64{"apis": int64(g.apis), "services": int64(g.services), "schema_migrations": 17}
	return path, nil
}

func (g *fakeGateway) VerifySnapshot(ctx context.Context, gw, archive string) (SnapshotSummary, error) {
	if err := g.fail("verify snapshot"); err != nil {
		return SnapshotSummary{}, err
	}
	tables, ok := g.snapshots[archive]
	if !ok {
		return SnapshotSummary{}, fmt.Errorf("snapshot archive %s does not exist", archive)
	}
	sum := SnapshotSummary{Archive: archive, Tables: map[string]int64{}, Bytes: 4096}
	for t, n := range tables {
		sum.Tables[t] = n
		sum.Rows += n
	}
	return sum, nil
}

func (g *fakeGateway) Shift(ctx context.Context, gw, hop string, j Journal, out Sink) (Check, error) {
	if err := g.fail("shift " + hop); err != nil {
		return Check{}, err
	}
	g.hop = hop
	if g.pauseAt == hop {
		g.pauseAt = ""
		g.newPct[hop] = 25
		if _, answered := j.Get("shift.25"); !answered {
			return Check{Pause: &Pause{Kind: PauseApproval, Key: "shift.25", Message: "25% baked; go on to 50%?", Choices: []Choice{ChoiceApprove, ChoiceAbort}}}, nil
		}
	}
	g.newPct[hop] = 100
	return Check{OK: true}, nil
}

func (g *fakeGateway) RollBack(ctx context.Context, gw string, j Journal, out Sink) error {
	if err := g.fail("rollback traffic"); err != nil {
		return err
	}
	g.newPct[g.hop] = 0
	return nil
}

func (g *fakeGateway) VerifyWeights(ctx context.Context, gw string, want int) (Check, error) {
	if g.newPct[g.hop] == want {
		return Check{OK: true}, nil
	}
	return Check{Missing: []string{fmt.Sprintf("new share %d%%, want %d%%", g.newPct[g.hop], want)}}, nil
}

func (g *fakeGateway) VerifyDecommissioned(ctx context.Context, gw string) (Check, error) {
	if g.newPct[g.hop] != 100 {
		return Check{Missing: []string{"old generation still gets traffic"}}, nil
	}
	return Check{OK: true}, nil
}

var (
	_ Kong    = (*fakeGateway)(nil)
	_ Traffic = (*fakeGateway)(nil)
)

// mapJournal writes straight into the run the harness holds, as the store's
// journal writes into the stored run.
type mapJournal struct{ h *harness }

func (j mapJournal) Get(k string) (string, bool) { v, ok := j.h.run.Journal[k]; return v, ok }
func (j mapJournal) Put(k, v string) error {
	if j.h.run.Journal == nil {
		j.h.run.Journal = map[string]string{}
	}
	j.h.run.Journal[k] = v
	return nil
}
func (j mapJournal) PutMany(kv map[string]string) error {
	for k, v := range kv {
		_ = j.Put(k, v)
	}
	return nil
}
func (j mapJournal) Keys(prefix string) []string {
	var out []string
	for k := range j.h.run.Journal {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

type discard struct{}

func (discard) Line(string, string) {}

// harness is a minimal synchronous runner: it applies events, then carries
// out the effects in order, feeding outcomes back as events.
type harness struct {
	t        *testing.T
	run      Run
	rules    ApprovalRules
	gw       *fakeGateway
	kong     Kong // the Kong port handed to steps; gw unless a test wraps it
	now      time.Time
	log      []Effect // every effect, in order
	timers   []Effect
	released int
	// onManual is what people do when a manual step is posted.
	onManual map[string]func()
}

func newHarness(t *testing.T, from, target string) *harness {
	t.Helper()
	p, err := PlanPath(from, target)
	if err != nil {
		t.Fatalf("PlanPath(%s, %s): %v", from, target, err)
	}
	gw := newFakeGateway(from)
	inv, _ := gw.Inspect(context.Background(), "prod")
	h := &harness{t: t, rules: DefaultRules(), gw: gw, now: time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC), onManual: map[string]func(){}}
	h.run = NewRun("r1", "prod", "UREQ", "C1", p, inv, false, h.now)
	return h
}

func (h *harness) env() *Env {
	var k Kong = h.gw
	if h.kong != nil {
		k = h.kong
	}
	return &Env{Gateway: "prod", Kong: k, Traffic: h.gw, Journal: mapJournal{h}, Out: discard{}, Now: func() time.Time { return h.now }}
}

// send applies ev and runs every resulting effect to quiescence.
func (h *harness) send(ev Event) error {
	h.t.Helper()
	h.now = h.now.Add(time.Second)
	next, effs, err := Transition(h.run, ev, h.rules, h.now)
	if err != nil {
		return err
	}
	h.run = next
	for _, e := range effs {
		if e.RunID != h.run.ID {
			h.t.Fatalf("effect %+v has run ID %q, want %q", e, e.RunID, h.run.ID)
		}
		h.log = append(h.log, e)
		if err := h.do(e); err != nil {
			h.t.Fatalf("effect %+v: %v", e, err)
		}
	}
	return nil
}

func (h *harness) must(ev Event) {
	h.t.Helper()
	if err := h.send(ev); err != nil {
		h.t.Fatalf("event %+v refused: %v (run %s at %s)", ev, err, h.run.Status, h.run.Current)
	}
}

func (h *harness) do(e Effect) error {
	ctx := context.Background()
	p, _ := PlanPath(h.run.From, h.run.Target)
	s, _ := p.Step(e.Step)
	switch e.Kind {
	case EffExecute:
		if s.Do != nil {
			if err := s.Do(ctx, h.env()); err != nil {
				ev := Event{Kind: EvStepFailed, Step: s.ID, Attempt: e.Attempt, Err: err.Error()}
				if c, ok := CheckOf(err); ok {
					ev.Check = &c
				}
				return h.send(ev)
			}
		}
		c, err := s.Verify(ctx, h.env())
		if err != nil {
			return h.send(Event{Kind: EvStepFailed, Step: s.ID, Attempt: e.Attempt, Err: err.Error()})
		}
		if !c.OK {
			return h.send(Event{Kind: EvStepFailed, Step: s.ID, Attempt: e.Attempt, Check: &c})
		}
		return h.send(Event{Kind: EvStepSucceeded, Step: s.ID, Attempt: e.Attempt, Check: &c})
	case EffVerify:
		c, err := s.Verify(ctx, h.env())
		ev := Event{Kind: EvVerified, Step: s.ID, Check: &c}
		if err != nil {
			ev.Err = err.Error()
		}
		return h.send(ev)
	case EffPost:
		if e.Message == MsgManual {
			if f := h.onManual[e.Step]; f != nil {
				f()
			}
		}
	case EffTimer:
		h.timers = append(h.timers, e)
	case EffReleaseLock:
		h.released++
	case EffRollback:
		var err error
		switch e.Rollback {
		case RollbackRemoveTermination:
			err = h.gw.DisableTermination(ctx, "prod", mapJournal{h})
		case RollbackEmergencyStop:
			_, err = h.gw.EnableTermination(ctx, "prod", mapJournal{h})
		case RollbackTrafficBack:
			err = h.gw.RollBack(ctx, "prod", mapJournal{h}, discard{})
		}
		ev := Event{Kind: EvRollbackDone, Choice: e.Rollback}
		if err != nil {
			ev.Err = err.Error()
		}
		return h.send(ev)
	}
	return nil
}

// approveAll gives the current step the approvals its rule needs, from
// approvers who are not the requester.
func (h *harness) approveAll() {
	h.t.Helper()
	step := h.run.Current
	for _, u := range []string{"ULEAD1", "ULEAD2", "ULEAD3"} {
		if h.run.Status != RunAwaitingApproval || h.run.Current != step {
			return
		}
		h.must(Event{Kind: EvApprove, Step: step, User: u, Eligible: true, Fingerprint: h.run.Fingerprint})
	}
}

// posts lists the steps for which a message of kind was posted or updated.
func (h *harness) posts(kind MessageKind) []string {
	var out []string
	for _, e := range h.log {
		if (e.Kind == EffPost || e.Kind == EffUpdate) && e.Message == kind {
			out = append(out, e.Step)
		}
	}
	return out
}
