package localslack_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kongbot/kongbot/localslack"
	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"
	"github.com/slack-go/slack/socketmode"
)

// smBot is a minimal Socket Mode bot built on slack-go, as kongbot's adapter
// will be: it records what arrives and acks according to ackDelay/noAck.
type smBot struct {
	api *slack.Client
	sm  *socketmode.Client

	mu       sync.Mutex
	commands []slack.SlashCommand
	clicks   []slack.InteractionCallback
	events   []slackevents.EventsAPIEvent
	ackDelay time.Duration
	noAck    bool
	// onEvent, when set, runs before the ack and returns the ack payload.
	onEvent func(socketmode.Event) any
}

func startSMBot(t *testing.T, ctx context.Context, ls *localslack.Server) *smBot {
	t.Helper()
	b := &smBot{api: client(ls)}
	b.sm = socketmode.New(b.api)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = b.sm.RunContext(ctx) }()
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case evt := <-b.sm.Events:
				b.handle(ctx, evt)
			}
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
	if err := ls.WaitFor(ctx, func() bool { return ls.Sockets().Open == 1 }); err != nil {
		t.Fatalf("bot never connected: %v", err)
	}
	return b
}

func (b *smBot) handle(ctx context.Context, evt socketmode.Event) {
	if evt.Request == nil {
		return
	}
	b.mu.Lock()
	delay, noAck := b.ackDelay, b.noAck
	var payload any
	switch evt.Type {
	case socketmode.EventTypeSlashCommand:
		cmd := evt.Data.(slack.SlashCommand)
		b.commands = append(b.commands, cmd)
		payload = map[string]any{"response_type": "ephemeral", "text": "starting: " + cmd.Text}
	case socketmode.EventTypeInteractive:
		b.clicks = append(b.clicks, evt.Data.(slack.InteractionCallback))
	case socketmode.EventTypeEventsAPI:
		b.events = append(b.events, evt.Data.(slackevents.EventsAPIEvent))
	}
	onEvent := b.onEvent
	b.mu.Unlock()
	if onEvent != nil {
		if p := onEvent(evt); p != nil {
			payload = p
		}
	}
	if noAck {
		return
	}
	go func() {
		if delay > 0 {
			time.Sleep(delay)
		}
		_ = b.sm.AckCtx(ctx, evt.Request.EnvelopeID, payload)
	}()
}

func (b *smBot) snapshot() ([]slack.SlashCommand, []slack.InteractionCallback, []slackevents.EventsAPIEvent) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]slack.SlashCommand(nil), b.commands...), append([]slack.InteractionCallback(nil), b.clicks...),
		append([]slackevents.EventsAPIEvent(nil), b.events...)
}

func TestSocketModeSlashCommandClickAndHome(t *testing.T) {
	ls := newServer(t, localslack.Options{})
	ctx := testCtx(t)
	bot := startSMBot(t, ctx, ls)

	d, err := ls.SlashCommand(ctx, "olivia", localslack.ChannelName, "/kong upgrade start prod 1.0.3")
	if err != nil {
		t.Fatalf("slash command: %v", err)
	}
	if !d.Acked || d.Transport != localslack.TransportSocket || d.Late || !strings.Contains(string(d.Response), "starting: upgrade start prod 1.0.3") {
		t.Errorf("delivery = %+v", d)
	}
	cmds, _, _ := bot.snapshot()
	if len(cmds) != 1 || cmds[0].Command != "/kong" || cmds[0].Text != "upgrade start prod 1.0.3" ||
		cmds[0].UserID != localslack.OnCallID || cmds[0].ChannelID != localslack.ChannelID || cmds[0].ResponseURL == "" || cmds[0].TriggerID == "" {
		t.Errorf("bot got %+v", cmds)
	}
	// The ack payload is shown to the user, as Slack shows it.
	if e := ls.Ephemerals(localslack.OnCallID); len(e) != 1 || e[0].Source != "ack" || e[0].Text != "starting: upgrade start prod 1.0.3" {
		t.Errorf("ephemerals = %+v", e)
	}

	// A click carries the action, the container and the whole message.
	_, ts, err := bot.api.PostMessageContext(ctx, localslack.ChannelID, slack.MsgOptionText("approve?", false),
		slack.MsgOptionBlocks(approvalBlocks("r42:3:ab12")...))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ls.Click(ctx, localslack.Lead1ID, localslack.ChannelID, ts, "step_nope", ""); !errors.Is(err, localslack.ErrNoButton) {
		t.Errorf("click on a missing button: %v", err)
	}
	d, err = ls.Click(ctx, "liam", localslack.ChannelID, ts, "step_approve", "")
	if err != nil || !d.Acked {
		t.Fatalf("click: %+v %v", d, err)
	}
	_, clicks, _ := bot.snapshot()
	if len(clicks) != 1 {
		t.Fatalf("clicks = %d", len(clicks))
	}
	ic := clicks[0]
	ba := ic.ActionCallback.BlockActions
	if ic.Type != slack.InteractionTypeBlockActions || len(ba) != 1 || ba[0].ActionID != "step_approve" || ba[0].Value != "r42:3:ab12" ||
		ic.User.ID != localslack.Lead1ID || ic.Container.MessageTs != ts || ic.Container.ChannelID != localslack.ChannelID ||
		ic.Message.Timestamp != ts || len(ic.Message.Blocks.BlockSet) != 3 || ic.ResponseURL == "" {
		t.Errorf("interaction = %+v", ic)
	}

	// The bot replaces the message through response_url, as slack-go sends it.
	if _, _, err := bot.api.PostMessageContext(ctx, "", slack.MsgOptionReplaceOriginal(ic.ResponseURL),
		slack.MsgOptionText("Approved by <@"+ic.User.ID+">", false)); err != nil {
		t.Fatalf("response_url: %v", err)
	}
	if m, _ := ls.Message(ts); m.Text != "Approved by <@"+localslack.Lead1ID+">" || len(m.Buttons()) != 0 {
		t.Errorf("message after replace_original = %+v", m)
	}
	// A stale client still shows the old buttons; AsSeen clicks them anyway.
	old := localslack.Message{TS: ts, Channel: localslack.ChannelID, Blocks: mustBlocks(t, approvalBlocks("r42:3:ab12"))}
	if _, err := ls.Click(ctx, localslack.Lead2ID, localslack.ChannelID, ts, "step_approve", ""); !errors.Is(err, localslack.ErrNoButton) {
		t.Errorf("click on a removed button: %v", err)
	}
	if d, err := ls.Click(ctx, localslack.Lead2ID, localslack.ChannelID, ts, "step_approve", "", localslack.AsSeen(old)); err != nil || !d.Acked {
		t.Errorf("stale click: %v", err)
	}

	// app_home_opened arrives as an events_api envelope slack-go parses.
	if _, err := ls.OpenHome(ctx, localslack.Lead1ID); err != nil {
		t.Fatalf("open home: %v", err)
	}
	_, _, evs := bot.snapshot()
	if len(evs) != 1 || evs[0].InnerEvent.Type != string(slackevents.AppHomeOpened) {
		t.Fatalf("events = %+v", evs)
	}
	if ho, ok := evs[0].InnerEvent.Data.(*slackevents.AppHomeOpenedEvent); !ok || ho.User != localslack.Lead1ID || ho.Tab != "home" {
		t.Errorf("app_home_opened = %+v", evs[0].InnerEvent.Data)
	}
}

func mustBlocks(t *testing.T, bs []slack.Block) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(bs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSocketModeRefreshReconnects(t *testing.T) {
	for _, reason := range []string{"refresh_requested", "warning"} {
		t.Run(reason, func(t *testing.T) {
			ls := newServer(t, localslack.Options{DisconnectGrace: 200 * time.Millisecond})
			ctx := testCtx(t)
			bot := startSMBot(t, ctx, ls)
			if n := ls.Disconnect(reason); n != 1 {
				t.Fatalf("told %d sockets", n)
			}
			// slack-go closes the old socket and opens a new one.
			err := ls.WaitFor(ctx, func() bool { s := ls.Sockets(); return s.Opened == 2 && s.Closed == 1 && s.Open == 1 })
			if err != nil {
				t.Fatalf("no reconnect: %+v: %v", ls.Sockets(), err)
			}
			if d, err := ls.SlashCommand(ctx, localslack.OnCallID, localslack.ChannelID, "/kong status"); err != nil || !d.Acked {
				t.Fatalf("command after reconnect: %v", err)
			}
			if cmds, _, _ := bot.snapshot(); len(cmds) != 1 {
				t.Errorf("commands after reconnect = %d", len(cmds))
			}
		})
	}
}

func TestSocketModeLateAndMissingAcks(t *testing.T) {
	ls := newServer(t, localslack.Options{AckTimeout: 150 * time.Millisecond})
	ctx := testCtx(t)
	bot := startSMBot(t, ctx, ls)

	bot.mu.Lock()
	bot.ackDelay = 400 * time.Millisecond
	bot.mu.Unlock()
	d, err := ls.SlashCommand(ctx, localslack.OnCallID, localslack.ChannelID, "/kong status")
	if !errors.Is(err, localslack.ErrNotAcked) || d.Acked {
		t.Fatalf("late ack: %+v %v", d, err)
	}
	// Slack tells the user the app timed out.
	if e := ls.Ephemerals(localslack.OnCallID); len(e) != 1 || !strings.Contains(e[0].Text, "operation_timeout") {
		t.Errorf("ephemerals = %+v", e)
	}
	// The ack arrives later and is recorded as late.
	if err := ls.WaitFor(ctx, func() bool { ds := ls.Deliveries(); return len(ds) == 1 && ds[0].Acked }); err != nil {
		t.Fatal(err)
	}
	if ds := ls.Deliveries(); !ds[0].Late || ds[0].AckLatency < 150*time.Millisecond {
		t.Errorf("late delivery = %+v", ds[0])
	}

	bot.mu.Lock()
	bot.ackDelay, bot.noAck = 0, true
	bot.mu.Unlock()
	d, err = ls.Click(ctx, localslack.Lead1ID, localslack.ChannelID, mustPost(t, ctx, bot.api), "step_approve", "")
	if !errors.Is(err, localslack.ErrNotAcked) || d.Acked || d.Late {
		t.Errorf("missing ack: %+v %v", d, err)
	}
}

func mustPost(t *testing.T, ctx context.Context, api *slack.Client) string {
	t.Helper()
	_, ts, err := api.PostMessageContext(ctx, localslack.ChannelID, slack.MsgOptionText("approve?", false),
		slack.MsgOptionBlocks(approvalBlocks("r42:3:ab12")...))
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func TestNoTransport(t *testing.T) {
	ls := newServer(t, localslack.Options{})
	ctx := testCtx(t)
	if _, err := ls.SlashCommand(ctx, localslack.OnCallID, localslack.ChannelID, "/kong status"); !errors.Is(err, localslack.ErrNoTransport) {
		t.Fatalf("err = %v", err)
	}
	if e := ls.Ephemerals(localslack.OnCallID); len(e) != 1 || !strings.Contains(e[0].Text, "dispatch_failed") {
		t.Errorf("ephemerals = %+v", e)
	}
}

func TestClickOnEphemeral(t *testing.T) {
	ls := newServer(t, localslack.Options{})
	ctx := testCtx(t)
	bot := startSMBot(t, ctx, ls)
	tsE, err := bot.api.PostEphemeralContext(ctx, localslack.ChannelID, localslack.Lead2ID, slack.MsgOptionText("confirm?", false),
		slack.MsgOptionBlocks(approvalBlocks("r9:1:ff")...))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ls.Click(ctx, localslack.Lead1ID, localslack.ChannelID, tsE, "step_approve", ""); err == nil {
		t.Error("another user clicked lena's ephemeral message")
	}
	if _, err := ls.Click(ctx, localslack.Lead2ID, localslack.ChannelID, tsE, "step_approve", ""); err != nil {
		t.Fatal(err)
	}
	_, clicks, _ := bot.snapshot()
	if len(clicks) != 1 || !clicks[0].Container.IsEphemeral || clicks[0].Container.MessageTs != tsE {
		t.Fatalf("clicks = %+v", clicks)
	}
	// replace_original on an ephemeral rewrites it in place.
	if _, _, err := bot.api.PostMessageContext(ctx, "", slack.MsgOptionReplaceOriginal(clicks[0].ResponseURL), slack.MsgOptionText("done", false)); err != nil {
		t.Fatal(err)
	}
	e := ls.Ephemerals(localslack.Lead2ID)
	if len(e) != 1 || e[0].Text != "done" || len(e[0].Blocks) != 0 {
		t.Errorf("ephemerals = %+v", e)
	}
}

func TestModalOpenSubmitWithErrorsThenClose(t *testing.T) {
	now := time.Now()
	clock := &now
	var mu sync.Mutex
	ls := newServer(t, localslack.Options{Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return *clock }})
	ctx := testCtx(t)
	bot := startSMBot(t, ctx, ls)
	var openErr error
	var opened sync.WaitGroup
	opened.Add(1)
	bot.mu.Lock()
	bot.onEvent = func(evt socketmode.Event) any {
		ic, ok := evt.Data.(slack.InteractionCallback)
		if !ok {
			return nil
		}
		switch ic.Type {
		case slack.InteractionTypeBlockActions: // "Reject with reason" opens a modal
			_, openErr = bot.api.OpenViewContext(ctx, ic.TriggerID, slack.ModalViewRequest{
				Type: slack.VTModal, Title: plain("Reject step 3"), Submit: plain("Reject"), Close: plain("Cancel"),
				CallbackID: "reject_reason", PrivateMetadata: "r42:3",
				Blocks: slack.Blocks{BlockSet: []slack.Block{slack.NewInputBlock("reason", plain("Reason"), nil,
					slack.NewPlainTextInputBlockElement(plain("why?"), "reason_input"))}},
			})
			opened.Done()
		case slack.InteractionTypeViewSubmission:
			if ic.View.State.Values["reason"]["reason_input"].Value == "" {
				return slack.NewErrorsViewSubmissionResponse(map[string]string{"reason": "Say why you reject it"})
			}
		}
		return nil
	}
	bot.mu.Unlock()

	ts := mustPost(t, ctx, bot.api)
	if _, err := ls.Click(ctx, localslack.Lead1ID, localslack.ChannelID, ts, "step_reject", ""); err != nil {
		t.Fatal(err)
	}
	opened.Wait()
	if openErr != nil {
		t.Fatalf("views.open: %v", openErr)
	}
	m, ok := ls.OpenModal(localslack.Lead1ID)
	if !ok || !strings.Contains(string(m.View), "reject_reason") {
		t.Fatalf("modal = %+v %v", m, ok)
	}
	if d, err := ls.SubmitModal(ctx, localslack.Lead1ID, map[string]map[string]string{"reason": {"reason_input": ""}}); err != nil || !d.Acked {
		t.Fatalf("submit: %+v %v", d, err)
	}
	if m, ok = ls.OpenModal(localslack.Lead1ID); !ok || m.Errors["reason"] != "Say why you reject it" {
		t.Fatalf("after a refused submit: %+v %v", m, ok)
	}
	if _, err := ls.SubmitModal(ctx, localslack.Lead1ID, map[string]map[string]string{"reason": {"reason_input": "pending backup"}}); err != nil {
		t.Fatal(err)
	}
	if _, ok := ls.OpenModal(localslack.Lead1ID); ok {
		t.Error("modal still open after an accepted submit")
	}
	_, clicks, _ := bot.snapshot()
	last := clicks[len(clicks)-1]
	if last.Type != slack.InteractionTypeViewSubmission || last.View.CallbackID != "reject_reason" || last.View.PrivateMetadata != "r42:3" ||
		last.View.State.Values["reason"]["reason_input"].Value != "pending backup" || last.User.ID != localslack.Lead1ID {
		t.Errorf("submission = %+v", last)
	}

	// A trigger_id is good for 3 seconds, once.
	var se slack.SlackErrorResponse
	if _, err := bot.api.OpenViewContext(ctx, clicks[0].TriggerID, slack.ModalViewRequest{Type: slack.VTModal, Title: plain("x")}); !errors.As(err, &se) || se.Err != "invalid_trigger_id" {
		t.Errorf("reused trigger: %v", err)
	}
	bot.mu.Lock()
	bot.onEvent = nil
	bot.mu.Unlock()
	if _, err := ls.Click(ctx, localslack.Lead1ID, localslack.ChannelID, ts, "step_reject", ""); err != nil {
		t.Fatal(err)
	}
	_, clicks, _ = bot.snapshot()
	mu.Lock()
	*clock = clock.Add(4 * time.Second)
	mu.Unlock()
	if _, err := bot.api.OpenViewContext(ctx, clicks[len(clicks)-1].TriggerID, slack.ModalViewRequest{Type: slack.VTModal, Title: plain("x")}); !errors.As(err, &se) || se.Err != "expired_trigger_id" {
		t.Errorf("expired trigger: %v", err)
	}
}
