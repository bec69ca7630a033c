package bot_test

import (
	"strings"
	"testing"
	"time"

	"github.com/kongbot/kongbot/bot"
	"github.com/kongbot/kongbot/config"
	"github.com/kongbot/kongbot/localslack"
	"github.com/kongbot/kongbot/schedule"
	"github.com/kongbot/kongbot/steps"
)

// withClock gives the runner a fake clock and both the runner and the bot
// rules (windows, expiry). The bot keeps the wall clock: its delivery
// backoff and edit throttling need time to pass.
// saturdayWindow is the change window "saturday-night", Saturdays 02:00 to
// 04:00 UTC, for the gateways given (none: every gateway).
func saturdayWindow(t *testing.T, gateways ...string) *schedule.Windows {
	t.Helper()
	w, err := schedule.NewWindows([]config.ChangeWindow{{Name: "saturday-night", Start: "0 2 * * 6", Duration: 2 * time.Hour, Gateways: gateways}})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func withClock(c *schedule.FakeClock, rules steps.ApprovalRules) harnessOpt {
	return func(bo *bot.Options, ro *runnerOptions, _ *localslack.Server) {
		ro.Now, ro.Rules, bo.Rules = c.Now, rules, rules
	}
}

// scheduler drives reminders, expiry and window openings from the run's
// stored state at the fake clock's time; the test calls tick instead of
// waiting.
type scheduler struct {
	h     *harness
	s     *schedule.Scheduler
	clock *schedule.FakeClock
}

func newScheduler(h *harness, clock *schedule.FakeClock, rules steps.ApprovalRules) *scheduler {
	h.T.Helper()
	s, err := schedule.New(schedule.Options{Store: h.st, Runs: h.rn, Rules: rules, Clock: clock})
	if err != nil {
		h.T.Fatalf("schedule.New: %v", err)
	}
	return &scheduler{h: h, s: s, clock: clock}
}

// at moves the clock to t and does what is due then.
func (s *scheduler) at(t time.Time) {
	s.h.T.Helper()
	s.clock.Set(t)
	if err := s.s.Tick(s.h.Ctx); err != nil {
		s.h.T.Fatalf("tick at %s: %v", t.Format(time.RFC3339), err)
	}
}

// threadCount counts the thread messages containing sub.
func (h *harness) threadCount(parent, sub string) int {
	n := 0
	for _, m := range h.Slack.Thread(parent) {
		if strings.Contains(msgText(m), sub) {
			n++
		}
	}
	return n
}

func (h *harness) executed(id, step string) bool {
	h.T.Helper()
	es, err := h.st.Audit(h.Ctx, id)
	if err != nil {
		h.T.Fatal(err)
	}
	for _, e := range es {
		if e.Kind == "execute" && strings.Contains(e.Text, "starting "+step+",") {
			return true
		}
	}
	return false
}

const (
	leadsMention = "<!subteam^" + localslack.LeadsGroupID + "|@" + localslack.LeadsHandle + ">"
	termOn       = "hop1.termination-on"
	termOnTitle  = "Stop traffic: request-termination on"
)

// TestApprovalReminderExpiryAndRerequest: nobody answers the outage
// group's approval. The scheduler reminds the leads (mentioning the group),
// then the request expires: its buttons go, the step's message says when
// and offers to ask again, and an old Approve click changes nothing. The
// requester re-requests, a lead approves, and the step runs.
func TestApprovalReminderExpiryAndRerequest(t *testing.T) {
	eachMode(t, func(t *testing.T, mode string) {
		t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
		clock := schedule.NewFakeClock(t0)
		rules := testRules
		rules.RemindAfter, rules.ExpireAfter = 30*time.Minute, 2*time.Hour
		h := newHarness(t, mode, newWorld013(), withClock(clock, rules))
		sc := newScheduler(h, clock, rules)

		id, parent, appr := h.toApproval(localslack.OnCallID)
		asked := h.runState(id)
		st, _ := asked.Step(termOn)
		if !st.AskedAt.Equal(t0) {
			t.Fatalf("asked at %s, want the fake clock's %s", st.AskedAt, t0)
		}

		sc.at(t0.Add(10 * time.Minute))
		h.delivered(id)
		if n := h.threadCount(parent, ":bell: Reminder"); n != 0 {
			t.Fatalf("%d reminders after 10 minutes", n)
		}
		sc.at(t0.Add(31 * time.Minute))
		rem := h.threadMsg(parent, ":bell: Reminder", termOnTitle, leadsMention)
		if hasButtons(rem) {
			t.Errorf("the reminder has buttons: %s", msgText(rem))
		}
		if !strings.Contains(rem.Text, leadsMention) {
			// Slack notifies from the text as well as the blocks.
			t.Errorf("the reminder's text does not mention the group: %q", rem.Text)
		}

		sc.at(t0.Add(2*time.Hour + time.Minute))
		h.waitRun(id, "request expired", func(r steps.Run) bool {
			st, ok := r.Step(termOn)
			return ok && r.Status == steps.RunPaused && st.Check != nil && st.Check.Pause != nil && st.Check.Pause.Kind == steps.PauseExpired
		})
		const expiredAt = "|2026-12-03T12:00:00Z> (after 2h); nothing was changed. Re-request to ask again."
		h.Eventually("approval buttons gone", func() bool {
			m := h.current(appr.TS)
			return !hasButtons(m) && strings.Contains(msgText(m), "Approval request expired at <!date^") && strings.Contains(msgText(m), expiredAt)
		})
		exp := h.threadMsg(parent, "Step 6/12", "Approval request expired at", expiredAt, "pause_re-request", "pause_abort")
		for _, want := range []string{`"text":"Re-request approval"`, `"style":"primary"`, `"text":"Abort"`, `"style":"danger"`} {
			if !strings.Contains(strings.ReplaceAll(string(exp.Blocks), " ", ""), strings.ReplaceAll(want, " ", "")) {
				t.Errorf("expired step message lacks %s: %s", want, exp.Blocks)
			}
		}
		if strings.Contains(msgText(exp), "No longer waiting") {
			t.Errorf("expired step message: %s", msgText(exp))
		}

		// A client still showing the request cannot approve it.
		h.Click(localslack.Lead1ID, appr, "step_approve", localslack.AsSeen(appr))
		h.ephemeral(localslack.Lead1ID, "Nothing changed")
		// Guests cannot ask again; the requester can.
		h.Click(localslack.GuestID, exp, "pause_re-request")
		h.ephemeral(localslack.GuestID, "Only @kong-leads or the person who started run *"+id+"* can re-request the approval of *"+termOnTitle+"*")
		if r := h.runState(id); r.Status != steps.RunPaused || h.executed(id, termOn) {
			t.Fatalf("refused clicks moved the run: %s", r.Status)
		}
		h.Click(localslack.OnCallID, exp, "pause_re-request")
		h.waitRun(id, "asked again", at(steps.RunAwaitingApproval, termOn))
		h.threadMsg(parent, ":repeat: <@"+localslack.OnCallID+"> re-requested the approval of *"+termOnTitle+"*")
		h.Eventually("request open again, in place", func() bool {
			m := h.current(appr.TS)
			return hasButtons(m) && strings.Contains(msgText(m), "none yet") && !strings.Contains(msgText(m), "expired")
		})
		h.Eventually("expired buttons gone", func() bool { return !hasButtons(h.current(exp.TS)) })
		h.Eventually("the leads reminded again", func() bool { return h.threadCount(parent, ":bell: Reminder") == 2 })

		h.Click(localslack.Lead1ID, h.current(appr.TS), "step_approve")
		h.waitRun(id, "outage group ran", at(steps.RunWaitingManual, "hop1.start-new-cluster"))
		if !h.executed(id, termOn) || !h.executed(id, "hop1.migrations-up") {
			t.Error("the outage steps did not run after the approval")
		}
		r := h.runState(id)
		key := "expired/" + termOn + "/"
		found := false
		for k, v := range r.Journal {
			if strings.HasPrefix(k, key) && !strings.Contains(k[len(key):], ".") {
				found = found || v == string(steps.ChoiceRerequest) && r.Journal[k+".by"] == localslack.OnCallID
			}
		}
		if !found {
			t.Errorf("the re-request is not in the journal: %v", r.Journal)
		}
		h.delivered(id)
	})
}

// TestChangeWindowWaitAndOverride: the outage group is approved after
// Saturday's window closed, so its first step waits, saying when the next
// window opens. The requester and the step's own approver cannot override
// (each told why); the scheduler's ticks before the window change nothing;
// the other lead overrides and the step runs, noted in the thread and on
// the step.
func TestChangeWindowWaitAndOverride(t *testing.T) {
	eachMode(t, func(t *testing.T, mode string) {
		t0 := time.Date(2026, 12, 5, 4, 10, 0, 0, time.UTC) // Saturday, 10 minutes after the window closed
		clock := schedule.NewFakeClock(t0)
		w := saturdayWindow(t, "prod")
		rules := testRules
		rules.Windows = w
		h := newHarness(t, mode, newWorld013(), withClock(clock, rules))
		sc := newScheduler(h, clock, rules)

		id, parent, appr := h.toApproval(localslack.OnCallID)
		h.Click(localslack.Lead1ID, appr, "step_approve")
		h.waitRun(id, "waiting for the window", at(steps.RunPaused, termOn))
		win := h.threadMsg(parent, "Step 6/12", "waiting for the window saturday-night that opens Sat 12 Dec 02:00 UTC",
			"pause_override-window", "Override the window", "needs an extra approver", "audit log", "pause_abort")
		if h.executed(id, termOn) {
			t.Fatal("the step started outside its window")
		}
		h.Eventually("approval decided", func() bool {
			return strings.Contains(msgText(h.current(appr.TS)), "Approved by <@"+localslack.Lead1ID+">")
		})

		h.Click(localslack.OnCallID, win, "pause_override-window")
		h.ephemeral(localslack.OnCallID, "Overriding the change window for *"+termOnTitle+"* needs an extra approver from @kong-leads: someone who neither started the run nor approved the step; you are not in @kong-leads.")
		h.Click(localslack.Lead1ID, win, "pause_override-window")
		h.ephemeral(localslack.Lead1ID, "You approved *"+termOnTitle+"* already, so you cannot also override its change window")
		h.Eventually("refusals audited", func() bool { return h.audits(id, "refused-answer") == 2 })

		// A day later the window is still closed: the tick does nothing.
		sc.at(t0.Add(24 * time.Hour))
		if r := h.runState(id); r.Status != steps.RunPaused || h.executed(id, termOn) {
			t.Fatalf("before the window: run %s", r.Status)
		}

		h.Click(localslack.Lead2ID, h.current(win.TS), "pause_override-window")
		h.waitRun(id, "outage group ran", at(steps.RunWaitingManual, "hop1.start-new-cluster"))
		h.threadMsg(parent, ":warning: <@"+localslack.Lead2ID+"> overrode the change window: *"+termOnTitle+"* starts now")
		h.Eventually("step shows the override", func() bool {
			m := h.current(win.TS)
			return !hasButtons(m) && strings.Contains(msgText(m), "Started outside its change window: overridden by <@"+localslack.Lead2ID+"> at <!date^")
		})
		es, err := h.st.Audit(h.Ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		var audited bool
		for _, e := range es {
			audited = audited || e.Kind == "answer" && e.Actor == localslack.Lead2ID && strings.Contains(e.Text, `"override-window"`)
		}
		if !audited {
			t.Errorf("the override is not audited: %+v", es)
		}
		h.delivered(id)
	})
}

// TestWindowOpensAfterRefusedOverrides: a lead starts the run and the
// other lead approves after the window; neither may override (the
// requester, the approver), so the step waits until the scheduler, at the
// window's opening, starts it. Its buttons go and no override is noted.
func TestWindowOpensAfterRefusedOverrides(t *testing.T) {
	eachMode(t, func(t *testing.T, mode string) {
		t0 := time.Date(2026, 12, 5, 4, 10, 0, 0, time.UTC)
		opens := time.Date(2026, 12, 12, 2, 0, 0, 0, time.UTC)
		clock := schedule.NewFakeClock(t0)
		w := saturdayWindow(t)
		rules := testRules
		rules.Windows = w
		h := newHarness(t, mode, newWorld013(), withClock(clock, rules))
		sc := newScheduler(h, clock, rules)

		id, parent, appr := h.toApproval(localslack.Lead1ID)
		h.Click(localslack.Lead2ID, appr, "step_approve")
		h.waitRun(id, "waiting for the window", at(steps.RunPaused, termOn))
		win := h.threadMsg(parent, "waiting for the window saturday-night that opens Sat 12 Dec 02:00 UTC", "pause_override-window")

		h.Click(localslack.Lead1ID, win, "pause_override-window")
		h.ephemeral(localslack.Lead1ID, "You started run *"+id+"*, so you cannot override the change window for *"+termOnTitle+"*: that needs an extra approver from @kong-leads")
		h.Click(localslack.Lead2ID, win, "pause_override-window")
		h.ephemeral(localslack.Lead2ID, "You approved *"+termOnTitle+"* already")
		h.Eventually("refusals audited", func() bool { return h.audits(id, "refused-answer") == 2 })

		sc.at(opens.Add(-time.Second))
		if r := h.runState(id); r.Status != steps.RunPaused || h.executed(id, termOn) {
			t.Fatalf("a second before the window: run %s", r.Status)
		}
		sc.at(opens.Add(30 * time.Second))
		h.waitRun(id, "outage group ran in the window", at(steps.RunWaitingManual, "hop1.start-new-cluster"))
		h.Eventually("window wait over", func() bool {
			m := h.current(win.TS)
			return !hasButtons(m) && strings.Contains(msgText(m), "Done") && !strings.Contains(msgText(m), "waiting for the window")
		})
		if txt := msgText(h.current(win.TS)); strings.Contains(txt, "overridden") {
			t.Errorf("a step started in its window says it was overridden: %s", txt)
		}
		h.delivered(id)
	})
}
