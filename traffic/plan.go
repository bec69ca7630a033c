package traffic

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Stage is one move of a plan: send NewPct percent to the new generation,
// then bake for Bake while the gates watch.
type Stage struct {
	NewPct int           `json:"new_pct"`
	Bake   time.Duration `json:"bake"`
	// Approval asks a lead before this stage's move.
	Approval bool `json:"approval,omitempty"`
}

// Plan is the stages of one hop, ending at 100 %.
type Plan struct {
	Stages []Stage `json:"stages"`
	// Fast marks a downtime hop (hop 1): at most two moves, and no approval
	// waits, since the gateway is in an outage while it runs.
	Fast bool `json:"fast,omitempty"`
	// Outage says the hop runs while request-termination answers every
	// request (hop 1). Every answer is then Kong's own 5xx, so the gates
	// judge the new cluster on connection and response errors instead of
	// 5xx, count a probe answered by Kong itself with OutageStatus as a
	// pass, and do not stop for too little traffic (no approval waits
	// inside an outage).
	Outage bool `json:"outage,omitempty"`
	// OutageStatus is request-termination's status; default 503.
	OutageStatus int `json:"outage_status,omitempty"`
}

// FastPlan is hop 1's plan: straight to 100 % with a short bake, inside
// the request-termination outage.
func FastPlan(bake time.Duration) Plan {
	return Plan{Fast: true, Outage: true, Stages: []Stage{{NewPct: 100, Bake: bake}}}
}

// GradualPlan is hop 2's plan: the given percentages (ending at 100), each
// baked for bake; approvals lists the percentages a lead approves first.
func GradualPlan(bake time.Duration, pcts []int, approvals ...int) Plan {
	p := Plan{}
	for _, pct := range pcts {
		s := Stage{NewPct: pct, Bake: bake}
		for _, a := range approvals {
			if a == pct {
				s.Approval = true
			}
		}
		p.Stages = append(p.Stages, s)
	}
	return p
}

// DefaultPlans are the plans used when a Gateway configures none: hop 1 fast
// (100 % at once, 30 s bake), hop 0 and hop 2 gradual (5, 25, 50, 100 %, 5
// minutes each).
func DefaultPlans() map[string]Plan {
	gradual := GradualPlan(5*time.Minute, []int{5, 25, 50, 100})
	return map[string]Plan{"hop0": gradual, "hop1": FastPlan(30 * time.Second), "hop2": gradual}
}

// Validate reports a plan that cannot run: stages must rise strictly, lie in
// 1..100, end at 100 and bake for a positive time.
func (p Plan) Validate() error {
	if len(p.Stages) == 0 {
		return errors.New("plan has no stages")
	}
	var errs []string
	prev := 0
	for i, s := range p.Stages {
		switch {
		case s.NewPct < 1 || s.NewPct > 100:
			errs = append(errs, fmt.Sprintf("stage %d: new share %d %% is outside 1..100", i+1, s.NewPct))
		case s.NewPct <= prev:
			errs = append(errs, fmt.Sprintf("stage %d: new share %d %% does not rise above %d %%", i+1, s.NewPct, prev))
		}
		if s.Bake <= 0 {
			errs = append(errs, fmt.Sprintf("stage %d: bake time must be positive", i+1))
		}
		if p.Fast && s.Approval {
			errs = append(errs, fmt.Sprintf("stage %d: a fast plan cannot wait for approvals (the gateway is down meanwhile)", i+1))
		}
		prev = s.NewPct
	}
	if p.OutageStatus != 0 && (p.OutageStatus < 100 || p.OutageStatus > 599) {
		errs = append(errs, fmt.Sprintf("outage status %d is outside 100..599", p.OutageStatus))
	}
	if prev != 100 {
		errs = append(errs, fmt.Sprintf("last stage is %d %%, want 100 %%", prev))
	}
	if p.Fast && len(p.Stages) > 2 {
		errs = append(errs, fmt.Sprintf("a fast plan moves at most twice, this one %d times", len(p.Stages)))
	}
	if len(errs) > 0 {
		return errors.New("plan: " + strings.Join(errs, "; "))
	}
	return nil
}

// String renders the plan for messages: "5 % (bake 5m0s) → 25 % (approval, bake 5m0s) → …".
func (p Plan) String() string {
	parts := make([]string, len(p.Stages))
	for i, s := range p.Stages {
		a := ""
		if s.Approval {
			a = "approval, "
		}
		parts[i] = fmt.Sprintf("%d %% (%sbake %s)", s.NewPct, a, s.Bake)
	}
	return strings.Join(parts, " → ")
}
