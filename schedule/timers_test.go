package schedule

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kongbot/kongbot/config"
	"github.com/kongbot/kongbot/steps"
)

const (
	reminder = "post-message approval-reminder"
	paused   = "post-message step-paused"
	request  = "post-message approval-request"
	redraw   = "update-message approval-request"
)

// Reminders and expiry come from the run's stored state, so a restart
// neither loses nor repeats them (the runner's own timers are in memory).
func TestRestartAcrossPendingReminderAndExpiry(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, fri, nil) // remind after 30m, expire after 2h
	const step = "hop2.migrations-finish"
	e.runAt("r1", step, fri)

	e.clock.Set(fri.Add(10 * time.Minute))
	e.tick()
	if n := count(e.effects("r1"), reminder); n != 0 {
		t.Fatalf("%d reminders after 10 minutes", n)
	}

	e.restart()
	e.clock.Set(fri.Add(31 * time.Minute))
	e.tick()
	e.tick()
	if n := count(e.effects("r1"), reminder); n != 1 {
		t.Fatalf("%d reminders at 00:31, want 1", n)
	}
	if st := e.step("r1", step); !st.RemindedAt.Equal(fri.Add(31 * time.Minute)) {
		t.Errorf("reminded at %s", st.RemindedAt)
	}

	e.restart()
	e.clock.Set(fri.Add(60 * time.Minute))
	e.tick()
	if n := count(e.effects("r1"), reminder); n != 1 {
		t.Fatalf("%d reminders at 01:00 (next due 01:01)", n)
	}
	e.clock.Set(fri.Add(61 * time.Minute))
	e.tick()
	if n := count(e.effects("r1"), reminder); n != 2 {
		t.Fatalf("%d reminders at 01:01, want 2", n)
	}
	// One approval of the two an irreversible step needs, then nobody.
	if _, err := e.runner.Send(ctx, "r1", steps.Event{Kind: steps.EvApprove, Step: step, User: "ULEAD1", Eligible: true, Fingerprint: e.load("r1").Fingerprint}); err != nil {
		t.Fatal(err)
	}

	e.restart()
	e.clock.Set(fri.Add(2*time.Hour + time.Minute))
	e.tick()
	r := e.load("r1")
	st, _ := r.Step(step)
	if r.Status != steps.RunPaused || st.Status != steps.StepPaused || st.Check == nil || st.Check.Pause == nil || st.Check.Pause.Kind != steps.PauseExpired {
		t.Fatalf("after expiry: run %s, step %+v", r.Status, st)
	}
	effs := e.effects("r1")
	if count(effs, redraw) != 1 || count(effs, paused) != 1 {
		t.Errorf("expiry messages %v", effs)
	}
	if !strings.Contains(st.Check.Pause.Message, "was not approved within 2h0m0s") {
		t.Errorf("message %q", st.Check.Pause.Message)
	}
	if hasAudit(e.audit("r1"), "execute", step) {
		t.Fatal("the step ran after its request expired")
	}
	// The expired request no longer reminds anyone, even after a restart.
	e.restart()
	e.clock.Advance(3 * time.Hour)
	e.tick()
	if n := count(e.effects("r1"), reminder); n != 2 {
		t.Errorf("%d reminders after expiry", n)
	}
	if _, err := e.runner.Send(ctx, "r1", steps.Event{Kind: steps.EvApprove, Step: step, User: "ULEAD2", Eligible: true, Fingerprint: r.Fingerprint}); !errors.Is(err, steps.ErrStale) {
		t.Fatalf("approving an expired request: %v", err)
	}

	// Re-request: the request opens again, the approvers are reminded, and
	// the approval given before the expiry still counts.
	ans := steps.Event{Kind: steps.EvAnswer, Step: step, User: "UREQ", Key: st.Check.Pause.Key, Answer: steps.ChoiceRerequest}
	if _, err := e.runner.Send(ctx, "r1", ans); err != nil {
		t.Fatal(err)
	}
	r = e.load("r1")
	st, _ = r.Step(step)
	if r.Status != steps.RunAwaitingApproval || !st.AskedAt.Equal(e.clock.Now()) || r.Journal[ans.Key+".by"] != "UREQ" {
		t.Fatalf("after re-request: %s %+v", r.Status, st)
	}
	if effs := e.effects("r1"); count(effs, request) != 1 || count(effs, reminder) != 3 {
		t.Errorf("re-request messages %v", effs)
	}
	if _, err := e.runner.Send(ctx, "r1", steps.Event{Kind: steps.EvApprove, Step: step, User: "ULEAD2", Eligible: true, Fingerprint: r.Fingerprint}); err != nil {
		t.Fatal(err)
	}
	if !hasAudit(e.audit("r1"), "execute", "starting "+step+", attempt 1") {
		t.Error("the step did not start after the second approval")
	}
}

// A high step approved after its window closed waits for the next window,
// across a restart, and starts when it opens.
func TestWindowClosesWhileHighStepWaits(t *testing.T) {
	ctx := context.Background()
	w, err := NewWindows([]config.ChangeWindow{{Name: "saturday-night", Start: "0 2 * * 6", Duration: 2 * time.Hour, Gateways: []string{"prod"}}})
	if err != nil {
		t.Fatal(err)
	}
	sat := time.Date(2026, 12, 5, 2, 0, 0, 0, time.UTC)
	const step = "hop2.migrations-up"
	setup := func(t *testing.T) *env {
		e := newEnv(t, sat.Add(90*time.Minute), func(o *Options) { o.Rules.Windows = w; o.Rules.ExpireAfter = 0 })
		e.runAt("r1", step, sat.Add(90*time.Minute)) // asked inside the window
		e.clock.Set(sat.Add(2*time.Hour + 10*time.Minute))
		if _, err := e.runner.Send(ctx, "r1", steps.Event{Kind: steps.EvApprove, Step: step, User: "ULEAD1", Eligible: true, Fingerprint: e.load("r1").Fingerprint}); err != nil {
			t.Fatal(err)
		}
		r := e.load("r1")
		st, _ := r.Step(step)
		if r.Status != steps.RunPaused || st.Check == nil || st.Check.Pause == nil || st.Check.Pause.Kind != steps.PauseWindow {
			t.Fatalf("approved after the window closed: run %s step %+v", r.Status, st)
		}
		if !strings.Contains(st.Check.Pause.Message, "waiting for the window saturday-night that opens Sat 12 Dec 02:00 UTC") {
			t.Errorf("message %q", st.Check.Pause.Message)
		}
		if hasAudit(e.audit("r1"), "execute", step) {
			t.Fatal("the step started outside the window")
		}
		return e
	}

	t.Run("it starts when the next window opens", func(t *testing.T) {
		e := setup(t)
		e.clock.Set(sat.Add(5 * time.Hour))
		e.tick()
		e.restart()
		e.clock.Set(sat.AddDate(0, 0, 7).Add(-time.Second))
		e.tick()
		if hasAudit(e.audit("r1"), "execute", step) {
			t.Fatal("started a second before the window")
		}
		if text, _ := e.sched.DigestText(ctx); !strings.Contains(text, "*Run migrations up* is approved and waiting for the window saturday-night") &&
			!strings.Contains(text, "is approved and waiting for the window saturday-night") {
			t.Errorf("digest %q", text)
		}
		e.clock.Set(sat.AddDate(0, 0, 7).Add(30 * time.Second))
		e.tick()
		if !hasAudit(e.audit("r1"), "execute", "starting "+step+", attempt 1") {
			t.Fatalf("not started in the window: %+v", e.audit("r1"))
		}
	})

	t.Run("an extra approver overrides, audited", func(t *testing.T) {
		e := setup(t)
		key := e.step("r1", step).Check.Pause.Key
		ov := func(user string) error {
			_, err := e.runner.Send(ctx, "r1", steps.Event{Kind: steps.EvAnswer, Step: step, User: user, Eligible: true, Key: key, Answer: steps.ChoiceOverrideWindow})
			return err
		}
		if err := ov("ULEAD1"); !errors.Is(err, steps.ErrDuplicate) {
			t.Errorf("the step's own approver: %v", err)
		}
		if err := ov("UREQ"); !errors.Is(err, steps.ErrSelfApproval) {
			t.Errorf("the requester: %v", err)
		}
		if err := ov("ULEAD2"); err != nil {
			t.Fatal(err)
		}
		a := e.audit("r1")
		if !hasAudit(a, "refused-answer", "by ULEAD1") || !hasAudit(a, "answer", "answer "+step+` "override-window" by ULEAD2: run paused -> running`) ||
			!hasAudit(a, "execute", "starting "+step+", attempt 1") {
			t.Errorf("audit %+v", a)
		}
		if r := e.load("r1"); r.Journal[key] != string(steps.ChoiceOverrideWindow) || r.Journal[key+".by"] != "ULEAD2" {
			t.Errorf("journal %v", r.Journal)
		}
	})
}
