package main

import (
	"github.com/kongbot/kongbot/config"
	"github.com/kongbot/kongbot/steps"
)

// approvalRules turns the config's approval rules (by risk name) into the
// engine's; risks the file leaves out keep the engine's defaults.
func approvalRules(c *config.Config) steps.ApprovalRules {
	r := steps.ApprovalRules{RemindAfter: c.Timers.ApprovalReminder}
	for name, dst := range map[string]*steps.Rule{
		string(steps.RiskNormal):       &r.Normal,
		string(steps.RiskHigh):         &r.High,
		string(steps.RiskIrreversible): &r.Irreversible,
	} {
		if cr, ok := c.ApprovalRules[name]; ok {
			*dst = steps.Rule{Approvers: cr.Count, AllowRequester: !cr.ExcludeRequester}
		}
	}
	return r.Normalize()
}
