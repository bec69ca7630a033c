package traffic_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kongbot/kongbot/steps"
	"github.com/kongbot/kongbot/traffic"
)

// hookScript is an operator's hook: it keeps the split in a state file and
// reports growing counters, so gates see traffic.
const hookScript = `#!/bin/sh
state="$HOOK_DIR/weights"
case "$1" in
shift)
  [ "$#" -eq 3 ] || { echo "usage: shift OLD NEW" >&2; exit 2; }
  echo "$2 $3" > "$state"
  echo "moved to $2/$3"
  ;;
health)
  read old new < "$state" 2>/dev/null || { old=100; new=0; }
  n=$(cat "$HOOK_DIR/calls" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$HOOK_DIR/calls"
  sessions=0; [ "$old" -gt 0 ] && sessions=4
  printf '{"old":{"responses":%d,"status_5xx":0,"sessions":%d,"latency_ms":9},"new":{"responses":%d,"status_5xx":0,"sessions":1,"latency_ms":11.5},"weights":{"old":%d,"new":%d}}\n' $((n*100)) $sessions $((n*100)) "$old" "$new"
  ;;
*) echo "unknown verb $1" >&2; exit 2 ;;
esac
`

func writeScript(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestExecHook(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	hook := writeScript(t, dir, "hook.sh", hookScript)
	e, err := traffic.NewExec(traffic.ExecOptions{Command: []string{hook}, Health: true, Env: []string{"HOOK_DIR=" + dir}, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.SetWeights(ctx, traffic.Split(25)); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "weights")); string(got) != "75 25\n" {
		t.Fatalf("hook got %q, want argv shift 75 25", got)
	}
	c, err := e.VerifyWeights(ctx, traffic.Split(25))
	if err != nil || !c.OK {
		t.Fatalf("verify: %+v, %v", c, err)
	}
	if c, _ := e.VerifyWeights(ctx, traffic.Split(50)); c.OK {
		t.Fatal("verify of the wrong split passed")
	}
	s, err := e.Sample(ctx)
	if err != nil || s.New.Responses == 0 || s.New.Latency != 11500*time.Microsecond {
		t.Fatalf("sample: %+v, %v", s, err)
	}
	if c, _ := e.Decommissioned(ctx); c.OK {
		t.Fatal("decommissioned at 75 % old")
	}

	// The whole fast plan through the hook, gated on its health report.
	tr := newTraffic(t, &traffic.Gateway{
		Backend: e,
		Plans:   map[string]traffic.Plan{"hop1": {Fast: true, Stages: []traffic.Stage{{NewPct: 50, Bake: 300 * time.Millisecond}, {NewPct: 100, Bake: 300 * time.Millisecond}}}},
		Gates:   traffic.Gates{Interval: 100 * time.Millisecond, MinRequests: 100},
	})
	cs, err := tr.Shift(ctx, "prod", "hop1", newJournal(), &sink{t: t})
	if err != nil || !cs.OK {
		t.Fatalf("shift: %+v, %v", cs, err)
	}
	dc, err := tr.VerifyDecommissioned(ctx, "prod")
	if err != nil || !dc.OK {
		t.Fatalf("decommissioned: %+v, %v", dc, err)
	}
}

func TestExecHookFailures(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	tests := []struct {
		name    string
		script  string
		timeout time.Duration
		check   func(t *testing.T, err error)
	}{
		{
			name:   "fails",
			script: "#!/bin/sh\necho 'trying the LB'\necho 'lb-api: 403 forbidden' >&2\nexit 3\n",
			check: func(t *testing.T, err error) {
				var he *traffic.HookError
				if !errors.As(err, &he) || he.ExitCode != 3 || !strings.Contains(err.Error(), "lb-api: 403 forbidden") || !strings.Contains(he.Stdout, "trying the LB") {
					t.Fatalf("err = %v (%+v)", err, he)
				}
			},
		},
		{
			name: "hangs",
			// The hook starts a child that would outlive it; the whole
			// process group must go.
			script:  "#!/bin/sh\nsleep 300 &\necho $! > \"$HOOK_DIR/child\"\nwait\n",
			timeout: 500 * time.Millisecond,
			check: func(t *testing.T, err error) {
				if !errors.Is(err, traffic.ErrTimeout) {
					t.Fatalf("err = %v, want ErrTimeout", err)
				}
				raw, rerr := os.ReadFile(filepath.Join(dir, "child"))
				if rerr != nil {
					t.Fatal(rerr)
				}
				pid, _ := strconv.Atoi(strings.TrimSpace(string(raw)))
				waitFor(t, "hook's child killed", func() (bool, string) {
					st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
					if err != nil {
						return true, ""
					}
					// A zombie waiting for init to reap it is dead too.
					f := strings.Fields(string(st))
					return len(f) > 2 && (f[2] == "Z" || f[2] == "X"), "child " + strconv.Itoa(pid) + " is " + f[2]
				})
			},
		},
		{
			name:   "floods its output",
			script: "#!/bin/sh\nhead -c 3000000 /dev/zero | tr '\\0' 'x'\necho\necho last words >&2\nexit 1\n",
			check: func(t *testing.T, err error) {
				var he *traffic.HookError
				if !errors.As(err, &he) {
					t.Fatalf("err = %v", err)
				}
				if len(he.Stdout) > 1100 || !strings.Contains(he.Stdout, "bytes dropped") {
					t.Fatalf("stdout kept %d bytes, want the 1 KiB tail", len(he.Stdout))
				}
				if !strings.Contains(err.Error(), "last words") {
					t.Fatalf("err = %v", err)
				}
			},
		},
		{
			name:   "not executable",
			script: "",
			check: func(t *testing.T, err error) {
				if err == nil {
					t.Fatal("no error")
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hook := filepath.Join(dir, "missing-hook")
			if tt.script != "" {
				hook = writeScript(t, dir, strings.ReplaceAll(tt.name, " ", "-")+".sh", tt.script)
			}
			timeout := tt.timeout
			if timeout == 0 {
				timeout = 10 * time.Second
			}
			e, err := traffic.NewExec(traffic.ExecOptions{Command: []string{hook}, Env: []string{"HOOK_DIR=" + dir}, Timeout: timeout, MaxOutput: 1024})
			if err != nil {
				t.Fatal(err)
			}
			_, err = e.SetWeights(ctx, traffic.Split(5))
			tt.check(t, err)
		})
	}

	// Through Shift, a failing hook is an error naming the stage, and the
	// journal does not claim the stage.
	hook := writeScript(t, dir, "broken.sh", "#!/bin/sh\necho 'no route to lb' >&2\nexit 1\n")
	e, _ := traffic.NewExec(traffic.ExecOptions{Command: []string{hook}})
	tr := newTraffic(t, &traffic.Gateway{Backend: e, Plans: map[string]traffic.Plan{"hop1": traffic.FastPlan(time.Second)}})
	j := newJournal()
	_, err := tr.Shift(ctx, "prod", "hop1", j, &sink{t: t})
	if err == nil || !strings.Contains(err.Error(), "stage 1 of 1") || !strings.Contains(err.Error(), "no route to lb") {
		t.Fatalf("err = %v", err)
	}
	if v, _ := j.Get("traffic/hop1/good"); v != "" {
		t.Fatalf("journal good = %q after a failed move", v)
	}

	// Health figures that cannot be read, tick after tick, do not fail the
	// step and do not pass it: the stage is inconclusive, weights held.
	flaky := writeScript(t, dir, "flaky-health.sh", `#!/bin/sh
[ "$1" = health ] || exit 0
n=$(cat "$HOOK_DIR/health-calls" 2>/dev/null || echo 0); echo $((n+1)) > "$HOOK_DIR/health-calls"
# The first call (reading the weights back) works, then the LB API breaks.
[ "$n" -ge 1 ] && { echo 'lb api: 502' >&2; exit 1; }
echo '{"old":{},"new":{},"weights":{"old":0,"new":100}}'
`)
	e, _ = traffic.NewExec(traffic.ExecOptions{Command: []string{flaky}, Health: true, Env: []string{"HOOK_DIR=" + dir}})
	tr = newTraffic(t, &traffic.Gateway{Backend: e,
		Plans: map[string]traffic.Plan{"hop2": {Stages: []traffic.Stage{{NewPct: 100, Bake: time.Second}}}},
		Gates: traffic.Gates{Interval: 50 * time.Millisecond}})
	c, err := tr.Shift(ctx, "prod", "hop2", newJournal(), &sink{t: t})
	if err != nil || c.Pause == nil || c.Pause.Kind != steps.PauseInconclusive || !strings.Contains(c.Pause.Message, "health figures do not read (3 tries)") ||
		!strings.Contains(c.Pause.Message, "lb api: 502") {
		t.Fatalf("unreadable figures: %+v, %v", c, err)
	}

	// A health command that prints something else is a clear error.
	bad := writeScript(t, dir, "bad-health.sh", "#!/bin/sh\necho 'OK all good'\n")
	e, _ = traffic.NewExec(traffic.ExecOptions{Command: []string{bad}, Health: true})
	if _, err := e.Sample(ctx); err == nil || !strings.Contains(err.Error(), "not a health report") {
		t.Fatalf("bad health: %v", err)
	}
	// Without health and share probe, decommissioning cannot be verified.
	e, _ = traffic.NewExec(traffic.ExecOptions{Command: []string{bad}})
	if c, err := e.Decommissioned(ctx); err != nil || c.OK || len(c.Missing) == 0 {
		t.Fatalf("decommissioned without figures: %+v, %v", c, err)
	}
	if _, err := traffic.NewExec(traffic.ExecOptions{}); err == nil {
		t.Fatal("empty command accepted")
	}
}
