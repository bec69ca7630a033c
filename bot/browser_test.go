package bot_test

import (
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/kongbot/kongbot/bot"
	"github.com/kongbot/kongbot/localslack"
	"github.com/kongbot/kongbot/localslack/browser"
	"github.com/kongbot/kongbot/schedule"
	"github.com/kongbot/kongbot/steps"
)

var botScreenshot = flag.String("bot-screenshot", "", "also write the bot browser test's approval screenshot here")

// TestBrowserApproval drives the real bot from localslack's page in
// headless Chromium: the on-call engineer types /kong upgrade start, a lead
// opens the run's thread, clicks Approve, confirms, and sees the approval
// message change to who approved; screenshots are saved as artifacts.
func TestBrowserApproval(t *testing.T) {
	if browser.Chromium() == "" {
		t.Skip("no chromium binary on PATH (scripts/test.sh installs Debian's chromium package)")
	}
	w := newWorld0141()
	h := newHarness(t, bot.ModeSocket, w)
	p := browser.Open(t, h.Slack.URL())

	p.ActAs(localslack.OnCallID)
	p.Type("/kong upgrade start prod to 1.0.3")
	p.WaitText("Run r1 started")
	id, parent := "r1", h.parent("r1")
	// 0.14.1 -> 1.0.3 stops first at `kong migrations up`, a high step.
	h.waitRun(id, "migrations approval", at(steps.RunAwaitingApproval, "hop2.migrations-up"))
	appr := h.threadMsg(parent, "Approval needed", "kong migrations up", "step_approve")

	p.ActAs(localslack.Lead1ID)
	p.OpenThread(parent)
	p.WaitMessageText(appr.TS, "Approval needed")
	var also []string
	if *botScreenshot != "" {
		also = append(also, *botScreenshot)
	}
	p.Screenshot("bot-approval-pending.png", also...)
	p.ClickButton(appr.TS, "step_approve")
	if title := p.ConfirmTitle(); title != "Approve this step?" {
		t.Errorf("confirm dialog title %q", title)
	}
	if n := len(h.Slack.Deliveries()); n == 0 {
		t.Fatalf("no deliveries at all")
	}
	p.Screenshot("bot-confirm.png")
	p.Confirm()
	p.WaitMessageText(appr.TS, "Approved by")
	p.WaitJS("approval buttons gone", `!document.querySelector('[data-testid="thread-panel"] [data-ts="`+appr.TS+`"] [data-action-id]')`)
	h.waitRun(id, "past the approval", func(r steps.Run) bool {
		return r.Current != "hop2.migrations-up" || r.Status != steps.RunAwaitingApproval
	})
	p.Screenshot("bot-approved.png")
	if m := h.current(appr.TS); !strings.Contains(msgText(m), "Approved by <@"+localslack.Lead1ID+">") {
		t.Errorf("approval message: %s", msgText(m))
	}
}

// TestBrowserReminderAndWindowOverride renders the scheduler's work in
// localslack's page: the reminder's group mention shows as @kong-leads,
// highlighted for a lead; the step waiting for its change window shows when
// the window opens, and a second lead overrides it through the danger
// confirmation dialog.
func TestBrowserReminderAndWindowOverride(t *testing.T) {
	if browser.Chromium() == "" {
		t.Skip("no chromium binary on PATH (scripts/test.sh installs Debian's chromium package)")
	}
	t0 := time.Date(2026, 12, 5, 4, 10, 0, 0, time.UTC) // after Saturday's window
	clock := schedule.NewFakeClock(t0)
	w := saturdayWindow(t)
	rules := testRules
	rules.RemindAfter, rules.Windows = 30*time.Minute, w
	h := newHarness(t, bot.ModeSocket, newWorld013(), withClock(clock, rules))
	sc := newScheduler(h, clock, rules)
	p := browser.Open(t, h.Slack.URL())

	id, parent, appr := h.toApproval(localslack.OnCallID)
	sc.at(t0.Add(31 * time.Minute))
	rem := h.threadMsg(parent, ":bell: Reminder", leadsMention)

	p.ActAs(localslack.Lead2ID)
	h.quiet(id)
	p.OpenThread(parent)
	p.WaitMessageText(rem.TS, "Reminder")
	p.WaitJS("the reminder mentions @kong-leads, highlighted for a lead",
		`[...document.querySelectorAll('[data-testid="thread-panel"] [data-ts="`+rem.TS+`"] .mention.me')].some(e => e.textContent === "@kong-leads")`)

	h.Click(localslack.Lead1ID, appr, "step_approve")
	h.waitRun(id, "waiting for the window", at(steps.RunPaused, termOn))
	win := h.threadMsg(parent, "waiting for the window saturday-night", "pause_override-window")
	p.WaitMessageText(win.TS, "opens Sat 12 Dec 02:00 UTC")
	h.quiet(id)
	p.Screenshot("bot-window-wait.png")
	p.ClickButton(win.TS, "pause_override-window")
	if title := p.ConfirmTitle(); title != "Override the change window?" {
		t.Errorf("confirm dialog title %q", title)
	}
	p.Confirm()
	p.WaitMessageText(win.TS, "Started outside its change window")
	h.waitRun(id, "outage group ran", at(steps.RunWaitingManual, "hop1.start-new-cluster"))
	p.Screenshot("bot-window-overridden.png")
}

// quiet waits until the run's messages are delivered and localslack has
// not changed for a while (the summary is edited at most once a second):
// the page re-renders on each change, and chromedp can lose a node it just
// found to a re-render before clicking it.
func (h *harness) quiet(id string) {
	h.T.Helper()
	h.delivered(id)
	last, since := h.Slack.Version(), time.Now()
	h.Eventually("localslack quiet", func() bool {
		if v := h.Slack.Version(); v != last {
			last, since = v, time.Now()
		}
		return time.Since(since) > 1500*time.Millisecond
	})
}
