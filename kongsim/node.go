package kongsim

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultDBUpdateFrequency is Kong's db_update_frequency default.
const DefaultDBUpdateFrequency = 5 * time.Second

// Options configure a simulated node.
type Options struct {
	Version Version
	// DSN of the Kong database.
	DSN string
	// AdminAddr and ProxyAddr are listen addresses; "" means 127.0.0.1:0.
	AdminAddr string
	ProxyAddr string
	// Plugins is Kong's `plugins` setting: "bundled" and/or plugin names.
	// Empty means bundled. 0.13.1 always loads its bundled list (custom
	// plugins are added to it).
	Plugins []string
	// Name is reported as `hostname` in GET / ; defaults to os.Hostname.
	Name string
	// DBUpdateFrequency is the cluster_events polling interval
	// (db_update_frequency); 0 means DefaultDBUpdateFrequency.
	DBUpdateFrequency time.Duration
	// DBCacheTTL is db_cache_ttl: cached entities are re-read after it.
	// 0 means the version's default (3600 s on 0.13.1, never on 0.14.1 and
	// 1.0.3); negative means never.
	DBCacheTTL time.Duration
	// Logger receives the node's log; nil discards.
	Logger *slog.Logger
	// Proxy builds the proxy handler; nil uses newProxyHandler.
	Proxy func(n *Node) http.Handler
}

// Node is a running simulated Kong node.
type Node struct {
	opts    Options
	version Version
	nodeID  string
	log     *slog.Logger
	pool    *pgxpool.Pool
	loaded  map[string]bool

	adminLn  net.Listener
	proxyLn  net.Listener
	adminSrv *http.Server
	proxySrv *http.Server

	cache *nodeCache

	eventsMu    sync.Mutex
	pendingKeys []string
	pendingSet  map[string]bool
	eventsKick  chan struct{}

	faultMu sync.RWMutex
	fault   Fault

	stats serverStats

	cancel   context.CancelFunc
	wg       sync.WaitGroup
	stopOnce sync.Once
	stopped  chan struct{}
}

// StartError is a refusal to start, carrying what `kong start` prints.
type StartError struct {
	Stdout []string
	Stderr []string
	Err    error
}

func (e *StartError) Error() string { return e.Err.Error() }
func (e *StartError) Unwrap() error { return e.Err }

// Start checks the datastore like `kong start` does, then serves the Admin API
// and the proxy until Stop or ctx is done.
func Start(ctx context.Context, opts Options) (*Node, error) {
	if _, err := ParseVersion(string(opts.Version)); err != nil {
		return nil, err
	}
	if opts.DBUpdateFrequency <= 0 {
		opts.DBUpdateFrequency = DefaultDBUpdateFrequency
	}
	if opts.DBCacheTTL == 0 && opts.Version == V0131 {
		opts.DBCacheTTL = time.Hour
	}
	if opts.Name == "" {
		h, err := os.Hostname()
		if err != nil {
			h = "kongsim"
		}
		opts.Name = h
	}
	if opts.AdminAddr == "" {
		opts.AdminAddr = "127.0.0.1:0"
	}
	if opts.ProxyAddr == "" {
		opts.ProxyAddr = "127.0.0.1:0"
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	loaded, err := loadedPlugins(opts.Version, opts.Plugins)
	if err != nil {
		return nil, err
	}
	pool, err := openPool(ctx, opts.DSN)
	if err != nil {
		return nil, err
	}
	n := &Node{
		opts:    opts,
		version: opts.Version,
		nodeID:  newUUID(),
		log:     log.With("kong_version", string(opts.Version), "node", opts.Name),
		pool:    pool,
		loaded:  loaded,
		stopped: make(chan struct{}),

		pendingSet: map[string]bool{},
		eventsKick: make(chan struct{}, 1),
	}
	if err := n.startupCheck(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	n.cache = newNodeCache(n)
	if err := n.listen(); err != nil {
		pool.Close()
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	n.wg.Add(2)
	go func() {
		defer n.wg.Done()
		n.cache.poll(runCtx)
	}()
	go func() {
		defer n.wg.Done()
		n.flushEvents(runCtx)
	}()
	n.log.Info("kongsim node started", "admin", n.AdminURL(), "proxy", n.ProxyURL())
	return n, nil
}

func (n *Node) listen() error {
	var err error
	if n.adminLn, err = net.Listen("tcp", n.opts.AdminAddr); err != nil {
		return fmt.Errorf("admin listener: %w", err)
	}
	if n.proxyLn, err = net.Listen("tcp", n.opts.ProxyAddr); err != nil {
		n.adminLn.Close()
		return fmt.Errorf("proxy listener: %w", err)
	}
	mkProxy := n.opts.Proxy
	if mkProxy == nil {
		mkProxy = newProxyHandler
	}
	n.adminSrv = &http.Server{Handler: n.adminHandler(), ReadHeaderTimeout: 10 * time.Second}
	n.proxySrv = &http.Server{Handler: mkProxy(n), ReadHeaderTimeout: 10 * time.Second}
	for _, s := range []struct {
		srv *http.Server
		ln  net.Listener
	}{{n.adminSrv, n.adminLn}, {n.proxySrv, n.proxyLn}} {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				n.log.Error("listener stopped", "err", err)
			}
		}()
	}
	return nil
}

// AdminURL is the base URL of the Admin API, e.g. http://127.0.0.1:8001.
func (n *Node) AdminURL() string { return "http://" + n.adminLn.Addr().String() }

// ProxyURL is the base URL of the proxy listener.
func (n *Node) ProxyURL() string { return "http://" + n.proxyLn.Addr().String() }

// AdminAddr is the host:port of the Admin API listener.
func (n *Node) AdminAddr() string { return n.adminLn.Addr().String() }

// Version is the simulated Kong release.
func (n *Node) Version() Version { return n.version }

// Name is the node's name (its `hostname`).
func (n *Node) Name() string { return n.opts.Name }

// NodeID is the node_id generated at start.
func (n *Node) NodeID() string { return n.nodeID }

// Logger is the node's logger.
func (n *Node) Logger() *slog.Logger { return n.log }

// PluginLoaded reports whether this node loads the plugin.
func (n *Node) PluginLoaded(name string) bool { return n.loaded[name] }

// View returns the node's cached view of the proxy entities, rebuilding what
// was invalidated. See the package comment.
func (n *Node) View(ctx context.Context) (ProxyView, error) { return n.cache.view(ctx) }

// Stop closes the listeners and the database pool. It is safe to call twice.
func (n *Node) Stop() {
	n.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = n.adminSrv.Shutdown(ctx)
		_ = n.proxySrv.Shutdown(ctx)
		if n.cancel != nil {
			n.cancel()
		}
		n.wg.Wait()
		n.pool.Close()
		close(n.stopped)
		n.log.Info("kongsim node stopped")
	})
}

// Stopped reports whether Stop was called (also through the fault API).
func (n *Node) Stopped() bool {
	select {
	case <-n.stopped:
		return true
	default:
		return false
	}
}

// Done is closed when the node has stopped.
func (n *Node) Done() <-chan struct{} { return n.stopped }

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
				return false
			}
		}
	}
	return true
}
