package steps

import (
	"fmt"
	"time"
)

// ApprovalDue is when the engine next has something to do for an approval
// request of st: remind the approvers (RemindAfter after the request or the
// last reminder) or expire it (ExpireAfter after the request, when set). A
// scheduler that drives timers from stored state sends EvTimer at or after
// this time. Zero when st does not wait for an approval.
func (r ApprovalRules) ApprovalDue(st StepState) time.Time {
	if st.Status != StepAwaitingApproval || st.AskedAt.IsZero() {
		return time.Time{}
	}
	r = r.Normalize()
	last := st.AskedAt
	if st.RemindedAt.After(last) {
		last = st.RemindedAt
	}
	due := last.Add(r.RemindAfter)
	if r.ExpireAfter > 0 {
		if exp := st.AskedAt.Add(r.ExpireAfter); exp.Before(due) {
			due = exp
		}
	}
	return due
}

// askApproval puts st in front of the approvers, with its reminder timer.
func (m *machine) askApproval(st *StepState) {
	st.Status = StepAwaitingApproval
	st.AskedAt, st.RemindedAt = m.now, time.Time{}
	m.r.Status = RunAwaitingApproval
	m.post(MsgApprovalRequest, st.ID)
	m.approvalTimer(st)
}

func (m *machine) approvalTimer(st *StepState) {
	due := m.rules.ApprovalDue(*st)
	if due.IsZero() {
		m.timer(st.ID, m.rules.RemindAfter)
		return
	}
	m.timer(st.ID, max(due.Sub(m.now), 0))
}

// approvalTimerFired reminds the approvers or expires the request, whichever
// is due; an early timer (a scheduler's, or one re-armed on resume) only
// re-arms.
func (m *machine) approvalTimerFired(st *StepState) error {
	if st.AskedAt.IsZero() {
		// A request made before AskedAt was recorded: count from now.
		st.AskedAt = m.now
	}
	if m.rules.ExpireAfter > 0 && !m.now.Before(st.AskedAt.Add(m.rules.ExpireAfter)) {
		m.expire(st)
		return nil
	}
	if due := m.rules.ApprovalDue(*st); !due.IsZero() && m.now.Before(due) {
		m.approvalTimer(st)
		return nil
	}
	st.RemindedAt = m.now
	m.post(MsgReminder, st.ID)
	m.approvalTimer(st)
	return nil
}

// expire ends an approval request nobody answered: the request's buttons
// go (the request is redrawn for a paused run), the run stays paused at the
// step, which has not started, and the step's message offers to ask again.
// Approvals already given for the current plan still count.
func (m *machine) expire(st *StepState) {
	def, _ := m.plan.Step(st.ID)
	st.Status = StepPaused
	m.r.Status = RunPaused
	st.Check = &Check{Pause: &Pause{
		Kind: PauseExpired,
		Key:  fmt.Sprintf("expired/%s/%d", st.ID, m.r.Seq+1),
		Message: fmt.Sprintf("The approval request for %s expired: it was not approved within %s of %s. The run is paused and nothing was started; re-request the approval or abort the run.",
			def.Title, m.rules.ExpireAfter, st.AskedAt.UTC().Format("Mon 2 Jan 15:04 MST")),
		Choices: []Choice{ChoiceRerequest, ChoiceAbort},
	}}
	m.update(MsgApprovalRequest, st.ID)
	m.post(MsgPaused, st.ID)
}

// rerequest re-opens an expired approval request; the requester may ask
// again as well as an approver.
func (m *machine) rerequest(st *StepState, p *Pause, ev Event) error {
	if p.Kind != PauseExpired {
		return fmt.Errorf("%w: %q is not an answer to %q", ErrInvalidEvent, ev.Answer, p.Message)
	}
	if !ev.Eligible && ev.User != m.r.Requester {
		return fmt.Errorf("%w: %s may not re-request the approval of %s", ErrNotEligible, ev.User, st.ID)
	}
	m.note(p.Key, string(ev.Answer), ev.User)
	st.Check = nil
	m.update(MsgPaused, st.ID)
	m.askApproval(st)
	// The request message is edited in place; the reminder is a new post
	// that mentions the approvers.
	m.post(MsgReminder, st.ID)
	return nil
}
