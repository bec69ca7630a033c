// Package commands provides the `/kong` grammar: Parse turns the text of a
// slash command into one typed Command or a *UsageError that says exactly
// what is wrong and how to write it ("unknown version 0.15.0; supported
// targets: 0.14.1, 1.0.3", "did you mean `status`?"). It does no I/O and
// knows nothing of Slack; it never panics (FuzzParse).
package commands

import "time"

// Name identifies a command; the bot routes on it.
type Name string

const (
	NameHelp              Name = "help"
	NameUpgradeStart      Name = "upgrade start"
	NameUpgradeStatus     Name = "upgrade status"
	NameUpgradeAbort      Name = "upgrade abort"
	NameUpgradeRetry      Name = "upgrade retry"
	NameUpgradeHistory    Name = "upgrade history"
	NameUpgradeAudit      Name = "upgrade audit"
	NameUpgradeSchedule   Name = "upgrade schedule"
	NameUpgradeSchedules  Name = "upgrade schedules"
	NameUpgradeUnschedule Name = "upgrade unschedule"
	NameGateways          Name = "gateways"
	NameCheck             Name = "check"
)

// Names lists every command, in help order; a router checks it covers all.
var Names = []Name{
	NameHelp, NameUpgradeStart, NameUpgradeStatus, NameUpgradeAbort, NameUpgradeRetry,
	NameUpgradeHistory, NameUpgradeAudit, NameUpgradeSchedule, NameUpgradeSchedules,
	NameUpgradeUnschedule, NameGateways, NameCheck,
}

// Command is one parsed `/kong` command: one of the types below.
type Command interface {
	Name() Name
}

// Help: `help [topic…]`.
type Help struct {
	Topic string // "" or a command name such as "upgrade schedule"
}

// UpgradeStart: `upgrade start <gateway> [to <version>] [--dry-run]`.
type UpgradeStart struct {
	Gateway string
	Target  string // "" when not given: the default target
	DryRun  bool
}

// UpgradeStatus: `upgrade status [run]`.
type UpgradeStatus struct{ Run string }

// UpgradeAbort: `upgrade abort <run> [reason…]`.
type UpgradeAbort struct{ Run, Reason string }

// UpgradeRetry: `upgrade retry <run>`.
type UpgradeRetry struct{ Run string }

// UpgradeHistory: `upgrade history [gateway]`.
type UpgradeHistory struct{ Gateway string }

// UpgradeAudit: `upgrade audit <run>`.
type UpgradeAudit struct{ Run string }

// When is an upgrade window: a cron spec (5 fields or a descriptor such as
// @daily) or one instant.
type When struct {
	Cron string    // non-empty for a recurring window
	At   time.Time // non-zero for a one-off window
}

// UpgradeSchedule: `upgrade schedule <gateway> to <version> at "<cron | RFC3339>"`.
type UpgradeSchedule struct {
	Gateway string
	Target  string
	When    When
}

// UpgradeSchedules: `upgrade schedules`.
type UpgradeSchedules struct{}

// UpgradeUnschedule: `upgrade unschedule <id>`.
type UpgradeUnschedule struct{ ID string }

// Gateways: `gateways`.
type Gateways struct{}

// Check: `check <gateway>`.
type Check struct{ Gateway string }

func (Help) Name() Name              { return NameHelp }
func (UpgradeStart) Name() Name      { return NameUpgradeStart }
func (UpgradeStatus) Name() Name     { return NameUpgradeStatus }
func (UpgradeAbort) Name() Name      { return NameUpgradeAbort }
func (UpgradeRetry) Name() Name      { return NameUpgradeRetry }
func (UpgradeHistory) Name() Name    { return NameUpgradeHistory }
func (UpgradeAudit) Name() Name      { return NameUpgradeAudit }
func (UpgradeSchedule) Name() Name   { return NameUpgradeSchedule }
func (UpgradeSchedules) Name() Name  { return NameUpgradeSchedules }
func (UpgradeUnschedule) Name() Name { return NameUpgradeUnschedule }
func (Gateways) Name() Name          { return NameGateways }
func (Check) Name() Name             { return NameCheck }
