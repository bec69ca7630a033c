package bot_test

import (
	"flag"
	"strings"
	"testing"

	"github.com/kongbot/kongbot/bot"
	"github.com/kongbot/kongbot/localslack"
	"github.com/kongbot/kongbot/localslack/browser"
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
	p := browser.Open(t, h.ls.URL())

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
	if n := len(h.ls.Deliveries()); n == 0 {
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
