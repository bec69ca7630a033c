package kongsim

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestAdminFaults covers the admin side of the fault controls: 500s, a slow
// Admin API, and a stop through /__kongsim/fault.
func TestAdminFaults(t *testing.T) {
	k := newTestKong(t)
	k.mustMigrate(V103, "bootstrap", "22 executed")
	n := k.start(V103)

	tests := []struct {
		name string
		body string
		want int
	}{
		{"bad json", `{"admin_status":`, http.StatusBadRequest},
		{"unknown field", `{"boom":1}`, http.StatusBadRequest},
		{"share out of range", `{"proxy_fail_share":1.5}`, http.StatusBadRequest},
		{"status out of range", `{"admin_status":42}`, http.StatusBadRequest},
		{"500s", `{"admin_status":500}`, http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.Post(n.AdminURL()+"/__kongsim/fault", "application/json", strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
	if f := n.Fault(); f.AdminStatus != 500 {
		t.Fatalf("fault not applied: %+v", f)
	}
	got := k.call(n, "GET", "/services", nil, 500)
	if got["message"] != "An unexpected error occurred" {
		t.Fatalf("500 body: %v", got)
	}
	// The control endpoint itself keeps answering while the node fails.
	resp, err := http.Get(n.AdminURL() + "/__kongsim/fault")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET fault: %v %v", resp, err)
	}
	resp.Body.Close()

	n.SetFault(Fault{AdminDelay: 3 * time.Second})
	client := &http.Client{Timeout: 300 * time.Millisecond}
	if _, err := client.Get(n.AdminURL() + "/status"); err == nil {
		t.Fatal("a slow node answered before the client gave up")
	}
	n.SetFault(Fault{})
	k.call(n, "GET", "/status", nil, 200)

	resp, err = http.Post(n.AdminURL()+"/__kongsim/fault", "application/json", strings.NewReader(`{"stop":true}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	select {
	case <-n.Done():
	case <-k.ctx.Done():
		t.Fatal("node did not stop")
	}
	if _, err := http.Get(n.AdminURL() + "/status"); err == nil {
		t.Fatal("stopped node still answers")
	}
}
