package localslack

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"html"
	"io/fs"
	"net/http"
	"strings"
	"time"
)

//go:embed web
var webFS embed.FS

func (s *Server) uiRoutes(mux *http.ServeMux) {
	static, _ := fs.Sub(webFS, "web")
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	index := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		http.ServeFileFS(w, r, static, "index.html")
	}
	mux.HandleFunc("GET /{$}", index)
	mux.HandleFunc("GET /archives/", index)
	mux.HandleFunc("GET /ui/state", s.uiState)
	mux.HandleFunc("GET /ui/events", s.uiEvents)
	mux.HandleFunc("POST /ui/command", s.uiCommand)
	mux.HandleFunc("POST /ui/message", s.uiMessage)
	mux.HandleFunc("POST /ui/click", s.uiClick)
	mux.HandleFunc("POST /ui/home", s.uiHome)
	mux.HandleFunc("POST /ui/modal", s.uiModal)
	mux.HandleFunc("GET /files/{id}", s.uiFile)
	mux.HandleFunc("GET /avatar/{file}", s.uiAvatar)
}

type uiUser struct {
	User
	Initials string   `json:"initials"`
	Groups   []string `json:"groups"`
}

func initials(u User) string {
	parts := strings.Fields(u.RealName)
	switch {
	case len(parts) >= 2:
		return strings.ToUpper(string([]rune(parts[0])[0]) + string([]rune(parts[len(parts)-1])[0]))
	case len(parts) == 1:
		return strings.ToUpper(string([]rune(parts[0])[0]))
	default:
		return strings.ToUpper(u.Name[:1])
	}
}

// uiState is everything the page draws, for the acting user.
func (s *Server) uiState(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	acting, _ := s.st.userID(r.URL.Query().Get("user"))
	var users []uiUser
	for _, u := range s.st.seed.Users {
		cur := s.st.users[u.ID]
		uu := uiUser{User: cur, Initials: initials(cur)}
		for _, gid := range sortedKeys(s.st.groups) {
			for _, m := range s.st.groups[gid].Users {
				if m == u.ID {
					uu.Groups = append(uu.Groups, s.st.groups[gid].Handle)
				}
			}
		}
		users = append(users, uu)
	}
	var groups []obj
	for _, gid := range sortedKeys(s.st.groups) {
		g := s.st.groups[gid]
		groups = append(groups, obj{"id": g.ID, "handle": g.Handle, "name": g.Name, "users": g.Users})
	}
	type uiMsg struct {
		Message
		Ephemeral  bool   `json:"ephemeral,omitempty"`
		ReplyCount int    `json:"reply_count,omitempty"`
		LastReply  string `json:"last_reply,omitempty"`
		Permalink  string `json:"permalink"`
	}
	var channels []obj
	convs := append([]Channel(nil), s.st.seed.Channels...)
	bot := s.st.users[s.st.seed.Bot.UserID]
	for id, u := range s.st.ims {
		if u == acting {
			convs = append(convs, Channel{ID: id, Name: bot.Name, Topic: "Direct messages with " + bot.RealName})
		}
	}
	for _, c := range convs {
		var msgs []uiMsg
		threads := map[string][]uiMsg{}
		for _, m := range s.st.msgs[c.ID] {
			um := uiMsg{Message: cloneMsg(m), Permalink: s.permalink(m)}
			if m.ThreadTS == m.TS {
				rs := s.st.replies(m.TS)
				um.ReplyCount = len(rs)
				if len(rs) > 0 {
					um.LastReply = rs[len(rs)-1].TS
				}
			}
			if m.ThreadTS == "" || m.ThreadTS == m.TS || m.Broadcast {
				msgs = append(msgs, um)
			}
			if m.ThreadTS != "" && m.ThreadTS != m.TS {
				threads[m.ThreadTS] = append(threads[m.ThreadTS], um)
			}
		}
		for _, e := range s.st.ephs {
			if e.Channel != c.ID || e.User != acting || e.Deleted {
				continue
			}
			um := uiMsg{Message: Message{Channel: e.Channel, TS: e.TS, ThreadTS: e.ThreadTS, User: s.st.seed.Bot.UserID,
				BotID: s.st.seed.Bot.BotID, Text: e.Text, Blocks: e.Blocks, Posted: e.Posted}, Ephemeral: true}
			if e.Source == "localslack" {
				um.User, um.BotID = "USLACKBOT", ""
			}
			if e.ThreadTS != "" {
				threads[e.ThreadTS] = append(threads[e.ThreadTS], um)
			} else {
				msgs = append(msgs, um)
			}
		}
		_, im := s.st.ims[c.ID]
		channels = append(channels, obj{"id": c.ID, "name": c.Name, "topic": c.Topic, "im": im, "messages": msgs, "threads": threads})
	}
	var home, modal any
	if h := s.st.homes[acting]; h != nil {
		home = h.View
	}
	if m := s.st.modals[acting]; m != nil {
		modal = obj{"id": m.ID, "hash": m.Hash, "view": m.View, "errors": m.Errors}
	}
	files := map[string]obj{}
	for id, f := range s.st.files {
		files[id] = obj{"id": f.ID, "name": f.Name, "title": f.Title, "size": f.Size, "url": "/files/" + f.ID}
	}
	writeJSON(w, obj{
		"version": s.ver, "team": s.st.seed.Team, "bot": s.st.seed.Bot, "acting": acting,
		"users": users, "usergroups": groups, "channels": channels, "home": home, "modal": modal, "files": files,
		"sockets":   len(s.socks),
		"http_mode": s.opts.Endpoints.Commands != "" || s.opts.Endpoints.Interactions != "",
	})
}

// uiEvents streams a "change" event at each state change (Server-Sent Events).
func (s *Server) uiEvents(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	keep := time.NewTicker(15 * time.Second)
	defer keep.Stop()
	for {
		s.mu.Lock()
		ch, ver := s.chg, s.ver
		s.mu.Unlock()
		if _, err := fmt.Fprintf(w, "event: change\ndata: %d\n\n", ver); err != nil {
			return
		}
		fl.Flush()
		// Coalesce bursts (a run posts several messages at once) into one
		// refresh of the page.
		select {
		case <-ch:
			t := time.NewTimer(40 * time.Millisecond)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		case <-keep.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return
			}
			fl.Flush()
			continue
		case <-r.Context().Done():
			return
		case <-s.closed:
			return
		}
	}
}

type uiRequest struct {
	User     string                       `json:"user"`
	Action   string                       `json:"action"` // modal: "submit" or "close"
	Values   map[string]map[string]string `json:"values"`
	Channel  string                       `json:"channel"`
	Text     string                       `json:"text"`
	ThreadTS string                       `json:"thread_ts"`
	TS       string                       `json:"ts"`
	ActionID string                       `json:"action_id"`
	Value    string                       `json:"value"`
	Home     bool                         `json:"home"`
}

func readUI(w http.ResponseWriter, r *http.Request) (uiRequest, bool) {
	var q uiRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&q); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		writeJSON(w, obj{"ok": false, "error": "bad request: " + err.Error()})
		return q, false
	}
	return q, true
}

func uiResult(w http.ResponseWriter, d Delivery, err error) {
	if err != nil {
		writeJSON(w, obj{"ok": false, "error": err.Error(), "delivery": d})
		return
	}
	writeJSON(w, obj{"ok": true, "delivery": d})
}

// uiContext bounds a page action: the ack deadline plus a margin.
func (s *Server) uiContext(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), s.opts.AckTimeout+2*time.Second)
}

func (s *Server) uiCommand(w http.ResponseWriter, r *http.Request) {
	q, ok := readUI(w, r)
	if !ok {
		return
	}
	ctx, cancel := s.uiContext(r)
	defer cancel()
	var opts []DeliverOption
	if q.ThreadTS != "" {
		opts = append(opts, InThread(q.ThreadTS))
	}
	d, err := s.SlashCommand(ctx, q.User, q.Channel, q.Text, opts...)
	uiResult(w, d, err)
}

func (s *Server) uiMessage(w http.ResponseWriter, r *http.Request) {
	q, ok := readUI(w, r)
	if !ok {
		return
	}
	if strings.TrimSpace(q.Text) == "" {
		writeJSON(w, obj{"ok": false, "error": "empty message"})
		return
	}
	ts, err := s.PostMessage(q.User, q.Channel, q.ThreadTS, q.Text, nil)
	if err != nil {
		writeJSON(w, obj{"ok": false, "error": err.Error()})
		return
	}
	writeJSON(w, obj{"ok": true, "ts": ts})
}

func (s *Server) uiClick(w http.ResponseWriter, r *http.Request) {
	q, ok := readUI(w, r)
	if !ok {
		return
	}
	ctx, cancel := s.uiContext(r)
	defer cancel()
	var d Delivery
	var err error
	if q.Home {
		d, err = s.ClickHome(ctx, q.User, q.ActionID, q.Value)
	} else {
		d, err = s.Click(ctx, q.User, q.Channel, q.TS, q.ActionID, q.Value)
	}
	uiResult(w, d, err)
}

func (s *Server) uiHome(w http.ResponseWriter, r *http.Request) {
	q, ok := readUI(w, r)
	if !ok {
		return
	}
	ctx, cancel := s.uiContext(r)
	defer cancel()
	d, err := s.OpenHome(ctx, q.User)
	uiResult(w, d, err)
}

func (s *Server) uiFile(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	f, ok := s.st.files[r.PathValue("id")]
	var content []byte
	var name string
	if ok {
		content, name = f.Content, f.Name
	}
	s.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if r.URL.Query().Get("download") != "" {
		w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", name))
	}
	_, _ = w.Write(content)
}

// uiAvatar draws initials on the user's colour, so avatars need no files.
func (s *Server) uiAvatar(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimSuffix(r.PathValue("file"), ".svg")
	u, ok := s.User(id)
	if !ok {
		http.NotFound(w, r)
		return
	}
	color := u.Color
	if color == "" {
		color = "4a5568"
	}
	w.Header().Set("Content-Type", "image/svg+xml")
	_, _ = fmt.Fprintf(w, `<svg xmlns="http://www.w3.org/2000/svg" width="72" height="72" viewBox="0 0 72 72">`+
		`<rect width="72" height="72" rx="12" fill="#%s"/><text x="36" y="46" font-family="sans-serif" font-size="28" `+
		`font-weight="700" fill="#fff" text-anchor="middle">%s</text></svg>`, html.EscapeString(color), html.EscapeString(initials(u)))
}

func (s *Server) uiModal(w http.ResponseWriter, r *http.Request) {
	q, ok := readUI(w, r)
	if !ok {
		return
	}
	ctx, cancel := s.uiContext(r)
	defer cancel()
	if q.Action == "close" {
		if err := s.CloseModal(ctx, q.User); err != nil {
			writeJSON(w, obj{"ok": false, "error": err.Error()})
			return
		}
		writeJSON(w, obj{"ok": true})
		return
	}
	d, err := s.SubmitModal(ctx, q.User, q.Values)
	uiResult(w, d, err)
}
