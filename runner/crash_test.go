package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kongbot/kongbot/steps"
	"github.com/kongbot/kongbot/store"
)

// The crash test runs the runner in a child process (this test binary,
// re-executed with KONGBOT_CRASH_CHILD=1), which blocks at a chosen crash
// point; the parent SIGKILLs it there and starts a fresh child on the same
// store file, which resumes the run. Points are named after where they are:
// inside a step's side effect (world.Migrate, world.EnableTermination),
// right after a transition is committed, or right before an effect runs.

const (
	envChild   = "KONGBOT_CRASH_CHILD"
	envDir     = "KONGBOT_CRASH_DIR"
	envCrashAt = "KONGBOT_CRASH_AT"
)

func TestCrashChild(t *testing.T) {
	if os.Getenv(envChild) != "1" {
		t.Skip("the crash test's child process; run by TestCrashResume")
	}
	dir := os.Getenv(envDir)
	st, r, w, err := openRunner(dir, os.Getenv(envCrashAt))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	defer r.Close()
	run, err := drive(context.Background(), r, w, st)
	if err != nil {
		t.Fatal(err)
	}
	if run.Status != steps.RunSucceeded {
		t.Fatalf("run ended %s", run.Status)
	}
}

// child runs one child process; with crashAt set it waits until the child
// reports it reached the point, then SIGKILLs it.
func child(t *testing.T, dir, crashAt string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.v")
	cmd.Env = append(os.Environ(), envChild+"=1", envDir+"="+dir, envCrashAt+"="+crashAt)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	marker := filepath.Join(dir, "crashed-at")
	if crashAt == "" {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("resuming child failed: %v\n%s", err, out.String())
			}
		case <-time.After(2 * time.Minute):
			_ = cmd.Process.Kill()
			t.Fatalf("resuming child did not finish\n%s", out.String())
		}
		return
	}
	deadline := time.After(2 * time.Minute)
	for {
		if b, err := os.ReadFile(marker); err == nil && string(b) == crashAt {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("child exited (%v) without reaching crash point %s\n%s", err, crashAt, out.String())
		case <-deadline:
			_ = cmd.Process.Kill()
			t.Fatalf("child never reached %s\n%s", crashAt, out.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := <-done
	if ee, ok := err.(*exec.ExitError); !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die of SIGKILL: %v", err)
	}
	if err := os.Remove(marker); err != nil {
		t.Fatal(err)
	}
}

func TestCrashResume(t *testing.T) {
	if os.Getenv(envChild) == "1" {
		t.Skip("child")
	}
	if testing.Short() {
		t.Skip("spawns processes")
	}
	tests := []struct {
		name    string
		crashes []string
		// interrupted: the resume must find a non-idempotent step not done
		// and leave it failed "interrupted" for a person to retry.
		interrupted []string
		// reposted: approval requests the resume must post again.
		reposted []string
		// calls of the migration's Do: 1, plus 1 when a person retried
		// after a crash inside it (never a re-run on the bot's own).
		calls int
	}{
		{name: "inside migrations up, before its effect", crashes: []string{"migrate:before"},
			interrupted: []string{"hop1.migrations-up"}, calls: 2},
		{name: "inside migrations up, after its effect", crashes: []string{"migrate:after"}},
		{name: "after the intent, before migrations up runs", crashes: []string{"before-effect:execute-step:hop1.migrations-up"},
			interrupted: []string{"hop1.migrations-up"}},
		{name: "inside termination on, before the journal write", crashes: []string{"termination:after"}},
		{name: "between steps, while awaiting approval", crashes: []string{"after-commit:step-succeeded:hop1.snapshot"},
			reposted: []string{"hop1.termination-on"}},
		{name: "between steps inside the outage group", crashes: []string{"after-commit:step-succeeded:hop1.termination-on"},
			interrupted: []string{"hop1.migrations-up"}},
		{name: "several crashes in one run", crashes: []string{
			"after-commit:step-succeeded:hop1.snapshot",
			"termination:after",
			"migrate:after",
			"after-commit:step-succeeded:hop1.traffic-switch",
			"before-effect:verify-step:hop1.decommission-old",
		}, reposted: []string{"hop1.termination-on"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, point := range tt.crashes {
				child(t, dir, point)
			}
			child(t, dir, "")

			ctx := context.Background()
			st, err := store.Open(filepath.Join(dir, "kongbot.db"), store.Options{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			rec, err := st.Run(ctx, "r1")
			if err != nil || rec.Status != string(steps.RunSucceeded) || !rec.Terminal {
				t.Fatalf("run = %+v, %v", rec, err)
			}
			// No side effect happened twice: the non-idempotent migration
			// once, and the idempotent ones found their earlier work.
			want := map[string]int{"migrate-0.14.1-up": 1, "termination-create": 1, "traffic-shift": 1, "termination-delete": 1}
			got := ledgerCounts(dir)
			for k, n := range want {
				if got[k] != n {
					t.Errorf("ledger %s = %d, want %d (ledger %v)", k, got[k], n, got)
				}
			}
			for _, v := range []func(context.Context) (store.Verification, error){
				st.VerifyAudit,
				func(ctx context.Context) (store.Verification, error) { return st.VerifyRunAudit(ctx, "r1") },
			} {
				if res, err := v(ctx); err != nil || !res.OK() {
					t.Fatalf("audit chain: %+v %v", res.Broken, err)
				}
			}
			audit, _ := st.Audit(ctx, "r1")
			var retried, resumed []string
			for _, e := range audit {
				switch e.Kind {
				case "retry":
					retried = append(retried, e.Step)
				case "resume":
					resumed = append(resumed, e.Step)
				}
			}
			if len(resumed) != len(tt.crashes) {
				t.Errorf("%d resume entries for %d crashes", len(resumed), len(tt.crashes))
			}
			// The migration's Do ran once, plus once per retry a person
			// asked for; never again on its own.
			wantCalls := max(tt.calls, 1)
			if calls := got["call migrate-0.14.1-up"]; calls != wantCalls {
				t.Errorf("migrations up was called %d times, want %d", calls, wantCalls)
			}
			if strings.Join(retried, ",") != strings.Join(tt.interrupted, ",") {
				t.Errorf("retried %v, want %v (interrupted steps must wait for a person)", retried, tt.interrupted)
			}
			msgs, _ := st.Outbox(ctx, "r1")
			for _, step := range tt.reposted {
				n := 0
				for _, m := range msgs {
					var e steps.Effect
					_ = json.Unmarshal(m.Payload, &e)
					if e.Message == steps.MsgApprovalRequest && e.Step == step {
						n++
					}
				}
				if n < 2 {
					t.Errorf("approval request for %s posted %d times, want it re-posted after the crash", step, n)
				}
			}
			if locks, _ := st.Locks(ctx); len(locks) != 0 {
				t.Errorf("locks left: %+v", locks)
			}
		})
	}
}
