package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kongbot/kongbot/internal/haproxyproc"
	"github.com/kongbot/kongbot/internal/pgserver"
	"github.com/kongbot/kongbot/kongsim"
	"github.com/kongbot/kongbot/localslack"
	"github.com/kongbot/kongbot/traffic"
)

// The generations of the demo gateway, oldest first, and its name.
const (
	V013    = "0.13.1"
	V014    = "0.14.1"
	V10     = "1.0.3"
	Gateway = "demo"
	// APIHost and APIPath reach the demo API `test` through any proxy.
	APIPath = "/test"
	// Backend is the HAProxy backend holding every Kong proxy.
	Backend = "kong"
)

// Versions lists the demo's generations, oldest first.
var Versions = []string{V013, V014, V10}

// NodesPerGeneration is how many kongsim nodes each generation has.
const NodesPerGeneration = 2

// EnvOptions configure the environment.
type EnvOptions struct {
	// Dir holds everything the demo writes (HAProxy's config and socket,
	// the bot's config and store). "" makes a temporary directory that
	// Close removes. It must be short enough for a unix socket path.
	Dir string
	// PGDSN names an existing, empty Postgres database for Kong; "" starts
	// a throwaway Postgres server (initdb and pg_ctl from this machine).
	PGDSN string
	// HAProxy is the haproxy binary; "" looks it up on PATH. When none is
	// found (or NoHAProxy), traffic goes through a small front proxy of
	// the demo's own and the bot's traffic backend is manual (the demo
	// follows its instructions, as a person would).
	HAProxy   string
	NoHAProxy bool
	// Rate is the steady traffic in requests per second; 0 means 5, negative
	// means no traffic.
	Rate float64
	// DBUpdateFrequency is the nodes' cluster_events polling; default 1s.
	DBUpdateFrequency time.Duration
	// SlackAddr is localslack's listen address; default 127.0.0.1:0.
	SlackAddr string
	// Logger receives the components' logs; nil discards.
	Logger *slog.Logger
}

// Node is one simulated Kong node of the demo, started or not. Its
// addresses are fixed up front so the bot's config and HAProxy can name
// nodes that will only start later.
type Node struct {
	Name      string
	Version   string
	AdminAddr string
	ProxyAddr string

	mu   sync.Mutex
	node *kongsim.Node
	err  string
}

// Running reports whether the node serves.
func (n *Node) Running() bool {
	kn := n.Kong()
	return kn != nil && !kn.Stopped()
}

// Kong is the running kongsim node, nil before its first start.
func (n *Node) Kong() *kongsim.Node {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.node
}

// Err is why the node last failed to start (Kong's refusal), "" after a
// successful start.
func (n *Node) Err() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.err
}

// Env is the demo's world without the bot: Postgres, the fake Okta, an
// upstream echo service, kongsim nodes of every generation (0.13.1 running),
// HAProxy in front, localslack and a steady traffic generator.
type Env struct {
	opts    EnvOptions
	log     *slog.Logger
	Dir     string
	ownDir  bool
	DSN     string
	pg      *pgserver.Server
	Okta    *kongsim.Okta
	echo    *http.Server
	EchoURL string
	Slack   *localslack.Server
	HAProxy *haproxyproc.Process
	hap     *traffic.HAProxy
	// front splits traffic when HAProxy is not available.
	front *front
	// Token is a long-lived okta token the traffic and the smoke probes send.
	Token string
	// FrontURL is where clients reach the gateway: HAProxy's frontend, or
	// the demo's own front proxy when HAProxy is not available.
	FrontURL string
	Load     *Load

	mu    sync.Mutex
	nodes map[string][]*Node // by version

	closeOnce sync.Once
	// ctx lives until Close: nodes and background work run under it.
	ctx    context.Context
	cancel context.CancelFunc
	bg     sync.WaitGroup
}

// StartEnv brings the environment up. On error everything started so far is
// stopped again.
func StartEnv(ctx context.Context, o EnvOptions) (_ *Env, err error) {
	if o.Rate == 0 {
		o.Rate = 5
	}
	if o.DBUpdateFrequency <= 0 {
		o.DBUpdateFrequency = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.SlackAddr == "" {
		o.SlackAddr = "127.0.0.1:0"
	}
	e := &Env{opts: o, log: o.Logger, nodes: map[string][]*Node{}}
	bgctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	e.ctx, e.cancel = bgctx, cancel
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	if o.Dir == "" {
		d, err := os.MkdirTemp("", "kongbot-demo-")
		if err != nil {
			return nil, fmt.Errorf("demo: temp dir: %w", err)
		}
		e.Dir, e.ownDir = d, true
	} else {
		e.Dir = o.Dir
		if err := os.MkdirAll(e.Dir, 0o700); err != nil {
			return nil, fmt.Errorf("demo: dir: %w", err)
		}
	}

	if err := e.startPostgres(ctx); err != nil {
		return nil, err
	}
	var out, errb bytes.Buffer
	if code := kongsim.Migrate(ctx, kongsim.MigrateOptions{Version: kongsim.V0131, DSN: e.DSN}, "up", &out, &errb); code != 0 {
		return nil, fmt.Errorf("demo: 0.13.1 migrations up exited %d: %s", code, bytes.TrimSpace(errb.Bytes()))
	}

	if e.Okta, err = kongsim.StartOkta(kongsim.OktaOptions{Logger: e.log.With("component", "okta")}); err != nil {
		return nil, fmt.Errorf("demo: okta: %w", err)
	}
	// A day is longer than any demo; the token is only good against the
	// fake Okta started above.
	e.Token = e.Okta.Mint("demo-client", 24*time.Hour)

	if err := e.startEcho(); err != nil {
		return nil, err
	}
	if err := e.allocateNodes(); err != nil {
		return nil, err
	}
	if err := e.StartGeneration(ctx, V013, true); err != nil {
		return nil, err
	}
	if err := e.seed(ctx); err != nil {
		return nil, err
	}
	if err := e.startHAProxy(ctx); err != nil {
		return nil, err
	}

	e.Slack = localslack.New(localslack.Options{Addr: o.SlackAddr, Logger: e.log.With("component", "localslack")})
	if err := e.Slack.Start(bgctx); err != nil {
		return nil, fmt.Errorf("demo: localslack: %w", err)
	}

	e.Load = newLoad(e.FrontURL+APIPath, e.Token, o.Rate)
	if o.Rate > 0 {
		e.bg.Add(1)
		go func() { defer e.bg.Done(); e.Load.run(bgctx) }()
	}
	return e, nil
}

func (e *Env) startPostgres(ctx context.Context) error {
	if e.opts.PGDSN != "" {
		e.DSN = e.opts.PGDSN
		return nil
	}
	pg, err := pgserver.Start(ctx, pgserver.Options{})
	if err != nil {
		return fmt.Errorf("demo: postgres: %w", err)
	}
	e.pg = pg
	conn, err := pgx.Connect(ctx, pg.DSN("postgres"))
	if err != nil {
		return fmt.Errorf("demo: postgres: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "CREATE DATABASE kong"); err != nil {
		return fmt.Errorf("demo: create database kong: %w", err)
	}
	e.DSN = pg.DSN("kong")
	return nil
}

// startEcho serves the upstream of API `test`: it answers every request with
// what it received (minus credentials), as httpbin's /anything does.
func (e *Env) startEcho() error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("demo: echo listener: %w", err)
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hdr := map[string]string{}
		for k := range r.Header {
			if k != "Authorization" {
				hdr[k] = r.Header.Get(k)
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"method": r.Method, "path": r.URL.Path, "headers": hdr})
	})
	e.echo = &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	e.EchoURL = "http://" + l.Addr().String()
	go func() { _ = e.echo.Serve(l) }()
	return nil
}

// allocateNodes names every node of every generation and reserves its
// addresses (a free port now; the node binds it when it starts).
func (e *Env) allocateNodes() error {
	short := map[string]string{V013: "013", V014: "014", V10: "103"}
	for _, v := range Versions {
		for i := 1; i <= NodesPerGeneration; i++ {
			a, err := freeAddr()
			if err != nil {
				return err
			}
			p, err := freeAddr()
			if err != nil {
				return err
			}
			e.nodes[v] = append(e.nodes[v], &Node{Name: fmt.Sprintf("kong-%s-%d", short[v], i), Version: v, AdminAddr: a, ProxyAddr: p})
		}
	}
	return nil
}

// handed are the ports freeAddr gave out in this process: never twice, even
// to environments that have ended (their bot may still be shutting down).
var (
	handedMu sync.Mutex
	handed   = map[int]bool{}
)

// freeAddr reserves a loopback address for a listener that binds it later
// (a node that starts when a run asks for it). The port is taken below the
// kernel's ephemeral range, so that another program's listener on port 0
// or outgoing connection cannot be handed it meanwhile.
func freeAddr() (string, error) {
	lo, hi := 20000, 32000
	if raw, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		var a, b int
		if n, _ := fmt.Sscan(string(raw), &a, &b); n == 2 && a > 2048 {
			hi = a
			lo = max(1024, min(lo, hi-4000))
		}
	}
	handedMu.Lock()
	defer handedMu.Unlock()
	for range 200 {
		port := lo + rand.IntN(hi-lo)
		if handed[port] {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		addr := l.Addr().String()
		l.Close()
		handed[port] = true
		return addr, nil
	}
	return "", errors.New("demo: no free port below the ephemeral range")
}

// Nodes returns the nodes of a generation.
func (e *Env) Nodes(version string) []*Node {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]*Node(nil), e.nodes[version]...)
}

// StartGeneration starts every node of a generation that is not running,
// loading okta-auth or not. A node Kong would refuse to start (schema not
// at its version, okta-auth rows without the plugin) keeps the refusal in
// Node.Err and the error is returned; the others stay started.
func (e *Env) StartGeneration(ctx context.Context, version string, okta bool) error {
	v, err := kongsim.ParseVersion(version)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	plugins := []string{"bundled"}
	if okta {
		plugins = append(plugins, "okta-auth")
	}
	var errs []error
	for _, n := range e.Nodes(version) {
		if n.Running() {
			continue
		}
		// The node lives until Close (its context is the environment's);
		// ctx only bounds the wait for a node that hangs while starting.
		if err := ctx.Err(); err != nil {
			return err
		}
		kn, err := kongsim.Start(e.ctx, kongsim.Options{Version: v, DSN: e.DSN, AdminAddr: n.AdminAddr, ProxyAddr: n.ProxyAddr,
			Plugins: plugins, Name: n.Name, DBUpdateFrequency: e.opts.DBUpdateFrequency,
			Logger: e.log.With("component", "kongsim", "node", n.Name)})
		n.mu.Lock()
		if err != nil {
			n.err = err.Error()
			errs = append(errs, fmt.Errorf("demo: start %s (%s): %w", n.Name, version, err))
		} else {
			n.node, n.err = kn, ""
		}
		n.mu.Unlock()
	}
	return errors.Join(errs...)
}

// StopGeneration stops every running node of a generation.
func (e *Env) StopGeneration(version string) {
	for _, n := range e.Nodes(version) {
		if kn := n.Kong(); kn != nil {
			kn.Stop()
		}
	}
}

// seed writes the demo state through the first 0.13.1 node's Admin API, as
// an operator would: API `test` in front of the echo service, guarded by
// okta-auth against the fake Okta.
func (e *Env) seed(ctx context.Context) error {
	n := e.Nodes(V013)[0]
	admin := "http://" + n.AdminAddr
	api := map[string]any{"name": "test", "uris": []string{APIPath}, "upstream_url": e.EchoURL + "/anything"}
	if err := postJSON(ctx, admin+"/apis", api, http.StatusCreated); err != nil {
		return fmt.Errorf("demo: create API test (the database must be empty): %w", err)
	}
	plugin := map[string]any{"name": "okta-auth", "config": map[string]any{
		"client_id": e.Okta.ClientID(), "client_secret": e.Okta.ClientSecret(),
		"authorization_server": e.Okta.AuthorizationServer()}}
	if err := postJSON(ctx, admin+"/apis/test/plugins", plugin, http.StatusCreated); err != nil {
		return fmt.Errorf("demo: add okta-auth to API test: %w", err)
	}
	// Both nodes must serve the state (the second sees it at its next
	// cluster_events poll) before anything is measured.
	for _, n := range e.Nodes(V013) {
		if err := e.waitSmoke(ctx, "http://"+n.ProxyAddr); err != nil {
			return fmt.Errorf("demo: %s: %w", n.Name, err)
		}
	}
	return nil
}

// Smoke is the demo path's proof that the gateway works: 401 without a
// token, 200 with one, through proxy base URL.
func (e *Env) Smoke(ctx context.Context, base string) error {
	no, err := e.get(ctx, base+APIPath, "")
	if err != nil {
		return err
	}
	yes, err := e.get(ctx, base+APIPath, e.Token)
	if err != nil {
		return err
	}
	if no != http.StatusUnauthorized || yes != http.StatusOK {
		return fmt.Errorf("GET %s: %d without a token (want 401), %d with one (want 200)", APIPath, no, yes)
	}
	return nil
}

func (e *Env) waitSmoke(ctx context.Context, base string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		err := e.Smoke(ctx, base)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("smoke test never passed: %w", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (e *Env) get(ctx context.Context, url, token string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("GET %s: %w", url, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

func postJSON(ctx context.Context, url string, body any, want int) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("POST %s: %w", url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != want {
		return fmt.Errorf("POST %s: status %d, want %d: %s", url, resp.StatusCode, want, bytes.TrimSpace(raw))
	}
	return nil
}

// HAProxyServers names the HAProxy servers of each generation (the node names).
func (e *Env) HAProxyServers() map[string][]string {
	out := map[string][]string{}
	for _, v := range Versions {
		for _, n := range e.Nodes(v) {
			out[v] = append(out[v], n.Name)
		}
	}
	return out
}

func (e *Env) startHAProxy(ctx context.Context) error {
	if !e.opts.NoHAProxy {
		bin := e.opts.HAProxy
		if bin == "" {
			bin = "haproxy"
		}
		if _, err := exec.LookPath(bin); err == nil {
			var servers []haproxyproc.Server
			for _, v := range Versions {
				for _, n := range e.Nodes(v) {
					w := 0
					if v == V013 {
						w = 256
					}
					servers = append(servers, haproxyproc.Server{Name: n.Name, Addr: n.ProxyAddr, Weight: w, Check: true})
				}
			}
			hdir := filepath.Join(e.Dir, "haproxy")
			if err := os.MkdirAll(hdir, 0o700); err != nil {
				return fmt.Errorf("demo: %w", err)
			}
			p, err := haproxyproc.Start(ctx, haproxyproc.Options{Binary: bin, Dir: hdir, Backend: Backend, Servers: servers})
			if err != nil {
				return fmt.Errorf("demo: %w", err)
			}
			e.HAProxy = p
			e.FrontURL = p.FrontURL
			names := e.HAProxyServers()
			// One reader over every server, for the status line.
			all := append(append([]string{}, names[V013]...), names[V014]...)
			e.hap, err = traffic.NewHAProxy(traffic.HAProxyOptions{Address: "unix:" + p.Socket, Backend: Backend, Old: all, New: names[V10]})
			if err != nil {
				return fmt.Errorf("demo: haproxy reader: %w", err)
			}
			return nil
		}
		e.log.Warn("haproxy not found on PATH: traffic goes through the demo's own front proxy; the bot's traffic backend is manual")
	}
	f, err := startFront(e)
	if err != nil {
		return err
	}
	e.front, e.FrontURL = f, f.url
	return nil
}

// Weights reads HAProxy's weight and status of every server; nil without
// HAProxy.
func (e *Env) Weights(ctx context.Context) (map[string]traffic.ServerStat, error) {
	if e.hap == nil {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return e.hap.Stats(ctx)
}

// Split is the share of traffic per version (percent), from HAProxy's
// weights or the demo's front.
func (e *Env) Split(ctx context.Context) map[string]int {
	if e.front != nil {
		return e.front.Weights()
	}
	st, err := e.Weights(ctx)
	if err != nil || st == nil {
		return nil
	}
	sums := map[string]int{}
	total := 0
	for _, v := range Versions {
		for _, n := range e.Nodes(v) {
			if s := st[n.Name]; !s.Drained {
				sums[v] += s.Weight
				total += s.Weight
			}
		}
	}
	out := map[string]int{}
	for v, w := range sums {
		if w > 0 {
			out[v] = (100*w + total/2) / total
		}
	}
	return out
}

// Close stops everything the environment started and removes its directory.
// It is safe to call more than once.
func (e *Env) Close() {
	e.closeOnce.Do(func() {
		if e.cancel != nil {
			e.cancel()
		}
		e.bg.Wait()
		if e.Slack != nil {
			_ = e.Slack.Close()
		}
		if e.HAProxy != nil {
			_ = e.HAProxy.Close()
		}
		if e.front != nil {
			_ = e.front.Close()
		}
		vs := append([]string(nil), Versions...)
		sort.Sort(sort.Reverse(sort.StringSlice(vs)))
		for _, v := range vs {
			e.StopGeneration(v)
		}
		if e.echo != nil {
			_ = e.echo.Close()
		}
		if e.Okta != nil {
			_ = e.Okta.Close()
		}
		if e.pg != nil {
			if err := e.pg.Stop(); err != nil {
				e.log.Warn("stopping postgres", "err", err)
			}
		}
		if e.ownDir {
			_ = os.RemoveAll(e.Dir)
		}
	})
}
