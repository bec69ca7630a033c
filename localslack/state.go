package localslack

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Message is a channel message or thread reply as localslack stores it.
type Message struct {
	Channel   string          `json:"channel"`
	TS        string          `json:"ts"`
	ThreadTS  string          `json:"thread_ts,omitempty"` // parent ts for a reply; "" for a top-level message
	User      string          `json:"user"`                // author; the bot user for bot posts
	BotID     string          `json:"bot_id,omitempty"`
	Text      string          `json:"text"`
	Blocks    json.RawMessage `json:"blocks,omitempty"` // as posted, with block_id filled in as Slack does
	Files     []File          `json:"files,omitempty"`
	Broadcast bool            `json:"reply_broadcast,omitempty"` // a thread reply also shown in the channel
	Edits     int             `json:"edits,omitempty"`           // chat.update / replace_original count
	Metadata  json.RawMessage `json:"metadata,omitempty"`
	Posted    time.Time       `json:"posted"`
}

// Ephemeral is a message only one user sees.
type Ephemeral struct {
	Channel  string          `json:"channel"`
	User     string          `json:"user"` // who sees it
	TS       string          `json:"ts"`
	ThreadTS string          `json:"thread_ts,omitempty"`
	Text     string          `json:"text"`
	Blocks   json.RawMessage `json:"blocks,omitempty"`
	// Source is how it arrived: "chat.postEphemeral", "response_url", "ack"
	// (a slash command's acknowledgement payload) or "localslack" (an error
	// Slack itself would show, e.g. a command the app did not answer).
	Source string    `json:"source"`
	Posted time.Time `json:"posted"`
	// Deleted is set when replaced or deleted through response_url.
	Deleted bool `json:"deleted,omitempty"`
}

// File is an uploaded file (files v2).
type File struct {
	ID       string    `json:"id"`
	Name     string    `json:"name"`
	Title    string    `json:"title"`
	Size     int       `json:"size"`
	Content  []byte    `json:"-"`
	Channel  string    `json:"channel,omitempty"`
	ThreadTS string    `json:"thread_ts,omitempty"`
	User     string    `json:"user"`
	Uploaded time.Time `json:"uploaded"`
	Shared   bool      `json:"shared"` // completed with files.completeUploadExternal
}

// HomeView is the App Home tab last published for a user.
type HomeView struct {
	User      string          `json:"user"`
	ID        string          `json:"id"`
	View      json.RawMessage `json:"view"`
	Hash      string          `json:"hash"`
	Publishes int             `json:"publishes"`
	Updated   time.Time       `json:"updated"`
}

// Call is one Web API request as received.
type Call struct {
	Method string     `json:"method"`
	Params url.Values `json:"params"` // form, query and JSON fields (JSON objects re-encoded)
	Time   time.Time  `json:"time"`
	// Fault names the injected fault that answered, "" when served normally.
	Fault string `json:"fault,omitempty"`
	// Error is the ok:false error returned, if any.
	Error string `json:"error,omitempty"`
}

type pendingUpload struct {
	file     File
	length   int
	uploaded bool
}

type state struct {
	seed      Seed
	users     map[string]User
	byName    map[string]string // user name -> ID
	groups    map[string]UserGroup
	channels  map[string]Channel // by ID
	chanByNm  map[string]string  // name -> ID
	msgs      map[string][]*Message
	byTS      map[string]*Message
	ephs      []*Ephemeral
	files     map[string]*File
	fileOrder []string
	uploads   map[string]*pendingUpload
	homes     map[string]*HomeView
	calls     []Call
	deliv     []*Delivery
	resp      map[string]*responseTarget
	faults    []*faultRule
	faultSeq  int
	outage    bool
	triggers  map[string]trigger
	modals    map[string]*Modal
	ims       map[string]string // DM channel ID -> user
	deleted   map[string]bool
	tickets   map[string]time.Time
	pending   map[string]*pendingAck
	delivByID map[string]*Delivery
	strayAcks []string
	sockStats SocketStats
	responses []ResponsePost
	lastTS    int64 // microseconds
}

func newState(seed Seed) *state {
	st := &state{
		seed:      seed,
		users:     map[string]User{},
		byName:    map[string]string{},
		groups:    map[string]UserGroup{},
		channels:  map[string]Channel{},
		chanByNm:  map[string]string{},
		msgs:      map[string][]*Message{},
		byTS:      map[string]*Message{},
		files:     map[string]*File{},
		uploads:   map[string]*pendingUpload{},
		homes:     map[string]*HomeView{},
		resp:      map[string]*responseTarget{},
		deleted:   map[string]bool{},
		triggers:  map[string]trigger{},
		modals:    map[string]*Modal{},
		ims:       map[string]string{},
		tickets:   map[string]time.Time{},
		pending:   map[string]*pendingAck{},
		delivByID: map[string]*Delivery{},
	}
	for _, u := range seed.Users {
		st.users[u.ID] = u
		st.byName[u.Name] = u.ID
	}
	for _, g := range seed.UserGroups {
		st.groups[g.ID] = g
	}
	for _, c := range seed.Channels {
		st.channels[c.ID] = c
		st.chanByNm[c.Name] = c.ID
	}
	return st
}

// nextTS returns a Slack-style ts ("1700000000.000100"): the clock's
// microseconds, bumped so that every ts is unique and strictly increasing.
func (st *state) nextTS(now time.Time) string {
	us := now.UnixMicro()
	if us <= st.lastTS {
		us = st.lastTS + 1
	}
	st.lastTS = us
	return fmt.Sprintf("%d.%06d", us/1e6, us%1e6)
}

// channelID resolves an ID, a name or "#name" to a channel ID.
func (st *state) channelID(c string) (string, bool) {
	c = strings.TrimPrefix(c, "#")
	if _, ok := st.channels[c]; ok {
		return c, true
	}
	if _, ok := st.ims[c]; ok {
		return c, true
	}
	if u, ok := st.users[c]; ok && !u.IsBot { // posting to a user ID means their DM with the app
		return st.openIM(c), true
	}
	id, ok := st.chanByNm[c]
	return id, ok
}

// openIM returns the ID of the direct-message conversation between the app
// and user, creating it on first use.
func (st *state) openIM(user string) string {
	id := "D" + strings.TrimLeft(user, "UW")
	st.ims[id] = user
	return id
}

func (st *state) userID(u string) (string, bool) {
	u = strings.TrimPrefix(u, "@")
	if _, ok := st.users[u]; ok {
		return u, true
	}
	id, ok := st.byName[u]
	return id, ok
}

func (st *state) addMessage(m *Message) {
	st.msgs[m.Channel] = append(st.msgs[m.Channel], m)
	st.byTS[m.TS] = m
}

func (st *state) replies(parent string) []*Message {
	p, ok := st.byTS[parent]
	if !ok {
		return nil
	}
	var out []*Message
	for _, m := range st.msgs[p.Channel] {
		if m.ThreadTS == parent && m.TS != parent {
			out = append(out, m)
		}
	}
	return out
}

func cloneMsg(m *Message) Message {
	c := *m
	c.Blocks = append(json.RawMessage(nil), m.Blocks...)
	c.Files = append([]File(nil), m.Files...)
	return c
}

// Channel returns the messages shown in a channel (top-level messages and
// broadcast replies), oldest first. ch is an ID, a name or "#name".
func (s *Server) Channel(ch string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.st.channelID(ch)
	if !ok {
		return nil
	}
	var out []Message
	for _, m := range s.st.msgs[id] {
		if m.ThreadTS == "" || m.ThreadTS == m.TS || m.Broadcast {
			out = append(out, cloneMsg(m))
		}
	}
	return out
}

// Thread returns the replies under the message with ts parent, oldest first,
// without the parent itself (see Message for that).
func (s *Server) Thread(parent string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Message
	for _, m := range s.st.replies(parent) {
		out = append(out, cloneMsg(m))
	}
	return out
}

// Message returns the message with this ts, from any channel or thread.
func (s *Server) Message(ts string) (Message, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.st.byTS[ts]
	if !ok {
		return Message{}, false
	}
	return cloneMsg(m), true
}

// Messages returns every message in every channel, threads included, in ts order.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Message
	for _, id := range sortedKeys(s.st.msgs) {
		for _, m := range s.st.msgs[id] {
			out = append(out, cloneMsg(m))
		}
	}
	return out
}

// Ephemerals returns the ephemeral messages shown to user (ID or name), oldest
// first, including ones later replaced or deleted (see Ephemeral.Deleted).
func (s *Server) Ephemerals(user string) []Ephemeral {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, _ := s.st.userID(user)
	var out []Ephemeral
	for _, e := range s.st.ephs {
		if e.User == id {
			c := *e
			c.Blocks = append(json.RawMessage(nil), e.Blocks...)
			out = append(out, c)
		}
	}
	return out
}

// Files returns completed uploads in upload order, with their content.
func (s *Server) Files() []File {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []File
	for _, id := range s.st.fileOrder {
		f := *s.st.files[id]
		f.Content = append([]byte(nil), f.Content...)
		out = append(out, f)
	}
	return out
}

// Home returns the App Home view last published for user (ID or name).
func (s *Server) Home(user string) (HomeView, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, _ := s.st.userID(user)
	h, ok := s.st.homes[id]
	if !ok {
		return HomeView{}, false
	}
	c := *h
	c.View = append(json.RawMessage(nil), h.View...)
	return c, true
}

// Calls returns the Web API calls received for method ("" for all), in order.
func (s *Server) Calls(method string) []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Call
	for _, c := range s.st.calls {
		if method == "" || c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

// User returns a seeded user by ID or name.
func (s *Server) User(u string) (User, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.st.userID(u)
	if !ok {
		return User{}, false
	}
	return s.st.users[id], true
}

// SetUser adds or replaces a user (e.g. to deactivate someone mid-test).
func (s *Server) SetUser(u User) error {
	if !userIDRe.MatchString(u.ID) || !nameRe.MatchString(u.Name) {
		return fmt.Errorf("localslack: user %q/%q: invalid id or name", u.ID, u.Name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.st.users[u.ID]; ok {
		delete(s.st.byName, old.Name)
	}
	s.st.users[u.ID] = u
	s.st.byName[u.Name] = u.ID
	s.changedLocked()
	return nil
}

// SetGroupMembers replaces a user group's members (ID or @handle).
func (s *Server) SetGroupMembers(group string, users []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	gid := ""
	for id, g := range s.st.groups {
		if id == group || "@"+g.Handle == group || g.Handle == group {
			gid = id
		}
	}
	if gid == "" {
		return fmt.Errorf("localslack: no user group %q", group)
	}
	for _, u := range users {
		if _, ok := s.st.users[u]; !ok {
			return fmt.Errorf("localslack: user group %s: no user %q", gid, u)
		}
	}
	g := s.st.groups[gid]
	g.Users = append([]string(nil), users...)
	s.st.groups[gid] = g
	s.changedLocked()
	return nil
}

// PostMessage posts a message as user (ID or name) into channel, as a person
// typing in Slack would (or, with the bot user, as a bot would); blocks may be
// nil. threadTS "" posts top-level. It returns the new ts.
func (s *Server) PostMessage(user, channel, threadTS, text string, blocks json.RawMessage) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	uid, ok := s.st.userID(user)
	if !ok {
		return "", fmt.Errorf("localslack: no user %q", user)
	}
	cid, ok := s.st.channelID(channel)
	if !ok {
		return "", fmt.Errorf("localslack: no channel %q", channel)
	}
	if threadTS != "" {
		if p, ok := s.st.byTS[threadTS]; !ok || p.Channel != cid {
			return "", fmt.Errorf("localslack: no message %s in %s to reply to", threadTS, cid)
		}
	}
	var err error
	if blocks, err = normalizeBlocks(blocks); err != nil {
		return "", err
	}
	m := &Message{Channel: cid, ThreadTS: threadTS, User: uid, Text: text, Blocks: blocks, Posted: s.now()}
	if uid == s.st.seed.Bot.UserID {
		m.BotID = s.st.seed.Bot.BotID
	}
	m.TS = s.st.nextTS(m.Posted)
	s.st.addMessage(m)
	s.changedLocked()
	return m.TS, nil
}
