package localslack

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// Options configure a Server. The zero value is usable.
type Options struct {
	// Addr is the listen address; default "127.0.0.1:0" (a free port).
	Addr string
	// Seed is the workspace; nil means DefaultSeed().
	Seed *Seed
	// BotToken (xoxb-…) authorizes Web API calls; AppToken (xapp-…) authorizes
	// apps.connections.open. Defaults are fixed fake tokens.
	BotToken string
	AppToken string
	// SigningSecret signs requests sent to the bot in HTTP mode.
	SigningSecret string
	// Endpoints are the bot's HTTP-mode URLs, used when no Socket Mode
	// connection is open. They can be changed later with SetEndpoints.
	Endpoints Endpoints
	// AckTimeout is Slack's acknowledgement deadline; default 3s. Acks after it
	// are recorded as late.
	AckTimeout time.Duration
	// PingInterval is how often the Socket Mode WebSocket is pinged; default
	// 10s (slack-go reconnects when no ping arrives within its own interval).
	PingInterval time.Duration
	// DisconnectGrace is how long a socket told to refresh stays open before
	// localslack closes it; default 2s.
	DisconnectGrace time.Duration
	// Now is the workspace clock: message timestamps, fault periods (For),
	// and the expiry of trigger_ids, response_urls and Socket Mode tickets.
	// Default time.Now. Request signatures and ack latencies always use the
	// wall clock, because the bot's verifier and timers do.
	Now func() time.Time
	// Logger receives debug logs; default discards. Tokens are never logged.
	Logger *slog.Logger
}

// Endpoints are a bot's HTTP-mode request URLs.
type Endpoints struct {
	Commands     string // slash commands (form-encoded)
	Interactions string // block_actions (payload=<json> form field)
	Events       string // Events API (JSON)
}

const (
	defaultBotToken      = "xoxb-localslack-bot-token"
	defaultAppToken      = "xapp-1-localslack-app-token"
	defaultSigningSecret = "localslack-signing-secret"
)

// Server is a local Slack workspace. Create it with New and Start it.
type Server struct {
	opts Options
	log  *slog.Logger
	now  func() time.Time
	team Team // immutable after New
	bot  Bot

	srv     *http.Server
	ln      net.Listener
	baseURL string
	client  *http.Client
	started bool
	closed  chan struct{}

	closeOnce sync.Once
	closeErr  error
	bg        sync.WaitGroup

	mu    sync.Mutex
	st    *state
	ver   uint64
	chg   chan struct{}
	socks map[string]*socketConn
	rr    int
}

// New returns an unstarted Server. It panics on an invalid Options.Seed, which
// is a programming error in the caller (LoadSeed validates files).
func New(opts Options) *Server {
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.BotToken == "" {
		opts.BotToken = defaultBotToken
	}
	if opts.AppToken == "" {
		opts.AppToken = defaultAppToken
	}
	if opts.SigningSecret == "" {
		opts.SigningSecret = defaultSigningSecret
	}
	if opts.AckTimeout <= 0 {
		opts.AckTimeout = 3 * time.Second
	}
	if opts.PingInterval <= 0 {
		opts.PingInterval = 10 * time.Second
	}
	if opts.DisconnectGrace <= 0 {
		opts.DisconnectGrace = 2 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	seed := DefaultSeed()
	if opts.Seed != nil {
		seed = *opts.Seed
	}
	if err := seed.Validate(); err != nil {
		panic(fmt.Sprintf("localslack: invalid seed: %v", err))
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 256
	tr.MaxIdleConnsPerHost = 128
	return &Server{
		opts:   opts,
		log:    opts.Logger,
		now:    opts.Now,
		client: &http.Client{Transport: tr, Timeout: 30 * time.Second},
		closed: make(chan struct{}),
		st:     newState(seed),
		team:   seed.Team,
		bot:    seed.Bot,
		chg:    make(chan struct{}),
		socks:  map[string]*socketConn{},
	}
}

// Start listens and serves until Close or until ctx is cancelled.
func (s *Server) Start(ctx context.Context) error {
	if s.started {
		return errors.New("localslack: already started")
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.opts.Addr)
	if err != nil {
		return fmt.Errorf("localslack: listening on %s: %w", s.opts.Addr, err)
	}
	s.started = true
	s.ln = ln
	s.baseURL = "http://" + ln.Addr().String()
	s.srv = &http.Server{Handler: s.routes(), ReadHeaderTimeout: 10 * time.Second}
	go s.serve(ln)
	go func() {
		select {
		case <-ctx.Done():
			s.Close()
		case <-s.closed:
		}
	}()
	s.log.Info("localslack listening", "url", s.baseURL)
	return nil
}

func (s *Server) serve(ln net.Listener) {
	defer ln.Close()
	err := s.srv.Serve(ln)
	if err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
		s.log.Error("localslack: serving", "err", err)
	}
}

// Outage takes the whole workspace off the network for d, as a Slack outage
// would: the listening socket is closed (new connections are refused),
// pooled connections are dropped at their next request, and Socket Mode
// connections are cut. Afterwards localslack listens on the same address
// again. The web page goes down too.
func (s *Server) Outage(d time.Duration) error {
	s.mu.Lock()
	if s.ln == nil || s.st.outage {
		s.mu.Unlock()
		return errors.New("localslack: not started, or already in an outage")
	}
	s.st.outage = true
	ln := s.ln
	s.changedLocked()
	s.mu.Unlock()
	_ = ln.Close()
	s.DropSockets()
	s.goBG(func() {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-s.closed:
			return
		}
		var nl net.Listener
		var err error
		// The port was ours a moment ago; retry briefly in case the kernel
		// has not released it yet.
		for range 50 {
			if nl, err = net.Listen("tcp", ln.Addr().String()); err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			s.log.Error("localslack: cannot listen again after outage", "addr", ln.Addr().String(), "err", err)
			return
		}
		s.mu.Lock()
		s.ln = nl
		s.st.outage = false
		s.changedLocked()
		s.mu.Unlock()
		go s.serve(nl)
	})
	return nil
}

// Down reports whether an Outage is in progress.
func (s *Server) Down() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.outage
}

// dropIfDown closes the request's connection during an outage.
func (s *Server) dropIfDown(w http.ResponseWriter) bool {
	if !s.Down() {
		return false
	}
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return true
		}
	}
	panic(http.ErrAbortHandler)
}

// Close stops the server, drops Socket Mode connections and waits for
// background work. It is safe to call more than once and from several
// goroutines at once (the context watcher and the owner may race): every
// call returns once the server is down, with the first call's result.
func (s *Server) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.shutdown() })
	return s.closeErr
}

func (s *Server) shutdown() error {
	close(s.closed)
	if s.srv == nil {
		return nil
	}
	s.mu.Lock()
	for _, c := range s.socks {
		c.close()
	}
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if err != nil {
		err = s.srv.Close()
	}
	s.bg.Wait()
	s.client.CloseIdleConnections()
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("localslack: closing: %w", err)
	}
	return nil
}

// URL is the web page ("http://127.0.0.1:port/").
func (s *Server) URL() string { return s.baseURL + "/" }

// APIURL is the Web API base for slack.OptionAPIURL; it ends in "/api/".
func (s *Server) APIURL() string { return s.baseURL + "/api/" }

// BotToken is the xoxb- token the Web API accepts.
func (s *Server) BotToken() string { return s.opts.BotToken }

// AppToken is the xapp- token apps.connections.open accepts.
func (s *Server) AppToken() string { return s.opts.AppToken }

// SigningSecret is the secret HTTP-mode requests are signed with.
func (s *Server) SigningSecret() string { return s.opts.SigningSecret }

// Seed returns a copy of the workspace the server was created with (users
// changed later with SetUser or SetGroupMembers are not reflected).
func (s *Server) Seed() Seed {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.st.seed
	c.Users = append([]User(nil), c.Users...)
	c.Channels = append([]Channel(nil), c.Channels...)
	c.UserGroups = nil
	for _, g := range s.st.seed.UserGroups {
		g.Users = append([]string(nil), g.Users...)
		c.UserGroups = append(c.UserGroups, g)
	}
	return c
}

// SetEndpoints sets the bot's HTTP-mode URLs.
func (s *Server) SetEndpoints(e Endpoints) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.Endpoints = e
}

// changedLocked wakes every waiter; callers hold s.mu.
func (s *Server) changedLocked() {
	s.ver++
	close(s.chg)
	s.chg = make(chan struct{})
}

// Version counts state changes; it grows by at least one per change.
func (s *Server) Version() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ver
}

// Changed returns a channel closed at the next state change.
func (s *Server) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.chg
}

// WaitFor returns nil once cond() holds, checking it now and after every state
// change, or ctx's error (wrapped, with the last check false) when ctx ends.
// cond may call any of the Server's read methods.
func (s *Server) WaitFor(ctx context.Context, cond func() bool) error {
	for {
		ch := s.Changed()
		if cond() {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("localslack: condition not met: %w", ctx.Err())
		case <-s.closed:
			return errors.New("localslack: server closed while waiting")
		}
	}
}

func randID(prefix string, n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return prefix + strings.ToUpper(hex.EncodeToString(b))
}

// go runs f in the background, tracked by Close.
func (s *Server) goBG(f func()) {
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		f()
	}()
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
