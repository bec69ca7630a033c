package traffic_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kongbot/kongbot/internal/haproxyproc"
	"github.com/kongbot/kongbot/traffic"
)

// upstream is one in-process "Kong proxy": it answers 200 with
// `Via: kong/<version>`, and fails an exact share of requests with 500 when
// told to.
type upstream struct {
	srv     *httptest.Server
	version string
	failPct atomic.Int64
	n       atomic.Int64
	// terminate answers like request-termination: Kong's own 503.
	terminate atomic.Bool
}

func newUpstream(t testing.TB, version string) *upstream {
	t.Helper()
	u := &upstream{version: version}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := u.n.Add(1)
		// A little work, so requests are in flight while weights move.
		time.Sleep(time.Millisecond)
		if u.terminate.Load() {
			w.Header().Set("Server", "kong/"+u.version)
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, `{"message":"Maintenance"}`)
			return
		}
		w.Header().Set("Via", "kong/"+u.version)
		if pct := u.failPct.Load(); pct > 0 && (n*pct)/100 != ((n-1)*pct)/100 {
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprintln(w, `{"message":"An unexpected error occurred"}`)
			return
		}
		fmt.Fprintln(w, `{"ok":true}`)
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *upstream) addr() string { return strings.TrimPrefix(u.srv.URL, "http://") }

// cluster is one Kong generation: two upstreams.
type cluster struct {
	version string
	nodes   []*upstream
}

func newCluster(t testing.TB, version string) *cluster {
	return &cluster{version: version, nodes: []*upstream{newUpstream(t, version), newUpstream(t, version)}}
}

// fail makes the cluster as a whole fail pct % of its requests.
func (c *cluster) fail(pct int64) {
	for _, u := range c.nodes {
		u.failPct.Store(pct)
	}
}

// rig is HAProxy in front of an old and a new cluster, all traffic on old.
type rig struct {
	old, new *cluster
	proc     *haproxyproc.Process
	hap      *traffic.HAProxy
}

func newRig(t testing.TB) *rig {
	t.Helper()
	r := &rig{old: newCluster(t, "0.14.1"), new: newCluster(t, "1.0.3")}
	var servers []haproxyproc.Server
	for i, u := range r.old.nodes {
		servers = append(servers, haproxyproc.Server{Name: fmt.Sprintf("old%d", i+1), Addr: u.addr(), Weight: 256})
	}
	for i, u := range r.new.nodes {
		servers = append(servers, haproxyproc.Server{Name: fmt.Sprintf("new%d", i+1), Addr: u.addr(), Weight: 0})
	}
	dir, err := os.MkdirTemp("", "hap")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p, err := haproxyproc.Start(ctx, haproxyproc.Options{Dir: dir, Servers: servers})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	r.proc = p
	r.hap, err = traffic.NewHAProxy(traffic.HAProxyOptions{
		Address: "unix:" + p.Socket, Backend: p.Backend,
		Old: []string{"old1", "old2"}, New: []string{"new1", "new2"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// memJournal is the steps.Journal contract in memory; the store's bbolt
// journal is tested in package store.
type memJournal struct {
	mu sync.Mutex
	m  map[string]string
}

func newJournal() *memJournal { return &memJournal{m: map[string]string{}} }

func (j *memJournal) Get(k string) (string, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	v, ok := j.m[k]
	return v, ok
}

func (j *memJournal) Put(k, v string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.m[k] = v
	return nil
}

func (j *memJournal) PutMany(kv map[string]string) error {
	for k, v := range kv {
		if err := j.Put(k, v); err != nil {
			return err
		}
	}
	return nil
}

func (j *memJournal) Keys(prefix string) []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	var ks []string
	for k := range j.m {
		if strings.HasPrefix(k, prefix) {
			ks = append(ks, k)
		}
	}
	slices.Sort(ks)
	return ks
}

// sink records lines and can react to them.
type sink struct {
	t     *testing.T
	mu    sync.Mutex
	lines []string
	on    func(line string)
}

func (s *sink) Line(stream, text string) {
	s.t.Logf("%s: %s", stream, text)
	s.mu.Lock()
	s.lines = append(s.lines, text)
	on := s.on
	s.mu.Unlock()
	if on != nil {
		on(text)
	}
}

func (s *sink) all() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.lines)
}

func (s *sink) count(substr string) int {
	n := 0
	for _, l := range s.all() {
		if strings.Contains(l, substr) {
			n++
		}
	}
	return n
}
