package steps

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// gateAt is a change window gate over fixed windows: [start, start+d).
type gateAt struct {
	starts []time.Time
	d      time.Duration
}

func (g gateAt) Window(_ string, now time.Time) WindowState {
	s := WindowState{Restricted: true, Name: "w"}
	for _, st := range g.starts {
		if !now.Before(st) && now.Before(st.Add(g.d)) {
			s.Open, s.Closes = true, st.Add(g.d)
			return s
		}
		if st.After(now) && (s.Opens.IsZero() || st.Before(s.Opens)) {
			s.Opens = st
		}
	}
	return s
}

func hasEffect(effs []Effect, kind EffectKind, msg MessageKind) bool {
	return slices.ContainsFunc(effs, func(e Effect) bool { return e.Kind == kind && (msg == "" || e.Message == msg) })
}

func timerOf(t *testing.T, effs []Effect) Effect {
	t.Helper()
	for _, e := range effs {
		if e.Kind == EffTimer {
			return e
		}
	}
	t.Fatalf("no timer in %+v", effs)
	return Effect{}
}

func TestChangeWindowHoldsHighSteps(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC) // a Friday
	open := time.Date(2026, 12, 5, 2, 0, 0, 0, time.UTC)
	rules := DefaultRules()
	rules.Windows = gateAt{starts: []time.Time{t0.Add(-time.Hour), open, open.Add(7 * 24 * time.Hour)}, d: 2 * time.Hour}
	approve := func(t *testing.T, r Run, step, user string, at time.Time) (Run, []Effect) {
		t.Helper()
		r, effs, err := Transition(r, Event{Kind: EvApprove, Step: step, User: user, Eligible: true, Fingerprint: r.Fingerprint}, rules, at)
		if err != nil {
			t.Fatal(err)
		}
		return r, effs
	}

	t.Run("inside the window the step starts", func(t *testing.T) {
		r := atApproval(t, "0.14.1", "1.0.3", "hop2.migrations-up")
		r, effs := approve(t, r, "hop2.migrations-up", "ULEAD1", t0.Add(-30*time.Minute))
		if r.Status != RunRunning || !hasEffect(effs, EffExecute, "") {
			t.Fatalf("run %s, effects %+v", r.Status, effs)
		}
	})

	t.Run("the window closed while the step waited for approval", func(t *testing.T) {
		// Asked inside the window, approved after it closed at t0+1h.
		r := atApproval(t, "0.14.1", "1.0.3", "hop2.migrations-up")
		r, effs := approve(t, r, "hop2.migrations-up", "ULEAD1", t0.Add(90*time.Minute))
		st, _ := r.Step("hop2.migrations-up")
		if r.Status != RunPaused || st.Status != StepPaused || hasEffect(effs, EffExecute, "") {
			t.Fatalf("run %s step %s effects %+v", r.Status, st.Status, effs)
		}
		p := st.Check.Pause
		if p.Kind != PauseWindow || !strings.Contains(p.Message, "waiting for the window w that opens Sat 5 Dec 02:00 UTC") {
			t.Fatalf("pause %+v", p)
		}
		if tm := timerOf(t, effs); tm.After != open.Sub(t0.Add(90*time.Minute)) {
			t.Errorf("timer after %s", tm.After)
		}
		// The window opens: the timer starts the step.
		r2, effs, err := Transition(r, Event{Kind: EvTimer, Step: st.ID, Token: r.TimerToken}, rules, open.Add(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if r2.Status != RunRunning || !hasEffect(effs, EffExecute, "") {
			t.Fatalf("after the window opened: run %s, effects %+v", r2.Status, effs)
		}
		// The bot was down for the whole window: the late timer waits for the next.
		r3, effs, err := Transition(r, Event{Kind: EvTimer, Step: st.ID, Token: r.TimerToken}, rules, open.Add(3*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		st3, _ := r3.Step(st.ID)
		if r3.Status != RunPaused || hasEffect(effs, EffExecute, "") || !strings.Contains(st3.Check.Pause.Message, "opens Sat 12 Dec 02:00 UTC") {
			t.Fatalf("late timer: run %s, pause %+v", r3.Status, st3.Check.Pause)
		}
		// A restart re-arms the wait.
		r4, effs, err := Transition(r3, Event{Kind: EvResume}, rules, open.Add(4*time.Hour))
		if err != nil || r4.Status != RunPaused || timerOf(t, effs).After != open.Add(7*24*time.Hour).Sub(open.Add(4*time.Hour)) {
			t.Fatalf("resume: %v %s %+v", err, r4.Status, effs)
		}
	})

	t.Run("override needs an extra approver", func(t *testing.T) {
		r := atApproval(t, "0.14.1", "1.0.3", "hop2.migrations-up")
		r, _ = approve(t, r, "hop2.migrations-up", "ULEAD1", t0.Add(2*time.Hour))
		st, _ := r.Step("hop2.migrations-up")
		key := st.Check.Pause.Key
		ev := func(user string, eligible bool) Event {
			return Event{Kind: EvAnswer, Step: st.ID, User: user, Eligible: eligible, Key: key, Answer: ChoiceOverrideWindow}
		}
		for _, c := range []struct {
			name string
			ev   Event
			want error
		}{
			{"not an approver", ev("UOPS", false), ErrNotEligible},
			{"the requester", ev("UREQ", true), ErrSelfApproval},
			{"the step's own approver", ev("ULEAD1", true), ErrDuplicate},
		} {
			if _, _, err := Transition(r, c.ev, rules, t0.Add(3*time.Hour)); !errors.Is(err, c.want) {
				t.Errorf("%s: %v, want %v", c.name, err, c.want)
			}
		}
		r2, effs, err := Transition(r, ev("ULEAD2", true), rules, t0.Add(3*time.Hour))
		if err != nil || r2.Status != RunRunning || !hasEffect(effs, EffExecute, "") {
			t.Fatalf("override: %v %s %+v", err, r2.Status, effs)
		}
		if r2.Journal[key] != string(ChoiceOverrideWindow) || r2.Journal[key+".by"] != "ULEAD2" {
			t.Errorf("journal %v", r2.Journal)
		}
	})

	t.Run("normal, check and mid-group steps are not held", func(t *testing.T) {
		at := t0.Add(2 * time.Hour)
		r := atApproval(t, "0.14.1", "1.0.3", "hop2.apis-convert")
		r, effs := approve(t, r, "hop2.apis-convert", "ULEAD1", at)
		if r.Status != RunRunning || !hasEffect(effs, EffExecute, "") {
			t.Errorf("normal step: %s", r.Status)
		}
		p, _ := PlanPath("0.13.1", "0.14.1")
		m := &machine{plan: p, rules: rules.Normalize(), now: at}
		for _, id := range []string{"hop1.migrations-up", "hop1.preflight-current"} {
			def, _ := p.Step(id)
			if m.windowed(def) {
				t.Errorf("%s is held", id)
			}
		}
		if def, _ := p.Step("hop1.termination-on"); !m.windowed(def) {
			t.Error("the outage group's first step is not held")
		}
	})
}

func TestApprovalReminderAndExpiry(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	rules := DefaultRules()
	rules.RemindAfter, rules.ExpireAfter = 30*time.Minute, 2*time.Hour
	r := atApproval(t, "0.14.1", "1.0.3", "hop2.migrations-finish")
	r.Steps[slices.IndexFunc(r.Steps, func(s StepState) bool { return s.ID == "hop2.migrations-finish" })].AskedAt = t0
	step := "hop2.migrations-finish"
	timer := func(r Run, at time.Time) (Run, []Effect) {
		t.Helper()
		n, effs, err := Transition(r, Event{Kind: EvTimer, Step: step, Token: r.TimerToken}, rules, at)
		if err != nil {
			t.Fatal(err)
		}
		return n, effs
	}
	if st, _ := r.Step(step); rules.ApprovalDue(*st) != t0.Add(30*time.Minute) {
		t.Fatalf("due %s", rules.ApprovalDue(*st))
	}
	r, effs := timer(r, t0.Add(10*time.Minute))
	if hasEffect(effs, EffPost, MsgReminder) {
		t.Fatal("reminded early")
	}
	r, effs = timer(r, t0.Add(30*time.Minute))
	if !hasEffect(effs, EffPost, MsgReminder) {
		t.Fatalf("no reminder: %+v", effs)
	}
	r, _, _ = Transition(r, Event{Kind: EvApprove, Step: step, User: "ULEAD1", Eligible: true, Fingerprint: r.Fingerprint}, rules, t0.Add(time.Hour))
	r, effs = timer(r, t0.Add(2*time.Hour))
	st, _ := r.Step(step)
	if r.Status != RunPaused || st.Status != StepPaused || st.Check.Pause.Kind != PauseExpired ||
		!hasEffect(effs, EffUpdate, MsgApprovalRequest) || !hasEffect(effs, EffPost, MsgPaused) || hasEffect(effs, EffExecute, "") {
		t.Fatalf("expiry: run %s step %s effects %+v", r.Status, st.Status, effs)
	}
	if _, _, err := Transition(r, Event{Kind: EvApprove, Step: step, User: "ULEAD2", Eligible: true, Fingerprint: r.Fingerprint}, rules, t0.Add(3*time.Hour)); !errors.Is(err, ErrStale) {
		t.Errorf("approve after expiry: %v", err)
	}
	re := Event{Kind: EvAnswer, Step: step, Key: st.Check.Pause.Key, Answer: ChoiceRerequest}
	re.User = "UOPS"
	if _, _, err := Transition(r, re, rules, t0.Add(3*time.Hour)); !errors.Is(err, ErrNotEligible) {
		t.Errorf("re-request by a bystander: %v", err)
	}
	re.User = "UREQ"
	r, effs, err := Transition(r, re, rules, t0.Add(3*time.Hour))
	if err != nil || r.Status != RunAwaitingApproval || !hasEffect(effs, EffPost, MsgApprovalRequest) || !hasEffect(effs, EffPost, MsgReminder) {
		t.Fatalf("re-request: %v %s %+v", err, r.Status, effs)
	}
	// The approval given before the expiry still counts: one more is enough.
	r, effs, err = Transition(r, Event{Kind: EvApprove, Step: step, User: "ULEAD2", Eligible: true, Fingerprint: r.Fingerprint}, rules, t0.Add(3*time.Hour))
	if err != nil || r.Status != RunRunning || !hasEffect(effs, EffExecute, "") {
		t.Fatalf("approve after re-request: %v %s", err, r.Status)
	}
}
