package traffic

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kongbot/kongbot/steps"
)

// Gateway is the traffic configuration of one gateway.
type Gateway struct {
	// Backend splits the gateway's traffic between the old and the new
	// generation.
	Backend Backend
	// HopBackends optionally overrides Backend per hop ("hop1", "hop2"),
	// for when each hop's old and new servers are configured apart.
	HopBackends map[string]Backend
	// Plans by hop name as the runbook passes it to Shift; nil means
	// DefaultPlans().
	Plans map[string]Plan
	Gates Gates
	// Probes are the smoke probes sent while a stage of any hop bakes
	// (e.g. through the load balancer in front); Prober sends them.
	Probes []Probe
	// HopProbes are sent, besides Probes, only while a stage of that hop
	// bakes: each hop moves to a different new generation, and a probe
	// aimed at one generation's proxies (or expecting its answer) means
	// nothing during another hop.
	HopProbes map[string][]Probe
	Prober    Prober
}

// Options configure Traffic.
type Options struct {
	// Gateways by gateway name, as config names them.
	Gateways map[string]*Gateway
	// Now and Sleep are the clock; default time.Now and a context-aware
	// sleep. Tests inject them to run short bakes.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
	// Logger defaults to a discard logger.
	Logger *slog.Logger
	// HopOf, when set, names the hop a gateway's active run is in. With
	// per-hop backends, VerifyWeights and VerifyDecommissioned (which are
	// not told the hop) use it after a restart, before any Shift in this
	// process recorded the hop; the wiring answers from the run store.
	HopOf func(gateway string) (hop string, ok bool)
}

// Traffic implements steps.Traffic for configured gateways.
type Traffic struct {
	gws   map[string]*Gateway
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error
	log   *slog.Logger
	hopOf func(gateway string) (string, bool)

	mu     sync.Mutex
	active map[string]string // gateway -> hop last shifted, for calls without a journal
}

var _ steps.Traffic = (*Traffic)(nil)

// New checks every gateway's configuration and plans.
func New(o Options) (*Traffic, error) {
	t := &Traffic{gws: o.Gateways, now: o.Now, sleep: o.Sleep, log: o.Logger, hopOf: o.HopOf, active: map[string]string{}}
	if t.now == nil {
		t.now = time.Now
	}
	if t.sleep == nil {
		t.sleep = sleepCtx
	}
	if t.log == nil {
		t.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	var errs []error
	for name, g := range o.Gateways {
		if g == nil || g.Backend == nil {
			errs = append(errs, fmt.Errorf("gateway %q: no traffic backend", name))
			continue
		}
		if g.Plans == nil {
			g.Plans = DefaultPlans()
		}
		for hop, p := range g.Plans {
			if err := p.Validate(); err != nil {
				errs = append(errs, fmt.Errorf("gateway %q %s: %w", name, hop, err))
			}
		}
		for i, p := range g.Probes {
			if p.URL == "" {
				errs = append(errs, fmt.Errorf("gateway %q: probe %d has no URL", name, i+1))
			}
		}
		for hop, ps := range g.HopProbes {
			for i, p := range ps {
				if p.URL == "" {
					errs = append(errs, fmt.Errorf("gateway %q %s: probe %d has no URL", name, hop, i+1))
				}
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("traffic config: %w", err)
	}
	return t, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return nil
	}
}

func (t *Traffic) gateway(name string) (*Gateway, error) {
	g, ok := t.gws[name]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownGateway, name)
	}
	return g, nil
}

// probes are the smoke probes of a stage of hop.
func (g *Gateway) probes(hop string) []Probe {
	return append(slices.Clip(g.Probes), g.HopProbes[hop]...)
}

func (g *Gateway) backend(hop string) Backend {
	if b, ok := g.HopBackends[hop]; ok && b != nil {
		return b
	}
	return g.Backend
}

// Journal keys. Everything lives under "traffic/<hop>/" except the active
// hop, which RollBack needs without being told.
const keyActiveHop = "traffic/active-hop"

type keys string

func keysFor(hop string) keys          { return keys("traffic/" + hop + "/") }
func (k keys) good() string            { return string(k) + "good" }  // last good stage's new %
func (k keys) set() string             { return string(k) + "set" }   // new % last set (or asked for)
func (k keys) pause() string           { return string(k) + "pause" } // the open question, JSON
func (k keys) seq() string             { return string(k) + "seq" }   // question counter
func (k keys) moved() string           { return string(k) + "moved" } // new % a person confirmed
func (k keys) approved(pct int) string { return fmt.Sprintf("%sapproved/%d", k, pct) }
func (k keys) figures(pct int) string  { return fmt.Sprintf("%sfigures/%d", k, pct) }
func (k keys) question(n int) string   { return fmt.Sprintf("%sanswer/%d", k, n) }
func (k keys) approvedPrefix() string  { return string(k) + "approved/" }
func journalInt(j steps.Journal, key string) int {
	v, ok := j.Get(key)
	if !ok || v == "" {
		return 0
	}
	n, _ := strconv.Atoi(v)
	return n
}

// openPause is the question Shift is waiting on, kept in the journal.
type openPause struct {
	steps.Pause
	Stage   int      `json:"stage"` // new % the question is about
	Figures []string `json:"figures,omitempty"`
	Facts   []steps.Fact
}

func (t *Traffic) setActive(gateway, hop string, j steps.Journal) error {
	t.mu.Lock()
	t.active[gateway] = hop
	t.mu.Unlock()
	if j == nil {
		return nil
	}
	if v, _ := j.Get(keyActiveHop); v == hop {
		return nil
	}
	return j.Put(keyActiveHop, hop)
}

func (t *Traffic) activeHop(gateway string, j steps.Journal) string {
	if j != nil {
		if v, ok := j.Get(keyActiveHop); ok && v != "" {
			return v
		}
	}
	t.mu.Lock()
	hop, ok := t.active[gateway]
	t.mu.Unlock()
	if !ok && t.hopOf != nil {
		hop, _ = t.hopOf(gateway)
	}
	return hop
}

// shift is one Shift call's working set.
type shift struct {
	t      *Traffic
	gw     string
	hop    string
	g      *Gateway
	b      Backend
	probes []Probe
	plan   Plan
	j      steps.Journal
	k      keys
	out    steps.Sink
	log    *slog.Logger
	gates  Gates
}

func (s *shift) line(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.log.Info(msg)
	if s.out != nil {
		s.out.Line("traffic", msg)
	}
}

// Shift implements steps.Traffic. It runs the hop's stages above the last
// good one. It returns Check.OK once 100 % is reached and healthy, or a
// Check with a Pause when a person must act: an approval before a stage, a
// manual move, a clear gate breach (weights already rolled back to the last
// good stage) or an inconclusive gate (weights held). Call it again after
// writing the answer to the Journal under Pause.Key.
func (t *Traffic) Shift(ctx context.Context, gateway, hop string, j steps.Journal, out steps.Sink) (steps.Check, error) {
	g, err := t.gateway(gateway)
	if err != nil {
		return steps.Check{}, err
	}
	plan, ok := g.Plans[hop]
	if !ok {
		return steps.Check{}, fmt.Errorf("gateway %q: %w %q", gateway, ErrUnknownHop, hop)
	}
	if err := t.setActive(gateway, hop, j); err != nil {
		return steps.Check{}, fmt.Errorf("journal: %w", err)
	}
	s := &shift{t: t, gw: gateway, hop: hop, g: g, b: g.backend(hop), probes: g.probes(hop), plan: plan, j: j, k: keysFor(hop), out: out,
		log: t.log.With("gateway", gateway, "hop", hop), gates: g.Gates.withDefaults()}
	return s.run(ctx)
}

func (s *shift) run(ctx context.Context) (steps.Check, error) {
	if c, stop, err := s.answer(ctx); stop || err != nil {
		return c, err
	}
	total := len(s.plan.Stages)
	for i, st := range s.plan.Stages {
		good := journalInt(s.j, s.k.good())
		if st.NewPct <= good {
			continue
		}
		w := Split(st.NewPct)
		if st.Approval {
			if v, _ := s.j.Get(s.k.approved(st.NewPct)); v != "1" {
				return s.ask(steps.PauseApproval, st.NewPct,
					fmt.Sprintf("Approve stage %d of %d: move traffic to %s (bake %s)? Now at %s.", i+1, total, w, st.Bake, Split(good)),
					s.goodFacts(good), steps.ChoiceApprove, steps.ChoiceRollBack, steps.ChoiceAbort)
			}
		}
		if c, stop, err := s.move(ctx, w, i, total); stop || err != nil {
			return c, err
		}
		c, stop, err := s.bake(ctx, st, i, total, good)
		if stop || err != nil {
			return c, err
		}
	}
	return s.finish(ctx)
}

// servingWaiter is a Backend that can tell when the new servers are able to
// take traffic (HAProxy's health checks), and wait for it.
type servingWaiter interface {
	WaitServing(ctx context.Context, w Weights, report func(string)) (steps.Check, error)
}

// move sets the stage's weights and verifies them read back.
func (s *shift) move(ctx context.Context, w Weights, i, total int) (steps.Check, bool, error) {
	// New nodes started moments ago are not yet marked UP by the load
	// balancer's health checks; moving weight to them now would fail the
	// read-back. Nothing is changed while waiting.
	if sw, ok := s.b.(servingWaiter); ok {
		c, err := sw.WaitServing(ctx, w, func(msg string) { s.line("stage %d of %d: %s", i+1, total, msg) })
		if err != nil {
			return steps.Check{}, true, fmt.Errorf("stage %d of %d: wait for the new servers to be UP with %s: %w", i+1, total, s.b.Kind(), err)
		}
		if !c.OK {
			c.Missing = append([]string{fmt.Sprintf("stage %d of %d: weights %s not set: the new servers are not serving", i+1, total, w)}, c.Missing...)
			return c, true, nil
		}
	}
	if err := s.j.Put(s.k.set(), strconv.Itoa(w.New)); err != nil {
		return steps.Check{}, true, fmt.Errorf("journal: %w", err)
	}
	mv, err := s.b.SetWeights(ctx, w)
	if err != nil {
		return steps.Check{}, true, fmt.Errorf("stage %d of %d: set weights %s with %s: %w", i+1, total, w, s.b.Kind(), err)
	}
	if mv.Manual != "" && journalInt(s.j, s.k.moved()) != w.New {
		c, err := s.ask(steps.PauseManual, w.New, mv.Manual, nil, steps.ChoiceDone, steps.ChoiceRollBack, steps.ChoiceAbort)
		return c, true, err
	}
	vc, err := s.b.VerifyWeights(ctx, w)
	if err != nil {
		return steps.Check{}, true, fmt.Errorf("stage %d of %d: read weights back: %w", i+1, total, err)
	}
	if !vc.OK {
		if mv.Manual != "" {
			// What the person did is not what the probes see: ask again.
			if err := s.j.Put(s.k.moved(), ""); err != nil {
				return steps.Check{}, true, fmt.Errorf("journal: %w", err)
			}
			c, err := s.ask(steps.PauseManual, w.New, mv.Manual+" The probes do not see it yet: "+strings.Join(vc.Missing, "; "),
				vc.Facts, steps.ChoiceDone, steps.ChoiceRollBack, steps.ChoiceAbort)
			return c, true, err
		}
		vc.Missing = append([]string{fmt.Sprintf("stage %d of %d: weights %s did not read back", i+1, total, w)}, vc.Missing...)
		return vc, true, nil
	}
	s.line("stage %d of %d: weights %s set with %s and read back; baking %s", i+1, total, w, s.b.Kind(), s.plan.Stages[i].Bake)
	return steps.Check{}, false, nil
}

// bake watches the gates for the stage's bake time, sampling every
// Interval, and stops at the first clear breach.
func (s *shift) bake(ctx context.Context, st Stage, i, total, good int) (steps.Check, bool, error) {
	w := Split(st.NewPct)
	win := &window{stage: w, start: s.t.now(), minProbe: s.gates.MinProbes}
	if s.plan.Outage {
		win.outage = cmp.Or(s.plan.OutageStatus, 503)
	}
	unreadable := func(err error) (steps.Check, bool, error) {
		if ctx.Err() != nil {
			return steps.Check{}, true, fmt.Errorf("stage %d of %d: read health figures: %w", i+1, total, err)
		}
		c, aerr := s.ask(steps.PauseInconclusive, st.NewPct,
			fmt.Sprintf("Stage %d of %d (%s) cannot be judged: the health figures do not read (%d tries): %v. Weights held at %s. Approve to count the stage as good and go on, Resume to bake it again, or roll back.",
				i+1, total, w, maxSampleTries, err, w),
			nil, steps.ChoiceApprove, steps.ChoiceResume, steps.ChoiceRollBack, steps.ChoiceAbort)
		return c, true, aerr
	}
	var sampleErrs int
	for {
		smp, err := s.b.Sample(ctx)
		if err == nil {
			win.base, win.last, win.source = &smp, &smp, smp.Source
			break
		}
		if errors.Is(err, ErrNoFigures) {
			break
		}
		if sampleErrs++; sampleErrs >= maxSampleTries {
			return unreadable(err)
		}
		s.log.Warn("health figures unreadable; trying again", "stage", w.String(), "err", err)
		if err := s.t.sleep(ctx, s.gates.Interval); err != nil {
			return steps.Check{}, true, fmt.Errorf("stage %d of %d: bake: %w", i+1, total, err)
		}
	}
	sampleErrs = 0
	for {
		if err := s.t.sleep(ctx, s.gates.Interval); err != nil {
			return steps.Check{}, true, fmt.Errorf("stage %d of %d: bake: %w", i+1, total, err)
		}
		// Probes go out together so a slow one delays the verdict by one
		// probe timeout at most.
		results := make([]ProbeResult, len(s.probes))
		var wg sync.WaitGroup
		for k, p := range s.probes {
			wg.Go(func() { results[k] = s.g.Prober.Do(ctx, p) })
		}
		wg.Wait()
		for _, r := range results {
			win.addProbe(r)
		}
		if win.base != nil {
			smp, err := s.b.Sample(ctx)
			if err != nil {
				// One failed read (a busy runtime API, a hook hiccup) is
				// not a verdict; several in a row are inconclusive.
				if sampleErrs++; sampleErrs >= maxSampleTries {
					return unreadable(err)
				}
				s.log.Warn("health figures unreadable; trying again", "stage", w.String(), "err", err)
				continue
			}
			sampleErrs = 0
			if smp.New.Responses < win.base.New.Responses || smp.Old.Responses < win.base.Old.Responses {
				// Counters went backwards: HAProxy restarted or reloaded.
				// Judge from here on rather than on negative figures.
				s.log.Warn("health counters reset; restarting the bake window", "stage", w.String())
				win.base, win.start = &smp, s.t.now()
			}
			win.last = &smp
		}
		now := s.t.now()
		final := now.Sub(win.start) >= st.Bake
		f := win.figures(now)
		verdict, reasons := s.gates.Evaluate(f, final)
		switch verdict {
		case Baking:
			continue
		case Breach:
			c, err := s.breach(ctx, f, reasons, good)
			return c, true, err
		case Inconclusive:
			if err := s.j.Put(s.k.figures(st.NewPct), f.Summary()); err != nil {
				return steps.Check{}, true, fmt.Errorf("journal: %w", err)
			}
			c, err := s.ask(steps.PauseInconclusive, st.NewPct,
				fmt.Sprintf("Stage %d of %d (%s) is inconclusive: %s. Weights held at %s. Approve to count the stage as good and go on, Resume to bake it again, or roll back.",
					i+1, total, w, strings.Join(reasons, "; "), w),
				f.Facts(), steps.ChoiceApprove, steps.ChoiceResume, steps.ChoiceRollBack, steps.ChoiceAbort)
			return c, true, err
		case Healthy:
			if err := s.j.Put(s.k.figures(st.NewPct), f.Summary()); err != nil {
				return steps.Check{}, true, fmt.Errorf("journal: %w", err)
			}
			if err := s.j.Put(s.k.good(), strconv.Itoa(st.NewPct)); err != nil {
				return steps.Check{}, true, fmt.Errorf("journal: %w", err)
			}
			s.line("stage %d of %d healthy: %s", i+1, total, f.Summary())
			return steps.Check{}, false, nil
		}
	}
}

// maxSampleTries is how many reads of the health figures in a row may fail
// before a stage is called inconclusive.
const maxSampleTries = 3

// breach rolls the weights back to the last good stage and asks.
func (s *shift) breach(ctx context.Context, f Figures, reasons []string, good int) (steps.Check, error) {
	back := Split(good)
	rolled := fmt.Sprintf("weights rolled back to %s", back)
	mv, err := s.b.SetWeights(ctx, back)
	switch {
	case err != nil:
		rolled = fmt.Sprintf("ROLLING BACK TO %s FAILED: %v", back, err)
	case mv.Manual != "":
		rolled = "roll the weights back by hand now: " + mv.Manual
	default:
		if vc, verr := s.b.VerifyWeights(ctx, back); verr != nil || !vc.OK {
			rolled = fmt.Sprintf("weights set back to %s but do not read back (%v %s)", back, verr, strings.Join(vc.Missing, "; "))
		}
	}
	if err == nil {
		if perr := s.j.Put(s.k.set(), strconv.Itoa(good)); perr != nil {
			return steps.Check{}, fmt.Errorf("journal: %w", perr)
		}
	}
	// A resumed stage must ask a person to move again.
	if perr := s.j.Put(s.k.moved(), ""); perr != nil {
		return steps.Check{}, fmt.Errorf("journal: %w", perr)
	}
	msg := strings.Join(reasons, "; ") + "; " + rolled
	s.line("gate breach at %s: %s", f.Stage, msg)
	facts := append(f.Facts(), steps.Fact{Name: "rollback", Value: rolled})
	return s.ask(steps.PauseBreach, f.Stage.New, msg, facts, steps.ChoiceResume, steps.ChoiceRollBack, steps.ChoiceAbort)
}

// finish drains the old generation once 100 % is healthy.
func (s *shift) finish(ctx context.Context) (steps.Check, error) {
	c := steps.Check{OK: true}
	mv, err := s.b.Drain(ctx)
	if err != nil {
		return steps.Check{}, fmt.Errorf("drain old generation: %w", err)
	}
	vc, err := s.b.VerifyWeights(ctx, Split(100))
	if err != nil {
		return steps.Check{}, fmt.Errorf("read weights back: %w", err)
	}
	if !vc.OK {
		vc.Missing = append([]string{"at 100 % the weights do not read back"}, vc.Missing...)
		return vc, nil
	}
	c.Facts = append(c.Facts, steps.Fact{Name: "weights", Value: Split(100).String() + " (" + s.b.Kind() + ")"})
	// Every stage's figures, including those judged before a pause or a
	// restart, from the journal.
	for i, st := range s.plan.Stages {
		if v, ok := s.j.Get(s.k.figures(st.NewPct)); ok && v != "" {
			c.Facts = append(c.Facts, steps.Fact{Name: fmt.Sprintf("stage %d (%s)", i+1, Split(st.NewPct)), Value: v})
		}
	}
	if mv.Manual != "" {
		c.Facts = append(c.Facts, steps.Fact{Name: "next", Value: mv.Manual})
		s.line("all traffic on the new generation; to do before decommissioning: %s", mv.Manual)
	} else {
		s.line("all traffic on the new generation; old generation drained")
	}
	return c, nil
}

func (s *shift) goodFacts(good int) []steps.Fact {
	fs := []steps.Fact{{Name: "now", Value: Split(good).String()}}
	if good > 0 {
		if v, ok := s.j.Get(s.k.figures(good)); ok && v != "" {
			fs = append(fs, steps.Fact{Name: fmt.Sprintf("last stage (%d %%)", good), Value: v})
		}
	}
	return fs
}

// ask records an open question in the journal and returns it as a Pause.
func (s *shift) ask(kind steps.PauseKind, stage int, msg string, facts []steps.Fact, choices ...steps.Choice) (steps.Check, error) {
	n := journalInt(s.j, s.k.seq()) + 1
	if err := s.j.Put(s.k.seq(), strconv.Itoa(n)); err != nil {
		return steps.Check{}, fmt.Errorf("journal: %w", err)
	}
	p := openPause{Pause: steps.Pause{Kind: kind, Key: s.k.question(n), Message: msg, Choices: choices}, Stage: stage, Facts: facts}
	b, err := json.Marshal(p)
	if err != nil {
		return steps.Check{}, fmt.Errorf("encode pause: %w", err)
	}
	if err := s.j.Put(s.k.pause(), string(b)); err != nil {
		return steps.Check{}, fmt.Errorf("journal: %w", err)
	}
	if kind != steps.PauseBreach { // a breach already said it
		s.line("waiting (%s): %s", kind, msg)
	}
	return pausedCheck(p), nil
}

func pausedCheck(p openPause) steps.Check {
	pp := p.Pause
	return steps.Check{OK: false, Missing: []string{p.Message}, Facts: p.Facts, Pause: &pp}
}

// answer handles the answer to the open question, if any. stop means Shift
// returns c now (still waiting, or rolled back at a lead's request).
func (s *shift) answer(ctx context.Context) (steps.Check, bool, error) {
	raw, _ := s.j.Get(s.k.pause())
	if raw == "" {
		return steps.Check{}, false, nil
	}
	var p openPause
	if err := json.Unmarshal([]byte(raw), &p); err != nil {
		return steps.Check{}, true, fmt.Errorf("journal %s: %w", s.k.pause(), err)
	}
	ans, _ := s.j.Get(p.Key)
	if ans == "" {
		return pausedCheck(p), true, nil // still waiting: same question, same key
	}
	choice := steps.Choice(ans)
	valid := false
	for _, c := range p.Choices {
		valid = valid || c == choice
	}
	if !valid {
		return steps.Check{}, true, fmt.Errorf("answer %q to %s question %s is not one of %v", ans, p.Kind, p.Key, p.Choices)
	}
	if err := s.j.Put(s.k.pause(), ""); err != nil {
		return steps.Check{}, true, fmt.Errorf("journal: %w", err)
	}
	s.log.Info("answer", "question", p.Key, "kind", p.Kind, "choice", choice)
	switch choice {
	case steps.ChoiceAbort:
		return steps.Check{Missing: []string{fmt.Sprintf("aborted by a lead; traffic left at %s", Split(journalInt(s.j, s.k.set())))}}, true, nil
	case steps.ChoiceRollBack:
		if err := s.t.rollBack(ctx, s.b, s.hop, s.j, s.out); err != nil {
			return steps.Check{}, true, err
		}
		return steps.Check{Missing: []string{"rolled back: all traffic on the old generation, at a lead's request"}}, true, nil
	}
	switch p.Kind {
	case steps.PauseApproval:
		err := s.j.Put(s.k.approved(p.Stage), "1")
		return steps.Check{}, err != nil, err
	case steps.PauseManual:
		err := s.j.Put(s.k.moved(), strconv.Itoa(p.Stage))
		return steps.Check{}, err != nil, err
	case steps.PauseInconclusive:
		if choice == steps.ChoiceApprove {
			// A lead looked at the figures and counts the stage as good.
			fig, _ := s.j.Get(s.k.figures(p.Stage))
			if err := s.j.Put(s.k.figures(p.Stage), fig+" (accepted by a lead)"); err != nil {
				return steps.Check{}, true, fmt.Errorf("journal: %w", err)
			}
			if err := s.j.Put(s.k.good(), strconv.Itoa(p.Stage)); err != nil {
				return steps.Check{}, true, fmt.Errorf("journal: %w", err)
			}
		}
	}
	// Breach + resume, inconclusive + resume: the loop runs the stage again.
	return steps.Check{}, false, nil
}

// RollBack implements steps.Traffic: all traffic back to the old generation,
// the old servers back in service, the journal back to stage 0. With the
// manual backend it returns a *ManualError saying what to do.
func (t *Traffic) RollBack(ctx context.Context, gateway string, j steps.Journal, out steps.Sink) error {
	g, err := t.gateway(gateway)
	if err != nil {
		return err
	}
	hop := t.activeHop(gateway, j)
	return t.rollBack(ctx, g.backend(hop), hop, j, out)
}

func (t *Traffic) rollBack(ctx context.Context, b Backend, hop string, j steps.Journal, out steps.Sink) error {
	var manual []string
	mv, err := b.Undrain(ctx)
	if err != nil {
		return fmt.Errorf("roll back: put old generation back in service: %w", err)
	}
	if mv.Manual != "" {
		manual = append(manual, mv.Manual)
	}
	mv, err = b.SetWeights(ctx, Split(0))
	if err != nil {
		return fmt.Errorf("roll back: set weights %s: %w", Split(0), err)
	}
	if mv.Manual != "" {
		manual = append(manual, mv.Manual)
	}
	if j != nil && hop != "" {
		k := keysFor(hop)
		puts := [][2]string{{k.good(), "0"}, {k.set(), "0"}, {k.pause(), ""}, {k.moved(), ""}}
		for _, key := range j.Keys(k.approvedPrefix()) {
			puts = append(puts, [2]string{key, ""})
		}
		for _, kv := range puts {
			if err := j.Put(kv[0], kv[1]); err != nil {
				return fmt.Errorf("journal: %w", err)
			}
		}
	}
	if len(manual) > 0 {
		return &ManualError{Instructions: strings.Join(manual, " ")}
	}
	vc, err := b.VerifyWeights(ctx, Split(0))
	if err != nil {
		return fmt.Errorf("roll back: read weights back: %w", err)
	}
	if !vc.OK {
		return fmt.Errorf("roll back: weights do not read back: %s", strings.Join(vc.Missing, "; "))
	}
	if out != nil {
		out.Line("traffic", fmt.Sprintf("rolled back: weights %s set with %s and read back", Split(0), b.Kind()))
	}
	return nil
}

// VerifyWeights implements steps.Traffic with the backend of the hop last
// shifted (or the gateway's default backend).
func (t *Traffic) VerifyWeights(ctx context.Context, gateway string, wantNewPct int) (steps.Check, error) {
	g, err := t.gateway(gateway)
	if err != nil {
		return steps.Check{}, err
	}
	w := Split(wantNewPct)
	if err := w.Validate(); err != nil {
		return steps.Check{}, err
	}
	return g.backend(t.activeHop(gateway, nil)).VerifyWeights(ctx, w)
}

// VerifyDecommissioned implements steps.Traffic.
func (t *Traffic) VerifyDecommissioned(ctx context.Context, gateway string) (steps.Check, error) {
	g, err := t.gateway(gateway)
	if err != nil {
		return steps.Check{}, err
	}
	return g.backend(t.activeHop(gateway, nil)).Decommissioned(ctx)
}
