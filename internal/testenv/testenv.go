// Package testenv provides what the end-to-end tests of the bot (package
// bot) and of the assembled binary (internal/app) share: a localslack
// workspace started for one test, a log sink the test reads while the code
// under test writes to it (its tail is shown when the test fails), polling
// with a deadline, the two Slack gestures the tests drive a kongbot with (a
// slash command and a button click, both required to be acknowledged), and
// waits on a run's state and on its outbox.
//
// Only tests import it: no package of a binary may (TestNotInBinaries
// checks cmd/...), as it links package testing.
package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/kongbot/kongbot/localslack"
	"github.com/kongbot/kongbot/runner"
	"github.com/kongbot/kongbot/steps"
	"github.com/kongbot/kongbot/store"
)

// EnvLog, when set in the environment, also copies the logs of the code
// under test to stderr as they are written.
const EnvLog = "KONGBOT_TEST_LOG"

// Options shape an Env; a zero field takes the default named beside it.
type Options struct {
	// Timeout bounds the whole test: Env.Ctx ends after it (90 s).
	Timeout time.Duration
	// Wait is how long Eventually polls before the test fails (30 s), and
	// Poll how often (15 ms).
	Wait, Poll time.Duration
	// Slack configures the localslack workspace (its tokens and secret).
	Slack localslack.Options
	// LogName heads the log tail shown when the test fails ("log"), and
	// LogTail is how many bytes of it are shown (30,000).
	LogName string
	LogTail int
}

// Env is one test's Slack workspace, log sink and test context.
type Env struct {
	T     testing.TB
	Ctx   context.Context
	Slack *localslack.Server
	Logs  *Logs

	wait, poll time.Duration
}

// New starts a localslack workspace for t. At cleanup (after the cleanups
// the test registers later, such as stopping its bot) it shows the log tail
// if t failed, closes the workspace and ends Ctx.
func New(t testing.TB, o Options) *Env {
	t.Helper()
	o.Timeout = orDefault(o.Timeout, 90*time.Second)
	o.Wait = orDefault(o.Wait, 30*time.Second)
	o.Poll = orDefault(o.Poll, 15*time.Millisecond)
	if o.LogName == "" {
		o.LogName = "log"
	}
	if o.LogTail <= 0 {
		o.LogTail = 30000
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.Timeout)
	t.Cleanup(cancel)
	e := &Env{T: t, Ctx: ctx, Slack: StartSlack(t, ctx, o.Slack), Logs: &Logs{}, wait: o.Wait, poll: o.Poll}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s:\n%s", o.LogName, Tail(e.Logs.String(), o.LogTail))
		}
	})
	return e
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// StartSlack starts a localslack workspace that is closed when t ends.
func StartSlack(t testing.TB, ctx context.Context, o localslack.Options) *localslack.Server {
	t.Helper()
	ls := localslack.New(o)
	if err := ls.Start(ctx); err != nil {
		t.Fatalf("localslack: %v", err)
	}
	t.Cleanup(func() { _ = ls.Close() })
	return ls
}

// RouteHTTP sends the workspace's HTTP-mode deliveries (commands,
// interactions, events) to a bot serving Slack's paths at base
// ("http://host:port").
func (e *Env) RouteHTTP(base string) {
	e.Slack.SetEndpoints(localslack.Endpoints{Commands: base + "/slack/commands",
		Interactions: base + "/slack/interactions", Events: base + "/slack/events"})
}

// Eventually polls cond until it holds; the test fails when Options.Wait
// passes or Ctx ends first. cond may read anything the test can see (the
// store, the runner, the workspace).
func (e *Env) Eventually(what string, cond func() bool) {
	e.T.Helper()
	deadline := time.Now().Add(e.wait)
	for !cond() {
		if time.Now().After(deadline) || e.Ctx.Err() != nil {
			e.T.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(e.poll)
	}
}

// Command has user type text (a /kong command) in the runs channel; the
// test fails unless the bot acknowledged it.
func (e *Env) Command(user, text string, opts ...localslack.DeliverOption) localslack.Delivery {
	e.T.Helper()
	d, err := e.Slack.SlashCommand(e.Ctx, user, localslack.ChannelID, text, opts...)
	if err != nil || !d.Acked {
		e.T.Fatalf("%s: %v (delivery %+v)", text, err, d)
	}
	return d
}

// Click has user press the button actionID of m (a message in the runs
// channel); the test fails if m has no such button or the bot did not
// acknowledge the click.
func (e *Env) Click(user string, m localslack.Message, actionID string, opts ...localslack.DeliverOption) localslack.Delivery {
	e.T.Helper()
	val, ok := ButtonValue(m, actionID)
	if !ok {
		e.T.Fatalf("message %s has no %s button: %s\n%s", m.TS, actionID, m.Text, m.Blocks)
	}
	d, err := e.Slack.Click(e.Ctx, user, localslack.ChannelID, m.TS, actionID, val, opts...)
	if err != nil {
		e.T.Fatalf("click %s by %s: %v", actionID, user, err)
	}
	if !d.Acked {
		e.T.Fatalf("click %s not acked: %+v", actionID, d)
	}
	return d
}

// WaitRun waits until the run id, as rn loads it, meets cond, and returns
// it.
func (e *Env) WaitRun(rn *runner.Runner, id, what string, cond func(steps.Run) bool) steps.Run {
	e.T.Helper()
	var run steps.Run
	e.Eventually(what, func() bool {
		r, _, err := rn.Load(e.Ctx, id)
		run = r
		return err == nil && cond(r)
	})
	return run
}

// Delivered waits until the run id has at least atLeast messages in st's
// outbox and every one of them is delivered.
func (e *Env) Delivered(st *store.Store, id string, atLeast int) {
	e.T.Helper()
	e.Eventually("outbox of "+id+" delivered", func() bool {
		msgs, err := st.Outbox(e.Ctx, id)
		if err != nil || len(msgs) < atLeast {
			return false
		}
		for _, m := range msgs {
			if !m.Delivered {
				return false
			}
		}
		return true
	})
}

// At is a WaitRun condition: the run has status at step.
func At(status steps.RunStatus, step string) func(steps.Run) bool {
	return func(r steps.Run) bool { return r.Status == status && r.Current == step }
}

// ButtonValue finds the value of the button actionID in a message's blocks.
func ButtonValue(m localslack.Message, actionID string) (string, bool) {
	var blocks []struct {
		Elements []struct {
			ActionID string `json:"action_id"`
			Value    string `json:"value"`
		} `json:"elements"`
	}
	_ = json.Unmarshal(m.Blocks, &blocks)
	for _, b := range blocks {
		for _, e := range b.Elements {
			if e.ActionID == actionID {
				return e.Value, true
			}
		}
	}
	return "", false
}

// ErrNotStopped is what a stop function returns when the code under test
// did not return in time.
var ErrNotStopped = errors.New("did not return after its context ended")

// Go runs run(ctx') in the background, ctx' a child of ctx. The returned
// stop ends ctx', waits up to wait for run to return and gives its error
// (ErrNotStopped if it did not return); later calls give the same answer.
func Go(ctx context.Context, wait time.Duration, run func(context.Context) error) (stop func() error) {
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- run(runCtx) }()
	var once sync.Once
	var err error
	return func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(wait):
				err = fmt.Errorf("%w within %s", ErrNotStopped, wait)
			}
		})
		return err
	}
}

// Logs is a log sink the test reads while the code under test writes.
type Logs struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *Logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String is everything written so far.
func (l *Logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Writer is where the code under test should log: l, and stderr too when
// EnvLog is set.
func (l *Logs) Writer() io.Writer {
	if os.Getenv(EnvLog) != "" {
		return io.MultiWriter(l, os.Stderr)
	}
	return l
}

// Tail is the last n bytes of s, marked as cut when it is longer.
func Tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
