package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kongbot/kongbot/steps"
	"github.com/kongbot/kongbot/store"
)

type pending struct {
	run steps.Run
	ev  steps.Event
}

// drain carries out effects, feeding each outcome back as an event, until no
// effect produces another event.
func (r *Runner) drain(ctx context.Context, run steps.Run, effs []steps.Effect) {
	var queue []pending
	for _, e := range effs {
		if ev, ok := r.carryOut(ctx, run, e); ok {
			queue = append(queue, pending{run, ev})
		}
	}
	for len(queue) > 0 {
		q := queue[0]
		queue = queue[1:]
		next, more, _, err := r.apply(ctx, q.run.ID, q.ev)
		if err != nil {
			r.log.Error("applying outcome", "run_id", q.run.ID, "event", q.ev.Kind, "step", q.ev.Step, "err", err)
			continue
		}
		for _, e := range more {
			if ev, ok := r.carryOut(ctx, next, e); ok {
				queue = append(queue, pending{next, ev})
			}
		}
	}
}

// carryOut performs one effect and returns the event that reports its
// outcome, if it has one. Bookkeeping effects (messages, lock release) were
// already committed with the transition.
func (r *Runner) carryOut(ctx context.Context, run steps.Run, e steps.Effect) (steps.Event, bool) {
	if r.hooks.BeforeEffect != nil {
		r.hooks.BeforeEffect(run, e)
	}
	log := r.log.With("run_id", run.ID, "gateway", run.Gateway, "step", e.Step)
	switch e.Kind {
	case steps.EffExecute, steps.EffVerify:
		plan, err := steps.PlanPath(run.From, run.Target)
		if err != nil {
			return r.outcomeErr(e, fmt.Errorf("no plan: %w", err)), true
		}
		def, ok := plan.Step(e.Step)
		if !ok {
			return r.outcomeErr(e, fmt.Errorf("step %s is not in the plan", e.Step)), true
		}
		env, sink := r.env(ctx, run, e)
		var ev steps.Event
		if e.Kind == steps.EffExecute {
			log.Info("executing step", "attempt", e.Attempt)
			ev = r.execute(ctx, def, env, e)
		} else {
			log.Info("verifying step")
			ev = r.verifyOnly(ctx, def, env, e)
			// What Verify found is what the engine decides on (succeeded,
			// run again, waiting): without it a step that stays open after
			// verifications says nothing in the log about why.
			ok := ev.Err == "" && ev.Check != nil && ev.Check.OK
			var missing []string
			if ev.Check != nil {
				missing = ev.Check.Missing
			}
			log.Info("step verified", "done", ok, "missing", missing, "err", ev.Err)
		}
		sink.flush(ctx)
		if ctx.Err() != nil {
			// Shutting down: the outcome of a cancelled side effect is
			// unknown. Leave the step as it is; resume verifies it.
			log.Warn("stopped during step; it will be verified on resume", "err", ctx.Err())
			return steps.Event{}, false
		}
		return ev, true
	case steps.EffRollback:
		log.Info("rolling back", "rollback", e.Rollback)
		err := r.rollback(ctx, run, e.Rollback)
		if ctx.Err() != nil {
			return steps.Event{}, false
		}
		ev := steps.Event{Kind: steps.EvRollbackDone, Choice: e.Rollback}
		if err != nil {
			ev.Err = err.Error()
		}
		return ev, true
	case steps.EffTimer:
		r.schedule(run.ID, e)
	}
	return steps.Event{}, false
}

func (r *Runner) outcomeErr(e steps.Effect, err error) steps.Event {
	if e.Kind == steps.EffVerify {
		return steps.Event{Kind: steps.EvVerified, Step: e.Step, Err: err.Error()}
	}
	return steps.Event{Kind: steps.EvStepFailed, Step: e.Step, Attempt: e.Attempt, Err: err.Error()}
}

// execute runs Do, then Verify: the step succeeded only when its
// postcondition reads back true.
func (r *Runner) execute(ctx context.Context, def steps.Step, env *steps.Env, e steps.Effect) steps.Event {
	fail := steps.Event{Kind: steps.EvStepFailed, Step: def.ID, Attempt: e.Attempt}
	if def.Do != nil {
		if err := protect(func() error { return def.Do(ctx, env) }); err != nil {
			fail.Err = err.Error()
			if c, ok := steps.CheckOf(err); ok {
				fail.Check = &c
			}
			return fail
		}
	}
	if def.Verify == nil {
		return steps.Event{Kind: steps.EvStepSucceeded, Step: def.ID, Attempt: e.Attempt}
	}
	var c steps.Check
	err := protect(func() error {
		var err error
		c, err = def.Verify(ctx, env)
		return err
	})
	switch {
	case err != nil:
		fail.Err = "verify: " + err.Error()
		return fail
	case !c.OK:
		fail.Check = &c
		return fail
	}
	return steps.Event{Kind: steps.EvStepSucceeded, Step: def.ID, Attempt: e.Attempt, Check: &c}
}

func (r *Runner) verifyOnly(ctx context.Context, def steps.Step, env *steps.Env, e steps.Effect) steps.Event {
	ev := steps.Event{Kind: steps.EvVerified, Step: e.Step}
	if def.Verify == nil {
		ev.Check = &steps.Check{OK: true}
		return ev
	}
	var c steps.Check
	err := protect(func() error {
		var err error
		c, err = def.Verify(ctx, env)
		return err
	})
	if err != nil {
		ev.Err = "verify: " + err.Error()
	}
	ev.Check = &c
	return ev
}

// protect turns a panic in a step into a failure of that step.
func protect(fn func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("step panicked: %v", p)
		}
	}()
	return fn()
}

func (r *Runner) rollback(ctx context.Context, run steps.Run, action steps.RollbackAction) error {
	env, sink := r.env(ctx, run, steps.Effect{Step: "rollback-" + string(action)})
	defer sink.flush(ctx)
	return protect(func() error {
		switch action {
		case steps.RollbackRemoveTermination:
			return r.switchTermination(ctx, run.Gateway, env.Journal, false)
		case steps.RollbackEmergencyStop:
			return r.switchTermination(ctx, run.Gateway, env.Journal, true)
		case steps.RollbackTrafficBack:
			if r.traffic == nil {
				return errors.New("no traffic adapter configured")
			}
			if err := r.traffic.RollBack(ctx, run.Gateway, env.Journal, env.Out); err != nil {
				return fmt.Errorf("moving traffic back: %w", err)
			}
			c, err := r.traffic.VerifyWeights(ctx, run.Gateway, 0)
			if err != nil {
				return fmt.Errorf("verifying weights: %w", err)
			}
			if !c.OK {
				return fmt.Errorf("traffic is not back: %s", strings.Join(c.Missing, "; "))
			}
		default:
			return fmt.Errorf("unknown rollback %q", action)
		}
		return nil
	})
}

// switchTermination turns the bot's request-termination on (the emergency
// stop) or off, then probes every proxy until they all agree.
func (r *Runner) switchTermination(ctx context.Context, gateway string, j steps.Journal, on bool) error {
	if r.kong == nil {
		return errors.New("no gateway adapter configured")
	}
	what := "removing request-termination"
	var err error
	if on {
		what = "emergency stop (request-termination on)"
		_, err = r.kong.EnableTermination(ctx, gateway, j)
	} else {
		err = r.kong.DisableTermination(ctx, gateway, j)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	c, err := r.kong.VerifyTermination(ctx, gateway, on)
	if err != nil {
		return fmt.Errorf("%s: verifying: %w", what, err)
	}
	if !c.OK {
		return fmt.Errorf("%s: not seen on every proxy: %s", what, strings.Join(c.Missing, "; "))
	}
	return nil
}

func (r *Runner) env(ctx context.Context, run steps.Run, e steps.Effect) (*steps.Env, *sink) {
	j := &journal{ctx: ctx, st: r.st, run: run.ID, m: map[string]string{}}
	for k, v := range run.Journal {
		j.m[k] = v
	}
	s := &sink{st: r.st, run: run.ID, channel: run.Channel, step: e.Step, attempt: e.Attempt}
	return &steps.Env{Gateway: run.Gateway, Kong: r.kong, Traffic: r.traffic, Journal: j, Out: s, Now: r.now}, s
}

// OpenJournal returns run's step journal as the runner gives it to steps
// (every Put and PutMany one fsynced store commit), for driving an adapter
// outside a run: tools and benchmarks.
func OpenJournal(ctx context.Context, st *store.Store, run string) (steps.Journal, error) {
	m, err := st.Journal(ctx, run)
	if err != nil {
		return nil, fmt.Errorf("reading the journal of run %s: %w", run, err)
	}
	return &journal{ctx: ctx, st: st, run: run, m: m}, nil
}

// journal is a step's Journal: Put is durable (committed to the store)
// before it returns, so a step re-run after a crash finds what it created.
type journal struct {
	ctx context.Context
	st  *store.Store
	run string
	mu  sync.Mutex
	m   map[string]string
}

func (j *journal) Get(key string) (string, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	v, ok := j.m[key]
	return v, ok
}

func (j *journal) Put(key, value string) error {
	// A step finishing its write during shutdown must still record it.
	ctx := context.WithoutCancel(j.ctx)
	if err := j.st.JournalPut(ctx, j.run, key, value); err != nil {
		return fmt.Errorf("journal %s: %w", key, err)
	}
	j.mu.Lock()
	j.m[key] = value
	j.mu.Unlock()
	return nil
}

func (j *journal) PutMany(kv map[string]string) error {
	if len(kv) == 0 {
		return nil
	}
	entries := make([]store.JournalEntry, 0, len(kv))
	for k, v := range kv {
		entries = append(entries, store.JournalEntry{Run: j.run, Key: k, Value: v})
	}
	ctx := context.WithoutCancel(j.ctx)
	if _, err := j.st.Commit(ctx, store.Change{Journal: entries}); err != nil {
		return fmt.Errorf("journal (%d keys): %w", len(kv), err)
	}
	j.mu.Lock()
	for k, v := range kv {
		j.m[k] = v
	}
	j.mu.Unlock()
	return nil
}

func (j *journal) Keys(prefix string) []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []string
	for k := range j.m {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// sink collects a step's output and queues it as one chat message per step
// attempt, edited as lines arrive (every flushEvery lines and at the end).
type sink struct {
	st      *store.Store
	run     string
	channel string
	step    string
	attempt int

	mu      sync.Mutex
	lines   []OutputLine
	flushed int
}

// OutputLine is one line of a step's output, as queued in the outbox
// (message kind "step-output").
type OutputLine struct {
	Stream string `json:"stream"`
	Text   string `json:"text"`
}

const (
	flushEvery = 25
	keepLines  = 200
)

func (s *sink) Line(stream, text string) {
	s.mu.Lock()
	s.lines = append(s.lines, OutputLine{Stream: stream, Text: text})
	if len(s.lines) > keepLines {
		s.lines = s.lines[len(s.lines)-keepLines:]
		s.flushed = 0
	}
	due := len(s.lines)-s.flushed >= flushEvery
	s.mu.Unlock()
	if due {
		s.flush(context.Background())
	}
}

func (s *sink) flush(ctx context.Context) {
	s.mu.Lock()
	if len(s.lines) == s.flushed {
		s.mu.Unlock()
		return
	}
	payload, err := json.Marshal(map[string]any{"step": s.step, "attempt": s.attempt, "lines": s.lines})
	s.flushed = len(s.lines)
	s.mu.Unlock()
	if err != nil {
		return
	}
	_, _ = s.st.Enqueue(context.WithoutCancel(ctx), store.Message{
		Run: s.run, Key: fmt.Sprintf("output/%s/%d", s.step, s.attempt), Channel: s.channel,
		Kind: "step-output", Payload: payload,
	})
}

// schedule arms the run's one live timer (a newer timer replaces the older;
// the engine refuses stale tokens anyway). Timers are not stored: Resume
// re-derives them after a restart.
func (r *Runner) schedule(runID string, e steps.Effect) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.base.Err() != nil {
		return
	}
	if t, ok := r.timers[runID]; ok {
		t.Stop()
	}
	after := e.After
	if after < 0 {
		after = 0
	}
	r.timers[runID] = time.AfterFunc(after, func() {
		// Counted under mu: Close cancels, then takes mu, then waits, so
		// a timer either sees the cancel or is counted before Close waits.
		r.mu.Lock()
		ctx := r.base
		if ctx.Err() != nil {
			r.mu.Unlock()
			return
		}
		r.firing.Add(1)
		r.mu.Unlock()
		defer r.firing.Done()
		ev := steps.Event{Kind: steps.EvTimer, Step: e.Step, Token: e.Token}
		if _, err := r.Send(ctx, runID, ev); err != nil && !errors.Is(err, steps.ErrStale) {
			r.log.Error("timer", "run_id", runID, "step", e.Step, "err", err)
		}
	})
}
