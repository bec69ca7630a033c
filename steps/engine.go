package steps

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Transition applies one event to a run and returns the new run and the
// effects the runner must carry out, in order, after persisting the new run.
// It is pure: no I/O, no clock but now, and run is never modified.
//
// A refused event (stale, duplicate, not eligible, self-approval, not
// skippable, invalid) returns the unchanged run, no effects and an error
// wrapping one of the sentinels in errors.go. The one exception is
// ErrFingerprintMismatch: the run is unchanged but the effects re-request the
// approval with the current fingerprint.
func Transition(run Run, ev Event, rules ApprovalRules, now time.Time) (Run, []Effect, error) {
	plan, err := PlanPath(run.From, run.Target)
	if err != nil {
		return run, nil, fmt.Errorf("%w: run %s has no plan: %w", ErrInvalidEvent, run.ID, err)
	}
	if run.Status.Terminal() {
		return run, nil, fmt.Errorf("%w: run %s is %s", ErrStale, run.ID, run.Status)
	}
	m := &machine{r: cloneRun(run), plan: plan, rules: rules.Normalize(), now: now}
	if err := m.apply(ev); err != nil {
		return run, m.onError, err
	}
	m.r.Seq++
	m.r.UpdatedAt = now
	return m.r, m.effects, nil
}

type machine struct {
	r       Run
	plan    Plan
	rules   ApprovalRules
	now     time.Time
	effects []Effect
	onError []Effect
}

func (m *machine) emit(e Effect) {
	e.RunID = m.r.ID
	m.effects = append(m.effects, e)
}

func (m *machine) post(kind MessageKind, step string) {
	m.emit(Effect{Kind: EffPost, Message: kind, Step: step})
}

func (m *machine) update(kind MessageKind, step string) {
	m.emit(Effect{Kind: EffUpdate, Message: kind, Step: step})
}

func (m *machine) timer(step string, after time.Duration) {
	m.r.TimerToken++
	m.emit(Effect{Kind: EffTimer, Step: step, After: after, Token: m.r.TimerToken})
}

func (m *machine) apply(ev Event) error {
	switch ev.Kind {
	case EvStart:
		if m.r.Status != RunPending {
			return fmt.Errorf("%w: run %s is already %s", ErrStale, m.r.ID, m.r.Status)
		}
		m.post(MsgSummary, "")
		m.advance()
		return nil
	case EvApprove:
		return m.approve(ev)
	case EvReject:
		return m.reject(ev)
	case EvStepSucceeded, EvStepFailed:
		return m.outcome(ev)
	case EvVerified:
		return m.verified(ev)
	case EvRetry:
		return m.retry(ev)
	case EvSkip:
		return m.skip(ev)
	case EvAbort:
		return m.abort(ev)
	case EvResume:
		return m.resume()
	case EvTimer:
		return m.timerFired(ev)
	case EvMarkDone:
		return m.markDone(ev)
	case EvAnswer:
		return m.answer(ev)
	case EvRollback:
		return m.rollback(ev)
	case EvRollbackDone:
		return m.rollbackDone(ev)
	case EvReinspect:
		return m.reinspect(ev)
	}
	return fmt.Errorf("%w: unknown event kind %q", ErrInvalidEvent, ev.Kind)
}

// current returns the current step's state and definition, checking that the
// event names it (an empty ev.Step means "the current one").
func (m *machine) current(evStep string, what string) (*StepState, Step, error) {
	if m.r.Current == "" {
		return nil, Step{}, fmt.Errorf("%w: run %s has no current step (%s)", ErrStale, m.r.ID, m.r.Status)
	}
	if evStep != "" && evStep != m.r.Current {
		if st, ok := m.r.Step(evStep); ok {
			return nil, Step{}, fmt.Errorf("%w: step %s is %s, not %s; the run is at %s", ErrStale, evStep, st.Status, what, m.r.Current)
		}
		return nil, Step{}, fmt.Errorf("%w: run %s has no step %q", ErrInvalidEvent, m.r.ID, evStep)
	}
	st, _ := m.r.Step(m.r.Current)
	def, ok := m.plan.Step(m.r.Current)
	if !ok || st == nil {
		return nil, Step{}, fmt.Errorf("%w: step %s is not in the plan", ErrInvalidEvent, m.r.Current)
	}
	return st, def, nil
}

// advance enters the first pending step, or ends the run.
func (m *machine) advance() {
	for i := range m.r.Steps {
		if m.r.Steps[i].Status == StepPending {
			m.enter(i)
			return
		}
	}
	m.r.Status = RunSucceeded
	m.r.Current = ""
	m.r.FinishedAt = m.now
	m.post(MsgSucceeded, "")
	m.emit(Effect{Kind: EffReleaseLock})
}

// enter moves the run onto step i: skipped, waiting for approval, waiting
// for people, or running.
func (m *machine) enter(i int) {
	st := &m.r.Steps[i]
	def, _ := m.plan.Step(st.ID)
	m.r.Current = st.ID
	if reason, skip := m.autoSkip(def); skip {
		st.Status, st.SkippedBy, st.SkipReason, st.EndedAt = StepSkipped, "plan", reason, m.now
		m.post(MsgStepSkipped, st.ID)
		m.advance()
		return
	}
	if m.needsApproval(def) {
		m.askApproval(st)
		return
	}
	m.begin(st, def)
}

// begin starts a step whose approval (if any) is in place, unless it must
// wait for its change window (window.go).
func (m *machine) begin(st *StepState, def Step) {
	if m.waitForWindow(st, def) {
		return
	}
	m.beginNow(st, def)
}

func (m *machine) beginNow(st *StepState, def Step) {
	st.StartedAt = m.now
	if def.Kind == KindManual {
		st.Status = StepWaitingManual
		m.r.Status = RunWaitingManual
		m.post(MsgManual, st.ID)
		if !def.ConfirmDone {
			m.emit(Effect{Kind: EffVerify, Step: st.ID})
		}
		return
	}
	m.execute(st)
}

func (m *machine) execute(st *StepState) {
	st.Status = StepRunning
	st.Attempts++
	st.Error = ""
	m.r.Status = RunRunning
	m.post(MsgStepStarted, st.ID)
	m.emit(Effect{Kind: EffExecute, Step: st.ID, Attempt: st.Attempts})
}

func (m *machine) autoSkip(def Step) (string, bool) {
	if m.r.DryRun {
		if def.Kind != KindCheck || def.Gate {
			return "dry run: changes nothing", true
		}
		if len(m.r.Path) > 0 && def.Hop != m.r.Path[0] {
			return "dry run: depends on the hops before it", true
		}
		// Checks after the first change (smoke probes, say) would only
		// report that the change has not happened.
		for _, s := range m.plan.Steps() {
			if s.ID == def.ID {
				break
			}
			if s.Kind != KindCheck {
				return "dry run: depends on the changes before it", true
			}
		}
	}
	if def.SkipWhen != nil {
		if skip, reason := def.SkipWhen(m.r.Journal); skip {
			return reason, true
		}
	}
	return "", false
}

// needsApproval: a gated step, or the first step of a gated group, waits
// until its approval key has enough approvals for the current fingerprint.
func (m *machine) needsApproval(def Step) bool {
	_, gated := m.plan.ApprovalRisk(def.ID)
	if !gated {
		return false
	}
	key := m.plan.GroupLeader(def.ID)
	if !def.Gate && key != def.ID {
		return false
	}
	return !m.approved(def.ID)
}

func (m *machine) approved(id string) bool {
	risk, _ := m.plan.ApprovalRisk(id)
	rule := m.rules.For(risk)
	return m.countApprovals(m.plan.GroupLeader(id), rule) >= rule.Approvers
}

func (m *machine) countApprovals(key string, rule Rule) int {
	seen := map[string]bool{}
	for _, a := range m.r.Approvals[key] {
		if a.Fingerprint != m.r.Fingerprint || (!rule.AllowRequester && a.User == m.r.Requester) {
			continue
		}
		seen[a.User] = true
	}
	return len(seen)
}

func (m *machine) approve(ev Event) error {
	if ev.User == "" {
		return fmt.Errorf("%w: approval without a user", ErrInvalidEvent)
	}
	if m.r.Status != RunAwaitingApproval {
		return m.staleDecision(ev.Step, "awaiting approval")
	}
	st, def, err := m.current(ev.Step, "awaiting approval")
	if err != nil {
		return err
	}
	if ev.Fingerprint != m.r.Fingerprint {
		m.onError = []Effect{{Kind: EffPost, RunID: m.r.ID, Message: MsgApprovalRequest, Step: st.ID}}
		return fmt.Errorf("%w: the approval was given for plan %s but run %s is now at %s; approval requested again", ErrFingerprintMismatch, short(ev.Fingerprint), m.r.ID, short(m.r.Fingerprint))
	}
	if !ev.Eligible {
		return fmt.Errorf("%w: %s may not approve %s", ErrNotEligible, ev.User, st.ID)
	}
	risk, _ := m.plan.ApprovalRisk(def.ID)
	rule := m.rules.For(risk)
	if !rule.AllowRequester && ev.User == m.r.Requester {
		return fmt.Errorf("%w: %s started run %s; a %s step needs %s", ErrSelfApproval, ev.User, m.r.ID, risk, rule.Text())
	}
	key := m.plan.GroupLeader(def.ID)
	for _, a := range m.r.Approvals[key] {
		if a.User == ev.User && a.Fingerprint == m.r.Fingerprint {
			return fmt.Errorf("%w: %s already approved %s; it needs %s", ErrDuplicate, ev.User, st.ID, rule.Text())
		}
	}
	if m.r.Approvals == nil {
		m.r.Approvals = map[string][]Approval{}
	}
	m.r.Approvals[key] = append(m.r.Approvals[key], Approval{User: ev.User, At: m.now, Fingerprint: ev.Fingerprint})
	m.update(MsgApprovalProgress, st.ID)
	if !m.approved(def.ID) {
		return nil
	}
	m.begin(st, def)
	return nil
}

func (m *machine) staleDecision(step, what string) error {
	if step != "" {
		if st, ok := m.r.Step(step); ok {
			return fmt.Errorf("%w: step %s is %s, not %s (run %s is %s)", ErrStale, step, st.Status, what, m.r.ID, m.r.Status)
		}
		return fmt.Errorf("%w: run %s has no step %q", ErrInvalidEvent, m.r.ID, step)
	}
	return fmt.Errorf("%w: run %s is %s, not %s", ErrStale, m.r.ID, m.r.Status, what)
}

func (m *machine) reject(ev Event) error {
	if ev.User == "" {
		return fmt.Errorf("%w: rejection without a user", ErrInvalidEvent)
	}
	if m.r.Status != RunAwaitingApproval {
		return m.staleDecision(ev.Step, "awaiting approval")
	}
	st, _, err := m.current(ev.Step, "awaiting approval")
	if err != nil {
		return err
	}
	if !ev.Eligible {
		return fmt.Errorf("%w: %s may not decide on %s", ErrNotEligible, ev.User, st.ID)
	}
	reason := "rejected " + st.ID
	if ev.Reason != "" {
		reason += ": " + ev.Reason
	}
	m.doAbort(ev.User, reason)
	return nil
}

// outcome handles the runner's report of an EffExecute.
func (m *machine) outcome(ev Event) error {
	st, def, err := m.current(ev.Step, "running")
	if err != nil {
		return err
	}
	if st.Status != StepRunning || (ev.Attempt != 0 && ev.Attempt != st.Attempts) {
		return fmt.Errorf("%w: outcome of %s attempt %d, but the step is %s (attempt %d)", ErrStale, st.ID, ev.Attempt, st.Status, st.Attempts)
	}
	st.Check = ev.Check
	if ev.Kind == EvStepSucceeded {
		st.Status, st.EndedAt = StepSucceeded, m.now
		m.update(MsgStepSucceeded, st.ID)
		if m.r.AbortRequested {
			m.doAbort(m.r.AbortedBy, m.r.AbortReason)
			return nil
		}
		m.advance()
		return nil
	}
	if ev.Check != nil && ev.Check.Pause != nil {
		st.Status = StepPaused
		m.r.Status = RunPaused
		m.update(MsgPaused, st.ID)
		if m.r.AbortRequested {
			m.doAbort(m.r.AbortedBy, m.r.AbortReason)
		}
		return nil
	}
	m.fail(st, def, failText(ev))
	if m.r.AbortRequested {
		m.doAbort(m.r.AbortedBy, m.r.AbortReason)
	}
	return nil
}

func failText(ev Event) string {
	switch {
	case ev.Err != "":
		return ev.Err
	case ev.Check != nil && len(ev.Check.Missing) > 0:
		return "not verified: " + strings.Join(ev.Check.Missing, "; ")
	}
	return "failed"
}

func (m *machine) fail(st *StepState, _ Step, msg string) {
	st.Status, st.Error, st.EndedAt = StepFailed, msg, m.now
	m.r.Status = RunFailed
	m.r.Errors = append(m.r.Errors, StepError{Step: st.ID, Attempt: st.Attempts, At: m.now, Message: msg})
	m.update(MsgStepFailed, st.ID)
}

// verified handles the runner's report of an EffVerify: a manual step
// checked, or a step that was running when the bot stopped.
func (m *machine) verified(ev Event) error {
	st, def, err := m.current(ev.Step, "being verified")
	if err != nil {
		return err
	}
	ok := ev.Err == "" && ev.Check != nil && ev.Check.OK
	switch st.Status {
	case StepRunning:
		st.Check = ev.Check
		if ok {
			st.Status, st.EndedAt = StepSucceeded, m.now
			m.update(MsgStepSucceeded, st.ID)
			if m.r.AbortRequested {
				m.doAbort(m.r.AbortedBy, m.r.AbortReason)
				return nil
			}
			m.advance()
			return nil
		}
		// Not done, or Verify could not tell (an error): an idempotent
		// step is safe to run again, which is what it would have done
		// without the verification. Not when an abort waits for this
		// step's outcome: the step stays interrupted and the abort goes on.
		if def.Idempotent && !m.r.AbortRequested {
			st.Attempts++
			m.emit(Effect{Kind: EffExecute, Step: st.ID, Attempt: st.Attempts})
			return nil
		}
		msg := "interrupted"
		if t := failText(ev); t != "failed" {
			msg += "; " + t
		}
		m.fail(st, def, msg)
		if m.r.AbortRequested {
			m.doAbort(m.r.AbortedBy, m.r.AbortReason)
		}
		return nil
	case StepWaitingManual:
		st.Check = ev.Check
		if ok {
			st.Status, st.EndedAt, st.Error = StepSucceeded, m.now, ""
			m.update(MsgStepSucceeded, st.ID)
			m.advance()
			return nil
		}
		st.Error = failText(ev)
		m.update(MsgManualPending, st.ID)
		m.timer(st.ID, m.rules.PollManual)
		return nil
	}
	return fmt.Errorf("%w: step %s is %s, not being verified", ErrStale, st.ID, st.Status)
}

func (m *machine) retry(ev Event) error {
	if m.r.Status != RunFailed {
		return m.staleDecision(ev.Step, "failed")
	}
	st, def, err := m.current(ev.Step, "failed")
	if err != nil {
		return err
	}
	if st.Status != StepFailed {
		return fmt.Errorf("%w: step %s is %s, not failed", ErrStale, st.ID, st.Status)
	}
	if m.waitForWindow(st, def) {
		return nil
	}
	m.execute(st)
	return nil
}

func (m *machine) skip(ev Event) error {
	if ev.User == "" {
		return fmt.Errorf("%w: skip without a user", ErrInvalidEvent)
	}
	if m.r.Status != RunFailed && m.r.Status != RunAwaitingApproval && m.r.Status != RunWaitingManual {
		return m.staleDecision(ev.Step, "failed or waiting")
	}
	st, def, err := m.current(ev.Step, "failed or waiting")
	if err != nil {
		return err
	}
	if !def.Skippable {
		return fmt.Errorf("%w: %s (%s) may not be skipped; retry or abort", ErrNotSkippable, st.ID, def.Title)
	}
	if !ev.Eligible {
		return fmt.Errorf("%w: %s may not skip %s", ErrNotEligible, ev.User, st.ID)
	}
	st.Status, st.SkippedBy, st.SkipReason, st.EndedAt = StepSkipped, ev.User, ev.Reason, m.now
	m.update(MsgStepSkipped, st.ID)
	m.advance()
	return nil
}

func (m *machine) abort(ev Event) error {
	if ev.User == "" {
		return fmt.Errorf("%w: abort without a user", ErrInvalidEvent)
	}
	if m.r.Status == RunAborting || m.r.AbortRequested {
		return fmt.Errorf("%w: run %s is already being aborted (by %s)", ErrStale, m.r.ID, m.r.AbortedBy)
	}
	if st, ok := m.r.Step(m.r.Current); ok && st.Status == StepRunning {
		// The side effect is in flight; stopping it halfway would leave the
		// gateway in an unknown state, so the abort waits for its outcome.
		m.r.AbortRequested, m.r.AbortedBy, m.r.AbortReason = true, ev.User, ev.Reason
		m.post(MsgAbortRequested, st.ID)
		return nil
	}
	m.doAbort(ev.User, ev.Reason)
	return nil
}

func (m *machine) doAbort(user, reason string) {
	m.r.AbortRequested = false
	m.r.AbortedBy, m.r.AbortReason = user, reason
	for i := range m.r.Steps {
		switch m.r.Steps[i].Status {
		case StepPending, StepAwaitingApproval, StepWaitingManual, StepPaused:
			m.r.Steps[i].Status = StepAborted
		}
	}
	m.offerRollbacks()
}

// offerRollbacks offers what is left to undo, or ends the abort.
func (m *machine) offerRollbacks() {
	choices, note := m.rollbackChoices()
	m.r.RollbackNote = note
	if len(choices) == 0 {
		m.r.Rollbacks = nil
		m.finishAbort()
		return
	}
	m.r.Rollbacks = append(choices, RollbackChoice{Action: RollbackNone, Title: "Leave the gateway as it is", Detail: "nothing is undone; the run ends aborted"})
	m.r.Status = RunAborting
	m.emit(Effect{Kind: EffPost, Message: MsgRollbackOffer, Choices: slices.Clone(m.r.Rollbacks)})
}

func (m *machine) finishAbort() {
	m.r.Status = RunAborted
	m.r.FinishedAt = m.now
	m.r.RollbackRunning = ""
	m.post(MsgAborted, "")
	m.emit(Effect{Kind: EffReleaseLock})
}

// rollbackChoices: what fits the stage the run reached.
//   - a request-termination of the bot is on (hop 1's, or an emergency
//     stop): remove it;
//   - traffic has (partly) moved and the old nodes are not decommissioned:
//     move it back, until `migrations finish` has started;
//   - traffic has moved (and was not moved back) while no termination of
//     the bot is on: an emergency stop, the only choice once there is no
//     way back (after `finish` started, or once the old nodes are gone;
//     the note then says why).
func (m *machine) rollbackChoices() ([]RollbackChoice, string) {
	started := func(id string) bool {
		st, ok := m.r.Step(id)
		return ok && (st.Attempts > 0 || st.Status == StepSucceeded)
	}
	done := func(id string) bool {
		st, ok := m.r.Step(id)
		return ok && st.Status == StepSucceeded
	}
	// lastDone is the position of a rollback's last run, -1 for never.
	lastDone := func(a RollbackAction) int {
		for i := len(m.r.RollbacksDone) - 1; i >= 0; i-- {
			if m.r.RollbacksDone[i] == a {
				return i
			}
		}
		return -1
	}
	removed := lastDone(RollbackRemoveTermination)
	emergencyOn := lastDone(RollbackEmergencyStop) > removed
	hop1On := started("hop1.termination-on") && !done("hop1.termination-off") && removed < 0
	finishStarted := started("hop2.migrations-finish")
	var out []RollbackChoice
	switch {
	case emergencyOn:
		out = append(out, RollbackChoice{Action: RollbackRemoveTermination, Title: "Remove request-termination",
			Detail: "lift the emergency stop: delete the bot's request-termination plugin so the gateway serves again"})
	case hop1On:
		out = append(out, RollbackChoice{Action: RollbackRemoveTermination, Title: "Remove request-termination",
			Detail: "delete the bot's request-termination plugin so the gateway serves again; a schema already migrated stays migrated"})
	}
	moved := false
	for _, s := range slices.Backward(m.plan.Steps()) {
		if s.Kind != KindCutover || !started(s.ID) {
			continue
		}
		moved = true
		if finishStarted || done(s.Hop+".decommission-old") || slices.Contains(m.r.RollbacksDone, RollbackTrafficBack) {
			break
		}
		out = append(out, RollbackChoice{Action: RollbackTrafficBack, Title: "Move traffic back",
			Detail: fmt.Sprintf("move all traffic back to the old nodes of %s (possible until migrations finish)", s.Hop)})
		break
	}
	note := ""
	if finishStarted {
		note = "`kong migrations finish` has run: the datastore is 1.0-only and 0.14 nodes cannot start again, so there is no rollback (only restoring the snapshot, with downtime and losing changes made since)"
	}
	if emergencyOn {
		note = "the emergency stop is on: every request gets the request-termination answer until it is removed"
	}
	if moved && !hop1On && !emergencyOn && !slices.Contains(m.r.RollbacksDone, RollbackTrafficBack) {
		// Traffic runs on what the run changed, and moving it back may not
		// help (or be possible): stopping it is offered too.
		out = append(out, RollbackChoice{Action: RollbackEmergencyStop, Title: "Emergency stop: request-termination on",
			Detail: "stop all traffic: create the global request-termination plugin (the configured status and message) through the right node for the versions running, and probe every proxy; an outage until it is removed"})
	}
	if len(out) > 0 || note != "" {
		return out, note
	}
	var kept []string
	for _, s := range m.plan.Steps() {
		if (s.Kind == KindAction || s.Kind == KindCutover) && done(s.ID) {
			kept = append(kept, s.ID)
		}
	}
	if len(kept) == 0 {
		return nil, "nothing to roll back: no change was made to the gateway"
	}
	return nil, "no rollback applies at this stage; these completed steps stay as they are: " + strings.Join(kept, ", ")
}

func (m *machine) rollback(ev Event) error {
	if ev.User == "" {
		return fmt.Errorf("%w: rollback choice without a user", ErrInvalidEvent)
	}
	if m.r.Status != RunAborting || len(m.r.Rollbacks) == 0 {
		return fmt.Errorf("%w: run %s is %s, not waiting for a rollback choice", ErrStale, m.r.ID, m.r.Status)
	}
	if m.r.RollbackRunning != "" {
		return fmt.Errorf("%w: rollback %s is already running", ErrStale, m.r.RollbackRunning)
	}
	if !slices.ContainsFunc(m.r.Rollbacks, func(c RollbackChoice) bool { return c.Action == ev.Choice }) {
		return fmt.Errorf("%w: rollback %q is not offered for run %s", ErrInvalidEvent, ev.Choice, m.r.ID)
	}
	if !ev.Eligible {
		return fmt.Errorf("%w: %s may not choose a rollback", ErrNotEligible, ev.User)
	}
	if ev.Choice == RollbackNone {
		m.finishAbort()
		return nil
	}
	m.r.RollbackRunning = ev.Choice
	m.emit(Effect{Kind: EffRollback, Rollback: ev.Choice})
	return nil
}

func (m *machine) rollbackDone(ev Event) error {
	if m.r.Status != RunAborting || m.r.RollbackRunning == "" || m.r.RollbackRunning != ev.Choice {
		return fmt.Errorf("%w: rollback %q is not running on run %s", ErrStale, ev.Choice, m.r.ID)
	}
	m.r.RollbackRunning = ""
	if ev.Err != "" {
		m.r.Errors = append(m.r.Errors, StepError{Step: "rollback:" + string(ev.Choice), At: m.now, Message: ev.Err})
		m.post(MsgRollbackFailed, "")
		m.emit(Effect{Kind: EffPost, Message: MsgRollbackOffer, Choices: slices.Clone(m.r.Rollbacks)})
		return nil
	}
	m.r.RollbacksDone = append(m.r.RollbacksDone, ev.Choice)
	m.post(MsgRollbackDone, "")
	m.offerRollbacks()
	return nil
}

// resume re-derives what was in flight when the bot stopped.
func (m *machine) resume() error {
	switch m.r.Status {
	case RunPending, RunFailed:
		return nil
	case RunAwaitingApproval:
		m.post(MsgApprovalRequest, m.r.Current)
		if st, ok := m.r.Step(m.r.Current); ok {
			m.approvalTimer(st)
		}
		return nil
	case RunPaused:
		m.post(MsgPaused, m.r.Current)
		m.resumeOwnPause()
		return nil
	case RunWaitingManual:
		st, def, err := m.current("", "waiting")
		if err != nil {
			return err
		}
		if def.ConfirmDone && st.DoneBy == "" {
			m.post(MsgManual, st.ID)
			return nil
		}
		m.emit(Effect{Kind: EffVerify, Step: st.ID})
		return nil
	case RunRunning, RunAborting:
		if m.r.RollbackRunning != "" {
			// Both rollbacks are idempotent: removing the bot's plugin and
			// setting weights can simply run again.
			m.emit(Effect{Kind: EffRollback, Rollback: m.r.RollbackRunning})
			return nil
		}
		if m.r.Status == RunAborting {
			m.emit(Effect{Kind: EffPost, Message: MsgRollbackOffer, Choices: slices.Clone(m.r.Rollbacks)})
			return nil
		}
		st, def, err := m.current("", "running")
		if err != nil {
			return err
		}
		if st.Status != StepRunning {
			return fmt.Errorf("%w: run %s is running but step %s is %s", ErrInvalidEvent, m.r.ID, st.ID, st.Status)
		}
		// The crash may have come after the step's side effect: a step
		// whose Verify proves Do complete is verified first, so a done
		// `migrations finish` is not run a second time. A non-idempotent
		// step is always only verified. An idempotent step whose Verify
		// could pass on a Do cut short (or that has no Do: running it is
		// verifying it) runs again, as verifying first could skip the
		// rest of its work.
		if def.Idempotent && !(def.VerifyComplete && def.Do != nil && def.Verify != nil) {
			st.Attempts++
			m.emit(Effect{Kind: EffExecute, Step: st.ID, Attempt: st.Attempts})
			return nil
		}
		m.emit(Effect{Kind: EffVerify, Step: st.ID})
		return nil
	}
	return fmt.Errorf("%w: run %s is %s", ErrStale, m.r.ID, m.r.Status)
}

func (m *machine) timerFired(ev Event) error {
	if ev.Token != m.r.TimerToken {
		return fmt.Errorf("%w: timer %d superseded by %d", ErrStale, ev.Token, m.r.TimerToken)
	}
	st, def, err := m.current(ev.Step, "waiting")
	if err != nil {
		return err
	}
	switch {
	case pausedFor(st, PauseWindow):
		return m.windowTimer(st, def)
	}
	switch st.Status {
	case StepAwaitingApproval:
		return m.approvalTimerFired(st)
	case StepWaitingManual:
		m.emit(Effect{Kind: EffVerify, Step: st.ID})
		return nil
	}
	return fmt.Errorf("%w: step %s is %s; the timer has nothing to do", ErrStale, st.ID, st.Status)
}

func (m *machine) markDone(ev Event) error {
	if ev.User == "" {
		return fmt.Errorf("%w: done without a user", ErrInvalidEvent)
	}
	if m.r.Status != RunWaitingManual {
		return m.staleDecision(ev.Step, "waiting for people")
	}
	st, _, err := m.current(ev.Step, "waiting for people")
	if err != nil {
		return err
	}
	st.DoneBy = ev.User
	m.emit(Effect{Kind: EffVerify, Step: st.ID})
	return nil
}

func (m *machine) answer(ev Event) error {
	if ev.User == "" {
		return fmt.Errorf("%w: answer without a user", ErrInvalidEvent)
	}
	if m.r.Status != RunPaused {
		return m.staleDecision(ev.Step, "paused")
	}
	st, _, err := m.current(ev.Step, "paused")
	if err != nil {
		return err
	}
	if st.Check == nil || st.Check.Pause == nil {
		return fmt.Errorf("%w: step %s is paused without a question", ErrInvalidEvent, st.ID)
	}
	p := st.Check.Pause
	if ev.Key != p.Key {
		return fmt.Errorf("%w: the question %q was replaced by %q", ErrStale, ev.Key, p.Key)
	}
	if !slices.Contains(p.Choices, ev.Answer) {
		return fmt.Errorf("%w: %q is not an answer to %q", ErrInvalidEvent, ev.Answer, p.Message)
	}
	if handled, err := m.ownPause(st, p, ev); handled {
		return err
	}
	if !ev.Eligible {
		return fmt.Errorf("%w: %s may not answer for %s", ErrNotEligible, ev.User, st.ID)
	}
	if ev.Answer == ChoiceAbort {
		m.doAbort(ev.User, "aborted at "+st.ID+": "+p.Message)
		return nil
	}
	if m.r.Journal == nil {
		m.r.Journal = map[string]string{}
	}
	m.r.Journal[p.Key] = string(ev.Answer)
	m.r.Journal[p.Key+".by"] = ev.User
	m.execute(st)
	return nil
}

func (m *machine) reinspect(ev Event) error {
	if ev.Fingerprint == "" {
		return fmt.Errorf("%w: reinspect without a fingerprint", ErrInvalidEvent)
	}
	if ev.Fingerprint == m.r.Fingerprint {
		return fmt.Errorf("%w: fingerprint unchanged", ErrStale)
	}
	m.r.Fingerprint = ev.Fingerprint
	if m.r.Status == RunAwaitingApproval {
		m.post(MsgApprovalRequest, m.r.Current)
	}
	return nil
}

func short(fp string) string {
	if len(fp) > 12 {
		return fp[:12]
	}
	if fp == "" {
		return "(none)"
	}
	return fp
}

func cloneRun(r Run) Run {
	c := r
	c.Path = slices.Clone(r.Path)
	c.Steps = slices.Clone(r.Steps)
	c.Errors = slices.Clone(r.Errors)
	c.Rollbacks = slices.Clone(r.Rollbacks)
	c.RollbacksDone = slices.Clone(r.RollbacksDone)
	c.Journal = maps.Clone(r.Journal)
	c.Messages = maps.Clone(r.Messages)
	if r.Approvals != nil {
		c.Approvals = make(map[string][]Approval, len(r.Approvals))
		for k, v := range r.Approvals {
			c.Approvals[k] = slices.Clone(v)
		}
	}
	return c
}
