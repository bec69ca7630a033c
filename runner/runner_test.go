package runner

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kongbot/kongbot/steps"
	"github.com/kongbot/kongbot/store"
)

type fixture struct {
	dir string
	st  *store.Store
	r   *Runner
	w   *world
}

func newFixture(t *testing.T, kong func(*world) steps.Kong) *fixture {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "kongbot.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	w := newWorld(dir, "")
	var k steps.Kong = w
	if kong != nil {
		k = kong(w)
	}
	r, err := New(Options{Store: st, Kong: k, Traffic: w, Rules: testRules()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.Close()
		if v, err := st.VerifyAudit(context.Background()); err != nil || !v.OK() {
			t.Errorf("audit: %+v %v", v.Broken, err)
		}
		st.Close()
	})
	return &fixture{dir: dir, st: st, r: r, w: w}
}

func (f *fixture) newRun(t *testing.T, id string) steps.Run {
	t.Helper()
	plan, err := steps.PlanPath("0.13.1", "0.14.1")
	if err != nil {
		t.Fatal(err)
	}
	inv, _ := f.w.Inspect(context.Background(), "prod")
	return steps.NewRun(id, "prod", requester, "C0RUNS", plan, inv, false, time.Now())
}

// toApproval starts r1 and brings it to the outage group's approval.
func (f *fixture) toApproval(t *testing.T) steps.Run {
	t.Helper()
	ctx := context.Background()
	run, err := f.r.Start(ctx, f.newRun(t, "r1"))
	if err != nil {
		t.Fatal(err)
	}
	if run.Status != steps.RunWaitingManual || run.Current != "hop1.provision-new-nodes" {
		t.Fatalf("after start: %s at %s", run.Status, run.Current)
	}
	run, err = f.r.Send(ctx, "r1", steps.Event{Kind: steps.EvMarkDone, Step: run.Current, User: operator})
	if err != nil {
		t.Fatal(err)
	}
	if run.Status != steps.RunAwaitingApproval || run.Current != "hop1.termination-on" {
		t.Fatalf("after provisioning: %s at %s", run.Status, run.Current)
	}
	return run
}

func TestStartTakesTheGatewayLock(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	f.toApproval(t)
	other := f.newRun(t, "r2")
	other.Requester = "UOTHER"
	_, err := f.r.Start(ctx, other)
	var le *store.LockedError
	if !errors.As(err, &le) || le.Holder.Run != "r1" || le.Holder.Requester != requester {
		t.Fatalf("second start = %v, want the lock held by r1 for %s", err, requester)
	}
	if !strings.Contains(err.Error(), "gateway prod is locked by run r1 (started by UREQ") {
		t.Fatalf("message: %v", err)
	}
	if _, err := f.st.Run(ctx, "r2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("refused run was stored: %v", err)
	}
	if a, _ := f.st.Audit(ctx, "r2"); len(a) != 0 {
		t.Fatalf("refused run has audit entries: %v", a)
	}
}

func TestRefusedDecisionsChangeNothingButAreAudited(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	run := f.toApproval(t)
	before, _ := f.st.Run(ctx, "r1")
	tests := []struct {
		name       string
		ev         steps.Event
		want       error
		reposts    bool // the approval request is posted again
		auditKind  string
		auditActor string
	}{
		{"stale button for another step", steps.Event{Kind: steps.EvApprove, Step: "hop1.migrations-up", User: "ULEAD1", Eligible: true, Fingerprint: run.Fingerprint},
			steps.ErrStale, false, "refused-approve", "ULEAD1"},
		{"self approval of a high step", steps.Event{Kind: steps.EvApprove, Step: run.Current, User: requester, Eligible: true, Fingerprint: run.Fingerprint},
			steps.ErrSelfApproval, false, "refused-approve", requester},
		{"approval for an old fingerprint", steps.Event{Kind: steps.EvApprove, Step: run.Current, User: "ULEAD1", Eligible: true, Fingerprint: "old"},
			steps.ErrFingerprintMismatch, true, "refused-approve", "ULEAD1"},
		{"retry of a step that did not fail", steps.Event{Kind: steps.EvRetry, Step: run.Current, User: operator},
			steps.ErrStale, false, "refused-retry", operator},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			outBefore, _ := f.st.Outbox(ctx, "r1")
			_, err := f.r.Send(ctx, "r1", tt.ev)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			after, _ := f.st.Run(ctx, "r1")
			if after.Version != before.Version || string(after.Data) != string(before.Data) {
				t.Fatal("a refused event changed the run")
			}
			audit, _ := f.st.Audit(ctx, "r1")
			last := audit[len(audit)-1]
			if last.Kind != tt.auditKind || last.Actor != tt.auditActor || !strings.Contains(last.Text, "refused") {
				t.Fatalf("last audit entry = %+v", last)
			}
			outAfter, _ := f.st.Outbox(ctx, "r1")
			added := outAfter[len(outBefore):]
			if tt.reposts {
				var e steps.Effect
				if len(added) != 1 || json.Unmarshal(added[0].Payload, &e) != nil || e.Message != steps.MsgApprovalRequest || added[0].Key != "approval/"+run.Current {
					t.Fatalf("re-request = %+v", added)
				}
			} else if len(added) != 0 {
				t.Fatalf("messages queued for a refused event: %+v", added)
			}
		})
	}
}

// blockingKong holds migrations up until released, so a test can act while
// the side effect is in flight.
type blockingKong struct {
	*world
	entered chan struct{}
	release chan struct{}
}

func (b *blockingKong) Migrate(ctx context.Context, gw, target string, verb steps.MigrationVerb, out steps.Sink) (steps.MigrationResult, error) {
	close(b.entered)
	<-b.release
	return b.world.Migrate(ctx, gw, target, verb, out)
}

func TestAbortWhileAStepRunsWaitsForItsOutcome(t *testing.T) {
	ctx := context.Background()
	bk := &blockingKong{entered: make(chan struct{}), release: make(chan struct{})}
	f := newFixture(t, func(w *world) steps.Kong { bk.world = w; return bk })
	run := f.toApproval(t)
	var wg sync.WaitGroup
	wg.Go(func() {
		// Approving the outage group runs termination-on, then blocks in
		// migrations up.
		if _, err := f.r.Send(ctx, "r1", steps.Event{Kind: steps.EvApprove, Step: run.Current, User: "ULEAD1", Eligible: true, Fingerprint: run.Fingerprint}); err != nil {
			t.Error(err)
		}
	})
	<-bk.entered
	// The abort is recorded while the migration runs (the run's lock is
	// not held during a side effect).
	mid, err := f.r.Send(ctx, "r1", steps.Event{Kind: steps.EvAbort, User: "ULEAD1", Reason: "change freeze"})
	if err != nil {
		t.Fatal(err)
	}
	if !mid.AbortRequested || mid.Status != steps.RunRunning {
		t.Fatalf("during the step: %s, abort requested %v", mid.Status, mid.AbortRequested)
	}
	close(bk.release)
	wg.Wait()
	end, _, err := f.r.Load(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	st, _ := end.Step("hop1.migrations-up")
	if st.Status != steps.StepSucceeded || end.Status != steps.RunAborting || len(end.Rollbacks) == 0 {
		t.Fatalf("after the step: run %s, step %s, rollbacks %+v", end.Status, st.Status, end.Rollbacks)
	}
	// Choosing to remove request-termination runs the rollback and reads
	// the gateway back.
	var choice steps.RollbackAction
	for _, c := range end.Rollbacks {
		if c.Action == steps.RollbackRemoveTermination {
			choice = c.Action
		}
	}
	if choice == "" {
		t.Fatalf("no remove-termination rollback offered: %+v", end.Rollbacks)
	}
	if _, err := f.r.Send(ctx, "r1", steps.Event{Kind: steps.EvRollback, Choice: choice, User: "ULEAD1", Eligible: true}); err != nil {
		t.Fatal(err)
	}
	if f.w.load().Termination != "" {
		t.Fatal("request-termination still on after the rollback")
	}
	got, _, _ := f.r.Load(ctx, "r1")
	if !slices.Contains(got.RollbacksDone, steps.RollbackRemoveTermination) {
		t.Fatalf("rollbacks done = %v (status %s)", got.RollbacksDone, got.Status)
	}
}

func TestJournalIsDurableBeforePutReturns(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	run := f.toApproval(t)
	env, _ := f.r.env(ctx, run, steps.Effect{Step: run.Current})
	if err := env.Journal.Put("probe", "42"); err != nil {
		t.Fatal(err)
	}
	// Put returned after its bbolt transaction committed (fsynced): the
	// store has it, not only the step's memory.
	v, ok, err := f.st.JournalGet(ctx, "r1", "probe")
	if err != nil || !ok || v != "42" {
		t.Fatalf("journal in the store = %q %v %v", v, ok, err)
	}
	// The next load of the run carries it into the engine's view.
	loaded, _, err := f.r.Load(ctx, "r1")
	if err != nil || loaded.Journal["probe"] != "42" {
		t.Fatalf("loaded journal = %v %v", loaded.Journal, err)
	}
	if keys := env.Journal.Keys("pro"); len(keys) != 1 || keys[0] != "probe" {
		t.Fatalf("keys = %v", keys)
	}
}

func TestMessageKeys(t *testing.T) {
	tests := []struct {
		e    steps.Effect
		want string
	}{
		{steps.Effect{Kind: steps.EffPost, Message: steps.MsgSummary}, "summary"},
		{steps.Effect{Kind: steps.EffPost, Message: steps.MsgStepStarted, Step: "hop1.snapshot"}, "step/hop1.snapshot"},
		{steps.Effect{Kind: steps.EffUpdate, Message: steps.MsgStepSucceeded, Step: "hop1.snapshot"}, "step/hop1.snapshot"},
		{steps.Effect{Kind: steps.EffPost, Message: steps.MsgApprovalRequest, Step: "hop1.termination-on"}, "approval/hop1.termination-on"},
		{steps.Effect{Kind: steps.EffPost, Message: steps.MsgReminder, Step: "hop1.termination-on"}, ""},
	}
	for _, tt := range tests {
		if got := MessageKey(tt.e); got != tt.want {
			t.Errorf("MessageKey(%s %s) = %q, want %q", tt.e.Message, tt.e.Step, got, tt.want)
		}
	}
}

// A step found running after a restart and verified not done runs again;
// the audit line says what the verification found and the new attempt.
func TestAuditOfVerification(t *testing.T) {
	before := steps.Run{ID: "r1", Status: steps.RunRunning, Current: "hop2.migrations-finish",
		Steps: []steps.StepState{{ID: "hop2.migrations-finish", Status: steps.StepRunning, Attempts: 1}}}
	rerun := before
	rerun.Steps = []steps.StepState{{ID: "hop2.migrations-finish", Status: steps.StepRunning, Attempts: 2}}
	done := before
	done.Steps = []steps.StepState{{ID: "hop2.migrations-finish", Status: steps.StepSucceeded, Attempts: 1}}
	for _, tc := range []struct {
		name  string
		after steps.Run
		ev    steps.Event
		want  string
	}{
		{name: "not done", after: rerun,
			ev:   steps.Event{Kind: steps.EvVerified, Step: "hop2.migrations-finish", Check: &steps.Check{Missing: []string{"schema is 1.0-pending, want 1.0"}}},
			want: "verified hop2.migrations-finish; step running (interrupted, not done: schema is 1.0-pending, want 1.0; running it again, attempt 2)"},
		{name: "Verify failed", after: rerun,
			ev:   steps.Event{Kind: steps.EvVerified, Step: "hop2.migrations-finish", Err: "verify: connection refused", Check: &steps.Check{}},
			want: "verified hop2.migrations-finish; step running (interrupted, verify: connection refused; running it again, attempt 2)"},
		{name: "done", after: done,
			ev:   steps.Event{Kind: steps.EvVerified, Step: "hop2.migrations-finish", Check: &steps.Check{OK: true}},
			want: "verified hop2.migrations-finish; step succeeded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := auditFor(before, tc.after, tc.ev, nil).Text; got != tc.want {
				t.Errorf("audit text\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}
