package steps

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// drive runs the harness to the end: approvals by non-requesters, Done on
// manual steps that ask for it. It fails the test if the run stalls.
func drive(t *testing.T, h *harness) {
	t.Helper()
	for i := 0; i < 200 && !h.run.Status.Terminal(); i++ {
		switch h.run.Status {
		case RunAwaitingApproval:
			h.approveAll()
		case RunWaitingManual:
			h.must(Event{Kind: EvMarkDone, Step: h.run.Current, User: "UOPS"})
		case RunPaused:
			st, _ := h.run.Step(h.run.Current)
			h.must(Event{Kind: EvAnswer, Step: st.ID, User: "ULEAD1", Eligible: true, Key: st.Check.Pause.Key, Answer: ChoiceApprove})
		default:
			st, _ := h.run.Step(h.run.Current)
			t.Fatalf("run stalled: %s at %s (%+v)", h.run.Status, h.run.Current, st)
		}
	}
}

func TestFullRunFrom0131To103(t *testing.T) {
	h := newHarness(t, "0.13.1", "1.0.3")
	// People start each new generation when the bot asks.
	h.onManual["hop1.start-new-cluster"] = func() { h.gw.started[gen0141] = true }
	h.onManual["hop1.decommission-old"] = func() { h.gw.started["0.13.1"] = false }
	h.onManual["hop2.provision-new-nodes"] = func() { h.gw.started[gen103] = true }
	h.onManual["hop2.decommission-old"] = func() { h.gw.started[gen0141] = false }
	h.gw.pauseAt = "hop2"

	h.must(Event{Kind: EvStart, User: "UREQ"})
	drive(t, h)

	if h.run.Status != RunSucceeded {
		t.Fatalf("run ended %s at %s: %+v", h.run.Status, h.run.Current, h.run.Errors)
	}
	for _, st := range h.run.Steps {
		if st.Status != StepSucceeded {
			t.Errorf("step %s is %s, want succeeded", st.ID, st.Status)
		}
	}
	if h.gw.schema != Schema10 || h.gw.apis != 0 || h.gw.term {
		t.Errorf("gateway ends with schema %s, %d APIs, termination %v", h.gw.schema, h.gw.apis, h.gw.term)
	}
	for _, op := range []string{"migrate 0.14.1 up", "migrate 1.0.3 up", "migrate 1.0.3 finish", "termination on", "termination off", "delete apis"} {
		if h.gw.calls[op] != 1 {
			t.Errorf("%s ran %d times, want once", op, h.gw.calls[op])
		}
	}
	if h.released != 1 {
		t.Errorf("lock released %d times, want 1", h.released)
	}
	// Approvals: one for the whole hop-1 outage, asked at its first step.
	wantAsked := []string{"hop1.termination-on", "hop2.custom-plugins", "hop2.apis-convert", "hop2.apis-delete", "hop2.migrations-up", "hop2.traffic-shift", "hop2.migrations-finish"}
	if got := h.posts(MsgApprovalRequest); !reflect.DeepEqual(got, wantAsked) {
		t.Errorf("approval requests %v, want %v", got, wantAsked)
	}
	if n := len(h.run.Approvals["hop2.migrations-finish"]); n != 2 {
		t.Errorf("finish has %d approvals, want 2", n)
	}
	if n := len(h.run.Approvals["hop2.apis-delete"]); n != 2 {
		t.Errorf("apis-delete has %d approvals, want 2", n)
	}
	// The pause in the gradual shift was answered and the shift re-run.
	if h.run.Journal["shift.25"] != string(ChoiceApprove) || h.gw.calls["shift hop2"] != 2 {
		t.Errorf("pause answer %q, shifts %d; want approve and 2", h.run.Journal["shift.25"], h.gw.calls["shift hop2"])
	}
	if h.run.Journal[jHop2CustomPlugins] != "okta-auth" {
		t.Errorf("custom plugins %q, want okta-auth", h.run.Journal[jHop2CustomPlugins])
	}
}

// The outage runs from request-termination on to the smoke probes without a
// single wait for people: no approval request, no Done press.
func TestOutageGroupRunsWithoutWaits(t *testing.T) {
	h := newHarness(t, "0.13.1", "0.14.1")
	h.onManual["hop1.start-new-cluster"] = func() { h.gw.started[gen0141] = true }
	h.must(Event{Kind: EvStart, User: "UREQ"})
	for h.run.Current != "hop1.termination-on" {
		switch h.run.Status {
		case RunWaitingManual:
			h.must(Event{Kind: EvMarkDone, User: "UOPS"})
		case RunAwaitingApproval:
			h.approveAll()
		default:
			t.Fatalf("stalled at %s (%s)", h.run.Current, h.run.Status)
		}
	}
	if h.run.Status != RunAwaitingApproval {
		t.Fatalf("at termination-on the run is %s, want awaiting-approval", h.run.Status)
	}
	mark := len(h.log)
	// One approval by one lead who is not the requester opens the group.
	h.must(Event{Kind: EvApprove, Step: "hop1.termination-on", User: "ULEAD1", Eligible: true, Fingerprint: h.run.Fingerprint})
	if h.run.Current != "hop1.decommission-old" || h.run.Status != RunWaitingManual {
		t.Fatalf("after the group approval the run is %s at %s, want waiting-manual at hop1.decommission-old", h.run.Status, h.run.Current)
	}
	var ran []string
	for _, e := range h.log[mark:] {
		if e.Kind == EffPost && e.Message == MsgApprovalRequest {
			t.Errorf("approval asked for %s inside the outage", e.Step)
		}
		if e.Kind == EffExecute || e.Kind == EffVerify {
			ran = append(ran, e.Step)
		}
	}
	want := []string{"hop1.termination-on", "hop1.migrations-up", "hop1.start-new-cluster", "hop1.traffic-switch", "hop1.termination-off", "hop1.smoke", "hop1.decommission-old"}
	if !reflect.DeepEqual(ran, want) {
		t.Errorf("ran %v, want %v", ran, want)
	}
}

// atApproval returns a run of from->to whose steps before id succeeded and
// which waits for approval at id.
func atApproval(t *testing.T, from, to, id string) Run {
	t.Helper()
	h := newHarness(t, from, to)
	r := h.run
	r.Status = RunAwaitingApproval
	r.Current = id
	found := false
	for i := range r.Steps {
		switch {
		case r.Steps[i].ID == id:
			r.Steps[i].Status = StepAwaitingApproval
			found = true
		case !found:
			r.Steps[i].Status = StepSucceeded
		}
	}
	if !found {
		t.Fatalf("no step %s", id)
	}
	return r
}

func TestApprovalRules(t *testing.T) {
	strict := DefaultRules()
	strict.Irreversible = Rule{Approvers: 3}
	lax := DefaultRules()
	lax.High = Rule{Approvers: 1, AllowRequester: true}
	type approval struct {
		user     string
		eligible bool
		wantErr  error
	}
	cases := []struct {
		name      string
		rules     ApprovalRules
		step      string
		approvals []approval
		wantRun   bool // the step runs after the last approval
	}{
		{"normal: the requester may approve", DefaultRules(), "hop2.apis-convert",
			[]approval{{"UREQ", true, nil}}, true},
		{"normal: one approver is enough", DefaultRules(), "hop2.apis-convert",
			[]approval{{"ULEAD1", true, nil}}, true},
		{"high: the requester is refused", DefaultRules(), "hop2.migrations-up",
			[]approval{{"UREQ", true, ErrSelfApproval}}, false},
		{"high: another approver is enough", DefaultRules(), "hop2.migrations-up",
			[]approval{{"UREQ", true, ErrSelfApproval}, {"ULEAD1", true, nil}}, true},
		{"high: an ineligible user is refused", DefaultRules(), "hop2.migrations-up",
			[]approval{{"UDEV", false, ErrNotEligible}}, false},
		{"high group: the hop-1 outage takes the group's rule", DefaultRules(), "hop1.termination-on",
			[]approval{{"UREQ", true, ErrSelfApproval}, {"ULEAD1", true, nil}}, true},
		{"irreversible: one approver is not enough", DefaultRules(), "hop2.migrations-finish",
			[]approval{{"ULEAD1", true, nil}}, false},
		{"irreversible: the requester is refused", DefaultRules(), "hop2.migrations-finish",
			[]approval{{"ULEAD1", true, nil}, {"UREQ", true, ErrSelfApproval}}, false},
		{"irreversible: the same approver twice is a duplicate", DefaultRules(), "hop2.migrations-finish",
			[]approval{{"ULEAD1", true, nil}, {"ULEAD1", true, ErrDuplicate}}, false},
		{"irreversible: two distinct approvers", DefaultRules(), "hop2.migrations-finish",
			[]approval{{"ULEAD1", true, nil}, {"ULEAD2", true, nil}}, true},
		{"irreversible: deleting APIs needs two as well", DefaultRules(), "hop2.apis-delete",
			[]approval{{"ULEAD1", true, nil}, {"ULEAD2", true, nil}}, true},
		{"config: irreversible needs three", strict, "hop2.migrations-finish",
			[]approval{{"ULEAD1", true, nil}, {"ULEAD2", true, nil}}, false},
		{"config: three distinct approvers", strict, "hop2.migrations-finish",
			[]approval{{"ULEAD1", true, nil}, {"ULEAD2", true, nil}, {"ULEAD3", true, nil}}, true},
		{"config: high allowing the requester", lax, "hop2.migrations-up",
			[]approval{{"UREQ", true, nil}}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			from := "0.14.1"
			if strings.HasPrefix(c.step, "hop1") {
				from = "0.13.1"
			}
			r := atApproval(t, from, "1.0.3", c.step)
			now := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
			var effs []Effect
			for _, a := range c.approvals {
				next, e, err := Transition(r, Event{Kind: EvApprove, Step: c.step, User: a.user, Eligible: a.eligible, Fingerprint: r.Fingerprint}, c.rules, now)
				if !errors.Is(err, a.wantErr) || (a.wantErr == nil && err != nil) {
					t.Fatalf("approval by %s: err %v, want %v", a.user, err, a.wantErr)
				}
				if err != nil {
					if !reflect.DeepEqual(next, r) || len(e) != 0 {
						t.Fatalf("refused approval by %s changed the run or emitted %v", a.user, e)
					}
					continue
				}
				r, effs = next, e
			}
			ran := slices.ContainsFunc(effs, func(e Effect) bool { return e.Kind == EffExecute && e.Step == c.step })
			if ran != c.wantRun {
				t.Errorf("step ran = %v, want %v (run %s, effects %v)", ran, c.wantRun, r.Status, effs)
			}
			if !ran && r.Status != RunAwaitingApproval {
				t.Errorf("run is %s, want still awaiting approval", r.Status)
			}
		})
	}
}

func TestRulesValidate(t *testing.T) {
	if err := DefaultRules().Validate(); err != nil {
		t.Errorf("defaults invalid: %v", err)
	}
	bad := DefaultRules()
	bad.Irreversible.Approvers = 0
	if err := bad.Validate(); err == nil {
		t.Error("irreversible with 0 approvers accepted")
	}
	weak := DefaultRules()
	weak.High.Approvers = 3
	if err := weak.Validate(); err == nil {
		t.Error("irreversible weaker than high accepted")
	}
	if got := DefaultRules().Irreversible.Text(); got != "2 distinct approvers, neither the requester" {
		t.Errorf("text %q", got)
	}
}

// Decisions that arrive when the step no longer waits for them are refused
// with ErrStale and change nothing.
func TestStaleAndDuplicateDecisions(t *testing.T) {
	now := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	rules := DefaultRules()
	approved := func(t *testing.T) Run {
		r := atApproval(t, "0.14.1", "1.0.3", "hop2.migrations-up")
		r, _, err := Transition(r, Event{Kind: EvApprove, Step: "hop2.migrations-up", User: "ULEAD1", Eligible: true, Fingerprint: r.Fingerprint}, rules, now)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	cases := []struct {
		name    string
		run     func(t *testing.T) Run
		ev      func(r Run) Event
		wantErr error
		wantMsg string
	}{
		{"double click on approve after the step started", approved,
			func(r Run) Event {
				return Event{Kind: EvApprove, Step: "hop2.migrations-up", User: "ULEAD2", Eligible: true, Fingerprint: r.Fingerprint}
			},
			ErrStale, "step hop2.migrations-up is running, not awaiting approval"},
		{"the same approver clicks again on a two-approver step", func(t *testing.T) Run {
			r := atApproval(t, "0.14.1", "1.0.3", "hop2.migrations-finish")
			r, _, _ = Transition(r, Event{Kind: EvApprove, Step: "hop2.migrations-finish", User: "ULEAD1", Eligible: true, Fingerprint: r.Fingerprint}, rules, now)
			return r
		}, func(r Run) Event {
			return Event{Kind: EvApprove, Step: "hop2.migrations-finish", User: "ULEAD1", Eligible: true, Fingerprint: r.Fingerprint}
		}, ErrDuplicate, "ULEAD1 already approved"},
		{"an old button for an earlier step", func(t *testing.T) Run { return atApproval(t, "0.14.1", "1.0.3", "hop2.migrations-finish") },
			func(r Run) Event {
				return Event{Kind: EvApprove, Step: "hop2.migrations-up", User: "ULEAD1", Eligible: true, Fingerprint: r.Fingerprint}
			},
			ErrStale, "step hop2.migrations-up is succeeded"},
		{"reject after the step started", approved,
			func(r Run) Event {
				return Event{Kind: EvReject, Step: "hop2.migrations-up", User: "ULEAD2", Eligible: true}
			},
			ErrStale, "not awaiting approval"},
		{"retry when nothing failed", approved,
			func(r Run) Event { return Event{Kind: EvRetry, Step: "hop2.migrations-up", User: "ULEAD1"} },
			ErrStale, "not failed"},
		{"an outcome from an older attempt", approved,
			func(r Run) Event { return Event{Kind: EvStepSucceeded, Step: "hop2.migrations-up", Attempt: 7} },
			ErrStale, "attempt 7"},
		{"a superseded timer", func(t *testing.T) Run { return atApproval(t, "0.14.1", "1.0.3", "hop2.migrations-up") },
			func(r Run) Event { return Event{Kind: EvTimer, Step: "hop2.migrations-up", Token: r.TimerToken + 5} },
			ErrStale, "superseded"},
		{"mark done on a step that is not manual", approved,
			func(r Run) Event { return Event{Kind: EvMarkDone, Step: "hop2.migrations-up", User: "UOPS"} },
			ErrStale, "not waiting for people"},
		{"a rollback choice on a run that is not aborting", approved,
			func(r Run) Event {
				return Event{Kind: EvRollback, Choice: RollbackTrafficBack, User: "ULEAD1", Eligible: true}
			},
			ErrStale, "not waiting for a rollback choice"},
		{"skip of a step that may not be skipped", func(t *testing.T) Run { return atApproval(t, "0.14.1", "1.0.3", "hop2.migrations-finish") },
			func(r Run) Event {
				return Event{Kind: EvSkip, Step: "hop2.migrations-finish", User: "ULEAD1", Eligible: true}
			},
			ErrNotSkippable, "may not be skipped"},
		{"start twice", approved,
			func(r Run) Event { return Event{Kind: EvStart, User: "UREQ"} },
			ErrStale, "already running"},
		{"any decision on a finished run", func(t *testing.T) Run {
			r := atApproval(t, "0.14.1", "1.0.3", "hop2.migrations-up")
			r.Status = RunSucceeded
			return r
		}, func(r Run) Event {
			return Event{Kind: EvApprove, Step: "hop2.migrations-up", User: "ULEAD1", Eligible: true, Fingerprint: r.Fingerprint}
		}, ErrStale, "is succeeded"},
		{"unknown step", approved,
			func(r Run) Event {
				return Event{Kind: EvApprove, Step: "hop9.nope", User: "ULEAD1", Eligible: true, Fingerprint: r.Fingerprint}
			},
			ErrInvalidEvent, "no step"},
		{"unknown event", approved,
			func(r Run) Event { return Event{Kind: "explode"} },
			ErrInvalidEvent, "unknown event kind"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := c.run(t)
			next, effs, err := Transition(r, c.ev(r), rules, now)
			if !errors.Is(err, c.wantErr) {
				t.Fatalf("err %v, want %v", err, c.wantErr)
			}
			if !strings.Contains(err.Error(), c.wantMsg) {
				t.Errorf("err %q does not say %q", err, c.wantMsg)
			}
			if !reflect.DeepEqual(next, r) || len(effs) != 0 {
				t.Errorf("refused event changed the run or emitted %v", effs)
			}
		})
	}
}

func TestFingerprintMismatch(t *testing.T) {
	now := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	r := atApproval(t, "0.14.1", "1.0.3", "hop2.migrations-finish")
	// One approval under the fingerprint the run was made with.
	r, _, err := Transition(r, Event{Kind: EvApprove, Step: "hop2.migrations-finish", User: "ULEAD1", Eligible: true, Fingerprint: r.Fingerprint}, DefaultRules(), now)
	if err != nil {
		t.Fatal(err)
	}
	old := r.Fingerprint
	// The gateway changed; the runner re-read it.
	r, effs, err := Transition(r, Event{Kind: EvReinspect, Fingerprint: "f00d"}, DefaultRules(), now)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(effs, func(e Effect) bool { return e.Message == MsgApprovalRequest }) {
		t.Errorf("reinspect did not re-request approval: %v", effs)
	}
	// A click on the old message carries the old fingerprint.
	next, effs, err := Transition(r, Event{Kind: EvApprove, Step: "hop2.migrations-finish", User: "ULEAD2", Eligible: true, Fingerprint: old}, DefaultRules(), now)
	if !errors.Is(err, ErrFingerprintMismatch) {
		t.Fatalf("err %v, want ErrFingerprintMismatch", err)
	}
	if !reflect.DeepEqual(next, r) {
		t.Error("mismatched approval changed the run")
	}
	if len(effs) != 1 || effs[0].Message != MsgApprovalRequest || effs[0].Step != "hop2.migrations-finish" {
		t.Errorf("effects %v, want the approval re-requested", effs)
	}
	// Two approvals under the new fingerprint are needed: the old one no
	// longer counts.
	r, effs, err = Transition(r, Event{Kind: EvApprove, Step: "hop2.migrations-finish", User: "ULEAD2", Eligible: true, Fingerprint: "f00d"}, DefaultRules(), now)
	if err != nil || r.Status != RunAwaitingApproval {
		t.Fatalf("after one new approval: %v, %s (effects %v)", err, r.Status, effs)
	}
	r, effs, err = Transition(r, Event{Kind: EvApprove, Step: "hop2.migrations-finish", User: "ULEAD1", Eligible: true, Fingerprint: "f00d"}, DefaultRules(), now)
	if err != nil || r.Status != RunRunning {
		t.Fatalf("after two new approvals: %v, %s (effects %v)", err, r.Status, effs)
	}
}

// runTo drives a full 0.13.1 -> 1.0.3 run until the run is at stop (in any
// waiting state), with people doing manual steps at once.
func runTo(t *testing.T, stop string, fail map[string]error) *harness {
	t.Helper()
	h := newHarness(t, "0.13.1", "1.0.3")
	h.gw.failNext = fail
	h.onManual["hop1.start-new-cluster"] = func() { h.gw.started[gen0141] = true }
	h.onManual["hop1.decommission-old"] = func() { h.gw.started["0.13.1"] = false }
	h.onManual["hop2.provision-new-nodes"] = func() { h.gw.started[gen103] = true }
	h.onManual["hop2.decommission-old"] = func() { h.gw.started[gen0141] = false }
	delete(h.onManual, stop) // people have not done it yet
	h.must(Event{Kind: EvStart, User: "UREQ"})
	for i := 0; i < 100 && h.run.Current != stop; i++ {
		switch h.run.Status {
		case RunAwaitingApproval:
			h.approveAll()
		case RunWaitingManual:
			h.must(Event{Kind: EvMarkDone, User: "UOPS"})
		default:
			t.Fatalf("stalled at %s (%s) before %s: %v", h.run.Current, h.run.Status, stop, h.run.Errors)
		}
	}
	if h.run.Current != stop {
		t.Fatalf("never reached %s", stop)
	}
	return h
}

func TestAbortOffersTheRollbackThatFits(t *testing.T) {
	boom := errors.New("boom")
	cases := []struct {
		name     string
		stop     string
		fail     map[string]error
		approve  bool // approve the stop step first (it then fails or waits)
		want     []RollbackAction
		wantNote string
	}{
		{name: "before any change", stop: "hop1.provision-new-nodes",
			wantNote: "nothing to roll back: no change was made"},
		{name: "hop 1 outage, migrations failed: remove termination", stop: "hop1.termination-on", approve: true,
			fail: map[string]error{"migrate 0.14.1 up": boom},
			want: []RollbackAction{RollbackRemoveTermination, RollbackNone}},
		{name: "hop 1 outage, traffic switch failed: termination and traffic", stop: "hop1.termination-on", approve: true,
			fail: map[string]error{"termination off": boom},
			want: []RollbackAction{RollbackRemoveTermination, RollbackTrafficBack, RollbackNone}},
		{name: "hop 2 before finish: move traffic back, or stop it", stop: "hop2.decommission-old",
			want: []RollbackAction{RollbackTrafficBack, RollbackEmergencyStop, RollbackNone}},
		{name: "hop 2 after finish started: only an emergency stop, and the engine says why", stop: "hop2.migrations-finish", approve: true,
			fail:     map[string]error{"migrate 1.0.3 finish": boom},
			want:     []RollbackAction{RollbackEmergencyStop, RollbackNone},
			wantNote: "there is no rollback"},
		{name: "hop 1 done, old nodes gone: only an emergency stop", stop: "hop2.custom-plugins",
			want: []RollbackAction{RollbackEmergencyStop, RollbackNone}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := runTo(t, c.stop, c.fail)
			if c.approve {
				h.approveAll()
			}
			if h.run.Status == RunWaitingManual || h.run.Status == RunAwaitingApproval || h.run.Status == RunFailed {
				h.must(Event{Kind: EvAbort, User: "ULEAD1", Reason: "test"})
			} else {
				t.Fatalf("run is %s at %s; cannot abort here", h.run.Status, h.run.Current)
			}
			var got []RollbackAction
			for _, rc := range h.run.Rollbacks {
				got = append(got, rc.Action)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("offered %v, want %v (note %q, run %s at %s)", got, c.want, h.run.RollbackNote, h.run.Status, h.run.Current)
			}
			if !strings.Contains(h.run.RollbackNote, c.wantNote) {
				t.Errorf("note %q does not say %q", h.run.RollbackNote, c.wantNote)
			}
			if c.want == nil {
				if h.run.Status != RunAborted || h.released != 1 {
					t.Errorf("with nothing to offer the run is %s, lock released %d times", h.run.Status, h.released)
				}
				return
			}
			if c.want[0] == RollbackEmergencyStop {
				testEmergencyStop(t, h)
				return
			}
			if h.run.Status != RunAborting || h.released != 0 {
				t.Fatalf("run is %s with lock released %d times, want aborting and held", h.run.Status, h.released)
			}
			// Carry out every offered rollback, one by one.
			// The emergency stop is withdrawn once traffic is back.
			for _, a := range c.want[:len(c.want)-1] {
				if a != RollbackEmergencyStop {
					h.must(Event{Kind: EvRollback, Choice: a, User: "ULEAD1", Eligible: true})
				}
			}
			if h.run.Status != RunAborted || h.released != 1 {
				t.Errorf("after the rollbacks the run is %s, lock released %d times", h.run.Status, h.released)
			}
			if slices.Contains(c.want, RollbackRemoveTermination) && h.gw.term {
				t.Error("request-termination still on after its rollback")
			}
			if slices.Contains(c.want, RollbackTrafficBack) && h.gw.newPct[h.gw.hop] != 0 {
				t.Errorf("new generation still has %d%% after traffic-back", h.gw.newPct[h.gw.hop])
			}
		})
	}
}

// testEmergencyStop carries out the emergency stop offered to an aborting
// run: termination goes on and its removal is offered; removing it offers
// the stop again; leaving it on ends the run with a note that says so.
func testEmergencyStop(t *testing.T, h *harness) {
	t.Helper()
	h.must(Event{Kind: EvRollback, Choice: RollbackEmergencyStop, User: "ULEAD1", Eligible: true})
	offered := func() []RollbackAction {
		var got []RollbackAction
		for _, rc := range h.run.Rollbacks {
			got = append(got, rc.Action)
		}
		return got
	}
	if !h.gw.term || h.run.Status != RunAborting || !reflect.DeepEqual(offered(), []RollbackAction{RollbackRemoveTermination, RollbackNone}) {
		t.Fatalf("after the emergency stop: termination %v, run %s, offered %v", h.gw.term, h.run.Status, offered())
	}
	h.must(Event{Kind: EvRollback, Choice: RollbackRemoveTermination, User: "ULEAD1", Eligible: true})
	if h.gw.term || !reflect.DeepEqual(offered(), []RollbackAction{RollbackEmergencyStop, RollbackNone}) {
		t.Fatalf("after lifting it: termination %v, offered %v", h.gw.term, offered())
	}
	h.must(Event{Kind: EvRollback, Choice: RollbackEmergencyStop, User: "ULEAD1", Eligible: true})
	h.must(Event{Kind: EvRollback, Choice: RollbackNone, User: "ULEAD1", Eligible: true})
	if !h.gw.term || h.run.Status != RunAborted || h.released != 1 || !strings.Contains(h.run.RollbackNote, "emergency stop is on") {
		t.Errorf("left on: termination %v, run %s, released %d, note %q", h.gw.term, h.run.Status, h.released, h.run.RollbackNote)
	}
}

func TestAbortChoosingNoneAndFailedRollback(t *testing.T) {
	h := runTo(t, "hop2.decommission-old", nil)
	h.must(Event{Kind: EvAbort, User: "ULEAD1"})
	h.gw.failNext = map[string]error{"rollback traffic": errors.New("haproxy socket refused")}
	h.must(Event{Kind: EvRollback, Choice: RollbackTrafficBack, User: "ULEAD1", Eligible: true})
	if h.run.Status != RunAborting || h.run.RollbackRunning != "" || len(h.run.Rollbacks) != 3 {
		t.Fatalf("after a failed rollback: %s, running %q, offered %v", h.run.Status, h.run.RollbackRunning, h.run.Rollbacks)
	}
	if err := h.send(Event{Kind: EvRollback, Choice: RollbackRemoveTermination, User: "ULEAD1", Eligible: true}); !errors.Is(err, ErrInvalidEvent) {
		t.Errorf("a rollback that was not offered: %v", err)
	}
	h.must(Event{Kind: EvRollback, Choice: RollbackNone, User: "ULEAD1", Eligible: true})
	if h.run.Status != RunAborted || h.released != 1 || h.gw.newPct["hop2"] != 100 {
		t.Errorf("choosing none: %s, released %d, traffic %d%%", h.run.Status, h.released, h.gw.newPct["hop2"])
	}
}

// An abort while a step's side effect runs waits for its outcome.
func TestAbortWhileRunningWaitsForTheStep(t *testing.T) {
	r := atApproval(t, "0.14.1", "1.0.3", "hop2.migrations-up")
	now := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	r, _, _ = Transition(r, Event{Kind: EvApprove, Step: "hop2.migrations-up", User: "ULEAD1", Eligible: true, Fingerprint: r.Fingerprint}, DefaultRules(), now)
	r, effs, err := Transition(r, Event{Kind: EvAbort, User: "ULEAD2", Reason: "window over"}, DefaultRules(), now)
	if err != nil || !r.AbortRequested || r.Status != RunRunning || len(effs) != 1 || effs[0].Message != MsgAbortRequested {
		t.Fatalf("abort while running: %v, requested %v, %s, %v", err, r.AbortRequested, r.Status, effs)
	}
	if _, _, err := Transition(r, Event{Kind: EvAbort, User: "ULEAD1"}, DefaultRules(), now); !errors.Is(err, ErrStale) {
		t.Errorf("second abort: %v, want ErrStale", err)
	}
	r, effs, err = Transition(r, Event{Kind: EvStepSucceeded, Step: "hop2.migrations-up", Check: &Check{OK: true}}, DefaultRules(), now)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := r.Step("hop2.migrations-up")
	if st.Status != StepSucceeded || r.Status != RunAborted || r.AbortedBy != "ULEAD2" {
		t.Errorf("after the outcome: step %s, run %s by %q", st.Status, r.Status, r.AbortedBy)
	}
	if !slices.ContainsFunc(effs, func(e Effect) bool { return e.Kind == EffReleaseLock }) {
		t.Errorf("no lock release in %v", effs)
	}
}

func TestReject(t *testing.T) {
	r := atApproval(t, "0.14.1", "1.0.3", "hop2.migrations-up")
	now := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	if _, _, err := Transition(r, Event{Kind: EvReject, Step: "hop2.migrations-up", User: "UDEV"}, DefaultRules(), now); !errors.Is(err, ErrNotEligible) {
		t.Errorf("ineligible reject: %v", err)
	}
	r, _, err := Transition(r, Event{Kind: EvReject, Step: "hop2.migrations-up", User: "ULEAD1", Eligible: true, Reason: "not tonight"}, DefaultRules(), now)
	if err != nil || r.Status != RunAborted || !strings.Contains(r.AbortReason, "not tonight") {
		t.Fatalf("reject: %v, %s, %q", err, r.Status, r.AbortReason)
	}
}

func TestFailedStepRetryAndSkip(t *testing.T) {
	h := runTo(t, "hop2.apis-convert", map[string]error{"convert": errors.New("409 conflict")})
	h.approveAll()
	if h.run.Status != RunFailed {
		t.Fatalf("run is %s, want failed", h.run.Status)
	}
	st, _ := h.run.Step("hop2.apis-convert")
	if !strings.Contains(st.Error, "409 conflict") || len(h.run.Errors) != 1 {
		t.Errorf("error %q, history %v", st.Error, h.run.Errors)
	}
	h.must(Event{Kind: EvRetry, Step: "hop2.apis-convert", User: "ULEAD1"})
	st, _ = h.run.Step("hop2.apis-convert")
	if st.Status != StepSucceeded || st.Attempts != 2 {
		t.Errorf("after retry: %s, attempts %d", st.Status, st.Attempts)
	}
	if h.run.Current != "hop2.apis-delete" {
		t.Errorf("run at %s, want hop2.apis-delete", h.run.Current)
	}
	// apis-delete is skippable; a non-approver cannot skip it.
	if err := h.send(Event{Kind: EvSkip, Step: "hop2.apis-delete", User: "UDEV"}); !errors.Is(err, ErrNotEligible) {
		t.Errorf("ineligible skip: %v", err)
	}
	h.must(Event{Kind: EvSkip, Step: "hop2.apis-delete", User: "ULEAD1", Eligible: true, Reason: "deleted by hand"})
	st, _ = h.run.Step("hop2.apis-delete")
	if st.Status != StepSkipped || st.SkippedBy != "ULEAD1" {
		t.Errorf("skip: %+v", st)
	}
	// The last preflight stops the run before 1.0's `up`, naming the APIs.
	st, _ = h.run.Step("hop2.preflight-migrations")
	if h.run.Status != RunFailed || h.run.Current != st.ID || !strings.Contains(st.Error, "2 APIs under /apis") {
		t.Errorf("preflight with APIs: %s at %s, %q", h.run.Status, h.run.Current, st.Error)
	}
	// Skipping is not offered for a preflight; were it passed anyway, Kong
	// itself refuses and the failure says what to do.
	if err := h.send(Event{Kind: EvSkip, User: "ULEAD1", Eligible: true}); !errors.Is(err, ErrNotSkippable) {
		t.Errorf("skip preflight: %v", err)
	}
	r := h.run
	pre, _ := r.Step("hop2.preflight-migrations")
	pre.Status = StepSucceeded
	snap, _ := r.Step("hop2.snapshot")
	snap.Status, snap.Attempts = StepRunning, 1
	r.Current, r.Status = "hop2.snapshot", RunRunning
	h.run = r
	h.must(Event{Kind: EvStepSucceeded, Step: "hop2.snapshot", Check: &Check{OK: true}})
	h.approveAll()
	st, _ = h.run.Step("hop2.migrations-up")
	if h.run.Status != RunFailed || !strings.Contains(st.Error, "convert and delete the APIs first") {
		t.Errorf("migrations up with APIs: %s, %q", h.run.Status, st.Error)
	}
}

func TestResume(t *testing.T) {
	now := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	// running puts the run in the state the runner saved before it started
	// the side effect of step id.
	running := func(t *testing.T, from, id string) Run {
		r := atApproval(t, from, "1.0.3", id)
		for _, u := range []string{"ULEAD1", "ULEAD2"} {
			if r.Status != RunAwaitingApproval {
				break
			}
			var err error
			if r, _, err = Transition(r, Event{Kind: EvApprove, Step: id, User: u, Eligible: true, Fingerprint: r.Fingerprint}, DefaultRules(), now); err != nil {
				t.Fatal(err)
			}
		}
		if r.Status != RunRunning {
			t.Fatalf("%s is %s", id, r.Status)
		}
		return r
	}
	t.Run("non-idempotent running step is verified, done", func(t *testing.T) {
		r := running(t, "0.14.1", "hop2.migrations-up")
		r, effs, err := Transition(r, Event{Kind: EvResume}, DefaultRules(), now)
		if err != nil || len(effs) != 1 || effs[0].Kind != EffVerify || effs[0].Step != "hop2.migrations-up" {
			t.Fatalf("resume: %v, %v", err, effs)
		}
		r, _, err = Transition(r, Event{Kind: EvVerified, Step: "hop2.migrations-up", Check: &Check{OK: true}}, DefaultRules(), now)
		st, _ := r.Step("hop2.migrations-up")
		if err != nil || st.Status != StepSucceeded || st.Attempts != 1 || r.Current == "hop2.migrations-up" {
			t.Errorf("verified done: %v, %s, attempts %d, at %s", err, st.Status, st.Attempts, r.Current)
		}
	})
	t.Run("non-idempotent running step is verified, not done", func(t *testing.T) {
		r := running(t, "0.14.1", "hop2.migrations-up")
		r, _, _ = Transition(r, Event{Kind: EvResume}, DefaultRules(), now)
		r, _, err := Transition(r, Event{Kind: EvVerified, Step: "hop2.migrations-up", Check: &Check{Missing: []string{"schema is 0.14, want 1.0-pending"}}}, DefaultRules(), now)
		st, _ := r.Step("hop2.migrations-up")
		if err != nil || st.Status != StepFailed || r.Status != RunFailed || !strings.HasPrefix(st.Error, "interrupted") {
			t.Fatalf("verified not done: %v, %s, %s, %q", err, st.Status, r.Status, st.Error)
		}
		// It waits for a person: Retry runs it again.
		_, effs, err := Transition(r, Event{Kind: EvRetry, User: "ULEAD1"}, DefaultRules(), now)
		if err != nil || !slices.ContainsFunc(effs, func(e Effect) bool { return e.Kind == EffExecute && e.Attempt == 2 }) {
			t.Errorf("retry after interruption: %v, %v", err, effs)
		}
	})
	t.Run("idempotent running step whose Verify is partial runs again", func(t *testing.T) {
		r := running(t, "0.14.1", "hop2.traffic-shift")
		_, effs, err := Transition(r, Event{Kind: EvResume}, DefaultRules(), now)
		if err != nil || len(effs) != 1 || effs[0].Kind != EffExecute || effs[0].Attempt != 2 {
			t.Fatalf("resume idempotent: %v, %v", err, effs)
		}
	})
	t.Run("idempotent running step whose Verify is complete is verified first", func(t *testing.T) {
		r := running(t, "0.14.1", "hop2.migrations-finish")
		_, effs, err := Transition(r, Event{Kind: EvResume}, DefaultRules(), now)
		if err != nil || len(effs) != 1 || effs[0].Kind != EffVerify || effs[0].Step != "hop2.migrations-finish" {
			t.Fatalf("resume idempotent: %v, %v", err, effs)
		}
	})
	t.Run("pending approval is asked again", func(t *testing.T) {
		r := atApproval(t, "0.14.1", "1.0.3", "hop2.migrations-up")
		_, effs, err := Transition(r, Event{Kind: EvResume}, DefaultRules(), now)
		if err != nil || len(effs) != 2 || effs[0].Message != MsgApprovalRequest || effs[1].Kind != EffTimer {
			t.Fatalf("resume awaiting approval: %v, %v", err, effs)
		}
	})
	t.Run("waiting manual step is verified again", func(t *testing.T) {
		h := runTo(t, "hop2.decommission-old", nil)
		_, effs, err := Transition(h.run, Event{Kind: EvResume}, DefaultRules(), now)
		if err != nil || len(effs) != 1 || effs[0].Kind != EffVerify {
			t.Fatalf("resume manual: %v, %v", err, effs)
		}
	})
	t.Run("rollback in progress runs again", func(t *testing.T) {
		h := runTo(t, "hop2.decommission-old", nil)
		h.must(Event{Kind: EvAbort, User: "ULEAD1"})
		r, _, err := Transition(h.run, Event{Kind: EvRollback, Choice: RollbackTrafficBack, User: "ULEAD1", Eligible: true}, DefaultRules(), now)
		if err != nil {
			t.Fatal(err)
		}
		_, effs, err := Transition(r, Event{Kind: EvResume}, DefaultRules(), now)
		if err != nil || len(effs) != 1 || effs[0].Kind != EffRollback || effs[0].Rollback != RollbackTrafficBack {
			t.Fatalf("resume rollback: %v, %v", err, effs)
		}
	})
}

// interrupted runs the harness to step id (which waits for approval),
// approves it and stops where the runner would have been killed: the step
// running, attempt 1 durable, its Do not carried out. With effectDone the
// kill came after Do's side effect, before its outcome was recorded.
func interrupted(t *testing.T, id string, effectDone bool) *harness {
	t.Helper()
	h := runTo(t, id, nil)
	for _, u := range []string{"ULEAD1", "ULEAD2", "ULEAD3"} {
		if h.run.Status != RunAwaitingApproval {
			break
		}
		r, _, err := Transition(h.run, Event{Kind: EvApprove, Step: id, User: u, Eligible: true, Fingerprint: h.run.Fingerprint}, h.rules, h.now)
		if err != nil {
			t.Fatal(err)
		}
		h.run = r
	}
	if st, _ := h.run.Step(id); h.run.Status != RunRunning || st.Status != StepRunning || st.Attempts != 1 {
		t.Fatalf("not running %s: run %s, step %+v", id, h.run.Status, st)
	}
	if effectDone {
		p, _ := PlanPath(h.run.From, h.run.Target)
		def, _ := p.Step(id)
		if err := def.Do(context.Background(), h.env()); err != nil {
			t.Fatalf("%s Do: %v", id, err)
		}
	}
	return h
}

// After a crash inside a step, resume verifies it first when its Verify
// proves Do complete: done means succeeded without Do again (a completed
// `migrations finish` is not run twice); not done runs an idempotent step
// again and asks a person about any other. A step whose Verify could pass
// on a Do cut short runs again without a verification.
func TestResumeVerifiesInterruptedStep(t *testing.T) {
	boom := errors.New("connection refused")
	cases := []struct {
		name       string
		step       string
		effectDone bool
		// crash changes the gateway or the run as the kill left them.
		crash func(h *harness)
		// op is the fake gateway's operation Do performs.
		op string
		// want: the effects resume led to (verify, execute), the Do calls
		// during resume, the step's status and error prefix, attempts.
		effects  []EffectKind
		calls    int
		status   StepStatus
		errText  string
		attempts int
		runState RunStatus
		at       string // the run's current step after resume
	}{
		{name: "idempotent, done before the crash: succeeded without Do", step: "hop2.migrations-finish", effectDone: true,
			op: "migrate 1.0.3 finish", effects: []EffectKind{EffVerify}, calls: 0, status: StepSucceeded, attempts: 1, runState: RunSucceeded},
		{name: "idempotent, not done: runs again", step: "hop2.migrations-finish",
			op: "migrate 1.0.3 finish", effects: []EffectKind{EffVerify, EffExecute}, calls: 1, status: StepSucceeded, attempts: 2, runState: RunSucceeded},
		{name: "idempotent, Verify errors: runs again", step: "hop2.migrations-finish",
			crash: func(h *harness) { h.gw.failNext = map[string]error{"inspect": boom} },
			op:    "migrate 1.0.3 finish", effects: []EffectKind{EffVerify, EffExecute}, calls: 1, status: StepSucceeded, attempts: 2, runState: RunSucceeded},
		{name: "irreversible delete, done: succeeded without Do", step: "hop2.apis-delete", effectDone: true,
			op: "delete apis", effects: []EffectKind{EffVerify}, calls: 0, status: StepSucceeded, attempts: 1, runState: RunAwaitingApproval, at: "hop2.migrations-up"},
		{name: "not idempotent, done: succeeded", step: "hop2.migrations-up", effectDone: true,
			op: "migrate 1.0.3 up", effects: []EffectKind{EffVerify}, calls: 0, status: StepSucceeded, attempts: 1, runState: RunAwaitingApproval, at: "hop2.traffic-shift"},
		{name: "not idempotent, not done: waits for a person", step: "hop2.migrations-up",
			op: "migrate 1.0.3 up", effects: []EffectKind{EffVerify}, calls: 0, status: StepFailed,
			errText: "interrupted; not verified: schema is 0.14, want 1.0-pending", attempts: 1, runState: RunFailed, at: "hop2.migrations-up"},
		{name: "not idempotent, Verify errors: waits for a person", step: "hop2.migrations-up",
			crash: func(h *harness) { h.gw.failNext = map[string]error{"inspect": boom} },
			op:    "migrate 1.0.3 up", effects: []EffectKind{EffVerify}, calls: 0, status: StepFailed,
			errText: "interrupted; inspecting prod: connection refused", attempts: 1, runState: RunFailed, at: "hop2.migrations-up"},
		{name: "Verify reads only part of Do (weights, not bake and drain): runs again unverified", step: "hop2.traffic-shift",
			crash: func(h *harness) { h.gw.hop, h.gw.newPct["hop2"] = "hop2", 100 },
			op:    "shift hop2", effects: []EffectKind{EffExecute}, calls: 1, status: StepSucceeded, attempts: 2, runState: RunAwaitingApproval, at: "hop2.migrations-finish"},
		{name: "abort asked during the step, not done: not run again, the abort goes on", step: "hop2.migrations-finish",
			crash: func(h *harness) {
				r, _, err := Transition(h.run, Event{Kind: EvAbort, User: "ULEAD1"}, h.rules, h.now)
				if err != nil || !r.AbortRequested {
					h.t.Fatalf("abort while running: %v", err)
				}
				h.run = r
			},
			op: "migrate 1.0.3 finish", effects: []EffectKind{EffVerify}, calls: 0, status: StepFailed,
			errText: "interrupted; not verified: schema is 1.0-pending, want 1.0", attempts: 1, runState: RunAborting, at: "hop2.migrations-finish"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := interrupted(t, tc.step, tc.effectDone)
			if tc.crash != nil {
				tc.crash(h)
			}
			before, mark := h.gw.calls[tc.op], len(h.log)
			h.must(Event{Kind: EvResume})
			var got []EffectKind
			for _, e := range h.log[mark:] {
				if (e.Kind == EffVerify || e.Kind == EffExecute) && e.Step == tc.step {
					got = append(got, e.Kind)
				}
			}
			if !slices.Equal(got, tc.effects) {
				t.Errorf("effects on %s: %v, want %v", tc.step, got, tc.effects)
			}
			if n := h.gw.calls[tc.op] - before; n != tc.calls {
				t.Errorf("%s ran %d times on resume, want %d", tc.op, n, tc.calls)
			}
			st, _ := h.run.Step(tc.step)
			if st.Status != tc.status || !strings.HasPrefix(st.Error, tc.errText) || st.Attempts != tc.attempts {
				t.Errorf("step %s %q, attempts %d; want %s %q, attempts %d", st.Status, st.Error, st.Attempts, tc.status, tc.errText, tc.attempts)
			}
			if h.run.Status != tc.runState || h.run.Current != tc.at {
				t.Errorf("run %s at %q, want %s at %q", h.run.Status, h.run.Current, tc.runState, tc.at)
			}
		})
	}
}

// VerifyComplete promises that Verify judges Do's work: a step with it has
// both.
func TestVerifyCompleteStepsHaveDoAndVerify(t *testing.T) {
	p, err := PlanPath("0.13.1", "1.0.3")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, s := range p.Steps() {
		if s.VerifyComplete {
			n++
			if s.Do == nil || s.Verify == nil {
				t.Errorf("%s is VerifyComplete without both Do and Verify", s.ID)
			}
		}
	}
	if n == 0 {
		t.Error("no step is verified first on resume")
	}
}

// Manual steps: verified at once, polled on a timer while not done.
func TestManualStepPolling(t *testing.T) {
	h := newHarness(t, "0.14.1", "1.0.3")
	h.gw.apis = 0
	h.must(Event{Kind: EvStart, User: "UREQ"})
	for h.run.Current != "hop2.provision-new-nodes" {
		if h.run.Status != RunAwaitingApproval {
			t.Fatalf("stalled at %s (%s): %v", h.run.Current, h.run.Status, h.run.Errors)
		}
		h.approveAll()
	}
	if h.run.Status != RunWaitingManual || len(h.timers) == 0 {
		t.Fatalf("run %s, timers %v", h.run.Status, h.timers)
	}
	last := h.timers[len(h.timers)-1]
	if last.After != time.Minute {
		t.Errorf("poll after %v, want 1m", last.After)
	}
	// An older timer is stale; the live one re-verifies.
	if err := h.send(Event{Kind: EvTimer, Step: last.Step, Token: last.Token - 1}); !errors.Is(err, ErrStale) {
		t.Errorf("old timer: %v", err)
	}
	h.gw.started[gen103] = true
	h.must(Event{Kind: EvTimer, Step: last.Step, Token: last.Token})
	if st, _ := h.run.Step("hop2.provision-new-nodes"); st.Status != StepSucceeded {
		t.Errorf("after the nodes started: %s", st.Status)
	}
}

func TestDryRunRunsOnlyChecks(t *testing.T) {
	h := newHarness(t, "0.14.1", "1.0.3")
	p, _ := PlanPath("0.14.1", "1.0.3")
	inv, _ := h.gw.Inspect(t.Context(), "prod")
	h.run = NewRun("r2", "prod", "UREQ", "C1", p, inv, true, h.now)
	h.must(Event{Kind: EvStart, User: "UREQ"})
	if h.run.Status != RunSucceeded {
		t.Fatalf("dry run ended %s at %s", h.run.Status, h.run.Current)
	}
	for _, s := range p.Steps() {
		st, _ := h.run.Step(s.ID)
		want := StepSkipped
		if slices.Contains([]string{"hop2.preflight-current", "hop2.preflight-plugins", "hop2.apis-plan"}, s.ID) {
			want = StepSucceeded
		}
		if st.Status != want {
			t.Errorf("%s is %s, want %s", s.ID, st.Status, want)
		}
	}
	if h.gw.calls["migrate 1.0.3 up"] != 0 || h.gw.calls["convert"] != 0 || h.gw.calls["plan conversion"] == 0 {
		t.Errorf("dry run calls: %v", h.gw.calls)
	}
}

func TestTransitionDoesNotMutateItsInput(t *testing.T) {
	h := runTo(t, "hop2.migrations-finish", nil)
	before := cloneRun(h.run)
	_, _, err := Transition(h.run, Event{Kind: EvApprove, Step: "hop2.migrations-finish", User: "ULEAD1", Eligible: true, Fingerprint: h.run.Fingerprint}, DefaultRules(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(before, h.run) {
		t.Error("Transition changed the run it was given")
	}
}

// preflightGateway is a gateway whose adapter has its own preflight, as
// package kong does; the plan uses it instead of its fallback checks.
type preflightGateway struct {
	*fakeGateway
	hops []string
}

func (p *preflightGateway) Preflight(ctx context.Context, gw, hop string, j Journal) (Check, error) {
	p.hops = append(p.hops, hop)
	if hop == "2" {
		if v, _ := j.Get(ConfirmPluginKeyPrefix + "okta-auth"); v != string(ChoiceApprove) {
			return Check{Missing: []string{"okta-auth needs an approver's confirmation"},
				Pause: &Pause{Kind: PauseApproval, Key: ConfirmPluginKeyPrefix + "okta-auth", Choices: []Choice{ChoiceApprove, ChoiceAbort}}}, nil
		}
		if p.apis > 0 {
			return Check{Missing: []string{"APIs left"}}, nil
		}
	}
	return Check{OK: true}, nil
}

func TestPlanUsesTheAdapterPreflight(t *testing.T) {
	h := newHarness(t, "0.13.1", "1.0.3")
	pg := &preflightGateway{fakeGateway: h.gw}
	h.onManual["hop1.start-new-cluster"] = func() { h.gw.started[gen0141] = true }
	h.onManual["hop1.decommission-old"] = func() { h.gw.started["0.13.1"] = false }
	h.onManual["hop2.provision-new-nodes"] = func() { h.gw.started[gen103] = true }
	h.onManual["hop2.decommission-old"] = func() { h.gw.started[gen0141] = false }
	h.kong = pg
	h.must(Event{Kind: EvStart, User: "UREQ"})
	drive(t, h)
	if h.run.Status != RunSucceeded {
		t.Fatalf("run ended %s at %s: %v", h.run.Status, h.run.Current, h.run.Errors)
	}
	if !reflect.DeepEqual(pg.hops, []string{"1", "2"}) {
		t.Errorf("adapter preflight ran for hops %v, want [1 2]", pg.hops)
	}
	// The custom-plugin approval was recorded where the adapter reads it,
	// so no pause was needed.
	if got := h.posts(MsgPaused); len(got) != 0 {
		t.Errorf("paused at %v", got)
	}
}

// A run is stored as JSON between transitions: it must come back equal, and
// the engine must carry on from the decoded copy.
func TestRunJSONRoundTrip(t *testing.T) {
	h := runTo(t, "hop2.migrations-finish", nil)
	h.must(Event{Kind: EvApprove, Step: "hop2.migrations-finish", User: "ULEAD1", Eligible: true, Fingerprint: h.run.Fingerprint})
	b, err := json.Marshal(h.run)
	if err != nil {
		t.Fatal(err)
	}
	var back Run
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	b2, err := json.Marshal(back)
	if err != nil || string(b2) != string(b) {
		t.Fatalf("round trip changed the run (%v):\n%s\n%s", err, b, b2)
	}
	if back.Fingerprint != h.run.Fingerprint || len(back.Approvals["hop2.migrations-finish"]) != 1 || back.Journal[ConfirmPluginKeyPrefix+"okta-auth"] != "approve" {
		t.Fatalf("decoded run lost state: %+v", back)
	}
	next, effs, err := Transition(back, Event{Kind: EvApprove, Step: "hop2.migrations-finish", User: "ULEAD2", Eligible: true, Fingerprint: back.Fingerprint}, DefaultRules(), h.now)
	if err != nil || next.Status != RunRunning || len(effs) == 0 {
		t.Errorf("after decoding: %v, %s, %v", err, next.Status, effs)
	}
}
