package steps

import "errors"

// Sentinel errors returned by Transition and PlanPath. Callers branch on them
// with errors.Is; the wrapping error's text names the run, step and reason in
// words fit for a user ("step hop2.migrations-finish is succeeded, not
// awaiting approval").
var (
	// ErrStale: the decision or event is for a step or run that is no longer
	// waiting for it (an old button, a double click, a late timer). Nothing
	// changed.
	ErrStale = errors.New("stale decision")
	// ErrDuplicate: this user already approved this step.
	ErrDuplicate = errors.New("duplicate approval")
	// ErrSelfApproval: the rule for this risk forbids the requester approving.
	ErrSelfApproval = errors.New("requester may not approve")
	// ErrNotEligible: the bot said this user may not approve.
	ErrNotEligible = errors.New("not an eligible approver")
	// ErrFingerprintMismatch: the approval was given for a different plan or
	// gateway inventory than the run now has. The approval is refused and the
	// effects returned with it re-request approval with the current
	// fingerprint.
	ErrFingerprintMismatch = errors.New("plan fingerprint mismatch")
	// ErrNotSkippable: the step may not be skipped.
	ErrNotSkippable = errors.New("step cannot be skipped")
	// ErrInvalidEvent: the event is malformed (unknown kind, missing user,
	// unknown step, unknown rollback choice).
	ErrInvalidEvent = errors.New("invalid event")
	// ErrUnsupportedPath: no plan goes from the detected version to the
	// target.
	ErrUnsupportedPath = errors.New("unsupported upgrade path")
	// ErrNothingToDo: the gateway already runs the target (or later).
	ErrNothingToDo = errors.New("nothing to do")
)
