package bot_test

import (
	"strings"
	"testing"

	"github.com/kongbot/kongbot/bot"
	"github.com/kongbot/kongbot/localslack"
	"github.com/kongbot/kongbot/steps"
)

// TestCommands: every /kong command answers the user specifically.
func TestCommands(t *testing.T) {
	h := newHarness(t, bot.ModeSocket, newWorld013())
	id, _, _ := h.toApproval(localslack.OnCallID)
	cases := []struct {
		user, text, want string
	}{
		{localslack.OnCallID, "/kong help", "/kong upgrade start <gateway>"},
		{localslack.OnCallID, "/kong upgrade strat prod", "did you mean `upgrade start`?"},
		{localslack.OnCallID, "/kong upgrade status", "*Open runs*"},
		{localslack.OnCallID, "/kong upgrade status " + id, "Stop traffic: request-termination on — _awaiting-approval_"},
		{localslack.OnCallID, "/kong upgrade status r99", "There is no run `r99`"},
		{localslack.OnCallID, "/kong upgrade history", "*Runs, newest first*"},
		{localslack.OnCallID, "/kong upgrade audit " + id, "hash chain intact"},
		{localslack.OnCallID, "/kong gateways", "being upgraded by run *" + id + "*"},
		{localslack.OnCallID, "/kong check prod", "kong-old-1 (0.13.1 generation): :white_check_mark: 0.13.1"},
		{localslack.OnCallID, "/kong check staging", "I know no gateway `staging`"},
		{localslack.OnCallID, "/kong upgrade start prod to 0.14.1", "Gateway *prod* is being upgraded by run *" + id + "*"},
		{localslack.OnCallID, "/kong upgrade retry " + id, "Nothing to retry: run *" + id + "* is awaiting-approval"},
		{localslack.OnCallID, `/kong upgrade schedule prod to 1.0.3 at "0 2 * * 6"`, "Scheduling is not configured"},
		{localslack.GuestID, "/kong upgrade start prod", "guest accounts cannot start upgrades"},
		{localslack.DeletedID, "/kong upgrade start prod", "deactivated accounts cannot start upgrades"},
		{localslack.Lead2ID, "/kong upgrade start prod to 0.13.0", "unknown version"},
	}
	for _, c := range cases {
		h.Command(c.user, c.text)
		h.ephemeral(c.user, c.want)
	}
	if runs := h.runState(id); runs.Status != steps.RunAwaitingApproval {
		t.Errorf("commands moved the run to %s", runs.Status)
	}
}

// TestCommandChannels: /kong is refused outside the configured channels,
// in the ack itself.
func TestCommandChannels(t *testing.T) {
	h := newHarness(t, bot.ModeHTTP, newWorld013(), func(o *bot.Options, _ *runnerOptions, _ *localslack.Server) {
		o.Channels = []string{"C0OTHER001"}
	})
	d := h.Command(localslack.OnCallID, "/kong upgrade start prod")
	if !strings.Contains(string(d.Response), "kongbot takes commands only in \\u003c#C0OTHER001\\u003e") &&
		!strings.Contains(string(d.Response), "kongbot takes commands only in <#C0OTHER001>") {
		t.Fatalf("ack = %s", d.Response)
	}
}

// TestAppHome: the viewer's pending approvals, active runs and recent runs,
// with links to the threads, republished as runs change.
func TestAppHome(t *testing.T) {
	eachMode(t, func(t *testing.T, mode string) {
		h := newHarness(t, mode, newWorld013())
		id, _, appr := h.toApproval(localslack.OnCallID)
		h.delivered(id)
		if _, err := h.Slack.OpenHome(h.Ctx, localslack.Lead1ID); err != nil {
			t.Fatal(err)
		}
		if _, err := h.Slack.OpenHome(h.Ctx, localslack.OnCallID); err != nil {
			t.Fatal(err)
		}
		home := func(user string) string {
			v, ok := h.Slack.Home(user)
			if !ok {
				return ""
			}
			return unescapeJSON(string(v.View))
		}
		h.Eventually("lead's home lists the pending approval", func() bool {
			s := home(localslack.Lead1ID)
			return strings.Contains(s, "Waiting for your approval") && strings.Contains(s, "Stop traffic: request-termination on") &&
				strings.Contains(s, "/archives/"+localslack.ChannelID+"/p")
		})
		h.Eventually("requester's home lists the run but no approval", func() bool {
			s := home(localslack.OnCallID)
			return strings.Contains(s, "*Active runs*") && strings.Contains(s, id) && strings.Contains(s, "nothing waits for you")
		})
		h.Click(localslack.Lead1ID, appr, "step_approve")
		h.Eventually("home republished after the approval", func() bool {
			return strings.Contains(home(localslack.Lead1ID), "nothing waits for you")
		})
	})
}

// TestRestartEditsSameMessages: a bot restarted on the same store file
// edits the messages it posted before instead of posting new ones.
func TestRestartEditsSameMessages(t *testing.T) {
	h := newHarness(t, bot.ModeSocket, newWorld013())
	id, parent, appr := h.toApproval(localslack.OnCallID)
	h.delivered(id)
	before := len(h.Slack.Thread(parent))
	h.restart()
	// Resume re-posts the approval request: same key, so it is an edit.
	h.delivered(id)
	if after := len(h.Slack.Thread(parent)); after != before {
		t.Fatalf("thread grew from %d to %d messages after a restart", before, after)
	}
	h.Click(localslack.Lead1ID, h.current(appr.TS), "step_approve")
	h.waitRun(id, "past approval", func(r steps.Run) bool { return r.Status != steps.RunAwaitingApproval })
	h.Eventually("approval decided in the old message", func() bool {
		return strings.Contains(msgText(h.current(appr.TS)), "Approved by")
	})
}

// TestRestartDuringAbort: a run waiting for a rollback choice is resumed
// by a restarted bot; its offer is edited, not posted again, and a choice
// made on it still works.
func TestRestartDuringAbort(t *testing.T) {
	w := newWorld013()
	w.failMigrate = 1
	h := newHarness(t, bot.ModeHTTP, w)
	id, parent, appr := h.toApproval(localslack.OnCallID)
	h.Click(localslack.Lead1ID, appr, "step_approve")
	h.waitRun(id, "migration failed", at(steps.RunFailed, "hop1.migrations-up"))
	h.Click(localslack.OnCallID, h.threadMsg(parent, "kong migrations up (0.14.1)", "run_abort"), "run_abort")
	offer := h.threadMsg(parent, "is being aborted", "rollback_remove-termination")
	h.delivered(id)
	before := len(h.Slack.Thread(parent))
	h.restart()
	h.delivered(id)
	if after := len(h.Slack.Thread(parent)); after != before {
		t.Fatalf("thread grew from %d to %d messages after a restart", before, after)
	}
	h.Click(localslack.Lead1ID, h.current(offer.TS), "rollback_none")
	h.waitRun(id, "aborted", func(r steps.Run) bool { return r.Status == steps.RunAborted })
	h.Eventually("offer shows the choice", func() bool {
		return strings.Contains(msgText(h.current(offer.TS)), "Chosen by <@"+localslack.Lead1ID+">")
	})
}
