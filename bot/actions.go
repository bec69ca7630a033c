package bot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/slack-go/slack"

	"github.com/kongbot/kongbot/steps"
	"github.com/kongbot/kongbot/store"
)

// blockAction is the part of a block_actions payload the bot uses. The
// HTTP handler decodes only this: slack-go's full InteractionCallback
// decodes every block of the clicked message, which costs more than the
// rest of the ack.
type blockAction struct {
	Type      string `json:"type"`
	TriggerID string `json:"trigger_id"`
	User      struct {
		ID string `json:"id"`
	} `json:"user"`
	Channel struct {
		ID string `json:"id"`
	} `json:"channel"`
	Container struct {
		ChannelID string `json:"channel_id"`
		ThreadTS  string `json:"thread_ts"`
	} `json:"container"`
	ResponseURL string `json:"response_url"`
	Actions     []struct {
		ActionID string `json:"action_id"`
		Value    string `json:"value"`
		ActionTS string `json:"action_ts"`
	} `json:"actions"`
}

// fromCallback converts slack-go's parsed callback (Socket Mode).
func fromCallback(ic slack.InteractionCallback) blockAction {
	var a blockAction
	a.Type, a.TriggerID, a.ResponseURL = string(ic.Type), ic.TriggerID, ic.ResponseURL
	a.User.ID, a.Channel.ID = ic.User.ID, ic.Channel.ID
	a.Container.ChannelID, a.Container.ThreadTS = ic.Container.ChannelID, ic.Container.ThreadTs
	for _, x := range ic.ActionCallback.BlockActions {
		a.Actions = append(a.Actions, struct {
			ActionID string `json:"action_id"`
			Value    string `json:"value"`
			ActionTS string `json:"action_ts"`
		}{x.ActionID, x.Value, x.ActionTs})
	}
	return a
}

// onInteraction hands a click to a worker; the ack never waits for it.
func (b *Bot) onInteraction(ic blockAction) {
	if ic.Type != string(slack.InteractionTypeBlockActions) || len(ic.Actions) == 0 {
		return
	}
	if !b.seen.first("click:"+ic.TriggerID+":"+ic.Actions[0].ActionTS, b.now()) {
		return
	}
	b.handle("click "+ic.Actions[0].ActionID, func(ctx context.Context) { b.click(ctx, ic) })
}

// click carries out one button press: authorization at click time, then
// the engine event; refusals are told to the clicker alone.
func (b *Bot) click(ctx context.Context, ic blockAction) {
	a := ic.Actions[0]
	user := ic.User.ID
	thread := ic.Container.ThreadTS
	channel := ic.Channel.ID
	if channel == "" {
		channel = ic.Container.ChannelID
	}
	reply := func(text string) {
		b.tell(ctx, ic.ResponseURL, channel, user, thread, text)
	}
	val, err := parseValue(a.Value)
	if err != nil {
		reply(":warning: " + err.Error())
		return
	}
	run, _, err := b.run.Load(ctx, val.Run)
	if err != nil {
		reply(b.noRun(val.Run, err))
		return
	}
	log := b.log.With("run_id", run.ID, "step", val.Step, "user", user, "action", a.ActionID)
	plan, _ := steps.PlanPath(run.From, run.Target)
	def, _ := plan.Step(val.Step)
	var (
		ev   steps.Event
		r    role
		what string
		dec  *decision
	)
	switch {
	case a.ActionID == actApprove:
		ev, r, what = steps.Event{Kind: steps.EvApprove, Step: val.Step, Fingerprint: val.FP}, roleApprover, "approve this step"
	case a.ActionID == actReject:
		ev, r, what = steps.Event{Kind: steps.EvReject, Step: val.Step}, roleApprover, "reject this step"
	case a.ActionID == actRetry:
		ev, r, what = steps.Event{Kind: steps.EvRetry, Step: val.Step}, roleOperator, "retry this step"
	case a.ActionID == actSkip:
		ev, r, what = steps.Event{Kind: steps.EvSkip, Step: val.Step, Reason: "skipped from Slack"}, roleApprover, "skip this step"
	case a.ActionID == actAbort:
		ev, r, what = steps.Event{Kind: steps.EvAbort, Reason: fmt.Sprintf("aborted at %s from Slack", val.Step)}, roleOperator, "abort this run"
	case a.ActionID == actDone:
		ev, r, what = steps.Event{Kind: steps.EvMarkDone, Step: val.Step}, roleOperator, "mark this step done"
	case strings.HasPrefix(a.ActionID, actAnswer):
		ev = steps.Event{Kind: steps.EvAnswer, Step: val.Step, Key: val.Pause, Answer: steps.Choice(val.Arg)}
		r, what = roleApprover, "answer for this step"
		switch ev.Answer {
		case steps.ChoiceDone:
			r = roleOperator
		case steps.ChoiceOverrideWindow:
			what = "override the change window"
		case steps.ChoiceRerequest:
			// The engine lets the requester ask again too; the verdict
			// only tells it whether this user is an approver.
			what = "re-request this approval"
		}
	case strings.HasPrefix(a.ActionID, actRollback):
		ev, r, what = steps.Event{Kind: steps.EvRollback, Choice: steps.RollbackAction(val.Arg)}, roleApprover, "choose a rollback"
		dec = &decision{User: user, At: b.now(), Action: val.Arg}
	default:
		log.Warn("click on an unknown action")
		reply(":warning: I do not know that button.")
		return
	}
	ev.User = user
	v := b.auth.check(ctx, user, r, run.Requester, what, true)
	if v.err != nil {
		log.Warn("authorization could not be checked", "err", v.err)
		reply(":warning: " + v.denial)
		return
	}
	ev.Eligible = v.ok
	if !v.ok && r == roleOperator {
		// Only approver decisions carry eligibility to the engine; the
		// others are refused here.
		log.Info("click refused", "reason", v.denial)
		reply(":no_entry: " + v.denial)
		b.redraw(ctx, run.ID, val.Key, nil)
		return
	}
	finished, err := b.decide(ctx, run.ID, ev, func(accepted bool) {
		var d *decision
		if accepted {
			d = dec
		}
		b.redraw(ctx, run.ID, val.Key, d)
	}, func(err error) {
		log.Info("click refused", "err", err)
		reply(b.refusal(ctx, run.ID, ev, err, v))
	})
	if err != nil {
		log.Info("click refused", "err", err)
		reply(b.refusal(ctx, run.ID, ev, err, v))
		return
	}
	log.Info("click accepted")
	if ev.Kind == steps.EvRetry {
		b.note(ctx, run.ID, fmt.Sprintf(":repeat: %s retried *%s*", mention(user), def.Title))
	}
	if ev.Kind == steps.EvAnswer {
		// The step's message is redrawn from state that no longer holds
		// the question; the thread keeps who answered what.
		label, _ := choiceLabel(ev.Answer)
		question := ""
		if st, ok := run.Step(val.Step); ok && st.Check != nil && st.Check.Pause != nil {
			question = st.Check.Pause.Message
		}
		switch ev.Answer {
		case steps.ChoiceOverrideWindow:
			b.note(ctx, run.ID, fmt.Sprintf(":warning: %s overrode the change window: *%s* starts now, outside its window (“%s”). Recorded in the journal and the audit log.",
				mention(user), def.Title, esc(question)))
		case steps.ChoiceRerequest:
			b.note(ctx, run.ID, fmt.Sprintf(":repeat: %s re-requested the approval of *%s*", mention(user), def.Title))
		default:
			b.note(ctx, run.ID, fmt.Sprintf(":white_check_mark: %s answered *%s* to “%s” (%s)", mention(user), label, esc(question), def.Title))
		}
	}
	if ev.Kind == steps.EvMarkDone {
		// Say what the verification it started found.
		select {
		case <-finished:
		case <-ctx.Done():
			return
		}
		after, _, err := b.run.Load(ctx, run.ID)
		if err == nil {
			if st, ok := after.Step(val.Step); ok && st.Status == steps.StepWaitingManual && st.Check != nil && !st.Check.OK {
				var sb strings.Builder
				fmt.Fprintf(&sb, ":mag: I checked *%s*; it is not done yet. Still missing:\n", def.Title)
				for _, m := range st.Check.Missing {
					sb.WriteString("• " + esc(m) + "\n")
				}
				reply(sb.String())
			}
		}
	}
}

// note queues a text message into the run's thread.
func (b *Bot) note(ctx context.Context, run, text string) {
	payload, _ := json.Marshal(TextPayload{Text: text})
	if _, err := b.st.Enqueue(context.WithoutCancel(ctx), store.Message{Run: run, Kind: KindText, Payload: payload}); err != nil {
		b.log.Error("queueing a note", "run_id", run, "err", err)
		return
	}
	b.kick()
}

// redraw queues a redraw of the clicked message and the run's summary.
func (b *Bot) redraw(ctx context.Context, run, key string, d *decision) {
	if err := b.refresh(ctx, run, refreshPayload{Decision: d}, key, "summary"); err != nil {
		b.log.Error("queueing a redraw", "run_id", run, "err", err)
	}
}

// refusal says specifically why the engine refused a decision.
func (b *Bot) refusal(ctx context.Context, runID string, ev steps.Event, err error, v verdict) string {
	run, _, lerr := b.run.Load(ctx, runID)
	if lerr != nil {
		return ":warning: " + esc(err.Error())
	}
	plan, _ := steps.PlanPath(run.From, run.Target)
	def, _ := plan.Step(ev.Step)
	title := def.Title
	if title == "" {
		title = ev.Step
	}
	if ev.Kind == steps.EvAnswer && ev.Answer == steps.ChoiceOverrideWindow {
		if msg, ok := b.overrideRefusal(ctx, run, title, err, v); ok {
			return msg
		}
	}
	if ev.Kind == steps.EvAnswer && ev.Answer == steps.ChoiceRerequest && errors.Is(err, steps.ErrNotEligible) {
		return fmt.Sprintf(":no_entry: Only %s or the person who started run *%s* can re-request the approval of *%s*.",
			b.auth.describe(ctx, b.auth.approvers, false), run.ID, title)
	}
	switch {
	case errors.Is(err, steps.ErrNotEligible):
		return ":no_entry: " + v.denial
	case errors.Is(err, steps.ErrSelfApproval):
		risk, _ := plan.ApprovalRisk(ev.Step)
		return fmt.Sprintf(":no_entry: You started run *%s*; *%s* is a %s-risk step and needs %s. Ask someone else in %s.",
			run.ID, title, risk, b.rules.For(risk).Text(), b.auth.describe(ctx, b.auth.approvers, false))
	case errors.Is(err, steps.ErrDuplicate):
		risk, _ := plan.ApprovalRisk(ev.Step)
		return fmt.Sprintf(":information_source: You already approved *%s*; it needs %s.", title, b.rules.For(risk).Text())
	case errors.Is(err, steps.ErrFingerprintMismatch):
		return ":arrows_counterclockwise: The gateway or plan changed since that message was posted, so that approval no longer counts; I asked for approval again with the current plan in the thread."
	case errors.Is(err, steps.ErrNotSkippable):
		return fmt.Sprintf(":no_entry: *%s* cannot be skipped; retry it or abort the run.", title)
	case errors.Is(err, steps.ErrStale):
		return ":information_source: " + b.staleText(run, plan, ev)
	}
	return ":warning: I could not record that: " + esc(err.Error())
}

// overrideRefusal says why a change window override was refused: it needs
// an approver who is neither the requester nor one of the step's approvers,
// so that a second person agrees to work outside the window.
func (b *Bot) overrideRefusal(ctx context.Context, run steps.Run, title string, err error, v verdict) (string, bool) {
	group := b.auth.describe(ctx, b.auth.approvers, false)
	extra := fmt.Sprintf("an extra approver from %s: someone who neither started the run nor approved the step", group)
	switch {
	case errors.Is(err, steps.ErrNotEligible):
		why := "you are not in " + group
		if !strings.HasPrefix(v.denial, "only ") {
			// Deactivated, guest, or Slack could not be asked: say that.
			why = v.denial
		}
		return fmt.Sprintf(":no_entry: Overriding the change window for *%s* needs %s; %s. Nothing changed; the step still waits for its window.", title, extra, why), true
	case errors.Is(err, steps.ErrSelfApproval):
		return fmt.Sprintf(":no_entry: You started run *%s*, so you cannot override the change window for *%s*: that needs %s. Nothing changed.", run.ID, title, extra), true
	case errors.Is(err, steps.ErrDuplicate):
		return fmt.Sprintf(":no_entry: You approved *%s* already, so you cannot also override its change window: that needs %s. Nothing changed.", title, extra), true
	}
	return "", false
}

// staleText says what happened instead, for a click on an old message.
func (b *Bot) staleText(run steps.Run, plan steps.Plan, ev steps.Event) string {
	def, _ := plan.Step(ev.Step)
	title := def.Title
	if ev.Kind == steps.EvApprove || ev.Kind == steps.EvReject {
		var as []string
		for _, a := range run.Approvals[plan.GroupLeader(ev.Step)] {
			if a.Fingerprint == run.Fingerprint {
				as = append(as, fmt.Sprintf("%s at %s", mention(a.User), stamp(a.At)))
			}
		}
		risk, _ := plan.ApprovalRisk(ev.Step)
		if len(as) >= b.rules.For(risk).Approvers {
			return fmt.Sprintf("*%s* was already approved by %s; nothing more is needed.", title, strings.Join(as, ", "))
		}
	}
	if run.Status.Terminal() {
		return fmt.Sprintf("Run *%s* is already %s; nothing changed.", run.ID, run.Status)
	}
	cur, _ := plan.Step(run.Current)
	switch ev.Kind {
	case steps.EvRetry:
		return fmt.Sprintf("Nothing to retry: run *%s* is %s at *%s*; only a failed step can be retried.", run.ID, run.Status, cur.Title)
	case steps.EvAbort:
		return fmt.Sprintf("Run *%s* is already being aborted (by %s); choose a rollback in its thread.", run.ID, mention(run.AbortedBy))
	}
	if st, ok := run.Step(ev.Step); ok && ev.Step != "" {
		return fmt.Sprintf("That message is out of date: *%s* is now %s and the run is %s. Nothing changed.", title, st.Status, run.Status)
	}
	return fmt.Sprintf("That is no longer possible: run *%s* is %s. Nothing changed.", run.ID, run.Status)
}
