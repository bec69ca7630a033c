package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kongbot/kongbot/admin"
	"github.com/kongbot/kongbot/steps"
	"github.com/kongbot/kongbot/store"
)

// deadAddr is a loopback address where nothing listens.
func deadAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// seedStore writes one run of hop 1 with two audit entries.
func seedStore(t *testing.T, path string) {
	t.Helper()
	st, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	plan, err := steps.PlanPath("0.13.1", "0.14.1")
	if err != nil {
		t.Fatal(err)
	}
	run := steps.NewRun("r1", "prod", "UREQ", "C0RUNS", plan, steps.Inventory{}, false, time.Now())
	data, _ := json.Marshal(run)
	if _, err := st.Commit(context.Background(), store.Change{
		Run:   &store.Run{ID: "r1", Gateway: "prod", Status: string(run.Status), Requester: "UREQ", Data: data},
		Audit: []store.AuditEntry{{Kind: "run-created", Actor: "UREQ", Text: "UREQ asked to upgrade prod"}, {Kind: "start", Actor: "UREQ", Text: "start"}},
	}); err != nil {
		t.Fatal(err)
	}
}

func runCLI(t *testing.T, fn func(context.Context, []string, *bytes.Buffer, *bytes.Buffer) int, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := fn(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func runsCmd(ctx context.Context, args []string, out, errb *bytes.Buffer) int {
	return runRuns(ctx, args, out, errb)
}

func storeCmd(ctx context.Context, args []string, out, errb *bytes.Buffer) int {
	return runStore(ctx, args, out, errb)
}

func TestRunsFromTheFileWhenTheBotIsNotRunning(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "kongbot.db")
	seedStore(t, db)
	dead := deadAddr(t)
	tests := []struct {
		args     []string
		code     int
		contains []string
	}{
		{[]string{"list", "--store", db, "--admin", dead}, 0, []string{"RUN", "r1", "prod", "pending", "UREQ"}},
		{[]string{"show", "r1", "--store", db, "--admin", dead}, 0, []string{"run r1: prod 0.13.1 -> 0.14.1, pending", "hop1.migrations-up", "hop1.decommission-old"}},
		{[]string{"audit", "r1", "--verify", "--store", db, "--admin", dead}, 0, []string{"run-created", "UREQ asked to upgrade prod", "run r1's chain: verified, 2 entries", "whole audit log: verified, 2 entries"}},
		{[]string{"show", "r9", "--store", db, "--admin", dead}, 1, []string{"run r9: not found"}},
		{[]string{"list", "--admin", dead}, 1, []string{"no store file is known"}},
		{[]string{"frobnicate"}, 2, []string{"usage: kongbot runs"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, out, errs := runCLI(t, runsCmd, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, out, errs)
			}
			for _, want := range tt.contains {
				if !strings.Contains(out+errs, want) {
					t.Errorf("output lacks %q:\n%s%s", want, out, errs)
				}
			}
		})
	}
}

func TestRunsWhileTheBotHoldsTheStore(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "kongbot.db")
	seedStore(t, db)
	bot, err := store.Open(db, store.Options{}) // the bot holds the file
	if err != nil {
		t.Fatal(err)
	}
	defer bot.Close()

	// No admin endpoint: a clear message naming both ways that failed.
	dead := deadAddr(t)
	code, _, errs := runCLI(t, runsCmd, "list", "--store", db, "--admin", dead, "--timeout", "100ms")
	if code != 1 || !strings.Contains(errs, "is held by another process (is kongbot already running?)") ||
		!strings.Contains(errs, "no kongbot admin endpoint answered at "+dead) {
		t.Fatalf("exit %d:\n%s", code, errs)
	}

	// With the bot's admin endpoint: everything goes through it.
	srv := httptest.NewServer(admin.Handler(bot, nil))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	code, out, errs := runCLI(t, runsCmd, "list", "--store", db, "--admin", addr)
	if code != 0 || !strings.Contains(out, "r1") || strings.Contains(errs, "read "+db) {
		t.Fatalf("exit %d:\n%s%s", code, out, errs)
	}
	backup := filepath.Join(dir, "backup.db")
	code, out, errs = runCLI(t, storeCmd, "backup", backup, "--admin", addr)
	if code != 0 || !strings.Contains(out, "backup written to "+backup+": ") || !strings.Contains(out, "1 runs, 2 audit entries") {
		t.Fatalf("exit %d:\n%s%s", code, out, errs)
	}
	if _, err := os.Stat(backup); err != nil {
		t.Fatal(err)
	}
}

func TestBackupFromTheFile(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "kongbot.db")
	seedStore(t, db)
	backup := filepath.Join(dir, "b", "..", "backup.db")
	code, out, errs := runCLI(t, storeCmd, "backup", backup, "--store", db, "--admin", deadAddr(t))
	if code != 0 || !strings.Contains(out, "verified") {
		t.Fatalf("exit %d:\n%s%s", code, out, errs)
	}
	b, err := store.Open(filepath.Join(dir, "backup.db"), store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.Run(context.Background(), "r1"); err != nil {
		t.Fatal(err)
	}
}

func TestAuditVerifyReportsTampering(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "kongbot.db")
	seedStore(t, db)
	raw, err := bolt.Open(db, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = raw.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("audit"))
		k, v := b.Cursor().First()
		var e map[string]any
		_ = json.Unmarshal(v, &e)
		e["actor"] = "UMALLORY"
		nv, _ := json.Marshal(e)
		return b.Put(k, nv)
	})
	raw.Close()
	if err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCLI(t, runsCmd, "audit", "r1", "--verify", "--store", db, "--admin", deadAddr(t))
	if code != 1 || !strings.Contains(out, "run r1's chain: BROKEN at entry 1 (run r1): content does not match its hash") {
		t.Fatalf("exit %d:\n%s%s", code, out, errs)
	}
}

func TestConfigCheck(t *testing.T) {
	var out, errb bytes.Buffer
	t.Setenv("KONGBOT_SLACK_BOT_TOKEN", "xoxb")
	t.Setenv("KONGBOT_SLACK_APP_TOKEN", "xapp")
	t.Setenv("KONGBOT_PROD_PG_DSN", "postgres://kong:pw@db/kong")
	if code := runConfig([]string{"check", "../../config/example.yaml"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "ok (gateways: prod") {
		t.Fatalf("exit %d: %s%s", code, out.String(), errb.String())
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	_ = os.WriteFile(bad, []byte("store: {path: x}\nadmin: {listen: \"0.0.0.0:1\"}\ngateways: []\n"), 0o600)
	out.Reset()
	code := runConfig([]string{"check", bad}, &out, &errb)
	for _, want := range []string{"admin.listen:", "gateways: no gateway is configured", "approvers: nobody is listed", "channels.runs: missing"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if code != 1 {
		t.Fatalf("exit %d", code)
	}
}
