package schedule

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kongbot/kongbot/steps"
)

// runDue is when run next needs a timer event: its approval reminder or
// expiry, or the opening of the window its step waits for.
func (s *Scheduler) runDue(r steps.Run, now time.Time) time.Time {
	st, ok := r.Step(r.Current)
	if !ok {
		return time.Time{}
	}
	switch {
	case r.Status == steps.RunAwaitingApproval:
		return s.o.Rules.ApprovalDue(*st)
	case waitsForWindow(r, st):
		w := s.o.Rules.Windows
		if w == nil {
			return now
		}
		ws := w.Window(r.Gateway, now)
		if !ws.Restricted || ws.Open {
			return now
		}
		return ws.Opens
	}
	return time.Time{}
}

func waitsForWindow(r steps.Run, st *steps.StepState) bool {
	return r.Status == steps.RunPaused && st.Status == steps.StepPaused && st.Check != nil &&
		st.Check.Pause != nil && st.Check.Pause.Kind == steps.PauseWindow
}

// runTimers sends the timer event to every run whose reminder, expiry or
// window opening is due. The engine decides what the timer does and
// refuses it (ErrStale) if the run moved meanwhile; the runner's own
// in-memory timers may send the same event, and whichever comes second is
// stale.
func (s *Scheduler) runTimers(ctx context.Context) error {
	runs, err := s.activeRuns(ctx)
	if err != nil {
		return err
	}
	now := s.clock.Now()
	var errs []error
	for _, r := range runs {
		due := s.runDue(r, now)
		if due.IsZero() || now.Before(due) {
			continue
		}
		ev := steps.Event{Kind: steps.EvTimer, Step: r.Current, Token: r.TimerToken}
		s.log.Info("run timer due", "run_id", r.ID, "step", r.Current, "status", r.Status)
		if _, err := s.o.Runs.Send(ctx, r.ID, ev); err != nil && !errors.Is(err, steps.ErrStale) {
			errs = append(errs, fmt.Errorf("timer of run %s: %w", r.ID, err))
		}
	}
	return errors.Join(errs...)
}
