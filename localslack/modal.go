package localslack

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"time"
)

// triggerTTL is how long a trigger_id can open a modal (Slack: 3 seconds).
const triggerTTL = 3 * time.Second

// Modal is the modal view open for a user (views.open / views.update).
type Modal struct {
	User string          `json:"user"`
	ID   string          `json:"id"`
	Hash string          `json:"hash"`
	View json.RawMessage `json:"view"` // as the bot sent it, block_ids filled in
	// Errors are the field errors of the last submission the bot refused
	// (response_action "errors"), by block_id.
	Errors map[string]string `json:"errors,omitempty"`
	// Submissions counts view_submission deliveries for this modal.
	Submissions int `json:"submissions"`
}

type trigger struct {
	user    string
	channel string
	at      time.Time
}

// newTriggerLocked issues a trigger_id for user's action.
func (s *Server) newTriggerLocked(user, channel string) string {
	now := s.now()
	if len(s.st.triggers) >= 4096 { // long benchmarks: drop the expired ones
		for k, tr := range s.st.triggers {
			if now.Sub(tr.at) > triggerTTL {
				delete(s.st.triggers, k)
			}
		}
	}
	id := s.triggerID()
	s.st.triggers[id] = trigger{user: user, channel: channel, at: now}
	return id
}

func parseModalView(raw string) (map[string]any, error) {
	var v map[string]any
	if err := json.Unmarshal([]byte(raw), &v); err != nil {
		return nil, fmt.Errorf("invalid_arguments")
	}
	if t, _ := v["type"].(string); t != "modal" {
		return nil, fmt.Errorf("invalid_arguments")
	}
	b, _ := json.Marshal(v["blocks"])
	blocks, err := normalizeBlocks(b)
	if err != nil {
		return nil, fmt.Errorf("invalid_blocks")
	}
	if blocks != nil {
		v["blocks"] = blocks
	}
	return v, nil
}

func (s *Server) viewResponse(m *Modal) obj {
	var v map[string]any
	_ = json.Unmarshal(m.View, &v)
	v["id"], v["hash"], v["team_id"] = m.ID, m.Hash, s.st.seed.Team.ID
	v["app_id"], v["bot_id"] = s.st.seed.Bot.AppID, s.st.seed.Bot.BotID
	v["root_view_id"], v["state"] = m.ID, obj{"values": obj{}}
	return v
}

func (s *Server) apiViewsOpen(p url.Values) obj {
	tr, ok := s.st.triggers[p.Get("trigger_id")]
	switch {
	case !ok:
		return apiErr("invalid_trigger_id")
	case s.now().Sub(tr.at) > triggerTTL:
		return apiErr("expired_trigger_id")
	}
	delete(s.st.triggers, p.Get("trigger_id"))
	v, err := parseModalView(p.Get("view"))
	if err != nil {
		return apiErr(err.Error())
	}
	m := &Modal{User: tr.user, ID: randID("V0", 5), Hash: fmt.Sprintf("%d.%s", s.now().Unix(), shortID(8))}
	m.View, _ = json.Marshal(v)
	s.st.modals[tr.user] = m
	s.changedLocked()
	return obj{"ok": true, "view": s.viewResponse(m)}
}

func (s *Server) apiViewsUpdate(p url.Values) obj {
	var m *Modal
	for _, x := range s.st.modals {
		if x.ID == p.Get("view_id") {
			m = x
		}
	}
	if m == nil {
		return apiErr("not_found")
	}
	if h := p.Get("hash"); h != "" && h != m.Hash {
		return apiErr("hash_conflict")
	}
	v, err := parseModalView(p.Get("view"))
	if err != nil {
		return apiErr(err.Error())
	}
	m.View, _ = json.Marshal(v)
	m.Hash = fmt.Sprintf("%d.%s", s.now().Unix(), shortID(8))
	m.Errors = nil
	s.changedLocked()
	return obj{"ok": true, "view": s.viewResponse(m)}
}

// OpenModal returns the modal open for user (ID or name), if any.
func (s *Server) OpenModal(user string) (Modal, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, _ := s.st.userID(user)
	m, ok := s.st.modals[id]
	if !ok {
		return Modal{}, false
	}
	c := *m
	c.View = append(json.RawMessage(nil), m.View...)
	return c, true
}

// SubmitModal submits user's open modal with the given input values
// (block_id → action_id → text), as a view_submission interaction. The bot's
// ack decides what happens, as in Slack: no payload or response_action
// "clear" closes the modal, "errors" keeps it open with Modal.Errors set,
// "update" replaces it with the view in the ack.
func (s *Server) SubmitModal(ctx context.Context, user string, values map[string]map[string]string, opts ...DeliverOption) (Delivery, error) {
	cfg := &deliverConfig{}
	for _, o := range opts {
		o(cfg)
	}
	s.mu.Lock()
	uid, _ := s.st.userID(user)
	m, ok := s.st.modals[uid]
	if !ok {
		s.mu.Unlock()
		return Delivery{}, fmt.Errorf("localslack: no modal open for %q", user)
	}
	state := obj{}
	for blockID, acts := range values {
		vals := obj{}
		for actionID, v := range acts {
			vals[actionID] = obj{"type": "plain_text_input", "value": v}
		}
		state[blockID] = vals
	}
	view := s.viewResponse(m)
	view["state"] = obj{"values": state}
	u := s.st.users[uid]
	trig := s.newTriggerLocked(uid, "")
	s.mu.Unlock()

	p := obj{"type": "view_submission", "team": obj{"id": s.team.ID, "domain": s.team.Domain},
		"user":       obj{"id": uid, "username": u.Name, "name": u.Name, "team_id": s.team.ID},
		"api_app_id": s.bot.AppID, "token": "localslackVerificationTok", "trigger_id": trig,
		"view": view, "response_urls": []obj{}, "is_enterprise_install": false, "enterprise": nil}
	payload, _ := json.Marshal(p)
	form := url.Values{"payload": {string(payload)}}
	d := Delivery{Kind: KindViewSubmission, User: uid, Summary: "view_submission"}
	d, err := s.deliver(ctx, d, cfg, payload, "application/x-www-form-urlencoded", []byte(form.Encode()), func(e Endpoints) string { return e.Interactions })
	if err != nil {
		return d, err
	}
	var resp struct {
		ResponseAction string            `json:"response_action"`
		Errors         map[string]string `json:"errors"`
		View           json.RawMessage   `json:"view"`
	}
	if len(d.Response) > 0 {
		_ = json.Unmarshal(d.Response, &resp)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur := s.st.modals[uid]; cur != m {
		return d, nil // the bot replaced or closed it meanwhile
	}
	m.Submissions++
	switch resp.ResponseAction {
	case "errors":
		m.Errors = resp.Errors
	case "update":
		if v, err := parseModalView(string(resp.View)); err == nil {
			m.View, _ = json.Marshal(v)
			m.Errors = nil
		}
	default:
		delete(s.st.modals, uid)
	}
	s.changedLocked()
	return d, nil
}

// CloseModal closes user's open modal, as the user pressing Cancel; the bot
// hears nothing unless the view asked for notify_on_close (then a
// view_closed interaction is delivered).
func (s *Server) CloseModal(ctx context.Context, user string, opts ...DeliverOption) error {
	cfg := &deliverConfig{}
	for _, o := range opts {
		o(cfg)
	}
	s.mu.Lock()
	uid, _ := s.st.userID(user)
	m, ok := s.st.modals[uid]
	if !ok {
		s.mu.Unlock()
		return fmt.Errorf("localslack: no modal open for %q", user)
	}
	delete(s.st.modals, uid)
	s.changedLocked()
	var v struct {
		Notify bool `json:"notify_on_close"`
	}
	_ = json.Unmarshal(m.View, &v)
	view := s.viewResponse(m)
	u := s.st.users[uid]
	s.mu.Unlock()
	if !v.Notify {
		return nil
	}
	p := obj{"type": "view_closed", "team": obj{"id": s.team.ID, "domain": s.team.Domain},
		"user":       obj{"id": uid, "username": u.Name, "name": u.Name, "team_id": s.team.ID},
		"api_app_id": s.bot.AppID, "token": "localslackVerificationTok", "view": view, "is_cleared": false}
	payload, _ := json.Marshal(p)
	form := url.Values{"payload": {string(payload)}}
	_, err := s.deliver(ctx, Delivery{Kind: KindViewClosed, User: uid, Summary: "view_closed"}, cfg, payload,
		"application/x-www-form-urlencoded", []byte(form.Encode()), func(e Endpoints) string { return e.Interactions })
	return err
}
