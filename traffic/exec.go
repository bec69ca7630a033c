package traffic

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kongbot/kongbot/steps"
)

// ExecOptions configure the exec hook backend: the operator's own script.
//
// The hook is run as argv, never through a shell:
//
//	<Command...> shift OLD_PCT NEW_PCT   exit 0 once the split is in place
//	<Command...> health                  (when Health) print HealthReport JSON
//	<Command...> drain | undrain         (when Drain) take the old generation
//	                                     out of / back into service
type ExecOptions struct {
	Command []string
	Health  bool
	Drain   bool
	// Env is added to the bot's environment for the hook; Dir is its
	// working directory.
	Env []string
	Dir string
	// Timeout bounds each run; on expiry the whole process group is killed.
	// Default 60s.
	Timeout time.Duration
	// MaxOutput is how much of each of stdout and stderr is kept (the
	// tail); default 64 KiB.
	MaxOutput int
	// Share, when its URL is set, verifies weights from the outside if the
	// hook's health report does not include them.
	Share ShareProbe
}

// HealthReport is what `hook health` prints on stdout: cumulative counters
// per generation, and optionally the weights and drain state it sees.
//
//	{"old": {"responses": 1200, "status_5xx": 1, "sessions": 3, "latency_ms": 12.5},
//	 "new": {"responses": 80, "status_5xx": 0, "sessions": 1, "latency_ms": 14},
//	 "weights": {"old": 95, "new": 5}, "old_drained": false}
type HealthReport struct {
	Old        HookGen  `json:"old"`
	New        HookGen  `json:"new"`
	Weights    *Weights `json:"weights,omitempty"`
	OldDrained *bool    `json:"old_drained,omitempty"`
}

// HookGen is one generation in a HealthReport. LatencyMS is the hook's own
// latency figure (it should be a p95).
type HookGen struct {
	Responses int64   `json:"responses"`
	Status5xx int64   `json:"status_5xx"`
	Errors    int64   `json:"errors,omitempty"` // no proper answer (connect/reset)
	Sessions  int64   `json:"sessions"`
	LatencyMS float64 `json:"latency_ms"`
}

// Exec is a Backend that runs the operator's hook.
type Exec struct{ o ExecOptions }

var _ Backend = (*Exec)(nil)

// NewExec checks the options.
func NewExec(o ExecOptions) (*Exec, error) {
	if len(o.Command) == 0 || o.Command[0] == "" {
		return nil, errors.New("exec backend: command is empty")
	}
	if o.Timeout <= 0 {
		o.Timeout = 60 * time.Second
	}
	if o.MaxOutput <= 0 {
		o.MaxOutput = 64 << 10
	}
	if o.Share.URL != "" {
		if err := o.Share.Validate(); err != nil {
			return nil, fmt.Errorf("exec backend: %w", err)
		}
	}
	return &Exec{o: o}, nil
}

// Kind implements Backend.
func (e *Exec) Kind() string { return "exec" }

// HookError is a hook run that failed: its exit code and the tail of what it
// printed.
type HookError struct {
	Args     []string
	ExitCode int // -1 when killed or not started
	Stdout   string
	Stderr   string
	Err      error
}

func (e *HookError) Error() string {
	msg := fmt.Sprintf("hook %s: %v", strings.Join(e.Args, " "), e.Err)
	if s := strings.TrimSpace(e.Stderr); s != "" {
		msg += ": " + lastLine(s)
	}
	return msg
}

func (e *HookError) Unwrap() error { return e.Err }

func lastLine(s string) string {
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// Run runs the hook with args appended and returns its stdout.
func (e *Exec) Run(ctx context.Context, args ...string) (string, error) {
	argv := append(append([]string{}, e.o.Command...), args...)
	rctx, cancel := context.WithTimeout(ctx, e.o.Timeout)
	defer cancel()
	cmd := exec.CommandContext(rctx, argv[0], argv[1:]...)
	cmd.Dir = e.o.Dir
	if len(e.o.Env) > 0 {
		cmd.Env = append(cmd.Environ(), e.o.Env...)
	}
	// Own process group, so a timeout kills whatever the script started too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// If a grandchild escaped the group and holds the pipes, stop waiting.
	cmd.WaitDelay = 2 * time.Second
	stdout, stderr := &tailBuffer{max: e.o.MaxOutput}, &tailBuffer{max: e.o.MaxOutput}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	err := cmd.Run()
	if err == nil {
		return stdout.String(), nil
	}
	he := &HookError{Args: argv, ExitCode: -1, Stdout: stdout.String(), Stderr: stderr.String(), Err: err}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		he.Err = ctx.Err()
	case errors.Is(rctx.Err(), context.DeadlineExceeded):
		he.Err = fmt.Errorf("%w after %s (process group killed)", ErrTimeout, e.o.Timeout)
	case errors.As(err, &ee):
		he.ExitCode = ee.ExitCode()
	}
	return he.Stdout, he
}

// SetWeights implements Backend: `hook shift OLD NEW`.
func (e *Exec) SetWeights(ctx context.Context, w Weights) (Move, error) {
	if err := w.Validate(); err != nil {
		return Move{}, err
	}
	_, err := e.Run(ctx, "shift", strconv.Itoa(w.Old), strconv.Itoa(w.New))
	return Move{}, err
}

// Health runs `hook health` and parses its report.
func (e *Exec) Health(ctx context.Context) (HealthReport, error) {
	if !e.o.Health {
		return HealthReport{}, ErrNoFigures
	}
	out, err := e.Run(ctx, "health")
	if err != nil {
		return HealthReport{}, err
	}
	var r HealthReport
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return HealthReport{}, fmt.Errorf("hook health printed something that is not a health report (%q): %w", firstLine(out), err)
	}
	if r.Weights != nil {
		if err := r.Weights.Validate(); err != nil {
			return HealthReport{}, fmt.Errorf("hook health: %w", err)
		}
	}
	return r, nil
}

// VerifyWeights implements Backend: from the hook's health report when it
// includes weights, else with the share probe, else it trusts the hook's
// exit status and says so.
func (e *Exec) VerifyWeights(ctx context.Context, want Weights) (steps.Check, error) {
	if err := want.Validate(); err != nil {
		return steps.Check{}, err
	}
	r, err := e.Health(ctx)
	switch {
	case err == nil && r.Weights != nil:
		c := steps.Check{OK: *r.Weights == want, Facts: []steps.Fact{
			{Name: "wanted", Value: want.String()},
			{Name: "hook reports", Value: r.Weights.String()},
		}}
		if !c.OK {
			c.Missing = []string{fmt.Sprintf("hook reports weights %s, want %s", r.Weights, want)}
		}
		return c, nil
	case err != nil && !errors.Is(err, ErrNoFigures):
		return steps.Check{}, err
	case e.o.Share.URL != "":
		return e.o.Share.Verify(ctx, want)
	}
	return steps.Check{OK: true, Facts: []steps.Fact{
		{Name: "wanted", Value: want.String()},
		{Name: "verified by", Value: "the hook's exit status only (it reports no weights and no share probe is configured)"},
	}}, nil
}

// Sample implements Backend from the hook's health report.
func (e *Exec) Sample(ctx context.Context) (Sample, error) {
	r, err := e.Health(ctx)
	if err != nil {
		return Sample{}, err
	}
	conv := func(g HookGen) GenStats {
		return GenStats{Responses: g.Responses, Status5xx: g.Status5xx, Errors: g.Errors, Sessions: g.Sessions,
			Latency: time.Duration(g.LatencyMS * float64(time.Millisecond)), LatencyKind: "hook latency_ms"}
	}
	return Sample{At: time.Now(), Source: "exec health", Old: conv(r.Old), New: conv(r.New)}, nil
}

// Drain implements Backend: `hook drain` when the hook has it, else the
// split old 0 / new 100 is all the hook can do.
func (e *Exec) Drain(ctx context.Context) (Move, error) {
	if !e.o.Drain {
		return e.SetWeights(ctx, Split(100))
	}
	_, err := e.Run(ctx, "drain")
	return Move{}, err
}

// Undrain implements Backend.
func (e *Exec) Undrain(ctx context.Context) (Move, error) {
	if !e.o.Drain {
		return Move{}, nil
	}
	_, err := e.Run(ctx, "undrain")
	return Move{}, err
}

// Decommissioned implements Backend from the health report: weights old 0,
// drained when the hook reports it, no sessions on the old generation.
func (e *Exec) Decommissioned(ctx context.Context) (steps.Check, error) {
	r, err := e.Health(ctx)
	if errors.Is(err, ErrNoFigures) {
		if e.o.Share.URL != "" {
			c, err := e.o.Share.Verify(ctx, Split(100))
			c.Facts = append(c.Facts, steps.Fact{Name: "old sessions", Value: "not visible: the hook has no health command"})
			return c, err
		}
		return steps.Check{Missing: []string{"the hook has no health command and no share probe is configured: the bot cannot see the old generation's traffic; check by hand"}}, nil
	}
	if err != nil {
		return steps.Check{}, err
	}
	c := steps.Check{Facts: []steps.Fact{{Name: "old sessions", Value: strconv.FormatInt(r.Old.Sessions, 10)}}}
	if r.Weights == nil {
		c.Missing = append(c.Missing, "the hook's health report has no weights")
	} else {
		c.Facts = append(c.Facts, steps.Fact{Name: "weights", Value: r.Weights.String()})
		if r.Weights.Old != 0 {
			c.Missing = append(c.Missing, fmt.Sprintf("old generation weight is %d %%, want 0", r.Weights.Old))
		}
	}
	if r.OldDrained != nil && !*r.OldDrained {
		c.Missing = append(c.Missing, "the hook reports the old generation is not drained")
	}
	if r.Old.Sessions != 0 {
		c.Missing = append(c.Missing, fmt.Sprintf("old generation still has %d current sessions", r.Old.Sessions))
	}
	c.OK = len(c.Missing) == 0
	return c, nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu      sync.Mutex
	max     int
	buf     []byte
	dropped int64
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.dropped += int64(over)
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dropped > 0 {
		return fmt.Sprintf("[%d bytes dropped]\n%s", b.dropped, b.buf)
	}
	return string(b.buf)
}
