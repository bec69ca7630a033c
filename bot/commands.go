package bot

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/slack-go/slack"

	"github.com/kongbot/kongbot/commands"
	"github.com/kongbot/kongbot/steps"
	"github.com/kongbot/kongbot/store"
)

func ephemeral(text string) map[string]any {
	return map[string]any{"response_type": "ephemeral", "text": clip(text, 3000)}
}

// onCommand answers a slash command within the ack: help, usage errors and
// refusals that need no I/O are the ack itself; everything else is handed
// to a worker and acknowledged with a short "working on it".
func (b *Bot) onCommand(cmd slack.SlashCommand, transport string) map[string]any {
	if !b.seen.first("cmd:"+cmd.TriggerID, b.now()) {
		return nil // a redelivery: the first one is being answered
	}
	log := b.log.With("user", cmd.UserID, "channel", cmd.ChannelID, "transport", transport)
	if !b.channelAllowed(cmd.ChannelID, cmd.ChannelName) {
		log.Info("command refused: channel not configured")
		return ephemeral(fmt.Sprintf(":no_entry: kongbot takes commands only in %s.", b.channelsText()))
	}
	c, err := commands.Parse(cmd.Text)
	if err != nil {
		return ephemeral(":warning: " + err.Error())
	}
	if h, ok := c.(commands.Help); ok {
		return ephemeral(commands.HelpText(h.Topic))
	}
	log.Info("command", "command", string(c.Name()), "text", clip(cmd.Text, 200))
	b.handle(string(c.Name()), func(ctx context.Context) {
		reply := b.exec(ctx, cmd, c)
		if reply != "" {
			b.tell(ctx, cmd.ResponseURL, cmd.ChannelID, cmd.UserID, "", reply)
		}
	})
	what := map[commands.Name]string{
		commands.NameUpgradeStart: "Reading the gateway and planning the upgrade…",
		commands.NameCheck:        "Reading the gateway…",
	}[c.Name()]
	if what == "" {
		return nil
	}
	return ephemeral(":hourglass_flowing_sand: " + what)
}

// tell shows text to one user: through the request's response_url, else
// chat.postEphemeral.
func (b *Bot) tell(ctx context.Context, responseURL, channel, user, thread, text string) {
	text = clip(text, 3000)
	if responseURL != "" {
		cctx, cancel := b.callCtx(ctx)
		err := slack.PostWebhookCustomHTTPContext(cctx, responseURL, b.http, &slack.WebhookMessage{
			Text: text, ResponseType: slack.ResponseTypeEphemeral, ReplaceOriginal: false})
		cancel()
		if err == nil {
			return
		}
		// The error names the response_url, which lets anyone answer the
		// user for half an hour: keep it out of the logs.
		b.log.Warn("response_url failed; posting an ephemeral message instead", "err", redactURLs(err.Error()))
	}
	opts := []slack.MsgOption{slack.MsgOptionText(text, false)}
	if thread != "" {
		opts = append(opts, slack.MsgOptionTS(thread))
	}
	cctx, cancel := b.callCtx(ctx)
	defer cancel()
	if _, err := b.api.PostEphemeralContext(cctx, channel, user, opts...); err != nil {
		b.apiErr("ephemeral", err)
		b.log.Error("could not answer the user", "user", user, "err", err)
	}
}

var urlRe = regexp.MustCompile(`https?://[^\s"']+`)

// redactURLs hides URLs in a message.
func redactURLs(s string) string { return urlRe.ReplaceAllString(s, "<url>") }

// exec runs a command and returns the reply.
func (b *Bot) exec(ctx context.Context, cmd slack.SlashCommand, c commands.Command) string {
	user := cmd.UserID
	switch c := c.(type) {
	case commands.UpgradeStart:
		return b.start(ctx, cmd, c)
	case commands.UpgradeStatus:
		if c.Run == "" {
			return b.openRuns(ctx)
		}
		run, _, err := b.run.Load(ctx, c.Run)
		if err != nil {
			return b.noRun(c.Run, err)
		}
		return b.statusText(ctx, run)
	case commands.UpgradeAbort:
		return b.commandDecision(ctx, cmd, c.Run, roleOperator, "abort runs",
			steps.Event{Kind: steps.EvAbort, User: user, Reason: c.Reason})
	case commands.UpgradeRetry:
		run, _, err := b.run.Load(ctx, c.Run)
		if err != nil {
			return b.noRun(c.Run, err)
		}
		return b.commandDecision(ctx, cmd, c.Run, roleOperator, "retry steps",
			steps.Event{Kind: steps.EvRetry, Step: run.Current, User: user})
	case commands.UpgradeHistory:
		return b.history(ctx, c.Gateway)
	case commands.UpgradeAudit:
		return b.audit(ctx, cmd, c.Run)
	case commands.Gateways:
		return b.gateways(ctx)
	case commands.Check:
		return b.check(ctx, c.Gateway)
	case commands.UpgradeSchedule, commands.UpgradeSchedules, commands.UpgradeUnschedule:
		return b.schedule(ctx, cmd, c)
	}
	return fmt.Sprintf("`%s` is not wired in this kongbot.", c.Name())
}

func (b *Bot) noRun(id string, err error) string {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Sprintf(":warning: There is no run `%s`. `/kong upgrade history` lists runs.", esc(id))
	}
	b.log.Error("reading a run", "run_id", id, "err", err)
	return fmt.Sprintf(":warning: I could not read run `%s`: %s", esc(id), esc(err.Error()))
}

func (b *Bot) knownGateway(gw string) (string, bool) {
	names := b.planner.Gateways()
	if slices.Contains(names, gw) {
		return "", true
	}
	return fmt.Sprintf(":warning: I know no gateway `%s`; configured: %s.", esc(gw), strings.Join(names, ", ")), false
}

func (b *Bot) start(ctx context.Context, cmd slack.SlashCommand, c commands.UpgradeStart) string {
	user := cmd.UserID
	if v := b.auth.check(ctx, user, roleStarter, "", "start upgrades", true); !v.ok {
		return ":no_entry: " + v.denial
	}
	if msg, ok := b.knownGateway(c.Gateway); !ok {
		return msg
	}
	plan, inv, err := b.planner.Plan(ctx, c.Gateway, c.Target)
	switch {
	case errors.Is(err, steps.ErrNothingToDo):
		return ":white_check_mark: Nothing to do: " + esc(err.Error())
	case errors.Is(err, steps.ErrUnsupportedPath):
		return ":no_entry: " + esc(err.Error())
	case err != nil:
		b.log.Error("planning", "gateway", c.Gateway, "err", err)
		return fmt.Sprintf(":warning: I could not read gateway `%s`: %s", esc(c.Gateway), esc(err.Error()))
	}
	id, err := b.st.NewRunID(ctx)
	if err != nil {
		return ":warning: I could not create the run: " + esc(err.Error())
	}
	run := steps.NewRun(id, c.Gateway, user, cmd.ChannelID, plan, inv, c.DryRun, b.now())
	done := make(chan error, 1)
	b.spawn("run "+id, func(ctx context.Context) {
		_, err := b.run.Start(ctx, run)
		done <- err
	})
	committed := b.started(ctx, id, done)
	var lerr *store.LockedError
	switch {
	case committed == nil:
	case errors.As(committed, &lerr):
		h := lerr.Holder
		return fmt.Sprintf(":no_entry: Gateway *%s* is being upgraded by run *%s* (started by %s %s). One run per gateway: `/kong upgrade status %s`.",
			esc(h.Gateway), h.Run, mention(h.Requester), stamp(h.Since), h.Run)
	default:
		return ":warning: I could not start the run: " + esc(committed.Error())
	}
	kind := "upgrade"
	if c.DryRun {
		kind = "dry run (read-only checks only)"
	}
	return fmt.Sprintf(":rocket: Run *%s* started: %s of *%s* %s → %s, %d steps. Follow it in the thread in <#%s>.",
		id, kind, esc(c.Gateway), plan.From, plan.Target, len(plan.Steps()), cmd.ChannelID)
}

// started waits until the new run id is stored (Start committed it with
// its lock, so it can no longer be refused) or Start returned; it returns
// Start's error if that came first.
func (b *Bot) started(ctx context.Context, id string, done <-chan error) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			return err
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			if _, err := b.st.Run(ctx, id); err == nil {
				return nil
			}
		}
	}
}

// decide feeds a person's event to the runner. It returns nil once the
// run has moved (the runner may go on executing what the event started),
// or the engine's refusal (wrapping its sentinel) when that comes first; a
// refusal never moves the run. If the run moved for another reason (a step
// ending meanwhile) and the event is then refused, refusedLate says so.
// redraw(false) is called when the outcome is first known, redraw(true)
// once the event and its work are done and it was accepted. finished is
// closed when the runner is done with the event (a mark-done's
// verification, say).
func (b *Bot) decide(ctx context.Context, runID string, ev steps.Event, redraw func(accepted bool), refusedLate func(error)) (finished <-chan struct{}, err error) {
	fin := make(chan struct{})
	rec, err := b.st.Run(ctx, runID)
	if err != nil {
		close(fin)
		return fin, err
	}
	var reported atomic.Bool
	done := make(chan error, 1)
	b.spawn("send "+runID, func(ctx context.Context) {
		defer close(fin)
		_, err := b.run.Send(ctx, runID, ev)
		done <- err
		switch {
		case err == nil && redraw != nil:
			redraw(true)
		case err != nil && reported.Load() && refusedLate != nil:
			refusedLate(err)
		}
	})
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			reported.Store(true)
			if err != nil && redraw != nil {
				redraw(false)
			}
			return fin, err
		case <-ctx.Done():
			return fin, ctx.Err()
		case <-tick.C:
			cur, err := b.st.Run(ctx, runID)
			if err == nil && cur.Version != rec.Version && reported.CompareAndSwap(false, true) {
				if redraw != nil {
					redraw(false)
				}
				return fin, nil
			}
		}
	}
}

func (b *Bot) commandDecision(ctx context.Context, cmd slack.SlashCommand, runID string, r role, what string, ev steps.Event) string {
	user, respURL, channel := cmd.UserID, cmd.ResponseURL, cmd.ChannelID
	run, _, err := b.run.Load(ctx, runID)
	if err != nil {
		return b.noRun(runID, err)
	}
	v := b.auth.check(ctx, user, r, run.Requester, what, true)
	if !v.ok {
		return ":no_entry: " + v.denial
	}
	ev.Eligible = true
	cur := run.Current
	reply := func(err error) string { return b.refusal(ctx, runID, ev, err, v) }
	_, err = b.decide(ctx, runID, ev, func(bool) {
		_ = b.refresh(ctx, runID, refreshPayload{}, "summary", "step/"+cur, "approval/"+cur)
	}, func(err error) { b.tell(ctx, respURL, channel, user, "", reply(err)) })
	if err != nil {
		return reply(err)
	}
	after, _, _ := b.run.Load(ctx, runID)
	switch ev.Kind {
	case steps.EvAbort:
		if after.AbortRequested {
			return fmt.Sprintf(":stop_sign: Abort of run *%s* requested: the running step finishes first.", runID)
		}
		return fmt.Sprintf(":stop_sign: Run *%s* is %s.", runID, after.Status)
	case steps.EvRetry:
		b.note(ctx, runID, fmt.Sprintf(":repeat: %s retried *%s* (`/kong upgrade retry`)", mention(user), cur))
		return fmt.Sprintf(":repeat: Retrying *%s* of run *%s*.", cur, runID)
	}
	return "Done."
}

func (b *Bot) openRuns(ctx context.Context) string {
	recs, err := b.st.Runs(ctx, store.RunFilter{ActiveOnly: true})
	if err != nil {
		return ":warning: I could not list runs: " + esc(err.Error())
	}
	if len(recs) == 0 {
		return "No open runs. `/kong upgrade history` lists past ones."
	}
	var sb strings.Builder
	sb.WriteString("*Open runs*\n")
	for _, rec := range recs {
		run, _, err := b.run.Load(ctx, rec.ID)
		if err != nil {
			continue
		}
		sb.WriteString(b.runLine(ctx, run) + "\n")
	}
	return sb.String()
}

func (b *Bot) runLine(ctx context.Context, run steps.Run) string {
	v, err := b.view(ctx, run, "")
	if err != nil {
		return fmt.Sprintf("• *%s* %s: %s", run.ID, esc(run.Gateway), run.Status)
	}
	name := "*" + run.ID + "*"
	if link := b.permalink(ctx, run.ID); link != "" {
		name = "<" + link + "|" + run.ID + ">"
	}
	return fmt.Sprintf("• %s %s %s: %s · by %s %s", name, esc(run.Gateway), v.path(), v.statusLine(), mention(run.Requester), stamp(run.CreatedAt))
}

func (b *Bot) statusText(ctx context.Context, run steps.Run) string {
	v, err := b.view(ctx, run, "")
	if err != nil {
		return fmt.Sprintf("Run *%s*: %s", run.ID, run.Status)
	}
	var sb strings.Builder
	sb.WriteString(b.runLine(ctx, run) + "\n")
	for _, s := range v.plan.Steps() {
		st, _ := run.Step(s.ID)
		n, _ := v.pos(s.ID)
		fmt.Fprintf(&sb, "%s %d. %s", stepEmoji(st.Status), n, s.Title)
		if st.Status != steps.StepPending && st.Status != steps.StepSucceeded {
			fmt.Fprintf(&sb, " — _%s_", st.Status)
		}
		if st.Error != "" && st.Status != steps.StepSucceeded {
			fmt.Fprintf(&sb, ": %s", esc(clip(st.Error, 200)))
		}
		sb.WriteString("\n")
	}
	return sb.String()
}

func (b *Bot) history(ctx context.Context, gw string) string {
	recs, err := b.st.Runs(ctx, store.RunFilter{Gateway: gw, Limit: 15})
	if err != nil {
		return ":warning: I could not list runs: " + esc(err.Error())
	}
	if len(recs) == 0 {
		if gw != "" {
			return fmt.Sprintf("No runs on `%s` yet.", esc(gw))
		}
		return "No runs yet."
	}
	var sb strings.Builder
	sb.WriteString("*Runs, newest first*\n")
	for _, rec := range recs {
		run, _, err := b.run.Load(ctx, rec.ID)
		if err != nil {
			continue
		}
		sb.WriteString(b.runLine(ctx, run) + "\n")
	}
	return sb.String()
}

func (b *Bot) audit(ctx context.Context, cmd slack.SlashCommand, id string) string {
	if _, err := b.st.Run(ctx, id); err != nil {
		return b.noRun(id, err)
	}
	ver, err := b.st.VerifyRunAudit(ctx, id)
	if err != nil {
		return ":warning: I could not read the audit log: " + esc(err.Error())
	}
	entries, err := b.st.Audit(ctx, id)
	if err != nil {
		return ":warning: I could not read the audit log: " + esc(err.Error())
	}
	var sb strings.Builder
	if ver.OK() {
		fmt.Fprintf(&sb, ":lock: Audit log of run *%s*: %d entries, hash chain intact (head `%s`).\n", id, ver.Entries, shortFP(ver.Head))
	} else {
		fmt.Fprintf(&sb, ":fire: Audit log of run *%s* is BROKEN: %s\n", id, esc(ver.Broken.String()))
	}
	var full strings.Builder
	for _, e := range entries {
		fmt.Fprintf(&full, "%d %s %s %s %s\n", e.Seq, e.At.UTC().Format(time.RFC3339), e.Actor, e.Kind, e.Text)
	}
	shown := entries
	if len(shown) > 15 {
		shown = shown[len(shown)-15:]
		fmt.Fprintf(&sb, "Last %d entries:\n", len(shown))
	}
	var lines strings.Builder
	for _, e := range shown {
		fmt.Fprintf(&lines, "%s %s %s\n", e.At.UTC().Format("01-02 15:04:05"), e.Actor, clip(e.Text, 120))
	}
	sb.WriteString("```" + esc(strings.TrimRight(lines.String(), "\n")) + "```")
	if len(entries) > len(shown) {
		if ref, ok, _ := b.st.MessageRef(ctx, id, "summary"); ok {
			cctx, cancel := context.WithTimeout(ctx, 3*b.opts.CallTimeout)
			content := full.String()
			_, err := b.api.UploadFileContext(cctx, slack.UploadFileParameters{
				Filename: id + "-audit.log", Title: "audit log of run " + id, Content: content, FileSize: len(content),
				Channel: ref.Channel, ThreadTimestamp: ref.TS})
			cancel()
			if err == nil {
				sb.WriteString("\nThe whole log is attached to the run's thread.")
			} else {
				b.apiErr("upload", err)
			}
		}
	}
	return sb.String()
}

func (b *Bot) gateways(ctx context.Context) string {
	locks, _ := b.st.Locks(ctx)
	held := map[string]store.Lock{}
	for _, l := range locks {
		held[l.Gateway] = l
	}
	names := b.planner.Gateways()
	if len(names) == 0 {
		return "No gateways are configured."
	}
	var sb strings.Builder
	sb.WriteString("*Gateways*\n")
	for _, g := range names {
		l := b.planner.Labels(g)
		fmt.Fprintf(&sb, "• *%s* (datastore %s)", esc(g), esc(l.Datastore))
		if h, ok := held[g]; ok {
			fmt.Fprintf(&sb, ": being upgraded by run *%s* (%s)", h.Run, mention(h.Requester))
		}
		sb.WriteString("\n")
	}
	sb.WriteString("`/kong check <gateway>` reads one.")
	return sb.String()
}

func (b *Bot) check(ctx context.Context, gw string) string {
	if msg, ok := b.knownGateway(gw); !ok {
		return msg
	}
	inv, err := b.planner.Inspect(ctx, gw)
	if err != nil {
		return fmt.Sprintf(":warning: I could not read gateway `%s`: %s", esc(gw), esc(err.Error()))
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "*Gateway %s* · schema %s · %d APIs, %d services, %d routes, %d consumers\n",
		esc(gw), inv.Schema, inv.Counts.APIs, inv.Counts.Services, inv.Counts.Routes, inv.Counts.Consumers)
	for _, n := range inv.Nodes {
		state := ":white_check_mark: " + n.Version
		switch {
		case !n.Reachable:
			state = ":white_circle: not answering"
			if n.Error != "" {
				state += ": " + esc(clip(n.Error, 120))
			}
		case !n.DatabaseOK:
			state += ", :x: datastore unreachable"
		}
		fmt.Fprintf(&sb, "• %s (%s generation): %s\n", esc(n.Name), n.Generation, state)
	}
	var plugins []string
	for name, c := range inv.Counts.Plugins {
		plugins = append(plugins, fmt.Sprintf("%s×%d", name, c))
	}
	slices.Sort(plugins)
	if len(plugins) > 0 {
		sb.WriteString("Plugins in use: " + esc(strings.Join(plugins, ", ")) + "\n")
	}
	for _, p := range inv.Problems {
		sb.WriteString(":warning: " + esc(p) + "\n")
	}
	return sb.String()
}

func (b *Bot) schedule(ctx context.Context, cmd slack.SlashCommand, c commands.Command) string {
	if b.sched == nil {
		return "Scheduling is not configured in this kongbot."
	}
	var (
		out string
		err error
	)
	switch c := c.(type) {
	case commands.UpgradeSchedule:
		if v := b.auth.check(ctx, cmd.UserID, roleStarter, "", "schedule upgrades", true); !v.ok {
			return ":no_entry: " + v.denial
		}
		if msg, ok := b.knownGateway(c.Gateway); !ok {
			return msg
		}
		out, err = b.sched.Schedule(ctx, cmd.UserID, cmd.ChannelID, c)
	case commands.UpgradeSchedules:
		out, err = b.sched.Schedules(ctx)
	case commands.UpgradeUnschedule:
		if v := b.auth.check(ctx, cmd.UserID, roleStarter, "", "remove upgrade windows", true); !v.ok {
			return ":no_entry: " + v.denial
		}
		out, err = b.sched.Unschedule(ctx, cmd.UserID, c.ID)
	}
	if err != nil {
		return ":warning: " + esc(err.Error())
	}
	return out
}
