package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kongbot/kongbot/localslack"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

const serveConfig = `
store: {path: %[1]q}
admin: {listen: "127.0.0.1:0"}
http: {listen: "127.0.0.1:0"}
slack:
  bot_token_env: SERVE_TEST_BOT
  app_token_env: SERVE_TEST_APP
  api_url: %[2]q
channels: {runs: C0KONGUPG1}
approvers: {user_groups: ["@kong-leads"]}
gateways:
  - name: prod
    datastore: {dsn_env: SERVE_TEST_DSN}
    generations:
      "0.13.1": {nodes: [{name: a, admin_url: "http://127.0.0.1:1", proxy_url: "http://127.0.0.1:2"}]}
      "0.14.1": {nodes: [{name: b, admin_url: "http://127.0.0.1:3", proxy_url: "http://127.0.0.1:4"}]}
    migrations:
      "0.14.1": {argv: [kong, migrations, "{{.Verb}}"]}
    traffic: {front: {url: "http://127.0.0.1:5/"}}
`

func TestServeUsageAndConfigProblems(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("store: {path: /tmp/x.db}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no config", nil, 2, "usage: kongbot serve --config FILE"},
		{"extra argument", []string{"--config", bad, "now"}, 2, "usage"},
		{"missing file", []string{"--config", filepath.Join(dir, "nope.yaml")}, 1, "reading config"},
		{"problems listed", []string{"--config", bad}, 1, "admin.listen: missing"},
		{"bad log level", []string{"--config", bad, "--log-level", "loud"}, 1, `log.level: "loud" is not debug, info, warn or error`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out lockedBuffer
			if code := runServe(context.Background(), tc.args, &out); code != tc.code || !strings.Contains(out.String(), tc.want) {
				t.Fatalf("exit %d, want %d; output %q should contain %q", code, tc.code, out.String(), tc.want)
			}
		})
	}
}

// TestServeStartsAndStopsOnCancel runs the real serve path against a
// localslack workspace: JSON logs, health on the configured listener, a
// clean stop (exit 0) when the context ends, and no token in the logs.
func TestServeStartsAndStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const bot, app, dsnPass = "xoxb-serve-test-bot-token", "xapp-serve-test-app-token", "dsn-pass-serve-test"
	ls := localslack.New(localslack.Options{BotToken: bot, AppToken: app})
	if err := ls.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	t.Setenv("SERVE_TEST_BOT", bot)
	t.Setenv("SERVE_TEST_APP", app)
	t.Setenv("SERVE_TEST_DSN", "postgres://kong:"+dsnPass+"@127.0.0.1:1/kong")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "kongbot.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, serveConfig, filepath.Join(dir, "kongbot.db"), ls.APIURL()), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan int, 1)
	go func() { done <- runServe(runCtx, []string{"--config", cfg, "--log-level", "debug"}, &logs) }()

	var addr string
	deadline := time.Now().Add(30 * time.Second)
	for addr == "" {
		if time.Now().After(deadline) {
			t.Fatalf("no http listener logged:\n%s", logs.String())
		}
		for _, line := range strings.Split(logs.String(), "\n") {
			var rec struct {
				Msg, Listener, Addr string
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "listening" && rec.Listener == "http" {
				addr = rec.Addr
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("readyz %d %s", resp.StatusCode, b)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("serve exit %d:\n%s", code, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
	out := logs.String()
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if !json.Valid([]byte(line)) {
			t.Fatalf("log line is not JSON: %q", line)
		}
	}
	for _, want := range []string{`"msg":"kongbot starting"`, `"msg":"kongbot stopped"`} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %s:\n%s", want, out)
		}
	}
	for _, secret := range []string{bot, app, dsnPass} {
		if strings.Contains(out, secret) {
			t.Errorf("logs hold a secret %q", secret[:8])
		}
	}
}
