package localslack_test

import (
	"context"
	"flag"
	"fmt"
	"testing"
	"time"

	"github.com/kongbot/kongbot/localslack"
	"github.com/kongbot/kongbot/localslack/browser"
	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
)

var screenshotOut = flag.String("screenshot", "", "also write the browser test's approval screenshot here (docs/img/localslack.png for the README)")

func runBlocks(runID string) []slack.Block {
	return []slack.Block{
		slack.NewHeaderBlock(plain(":rocket: Kong upgrade " + runID + ": prod 0.14.1 → 1.0.3")),
		slack.NewSectionBlock(nil, []*slack.TextBlockObject{
			md("*Gateway*\nprod (3 nodes)"), md("*Requested by*\n<@" + localslack.OnCallID + ">"),
			md("*Path*\n0.14.1 → 1.0.3"), md("*Datastore*\n`kong@db-1`"),
		}, nil),
		slack.NewSectionBlock(md(":white_check_mark: 1. Pre-flight checks\n:white_check_mark: 2. Snapshot database\n:hourglass_flowing_sand: 3. `kong migrations up` — awaiting approval\n:white_circle: 4. Cutover traffic\n:white_circle: 5. `kong migrations finish`"), nil, nil),
		slack.NewContextBlock("", md("plan `ab12cd` · approvals from <!subteam^"+localslack.LeadsGroupID+"|@kong-leads>")),
	}
}

func approvalStepBlocks(val string) []slack.Block {
	approve := slack.NewButtonBlockElement("step_approve", val, plain("Approve")).WithStyle(slack.StylePrimary).
		WithConfirm(slack.NewConfirmationBlockObject(plain("Approve step 3?"),
			md("Run *r42* will run `kong migrations up` of 1.0.3 against *kong@db-1*."), plain("Approve"), plain("Cancel")))
	reject := slack.NewButtonBlockElement("step_reject", val, plain("Reject")).WithStyle(slack.StyleDanger).
		WithConfirm(slack.NewConfirmationBlockObject(plain("Reject step 3?"), md("The run will stop here."), plain("Reject"), plain("Cancel")).WithStyle(slack.StyleDanger))
	return []slack.Block{
		slack.NewSectionBlock(md("*Step 3: run `kong migrations up` of 1.0.3 against datastore kong@db-1*"), nil, nil),
		slack.NewSectionBlock(nil, []*slack.TextBlockObject{md("*Risk*\nhigh (schema change)"), md("*Needs*\n1 of <!subteam^" + localslack.LeadsGroupID + "|@kong-leads>, not the requester")}, nil),
		slack.NewDividerBlock(),
		slack.NewActionBlock("approval_r42_3", approve, reject),
	}
}

// TestBrowserCommandAndConfirmedApproval drives the page in headless
// Chromium: act as the on-call engineer and type /kong, switch to a lead,
// open the run's thread, click Approve, confirm, and watch the message
// change; then open App Home and click a button there.
func TestBrowserCommandAndConfirmedApproval(t *testing.T) {
	ls := newServer(t, localslack.Options{})
	page := browser.Open(t, ls.URL())
	// Chromium can take a while to start on a busy machine; the waits
	// below get their own budget.
	tctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	bot := startSMBot(t, tctx, ls)

	page.ActAs(localslack.OnCallID)
	page.Type("/kong upgrade start prod 1.0.3")
	if err := ls.WaitFor(tctx, func() bool { c, _, _ := bot.snapshot(); return len(c) == 1 }); err != nil {
		t.Fatalf("bot never got the command: %v", err)
	}
	cmds, _, _ := bot.snapshot()
	if cmds[0].UserID != localslack.OnCallID || cmds[0].Command != "/kong" || cmds[0].Text != "upgrade start prod 1.0.3" {
		t.Errorf("command = %+v", cmds[0])
	}
	// The ack shows up for olivia only.
	page.WaitJS("the ack shown", `[...document.querySelectorAll('[data-testid="ephemeral"]')].some(e => e.textContent.includes("starting: upgrade start prod 1.0.3"))`)

	// The bot posts the run and, in its thread, the approval step.
	api := bot.api
	_, parent, err := api.PostMessageContext(tctx, localslack.ChannelID, slack.MsgOptionText("Kong upgrade r42", false), slack.MsgOptionBlocks(runBlocks("r42")...))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{":white_check_mark: Step 1: pre-flight checks passed (3/3 nodes healthy, no pending migrations)", ":white_check_mark: Step 2: snapshot `kong-r42.dump` taken (14.2 MB)"} {
		if _, _, err := api.PostMessageContext(tctx, localslack.ChannelID, slack.MsgOptionText(line, false), slack.MsgOptionTS(parent)); err != nil {
			t.Fatal(err)
		}
	}
	logText := "Migrating core (1.0.3)...\ncore migrated up to: 003_100_to_110 (pending)\n"
	if _, err := api.UploadFileContext(tctx, slack.UploadFileParameters{Filename: "r42-step2.log", Title: "pre-flight output",
		Content: logText, FileSize: len(logText), Channel: localslack.ChannelID, ThreadTimestamp: parent}); err != nil {
		t.Fatal(err)
	}
	_, stepTS, err := api.PostMessageContext(tctx, localslack.ChannelID, slack.MsgOptionText("Step 3 awaits approval", false),
		slack.MsgOptionTS(parent), slack.MsgOptionBlocks(approvalStepBlocks("r42:3:ab12cd")...))
	if err != nil {
		t.Fatal(err)
	}

	// A lead opens the thread, clicks Approve and confirms in the dialog.
	page.ActAs(localslack.Lead1ID)
	page.WaitJS("olivia's ack hidden from liam", `document.querySelectorAll('[data-testid="ephemeral"]').length === 0`)
	page.OpenThread(parent)
	page.WaitMessageText(stepTS, "Step 3: run kong migrations up")
	var readme []string
	if *screenshotOut != "" {
		readme = append(readme, *screenshotOut)
	}
	page.Screenshot("approval-pending.png", readme...)
	page.ClickButton(stepTS, "step_approve")
	if title := page.ConfirmTitle(); title != "Approve step 3?" {
		t.Errorf("confirm title %q", title)
	}
	page.Screenshot("confirm-dialog.png")
	if _, clicks, _ := bot.snapshot(); len(clicks) != 0 {
		t.Fatalf("click delivered before confirming: %d", len(clicks))
	}
	// Cancelling sends nothing; confirming sends the click.
	page.Deny()
	page.ClickButton(stepTS, "step_approve")
	page.Confirm()
	if err := ls.WaitFor(tctx, func() bool { _, c, _ := bot.snapshot(); return len(c) == 1 }); err != nil {
		t.Fatalf("no block_actions delivered: %v", err)
	}
	_, clicks, _ := bot.snapshot()
	ic := clicks[0]
	if ic.User.ID != localslack.Lead1ID || ic.ActionCallback.BlockActions[0].ActionID != "step_approve" ||
		ic.ActionCallback.BlockActions[0].Value != "r42:3:ab12cd" || ic.Container.MessageTs != stepTS || ic.Container.ThreadTs != parent {
		t.Errorf("interaction = user %s actions %+v container %+v", ic.User.ID, ic.ActionCallback.BlockActions[0], ic.Container)
	}

	// The bot records the decision; the page shows the changed message live.
	stamp := fmt.Sprintf("<!date^%d^{date_short_pretty} {time}|now>", time.Now().Unix())
	_, _, _, err = api.UpdateMessageContext(tctx, localslack.ChannelID, stepTS, slack.MsgOptionText("Step 3 approved", false),
		slack.MsgOptionBlocks(approvalStepBlocks("r42:3:ab12cd")[0], slack.NewContextBlock("", md(":white_check_mark: Approved by <@"+ic.User.ID+"> at "+stamp))))
	if err != nil {
		t.Fatal(err)
	}
	page.WaitJS("the decision shown", fmt.Sprintf(`(() => { const m = document.querySelector('[data-testid="thread-panel"] [data-ts="%s"]');
		return m && m.textContent.includes("Approved by @liam") && !m.querySelector("[data-action-id]"); })()`, stepTS))
	page.Screenshot("approved.png")

	// Reject with a reason: the bot opens a modal; an empty reason is
	// refused with a field error, a given one closes it.
	bot.mu.Lock()
	bot.onEvent = func(evt socketmode.Event) any {
		ic, ok := evt.Data.(slack.InteractionCallback)
		switch {
		case !ok:
		case ic.Type == slack.InteractionTypeBlockActions && ic.ActionCallback.BlockActions[0].ActionID == "step_reject":
			_, err := api.OpenViewContext(tctx, ic.TriggerID, slack.ModalViewRequest{
				Type: slack.VTModal, Title: plain("Reject step 5"), Submit: plain("Reject"), Close: plain("Cancel"), CallbackID: "reject_reason",
				Blocks: slack.Blocks{BlockSet: []slack.Block{
					slack.NewSectionBlock(md("Run *r42* stops before `kong migrations finish`."), nil, nil),
					slack.NewInputBlock("reason", plain("Reason"), nil, slack.NewPlainTextInputBlockElement(plain("why?"), "reason_input").WithMultiline(true)),
				}}})
			if err != nil {
				t.Errorf("views.open: %v", err)
			}
		case ic.Type == slack.InteractionTypeViewSubmission && ic.View.State.Values["reason"]["reason_input"].Value == "":
			return slack.NewErrorsViewSubmissionResponse(map[string]string{"reason": "Say why you reject it"})
		}
		return nil
	}
	bot.mu.Unlock()
	_, step5, err := api.PostMessageContext(tctx, localslack.ChannelID, slack.MsgOptionText("Step 5 awaits approval", false),
		slack.MsgOptionTS(parent), slack.MsgOptionBlocks(approvalStepBlocks("r42:5:ab12cd")...))
	if err != nil {
		t.Fatal(err)
	}
	page.ActAs(localslack.Lead2ID)
	page.OpenThread(parent)
	page.ClickButton(step5, "step_reject")
	page.Confirm()
	if title := page.ModalTitle(); title != "Reject step 5" {
		t.Errorf("modal title %q", title)
	}
	page.ModalSubmit()
	page.WaitText("Say why you reject it")
	page.ModalType("reason", "reason_input", "backup is 3 days old")
	page.Screenshot("reject-modal.png")
	page.ModalSubmit()
	page.WaitJS("modal closed", `document.querySelector('[data-testid="modal"]').hidden`)
	if _, ok := ls.OpenModal(localslack.Lead2ID); ok {
		t.Error("modal still open")
	}
	_, clicks, _ = bot.snapshot()
	if last := clicks[len(clicks)-1]; last.Type != slack.InteractionTypeViewSubmission || last.User.ID != localslack.Lead2ID ||
		last.View.State.Values["reason"]["reason_input"].Value != "backup is 3 days old" {
		t.Errorf("submission = %+v", last)
	}
	bot.mu.Lock()
	bot.onEvent = nil
	bot.mu.Unlock()
	page.ActAs(localslack.Lead1ID)

	// App Home: opening the tab sends app_home_opened; the view the bot
	// publishes for this user appears without a reload.
	page.OpenHome()
	if err := ls.WaitFor(tctx, func() bool { _, _, e := bot.snapshot(); return len(e) == 1 }); err != nil {
		t.Fatalf("no app_home_opened: %v", err)
	}
	if _, _, evs := bot.snapshot(); evs[0].InnerEvent.Type != "app_home_opened" {
		t.Errorf("event = %+v", evs[0].InnerEvent)
	}
	home := slack.HomeTabViewRequest{Type: slack.VTHomeTab, Blocks: slack.Blocks{BlockSet: []slack.Block{
		slack.NewHeaderBlock(plain("Your pending approvals")),
		slack.NewSectionBlock(md("*r43* prod 0.13.1 → 0.14.1, step 2 `kong migrations up` — requested by <@"+localslack.OnCallID+">"), nil,
			slack.NewAccessory(slack.NewButtonBlockElement("home_open_run", "r43", plain("Open thread")))),
		slack.NewDividerBlock(),
		slack.NewHeaderBlock(plain("Recent runs")),
		slack.NewContextBlock("", md(":white_check_mark: *r42* prod 0.14.1 → 1.0.3 — approved by <@"+localslack.Lead1ID+">")),
	}}}
	if _, err := api.PublishViewContext(tctx, slack.PublishViewContextRequest{UserID: localslack.Lead1ID, View: home}); err != nil {
		t.Fatal(err)
	}
	page.WaitText("Your pending approvals")
	page.WaitJS("home button", `!!document.querySelector('[data-testid="app-home"] [data-action-id="home_open_run"]')`)
	page.ClickButtonIn(`[data-testid="app-home"]`, "home_open_run")
	nClicks := len(clicks)
	if err := ls.WaitFor(tctx, func() bool { _, c, _ := bot.snapshot(); return len(c) == nClicks+1 }); err != nil {
		t.Fatalf("no block_actions from App Home: %v", err)
	}
	if _, c, _ := bot.snapshot(); c[nClicks].Container.Type != "view" || c[nClicks].ActionCallback.BlockActions[0].Value != "r43" {
		t.Errorf("home click = %+v", c[nClicks].Container)
	}
	page.Screenshot("app-home.png")
}
