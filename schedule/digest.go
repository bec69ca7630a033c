package schedule

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/kongbot/kongbot/steps"
	"github.com/kongbot/kongbot/store"
)

const digestKey = "schedule/digest"

type digestState struct {
	NextDue time.Time `json:"next_due"`
	Spec    string    `json:"spec"`
}

// digestDue reads when the next digest is due; the first time (or after
// the spec changed) it is the spec's next time after now.
func (s *Scheduler) digestDue(ctx context.Context) (time.Time, bool, error) {
	v, ok, err := s.st.State(ctx, digestKey)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("reading the digest's state: %w", err)
	}
	var d digestState
	if ok {
		if err := json.Unmarshal(v, &d); err != nil {
			ok = false
		}
	}
	if !ok || d.Spec != s.o.Digest || d.NextDue.IsZero() {
		return next(s.digest, s.clock.Now()), false, nil
	}
	return d.NextDue, true, nil
}

// dueDigest posts the digest when it is due: late within the grace period
// (with a note), skipped after it.
func (s *Scheduler) dueDigest(ctx context.Context) error {
	if s.digest == nil {
		return nil
	}
	due, stored, err := s.digestDue(ctx)
	if err != nil {
		return err
	}
	now := s.clock.Now()
	nextState := func(t time.Time) (store.StateEntry, error) {
		b, err := json.Marshal(digestState{NextDue: t, Spec: s.o.Digest})
		return store.StateEntry{Key: digestKey, Value: b}, err
	}
	if !stored {
		e, err := nextState(due)
		if err != nil {
			return err
		}
		return s.st.PutState(ctx, e)
	}
	if now.Before(due) {
		return nil
	}
	e, err := nextState(next(s.digest, now))
	if err != nil {
		return err
	}
	late := now.Sub(due)
	if late > s.o.Grace {
		s.log.Warn("digest skipped: kongbot was not running when it came due", "due", due, "late", late)
		return s.st.PutState(ctx, e)
	}
	text, err := s.DigestText(ctx)
	if err != nil {
		return err
	}
	if late > lateNote {
		text += fmt.Sprintf("\n_Posted %s late: kongbot was not running at %s._", late.Round(time.Second), stamp(due))
	}
	msg, err := textMessage("", s.o.DigestChannel, text)
	if err != nil {
		return err
	}
	// The message and the next due time in one transaction: posted once.
	if _, err := s.st.Commit(ctx, store.Change{Outbox: []store.Message{msg}, State: []store.StateEntry{e}}); err != nil {
		return fmt.Errorf("queueing the digest: %w", err)
	}
	s.log.Info("digest queued", "due", due)
	return nil
}

// DigestText is the digest of open runs, pending approvals and upcoming
// schedules.
func (s *Scheduler) DigestText(ctx context.Context) (string, error) {
	runs, err := s.activeRuns(ctx)
	if err != nil {
		return "", err
	}
	scs, err := s.st.Schedules(ctx)
	if err != nil {
		return "", fmt.Errorf("reading schedules: %w", err)
	}
	var open, pending strings.Builder
	for _, r := range runs {
		plan, err := steps.PlanPath(r.From, r.Target)
		if err != nil {
			continue
		}
		def, _ := plan.Step(r.Current)
		fmt.Fprintf(&open, "• *%s* · %s %s → %s · %s", r.ID, r.Gateway, r.From, r.Target, r.Status)
		if def.Title != "" {
			fmt.Fprintf(&open, " at *%s*", def.Title)
		}
		fmt.Fprintf(&open, " · started by %s %s\n", mention(r.Requester), stamp(r.CreatedAt))
		st, ok := r.Step(r.Current)
		if !ok {
			continue
		}
		switch {
		case st.Status == steps.StepAwaitingApproval:
			risk, _ := plan.ApprovalRisk(st.ID)
			rule := s.o.Rules.For(risk)
			n := 0
			seen := map[string]bool{}
			for _, a := range r.Approvals[plan.GroupLeader(st.ID)] {
				if a.Fingerprint == r.Fingerprint && !seen[a.User] && (rule.AllowRequester || a.User != r.Requester) {
					seen[a.User] = true
					n++
				}
			}
			since := ""
			if !st.AskedAt.IsZero() {
				since = " since " + stamp(st.AskedAt)
			}
			fmt.Fprintf(&pending, "• *%s* · *%s* (%s risk) waits for approval%s: %d of %s\n", r.ID, def.Title, risk, since, n, rule.Text())
		case st.Status == steps.StepPaused && st.Check != nil && st.Check.Pause != nil && st.Check.Pause.Kind == steps.PauseExpired:
			fmt.Fprintf(&pending, "• *%s* · the approval of *%s* expired; re-request it in the run's thread\n", r.ID, def.Title)
		case waitsForWindow(r, st):
			fmt.Fprintf(&pending, "• *%s* · *%s* is approved and %s\n", r.ID, def.Title, s.windowText(r.Gateway))
		}
	}
	var b strings.Builder
	b.WriteString(":newspaper: *kongbot digest*\n")
	if open.Len() == 0 {
		b.WriteString("No upgrade runs are open.\n")
	} else {
		b.WriteString("*Open runs*\n" + open.String())
	}
	if pending.Len() > 0 {
		b.WriteString("*Pending approvals and waits*\n" + pending.String())
	} else if open.Len() > 0 {
		b.WriteString("No approvals are pending.\n")
	}
	var upcoming strings.Builder
	for _, sc := range scs {
		if sc.State == "" {
			fmt.Fprintf(&upcoming, "• *%s* · %s\n", sc.ID, describe(sc))
		}
	}
	if upcoming.Len() > 0 {
		b.WriteString("*Scheduled*\n" + upcoming.String())
	}
	return strings.TrimRight(b.String(), "\n"), nil
}

func (s *Scheduler) windowText(gateway string) string {
	if s.o.Rules.Windows == nil {
		return "waits for its change window"
	}
	return s.o.Rules.Windows.Window(gateway, s.clock.Now()).WindowText()
}
