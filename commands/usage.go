package commands

import (
	"fmt"
	"strings"
)

// UsageError is a command the parser could not accept. Msg says what is
// wrong, Usage how the command is written; Suggestion, when set, is the
// near miss the user probably meant.
type UsageError struct {
	Msg        string
	Usage      string
	Suggestion string
}

func (e *UsageError) Error() string {
	var b strings.Builder
	b.WriteString(e.Msg)
	if e.Suggestion != "" {
		fmt.Fprintf(&b, "; did you mean `%s`?", e.Suggestion)
	}
	if e.Usage != "" {
		b.WriteString("\nusage: ")
		b.WriteString(e.Usage)
	}
	return b.String()
}

// synopsis is each command's usage line and what it does.
var synopsis = map[Name][2]string{
	NameHelp:              {"/kong help [command]", "show this help, or one command's"},
	NameUpgradeStart:      {"/kong upgrade start <gateway> [to <version>] [--dry-run]", "plan and start an upgrade (default target 1.0.3); --dry-run runs only the preflight checks"},
	NameUpgradeStatus:     {"/kong upgrade status [run]", "show a run, or every open run"},
	NameUpgradeAbort:      {"/kong upgrade abort <run> [reason…]", "abort a run; the bot offers the rollback that fits its stage"},
	NameUpgradeRetry:      {"/kong upgrade retry <run>", "run a run's failed step again"},
	NameUpgradeHistory:    {"/kong upgrade history [gateway]", "list past runs"},
	NameUpgradeAudit:      {"/kong upgrade audit <run>", "show a run's audit log and check its hash chain"},
	NameUpgradeSchedule:   {"/kong upgrade schedule <gateway> to <version> at \"<cron | RFC3339>\"", "open an upgrade window, e.g. at \"0 2 * * 6\" or at \"2026-12-05T02:00:00Z\""},
	NameUpgradeSchedules:  {"/kong upgrade schedules", "list upgrade windows"},
	NameUpgradeUnschedule: {"/kong upgrade unschedule <id>", "remove an upgrade window"},
	NameGateways:          {"/kong gateways", "list the gateways kongbot knows and what they run"},
	NameCheck:             {"/kong check <gateway>", "read a gateway: nodes, versions, schema, APIs, plugins"},
}

// Usage returns one command's usage line.
func Usage(n Name) string { return synopsis[n][0] }

// HelpText returns the help for topic ("" for all commands). An unknown
// topic gets the full help.
func HelpText(topic string) string {
	topic = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(topic), "/kong "))
	if s, ok := synopsis[Name(topic)]; ok {
		return s[0] + "\n  " + s[1]
	}
	var b strings.Builder
	b.WriteString("kongbot upgrades Kong gateways 0.13.x -> 0.14.1 -> 1.0.3 as an approved runbook.\n")
	for _, n := range Names {
		fmt.Fprintf(&b, "%s\n  %s\n", synopsis[n][0], synopsis[n][1])
	}
	return strings.TrimRight(b.String(), "\n")
}
