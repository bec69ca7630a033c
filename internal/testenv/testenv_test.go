package testenv

import (
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/kongbot/kongbot/localslack"
)

// TestNotInBinaries: no binary links this package (it links testing and
// starts servers on loopback ports).
func TestNotInBinaries(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH to list the binaries' packages")
	}
	out, err := exec.Command(goBin, "list", "-deps", "github.com/kongbot/kongbot/cmd/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 50 || !strings.Contains(string(out), "github.com/kongbot/kongbot/bot\n") {
		t.Fatalf("go list gave %d packages, not the binaries' dependencies:\n%s", len(deps), out)
	}
	for _, p := range deps {
		if p == "github.com/kongbot/kongbot/internal/testenv" {
			t.Fatalf("a binary under cmd/ links %s", p)
		}
	}
}

func TestButtonValue(t *testing.T) {
	blocks, _ := json.Marshal([]any{
		map[string]any{"type": "section", "text": map[string]any{"type": "mrkdwn", "text": "hi"}},
		map[string]any{"type": "actions", "elements": []any{
			map[string]any{"type": "button", "action_id": "step_approve", "value": "r1|hop1.x|fp"},
			map[string]any{"type": "button", "action_id": "step_reject", "value": "r1|hop1.x"},
		}},
	})
	m := localslack.Message{TS: "1.2", Blocks: blocks}
	tests := []struct {
		action, want string
		ok           bool
	}{
		{"step_approve", "r1|hop1.x|fp", true},
		{"step_reject", "r1|hop1.x", true},
		{"step_done", "", false},
	}
	for _, tc := range tests {
		if got, ok := ButtonValue(m, tc.action); got != tc.want || ok != tc.ok {
			t.Errorf("ButtonValue(%s) = %q, %v; want %q, %v", tc.action, got, ok, tc.want, tc.ok)
		}
	}
	if _, ok := ButtonValue(localslack.Message{Blocks: json.RawMessage(`not json`)}, "step_approve"); ok {
		t.Error("found a button in blocks that are not JSON")
	}
}

func TestGo(t *testing.T) {
	boom := errors.New("boom")
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	tests := []struct {
		name string
		run  func(ctx context.Context) error
		want func(error) bool
	}{
		{"returns its error once stopped", func(ctx context.Context) error { <-ctx.Done(); return boom },
			func(err error) bool { return errors.Is(err, boom) }},
		{"returns nil once stopped", func(ctx context.Context) error { <-ctx.Done(); return nil },
			func(err error) bool { return err == nil }},
		{"ignores its context", func(context.Context) error { <-release; return nil },
			func(err error) bool { return errors.Is(err, ErrNotStopped) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stop := Go(context.Background(), 50*time.Millisecond, tc.run)
			first := stop()
			if !tc.want(first) {
				t.Fatalf("stop() = %v", first)
			}
			if again := stop(); again != first {
				t.Fatalf("second stop() = %v, first %v", again, first)
			}
		})
	}
}

func TestLogsWriter(t *testing.T) {
	t.Setenv(EnvLog, "")
	l := &Logs{}
	if w := l.Writer(); w != l {
		t.Fatalf("Writer without %s = %T, want the sink itself", EnvLog, w)
	}
	t.Setenv(EnvLog, "1")
	if _, err := l.Writer().Write([]byte("line\n")); err != nil {
		t.Fatal(err)
	}
	if l.String() != "line\n" {
		t.Fatalf("sink holds %q after a write through the tee", l.String())
	}
}

func TestTail(t *testing.T) {
	tests := []struct {
		s    string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"0123456789abc", 3, "…abc"},
	}
	for _, tc := range tests {
		if got := Tail(tc.s, tc.n); got != tc.want {
			t.Errorf("Tail(%q, %d) = %q, want %q", tc.s, tc.n, got, tc.want)
		}
	}
}
