package schedule

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kongbot/kongbot/runner"
	"github.com/kongbot/kongbot/steps"
	"github.com/kongbot/kongbot/store"
)

// env is a scheduler on a real store file with a real runner, a fake
// clock, and fakes only at the edges: the run starter (the bot's wiring)
// and the gateway inspector (Kong).
type env struct {
	t       testing.TB
	path    string
	clock   *FakeClock
	st      *store.Store
	runner  *runner.Runner
	sched   *Scheduler
	starter *fakeStarter
	insp    *fakeInspector
	opts    Options
}

// fri is Friday 4 Dec 2026, 00:00 UTC; the next day is a Saturday.
var fri = time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)

func newEnv(t testing.TB, at time.Time, mod func(o *Options)) *env {
	t.Helper()
	e := &env{t: t, path: filepath.Join(t.TempDir(), "kongbot.db"), clock: NewFakeClock(at),
		starter: &fakeStarter{}, insp: &fakeInspector{}}
	rules := steps.DefaultRules()
	rules.RemindAfter, rules.ExpireAfter = 30*time.Minute, 2*time.Hour
	e.opts = Options{Starter: e.starter, Inspector: e.insp, Rules: rules, Clock: e.clock, Grace: 30 * time.Minute, DefaultChannel: "CRUNS"}
	if mod != nil {
		mod(&e.opts)
	}
	e.open()
	t.Cleanup(e.close)
	return e
}

func (e *env) open() {
	e.t.Helper()
	st, err := store.Open(e.path, store.Options{Now: e.clock.Now})
	if err != nil {
		e.t.Fatal(err)
	}
	e.st = st
	r, err := runner.New(runner.Options{Store: st, Rules: e.opts.Rules, Now: e.clock.Now})
	if err != nil {
		e.t.Fatal(err)
	}
	e.runner = r
	o := e.opts
	o.Store, o.Runs = st, r
	s, err := New(o)
	if err != nil {
		e.t.Fatal(err)
	}
	e.sched = s
}

func (e *env) close() {
	if e.st == nil {
		return
	}
	e.runner.Close()
	if err := e.st.Close(); err != nil {
		e.t.Error(err)
	}
	e.st = nil
}

// restart closes everything and opens a new store, runner and scheduler
// on the same file, as a restarted bot would.
func (e *env) restart() {
	e.t.Helper()
	e.close()
	e.open()
}

func (e *env) tick() {
	e.t.Helper()
	if err := e.sched.Tick(context.Background()); err != nil {
		e.t.Fatalf("tick at %s: %v", e.clock.Now().Format(time.RFC3339), err)
	}
}

// runAt stores a run of prod 0.14.1 -> 1.0.3 waiting for the approval of
// step, asked at asked, as the runner would have left it.
func (e *env) runAt(id, step string, asked time.Time) steps.Run {
	e.t.Helper()
	return e.runOn("prod", id, step, asked)
}

// runOn is runAt on another gateway.
func (e *env) runOn(gateway, id, step string, asked time.Time) steps.Run {
	e.t.Helper()
	p, err := steps.PlanPath("0.14.1", "1.0.3")
	if err != nil {
		e.t.Fatal(err)
	}
	r := steps.NewRun(id, gateway, "UREQ", "CRUNS", p, steps.Inventory{Gateway: gateway, Schema: steps.Schema014}, false, asked)
	r.Status, r.Current, r.TimerToken, r.Seq = steps.RunAwaitingApproval, step, 1, 10
	found := false
	for i := range r.Steps {
		switch {
		case r.Steps[i].ID == step:
			r.Steps[i].Status, r.Steps[i].AskedAt = steps.StepAwaitingApproval, asked
			found = true
		case !found:
			r.Steps[i].Status = steps.StepSucceeded
		}
	}
	if !found {
		e.t.Fatalf("no step %s", step)
	}
	data, _ := json.Marshal(r)
	_, err = e.st.Commit(context.Background(), store.Change{
		Run:  &store.Run{ID: id, Gateway: gateway, Status: string(r.Status), Requester: r.Requester, Data: data},
		Lock: &store.Lock{Gateway: gateway, Run: id, Requester: r.Requester},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

func (e *env) load(id string) steps.Run {
	e.t.Helper()
	r, _, err := e.runner.Load(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

func (e *env) step(id, step string) steps.StepState {
	e.t.Helper()
	r := e.load(id)
	st, ok := r.Step(step)
	if !ok {
		e.t.Fatalf("no step %s", step)
	}
	return *st
}

// effects lists a run's queued engine messages as "post-message approval-reminder".
func (e *env) effects(run string) []string {
	e.t.Helper()
	msgs, err := e.st.Outbox(context.Background(), run)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, m := range msgs {
		if m.Kind != string(steps.EffPost) && m.Kind != string(steps.EffUpdate) {
			continue
		}
		var ef steps.Effect
		if err := json.Unmarshal(m.Payload, &ef); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s %s", ef.Kind, ef.Message))
	}
	return out
}

func count(list []string, s string) int {
	n := 0
	for _, x := range list {
		if x == s {
			n++
		}
	}
	return n
}

// texts lists the text messages queued for a run ("" for top level), with
// their channel: "CRUNS: ...".
func (e *env) texts(run string) []string {
	e.t.Helper()
	msgs, err := e.st.Outbox(context.Background(), run)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, m := range msgs {
		if m.Kind != KindText {
			continue
		}
		var p struct{ Text string }
		if err := json.Unmarshal(m.Payload, &p); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, m.Channel+": "+p.Text)
	}
	return out
}

func (e *env) audit(run string) []store.AuditEntry {
	e.t.Helper()
	a, err := e.st.Audit(context.Background(), run)
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

func hasAudit(entries []store.AuditEntry, kind, text string) bool {
	for _, a := range entries {
		if a.Kind == kind && strings.Contains(a.Text, text) {
			return true
		}
	}
	return false
}

type fakeStarter struct {
	mu   sync.Mutex
	reqs []StartRequest
	err  error
}

func (f *fakeStarter) StartRun(_ context.Context, req StartRequest) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return "", f.err
	}
	f.reqs = append(f.reqs, req)
	return fmt.Sprintf("r%d", 100+len(f.reqs)), nil
}

func (f *fakeStarter) started() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, r := range f.reqs {
		out = append(out, r.Schedule)
	}
	return out
}

// fakeInspector is the gateway as the health watch reads it.
type fakeInspector struct {
	mu    sync.Mutex
	inv   steps.Inventory
	err   error
	calls int
}

func (f *fakeInspector) Inspect(_ context.Context, gateway string) (steps.Inventory, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	inv := f.inv
	inv.Gateway = gateway
	return inv, f.err
}

func (f *fakeInspector) set(inv steps.Inventory, err error) {
	f.mu.Lock()
	f.inv, f.err = inv, err
	f.mu.Unlock()
}

func (f *fakeInspector) n() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}
