package traffic_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kongbot/kongbot/traffic"
)

// TestProberSendsHostHeaderAsHost: a probe (and a share probe) naming a
// virtual host in its headers reaches that host, since a Kong route or the
// load balancer in front matches on it; net/http would otherwise send the
// URL's host.
func TestProberSendsHostHeaderAsHost(t *testing.T) {
	type seen struct{ host, header, other string }
	got := make(chan seen, 100)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- seen{r.Host, r.Header.Get("Host"), r.Header.Get("X-Probe")}
		w.Header().Set("Via", "kong/1.0.3")
	}))
	defer srv.Close()
	tests := []struct {
		name   string
		header http.Header
		want   string
	}{
		{"canonical key", http.Header{"Host": {"api.example.com"}, "X-Probe": {"1"}}, "api.example.com"},
		{"lower-case key", http.Header{"host": {"api.example.com"}, "X-Probe": {"1"}}, "api.example.com"},
		{"no host", http.Header{"X-Probe": {"1"}}, srv.Listener.Addr().String()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := traffic.Prober{}.Do(context.Background(), traffic.Probe{URL: srv.URL + "/test", Header: tc.header, WantStatus: 200})
			if !res.Pass {
				t.Fatalf("probe: %+v", res)
			}
			s := <-got
			if s.host != tc.want || s.header != "" || s.other != "1" {
				t.Fatalf("server saw Host %q, Header[Host] %q, X-Probe %q; want Host %q, no Host header, X-Probe 1", s.host, s.header, s.other, tc.want)
			}
		})
	}
	t.Run("share probe", func(t *testing.T) {
		sp := traffic.ShareProbe{URL: srv.URL + "/", Header: http.Header{"Host": {"lb.example.com"}}, OldVersion: "0.14.1", NewVersion: "1.0.3", Requests: 3}
		c, err := sp.Verify(context.Background(), traffic.Split(100))
		if err != nil || !c.OK {
			t.Fatalf("verify: %+v, %v", c, err)
		}
		for range 3 {
			if s := <-got; s.host != "lb.example.com" {
				t.Fatalf("share probe reached Host %q, want lb.example.com", s.host)
			}
		}
	})
}

// TestShiftSendsTheHopsProbes: while a hop bakes, the gateway's probes and
// that hop's probes are sent, never another hop's (aimed at a generation
// that hop does not move to).
func TestShiftSendsTheHopsProbes(t *testing.T) {
	r := newRig(t)
	var hits [3]atomic.Int64 // every hop, hop2, hop1
	srv := func(n *atomic.Int64) string {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n.Add(1)
			w.Header().Set("Via", "kong/1.0.3")
		}))
		t.Cleanup(s.Close)
		return s.URL
	}
	all, h2, h1 := srv(&hits[0]), srv(&hits[1]), srv(&hits[2])
	tr := newTraffic(t, &traffic.Gateway{
		Backend: r.hap,
		Plans:   map[string]traffic.Plan{"hop2": traffic.GradualPlan(300*time.Millisecond, []int{100})},
		Gates:   traffic.Gates{Interval: 50 * time.Millisecond},
		Probes:  []traffic.Probe{{Name: "front", URL: all + "/"}},
		HopProbes: map[string][]traffic.Probe{
			"hop2": {{Name: "1.0.3 node", URL: h2 + "/"}},
			"hop1": {{Name: "0.14.1 node", URL: h1 + "/"}},
		},
	})
	if _, err := tr.Shift(context.Background(), "prod", "hop2", newJournal(), &sink{t: t}); err != nil {
		t.Fatal(err)
	}
	if hits[0].Load() == 0 || hits[1].Load() == 0 || hits[2].Load() != 0 {
		t.Fatalf("probes sent: gateway's %d, hop2's %d, hop1's %d; want the first two only", hits[0].Load(), hits[1].Load(), hits[2].Load())
	}
	if hits[0].Load() != hits[1].Load() {
		t.Fatalf("gateway's probe sent %d times, hop2's %d: both go out at every sample", hits[0].Load(), hits[1].Load())
	}
}

func TestNewRefusesHopProbeWithoutURL(t *testing.T) {
	r := newRig(t)
	_, err := traffic.New(traffic.Options{Gateways: map[string]*traffic.Gateway{"prod": {Backend: r.hap,
		HopProbes: map[string][]traffic.Probe{"hop2": {{Name: "x"}}}}}})
	if err == nil || !strings.Contains(err.Error(), `gateway "prod" hop2: probe 1 has no URL`) {
		t.Fatalf("err = %v", err)
	}
}
