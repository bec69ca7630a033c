package steps

import "time"

// RunStatus is where a run stands.
type RunStatus string

const (
	// RunPending: created, not started.
	RunPending RunStatus = "pending"
	// RunRunning: a step is executing (Do then Verify).
	RunRunning RunStatus = "running"
	// RunAwaitingApproval: the current step (or its group) waits for approvers.
	RunAwaitingApproval RunStatus = "awaiting-approval"
	// RunWaitingManual: people are doing the current manual step; the bot
	// verifies it on Done and on a timer.
	RunWaitingManual RunStatus = "waiting-manual"
	// RunFailed: the current step failed; it waits for Retry, Skip or Abort.
	RunFailed RunStatus = "failed"
	// RunPaused: the current step asked a person to decide (Check.Pause:
	// approve the next traffic stage, a gate breach, a manual move).
	RunPaused RunStatus = "paused"
	// RunAborting: abort was asked; the bot waits for the running step to
	// end, for a rollback choice, or for the chosen rollback to finish.
	RunAborting RunStatus = "aborting"
	// RunAborted is terminal: the run stopped before its end.
	RunAborted RunStatus = "aborted"
	// RunSucceeded is terminal: every step succeeded or was skipped.
	RunSucceeded RunStatus = "succeeded"
)

// Terminal reports whether no event can change the run any more.
func (s RunStatus) Terminal() bool { return s == RunAborted || s == RunSucceeded }

// StepStatus is where one step of a run stands.
type StepStatus string

const (
	StepPending          StepStatus = "pending"
	StepAwaitingApproval StepStatus = "awaiting-approval"
	StepRunning          StepStatus = "running"
	StepWaitingManual    StepStatus = "waiting-manual"
	StepPaused           StepStatus = "paused"
	StepSucceeded        StepStatus = "succeeded"
	StepFailed           StepStatus = "failed"
	StepSkipped          StepStatus = "skipped"
	StepAborted          StepStatus = "aborted"
)

// StepState is one step of a run. The step's definition (kind, Do, Verify)
// is looked up in the run's plan by ID; it is never stored.
type StepState struct {
	ID       string     `json:"id"`
	Status   StepStatus `json:"status"`
	Attempts int        `json:"attempts"`
	// Error is the last failure in words ("interrupted: schema is 0.13").
	Error      string    `json:"error,omitempty"`
	Check      *Check    `json:"check,omitempty"`
	StartedAt  time.Time `json:"started_at,omitzero"`
	EndedAt    time.Time `json:"ended_at,omitzero"`
	DoneBy     string    `json:"done_by,omitempty"`     // who pressed Done (manual)
	SkippedBy  string    `json:"skipped_by,omitempty"`  // who skipped, or "plan" for SkipWhen
	SkipReason string    `json:"skip_reason,omitempty"` // why
	// AskedAt is when the step's approval was (last) requested, and
	// RemindedAt when the approvers were last reminded (expiry.go).
	AskedAt    time.Time `json:"asked_at,omitzero"`
	RemindedAt time.Time `json:"reminded_at,omitzero"`
}

// Approval is one approver's yes for a step (or the group it leads).
type Approval struct {
	User        string    `json:"user"`
	At          time.Time `json:"at"`
	Fingerprint string    `json:"fingerprint"`
}

// StepError is one failure in the run's history.
type StepError struct {
	Step    string    `json:"step"`
	Attempt int       `json:"attempt"`
	At      time.Time `json:"at"`
	Message string    `json:"message"`
}

// RollbackAction names a rollback the engine can offer on abort.
type RollbackAction string

const (
	// RollbackRemoveTermination removes the bot's request-termination plugin
	// (hop 1's outage).
	RollbackRemoveTermination RollbackAction = "remove-termination"
	// RollbackTrafficBack moves all traffic back to the old generation
	// (possible until `migrations finish`).
	RollbackTrafficBack RollbackAction = "traffic-back"
	// RollbackEmergencyStop turns the global request-termination on (through
	// the right node for the versions running, verified on every node), so
	// the gateway answers every request with the configured status: an
	// outage on purpose, offered when traffic has moved and there is no
	// other way back. RollbackRemoveTermination lifts it.
	RollbackEmergencyStop RollbackAction = "emergency-stop"
	// RollbackNone leaves the gateway as it is.
	RollbackNone RollbackAction = "none"
)

// RollbackChoice is one rollback offered to the people aborting a run.
type RollbackChoice struct {
	Action RollbackAction `json:"action"`
	Title  string         `json:"title"`
	// Detail says what it does and what it cannot undo.
	Detail string `json:"detail"`
}

// Run is one upgrade of one gateway: everything the bot must remember about
// it, serialisable as JSON.
type Run struct {
	ID        string `json:"id"`
	Gateway   string `json:"gateway"`
	Requester string `json:"requester"` // Slack user ID
	Channel   string `json:"channel"`
	From      string `json:"from"`   // version detected when the run was made
	Target    string `json:"target"` // "0.14.1" or "1.0.3"
	DryRun    bool   `json:"dry_run,omitempty"`
	// Path names the hops, e.g. ["hop1", "hop2"].
	Path []string `json:"path"`
	// Fingerprint of the plan and the inventory it was made from; approvals
	// carry it.
	Fingerprint string    `json:"fingerprint"`
	Status      RunStatus `json:"status"`
	// Current is the step the run is at (running, waiting or failed).
	Current string      `json:"current,omitempty"`
	Steps   []StepState `json:"steps"`
	// Approvals are keyed by the step that asked (a group's first step).
	Approvals map[string][]Approval `json:"approvals,omitempty"`
	Errors    []StepError           `json:"errors,omitempty"`
	// Journal is the steps' durable scratch space (see the Journal port).
	Journal map[string]string `json:"journal,omitempty"`
	// Messages are the chat adapter's references (e.g. Slack channel+ts),
	// opaque here, keyed by a name the adapter chooses.
	Messages map[string]string `json:"messages,omitempty"`

	// AbortRequested: abort was asked while a step ran; it takes effect when
	// the step ends.
	AbortRequested bool   `json:"abort_requested,omitempty"`
	AbortedBy      string `json:"aborted_by,omitempty"`
	AbortReason    string `json:"abort_reason,omitempty"`
	// Rollbacks offered on abort, the one running, and the ones done.
	Rollbacks       []RollbackChoice `json:"rollbacks,omitempty"`
	RollbackRunning RollbackAction   `json:"rollback_running,omitempty"`
	RollbacksDone   []RollbackAction `json:"rollbacks_done,omitempty"`
	// RollbackNote says why no rollback is offered, when none is.
	RollbackNote string `json:"rollback_note,omitempty"`

	// TimerToken identifies the one live timer; older timers are stale.
	TimerToken int `json:"timer_token,omitempty"`
	// Seq counts transitions; the store uses it to order audit entries.
	Seq int64 `json:"seq"`

	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
}

// Step returns the state of step id.
func (r *Run) Step(id string) (*StepState, bool) {
	for i := range r.Steps {
		if r.Steps[i].ID == id {
			return &r.Steps[i], true
		}
	}
	return nil, false
}

// EventKind names what happened to a run.
type EventKind string

const (
	EvStart         EventKind = "start"
	EvApprove       EventKind = "approve"
	EvReject        EventKind = "reject"
	EvStepSucceeded EventKind = "step-succeeded" // after Do and a passing Verify
	EvStepFailed    EventKind = "step-failed"    // Do failed or Verify said not done
	EvVerified      EventKind = "verified"       // outcome of an EffVerify
	EvRetry         EventKind = "retry"
	EvSkip          EventKind = "skip"
	EvAbort         EventKind = "abort"
	EvResume        EventKind = "resume" // the bot restarted
	EvTimer         EventKind = "timer"
	EvMarkDone      EventKind = "mark-done" // people say a manual step is done
	EvRollback      EventKind = "rollback"  // a rollback choice after abort
	EvRollbackDone  EventKind = "rollback-done"
	// EvAnswer: a person answered a step's Pause (Key, Answer).
	EvAnswer EventKind = "answer"
	// EvReinspect: the runner read the gateway again and the fingerprint
	// changed; approvals given for the old one no longer count.
	EvReinspect EventKind = "reinspect"
)

// Event is one input to Transition. Which fields matter depends on Kind.
type Event struct {
	Kind EventKind `json:"kind"`
	Step string    `json:"step,omitempty"`
	// User is who decided (Slack user ID); empty for runner events.
	User string `json:"user,omitempty"`
	// Eligible: the bot checked the user may approve (user group or list).
	Eligible    bool           `json:"eligible,omitempty"`
	Fingerprint string         `json:"fingerprint,omitempty"`
	Check       *Check         `json:"check,omitempty"`
	Err         string         `json:"err,omitempty"`
	Reason      string         `json:"reason,omitempty"`
	Choice      RollbackAction `json:"choice,omitempty"`
	Token       int            `json:"token,omitempty"` // EvTimer
	// Attempt is the step attempt a runner outcome belongs to (0: the
	// current one); an outcome of an older attempt is stale.
	Attempt int `json:"attempt,omitempty"`
	// Key and Answer answer a Pause (EvAnswer).
	Key    string `json:"key,omitempty"`
	Answer Choice `json:"answer,omitempty"`
}

// EffectKind names what the runner must do.
type EffectKind string

const (
	// EffExecute: run the step's Do, then its Verify; report EvStepSucceeded
	// (Verify OK) or EvStepFailed (Do failed, Verify errored or not OK), with
	// the Check: from Verify, or from the Do error via CheckOf (a
	// PausedError's Check carries the Pause the engine waits on).
	EffExecute EffectKind = "execute-step"
	// EffVerify: run only the step's Verify; report EvVerified.
	EffVerify EffectKind = "verify-step"
	// EffPost: post a new message of Message kind.
	EffPost EffectKind = "post-message"
	// EffUpdate: edit the message of Message kind in place.
	EffUpdate EffectKind = "update-message"
	// EffTimer: deliver EvTimer{Step, Token} after After.
	EffTimer EffectKind = "schedule-timer"
	// EffRollback: carry out Rollback; report EvRollbackDone.
	EffRollback EffectKind = "rollback"
	// EffReleaseLock: the gateway is free for another run.
	EffReleaseLock EffectKind = "release-lock"
)

// MessageKind says which message an EffPost/EffUpdate is about; the chat
// adapter renders it from the run's state.
type MessageKind string

const (
	MsgSummary          MessageKind = "run-summary"
	MsgApprovalRequest  MessageKind = "approval-request"
	MsgApprovalProgress MessageKind = "approval-progress"
	MsgReminder         MessageKind = "approval-reminder"
	MsgStepStarted      MessageKind = "step-started"
	MsgStepSucceeded    MessageKind = "step-succeeded"
	MsgStepFailed       MessageKind = "step-failed"
	MsgStepSkipped      MessageKind = "step-skipped"
	MsgManual           MessageKind = "manual-instructions"
	MsgManualPending    MessageKind = "manual-not-verified"
	MsgPaused           MessageKind = "step-paused"
	MsgAbortRequested   MessageKind = "abort-requested"
	MsgRollbackOffer    MessageKind = "rollback-offer"
	MsgRollbackDone     MessageKind = "rollback-done"
	MsgRollbackFailed   MessageKind = "rollback-failed"
	MsgAborted          MessageKind = "run-aborted"
	MsgSucceeded        MessageKind = "run-succeeded"
)

// Effect is one thing the runner must do after persisting the transition.
type Effect struct {
	Kind    EffectKind  `json:"kind"`
	RunID   string      `json:"run_id"`
	Step    string      `json:"step,omitempty"`
	Message MessageKind `json:"message,omitempty"`
	// Attempt is the step attempt an EffExecute belongs to.
	Attempt int `json:"attempt,omitempty"`
	// After and Token are for EffTimer.
	After time.Duration `json:"after,omitempty"`
	Token int           `json:"token,omitempty"`
	// Rollback is for EffRollback.
	Rollback RollbackAction `json:"rollback,omitempty"`
	// Choices are the rollbacks offered (MsgRollbackOffer).
	Choices []RollbackChoice `json:"choices,omitempty"`
}

// NewRun makes a pending run of plan p for a gateway read as inv. Start it
// with an EvStart event.
func NewRun(id, gateway, requester, channel string, p Plan, inv Inventory, dryRun bool, now time.Time) Run {
	r := Run{
		ID: id, Gateway: gateway, Requester: requester, Channel: channel,
		From: p.From, Target: p.Target, DryRun: dryRun,
		Fingerprint: Fingerprint(p, inv),
		Status:      RunPending,
		Approvals:   map[string][]Approval{},
		Journal:     map[string]string{},
		Messages:    map[string]string{},
		CreatedAt:   now, UpdatedAt: now,
	}
	for _, h := range p.Hops {
		r.Path = append(r.Path, h.Name)
		for _, s := range h.Steps {
			r.Steps = append(r.Steps, StepState{ID: s.ID, Status: StepPending})
		}
	}
	return r
}
