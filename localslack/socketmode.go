package localslack

import (
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// socketConn is one Socket Mode WebSocket.
type socketConn struct {
	id     string
	ws     *websocket.Conn
	wmu    sync.Mutex
	done   chan struct{}
	once   sync.Once
	opened time.Time
}

func (c *socketConn) send(v any) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return c.ws.WriteJSON(v)
}

func (c *socketConn) close() {
	c.once.Do(func() {
		close(c.done)
		_ = c.ws.Close()
	})
}

// SocketStats counts Socket Mode connections.
type SocketStats struct {
	Open   int // connections open now
	Opened int // connections ever opened (hello sent)
	Closed int // connections closed
}

// ackMsg is what a client sends back for an envelope.
type ackMsg struct {
	EnvelopeID string          `json:"envelope_id"`
	Payload    json.RawMessage `json:"payload"`
}

type pendingAck struct {
	ch   chan ackResult
	conn string
	sent time.Time
}

type ackResult struct {
	payload json.RawMessage
	at      time.Time
	err     error
}

var upgrader = websocket.Upgrader{
	ReadBufferSize:  4096,
	WriteBufferSize: 4096,
	CheckOrigin:     func(*http.Request) bool { return true },
}

func (s *Server) handleSocket(w http.ResponseWriter, r *http.Request) {
	if s.dropIfDown(w) {
		return
	}
	ticket := r.URL.Query().Get("ticket")
	s.mu.Lock()
	exp, ok := s.st.tickets[ticket]
	delete(s.st.tickets, ticket) // a ticket opens one connection, like Slack's
	s.mu.Unlock()
	if !ok || s.now().After(exp) {
		http.Error(w, "invalid or expired ticket; call apps.connections.open", http.StatusUnauthorized)
		return
	}
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		s.log.Debug("socket upgrade failed", "err", err)
		return
	}
	ws.SetReadLimit(1 << 20)
	c := &socketConn{id: randID("", 6), ws: ws, done: make(chan struct{}), opened: s.now()}

	s.mu.Lock()
	select {
	case <-s.closed:
		s.mu.Unlock()
		_ = ws.Close()
		return
	default:
	}
	s.socks[c.id] = c
	s.st.sockStats.Opened++
	n := len(s.socks)
	s.changedLocked()
	s.mu.Unlock()

	hello := obj{"type": "hello", "num_connections": n,
		"debug_info":      obj{"host": "localslack", "build_number": 1, "approximate_connection_time": 3600},
		"connection_info": obj{"app_id": s.bot.AppID}}
	if err := c.send(hello); err != nil {
		s.dropSocket(c)
		return
	}
	s.log.Debug("socket mode connection opened", "conn", c.id)
	s.goBG(func() { s.pingLoop(c) })
	s.goBG(func() { s.readLoop(c) })
}

func (s *Server) pingLoop(c *socketConn) {
	t := time.NewTicker(s.opts.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
			c.wmu.Lock()
			err := c.ws.WriteControl(websocket.PingMessage, []byte("ping"), time.Now().Add(5*time.Second))
			c.wmu.Unlock()
			if err != nil {
				s.dropSocket(c)
				return
			}
		}
	}
}

func (s *Server) readLoop(c *socketConn) {
	defer s.dropSocket(c)
	for {
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		var a ackMsg
		if err := json.Unmarshal(data, &a); err != nil || a.EnvelopeID == "" {
			s.log.Debug("socket mode: unexpected message from client", "conn", c.id)
			continue
		}
		s.ackArrived(a.EnvelopeID, a.Payload)
	}
}

// ackArrived records an ack and wakes the delivery waiting for it. An ack
// after the deadline still lands on the record, marked Late.
func (s *Server) ackArrived(envID string, payload json.RawMessage) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.st.pending[envID]; ok {
		delete(s.st.pending, envID)
		p.ch <- ackResult{payload: payload, at: now}
		return
	}
	d, ok := s.st.delivByID[envID]
	if !ok {
		s.st.strayAcks = append(s.st.strayAcks, envID)
		s.changedLocked()
		return
	}
	if d.Acked {
		d.DuplicateAcks++
	} else {
		d.Acked, d.Late = true, true
		d.AckLatency = now.Sub(d.Sent)
		d.Response = payload
	}
	s.changedLocked()
}

func (s *Server) dropSocket(c *socketConn) {
	c.close()
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.socks[c.id]; !ok {
		return
	}
	delete(s.socks, c.id)
	s.st.sockStats.Closed++
	for id, p := range s.st.pending {
		if p.conn == c.id {
			delete(s.st.pending, id)
			p.ch <- ackResult{err: errors.New("socket closed before ack")}
		}
	}
	s.changedLocked()
	s.log.Debug("socket mode connection closed", "conn", c.id)
}

// Sockets reports Socket Mode connection counts.
func (s *Server) Sockets() SocketStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.st.sockStats
	st.Open = len(s.socks)
	return st
}

// Disconnect sends {"type":"disconnect","reason":reason} on every open
// socket, as Slack does before rotating a connection ("refresh_requested")
// or ahead of it ("warning"). For any reason but "warning" localslack then
// closes each socket after DisconnectGrace. It returns the number told.
func (s *Server) Disconnect(reason string) int {
	s.mu.Lock()
	conns := make([]*socketConn, 0, len(s.socks))
	for _, c := range s.socks {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	msg := obj{"type": "disconnect", "reason": reason, "debug_info": obj{"host": "localslack"}}
	for _, c := range conns {
		if err := c.send(msg); err != nil {
			s.dropSocket(c)
			continue
		}
		if reason != "warning" {
			s.goBG(func() {
				t := time.NewTimer(s.opts.DisconnectGrace)
				defer t.Stop()
				select {
				case <-t.C:
					s.dropSocket(c)
				case <-c.done:
				case <-s.closed:
				}
			})
		}
	}
	return len(conns)
}

// DropSockets closes every Socket Mode connection without a disconnect
// message, as a network failure would.
func (s *Server) DropSockets() {
	s.mu.Lock()
	conns := make([]*socketConn, 0, len(s.socks))
	for _, c := range s.socks {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		s.dropSocket(c)
	}
}

// pickSocketLocked spreads envelopes over open connections, as Slack does.
func (s *Server) pickSocketLocked() *socketConn {
	if len(s.socks) == 0 {
		return nil
	}
	ids := sortedKeys(s.socks)
	s.rr++
	return s.socks[ids[s.rr%len(ids)]]
}
