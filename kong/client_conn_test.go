package kong

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// TestAdminReusesConnections checks that Admin API calls whose answer is not
// decoded (out == nil) or not read to the end still leave the connection
// reusable: one connection for many sequential calls.
func TestAdminReusesConnections(t *testing.T) {
	tests := []struct {
		name string
		out  func() any
	}{
		{"answer ignored", func() any { return nil }},
		{"answer decoded", func() any { return &map[string]any{} }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var conns atomic.Int32
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				// Trailing whitespace after the JSON value: a decoder
				// stops before it.
				_, _ = w.Write([]byte(`{"id":"r1","methods":["GET"]}` + "\n\n\n"))
			}))
			srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
				if s == http.StateNew {
					conns.Add(1)
				}
			}
			srv.Start()
			defer srv.Close()
			tr := http.DefaultTransport.(*http.Transport).Clone()
			defer tr.CloseIdleConnections()
			a, err := newAdmin(srv.URL, &http.Client{Transport: tr}, "", "", 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 20; i++ {
				if err := a.do(context.Background(), http.MethodPatch, "/routes/r1", map[string]any{"methods": []string{"GET"}}, tc.out()); err != nil {
					t.Fatal(err)
				}
			}
			if n := conns.Load(); n != 1 {
				t.Fatalf("20 calls opened %d connections, want 1", n)
			}
		})
	}
}
