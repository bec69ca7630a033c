package bot_test

import (
	"strings"
	"testing"

	"github.com/kongbot/kongbot/bot"
	"github.com/kongbot/kongbot/localslack"
	"github.com/kongbot/kongbot/steps"
)

// TestRunToTheEnd drives a whole hop-1 run from Slack: the start command,
// manual steps marked done (one failing verification first), the outage
// group approved by a lead after refusals for the requester, a guest and
// a non-lead, migration output as a file, and the broadcast summary.
func TestRunToTheEnd(t *testing.T) {
	eachMode(t, func(t *testing.T, mode string) {
		h := newHarness(t, mode, newWorld013())
		d := h.Command(localslack.OnCallID, "/kong upgrade start prod to 0.14.1")
		if !strings.Contains(string(d.Response), "planning the upgrade") && !strings.Contains(string(d.Response), "Reading the gateway") {
			t.Errorf("ack = %s", d.Response)
		}
		id, parent := "r1", h.parent("r1")
		h.ephemeral(localslack.OnCallID, "Run *r1* started")
		sum := h.current(parent)
		for _, want := range []string{"Kong upgrade r1", "prod", "0.13.1 → 0.14.1", "<@" + localslack.OnCallID + ">", "Provision 0.14.1 nodes"} {
			if !strings.Contains(msgText(sum), want) {
				t.Errorf("summary lacks %q: %s", want, msgText(sum))
			}
		}

		// Step 4 is manual: people press Mark done, the bot verifies.
		h.waitRun(id, "provision step waiting", at(steps.RunWaitingManual, "hop1.provision-new-nodes"))
		prov := h.threadMsg(parent, "Provision 0.14.1 nodes", "step_done")
		if !strings.Contains(msgText(prov), "datastore kong@db-1") {
			t.Errorf("step message does not say what it does: %s", msgText(prov))
		}
		h.Click(localslack.GuestID, prov, "step_done")
		h.ephemeral(localslack.GuestID, "guest accounts cannot mark this step done")
		h.Click(localslack.OnCallID, prov, "step_done")

		// The outage group waits for a lead.
		h.waitRun(id, "outage approval", at(steps.RunAwaitingApproval, "hop1.termination-on"))
		appr := h.threadMsg(parent, "Approval needed", "hop1-outage", "step_approve")
		for _, want := range []string{"high", "1 approver, not the requester", "kong migrations up", "S0KONGLEAD", "none yet"} {
			if !strings.Contains(msgText(appr), want) {
				t.Errorf("approval message lacks %q: %s", want, msgText(appr))
			}
		}
		h.Click(localslack.OnCallID, appr, "step_approve")
		h.ephemeral(localslack.OnCallID, "only @kong-leads can approve this step; you started this run")
		h.Click(localslack.GuestID, appr, "step_approve")
		h.ephemeral(localslack.GuestID, "guest accounts cannot approve this step")
		if got := h.runState(id); got.Status != steps.RunAwaitingApproval {
			t.Fatalf("refused clicks moved the run: %s", got.Status)
		}
		h.Click(localslack.Lead1ID, appr, "step_approve")

		// termination-on, migrations-up (with a log), then the new cluster
		// is not up yet.
		h.waitRun(id, "start-new-cluster waiting", at(steps.RunWaitingManual, "hop1.start-new-cluster"))
		h.Eventually("approval message decided", func() bool {
			m := h.current(appr.TS)
			return !hasButtons(m) && strings.Contains(msgText(m), "Approved by <@"+localslack.Lead1ID+">")
		})
		// A lead clicking the old message gets told, and nothing changes.
		h.Click(localslack.Lead2ID, appr, "step_approve", localslack.AsSeen(appr))
		h.ephemeral(localslack.Lead2ID, "was already approved by <@"+localslack.Lead1ID+">")
		if n := h.audits(id, "approve"); n != 1 {
			t.Errorf("approve transitions = %d, want 1", n)
		}

		start := h.threadMsg(parent, "Start the 0.14.1 cluster", "Still missing", "node kong-014-1 does not answer")
		h.Click(localslack.OnCallID, start, "step_done")
		h.ephemeral(localslack.OnCallID, "it is not done yet. Still missing:\n• node kong-014-1 does not answer")
		h.w.startGen("0.14.1", "0.14.1")
		h.Click(localslack.OnCallID, h.current(start.TS), "step_done")

		h.waitRun(id, "decommission waiting", at(steps.RunWaitingManual, "hop1.decommission-old"))
		dec := h.threadMsg(parent, "Decommission the 0.13.1 nodes", "node kong-old-1 still answers")
		h.w.stopGen("0.13.1")
		h.Click(localslack.OnCallID, dec, "step_done")
		h.waitRun(id, "run succeeded", func(r steps.Run) bool { return r.Status == steps.RunSucceeded })
		h.delivered(id)

		// The migration log is a file in the thread.
		h.Eventually("migration log file", func() bool {
			for _, f := range h.Slack.Files() {
				if f.ThreadTS == parent && f.Name == "r1-hop1.migrations-up-attempt1.log" && strings.Count(string(f.Content), "\n") == 40 {
					return true
				}
			}
			return false
		})
		// The end is broadcast to the channel.
		var broadcast bool
		h.Eventually("broadcast end", func() bool {
			for _, m := range h.Slack.Channel(localslack.ChannelName) {
				if m.Broadcast && strings.Contains(msgText(m), "Run r1 succeeded") {
					broadcast = true
				}
			}
			return broadcast
		})
		// The parent shows every step done, edited in place.
		h.Eventually("summary edited to succeeded", func() bool {
			m := h.current(parent)
			return m.Edits > 0 && strings.Contains(msgText(m), ":tada:") && !strings.Contains(msgText(m), ":white_circle:")
		})
		// One message per step key, never posted twice.
		seen := map[string]int{}
		for _, m := range h.Slack.Thread(parent) {
			for _, s := range []string{"Step 4/12 ·", "Step 9/12 ·", "Step 12/12 ·"} {
				if strings.Contains(msgText(m), s) {
					seen[s]++
				}
			}
		}
		for s, n := range seen {
			if n != 1 {
				t.Errorf("%q appears in %d thread messages, want 1", s, n)
			}
		}
		if len(seen) != 3 {
			t.Errorf("step messages found: %v", seen)
		}
		// Every ack came well within Slack's 3 s.
		for _, d := range h.Slack.Deliveries() {
			if d.Late || !d.Acked {
				t.Errorf("delivery %s %s: acked %v late %v (%s)", d.Kind, d.Summary, d.Acked, d.Late, d.AckLatency)
			}
		}
	})
}

// toApproval starts a hop-1 run as user and brings it to the outage
// group's approval; it returns the run, its parent and the approval message.
func (h *harness) toApproval(user string) (string, string, localslack.Message) {
	h.T.Helper()
	id, parent := h.startRun(user, "/kong upgrade start prod to 0.14.1")
	h.waitRun(id, "provision step waiting", at(steps.RunWaitingManual, "hop1.provision-new-nodes"))
	h.Click(user, h.threadMsg(parent, "Provision 0.14.1 nodes", "step_done"), "step_done")
	h.waitRun(id, "outage approval", at(steps.RunAwaitingApproval, "hop1.termination-on"))
	return id, parent, h.threadMsg(parent, "Approval needed", "step_approve")
}

// TestApprovalRules: a lead who started the run cannot approve its high
// step; two leads clicking at once give exactly one transition; a double
// click by the same lead is harmless.
func TestApprovalRules(t *testing.T) {
	eachMode(t, func(t *testing.T, mode string) {
		h := newHarness(t, mode, newWorld013())
		id, _, appr := h.toApproval(localslack.Lead1ID)
		h.Click(localslack.Lead1ID, appr, "step_approve")
		h.ephemeral(localslack.Lead1ID, "You started run *"+id+"*; *Stop traffic: request-termination on* is a high-risk step and needs 1 approver, not the requester")
		if n := h.audits(id, "refused-approve"); n != 1 {
			t.Errorf("refused approvals audited = %d, want 1", n)
		}
		// Deactivated accounts never approve.
		h.Click(localslack.DeletedID, appr, "step_approve")
		h.ephemeral(localslack.DeletedID, "deactivated accounts cannot approve this step")
		// Membership is asked again at the decision: lena, just removed
		// from @kong-leads, is refused although the group was read before.
		if err := h.Slack.SetGroupMembers(localslack.LeadsGroupID, []string{localslack.Lead1ID}); err != nil {
			t.Fatal(err)
		}
		h.Click(localslack.Lead2ID, appr, "step_approve")
		h.ephemeral(localslack.Lead2ID, "only @kong-leads can approve this step")
		if err := h.Slack.SetGroupMembers(localslack.LeadsGroupID, []string{localslack.Lead1ID, localslack.Lead2ID}); err != nil {
			t.Fatal(err)
		}
		if st := h.runState(id); st.Status != steps.RunAwaitingApproval {
			t.Fatalf("refused clicks moved the run to %s", st.Status)
		}

		// Lead 2 double-clicks while lead 1's click... lead 1 may not; so
		// lead 2 and a second lead-2 click race.
		done := make(chan struct{}, 3)
		for range 3 {
			go func() {
				defer func() { done <- struct{}{} }()
				val, _ := buttonValue(appr, "step_approve")
				if _, err := h.Slack.Click(h.Ctx, localslack.Lead2ID, localslack.ChannelID, appr.TS, "step_approve", val); err != nil {
					t.Errorf("click: %v", err)
				}
			}()
		}
		for range 3 {
			<-done
		}
		h.waitRun(id, "past the approval", func(r steps.Run) bool { return r.Status != steps.RunAwaitingApproval })
		h.Eventually("refusals audited", func() bool { return h.audits(id, "approve")+h.audits(id, "refused-approve") >= 6 })
		if n := h.audits(id, "approve"); n != 1 {
			t.Errorf("approve transitions = %d, want exactly 1", n)
		}
		if got := len(h.runState(id).Approvals["hop1.termination-on"]); got != 1 {
			t.Errorf("approvals recorded = %d, want 1", got)
		}
	})
}

// TestReject: a lead rejects; the run is aborted, the buttons are replaced
// by who rejected, and the end is broadcast.
func TestReject(t *testing.T) {
	eachMode(t, func(t *testing.T, mode string) {
		h := newHarness(t, mode, newWorld013())
		id, parent, appr := h.toApproval(localslack.OnCallID)
		h.Click(localslack.Lead2ID, appr, "step_reject")
		h.waitRun(id, "aborted", func(r steps.Run) bool { return r.Status == steps.RunAborted })
		h.Eventually("rejection shown", func() bool {
			m := h.current(appr.TS)
			return !hasButtons(m) && strings.Contains(msgText(m), "Rejected by <@"+localslack.Lead2ID+">")
		})
		h.threadMsg(parent, "Run r1 aborted", "rejected hop1.termination-on", "hop1.snapshot")
		h.Eventually("summary shows aborted", func() bool {
			return strings.Contains(msgText(h.current(parent)), "aborted by <@"+localslack.Lead2ID+">")
		})
		// The gateway is free again.
		id2, _ := h.startRun(localslack.OnCallID, "/kong upgrade start prod to 0.14.1")
		if id2 == id {
			t.Fatalf("second run reused %s", id)
		}
	})
}

// TestFailureRetryAndAbort: a failed migration offers Retry and Abort;
// retry runs it again; a second failure is aborted from its message, and
// the rollback offered (remove request-termination) is chosen and done.
func TestFailureRetryAndAbort(t *testing.T) {
	eachMode(t, func(t *testing.T, mode string) {
		w := newWorld013()
		w.failMigrate = 2
		h := newHarness(t, mode, w)
		id, parent, appr := h.toApproval(localslack.OnCallID)
		h.Click(localslack.Lead1ID, appr, "step_approve")
		h.waitRun(id, "migration failed", at(steps.RunFailed, "hop1.migrations-up"))
		failed := h.threadMsg(parent, "kong migrations up (0.14.1)", "exited 1", "step_retry")
		h.Click(localslack.GuestID, failed, "step_retry")
		h.ephemeral(localslack.GuestID, "guest accounts cannot retry this step")
		h.Click(localslack.OnCallID, failed, "step_retry")
		h.threadMsg(parent, "<@"+localslack.OnCallID+"> retried *kong migrations up (0.14.1)*")
		h.waitRun(id, "failed again", func(r steps.Run) bool {
			st, _ := r.Step("hop1.migrations-up")
			return r.Status == steps.RunFailed && st.Attempts == 2
		})
		h.Click(localslack.OnCallID, h.threadMsg(parent, "(attempt 2)", "run_abort"), "run_abort")
		h.waitRun(id, "rollback offered", func(r steps.Run) bool { return r.Status == steps.RunAborting })
		offer := h.threadMsg(parent, "is being aborted", "rollback_remove-termination")
		h.Click(localslack.OnCallID, offer, "rollback_remove-termination")
		h.ephemeral(localslack.OnCallID, "only @kong-leads can choose a rollback")
		h.Click(localslack.Lead2ID, offer, "rollback_remove-termination")
		h.waitRun(id, "aborted", func(r steps.Run) bool { return r.Status == steps.RunAborted })
		if w.termination {
			t.Errorf("request-termination still on after the rollback")
		}
		h.Eventually("offer shows the choice", func() bool {
			m := h.current(offer.TS)
			return !hasButtons(m) && strings.Contains(msgText(m), "Chosen by <@"+localslack.Lead2ID+">")
		})
		h.Eventually("failed step no longer offers retry", func() bool {
			m := h.current(failed.TS)
			return !hasButtons(m) && strings.Contains(msgText(m), "aborted by")
		})
		// Both failed attempts' logs are files in the thread.
		h.Eventually("two log files", func() bool {
			n := 0
			for _, f := range h.Slack.Files() {
				if f.ThreadTS == parent && strings.HasPrefix(f.Name, "r1-hop1.migrations-up-attempt") {
					n++
				}
			}
			return n == 2
		})
	})
}

// TestAbortCommand: /kong upgrade abort from a non-member is refused; from
// the requester it aborts a run waiting for approval.
func TestAbortCommand(t *testing.T) {
	eachMode(t, func(t *testing.T, mode string) {
		h := newHarness(t, mode, newWorld013())
		id, parent, appr := h.toApproval(localslack.OnCallID)
		h.Command(localslack.GuestID, "/kong upgrade abort "+id+" changed my mind")
		h.ephemeral(localslack.GuestID, "guest accounts cannot abort runs")
		h.Command(localslack.OnCallID, "/kong upgrade abort "+id+" wrong window")
		h.ephemeral(localslack.OnCallID, "Run *"+id+"* is aborted")
		h.Eventually("approval buttons gone", func() bool { return !hasButtons(h.current(appr.TS)) })
		h.threadMsg(parent, "Run r1 aborted", "wrong window")
		h.Command(localslack.OnCallID, "/kong upgrade abort "+id)
		h.ephemeral(localslack.OnCallID, "already aborted")
	})
}

// TestHop2PauseAndTwoApprovers drives 0.14.1 -> 1.0.3: the gradual shift
// pauses after its first stage and a lead answers "go on" (the on-call
// engineer may not); `migrations finish` needs two distinct leads, and the
// message shows the progress between them.
func TestHop2PauseAndTwoApprovers(t *testing.T) {
	eachMode(t, func(t *testing.T, mode string) {
		w := newWorld0141()
		w.pauseShift = true
		h := newHarness(t, mode, w)
		id, parent := h.startRun(localslack.OnCallID, "/kong upgrade start prod to 1.0.3")
		h.waitRun(id, "migrations approval", at(steps.RunAwaitingApproval, "hop2.migrations-up"))
		h.Click(localslack.Lead1ID, h.threadMsg(parent, "Approval needed", "kong migrations up", "step_approve"), "step_approve")
		h.waitRun(id, "new nodes checked, not there yet", checkedPending("hop2.provision-new-nodes"))
		w.startGen("1.0.3", "1.0.3")
		h.Click(localslack.OnCallID, h.threadMsg(parent, "Start 1.0.3 nodes alongside 0.14.1", "step_done"), "step_done")
		h.waitRun(id, "shift approval", at(steps.RunAwaitingApproval, "hop2.traffic-shift"))
		h.Click(localslack.Lead2ID, h.threadMsg(parent, "Approval needed", "Shift traffic to 1.0.3", "step_approve"), "step_approve")

		h.waitRun(id, "shift paused", at(steps.RunPaused, "hop2.traffic-shift"))
		paused := h.threadMsg(parent, "Go on to 25%?", "pause_approve", "pause_rollback", "pause_abort", "812 requests")
		h.Click(localslack.OnCallID, paused, "pause_approve")
		h.ephemeral(localslack.OnCallID, "only @kong-leads can answer for this step")
		h.Click(localslack.Lead1ID, paused, "pause_approve")
		h.waitRun(id, "decommission checked, not done yet", checkedPending("hop2.decommission-old"))
		h.threadMsg(parent, "<@"+localslack.Lead1ID+"> answered *Go on*", "Go on to 25%?")
		h.Eventually("pause buttons gone", func() bool { return !hasButtons(h.current(paused.TS)) })
		w.stopGen("0.14.1")
		h.Click(localslack.OnCallID, h.threadMsg(parent, "Decommission the 0.14.1 nodes", "step_done"), "step_done")

		h.waitRun(id, "finish approval", at(steps.RunAwaitingApproval, "hop2.migrations-finish"))
		fin := h.threadMsg(parent, "Approval needed", "kong migrations finish", "irreversible", "2 distinct approvers, neither the requester")
		h.Click(localslack.Lead1ID, fin, "step_approve")
		h.Eventually("progress 1/2", func() bool {
			m := h.current(fin.TS)
			return hasButtons(m) && strings.Contains(msgText(m), "Has (1/2)") && strings.Contains(msgText(m), "<@"+localslack.Lead1ID+"> at")
		})
		h.Click(localslack.Lead1ID, h.current(fin.TS), "step_approve")
		h.ephemeral(localslack.Lead1ID, "You already approved *kong migrations finish (1.0.3)*; it needs 2 distinct approvers, neither the requester")
		h.Click(localslack.Lead2ID, h.current(fin.TS), "step_approve")
		h.waitRun(id, "succeeded", func(r steps.Run) bool { return r.Status == steps.RunSucceeded })
		h.Eventually("finish decided", func() bool {
			m := h.current(fin.TS)
			return !hasButtons(m) && strings.Contains(msgText(m), "Approved by <@"+localslack.Lead1ID+">") && strings.Contains(msgText(m), "<@"+localslack.Lead2ID+">")
		})
		if w.schema != steps.Schema10 {
			t.Errorf("schema %s, want 1.0", w.schema)
		}
	})
}

// TestSocketReconnect: Slack asks the socket to refresh mid-run; the bot
// reconnects, reports not ready meanwhile, and clicks work again after.
func TestSocketReconnect(t *testing.T) {
	h := newHarness(t, bot.ModeSocket, newWorld013())
	id, _, appr := h.toApproval(localslack.OnCallID)
	if n := h.Slack.Disconnect("refresh_requested"); n != 1 {
		t.Fatalf("disconnected %d sockets", n)
	}
	h.Eventually("a new socket", func() bool { s := h.Slack.Sockets(); return s.Opened >= 2 && s.Open == 1 })
	h.Eventually("ready again", func() bool { return h.bot.Ready() == nil })
	h.Click(localslack.Lead1ID, appr, "step_approve")
	h.waitRun(id, "past the approval", func(r steps.Run) bool { return r.Status != steps.RunAwaitingApproval })
}
