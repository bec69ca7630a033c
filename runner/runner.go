// Package runner carries out the run engine's effects against the store and
// the gateway adapters. Every transition is committed to the store (the run,
// its audit entries and its outbox messages in one transaction) before any
// effect runs: a step's intent (running, attempt N) is durable before its
// Do, and its outcome is durable before the next step starts. On start,
// Resume feeds every unfinished run the engine's resume event, so a step
// that was running when the process died is verified first when its Verify
// proves Do complete (done: succeeded, not run again), and otherwise run
// again when idempotent; a step that is not idempotent and not done fails
// "interrupted" for a person to retry or abort.
package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/kongbot/kongbot/steps"
	"github.com/kongbot/kongbot/store"
)

// Options configure a Runner.
type Options struct {
	Store   *store.Store
	Kong    steps.Kong
	Traffic steps.Traffic
	Rules   steps.ApprovalRules
	// Now defaults to time.Now.
	Now func() time.Time
	// Logger defaults to a discard logger.
	Logger *slog.Logger
	// Hooks observe the runner at its durable points (tests use them to
	// crash the process at a chosen point).
	Hooks Hooks
}

// Hooks are called synchronously at the runner's durable points.
type Hooks struct {
	// AfterCommit runs after a transition is durable, before its effects.
	AfterCommit func(run steps.Run, ev steps.Event)
	// BeforeEffect runs before each effect is carried out.
	BeforeEffect func(run steps.Run, e steps.Effect)
}

// Runner applies events to runs and carries out their effects. It is safe
// for concurrent use: transitions of one run are serialised, and a step's
// side effect runs outside that lock so an abort can be recorded meanwhile.
type Runner struct {
	st      *store.Store
	kong    steps.Kong
	traffic steps.Traffic
	rules   steps.ApprovalRules
	now     func() time.Time
	log     *slog.Logger
	hooks   Hooks

	mu     sync.Mutex
	locks  map[string]*sync.Mutex
	timers map[string]*time.Timer // by run: the one live timer
	base   context.Context
	stop   context.CancelFunc
	// firing counts timer events being sent: Close waits for them, so
	// none commits to a store its owner closes next.
	firing sync.WaitGroup
}

// New makes a Runner.
func New(opts Options) (*Runner, error) {
	if opts.Store == nil {
		return nil, errors.New("runner: no store")
	}
	if err := opts.Rules.Normalize().Validate(); err != nil {
		return nil, fmt.Errorf("runner: %w", err)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	base, stop := context.WithCancel(context.Background())
	return &Runner{
		st: opts.Store, kong: opts.Kong, traffic: opts.Traffic, rules: opts.Rules.Normalize(),
		now: opts.Now, log: opts.Logger, hooks: opts.Hooks,
		locks: map[string]*sync.Mutex{}, timers: map[string]*time.Timer{}, base: base, stop: stop,
	}, nil
}

// Close stops pending timers and waits for a timer event already being
// sent (its context is cancelled, so it ends soon). Steps started by
// callers of Start and Send finish on their own contexts.
func (r *Runner) Close() {
	r.stop()
	r.mu.Lock()
	for id, t := range r.timers {
		t.Stop()
		delete(r.timers, id)
	}
	r.mu.Unlock()
	r.firing.Wait()
}

func (r *Runner) runLock(id string) *sync.Mutex {
	r.mu.Lock()
	defer r.mu.Unlock()
	l, ok := r.locks[id]
	if !ok {
		l = &sync.Mutex{}
		r.locks[id] = l
	}
	return l
}

// Load reads a run from the store, with its journal as the store has it
// (a step's Journal.Put may be newer than the run's last transition).
func (r *Runner) Load(ctx context.Context, id string) (steps.Run, store.Run, error) {
	rec, err := r.st.Run(ctx, id)
	if err != nil {
		return steps.Run{}, store.Run{}, err
	}
	var run steps.Run
	if err := json.Unmarshal(rec.Data, &run); err != nil {
		return steps.Run{}, rec, fmt.Errorf("decoding run %s: %w", id, err)
	}
	j, err := r.st.Journal(ctx, id)
	if err != nil {
		return steps.Run{}, rec, fmt.Errorf("reading journal of run %s: %w", id, err)
	}
	if len(j) > 0 && run.Journal == nil {
		run.Journal = map[string]string{}
	}
	maps.Copy(run.Journal, j)
	return run, rec, nil
}

func record(run steps.Run, version uint64) (*store.Run, error) {
	data, err := json.Marshal(run)
	if err != nil {
		return nil, fmt.Errorf("encoding run %s: %w", run.ID, err)
	}
	return &store.Run{
		ID: run.ID, Gateway: run.Gateway, Status: string(run.Status), Terminal: run.Status.Terminal(),
		Requester: run.Requester, Version: version, Data: data,
	}, nil
}

// Start stores a new run (made by steps.NewRun), takes its gateway's lock and
// applies the start event, all in one transaction; then it carries out the
// effects. When another run holds the gateway, nothing is stored and the
// error is a *store.LockedError naming that run and its requester.
func (r *Runner) Start(ctx context.Context, run steps.Run) (steps.Run, error) {
	ev := steps.Event{Kind: steps.EvStart, User: run.Requester}
	l := r.runLock(run.ID)
	l.Lock()
	next, effs, err := steps.Transition(run, ev, r.rules, r.now())
	if err != nil {
		l.Unlock()
		return run, fmt.Errorf("starting run %s: %w", run.ID, err)
	}
	rec, err := record(next, 0)
	if err != nil {
		l.Unlock()
		return run, err
	}
	created, _ := json.Marshal(map[string]any{"from": run.From, "target": run.Target, "path": run.Path,
		"fingerprint": run.Fingerprint, "dry_run": run.DryRun, "steps": len(run.Steps)})
	ch := store.Change{
		Run:  rec,
		Lock: &store.Lock{Gateway: run.Gateway, Run: run.ID, Requester: run.Requester},
		Audit: []store.AuditEntry{{Kind: "run-created", Actor: actor(run.Requester),
			Text: fmt.Sprintf("%s asked to upgrade %s from %s to %s", actor(run.Requester), run.Gateway, run.From, run.Target), Data: created}},
	}
	ch.Audit = append(ch.Audit, auditFor(run, next, ev, nil))
	if err := r.effectsToChange(&ch, next, effs); err != nil {
		l.Unlock()
		return run, err
	}
	_, err = r.st.Commit(ctx, ch)
	l.Unlock()
	if err != nil {
		return run, fmt.Errorf("starting run %s: %w", run.ID, err)
	}
	r.log.Info("run started", "run_id", run.ID, "gateway", run.Gateway, "from", run.From, "target", run.Target)
	r.afterCommit(next, ev)
	r.drain(ctx, next, effs)
	return r.latest(ctx, next), nil
}

// Send applies one event to a run and carries out the effects, feeding the
// outcomes back, until the run waits for people or ends. A refused event
// changes nothing (a decision by a person is still audited) and its error
// wraps the engine's sentinel (steps.ErrStale, steps.ErrDuplicate, ...).
func (r *Runner) Send(ctx context.Context, runID string, ev steps.Event) (steps.Run, error) {
	run, effs, _, err := r.apply(ctx, runID, ev)
	if err != nil {
		return run, err
	}
	r.drain(ctx, run, effs)
	return r.latest(ctx, run), nil
}

func (r *Runner) latest(ctx context.Context, fallback steps.Run) steps.Run {
	run, _, err := r.Load(ctx, fallback.ID)
	if err != nil {
		return fallback
	}
	return run
}

// apply is one durable transition: load, Transition, commit.
func (r *Runner) apply(ctx context.Context, runID string, ev steps.Event) (steps.Run, []steps.Effect, uint64, error) {
	l := r.runLock(runID)
	l.Lock()
	defer l.Unlock()
	run, rec, err := r.Load(ctx, runID)
	if err != nil {
		return run, nil, 0, err
	}
	next, effs, terr := steps.Transition(run, ev, r.rules, r.now())
	if terr != nil {
		// Refused: nothing changes, but a person's decision is on record,
		// and a fingerprint mismatch re-requests the approval.
		if ev.User == "" && len(effs) == 0 {
			return run, nil, rec.Version, terr
		}
		ch := store.Change{Audit: []store.AuditEntry{auditFor(run, run, ev, terr)}}
		ch.Audit[0].Run = run.ID
		if err := r.effectsToChange(&ch, run, effs); err != nil {
			return run, nil, rec.Version, errors.Join(terr, err)
		}
		for i := range ch.Outbox {
			ch.Outbox[i].Run = run.ID
		}
		if _, err := r.st.Commit(ctx, ch); err != nil {
			return run, nil, rec.Version, errors.Join(terr, fmt.Errorf("recording refused event: %w", err))
		}
		return run, nil, rec.Version, terr
	}
	nrec, err := record(next, rec.Version)
	if err != nil {
		return run, nil, 0, err
	}
	ch := store.Change{Run: nrec, Audit: []store.AuditEntry{auditFor(run, next, ev, nil)}}
	for k, v := range next.Journal {
		if old, ok := run.Journal[k]; !ok || old != v {
			ch.Journal = append(ch.Journal, store.JournalEntry{Run: run.ID, Key: k, Value: v})
		}
	}
	if err := r.effectsToChange(&ch, next, effs); err != nil {
		return run, nil, 0, err
	}
	c, err := r.st.Commit(ctx, ch)
	if err != nil {
		return run, nil, 0, fmt.Errorf("committing %s of run %s: %w", ev.Kind, runID, err)
	}
	r.afterCommit(next, ev)
	return next, effs, c.Run.Version, nil
}

func (r *Runner) afterCommit(run steps.Run, ev steps.Event) {
	if r.hooks.AfterCommit != nil {
		r.hooks.AfterCommit(run, ev)
	}
}

// effectsToChange puts the effects that are pure bookkeeping into the
// transition's own transaction: messages into the outbox, lock release, and
// an audit line for each side effect about to start (the intent).
func (r *Runner) effectsToChange(ch *store.Change, run steps.Run, effs []steps.Effect) error {
	for _, e := range effs {
		switch e.Kind {
		case steps.EffPost, steps.EffUpdate:
			payload, err := json.Marshal(e)
			if err != nil {
				return err
			}
			ch.Outbox = append(ch.Outbox, store.Message{
				Key: MessageKey(e), Channel: run.Channel, Kind: string(e.Kind), Payload: payload,
			})
		case steps.EffReleaseLock:
			ch.Unlock = &store.Lock{Gateway: run.Gateway, Run: run.ID}
		case steps.EffExecute:
			ch.Audit = append(ch.Audit, store.AuditEntry{Kind: "execute", Actor: "kongbot", Step: e.Step,
				Text: fmt.Sprintf("starting %s, attempt %d", e.Step, e.Attempt)})
		case steps.EffRollback:
			ch.Audit = append(ch.Audit, store.AuditEntry{Kind: "rollback-start", Actor: "kongbot",
				Text: fmt.Sprintf("starting rollback %s", e.Rollback)})
		}
	}
	return nil
}

// MessageKey names the chat message an effect posts or edits: one message
// per step (started, then edited with its outcome), one per approval
// request, one summary per run. Other notices are posted each time.
func MessageKey(e steps.Effect) string {
	switch e.Message {
	case steps.MsgSummary:
		return "summary"
	case steps.MsgApprovalRequest, steps.MsgApprovalProgress:
		return "approval/" + e.Step
	case steps.MsgStepStarted, steps.MsgStepSucceeded, steps.MsgStepFailed, steps.MsgStepSkipped,
		steps.MsgManual, steps.MsgManualPending, steps.MsgPaused:
		return "step/" + e.Step
	}
	return ""
}

func actor(user string) string {
	if user == "" {
		return "kongbot"
	}
	return user
}

func auditFor(before, after steps.Run, ev steps.Event, refused error) store.AuditEntry {
	step := ev.Step
	if step == "" {
		step = before.Current
	}
	data, _ := json.Marshal(ev)
	var text strings.Builder
	fmt.Fprintf(&text, "%s", ev.Kind)
	if step != "" {
		fmt.Fprintf(&text, " %s", step)
	}
	if ev.Answer != "" {
		// The answer says what was decided (e.g. a change window override).
		fmt.Fprintf(&text, " %q", ev.Answer)
	}
	if ev.User != "" {
		fmt.Fprintf(&text, " by %s", ev.User)
	}
	kind := string(ev.Kind)
	if refused != nil {
		kind = "refused-" + kind
		fmt.Fprintf(&text, ": refused: %v", refused)
	} else {
		if before.Status != after.Status {
			fmt.Fprintf(&text, ": run %s -> %s", before.Status, after.Status)
		}
		if st, ok := after.Step(step); ok {
			fmt.Fprintf(&text, "; step %s", st.Status)
			if st.Error != "" && (ev.Kind == steps.EvStepFailed || ev.Kind == steps.EvVerified) {
				fmt.Fprintf(&text, " (%s)", st.Error)
			}
			if ev.Kind == steps.EvVerified && st.Status == steps.StepRunning {
				// A step found running after a restart, verified not done:
				// the record says why it runs again.
				fmt.Fprintf(&text, " (interrupted, %s; running it again, attempt %d)", notDone(ev), st.Attempts)
			}
		}
		if after.Current != before.Current && after.Current != "" {
			fmt.Fprintf(&text, "; now at %s", after.Current)
		}
	}
	return store.AuditEntry{Kind: kind, Actor: actor(ev.User), Step: step, Text: text.String(), Data: data}
}

// notDone says what a verification found missing, or why it could not tell.
func notDone(ev steps.Event) string {
	switch {
	case ev.Err != "":
		return ev.Err
	case ev.Check != nil && len(ev.Check.Missing) > 0:
		return "not done: " + strings.Join(ev.Check.Missing, "; ")
	}
	return "not done"
}

// Resume feeds the resume event to every run that is not finished, after
// re-taking its gateway lock. It returns how many runs it resumed.
func (r *Runner) Resume(ctx context.Context) (int, error) {
	recs, err := r.st.Runs(ctx, store.RunFilter{ActiveOnly: true})
	if err != nil {
		return 0, fmt.Errorf("listing runs to resume: %w", err)
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].Created.Before(recs[j].Created) })
	var errs []error
	n := 0
	for _, rec := range recs {
		ok, holder, err := r.st.TryLock(ctx, rec.Gateway, rec.ID, rec.Requester)
		if err != nil {
			errs = append(errs, fmt.Errorf("locking %s for run %s: %w", rec.Gateway, rec.ID, err))
			continue
		}
		if !ok {
			errs = append(errs, fmt.Errorf("run %s cannot resume: gateway %s is locked by run %s", rec.ID, rec.Gateway, holder.Run))
			continue
		}
		r.log.Info("resuming run", "run_id", rec.ID, "gateway", rec.Gateway, "status", rec.Status)
		if _, err := r.Send(ctx, rec.ID, steps.Event{Kind: steps.EvResume}); err != nil {
			errs = append(errs, fmt.Errorf("resuming run %s: %w", rec.ID, err))
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}
