package localslack

import (
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/api/{method}", s.handleAPI)
	mux.HandleFunc("POST /upload/{id}", s.handleUpload)
	mux.HandleFunc("GET /sm/ws", s.handleSocket)
	mux.HandleFunc("POST /resp/{id}", s.handleResponseURL)
	s.uiRoutes(mux)
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	b, err := json.Marshal(v)
	if err != nil {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	_, _ = w.Write(b)
}

type obj = map[string]any

func apiErr(e string) obj { return obj{"ok": false, "error": e} }

// readParams merges query, form and JSON body fields the way Slack accepts
// them; JSON values that are not strings are re-encoded as JSON text, which is
// how the same field arrives form-encoded.
func readParams(r *http.Request) (url.Values, error) {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct == "application/json" {
		p := r.URL.Query()
		body, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
		if err != nil {
			return nil, fmt.Errorf("reading body: %w", err)
		}
		if len(strings.TrimSpace(string(body))) == 0 {
			return p, nil
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(body, &m); err != nil {
			return nil, fmt.Errorf("invalid_json: %w", err)
		}
		for k, v := range m {
			var str string
			if json.Unmarshal(v, &str) == nil {
				p.Set(k, str)
			} else if string(v) != "null" {
				p.Set(k, string(v))
			}
		}
		return p, nil
	}
	r.Body = http.MaxBytesReader(nil, r.Body, 4<<20)
	if err := r.ParseForm(); err != nil {
		return nil, fmt.Errorf("invalid_form_data: %w", err)
	}
	return r.Form, nil
}

type apiHandler func(s *Server, p url.Values) obj

var apiMethods = map[string]apiHandler{
	"auth.test":                    (*Server).apiAuthTest,
	"chat.postMessage":             (*Server).apiPostMessage,
	"chat.update":                  (*Server).apiUpdate,
	"chat.postEphemeral":           (*Server).apiPostEphemeral,
	"chat.delete":                  (*Server).apiDelete,
	"chat.getPermalink":            (*Server).apiPermalink,
	"users.info":                   (*Server).apiUsersInfo,
	"usergroups.list":              (*Server).apiUsergroupsList,
	"usergroups.users.list":        (*Server).apiUsergroupsUsers,
	"files.getUploadURLExternal":   (*Server).apiGetUploadURL,
	"files.completeUploadExternal": (*Server).apiCompleteUpload,
	"views.publish":                (*Server).apiViewsPublish,
	"views.open":                   (*Server).apiViewsOpen,
	"views.update":                 (*Server).apiViewsUpdate,
	"conversations.replies":        (*Server).apiReplies,
	"conversations.history":        (*Server).apiHistory,
	"conversations.info":           (*Server).apiConversationInfo,
	"conversations.open":           (*Server).apiConversationOpen,
	"users.list":                   (*Server).apiUsersList,
	"apps.connections.open":        (*Server).apiConnectionsOpen,
}

func (s *Server) handleAPI(w http.ResponseWriter, r *http.Request) {
	if s.dropIfDown(w) {
		return
	}
	method := r.PathValue("method")
	p, perr := readParams(r)
	token := ""
	if p != nil {
		token = p.Get("token")
	}
	if token == "" {
		token = strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	}
	call := Call{Method: method, Time: s.now(), Params: url.Values{}}
	for k, v := range p {
		if k != "token" {
			call.Params[k] = append([]string(nil), v...)
		}
	}

	s.mu.Lock()
	fault := s.matchFaultLocked(method)
	if fault != nil {
		call.Fault = fault.name()
	}
	s.st.calls = append(s.st.calls, call)
	idx := len(s.st.calls) - 1
	s.changedLocked()
	s.mu.Unlock()

	if fault != nil && s.applyFault(r.Context(), w, fault) {
		return
	}

	var resp obj
	h, known := apiMethods[method]
	switch {
	case perr != nil:
		resp = apiErr(strings.SplitN(perr.Error(), ":", 2)[0])
	case !known:
		resp = apiErr("unknown_method")
	case token == "":
		resp = apiErr("not_authed")
	case method == "apps.connections.open" && token != s.opts.AppToken,
		method != "apps.connections.open" && token != s.opts.BotToken:
		switch {
		case strings.HasPrefix(token, "xapp-") && method != "apps.connections.open",
			strings.HasPrefix(token, "xoxb-") && method == "apps.connections.open":
			resp = apiErr("not_allowed_token_type")
		default:
			resp = apiErr("invalid_auth")
		}
	}
	if resp == nil {
		s.mu.Lock()
		resp = h(s, p)
		s.mu.Unlock()
	}
	if ok, _ := resp["ok"].(bool); !ok {
		s.mu.Lock()
		s.st.calls[idx].Error, _ = resp["error"].(string)
		s.mu.Unlock()
		s.log.Debug("web api call failed", "method", method, "error", resp["error"])
	}
	writeJSON(w, resp)
}

// The api* methods run with s.mu held.

func (s *Server) teamURL() string { return "https://" + s.st.seed.Team.Domain + ".slack.com/" }

func (s *Server) apiAuthTest(url.Values) obj {
	bot := s.st.users[s.st.seed.Bot.UserID]
	return obj{"ok": true, "url": s.teamURL(), "team": s.st.seed.Team.Name, "user": bot.Name,
		"team_id": s.st.seed.Team.ID, "user_id": bot.ID, "bot_id": s.st.seed.Bot.BotID, "is_enterprise_install": false}
}

func (s *Server) msgJSON(m *Message) obj {
	o := obj{"type": "message", "text": m.Text, "user": m.User, "ts": m.TS, "team": s.st.seed.Team.ID}
	if m.BotID != "" {
		o["bot_id"] = m.BotID
		o["app_id"] = s.st.seed.Bot.AppID
		bot := s.st.users[m.User]
		o["bot_profile"] = obj{"id": m.BotID, "app_id": s.st.seed.Bot.AppID, "name": bot.RealName, "team_id": s.st.seed.Team.ID, "deleted": false}
	}
	if len(m.Blocks) > 0 {
		o["blocks"] = m.Blocks
	}
	if m.ThreadTS != "" {
		o["thread_ts"] = m.ThreadTS
	}
	if m.Broadcast {
		o["subtype"] = "thread_broadcast"
	}
	if m.Edits > 0 {
		o["edited"] = obj{"user": m.User, "ts": m.TS}
	}
	if len(m.Files) > 0 {
		var fs []obj
		for _, f := range m.Files {
			fs = append(fs, s.fileJSON(&f))
		}
		o["files"] = fs
		o["upload"] = true
	}
	if len(m.Metadata) > 0 {
		o["metadata"] = m.Metadata
	}
	if m.ThreadTS == m.TS {
		rs := s.st.replies(m.TS)
		o["reply_count"] = len(rs)
		if len(rs) > 0 {
			o["latest_reply"] = rs[len(rs)-1].TS
		}
	}
	return o
}

func (s *Server) fileJSON(f *File) obj {
	return obj{"id": f.ID, "name": f.Name, "title": f.Title, "size": f.Size, "user": f.User,
		"created": f.Uploaded.Unix(), "timestamp": f.Uploaded.Unix(), "mimetype": "text/plain", "filetype": "text",
		"url_private": s.baseURL + "/files/" + f.ID, "url_private_download": s.baseURL + "/files/" + f.ID + "?download=1",
		"permalink": s.baseURL + "/files/" + f.ID}
}

// postable resolves the channel and thread of a chat.postMessage-like call.
func (s *Server) postTarget(p url.Values) (cid, thread string, errResp obj) {
	cid, ok := s.st.channelID(p.Get("channel"))
	if !ok {
		return "", "", apiErr("channel_not_found")
	}
	thread = p.Get("thread_ts")
	if thread != "" {
		parent, ok := s.st.byTS[thread]
		switch {
		case ok && parent.Channel != cid:
			return "", "", apiErr("thread_not_found")
		case ok && parent.ThreadTS != "" && parent.ThreadTS != parent.TS:
			thread = parent.ThreadTS // replying to a reply lands in the same thread
		case !ok && s.st.deleted[thread]:
			thread = "" // Slack posts to the channel when the parent is gone
		case !ok:
			return "", "", apiErr("thread_not_found")
		}
	}
	return cid, thread, nil
}

func (s *Server) apiPostMessage(p url.Values) obj {
	cid, thread, e := s.postTarget(p)
	if e != nil {
		return e
	}
	blocks, err := normalizeBlocks(json.RawMessage(p.Get("blocks")))
	if err != nil {
		return apiErr("invalid_blocks")
	}
	if p.Get("text") == "" && len(blocks) == 0 && p.Get("attachments") == "" {
		return apiErr("no_text")
	}
	m := &Message{Channel: cid, User: s.st.seed.Bot.UserID, BotID: s.st.seed.Bot.BotID, Text: p.Get("text"),
		Blocks: blocks, Posted: s.now(), Broadcast: thread != "" && p.Get("reply_broadcast") == "true"}
	if md := p.Get("metadata"); md != "" && json.Valid([]byte(md)) {
		m.Metadata = json.RawMessage(md)
	}
	m.TS = s.st.nextTS(m.Posted)
	if thread != "" {
		m.ThreadTS = thread
		if parent := s.st.byTS[thread]; parent.ThreadTS == "" {
			parent.ThreadTS = parent.TS
		}
	}
	s.st.addMessage(m)
	s.changedLocked()
	return obj{"ok": true, "channel": cid, "ts": m.TS, "message": s.msgJSON(m)}
}

func (s *Server) apiUpdate(p url.Values) obj {
	cid, ok := s.st.channelID(p.Get("channel"))
	if !ok {
		return apiErr("channel_not_found")
	}
	m, ok := s.st.byTS[p.Get("ts")]
	if !ok || m.Channel != cid {
		return apiErr("message_not_found")
	}
	if m.User != s.st.seed.Bot.UserID {
		return apiErr("cant_update_message")
	}
	// Validate the whole update before touching the message: a refused
	// update changes nothing.
	text, blocks := m.Text, m.Blocks
	if _, has := p["blocks"]; has {
		b, err := normalizeBlocks(json.RawMessage(p.Get("blocks")))
		if err != nil {
			return apiErr("invalid_blocks")
		}
		blocks = b
	}
	if _, has := p["text"]; has {
		text = p.Get("text")
	}
	if text == "" && len(blocks) == 0 {
		return apiErr("no_text")
	}
	m.Text, m.Blocks = text, blocks
	m.Edits++
	s.changedLocked()
	return obj{"ok": true, "channel": cid, "ts": m.TS, "text": m.Text, "message": s.msgJSON(m)}
}

func (s *Server) apiPostEphemeral(p url.Values) obj {
	cid, thread, e := s.postTarget(p)
	if e != nil {
		return e
	}
	u, ok := s.st.users[p.Get("user")]
	if !ok {
		return apiErr("user_not_found")
	}
	if u.Deleted {
		return apiErr("user_not_in_channel")
	}
	blocks, err := normalizeBlocks(json.RawMessage(p.Get("blocks")))
	if err != nil {
		return apiErr("invalid_blocks")
	}
	if p.Get("text") == "" && len(blocks) == 0 {
		return apiErr("no_text")
	}
	now := s.now()
	eph := &Ephemeral{Channel: cid, User: u.ID, ThreadTS: thread, Text: p.Get("text"), Blocks: blocks,
		Source: "chat.postEphemeral", Posted: now, TS: s.st.nextTS(now)}
	s.st.ephs = append(s.st.ephs, eph)
	s.changedLocked()
	return obj{"ok": true, "message_ts": eph.TS}
}

func (s *Server) apiDelete(p url.Values) obj {
	cid, ok := s.st.channelID(p.Get("channel"))
	if !ok {
		return apiErr("channel_not_found")
	}
	m, ok := s.st.byTS[p.Get("ts")]
	if !ok || m.Channel != cid {
		return apiErr("message_not_found")
	}
	if m.User != s.st.seed.Bot.UserID {
		return apiErr("cant_delete_message")
	}
	s.deleteMessageLocked(m)
	return obj{"ok": true, "channel": cid, "ts": m.TS}
}

func (s *Server) deleteMessageLocked(m *Message) {
	list := s.st.msgs[m.Channel]
	for i, x := range list {
		if x == m {
			s.st.msgs[m.Channel] = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	delete(s.st.byTS, m.TS)
	s.st.deleted[m.TS] = true
	s.changedLocked()
}

func (s *Server) permalink(m *Message) string {
	link := fmt.Sprintf("%s/archives/%s/p%s", s.baseURL, m.Channel, strings.ReplaceAll(m.TS, ".", ""))
	if m.ThreadTS != "" && m.ThreadTS != m.TS {
		link += "?thread_ts=" + m.ThreadTS + "&cid=" + m.Channel
	}
	return link
}

func (s *Server) apiPermalink(p url.Values) obj {
	cid, ok := s.st.channelID(p.Get("channel"))
	if !ok {
		return apiErr("channel_not_found")
	}
	m, ok := s.st.byTS[p.Get("message_ts")]
	if !ok || m.Channel != cid {
		return apiErr("message_not_found")
	}
	return obj{"ok": true, "channel": cid, "permalink": s.permalink(m)}
}

func (s *Server) userJSON(u User) obj {
	img := s.baseURL + "/avatar/" + u.ID + ".svg"
	return obj{
		"id": u.ID, "team_id": s.st.seed.Team.ID, "name": u.Name, "deleted": u.Deleted, "color": u.Color,
		"real_name": u.RealName, "tz": u.TZ, "tz_label": u.TZ, "tz_offset": 0,
		"profile": obj{"real_name": u.RealName, "real_name_normalized": u.RealName, "display_name": u.Name,
			"display_name_normalized": u.Name, "email": u.Email, "title": u.Title, "team": s.st.seed.Team.ID,
			"image_24": img, "image_32": img, "image_48": img, "image_72": img, "image_192": img, "image_512": img},
		"is_admin": u.IsAdmin, "is_owner": false, "is_primary_owner": false,
		"is_restricted": u.IsRestricted, "is_ultra_restricted": u.IsUltraRestricted,
		"is_bot": u.IsBot, "is_app_user": false, "updated": s.now().Unix(),
	}
}

func (s *Server) apiUsersInfo(p url.Values) obj {
	u, ok := s.st.users[p.Get("user")]
	if !ok {
		return apiErr("user_not_found")
	}
	return obj{"ok": true, "user": s.userJSON(u)}
}

func (s *Server) groupJSON(g UserGroup, withUsers bool) obj {
	o := obj{"id": g.ID, "team_id": s.st.seed.Team.ID, "is_usergroup": true, "is_subteam": true, "name": g.Name,
		"description": g.Description, "handle": g.Handle, "is_external": false, "date_create": 1690000000,
		"date_update": 1690000000, "date_delete": 0, "auto_type": "", "created_by": "", "updated_by": "",
		"deleted_by": "", "prefs": obj{"channels": []string{}, "groups": []string{}}, "user_count": len(g.Users)}
	if withUsers {
		o["users"] = append([]string{}, g.Users...)
	}
	return o
}

func (s *Server) apiUsergroupsList(p url.Values) obj {
	var out []obj
	for _, id := range sortedKeys(s.st.groups) {
		out = append(out, s.groupJSON(s.st.groups[id], p.Get("include_users") == "true"))
	}
	return obj{"ok": true, "usergroups": out}
}

func (s *Server) apiUsergroupsUsers(p url.Values) obj {
	g, ok := s.st.groups[p.Get("usergroup")]
	if !ok {
		return apiErr("no_such_subteam")
	}
	return obj{"ok": true, "users": append([]string{}, g.Users...)}
}

func (s *Server) apiGetUploadURL(p url.Values) obj {
	n, err := strconv.Atoi(p.Get("length"))
	if p.Get("filename") == "" || err != nil || n <= 0 {
		return apiErr("invalid_arguments")
	}
	if n > 1<<30 {
		return apiErr("file_too_large")
	}
	id := randID("F0", 5)
	s.st.uploads[id] = &pendingUpload{file: File{ID: id, Name: p.Get("filename"), Title: p.Get("filename"),
		User: s.st.seed.Bot.UserID}, length: n}
	return obj{"ok": true, "upload_url": s.baseURL + "/upload/" + id, "file_id": id}
}

// handleUpload receives the file body (multipart field "file", as slack-go
// sends it, or a raw body).
func (s *Server) handleUpload(w http.ResponseWriter, r *http.Request) {
	if s.dropIfDown(w) {
		return
	}
	id := r.PathValue("id")
	r.Body = http.MaxBytesReader(w, r.Body, 64<<20)
	var content []byte
	var err error
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct == "multipart/form-data" {
		mr, merr := r.MultipartReader()
		if merr != nil {
			http.Error(w, "bad multipart body", http.StatusBadRequest)
			return
		}
		for {
			part, perr := mr.NextPart()
			if perr != nil {
				err = fmt.Errorf("no file part: %w", perr)
				break
			}
			if part.FormName() == "file" {
				content, err = io.ReadAll(part)
				break
			}
		}
	} else {
		content, err = io.ReadAll(r.Body)
	}
	if err != nil {
		http.Error(w, "bad upload: "+err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	up, ok := s.st.uploads[id]
	if !ok || up.uploaded {
		http.Error(w, "unknown or used upload URL", http.StatusNotFound)
		return
	}
	up.file.Content, up.file.Size, up.uploaded = content, len(content), true
	w.Header().Set("Content-Type", "text/plain")
	_, _ = fmt.Fprintf(w, "OK - %d", len(content))
}

func (s *Server) apiCompleteUpload(p url.Values) obj {
	var files []struct {
		ID    string `json:"id"`
		Title string `json:"title"`
	}
	if err := json.Unmarshal([]byte(p.Get("files")), &files); err != nil || len(files) == 0 {
		return apiErr("invalid_arguments")
	}
	for _, f := range files {
		up, ok := s.st.uploads[f.ID]
		if !ok {
			return apiErr("file_not_found")
		}
		if !up.uploaded {
			return apiErr("file_upload_not_complete")
		}
	}
	channels := strings.FieldsFunc(p.Get("channels"), func(r rune) bool { return r == ',' })
	if c := p.Get("channel_id"); c != "" {
		channels = append([]string{c}, channels...)
	}
	thread := p.Get("thread_ts")
	var cids []string
	for _, c := range channels {
		cid, ok := s.st.channelID(c)
		if !ok {
			return apiErr("channel_not_found")
		}
		cids = append(cids, cid)
	}
	if thread != "" && len(cids) == 1 {
		if parent, ok := s.st.byTS[thread]; !ok || parent.Channel != cids[0] {
			return apiErr("invalid_thread_ts")
		}
	}
	now := s.now()
	var out, fjs []obj
	var shared []File
	for _, f := range files {
		up := s.st.uploads[f.ID]
		delete(s.st.uploads, f.ID)
		file := up.file
		if f.Title != "" {
			file.Title = f.Title
		}
		file.Uploaded, file.Shared = now, len(cids) > 0
		if len(cids) > 0 {
			file.Channel, file.ThreadTS = cids[0], thread
		}
		s.st.files[file.ID] = &file
		s.st.fileOrder = append(s.st.fileOrder, file.ID)
		shared = append(shared, file)
		out = append(out, obj{"id": file.ID, "title": file.Title})
		fjs = append(fjs, s.fileJSON(&file))
	}
	for _, cid := range cids {
		m := &Message{Channel: cid, User: s.st.seed.Bot.UserID, BotID: s.st.seed.Bot.BotID,
			Text: p.Get("initial_comment"), Files: shared, Posted: now, TS: s.st.nextTS(now)}
		if b, err := normalizeBlocks(json.RawMessage(p.Get("blocks"))); err == nil {
			m.Blocks = b
		}
		if thread != "" {
			m.ThreadTS = thread
			if parent := s.st.byTS[thread]; parent != nil && parent.ThreadTS == "" {
				parent.ThreadTS = parent.TS
			}
		}
		s.st.addMessage(m)
	}
	_ = fjs
	s.changedLocked()
	return obj{"ok": true, "files": out}
}

func (s *Server) apiViewsPublish(p url.Values) obj {
	uid := p.Get("user_id")
	if _, ok := s.st.users[uid]; !ok {
		return apiErr("user_not_found")
	}
	var view struct {
		Type   string          `json:"type"`
		Blocks json.RawMessage `json:"blocks"`
	}
	raw := json.RawMessage(p.Get("view"))
	if err := json.Unmarshal(raw, &view); err != nil {
		return apiErr("invalid_arguments")
	}
	if view.Type != "home" {
		return apiErr("invalid_arguments")
	}
	blocks, err := normalizeBlocks(view.Blocks)
	if err != nil {
		return apiErr("invalid_blocks")
	}
	var vm map[string]any
	_ = json.Unmarshal(raw, &vm)
	if blocks != nil {
		vm["blocks"] = blocks
	}
	h := s.st.homes[uid]
	if h == nil {
		h = &HomeView{User: uid, ID: randID("V0", 5)}
		s.st.homes[uid] = h
	}
	if hash := p.Get("hash"); hash != "" && h.Hash != "" && hash != h.Hash {
		return apiErr("hash_conflict")
	}
	h.View, _ = json.Marshal(vm)
	h.Hash = fmt.Sprintf("%d.%s", s.now().Unix(), shortID(8))
	h.Publishes++
	h.Updated = s.now()
	s.changedLocked()
	out := obj{"id": h.ID, "team_id": s.st.seed.Team.ID, "type": "home", "hash": h.Hash,
		"app_id": s.st.seed.Bot.AppID, "bot_id": s.st.seed.Bot.BotID, "app_installed_team_id": s.st.seed.Team.ID,
		"root_view_id": h.ID, "previous_view_id": nil}
	for k, v := range vm {
		if _, set := out[k]; !set {
			out[k] = v
		}
	}
	return obj{"ok": true, "view": out}
}

func (s *Server) apiReplies(p url.Values) obj {
	cid, ok := s.st.channelID(p.Get("channel"))
	if !ok {
		return apiErr("channel_not_found")
	}
	parent, ok := s.st.byTS[p.Get("ts")]
	if !ok || parent.Channel != cid {
		return apiErr("thread_not_found")
	}
	if parent.ThreadTS != "" && parent.ThreadTS != parent.TS {
		parent = s.st.byTS[parent.ThreadTS]
	}
	msgs := []obj{s.msgJSON(parent)}
	for _, m := range s.st.replies(parent.TS) {
		msgs = append(msgs, s.msgJSON(m))
	}
	return obj{"ok": true, "messages": msgs, "has_more": false, "response_metadata": obj{"next_cursor": ""}}
}

func (s *Server) apiHistory(p url.Values) obj {
	cid, ok := s.st.channelID(p.Get("channel"))
	if !ok {
		return apiErr("channel_not_found")
	}
	var msgs []obj
	list := s.st.msgs[cid]
	for i := len(list) - 1; i >= 0; i-- { // newest first, as Slack returns them
		m := list[i]
		if m.ThreadTS == "" || m.ThreadTS == m.TS || m.Broadcast {
			msgs = append(msgs, s.msgJSON(m))
		}
	}
	return obj{"ok": true, "messages": msgs, "has_more": false, "response_metadata": obj{"next_cursor": ""}}
}

func (s *Server) apiConversationInfo(p url.Values) obj {
	cid, ok := s.st.channelID(p.Get("channel"))
	if !ok {
		return apiErr("channel_not_found")
	}
	if u, im := s.st.ims[cid]; im {
		return obj{"ok": true, "channel": obj{"id": cid, "is_im": true, "user": u, "created": 1690000000, "is_open": true}}
	}
	c := s.st.channels[cid]
	return obj{"ok": true, "channel": obj{"id": c.ID, "name": c.Name, "is_channel": true, "is_member": true,
		"created": 1690000000, "topic": obj{"value": c.Topic}, "purpose": obj{"value": ""}}}
}

func (s *Server) apiConnectionsOpen(url.Values) obj {
	ticket := randID("", 12)
	s.st.tickets[ticket] = s.now().Add(time.Minute)
	ws := "ws" + strings.TrimPrefix(s.baseURL, "http") + "/sm/ws?ticket=" + ticket + "&app_id=" + s.st.seed.Bot.AppID
	return obj{"ok": true, "url": ws}
}

// apiConversationOpen opens the app's DM with one user (group DMs are not
// modelled).
func (s *Server) apiConversationOpen(p url.Values) obj {
	if ch := p.Get("channel"); ch != "" {
		if _, ok := s.st.ims[ch]; !ok {
			return apiErr("channel_not_found")
		}
		return obj{"ok": true, "channel": obj{"id": ch}}
	}
	users := strings.Split(p.Get("users"), ",")
	if len(users) != 1 || users[0] == "" {
		return apiErr("invalid_arguments")
	}
	u, ok := s.st.users[users[0]]
	switch {
	case !ok:
		return apiErr("user_not_found")
	case u.Deleted:
		return apiErr("user_disabled")
	case u.IsBot:
		return apiErr("cannot_dm_bot")
	}
	id := s.st.openIM(u.ID)
	s.changedLocked()
	return obj{"ok": true, "no_op": false, "already_open": false, "channel": obj{"id": id, "is_im": true, "user": u.ID}}
}

func (s *Server) apiUsersList(url.Values) obj {
	var members []obj
	for _, id := range sortedKeys(s.st.users) {
		members = append(members, s.userJSON(s.st.users[id]))
	}
	return obj{"ok": true, "members": members, "response_metadata": obj{"next_cursor": ""}}
}
