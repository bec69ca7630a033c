package bot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/kongbot/kongbot/steps"
	"github.com/kongbot/kongbot/store"
)

// Outbox message kinds the bot delivers besides the runner's
// (steps.EffPost, steps.EffUpdate, "step-output").
const (
	// KindRefresh redraws a keyed message from the run's current state
	// (after a click the run state does not fully record); a key that was
	// never posted is left alone. Payload: refreshPayload.
	KindRefresh = "refresh"
	// KindText posts Payload {"text": mrkdwn} as is: top level when the
	// message has no run, else in the run's thread. Other packages (the
	// scheduler's digest) queue these with store.Enqueue.
	KindText   = "text"
	kindOutput = "step-output"
	// metaType tags every post with its outbox entry (message metadata).
	metaType = "kongbot_message"
	// maybePosted prefixes the failure reason of a post whose outcome is
	// unknown; the next attempt looks for it in Slack first.
	maybePosted = "maybe posted: "
)

type refreshPayload struct {
	Message  steps.MessageKind `json:"message,omitempty"`
	Step     string            `json:"step,omitempty"`
	Decision *decision         `json:"decision,omitempty"`
}

// TextPayload is the payload of a KindText message.
type TextPayload struct {
	Text string `json:"text"`
}

// deliverLoop drains the outbox until ctx ends.
func (b *Bot) deliverLoop(ctx context.Context) {
	for {
		n := b.deliverRound(ctx)
		b.flushSummaries(ctx)
		b.flushHomes(ctx)
		b.reportDepth(ctx)
		wait := b.opts.PollInterval
		if n > 0 {
			wait = 0
		}
		b.dmu.Lock()
		if d := b.pauseUntil.Sub(b.now()); d > wait {
			wait = d
		}
		b.dmu.Unlock()
		if wait == 0 {
			if ctx.Err() != nil {
				return
			}
			continue
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-b.wake:
			t.Stop()
		case <-t.C:
		}
	}
}

func (b *Bot) paused() bool {
	b.dmu.Lock()
	defer b.dmu.Unlock()
	return b.now().Before(b.pauseUntil)
}

// deliverRound delivers the due head of each run's queue once and returns
// how many it delivered.
func (b *Bot) deliverRound(ctx context.Context) int {
	if b.paused() {
		return 0
	}
	msgs, err := b.st.Pending(ctx, b.now(), 100)
	if err != nil {
		if ctx.Err() == nil {
			b.log.Error("reading the outbox", "err", err)
		}
		return 0
	}
	n := 0
	for _, m := range msgs {
		if ctx.Err() != nil || b.paused() {
			break
		}
		posting, err := b.deliver(ctx, m)
		if err == nil {
			n++
			if m.Run != "" {
				b.markDirty(m.Run)
			}
			continue
		}
		if ctx.Err() != nil {
			return n
		}
		b.failed(ctx, m, posting, err)
	}
	return n
}

// failed records a failed delivery and when to try again.
func (b *Bot) failed(ctx context.Context, m store.Message, posting bool, err error) {
	now := b.now()
	var rl *slack.RateLimitedError
	reason, next := err.Error(), now.Add(b.backoff(m.Attempts))
	if errors.As(err, &rl) {
		wait := rl.RetryAfter
		if wait <= 0 {
			wait = b.opts.RetryBase
		}
		next = now.Add(wait)
		b.dmu.Lock()
		if next.After(b.pauseUntil) {
			b.pauseUntil = next
		}
		b.dmu.Unlock()
		reason = "rate limited: " + reason
	} else if posting && outcomeUnknown(err) {
		reason = maybePosted + reason
	}
	var se slack.SlackErrorResponse
	if errors.As(err, &se) && (se.Err == "not_in_channel" || se.Err == "channel_not_found" || se.Err == "is_archived") {
		// Retrying cannot help until someone acts; say what to do.
		b.log.Error("Slack refuses to post in the runs channel: invite the bot to it (/invite @kongbot) or fix channels.runs; messages wait until then",
			"channel", m.Channel, "slack_error", se.Err, "run_id", m.Run)
	}
	b.log.Warn("delivering a message failed; will retry", "run_id", m.Run, "key", m.Key, "kind", m.Kind,
		"attempt", m.Attempts+1, "retry_at", next.UTC().Format(time.RFC3339Nano), "err", err)
	if err := b.st.MarkFailed(context.WithoutCancel(ctx), m, clip(reason, 500), next); err != nil {
		b.log.Error("recording a failed delivery", "run_id", m.Run, "err", err)
	}
}

func (b *Bot) backoff(attempts int) time.Duration {
	d := b.opts.RetryBase << min(attempts, 20)
	if d <= 0 || d > b.opts.RetryMax {
		d = b.opts.RetryMax
	}
	// ±20 % so that messages failing together do not retry together.
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// outcomeUnknown: the request may have reached Slack (timeouts, dropped
// connections, 5xx), unlike a 429 or an ok:false answer.
func outcomeUnknown(err error) bool {
	var rl *slack.RateLimitedError
	var se slack.SlackErrorResponse
	if errors.As(err, &rl) || errors.As(err, &se) {
		return false
	}
	return true
}

// apiErr counts a failed Web API call.
func (b *Bot) apiErr(op string, err error) {
	var rl *slack.RateLimitedError
	var se slack.SlackErrorResponse
	var sc slack.StatusCodeError
	var ne net.Error
	switch {
	case errors.As(err, &rl):
		b.metrics.RateLimited(op, rl.RetryAfter)
		b.metrics.APIError(op, "rate_limited")
	case errors.As(err, &se):
		b.metrics.APIError(op, se.Err)
	case errors.As(err, &sc):
		b.metrics.APIError(op, "server")
	case errors.As(err, &ne), errors.Is(err, context.DeadlineExceeded):
		b.metrics.APIError(op, "network")
	default:
		b.metrics.APIError(op, "network")
	}
}

// deliver sends one outbox message. posting reports whether the failing
// call was a post (whose outcome may be unknown).
func (b *Bot) deliver(ctx context.Context, m store.Message) (posting bool, err error) {
	var v *view
	if m.Run != "" {
		run, _, err := b.run.Load(ctx, m.Run)
		if errors.Is(err, store.ErrNotFound) {
			b.log.Error("outbox message for a run that does not exist; dropped", "run_id", m.Run, "key", m.Key)
			return false, b.st.MarkDelivered(ctx, m, nil)
		}
		if err != nil {
			return false, fmt.Errorf("loading run %s: %w", m.Run, err)
		}
		v, err = b.view(ctx, run, m.Key)
		if err != nil {
			b.log.Error("rendering a message of a run without a plan; dropped", "run_id", m.Run, "err", err)
			return false, b.st.MarkDelivered(ctx, m, nil)
		}
	}
	var out rendered
	top, offer := false, false
	switch m.Kind {
	case string(steps.EffPost), string(steps.EffUpdate):
		var e steps.Effect
		if err := json.Unmarshal(m.Payload, &e); err != nil || v == nil {
			b.log.Error("undecodable outbox message; dropped", "run_id", m.Run, "id", m.ID, "err", err)
			return false, b.st.MarkDelivered(ctx, m, nil)
		}
		out, top = b.renderEffect(v, e, m)
		offer = e.Message == steps.MsgRollbackOffer
	case kindOutput:
		var o outputPayload
		if err := json.Unmarshal(m.Payload, &o); err != nil || v == nil {
			b.log.Error("undecodable output message; dropped", "run_id", m.Run, "id", m.ID, "err", err)
			return false, b.st.MarkDelivered(ctx, m, nil)
		}
		_, uploaded, _ := b.st.MessageRef(ctx, m.Run, fileKey(o.Step, o.Attempt))
		out = v.output(o, uploaded)
	case KindRefresh:
		if v == nil {
			return false, b.st.MarkDelivered(ctx, m, nil)
		}
		var p refreshPayload
		_ = json.Unmarshal(m.Payload, &p)
		var ok bool
		out, top, ok = b.renderRefresh(ctx, v, m, p)
		if !ok {
			return false, b.st.MarkDelivered(ctx, m, nil)
		}
	case KindText:
		var p TextPayload
		if err := json.Unmarshal(m.Payload, &p); err != nil || p.Text == "" {
			b.log.Error("text message without text; dropped", "id", m.ID, "err", err)
			return false, b.st.MarkDelivered(ctx, m, nil)
		}
		out = rendered{text: p.Text, blocks: []slack.Block{slack.NewSectionBlock(md(p.Text), nil, nil)}}
		top = m.Run == ""
	default:
		b.log.Error("outbox message of an unknown kind; dropped", "kind", m.Kind, "id", m.ID)
		return false, b.st.MarkDelivered(ctx, m, nil)
	}

	if m.Key != "" {
		ref, has, err := b.st.MessageRef(ctx, m.Run, m.Key)
		if err != nil {
			return false, err
		}
		if has {
			err := b.update(ctx, ref, out)
			var se slack.SlackErrorResponse
			if errors.As(err, &se) && se.Err == "message_not_found" {
				// Someone deleted it: post it again rather than lose it.
				b.log.Warn("message was deleted in Slack; posting it again", "run_id", m.Run, "key", m.Key)
			} else {
				if err != nil {
					return false, err
				}
				if err := b.afterDelivery(ctx, v, m); err != nil {
					return false, err
				}
				return false, b.st.MarkDelivered(ctx, m, nil)
			}
		} else if m.Kind == KindRefresh {
			return false, b.st.MarkDelivered(ctx, m, nil)
		}
	}
	if offer {
		// A resumed run offers again what it offered before the restart:
		// edit that message rather than post a twin.
		if ref, ok := b.openOffer(ctx, m); ok {
			if err := b.update(ctx, ref, out); err != nil {
				return false, err
			}
			if err := b.st.SetMessageRef(ctx, m.Run, offerKey(m.ID), ref); err != nil {
				return false, err
			}
			return false, b.st.MarkDelivered(ctx, m, nil)
		}
	}
	ref, err := b.post(ctx, m, v, out, top)
	if err != nil {
		return true, err
	}
	if offer {
		// Offers are posted each time; keep where so a choice can redraw it.
		if err := b.st.SetMessageRef(ctx, m.Run, offerKey(m.ID), ref); err != nil {
			return false, err
		}
	}
	if err := b.afterDelivery(ctx, v, m); err != nil {
		return false, err
	}
	return false, b.st.MarkDelivered(ctx, m, &ref)
}

// openOffer finds the run's last rollback offer before m if nobody chose
// from it and it offered the same choices.
func (b *Bot) openOffer(ctx context.Context, m store.Message) (store.MessageRef, bool) {
	msgs, err := b.st.Outbox(ctx, m.Run)
	if err != nil {
		return store.MessageRef{}, false
	}
	var cur steps.Effect
	if json.Unmarshal(m.Payload, &cur) != nil {
		return store.MessageRef{}, false
	}
	var last *steps.Effect
	var lastID uint64
	decided := map[string]bool{}
	for _, o := range msgs {
		switch {
		case o.ID >= m.ID:
		case o.Kind == KindRefresh && strings.HasPrefix(o.Key, "offer/"):
			var p refreshPayload
			if json.Unmarshal(o.Payload, &p) == nil && p.Decision != nil {
				decided[o.Key] = true
			}
		case o.Kind == string(steps.EffPost) && o.Delivered:
			var e steps.Effect
			if json.Unmarshal(o.Payload, &e) == nil && e.Message == steps.MsgRollbackOffer {
				last, lastID = &e, o.ID
			}
		}
	}
	if last == nil || decided[offerKey(lastID)] || !slices.Equal(last.Choices, cur.Choices) {
		return store.MessageRef{}, false
	}
	ref, ok, err := b.st.MessageRef(ctx, m.Run, offerKey(lastID))
	return ref, ok && err == nil
}

func offerKey(id uint64) string           { return "offer/" + strconv.FormatUint(id, 10) }
func fileKey(step string, n int) string   { return fmt.Sprintf("file/%s/%d", step, n) }
func outputKey(step string, n int) string { return fmt.Sprintf("output/%s/%d", step, n) }

// view prepares rendering for a run at delivery time.
func (b *Bot) view(ctx context.Context, run steps.Run, key string) (*view, error) {
	plan, err := steps.PlanPath(run.From, run.Target)
	if err != nil {
		return nil, err
	}
	return &view{run: run, plan: plan, labels: b.planner.Labels(run.Gateway), rules: b.rules,
		approvers: b.auth.describe(ctx, b.auth.approvers, true), key: key}, nil
}

func (b *Bot) renderEffect(v *view, e steps.Effect, m store.Message) (rendered, bool) {
	switch e.Message {
	case steps.MsgSummary:
		return v.summary(), true
	case steps.MsgApprovalRequest, steps.MsgApprovalProgress:
		return v.approval(e.Step), false
	case steps.MsgStepStarted, steps.MsgStepSucceeded, steps.MsgStepFailed, steps.MsgStepSkipped,
		steps.MsgManual, steps.MsgManualPending, steps.MsgPaused:
		return v.step(e.Step), false
	case steps.MsgRollbackOffer:
		v.key = offerKey(m.ID)
	}
	return v.notice(e), false
}

// renderRefresh redraws a keyed message; ok is false when there is nothing
// to redraw.
func (b *Bot) renderRefresh(ctx context.Context, v *view, m store.Message, p refreshPayload) (rendered, bool, bool) {
	v.decided = p.Decision
	switch {
	case m.Key == "summary":
		return v.summary(), true, true
	case strings.HasPrefix(m.Key, "approval/"):
		return v.approval(strings.TrimPrefix(m.Key, "approval/")), false, true
	case strings.HasPrefix(m.Key, "step/"):
		return v.step(strings.TrimPrefix(m.Key, "step/")), false, true
	case strings.HasPrefix(m.Key, "offer/"):
		id, err := strconv.ParseUint(strings.TrimPrefix(m.Key, "offer/"), 10, 64)
		if err != nil {
			return rendered{}, false, false
		}
		msgs, err := b.st.Outbox(ctx, m.Run)
		if err != nil {
			return rendered{}, false, false
		}
		for _, o := range msgs {
			if o.ID == id {
				var e steps.Effect
				if json.Unmarshal(o.Payload, &e) == nil {
					return v.rollbackOffer(e), false, true
				}
			}
		}
	case strings.HasPrefix(m.Key, "output/"):
		o, ok := b.latestOutput(ctx, m.Run, m.Key)
		if !ok {
			return rendered{}, false, false
		}
		_, uploaded, _ := b.st.MessageRef(ctx, m.Run, fileKey(o.Step, o.Attempt))
		return v.output(o, uploaded), false, true
	}
	return rendered{}, false, false
}

func (b *Bot) latestOutput(ctx context.Context, run, key string) (outputPayload, bool) {
	msgs, err := b.st.Outbox(ctx, run)
	if err != nil {
		return outputPayload{}, false
	}
	var o outputPayload
	found := false
	for _, m := range msgs {
		if m.Kind == kindOutput && m.Key == key && json.Unmarshal(m.Payload, &o) == nil {
			found = true
		}
	}
	return o, found
}

func (b *Bot) update(ctx context.Context, ref store.MessageRef, out rendered) error {
	cctx, cancel := b.callCtx(ctx)
	defer cancel()
	_, _, _, err := b.api.UpdateMessageContext(cctx, ref.Channel, ref.TS,
		slack.MsgOptionText(out.text, false), slack.MsgOptionBlocks(out.blocks...))
	if err != nil {
		b.apiErr("update", err)
		return fmt.Errorf("chat.update %s: %w", ref.TS, err)
	}
	return nil
}

// post posts a message (in the run's thread unless top), first looking in
// Slack for it when an earlier attempt may have posted it.
func (b *Bot) post(ctx context.Context, m store.Message, v *view, out rendered, top bool) (store.MessageRef, error) {
	channel := m.Channel
	if channel == "" && v != nil {
		channel = v.run.Channel
	}
	var parent string
	if !top && m.Run != "" {
		ref, ok, err := b.st.MessageRef(ctx, m.Run, "summary")
		if err != nil {
			return store.MessageRef{}, err
		}
		if ok {
			parent, channel = ref.TS, ref.Channel
		}
	}
	b.dmu.Lock()
	check := b.checkHeads[m.ID]
	b.dmu.Unlock()
	if check || strings.HasPrefix(m.LastError, maybePosted) {
		ts, found, err := b.findPosted(ctx, channel, parent, m.ID)
		if err != nil {
			return store.MessageRef{}, err
		}
		b.dmu.Lock()
		delete(b.checkHeads, m.ID)
		b.dmu.Unlock()
		if found {
			b.log.Info("found an earlier attempt's post in Slack; not posting again", "run_id", m.Run, "key", m.Key, "ts", ts)
			return store.MessageRef{Channel: channel, TS: ts, ThreadTS: parent}, nil
		}
	}
	opts := []slack.MsgOption{
		slack.MsgOptionText(out.text, false), slack.MsgOptionBlocks(out.blocks...),
		slack.MsgOptionMetadata(slack.SlackMetadata{EventType: metaType, EventPayload: map[string]any{
			"run": m.Run, "key": m.Key, "outbox_id": strconv.FormatUint(m.ID, 10)}}),
	}
	if parent != "" {
		opts = append(opts, slack.MsgOptionTS(parent))
		if out.broadcast {
			opts = append(opts, slack.MsgOptionBroadcast())
		}
	}
	cctx, cancel := b.callCtx(ctx)
	defer cancel()
	ch, ts, err := b.api.PostMessageContext(cctx, channel, opts...)
	if err != nil {
		b.apiErr("post", err)
		return store.MessageRef{}, fmt.Errorf("chat.postMessage to %s: %w", channel, err)
	}
	return store.MessageRef{Channel: ch, TS: ts, ThreadTS: parent}, nil
}

// findPosted looks for a post tagged with outbox entry id in the thread
// (or, for a top-level post, the channel's recent history).
func (b *Bot) findPosted(ctx context.Context, channel, parent string, id uint64) (string, bool, error) {
	want := strconv.FormatUint(id, 10)
	cctx, cancel := b.callCtx(ctx)
	defer cancel()
	var msgs []slack.Message
	var err error
	if parent != "" {
		msgs, _, _, err = b.api.GetConversationRepliesContext(cctx, &slack.GetConversationRepliesParameters{
			ChannelID: channel, Timestamp: parent, Limit: 1000, IncludeAllMetadata: true})
	} else {
		var resp *slack.GetConversationHistoryResponse
		resp, err = b.api.GetConversationHistoryContext(cctx, &slack.GetConversationHistoryParameters{
			ChannelID: channel, Limit: 200, IncludeAllMetadata: true})
		if resp != nil {
			msgs = resp.Messages
		}
	}
	if err != nil {
		b.apiErr("lookup", err)
		var se slack.SlackErrorResponse
		if errors.As(err, &se) && slices.Contains([]string{"missing_scope", "not_in_channel", "thread_not_found",
			"channel_not_found", "invalid_arguments"}, se.Err) {
			// Cannot look: posting again risks a duplicate, not posting
			// would lose the message.
			b.log.Warn("cannot read the channel to avoid a duplicate post; posting", "err", se.Err)
			return "", false, nil
		}
		return "", false, fmt.Errorf("looking for an earlier post: %w", err)
	}
	for _, msg := range msgs {
		md := msg.Metadata
		if md.EventType == metaType && fmt.Sprint(md.EventPayload["outbox_id"]) == want {
			return msg.Timestamp, true, nil
		}
	}
	return "", false, nil
}

// afterDelivery uploads a finished step's long output as a file in the
// run's thread (once per step attempt).
func (b *Bot) afterDelivery(ctx context.Context, v *view, m store.Message) error {
	if v == nil || !strings.HasPrefix(m.Key, "step/") {
		return nil
	}
	id := strings.TrimPrefix(m.Key, "step/")
	st, ok := v.run.Step(id)
	if !ok || st.Status == steps.StepRunning {
		return nil
	}
	for n := 1; n <= st.Attempts; n++ {
		if _, done, err := b.st.MessageRef(ctx, m.Run, fileKey(id, n)); err != nil || done {
			continue
		}
		o, ok := b.latestOutput(ctx, m.Run, outputKey(id, n))
		if !ok || len(o.Lines) <= tailLines {
			continue
		}
		if err := b.upload(ctx, v, o); err != nil {
			return err
		}
	}
	return nil
}

func (b *Bot) upload(ctx context.Context, v *view, o outputPayload) error {
	parent, ok, err := b.st.MessageRef(ctx, v.run.ID, "summary")
	if err != nil || !ok {
		return fmt.Errorf("run %s has no thread to attach output to yet", v.run.ID)
	}
	def, _ := v.plan.Step(o.Step)
	content := o.text()
	cctx, cancel := context.WithTimeout(ctx, 3*b.opts.CallTimeout)
	defer cancel()
	f, err := b.api.UploadFileContext(cctx, slack.UploadFileParameters{
		Filename: fmt.Sprintf("%s-%s-attempt%d.log", v.run.ID, o.Step, o.Attempt),
		Title:    fmt.Sprintf("%s: output of %s (attempt %d)", v.run.ID, def.Title, o.Attempt),
		Content:  content, FileSize: len(content),
		Channel: parent.Channel, ThreadTimestamp: parent.TS,
	})
	if err != nil {
		b.apiErr("upload", err)
		return fmt.Errorf("uploading output of %s: %w", o.Step, err)
	}
	if err := b.st.SetMessageRef(ctx, v.run.ID, fileKey(o.Step, o.Attempt), store.MessageRef{Channel: parent.Channel, TS: f.ID, ThreadTS: parent.TS}); err != nil {
		return err
	}
	// Redraw the output message to point at the file.
	return b.refresh(ctx, v.run.ID, refreshPayload{}, outputKey(o.Step, o.Attempt))
}

// refresh queues redraws of keyed messages of a run.
func (b *Bot) refresh(ctx context.Context, run string, p refreshPayload, keys ...string) error {
	payload, err := json.Marshal(p)
	if err != nil {
		return err
	}
	var msgs []store.Message
	for _, k := range keys {
		if k == "" {
			continue
		}
		msgs = append(msgs, store.Message{Run: run, Key: k, Kind: KindRefresh, Payload: payload})
	}
	if len(msgs) == 0 {
		return nil
	}
	if _, err := b.st.Enqueue(context.WithoutCancel(ctx), msgs...); err != nil {
		return fmt.Errorf("queueing redraws for run %s: %w", run, err)
	}
	b.kick()
	return nil
}

func (b *Bot) markDirty(run string) {
	b.dmu.Lock()
	b.dirty[run] = true
	b.homeDirty = true
	b.dmu.Unlock()
}

// summaryEvery is the least time between two edits of one run's parent
// message: a burst of steps is drawn once, not once per message.
const summaryEvery = time.Second

// flushSummaries edits the parent message of every run that moved.
func (b *Bot) flushSummaries(ctx context.Context) {
	if b.paused() {
		return
	}
	now := b.now()
	b.dmu.Lock()
	var runs []string
	for r := range b.dirty {
		if now.Sub(b.drawn[r]) >= summaryEvery {
			runs = append(runs, r)
		}
	}
	b.dmu.Unlock()
	for _, id := range runs {
		if ctx.Err() != nil || b.paused() {
			return
		}
		if err := b.redrawSummary(ctx, id); err != nil {
			var rl *slack.RateLimitedError
			if errors.As(err, &rl) {
				b.dmu.Lock()
				b.pauseUntil = b.now().Add(max(rl.RetryAfter, b.opts.RetryBase))
				b.dmu.Unlock()
			}
			b.log.Warn("editing a run's summary failed; will retry", "run_id", id, "err", err)
			continue
		}
		b.dmu.Lock()
		delete(b.dirty, id)
		b.drawn[id] = now
		b.dmu.Unlock()
	}
}

func (b *Bot) redrawSummary(ctx context.Context, id string) error {
	ref, ok, err := b.st.MessageRef(ctx, id, "summary")
	if err != nil || !ok {
		return err
	}
	run, _, err := b.run.Load(ctx, id)
	if err != nil {
		return err
	}
	v, err := b.view(ctx, run, "summary")
	if err != nil {
		return nil
	}
	return b.update(ctx, ref, v.summary())
}

// startupChecks prepares a (re)started bot: posts that may have gone out
// just before a crash are looked up before posting, and the summaries of
// active runs are redrawn.
func (b *Bot) startupChecks(ctx context.Context) {
	heads, err := b.st.Pending(ctx, b.now().Add(100*365*24*time.Hour), 0)
	if err != nil {
		b.log.Error("reading the outbox at start", "err", err)
	}
	b.dmu.Lock()
	for _, m := range heads {
		if m.Kind != KindRefresh {
			b.checkHeads[m.ID] = true
		}
	}
	b.dmu.Unlock()
	runs, err := b.st.Runs(ctx, store.RunFilter{ActiveOnly: true})
	if err != nil {
		b.log.Error("listing active runs at start", "err", err)
	}
	for _, r := range runs {
		b.markDirty(r.ID)
	}
}

// reportDepth counts undelivered messages, at most once a second.
func (b *Bot) reportDepth(ctx context.Context) {
	now := b.now()
	b.dmu.Lock()
	if now.Sub(b.lastDepth) < time.Second {
		b.dmu.Unlock()
		return
	}
	b.lastDepth = now
	b.dmu.Unlock()
	heads, err := b.st.Pending(ctx, now.Add(100*365*24*time.Hour), 0)
	if err != nil {
		return
	}
	n := 0
	for _, h := range heads {
		msgs, err := b.st.Outbox(ctx, h.Run)
		if err != nil {
			return
		}
		for _, m := range msgs {
			if !m.Delivered {
				n++
			}
		}
	}
	b.metrics.OutboxDepth(n)
}
