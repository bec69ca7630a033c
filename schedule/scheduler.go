package schedule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/kongbot/kongbot/steps"
	"github.com/kongbot/kongbot/store"
)

// KindText is the outbox kind of a plain mrkdwn message (bot.KindText):
// payload {"text": ...}, top level when the message has no run, else in
// the run's thread.
const KindText = "text"

// Sender applies an event to a run; *runner.Runner is one.
type Sender interface {
	Send(ctx context.Context, runID string, ev steps.Event) (steps.Run, error)
}

// StartRequest is a scheduled run to open.
type StartRequest struct {
	Gateway   string
	Target    string
	Requester string // who scheduled it: the approval rules treat them as the requester
	Channel   string
	Schedule  string // the schedule's ID
}

// RunStarter opens a run the way `/kong upgrade start` does (plan, store,
// lock, start event, post to the channel) and returns its ID. The wiring
// provides it (PlanStarter is one).
type RunStarter interface {
	StartRun(ctx context.Context, req StartRequest) (runID string, err error)
}

// Options configure a Scheduler.
type Options struct {
	Store *store.Store
	// Runs receives timer events (reminders, expiry, window openings).
	Runs Sender
	// Starter opens scheduled runs; nil refuses `upgrade schedule`.
	Starter RunStarter
	// Inspector reads gateways for the health watch; nil: no watch.
	Inspector steps.Inspector
	// Rules are the engine's rules (RemindAfter, ExpireAfter, Windows),
	// the same the runner uses.
	Rules steps.ApprovalRules
	// Clock defaults to the system clock.
	Clock Clock
	// Grace is how late a schedule or the digest may still run after the
	// bot was down (config timers.schedule_grace); default 30m.
	Grace time.Duration
	// Digest is the digest's cron spec; empty: no digest. DigestChannel is
	// where it goes.
	Digest        string
	DigestChannel string
	// DefaultChannel is where a schedule made without a channel opens its
	// run (config channels.runs).
	DefaultChannel string
	// HealthInterval is how often an active run's gateway is read; 0: no
	// watch. HealthTimeout bounds one read; default 30s.
	HealthInterval time.Duration
	HealthTimeout  time.Duration
	// MaxSleep bounds Run's sleep so new runs and schedules are noticed;
	// default 30s.
	MaxSleep time.Duration
	Logger   *slog.Logger
}

// Scheduler is kongbot's time-driven side. Its methods are safe for
// concurrent use; Tick calls are serialised.
type Scheduler struct {
	o      Options
	st     *store.Store
	clock  Clock
	log    *slog.Logger
	digest cron.Schedule

	tickMu sync.Mutex
	// schedMu makes a due schedule's writes and Unschedule exclusive, so a
	// removed schedule is never written back by a tick that read it first.
	schedMu sync.Mutex
	mu      sync.Mutex
	health  map[string]time.Time // run -> last read (in memory: a restart reads at once)
	wake    chan struct{}
}

// New checks the options and makes a Scheduler.
func New(o Options) (*Scheduler, error) {
	var errs []error
	if o.Store == nil {
		errs = append(errs, errors.New("no store"))
	}
	if o.Runs == nil {
		errs = append(errs, errors.New("no runner to send timer events to"))
	}
	var digest cron.Schedule
	if o.Digest != "" {
		s, err := parseCron(o.Digest)
		if err != nil {
			errs = append(errs, fmt.Errorf("digest: %w", err))
		}
		digest = s
		if o.DigestChannel == "" && o.DefaultChannel == "" {
			errs = append(errs, errors.New("digest: no channel to post it to"))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("schedule: %w", err)
	}
	if o.Clock == nil {
		o.Clock = SystemClock{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Grace <= 0 {
		o.Grace = 30 * time.Minute
	}
	if o.HealthTimeout <= 0 {
		o.HealthTimeout = 30 * time.Second
	}
	if o.MaxSleep <= 0 {
		o.MaxSleep = 30 * time.Second
	}
	if o.DigestChannel == "" {
		o.DigestChannel = o.DefaultChannel
	}
	o.Rules = o.Rules.Normalize()
	return &Scheduler{o: o, st: o.Store, clock: o.Clock, log: o.Logger, digest: digest,
		health: map[string]time.Time{}, wake: make(chan struct{}, 1)}, nil
}

// Tick does everything that is due at the clock's now: scheduled runs,
// run timers (reminders, expiry, window openings), the digest and the
// health watch. It returns the errors met; one job failing does not stop
// the others.
func (s *Scheduler) Tick(ctx context.Context) error {
	s.tickMu.Lock()
	defer s.tickMu.Unlock()
	return errors.Join(
		s.dueSchedules(ctx),
		s.runTimers(ctx),
		s.dueDigest(ctx),
		s.watchHealth(ctx),
	)
}

// Run ticks until ctx ends, sleeping until the next due time (at most
// MaxSleep, so runs started meanwhile are noticed).
func (s *Scheduler) Run(ctx context.Context) error {
	for {
		if err := s.Tick(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("scheduler tick", "err", err)
		}
		wait := s.o.MaxSleep
		if at, err := s.NextWake(ctx); err == nil && !at.IsZero() {
			wait = min(wait, max(at.Sub(s.clock.Now()), 0))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-s.wake:
			t.Stop()
		case <-t.C:
		}
	}
}

func (s *Scheduler) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// NextWake is the earliest time something is due (zero: nothing known).
func (s *Scheduler) NextWake(ctx context.Context) (time.Time, error) {
	var at time.Time
	soonest := func(t time.Time) {
		if !t.IsZero() && (at.IsZero() || t.Before(at)) {
			at = t
		}
	}
	scs, err := s.st.Schedules(ctx)
	if err != nil {
		return at, err
	}
	for _, sc := range scs {
		if sc.State == "" {
			soonest(sc.NextDue)
		}
	}
	if s.digest != nil {
		d, _, err := s.digestDue(ctx)
		if err != nil {
			return at, err
		}
		soonest(d)
	}
	runs, err := s.activeRuns(ctx)
	if err != nil {
		return at, err
	}
	now := s.clock.Now()
	for _, r := range runs {
		soonest(s.runDue(r, now))
		if s.o.HealthInterval > 0 && s.o.Inspector != nil {
			s.mu.Lock()
			last := s.health[r.ID]
			s.mu.Unlock()
			soonest(last.Add(s.o.HealthInterval))
		}
	}
	return at, nil
}

// activeRuns decodes every run that is not finished.
func (s *Scheduler) activeRuns(ctx context.Context) ([]steps.Run, error) {
	recs, err := s.st.Runs(ctx, store.RunFilter{ActiveOnly: true})
	if err != nil {
		return nil, fmt.Errorf("listing active runs: %w", err)
	}
	out := make([]steps.Run, 0, len(recs))
	for _, rec := range recs {
		var r steps.Run
		if err := json.Unmarshal(rec.Data, &r); err != nil {
			s.log.Error("undecodable run; skipped", "run_id", rec.ID, "err", err)
			continue
		}
		out = append(out, r)
	}
	return out, nil
}

func textMessage(run, channel, text string) (store.Message, error) {
	payload, err := json.Marshal(map[string]string{"text": text})
	if err != nil {
		return store.Message{}, err
	}
	return store.Message{Run: run, Channel: channel, Kind: KindText, Payload: payload}, nil
}

// stamp is a date Slack shows in each reader's zone, UTC as the fallback.
func stamp(t time.Time) string {
	return fmt.Sprintf("<!date^%d^{date_short_pretty} {time}|%s>", t.Unix(), t.UTC().Format("Mon 2 Jan 15:04 MST"))
}

func mention(user string) string {
	if user == "" {
		return "kongbot"
	}
	return "<@" + user + ">"
}
