package runner

import (
	"github.com/kongbot/kongbot/config"
	"github.com/kongbot/kongbot/steps"
)

// RulesFromConfig turns the config's approval rules and timers into the
// engine's rules. Risks missing from the file keep config's defaults
// (normal 1; high 1, not the requester; irreversible 2, neither the requester).
// The change windows are not among them: package schedule implements them
// (and imports this package), and schedule.FromConfig returns these rules
// with the windows, which is what the runner and the bot must be given.
func RulesFromConfig(c *config.Config) steps.ApprovalRules {
	rule := func(risk string) steps.Rule {
		r, ok := c.Rule(risk)
		if !ok {
			r = config.DefaultApprovalRules[risk]
		}
		return steps.Rule{Approvers: r.Count, AllowRequester: !r.ExcludeRequester}
	}
	return steps.ApprovalRules{
		Normal:       rule("normal"),
		High:         rule("high"),
		Irreversible: rule("irreversible"),
		RemindAfter:  c.Timers.ApprovalReminder,
		PollManual:   c.Timers.ManualReminder,
		ExpireAfter:  c.Timers.ApprovalExpiry,
	}.Normalize()
}
