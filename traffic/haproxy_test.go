package traffic_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/kongbot/kongbot/internal/haproxyproc"
	"github.com/kongbot/kongbot/traffic"
)

func TestHAProxyServerWeights(t *testing.T) {
	tests := []struct {
		old, new         int // server counts
		pct              int
		wantOld, wantNew int
	}{
		{2, 2, 0, 256, 0},
		{2, 2, 5, 243, 13},
		{2, 2, 50, 128, 128},
		{2, 2, 100, 0, 256},
		{2, 2, 1, 253, 3},
		{3, 1, 25, 64, 64}, // 3×64 vs 1×64: 25 % new
		{1, 3, 25, 192, 21},
		{4, 1, 99, 1, 253}, // the smallest share still gets weight 1
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%dx%d_%d", tt.old, tt.new, tt.pct), func(t *testing.T) {
			h, err := traffic.NewHAProxy(traffic.HAProxyOptions{Address: "/x.sock", Backend: "kong",
				Old: names("o", tt.old), New: names("n", tt.new)})
			if err != nil {
				t.Fatal(err)
			}
			o, n := h.ServerWeights(traffic.Split(tt.pct))
			if o != tt.wantOld || n != tt.wantNew {
				t.Fatalf("weights = %d, %d; want %d, %d", o, n, tt.wantOld, tt.wantNew)
			}
		})
	}
}

func names(prefix string, n int) []string {
	var s []string
	for i := range n {
		s = append(s, fmt.Sprintf("%s%d", prefix, i+1))
	}
	return s
}

func TestNewHAProxyRejects(t *testing.T) {
	tests := []struct {
		name string
		o    traffic.HAProxyOptions
		want string
	}{
		{"no address", traffic.HAProxyOptions{Backend: "kong", Old: []string{"a"}, New: []string{"b"}}, "address is empty"},
		{"no backend", traffic.HAProxyOptions{Address: "/s", Old: []string{"a"}, New: []string{"b"}}, "backend name"},
		{"no new", traffic.HAProxyOptions{Address: "/s", Backend: "kong", Old: []string{"a"}}, "at least one old and one new"},
		{"injection", traffic.HAProxyOptions{Address: "/s", Backend: "kong", Old: []string{"a;shutdown"}, New: []string{"b"}}, "semicolon"},
		{"twice", traffic.HAProxyOptions{Address: "/s", Backend: "kong", Old: []string{"a"}, New: []string{"a"}}, "listed twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := traffic.NewHAProxy(tt.o)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestHAProxyBackend drives the runtime API of a real HAProxy: weights set
// and read back, per-generation counters, drain and undrain, refusals.
func TestHAProxyBackend(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	h := r.hap

	for _, pct := range []int{0, 5, 25, 50, 100, 0} {
		if _, err := h.SetWeights(ctx, traffic.Split(pct)); err != nil {
			t.Fatalf("set %d: %v", pct, err)
		}
		c, err := h.VerifyWeights(ctx, traffic.Split(pct))
		if err != nil || !c.OK {
			t.Fatalf("verify %d: %+v, %v", pct, c, err)
		}
		// And a different split does not verify.
		c, err = h.VerifyWeights(ctx, traffic.Split((pct+50)%100))
		if err != nil || c.OK || len(c.Missing) == 0 {
			t.Fatalf("verify of the wrong split passed: %+v, %v", c, err)
		}
	}
	if _, err := h.SetWeights(ctx, traffic.Weights{Old: 60, New: 60}); !errors.Is(err, traffic.ErrBadWeights) {
		t.Fatalf("bad weights: %v", err)
	}

	// Counters: 40 requests at 50/50, the new cluster failing half of its.
	if _, err := h.SetWeights(ctx, traffic.Split(50)); err != nil {
		t.Fatal(err)
	}
	r.new.fail(50)
	before, err := h.Sample(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for range 40 {
		resp, err := http.Get(r.proc.FrontURL + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	after, err := h.Sample(ctx)
	if err != nil {
		t.Fatal(err)
	}
	newN, new5 := after.New.Responses-before.New.Responses, after.New.Status5xx-before.New.Status5xx
	oldN, old5 := after.Old.Responses-before.Old.Responses, after.Old.Status5xx-before.Old.Status5xx
	if newN+oldN != 40 || newN != 20 || new5 != 10 || old5 != 0 {
		t.Fatalf("counters: new %d (5xx %d), old %d (5xx %d); want 20 (10), 20 (0)", newN, new5, oldN, old5)
	}
	if after.New.LatencyKind == "" {
		t.Fatal("no latency kind named")
	}

	// Decommission: not yet, then drained, then back.
	if c, _ := h.Decommissioned(ctx); c.OK {
		t.Fatal("decommissioned while the old cluster has weight")
	}
	if _, err := h.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := h.Decommissioned(ctx)
	if err != nil || !c.OK {
		t.Fatalf("after drain: %+v, %v", c, err)
	}
	if _, err := h.Undrain(ctx); err != nil {
		t.Fatal(err)
	}
	if c, _ := h.Decommissioned(ctx); c.OK || !strings.Contains(strings.Join(c.Missing, " "), "want DRAIN or MAINT") {
		t.Fatalf("after undrain: %+v", c)
	}

	// A server HAProxy does not know is refused, with HAProxy's words.
	ghost, err := traffic.NewHAProxy(traffic.HAProxyOptions{Address: "unix:" + r.proc.Socket, Backend: "kong", Old: []string{"old1"}, New: []string{"ghost"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ghost.SetWeights(ctx, traffic.Split(5)); !errors.Is(err, traffic.ErrHAProxy) {
		t.Fatalf("unknown server: %v", err)
	}
	if _, err := ghost.Stats(ctx); err == nil || !strings.Contains(err.Error(), `no server "ghost"`) {
		t.Fatalf("stats of unknown server: %v", err)
	}
	// A socket nobody listens on is a clear error, not a hang.
	dead, _ := traffic.NewHAProxy(traffic.HAProxyOptions{Address: "unix:" + r.proc.Socket + ".none", Backend: "kong", Old: []string{"a"}, New: []string{"b"}})
	if _, err := dead.Sample(ctx); err == nil {
		t.Fatal("sample through a missing socket succeeded")
	}
}

// TestHAProxyDecommissionStoppedNode: once the old Kong node is stopped its
// health check fails and show stat says DOWN, not DRAIN; the decommission
// check still sees the drain in the admin state. (Runtime API over TCP.)
func TestHAProxyDecommissionStoppedNode(t *testing.T) {
	up := newUpstream(t, "1.0.3")
	stopped := newUpstream(t, "0.14.1")
	stopped.srv.Close()
	dir, err := os.MkdirTemp("", "hap")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	p, err := haproxyproc.Start(ctx, haproxyproc.Options{Dir: dir, AdminTCP: true, Servers: []haproxyproc.Server{
		{Name: "old1", Addr: stopped.addr(), Weight: 256, Check: true},
		{Name: "new1", Addr: up.addr(), Weight: 0},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	// The runtime API over TCP, this time.
	h, err := traffic.NewHAProxy(traffic.HAProxyOptions{Address: "tcp:" + p.AdminTCP, Backend: p.Backend, Old: []string{"old1"}, New: []string{"new1"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.SetWeights(ctx, traffic.Split(100)); err != nil {
		t.Fatal(err)
	}
	if c, _ := h.Decommissioned(ctx); c.OK {
		t.Fatal("decommissioned before the drain")
	}
	if _, err := h.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "old1 DOWN", func() (bool, string) {
		st, err := h.Stats(ctx)
		if err != nil {
			return false, err.Error()
		}
		return strings.HasPrefix(st["old1"].Status, "DOWN"), st["old1"].Status
	})
	c, err := h.Decommissioned(ctx)
	if err != nil || !c.OK {
		t.Fatalf("decommissioned: %+v, %v", c, err)
	}
}
