package steps

import (
	"fmt"
	"slices"
	"time"
)

// WindowGate says whether a change window is open for a gateway. Package
// schedule implements it from config (a cron start and a duration per
// window). It must be a pure function of its arguments: Transition stays
// deterministic given now.
type WindowGate interface {
	Window(gateway string, now time.Time) WindowState
}

// WindowState is a gate's answer for one gateway at one instant.
type WindowState struct {
	// Restricted: some window applies to the gateway. When false no window
	// is configured for it and steps start at any time.
	Restricted bool `json:"restricted"`
	// Open: now is inside a window; Closes is when it ends.
	Open   bool      `json:"open"`
	Name   string    `json:"name,omitempty"`
	Closes time.Time `json:"closes,omitzero"`
	// Opens is the start of the next window when closed (zero: none will).
	Opens time.Time `json:"opens,omitzero"`
}

// The pause kinds and choices of the engine's own waits: a step waiting for
// its change window, and an approval request that expired.
const (
	PauseWindow  PauseKind = "window"
	PauseExpired PauseKind = "expired"

	// ChoiceOverrideWindow starts the step outside its window. It needs an
	// eligible approver who is neither the requester nor one of the step's
	// approvers (an extra person), and is recorded in the journal and audit.
	ChoiceOverrideWindow Choice = "override-window"
	// ChoiceRerequest asks for the expired approval again.
	ChoiceRerequest Choice = "re-request"
)

// WindowText says when a closed window opens, for the channel:
// "waiting for the window saturday-night that opens Sat 5 Dec 02:00 UTC".
func (w WindowState) WindowText() string {
	if w.Opens.IsZero() {
		return "no change window will open for this gateway; an approver can override"
	}
	name := ""
	if w.Name != "" {
		name = " " + w.Name
	}
	return fmt.Sprintf("waiting for the window%s that opens %s", name, w.Opens.UTC().Format("Mon 2 Jan 15:04 MST"))
}

// windowed reports whether def may only start inside a change window: a
// step that changes the gateway (not a read-only check) with high or
// irreversible risk. Inside an outage group only the group's first step is
// gated: once traffic is stopped, waiting for a window halfway would
// lengthen the outage, so the group runs to its end.
func (m *machine) windowed(def Step) bool {
	if m.rules.Windows == nil || m.r.DryRun || def.Kind == KindCheck {
		return false
	}
	risk := def.Risk
	if def.Group != "" {
		if m.plan.GroupLeader(def.ID) != def.ID {
			return false
		}
		risk, _ = m.plan.ApprovalRisk(def.ID)
	}
	return risk == RiskHigh || risk == RiskIrreversible
}

// waitForWindow holds a step that may not start now and reports whether it
// did: the step pauses with the window's text, an override and an abort
// button, and a timer wakes the run when the window opens.
func (m *machine) waitForWindow(st *StepState, def Step) bool {
	if !m.windowed(def) {
		return false
	}
	w := m.rules.Windows.Window(m.r.Gateway, m.now)
	if !w.Restricted || w.Open {
		return false
	}
	st.Status = StepPaused
	m.r.Status = RunPaused
	st.Check = &Check{Pause: &Pause{
		Kind:    PauseWindow,
		Key:     fmt.Sprintf("window/%s/%d", st.ID, m.r.Seq+1),
		Message: fmt.Sprintf("%s is %s risk and starts only inside a change window: %s.", def.Title, def.Risk, w.WindowText()),
		Choices: []Choice{ChoiceOverrideWindow, ChoiceAbort},
	}}
	m.post(MsgPaused, st.ID)
	if !w.Opens.IsZero() {
		m.timer(st.ID, max(w.Opens.Sub(m.now), 0))
	}
	return true
}

// windowTimer handles the timer of a step waiting for its window: start it
// if the window is open, else wait again (the window may have closed again
// while the bot was down).
func (m *machine) windowTimer(st *StepState, def Step) error {
	st.Check = nil
	st.Status = StepPending
	if m.waitForWindow(st, def) {
		return nil
	}
	m.beginNow(st, def)
	return nil
}

// overrideWindow starts a step outside its window on an extra approver's
// word.
func (m *machine) overrideWindow(st *StepState, def Step, p *Pause, ev Event) error {
	if !ev.Eligible {
		return fmt.Errorf("%w: %s may not override the change window for %s", ErrNotEligible, ev.User, st.ID)
	}
	if ev.User == m.r.Requester {
		return fmt.Errorf("%w: %s started run %s; overriding the change window needs another approver", ErrSelfApproval, ev.User, m.r.ID)
	}
	for _, a := range m.r.Approvals[m.plan.GroupLeader(def.ID)] {
		if a.User == ev.User && a.Fingerprint == m.r.Fingerprint {
			return fmt.Errorf("%w: %s already approved %s; overriding its change window needs an extra approver", ErrDuplicate, ev.User, st.ID)
		}
	}
	m.note(p.Key, string(ev.Answer), ev.User)
	st.Check = nil
	m.beginNow(st, def)
	return nil
}

func (m *machine) note(key, value, user string) {
	if m.r.Journal == nil {
		m.r.Journal = map[string]string{}
	}
	m.r.Journal[key] = value
	m.r.Journal[key+".by"] = user
	m.r.Journal[key+".at"] = m.now.UTC().Format(time.RFC3339)
}

// ownPause handles answers to the engine's own pauses (window, expired);
// handled is false for a step's pause, which answer handles.
func (m *machine) ownPause(st *StepState, p *Pause, ev Event) (handled bool, err error) {
	if p.Kind != PauseWindow && p.Kind != PauseExpired {
		return false, nil
	}
	_, def, err := m.current(st.ID, "paused")
	if err != nil {
		return true, err
	}
	switch ev.Answer {
	case ChoiceAbort:
		if !ev.Eligible {
			return true, fmt.Errorf("%w: %s may not abort at %s", ErrNotEligible, ev.User, st.ID)
		}
		m.doAbort(ev.User, "aborted at "+st.ID+": "+p.Message)
		return true, nil
	case ChoiceOverrideWindow:
		return true, m.overrideWindow(st, def, p, ev)
	case ChoiceRerequest:
		return true, m.rerequest(st, p, ev)
	}
	return true, fmt.Errorf("%w: %q is not an answer to %q", ErrInvalidEvent, ev.Answer, p.Message)
}

// resumeOwnPause re-arms what a paused run waits on after a restart: a step
// waiting for its window gets its timer again (at once if the window opened
// meanwhile).
func (m *machine) resumeOwnPause() {
	st, ok := m.r.Step(m.r.Current)
	if !ok || st.Check == nil || st.Check.Pause == nil || st.Check.Pause.Kind != PauseWindow {
		return
	}
	w := m.rules.Windows
	if w == nil {
		m.timer(st.ID, 0)
		return
	}
	s := w.Window(m.r.Gateway, m.now)
	switch {
	case !s.Restricted || s.Open:
		m.timer(st.ID, 0)
	case !s.Opens.IsZero():
		m.timer(st.ID, max(s.Opens.Sub(m.now), 0))
	}
}

func pausedFor(st *StepState, kinds ...PauseKind) bool {
	return st.Status == StepPaused && st.Check != nil && st.Check.Pause != nil && slices.Contains(kinds, st.Check.Pause.Kind)
}
