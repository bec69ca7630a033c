package localslack

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Transports a Delivery can take.
const (
	TransportSocket = "socket"
	TransportHTTP   = "http"
)

// Kinds of Delivery.
const (
	KindSlashCommand   = "slash_commands"
	KindBlockActions   = "block_actions"
	KindAppHomeOpened  = "app_home_opened"
	KindViewSubmission = "view_submission"
	KindViewClosed     = "view_closed"
)

var (
	// ErrNoTransport: no Socket Mode connection is open and no HTTP endpoint
	// is configured for this kind of request (Slack shows "dispatch_failed").
	ErrNoTransport = errors.New("localslack: no bot connected (no Socket Mode connection, no HTTP endpoint)")
	// ErrNotAcked: the bot did not acknowledge in time, closed the socket, or
	// answered HTTP with a non-200 status; the Delivery says which.
	ErrNotAcked = errors.New("localslack: request not acknowledged")
	// ErrNoButton: the message has no button with that action_id (and value).
	ErrNoButton = errors.New("localslack: no such button")
)

// Delivery is one request localslack sent to the bot and what came back.
type Delivery struct {
	ID        string `json:"id"` // envelope_id in Socket Mode
	Kind      string `json:"kind"`
	Transport string `json:"transport"`
	User      string `json:"user"`
	Channel   string `json:"channel,omitempty"`
	// Summary is the command text or the clicked action_id, for logs and the page.
	Summary      string          `json:"summary"`
	Sent         time.Time       `json:"sent"`
	Acked        bool            `json:"acked"`
	AckLatency   time.Duration   `json:"ack_latency"`
	Late         bool            `json:"late,omitempty"` // Socket Mode ack after AckTimeout (HTTP requests are cut off at the deadline, as Slack does)
	Status       int             `json:"status,omitempty"`
	Response     json.RawMessage `json:"response,omitempty"` // ack payload or HTTP response body
	Err          string          `json:"error,omitempty"`
	ResponseURL  string          `json:"response_url,omitempty"`
	RetryAttempt int             `json:"retry_attempt,omitempty"`
	// DuplicateAcks counts acks received after the first one.
	DuplicateAcks int `json:"duplicate_acks,omitempty"`
	// Payload is what was sent: the envelope payload (Socket Mode) or the
	// request body (HTTP).
	Payload json.RawMessage `json:"payload"`
}

// DeliverOption adjusts one delivery.
type DeliverOption func(*deliverConfig)

type deliverConfig struct {
	transport    string
	secret       *string
	signedAt     time.Time
	tamper       bool
	unsigned     bool
	retryAttempt int
	retryReason  string
	snapshot     *Message
	threadTS     string
}

// ViaSocket forces Socket Mode (fails with ErrNoTransport when no socket is open).
func ViaSocket() DeliverOption { return func(c *deliverConfig) { c.transport = TransportSocket } }

// ViaHTTP forces HTTP mode even when a socket is open.
func ViaHTTP() DeliverOption { return func(c *deliverConfig) { c.transport = TransportHTTP } }

// SignedWith signs an HTTP request with another secret (a forgery).
func SignedWith(secret string) DeliverOption { return func(c *deliverConfig) { c.secret = &secret } }

// SignedAt signs an HTTP request with this timestamp (stale or future-dated).
func SignedAt(t time.Time) DeliverOption { return func(c *deliverConfig) { c.signedAt = t } }

// Tampered changes the HTTP body after signing it.
func Tampered() DeliverOption { return func(c *deliverConfig) { c.tamper = true } }

// Unsigned sends an HTTP request without Slack's signature headers.
func Unsigned() DeliverOption { return func(c *deliverConfig) { c.unsigned = true } }

// Retry marks a Socket Mode envelope as a redelivery (retry_attempt, retry_reason).
func Retry(attempt int, reason string) DeliverOption {
	return func(c *deliverConfig) { c.retryAttempt, c.retryReason = attempt, reason }
}

// AsSeen clicks on the message as the user's client last showed it (a stale
// view): the button is looked up in m, and m travels in the payload, even if
// the message has changed or lost its buttons since.
func AsSeen(m Message) DeliverOption { return func(c *deliverConfig) { c.snapshot = &m } }

// InThread runs a slash command from a thread (Slack sends the channel only;
// the option only places error replies).
func InThread(ts string) DeliverOption { return func(c *deliverConfig) { c.threadTS = ts } }

// Sign returns Slack's X-Slack-Signature for body sent at ts (unix seconds).
func Sign(secret, ts string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte("v0:" + ts + ":"))
	mac.Write(body)
	return "v0=" + hex.EncodeToString(mac.Sum(nil))
}

func (s *Server) triggerID() string {
	return fmt.Sprintf("%d.%s.%s", time.Now().UnixMilli(), strings.TrimPrefix(s.team.ID, "T"), strings.ToLower(shortID(24)))
}

// SlashCommand delivers a slash command typed by user (ID or name) in channel.
// text is the whole line ("/kong upgrade start prod 1.0.3"); a line without a
// leading command is sent as "/kong". It waits for the ack (or the deadline)
// and, as Slack does, shows a text/blocks ack payload to the user (ephemeral,
// or in the channel with response_type in_channel).
func (s *Server) SlashCommand(ctx context.Context, user, channel, text string, opts ...DeliverOption) (Delivery, error) {
	cfg := &deliverConfig{}
	for _, o := range opts {
		o(cfg)
	}
	command, args := "/kong", strings.TrimSpace(text)
	if strings.HasPrefix(args, "/") {
		command, args, _ = strings.Cut(args, " ")
		args = strings.TrimSpace(args)
	}
	s.mu.Lock()
	uid, ok := s.st.userID(user)
	cid, cok := s.st.channelID(channel)
	if !ok || !cok {
		s.mu.Unlock()
		return Delivery{}, fmt.Errorf("localslack: slash command: unknown user %q or channel %q", user, channel)
	}
	u, ch, team := s.st.users[uid], s.st.channels[cid], s.st.seed.Team
	rt := s.newResponseTargetLocked(uid, cid, "", "", cfg.threadTS)
	trig := s.newTriggerLocked(uid, cid)
	s.mu.Unlock()

	fields := map[string]string{
		"token": "localslackVerificationTok", "team_id": team.ID, "team_domain": team.Domain,
		"channel_id": cid, "channel_name": ch.Name, "user_id": uid, "user_name": u.Name,
		"command": command, "text": args, "api_app_id": s.bot.AppID, "is_enterprise_install": "false",
		"response_url": rt, "trigger_id": trig,
	}
	payload, _ := json.Marshal(fields)
	form := url.Values{}
	for k, v := range fields {
		form.Set(k, v)
	}
	d := Delivery{Kind: KindSlashCommand, User: uid, Channel: cid, Summary: strings.TrimSpace(command + " " + args), ResponseURL: rt}
	d, err := s.deliver(ctx, d, cfg, payload, "application/x-www-form-urlencoded", []byte(form.Encode()), func(e Endpoints) string { return e.Commands })
	s.afterCommand(d, err, command, cfg.threadTS)
	return d, err
}

// afterCommand shows the user what Slack would: the ack payload, or an error.
func (s *Server) afterCommand(d Delivery, err error, command, thread string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if err != nil {
		reason := "dispatch_failed"
		if errors.Is(err, ErrNotAcked) && ((d.Transport == TransportSocket && d.Err == "") || strings.HasPrefix(d.Err, "operation_timeout")) {
			reason = "operation_timeout"
		}
		s.st.ephs = append(s.st.ephs, &Ephemeral{Channel: d.Channel, User: d.User, ThreadTS: thread,
			Text: fmt.Sprintf("%s failed with the error \"%s\"", command, reason), Source: "localslack", Posted: now, TS: s.st.nextTS(now)})
		s.changedLocked()
		return
	}
	var msg struct {
		Text         string          `json:"text"`
		Blocks       json.RawMessage `json:"blocks"`
		ResponseType string          `json:"response_type"`
	}
	if len(d.Response) == 0 || json.Unmarshal(d.Response, &msg) != nil || (msg.Text == "" && len(msg.Blocks) == 0) {
		return
	}
	blocks, _ := normalizeBlocks(msg.Blocks)
	if msg.ResponseType == "in_channel" {
		echo := &Message{Channel: d.Channel, User: d.User, Text: d.Summary, Posted: now, TS: s.st.nextTS(now)}
		s.st.addMessage(echo)
		bm := &Message{Channel: d.Channel, User: s.st.seed.Bot.UserID, BotID: s.st.seed.Bot.BotID, Text: msg.Text,
			Blocks: blocks, Posted: now, TS: s.st.nextTS(now)}
		s.st.addMessage(bm)
	} else {
		s.st.ephs = append(s.st.ephs, &Ephemeral{Channel: d.Channel, User: d.User, ThreadTS: thread, Text: msg.Text,
			Blocks: blocks, Source: "ack", Posted: now, TS: s.st.nextTS(now)})
	}
	s.changedLocked()
}

// Click delivers a block_actions interaction: user (ID or name) pressed the
// button actionID (with value, if not empty) on the message messageTS, which
// may be a channel message, a thread reply or an ephemeral message shown to
// user. The payload carries the container, the whole message and a fresh
// response_url, as Slack sends it. A confirm dialog on the button is taken as
// confirmed (the web page shows it first).
func (s *Server) Click(ctx context.Context, user, channel, messageTS, actionID, value string, opts ...DeliverOption) (Delivery, error) {
	cfg := &deliverConfig{}
	for _, o := range opts {
		o(cfg)
	}
	s.mu.Lock()
	uid, ok := s.st.userID(user)
	cid, cok := s.st.channelID(channel)
	if !ok || !cok {
		s.mu.Unlock()
		return Delivery{}, fmt.Errorf("localslack: click: unknown user %q or channel %q", user, channel)
	}
	var (
		blocks     json.RawMessage
		msgJSON    obj
		isEph      bool
		threadTS   string
		ephTS      string
		messageRef string
	)
	switch m, found := s.st.byTS[messageTS]; {
	case cfg.snapshot != nil:
		snap := *cfg.snapshot
		blocks, msgJSON, threadTS, messageRef = snap.Blocks, s.msgJSON(&snap), snap.ThreadTS, snap.TS
	case found && m.Channel == cid:
		blocks, msgJSON, threadTS, messageRef = m.Blocks, s.msgJSON(m), m.ThreadTS, m.TS
	default:
		for _, e := range s.st.ephs {
			if e.TS == messageTS && e.User == uid && !e.Deleted {
				blocks, isEph, threadTS, ephTS = e.Blocks, true, e.ThreadTS, e.TS
			}
		}
		if !isEph {
			s.mu.Unlock()
			return Delivery{}, fmt.Errorf("localslack: click: no message %s in %s visible to %s", messageTS, cid, uid)
		}
	}
	btn, ok := findButton(blocks, actionID, value)
	if !ok {
		s.mu.Unlock()
		return Delivery{}, fmt.Errorf("%w: %q (value %q) on message %s", ErrNoButton, actionID, value, messageTS)
	}
	if threadTS == messageTS {
		threadTS = "" // a thread's parent is a channel message
	}
	u, ch, team := s.st.users[uid], s.st.channels[cid], s.st.seed.Team
	rt := s.newResponseTargetLocked(uid, cid, messageRef, ephTS, threadTS)
	trig := s.newTriggerLocked(uid, cid)
	s.mu.Unlock()

	container := obj{"type": "message", "message_ts": messageTS, "channel_id": cid, "is_ephemeral": isEph}
	if threadTS != "" {
		container["thread_ts"] = threadTS
	}
	action := obj{"action_id": btn.ActionID, "block_id": btn.BlockID, "type": "button", "value": btn.Value,
		"text": obj{"type": "plain_text", "text": btn.Text, "emoji": true}, "action_ts": fmt.Sprintf("%.6f", float64(time.Now().UnixMicro())/1e6)}
	if btn.Style != "" {
		action["style"] = btn.Style
	}
	if len(btn.Confirm) > 0 {
		action["confirm"] = btn.Confirm
	}
	p := obj{
		"type": "block_actions", "user": obj{"id": uid, "username": u.Name, "name": u.Name, "team_id": team.ID},
		"api_app_id": s.bot.AppID, "token": "localslackVerificationTok", "container": container,
		"trigger_id": trig, "team": obj{"id": team.ID, "domain": team.Domain},
		"enterprise": nil, "is_enterprise_install": false, "channel": obj{"id": cid, "name": ch.Name},
		"state": obj{"values": obj{}}, "response_url": rt, "actions": []obj{action},
	}
	if !isEph {
		p["message"] = msgJSON
	}
	payload, _ := json.Marshal(p)
	form := url.Values{"payload": {string(payload)}}
	d := Delivery{Kind: KindBlockActions, User: uid, Channel: cid, Summary: btn.ActionID, ResponseURL: rt}
	return s.deliver(ctx, d, cfg, payload, "application/x-www-form-urlencoded", []byte(form.Encode()), func(e Endpoints) string { return e.Interactions })
}

// ClickHome delivers a block_actions interaction from a button on user's App Home.
func (s *Server) ClickHome(ctx context.Context, user, actionID, value string, opts ...DeliverOption) (Delivery, error) {
	cfg := &deliverConfig{}
	for _, o := range opts {
		o(cfg)
	}
	s.mu.Lock()
	uid, ok := s.st.userID(user)
	h := s.st.homes[uid]
	if !ok || h == nil {
		s.mu.Unlock()
		return Delivery{}, fmt.Errorf("localslack: click home: no App Home published for %q", user)
	}
	var view struct {
		Blocks json.RawMessage `json:"blocks"`
	}
	_ = json.Unmarshal(h.View, &view)
	btn, found := findButton(view.Blocks, actionID, value)
	if !found {
		s.mu.Unlock()
		return Delivery{}, fmt.Errorf("%w: %q (value %q) on %s's App Home", ErrNoButton, actionID, value, uid)
	}
	var viewObj obj
	_ = json.Unmarshal(h.View, &viewObj)
	viewObj["id"], viewObj["hash"], viewObj["team_id"] = h.ID, h.Hash, s.st.seed.Team.ID
	u, team := s.st.users[uid], s.st.seed.Team
	trig := s.newTriggerLocked(uid, "")
	s.mu.Unlock()

	action := obj{"action_id": btn.ActionID, "block_id": btn.BlockID, "type": "button", "value": btn.Value,
		"text": obj{"type": "plain_text", "text": btn.Text, "emoji": true}, "action_ts": fmt.Sprintf("%.6f", float64(time.Now().UnixMicro())/1e6)}
	p := obj{
		"type": "block_actions", "user": obj{"id": uid, "username": u.Name, "name": u.Name, "team_id": team.ID},
		"api_app_id": s.bot.AppID, "token": "localslackVerificationTok",
		"container": obj{"type": "view", "view_id": h.ID}, "trigger_id": trig,
		"team": obj{"id": team.ID, "domain": team.Domain}, "view": viewObj, "actions": []obj{action},
	}
	payload, _ := json.Marshal(p)
	form := url.Values{"payload": {string(payload)}}
	d := Delivery{Kind: KindBlockActions, User: uid, Summary: btn.ActionID}
	return s.deliver(ctx, d, cfg, payload, "application/x-www-form-urlencoded", []byte(form.Encode()), func(e Endpoints) string { return e.Interactions })
}

// OpenHome delivers an app_home_opened event (Events API) for user.
func (s *Server) OpenHome(ctx context.Context, user string, opts ...DeliverOption) (Delivery, error) {
	cfg := &deliverConfig{}
	for _, o := range opts {
		o(cfg)
	}
	s.mu.Lock()
	uid, ok := s.st.userID(user)
	if !ok {
		s.mu.Unlock()
		return Delivery{}, fmt.Errorf("localslack: open home: unknown user %q", user)
	}
	seed := s.st.seed
	ev := obj{"type": "app_home_opened", "user": uid, "channel": "D" + strings.TrimPrefix(uid, "U"), "tab": "home",
		"event_ts": fmt.Sprintf("%.6f", float64(time.Now().UnixMicro())/1e6)}
	if h := s.st.homes[uid]; h != nil {
		var v obj
		_ = json.Unmarshal(h.View, &v)
		v["id"], v["hash"] = h.ID, h.Hash
		ev["view"] = v
	}
	s.mu.Unlock()
	body := obj{"token": "localslackVerificationTok", "team_id": seed.Team.ID, "api_app_id": seed.Bot.AppID,
		"event": ev, "type": "event_callback", "event_id": randID("Ev0", 5), "event_time": time.Now().Unix(),
		"authorizations":        []obj{{"team_id": seed.Team.ID, "user_id": seed.Bot.UserID, "is_bot": true, "is_enterprise_install": false}},
		"is_ext_shared_channel": false}
	payload, _ := json.Marshal(body)
	d := Delivery{Kind: KindAppHomeOpened, User: uid, Summary: "app_home_opened"}
	return s.deliver(ctx, d, cfg, payload, "application/json", payload, func(e Endpoints) string { return e.Events })
}

// deliver sends one request by the chosen transport, waits for the ack or
// the deadline, and records the Delivery.
func (s *Server) deliver(ctx context.Context, d Delivery, cfg *deliverConfig, payload json.RawMessage, ctype string, body []byte, endpoint func(Endpoints) string) (Delivery, error) {
	s.mu.Lock()
	var conn *socketConn
	ep := endpoint(s.opts.Endpoints)
	switch cfg.transport {
	case TransportSocket:
		conn = s.pickSocketLocked()
	case TransportHTTP:
	default:
		conn = s.pickSocketLocked()
	}
	s.mu.Unlock()
	d.RetryAttempt = cfg.retryAttempt
	switch {
	case conn != nil:
		d.Transport = TransportSocket
		d.Payload = payload
		return s.deliverSocket(ctx, d, cfg, conn)
	case cfg.transport != TransportSocket && ep != "":
		d.Transport = TransportHTTP
		d.Payload = json.RawMessage(body)
		if ctype != "application/json" {
			d.Payload, _ = json.Marshal(string(body))
		}
		return s.deliverHTTP(ctx, d, cfg, ep, ctype, body)
	default:
		d.Err = "dispatch_failed"
		d.Sent = s.now()
		s.record(&d)
		return d, ErrNoTransport
	}
}

func (s *Server) record(d *Delivery) *Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.recordLocked(d)
}

func (s *Server) recordLocked(d *Delivery) *Delivery {
	if d.ID == "" {
		d.ID = fmt.Sprintf("http-%d", len(s.st.deliv)+1)
	}
	rec := *d
	s.st.deliv = append(s.st.deliv, &rec)
	s.st.delivByID[rec.ID] = &rec
	s.changedLocked()
	return &rec
}

func (s *Server) deliverSocket(ctx context.Context, d Delivery, cfg *deliverConfig, conn *socketConn) (Delivery, error) {
	d.ID = randEnvelopeID()
	env := obj{"envelope_id": d.ID, "type": d.Kind, "payload": d.Payload,
		"accepts_response_payload": d.Kind == KindSlashCommand}
	switch d.Kind {
	case KindBlockActions, KindViewSubmission, KindViewClosed:
		env["type"] = "interactive"
		env["accepts_response_payload"] = d.Kind == KindViewSubmission
	case KindAppHomeOpened:
		env["type"] = "events_api"
		env["retry_attempt"], env["retry_reason"] = cfg.retryAttempt, cfg.retryReason
	}
	ch := make(chan ackResult, 1)
	d.Sent = time.Now()
	s.mu.Lock()
	s.st.pending[d.ID] = &pendingAck{ch: ch, conn: conn.id, sent: d.Sent}
	s.mu.Unlock()
	if err := conn.send(env); err != nil {
		s.dropSocket(conn)
		s.mu.Lock()
		delete(s.st.pending, d.ID)
		s.mu.Unlock()
		d.Err = "socket write failed: " + err.Error()
		s.record(&d)
		return d, fmt.Errorf("%w: %s", ErrNotAcked, d.Err)
	}
	t := time.NewTimer(s.opts.AckTimeout)
	defer t.Stop()
	var res ackResult
	select {
	case res = <-ch:
	case <-t.C:
		res.err = errors.New("no ack within " + s.opts.AckTimeout.String())
	case <-ctx.Done():
		res.err = ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.st.pending, d.ID) // from here a later ack finds the record instead
	if res.err != nil {
		select {
		case r := <-ch: // arrived between the deadline and the lock
			if r.err == nil {
				res = r
			}
		default:
		}
	}
	if res.err != nil {
		if !strings.HasPrefix(res.err.Error(), "no ack") {
			d.Err = res.err.Error()
		}
		rec := s.recordLocked(&d)
		return *rec, fmt.Errorf("%w: %s", ErrNotAcked, res.err)
	}
	d.Acked = true
	d.AckLatency = res.at.Sub(d.Sent)
	d.Late = d.AckLatency > s.opts.AckTimeout
	d.Response = res.payload
	s.recordLocked(&d)
	return d, nil
}

func (s *Server) deliverHTTP(ctx context.Context, d Delivery, cfg *deliverConfig, endpoint, ctype string, body []byte) (Delivery, error) {
	secret := s.opts.SigningSecret
	if cfg.secret != nil {
		secret = *cfg.secret
	}
	// Signatures use the wall clock, not Options.Now: slack-go's verifier on
	// the bot side checks them against time.Now.
	at := time.Now()
	if !cfg.signedAt.IsZero() {
		at = cfg.signedAt
	}
	ts := strconv.FormatInt(at.Unix(), 10)
	sig := Sign(secret, ts, body)
	if cfg.tamper {
		body = tamper(body)
	}
	// Slack gives up on the bot after the ack deadline and closes the request.
	rctx, cancel := context.WithTimeout(ctx, s.opts.AckTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return d, fmt.Errorf("localslack: building request to %s: %w", endpoint, err)
	}
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("User-Agent", "Slackbot 1.0 (+https://api.slack.com/robots)")
	if !cfg.unsigned {
		req.Header.Set("X-Slack-Request-Timestamp", ts)
		req.Header.Set("X-Slack-Signature", sig)
	}
	if cfg.retryAttempt > 0 {
		req.Header.Set("X-Slack-Retry-Num", strconv.Itoa(cfg.retryAttempt))
		req.Header.Set("X-Slack-Retry-Reason", cfg.retryReason)
	}
	d.Sent = time.Now()
	resp, err := s.client.Do(req)
	if err != nil {
		d.Err = err.Error()
		if rctx.Err() == context.DeadlineExceeded && ctx.Err() == nil {
			d.Err = "operation_timeout: no answer within " + s.opts.AckTimeout.String()
		}
		s.record(&d)
		return d, fmt.Errorf("%w: %s", ErrNotAcked, d.Err)
	}
	rb, rerr := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	d.AckLatency = time.Since(d.Sent)
	d.Status = resp.StatusCode
	if len(bytes.TrimSpace(rb)) > 0 {
		if json.Valid(rb) {
			d.Response = rb
		} else {
			d.Response, _ = json.Marshal(string(rb))
		}
	}
	if rerr != nil {
		d.Err = "reading response: " + rerr.Error()
	}
	d.Acked = resp.StatusCode == http.StatusOK && rerr == nil
	d.Late = d.Acked && d.AckLatency > s.opts.AckTimeout
	s.record(&d)
	if !d.Acked {
		return d, fmt.Errorf("%w: HTTP %d %s", ErrNotAcked, resp.StatusCode, strings.TrimSpace(string(rb)))
	}
	return d, nil
}

// tamper flips a user ID in the body (or appends a byte), as an attacker
// altering a captured request would.
func tamper(body []byte) []byte {
	out := bytes.Replace(body, []byte(OnCallID), []byte(Lead1ID), 1)
	if bytes.Equal(out, body) {
		out = append(append([]byte(nil), body...), '&', 'x', '=', '1')
	}
	return out
}

func randEnvelopeID() string {
	h := randID("", 16)
	h = strings.ToLower(h)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// Deliveries returns every request sent to the bot, in order.
func (s *Server) Deliveries() []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Delivery, 0, len(s.st.deliv))
	for _, d := range s.st.deliv {
		out = append(out, *d)
	}
	return out
}

// StrayAcks returns envelope IDs acked that localslack never sent.
func (s *Server) StrayAcks() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.st.strayAcks...)
}
