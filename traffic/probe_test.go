package traffic_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

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
