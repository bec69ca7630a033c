package runner

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kongbot/kongbot/steps"
	"github.com/kongbot/kongbot/store"
)

const (
	requester = "UREQ"
	operator  = "UOPS"
)

var leads = []string{"ULEAD1", "ULEAD2"}

func testRules() steps.ApprovalRules {
	r := steps.DefaultRules()
	// Timers are not what these tests exercise; the driver acts instead.
	r.RemindAfter, r.PollManual = time.Hour, time.Hour
	return r
}

type hooks struct {
	w *world
}

func (h hooks) Hooks() Hooks {
	return Hooks{
		AfterCommit: func(run steps.Run, ev steps.Event) {
			h.w.crash(fmt.Sprintf("after-commit:%s:%s", ev.Kind, ev.Step))
		},
		BeforeEffect: func(run steps.Run, e steps.Effect) {
			h.w.crash(fmt.Sprintf("before-effect:%s:%s", e.Kind, e.Step))
		},
	}
}

// openRunner opens the store in dir and a runner on the world in dir.
func openRunner(dir, crashAt string) (*store.Store, *Runner, *world, error) {
	st, err := store.Open(filepath.Join(dir, "kongbot.db"), store.Options{})
	if err != nil {
		return nil, nil, nil, err
	}
	w := newWorld(dir, crashAt)
	r, err := New(Options{Store: st, Kong: w, Traffic: w, Rules: testRules(), Hooks: hooks{w}.Hooks()})
	if err != nil {
		st.Close()
		return nil, nil, nil, err
	}
	return st, r, w, nil
}

// drive takes run r1 (hop 1 of gateway prod) from wherever it is to the end,
// acting as the people in the channel: it approves, does manual steps and
// presses Done, and retries a step left "interrupted" by a crash. It
// creates the run when the store has none, and resumes it otherwise.
func drive(ctx context.Context, r *Runner, w *world, st *store.Store) (steps.Run, error) {
	if _, err := st.Run(ctx, "r1"); errors.Is(err, store.ErrNotFound) {
		plan, err := steps.PlanPath("0.13.1", "0.14.1")
		if err != nil {
			return steps.Run{}, err
		}
		inv, _ := w.Inspect(ctx, "prod")
		run := steps.NewRun("r1", "prod", requester, "C0RUNS", plan, inv, false, time.Now())
		if _, err := r.Start(ctx, run); err != nil {
			return steps.Run{}, fmt.Errorf("start: %w", err)
		}
	} else if err != nil {
		return steps.Run{}, err
	} else if _, err := r.Resume(ctx); err != nil {
		return steps.Run{}, fmt.Errorf("resume: %w", err)
	}
	for range 200 {
		run, _, err := r.Load(ctx, "r1")
		if err != nil {
			return run, err
		}
		var ev steps.Event
		switch run.Status {
		case steps.RunSucceeded:
			return run, nil
		case steps.RunAwaitingApproval:
			st, _ := run.Step(run.Current)
			lead := leads[0]
			if len(run.Approvals[run.Current]) > 0 {
				lead = leads[1]
			}
			_ = st
			ev = steps.Event{Kind: steps.EvApprove, Step: run.Current, User: lead, Eligible: true, Fingerprint: run.Fingerprint}
		case steps.RunWaitingManual:
			w.people(run.Current)
			ev = steps.Event{Kind: steps.EvMarkDone, Step: run.Current, User: operator}
		case steps.RunFailed:
			st, _ := run.Step(run.Current)
			if !strings.HasPrefix(st.Error, "interrupted") {
				return run, fmt.Errorf("step %s failed: %s", st.ID, st.Error)
			}
			ev = steps.Event{Kind: steps.EvRetry, Step: run.Current, User: operator}
		default:
			return run, fmt.Errorf("run is %s at %s; the driver does not know what to do", run.Status, run.Current)
		}
		if _, err := r.Send(ctx, "r1", ev); err != nil {
			return run, fmt.Errorf("%s %s: %w", ev.Kind, ev.Step, err)
		}
	}
	return steps.Run{}, errors.New("run did not finish in 200 decisions")
}

// TestDriveHop1 is the no-crash baseline: the same run, start to end, in
// one process.
func TestDriveHop1(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, r, w, err := openRunner(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	defer r.Close()
	run, err := drive(ctx, r, w, st)
	if err != nil {
		t.Fatal(err)
	}
	if run.Status != steps.RunSucceeded {
		t.Fatalf("run %s", run.Status)
	}
	want := map[string]int{"snapshot": 1, "termination-create": 1, "call migrate-0.14.1-up": 1, "migrate-0.14.1-up": 1, "traffic-shift": 1, "termination-delete": 1}
	if got := ledgerCounts(dir); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("ledger = %v, want %v", got, want)
	}
	if v, err := st.VerifyAudit(ctx); err != nil || !v.OK() {
		t.Fatalf("audit: %+v %v", v, err)
	}
	if l, _ := st.Locks(ctx); len(l) != 0 {
		t.Fatalf("lock not released: %+v", l)
	}
	rec, _ := st.Run(ctx, "r1")
	audit, _ := st.Audit(ctx, "r1")
	msgs, _ := st.Outbox(ctx, "r1")
	t.Logf("hop 1: %d transitions, %d audit entries, %d outbox messages", rec.Version, len(audit), len(msgs))
}
