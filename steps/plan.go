package steps

import (
	"context"
	"fmt"
)

// Kind says who acts in a step and how the engine treats it.
type Kind string

const (
	// KindCheck reads the gateway and changes nothing (preflights, probes).
	KindCheck Kind = "check"
	// KindAction changes the gateway or its datastore; the bot does it.
	KindAction Kind = "action"
	// KindManual is done by people; the bot posts what to do and verifies it.
	KindManual Kind = "manual"
	// KindCutover moves traffic between generations.
	KindCutover Kind = "cutover"
)

// Risk sets a step's approval rule (see ApprovalRules).
type Risk string

const (
	RiskNormal       Risk = "normal"
	RiskHigh         Risk = "high"
	RiskIrreversible Risk = "irreversible"
)

// riskOrder ranks risks so a group takes its strictest member's rule.
func riskOrder(r Risk) int {
	switch r {
	case RiskHigh:
		return 1
	case RiskIrreversible:
		return 2
	}
	return 0
}

// Labels are what a step's description names: the gateway and its
// datastore as config calls them. Plans made without a gateway (kongbot plan)
// use placeholders.
type Labels struct {
	Gateway   string
	Datastore string
}

// Step is one line of the runbook.
type Step struct {
	// ID is stable across releases: runs in the store refer to steps by it.
	ID    string
	Hop   string // "hop0" (0.14.0 -> 0.14.1), "hop1", "hop2"
	Title string
	// Runbook is the runbook line this step implements, in our words.
	Runbook string
	Kind    Kind
	Risk    Risk
	// Idempotent steps may run again after a crash; others are only
	// verified and, when not done, left failed ("interrupted") for a human
	// to retry.
	Idempotent bool
	// VerifyComplete: Verify reads back everything Do leaves behind,
	// including what later steps read from the journal, so Verify saying
	// done proves Do has no work left. An idempotent step found running
	// after a crash is then verified first and runs again only when not
	// done. Without it an idempotent step runs again at once: its Verify
	// could pass on a Do cut short (a traffic shift's weights read 100 %
	// before its bake at 100 % and the old generation's drain; a plugin
	// answering before its ID is in the journal).
	VerifyComplete bool
	// Skippable steps may be skipped by an approver.
	Skippable bool
	// Gate: the step waits for approval (by its Risk's rule) before it runs.
	// Within a Group, the whole group is approved once, when the run reaches
	// the group's first step, by the strictest rule among its gated steps.
	Gate bool
	// Group names an outage group whose steps run back-to-back with no
	// approval waits inside.
	Group string
	// ConfirmDone: a manual step whose Verify cannot tell "done" from "not
	// started yet" waits for someone to press Done before it is verified.
	ConfirmDone bool
	// SkipWhen lets a step skip itself from what earlier steps wrote into the
	// run's journal (e.g. no APIs to convert). Pure: it reads only the map.
	SkipWhen func(journal map[string]string) (skip bool, reason string)

	// Describe says concretely what the step will do on this gateway.
	Describe func(l Labels) string
	// Do performs the step; nil for checks and manual steps.
	Do func(ctx context.Context, env *Env) error
	// Verify reads the step's postcondition back from the gateway.
	Verify func(ctx context.Context, env *Env) (Check, error)
}

// Hop is one version-to-version leg of a path.
type Hop struct {
	Name  string
	From  string
	To    string
	Steps []Step
}

// Plan is the ordered runbook from the detected version to the target.
type Plan struct {
	From   string // version detected on the gateway, e.g. "0.13.1"
	Target string // "0.14.1" or "1.0.3"
	Hops   []Hop
}

// Steps returns every step of every hop, in order.
func (p Plan) Steps() []Step {
	var out []Step
	for _, h := range p.Hops {
		out = append(out, h.Steps...)
	}
	return out
}

// Step returns the step with the given ID.
func (p Plan) Step(id string) (Step, bool) {
	for _, h := range p.Hops {
		for _, s := range h.Steps {
			if s.ID == id {
				return s, true
			}
		}
	}
	return Step{}, false
}

// GroupLeader returns the ID of the first step of the step's group (where the
// group's approval is asked and recorded), or the step's own ID.
func (p Plan) GroupLeader(id string) string {
	s, ok := p.Step(id)
	if !ok || s.Group == "" {
		return id
	}
	for _, t := range p.Steps() {
		if t.Group == s.Group {
			return t.ID
		}
	}
	return id
}

// ApprovalRisk returns the risk whose rule applies to the approval that
// covers step id, and whether any approval is needed at all. For a grouped
// step it is the strictest risk of the group's gated steps.
func (p Plan) ApprovalRisk(id string) (Risk, bool) {
	s, ok := p.Step(id)
	if !ok {
		return "", false
	}
	if s.Group == "" {
		return s.Risk, s.Gate
	}
	var risk Risk
	gated := false
	for _, t := range p.Steps() {
		if t.Group != s.Group || !t.Gate {
			continue
		}
		if !gated || riskOrder(t.Risk) > riskOrder(risk) {
			risk = t.Risk
		}
		gated = true
	}
	return risk, gated
}

// Describe returns the step's description for the labels, or its title.
func (s Step) Description(l Labels) string {
	if s.Describe == nil {
		return s.Title
	}
	return s.Describe(l)
}

func (s Step) String() string { return fmt.Sprintf("%s (%s, %s)", s.ID, s.Kind, s.Risk) }

// StepApproval says what a step needs before it runs, for plans and
// messages.
type StepApproval struct {
	// Needed: the run stops at this step for approval.
	Needed bool `json:"needed"`
	// Rule applies when Needed (and, for a group, to the whole group).
	Rule Rule `json:"rule"`
	// CoveredBy names the group leader whose approval covers this step.
	CoveredBy string `json:"covered_by,omitempty"`
	// Text says it in words.
	Text string `json:"text"`
}

// Approval returns what step id needs under rules.
func (p Plan) Approval(id string, rules ApprovalRules) StepApproval {
	rules = rules.Normalize()
	s, ok := p.Step(id)
	if !ok {
		return StepApproval{Text: "unknown step"}
	}
	risk, gated := p.ApprovalRisk(id)
	leader := p.GroupLeader(id)
	switch {
	case gated && s.Group != "" && leader == id:
		r := rules.For(risk)
		return StepApproval{Needed: true, Rule: r, Text: fmt.Sprintf("%s, once for the whole %s group", r.Text(), s.Group)}
	case gated && s.Group != "":
		return StepApproval{CoveredBy: leader, Text: "covered by the " + s.Group + " approval"}
	case s.Gate:
		r := rules.For(risk)
		text := r.Text()
		if s.Kind == KindCheck {
			text += " (confirms)"
		}
		return StepApproval{Needed: true, Rule: r, Text: text}
	case s.Kind == KindManual && s.ConfirmDone:
		return StepApproval{Text: "none; people do it and press Done, the bot verifies"}
	case s.Kind == KindManual:
		return StepApproval{Text: "none; people do it, the bot verifies"}
	case s.Kind == KindCheck:
		return StepApproval{Text: "none (read-only check)"}
	}
	return StepApproval{Text: "none"}
}
