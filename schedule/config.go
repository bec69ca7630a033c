package schedule

import (
	"fmt"

	"github.com/kongbot/kongbot/config"
	"github.com/kongbot/kongbot/runner"
)

// FromConfig returns the options config decides: the engine's rules with
// the change windows (hand the same Rules to the runner and the bot, so the
// engine holds high steps for their window), the grace period, the digest
// and its channel, the runs channel and the health watch interval. The
// wiring adds the store, the runner, the starter, the inspector and the
// logger.
func FromConfig(c *config.Config) (Options, error) {
	w, err := NewWindows(c.ChangeWindows)
	if err != nil {
		return Options{}, fmt.Errorf("schedule: %w", err)
	}
	rules := runner.RulesFromConfig(c)
	if w != nil {
		rules.Windows = w
	}
	return Options{
		Rules:          rules,
		Grace:          c.Timers.ScheduleGrace,
		Digest:         c.Timers.Digest,
		DigestChannel:  c.Channels.Digest,
		DefaultChannel: c.Channels.Runs,
		HealthInterval: c.Timers.HealthWatchInterval,
	}, nil
}
