package bot

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"
	"github.com/slack-go/slack/socketmode"
)

// maxBody bounds a request from Slack (they are a few KB).
const maxBody = 1 << 20

// maxSkew is Slack's replay window: a signed request older (or newer) than
// this is refused.
const maxSkew = 5 * time.Minute

// Handler serves Slack's HTTP-mode requests: /slack/commands,
// /slack/interactions and /slack/events. Every request must carry a valid
// signature made with the signing secret within the last five minutes;
// anything else gets 401 and a logged reason. Each request is acknowledged
// before any slow work starts.
func (b *Bot) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /slack/commands", b.serveCommand)
	mux.HandleFunc("POST /slack/interactions", b.serveInteraction)
	mux.HandleFunc("POST /slack/events", b.serveEvent)
	return mux
}

// verified reads and checks a request; it answers the refusal itself.
func (b *Bot) verified(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		b.log.Warn("rejected Slack request", "path", r.URL.Path, "reason", "reading body: "+err.Error(), "remote", r.RemoteAddr)
		http.Error(w, "bad request", http.StatusBadRequest)
		return nil, false
	}
	if len(body) > maxBody {
		b.log.Warn("rejected Slack request", "path", r.URL.Path, "reason", "body over 1 MiB", "remote", r.RemoteAddr)
		http.Error(w, "request too large", http.StatusRequestEntityTooLarge)
		return nil, false
	}
	if reason := b.checkSignature(r.Header, body); reason != "" {
		b.log.Warn("rejected Slack request", "path", r.URL.Path, "reason", reason, "remote", r.RemoteAddr)
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return nil, false
	}
	return body, true
}

// checkSignature returns why a request is not Slack's, or "". slack-go's
// verifier does the HMAC; the timestamp is judged here first to log whether
// it is stale or future-dated.
func (b *Bot) checkSignature(h http.Header, body []byte) string {
	ts, sig := h.Get("X-Slack-Request-Timestamp"), h.Get("X-Slack-Signature")
	if ts == "" || sig == "" {
		return "missing X-Slack-Request-Timestamp or X-Slack-Signature"
	}
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Sprintf("timestamp %q is not a number", clip(ts, 20))
	}
	// Wall clock, as Slack signs with it (the injected clock may be fake).
	age := time.Since(time.Unix(n, 0))
	switch {
	case age > maxSkew:
		return fmt.Sprintf("timestamp is %s old, over the 5 minute window (stale or replayed)", age.Round(time.Second))
	case age < -maxSkew:
		return fmt.Sprintf("timestamp is %s in the future, over the 5 minute window", (-age).Round(time.Second))
	}
	sv, err := slack.NewSecretsVerifier(h, b.secret)
	if err != nil {
		return "verifier: " + err.Error()
	}
	if _, err := sv.Write(body); err != nil {
		return "verifier: " + err.Error()
	}
	if err := sv.Ensure(); err != nil {
		if errors.Is(err, slack.ErrInvalidSignature) {
			return "signature does not match the body (forged, wrong secret or tampered)"
		}
		return "signature: " + err.Error()
	}
	return ""
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func (b *Bot) serveCommand(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	body, ok := b.verified(w, r)
	if !ok {
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	cmd, err := slack.SlashCommandParse(r)
	if err != nil {
		b.log.Warn("rejected Slack request", "path", r.URL.Path, "reason", "unparsable slash command: "+err.Error())
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	ack := b.onCommand(cmd, ModeHTTP)
	if ack == nil {
		w.WriteHeader(http.StatusOK)
	} else {
		writeJSON(w, ack)
	}
	b.metrics.Acked(ModeHTTP, "command", time.Since(start))
}

func (b *Bot) serveInteraction(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	body, ok := b.verified(w, r)
	if !ok {
		return
	}
	form, err := url.ParseQuery(string(body))
	var ic blockAction
	if err == nil {
		err = json.Unmarshal([]byte(form.Get("payload")), &ic)
	}
	if err != nil {
		b.log.Warn("rejected Slack request", "path", r.URL.Path, "reason", "unparsable interaction payload")
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	b.onInteraction(ic)
	w.WriteHeader(http.StatusOK)
	b.metrics.Acked(ModeHTTP, "interaction", time.Since(start))
}

func (b *Bot) serveEvent(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	body, ok := b.verified(w, r)
	if !ok {
		return
	}
	ev, err := slackevents.ParseEvent(json.RawMessage(body), slackevents.OptionNoVerifyToken())
	if err != nil {
		b.log.Warn("rejected Slack request", "path", r.URL.Path, "reason", "unparsable event: "+err.Error())
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	if ev.Type == slackevents.URLVerification {
		var c slackevents.ChallengeResponse
		if err := json.Unmarshal(body, &c); err != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, c.Challenge)
		return
	}
	b.onEvent(ev)
	w.WriteHeader(http.StatusOK)
	b.metrics.Acked(ModeHTTP, "event", time.Since(start))
}

// runSocket connects over Socket Mode and serves until ctx ends.
func (b *Bot) runSocket(ctx context.Context) error {
	opts := append([]socketmode.Option{socketmode.OptionLog(slogOutput{b.log})}, b.opts.SocketOptions...)
	sm := socketmode.New(b.api, opts...)
	errc := make(chan error, 1)
	go func() { errc <- sm.RunContext(ctx) }()
	defer b.conn.Store(false)
	for {
		select {
		case err := <-errc:
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("socket mode: %w", err)
		case evt := <-sm.Events:
			b.socketEvent(sm, evt)
		}
	}
}

func (b *Bot) socketEvent(sm *socketmode.Client, evt socketmode.Event) {
	start := time.Now()
	switch evt.Type {
	case socketmode.EventTypeConnected, socketmode.EventTypeHello:
		b.conn.Store(true)
		b.log.Info("socket mode connected")
	case socketmode.EventTypeConnecting, socketmode.EventTypeDisconnect, socketmode.EventTypeConnectionError:
		b.conn.Store(false)
		b.log.Info("socket mode reconnecting", "event", evt.Type)
	case socketmode.EventTypeInvalidAuth:
		b.conn.Store(false)
		b.log.Error("socket mode: Slack refused the app-level token")
	case socketmode.EventTypeSlashCommand:
		cmd, ok := evt.Data.(slack.SlashCommand)
		if !ok || evt.Request == nil {
			return
		}
		ack := b.onCommand(cmd, ModeSocket)
		var err error
		if ack == nil {
			err = sm.Ack(*evt.Request)
		} else {
			err = sm.Ack(*evt.Request, ack)
		}
		if err != nil {
			b.log.Warn("socket mode ack failed", "err", err)
		}
		b.metrics.Acked(ModeSocket, "command", time.Since(start))
	case socketmode.EventTypeInteractive:
		if evt.Request == nil {
			return
		}
		if err := sm.Ack(*evt.Request); err != nil {
			b.log.Warn("socket mode ack failed", "err", err)
		}
		b.metrics.Acked(ModeSocket, "interaction", time.Since(start))
		if ic, ok := evt.Data.(slack.InteractionCallback); ok && b.seen.first("env:"+evt.Request.EnvelopeID, b.now()) {
			b.onInteraction(fromCallback(ic))
		}
	case socketmode.EventTypeEventsAPI:
		if evt.Request == nil {
			return
		}
		if err := sm.Ack(*evt.Request); err != nil {
			b.log.Warn("socket mode ack failed", "err", err)
		}
		b.metrics.Acked(ModeSocket, "event", time.Since(start))
		if ev, ok := evt.Data.(slackevents.EventsAPIEvent); ok {
			b.onEvent(ev)
		}
	}
}

// slogOutput sends slack-go's own log lines (debug output, which redacts
// credentials) to the bot's logger instead of stderr.
type slogOutput struct{ l *slog.Logger }

func (o slogOutput) Output(_ int, s string) error {
	o.l.Debug(strings.TrimSpace(s), "component", "slack-go")
	return nil
}

// onEvent handles Events API callbacks (App Home opened).
func (b *Bot) onEvent(ev slackevents.EventsAPIEvent) {
	if cb, ok := ev.Data.(*slackevents.EventsAPICallbackEvent); ok && !b.seen.first("event:"+cb.EventID, b.now()) {
		return
	}
	var user string
	switch e := ev.InnerEvent.Data.(type) {
	case *slackevents.AppHomeOpenedEvent:
		if e.Tab == "home" || e.Tab == "" {
			user = e.User
		}
	case slackevents.AppHomeOpenedEvent:
		if e.Tab == "home" || e.Tab == "" {
			user = e.User
		}
	}
	if user == "" {
		return
	}
	b.handle("app_home_opened", func(ctx context.Context) {
		b.dmu.Lock()
		b.homes[user] = time.Time{}
		b.dmu.Unlock()
		if err := b.publishHome(ctx, user); err != nil {
			b.log.Warn("publishing App Home failed", "user", user, "err", err)
		}
	})
}
