package steps

import (
	"fmt"
	"time"
)

// Rule is how many distinct approvers a risk needs and whether the requester
// may be one of them.
type Rule struct {
	Approvers      int  `json:"approvers" yaml:"approvers"`
	AllowRequester bool `json:"allow_requester" yaml:"allow_requester"`
}

// ApprovalRules holds a Rule per risk plus the engine's timings. Config fills
// it; zero fields take DefaultRules' values (see Normalize).
type ApprovalRules struct {
	Normal       Rule `json:"normal" yaml:"normal"`
	High         Rule `json:"high" yaml:"high"`
	Irreversible Rule `json:"irreversible" yaml:"irreversible"`
	// RemindAfter is how long an approval request waits before a reminder.
	RemindAfter time.Duration `json:"remind_after" yaml:"remind_after"`
	// PollManual is how often a manual step that is not yet verified is
	// checked again.
	PollManual time.Duration `json:"poll_manual" yaml:"poll_manual"`
	// ExpireAfter is how long an approval request stays open; 0: forever.
	// An expired request pauses the run with a re-request button.
	ExpireAfter time.Duration `json:"expire_after,omitempty" yaml:"expire_after"`
	// Windows, when set, holds high and irreversible steps until a change
	// window is open for the run's gateway (window.go).
	Windows WindowGate `json:"-" yaml:"-"`
}

// DefaultRules: normal = 1 approver; high = 1 approver who is not the
// requester; irreversible = 2 distinct approvers, neither the requester.
func DefaultRules() ApprovalRules {
	return ApprovalRules{
		Normal:       Rule{Approvers: 1, AllowRequester: true},
		High:         Rule{Approvers: 1},
		Irreversible: Rule{Approvers: 2},
		RemindAfter:  30 * time.Minute,
		PollManual:   time.Minute,
	}
}

// Normalize fills zero fields from DefaultRules. A Rule with Approvers 0 is
// taken as unset: every gated step needs at least one approver.
func (r ApprovalRules) Normalize() ApprovalRules {
	d := DefaultRules()
	if r.Normal.Approvers <= 0 {
		r.Normal = d.Normal
	}
	if r.High.Approvers <= 0 {
		r.High = d.High
	}
	if r.Irreversible.Approvers <= 0 {
		r.Irreversible = d.Irreversible
	}
	if r.RemindAfter <= 0 {
		r.RemindAfter = d.RemindAfter
	}
	if r.PollManual <= 0 {
		r.PollManual = d.PollManual
	}
	return r
}

// Validate reports rules that cannot be satisfied or weaken the defaults'
// ordering (an irreversible step must need at least as much as a high one).
func (r ApprovalRules) Validate() error {
	for _, c := range []struct {
		name string
		rule Rule
	}{{"normal", r.Normal}, {"high", r.High}, {"irreversible", r.Irreversible}} {
		if c.rule.Approvers < 1 || c.rule.Approvers > 5 {
			return fmt.Errorf("approval rule %s: approvers must be 1..5, got %d", c.name, c.rule.Approvers)
		}
	}
	if r.Irreversible.Approvers < r.High.Approvers {
		return fmt.Errorf("approval rule irreversible needs %d approvers, fewer than high (%d)", r.Irreversible.Approvers, r.High.Approvers)
	}
	return nil
}

// For returns the rule of a risk.
func (r ApprovalRules) For(risk Risk) Rule {
	switch risk {
	case RiskHigh:
		return r.High
	case RiskIrreversible:
		return r.Irreversible
	}
	return r.Normal
}

// Text says the rule in words: "2 distinct approvers, neither the requester".
func (u Rule) Text() string {
	switch {
	case u.Approvers == 1 && u.AllowRequester:
		return "1 approver"
	case u.Approvers == 1:
		return "1 approver, not the requester"
	case u.AllowRequester:
		return fmt.Sprintf("%d distinct approvers", u.Approvers)
	}
	return fmt.Sprintf("%d distinct approvers, neither the requester", u.Approvers)
}
