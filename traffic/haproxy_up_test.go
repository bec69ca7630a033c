package traffic_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kongbot/kongbot/internal/haproxyproc"
	"github.com/kongbot/kongbot/traffic"
)

// TestHAProxyShiftWaitsForNewServersUp: hop 1 shifts to nodes started moments
// before, which HAProxy's health checks still report DOWN. The shift waits
// (bounded) for them to be marked UP instead of failing at once; a node that
// never comes up fails the shift with a clear message and moves nothing.
func TestHAProxyShiftWaitsForNewServersUp(t *testing.T) {
	tests := []struct {
		name string
		// listenAfter: when the new node starts listening; 0 means never.
		listenAfter time.Duration
		wantOK      bool
	}{
		{name: "new node comes up after a couple of seconds", listenAfter: 2 * time.Second, wantOK: true},
		{name: "new node never comes up", wantOK: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old := newUpstream(t, "0.13.1")
			// Reserve a port for the new node, then leave it closed.
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			newAddr := ln.Addr().String()
			ln.Close()

			dir, err := os.MkdirTemp("", "hap")
			if err != nil {
				t.Fatal(err)
			}
			defer os.RemoveAll(dir)
			ctx := context.Background()
			p, err := haproxyproc.Start(ctx, haproxyproc.Options{Dir: dir, Servers: []haproxyproc.Server{
				{Name: "old1", Addr: old.addr(), Weight: 256, Check: true},
				{Name: "new1", Addr: newAddr, Weight: 0, Check: true},
			}})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			const upWait = 5 * time.Second
			h, err := traffic.NewHAProxy(traffic.HAProxyOptions{Address: "unix:" + p.Socket, Backend: p.Backend,
				Old: []string{"old1"}, New: []string{"new1"}, UpWait: upWait})
			if err != nil {
				t.Fatal(err)
			}
			// As on the day: the new node's health check has failed already.
			waitFor(t, "new1 DOWN", func() (bool, string) {
				st, err := h.Stats(ctx)
				if err != nil {
					return false, err.Error()
				}
				return strings.HasPrefix(st["new1"].Status, "DOWN"), st["new1"].Status
			})

			if tt.listenAfter > 0 {
				timer := time.AfterFunc(tt.listenAfter, func() {
					ln, err := net.Listen("tcp", newAddr)
					if err != nil {
						t.Errorf("new node: %v", err)
						return
					}
					srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
						w.Header().Set("Via", "kong/0.14.1")
						fmt.Fprintln(w, `{"ok":true}`)
					})}
					t.Cleanup(func() { _ = srv.Close() })
					go func() { _ = srv.Serve(ln) }()
				})
				defer timer.Stop()
			}

			tr := newTraffic(t, &traffic.Gateway{
				Backend: h,
				Plans:   map[string]traffic.Plan{"hop1": traffic.GradualPlan(time.Second, []int{100})},
				Gates:   traffic.Gates{MinRequests: 5, Interval: 200 * time.Millisecond},
			})
			stop := load(t, p.FrontURL+"/test", 100)
			defer stop()
			out := &sink{t: t}
			c, err := shiftThrough(ctx, t, tr, "hop1", newJournal(), out)
			if err != nil {
				t.Fatal(err)
			}
			if out.count("waiting up to 5s for HAProxy health checks to mark kong/new1") != 1 {
				t.Errorf("the wait was not reported to the sink: %q", out.lines)
			}
			if tt.wantOK {
				if !c.OK {
					t.Fatalf("shift: %+v", c)
				}
				if vc, _ := h.VerifyWeights(ctx, traffic.Split(100)); !vc.OK {
					t.Fatalf("weights after the shift: %v", vc.Missing)
				}
				return
			}
			msg := strings.Join(c.Missing, "; ")
			if c.OK || c.Pause != nil || !strings.Contains(msg, "server kong/new1 is DOWN") || !strings.Contains(msg, "want it serving") {
				t.Fatalf("shift to a node that never came up: %+v", c)
			}
			// Nothing moved: all traffic is still on the old node.
			if vc, _ := h.VerifyWeights(ctx, traffic.Split(0)); !vc.OK {
				t.Fatalf("weights moved although the new node is DOWN: %v", vc.Missing)
			}
		})
	}
}
