package localslack

import (
	"encoding/json"
	"io"
	"net/http"
	"time"
)

// Slack's response_url limits: five uses within thirty minutes.
const (
	responseURLUses = 5
	responseURLTTL  = 30 * time.Minute
)

type responseTarget struct {
	id      string
	user    string
	channel string
	message string // ts of the clicked channel message, "" for commands
	eph     string // ts of the clicked ephemeral message
	thread  string
	uses    int
	created time.Time
}

// ResponsePost is one POST the bot made to a response_url.
type ResponsePost struct {
	URL  string          `json:"url"`
	User string          `json:"user"`
	Body json.RawMessage `json:"body"`
	Time time.Time       `json:"time"`
	// Effect is what localslack did: "ephemeral", "in_channel",
	// "replace_original", "delete_original", or a refusal ("used_url",
	// "expired_url", "invalid_payload").
	Effect string `json:"effect"`
}

// newResponseTargetLocked hands out a fresh response_url.
func (s *Server) newResponseTargetLocked(user, channel, messageTS, ephTS, thread string) string {
	id := randID("R", 10)
	s.st.resp[id] = &responseTarget{id: id, user: user, channel: channel, message: messageTS, eph: ephTS,
		thread: thread, created: s.now()}
	return s.baseURL + "/resp/" + id
}

// Responses returns every response_url POST, in order.
func (s *Server) Responses() []ResponsePost {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]ResponsePost(nil), s.st.responses...)
}

func (s *Server) handleResponseURL(w http.ResponseWriter, r *http.Request) {
	if s.dropIfDown(w) {
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, "reading body", http.StatusBadRequest)
		return
	}
	var msg struct {
		Text            string          `json:"text"`
		Blocks          json.RawMessage `json:"blocks"`
		ResponseType    string          `json:"response_type"`
		ReplaceOriginal bool            `json:"replace_original"`
		DeleteOriginal  bool            `json:"delete_original"`
		ThreadTS        string          `json:"thread_ts"`
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	t, ok := s.st.resp[r.PathValue("id")]
	post := ResponsePost{URL: s.baseURL + r.URL.Path, Body: body, Time: now}
	if !json.Valid(body) {
		post.Body, _ = json.Marshal(string(body))
	}
	refuse := func(status int, why string) {
		post.Effect = why
		s.st.responses = append(s.st.responses, post)
		s.changedLocked()
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, why)
	}
	switch {
	case !ok:
		refuse(http.StatusNotFound, "no_such_url")
		return
	case now.Sub(t.created) > responseURLTTL:
		refuse(http.StatusNotFound, "expired_url")
		return
	case t.uses >= responseURLUses:
		refuse(http.StatusNotFound, "used_url")
		return
	}
	post.User = t.user
	if err := json.Unmarshal(body, &msg); err != nil {
		refuse(http.StatusBadRequest, "invalid_payload")
		return
	}
	blocks, err := normalizeBlocks(msg.Blocks)
	if err != nil {
		refuse(http.StatusBadRequest, "invalid_blocks")
		return
	}
	if !msg.DeleteOriginal && msg.Text == "" && len(blocks) == 0 {
		refuse(http.StatusBadRequest, "no_text")
		return
	}
	t.uses++
	thread := msg.ThreadTS
	if thread == "" {
		thread = t.thread
	}
	switch {
	case msg.DeleteOriginal || msg.ReplaceOriginal:
		post.Effect = "replace_original"
		if msg.DeleteOriginal {
			post.Effect = "delete_original"
		}
		if t.eph != "" {
			for _, e := range s.st.ephs {
				if e.TS == t.eph && e.User == t.user {
					if msg.DeleteOriginal {
						e.Deleted = true
					} else {
						e.Text, e.Blocks = msg.Text, blocks
					}
				}
			}
		} else if m, ok := s.st.byTS[t.message]; ok {
			if msg.DeleteOriginal {
				s.deleteMessageLocked(m)
			} else {
				m.Text, m.Blocks = msg.Text, blocks
				m.Edits++
			}
		} else {
			refuse(http.StatusNotFound, "message_not_found")
			return
		}
	case msg.ResponseType == "in_channel":
		post.Effect = "in_channel"
		m := &Message{Channel: t.channel, ThreadTS: thread, User: s.st.seed.Bot.UserID, BotID: s.st.seed.Bot.BotID,
			Text: msg.Text, Blocks: blocks, Posted: now, TS: s.st.nextTS(now)}
		if p, ok := s.st.byTS[thread]; ok && p.ThreadTS == "" {
			p.ThreadTS = p.TS
		} else if !ok {
			m.ThreadTS = ""
		}
		s.st.addMessage(m)
	default:
		post.Effect = "ephemeral"
		s.st.ephs = append(s.st.ephs, &Ephemeral{Channel: t.channel, User: t.user, ThreadTS: thread, Text: msg.Text,
			Blocks: blocks, Source: "response_url", Posted: now, TS: s.st.nextTS(now)})
	}
	s.st.responses = append(s.st.responses, post)
	s.changedLocked()
	w.Header().Set("Content-Type", "text/plain")
	_, _ = io.WriteString(w, "ok")
}
