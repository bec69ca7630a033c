package commands

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	at := time.Date(2026, 12, 5, 2, 0, 0, 0, time.UTC)
	cases := []struct {
		in   string
		want Command
	}{
		{"", Help{}},
		{"   ", Help{}},
		{"help", Help{}},
		{"help upgrade start", Help{Topic: "upgrade start"}},
		{"upgrade start prod", UpgradeStart{Gateway: "prod"}},
		{"upgrade start prod to 1.0.3", UpgradeStart{Gateway: "prod", Target: "1.0.3"}},
		{"upgrade start prod to v0.14.1 --dry-run", UpgradeStart{Gateway: "prod", Target: "0.14.1", DryRun: true}},
		{"upgrade start --dry-run prod", UpgradeStart{Gateway: "prod", DryRun: true}},
		{"upgrade start prod —dry-run", UpgradeStart{Gateway: "prod", DryRun: true}},
		{"UPGRADE Start prod TO 1.0.3", UpgradeStart{Gateway: "prod", Target: "1.0.3"}},
		{"upgrade status", UpgradeStatus{}},
		{"upgrade status r-20261129-1", UpgradeStatus{Run: "r-20261129-1"}},
		{"upgrade abort r1", UpgradeAbort{Run: "r1"}},
		{"upgrade abort r1 window is over, we'll retry", UpgradeAbort{Run: "r1", Reason: "window is over, we'll retry"}},
		{"upgrade abort r1 “smart quoted reason”", UpgradeAbort{Run: "r1", Reason: "smart quoted reason"}},
		{"upgrade retry r1", UpgradeRetry{Run: "r1"}},
		{"upgrade history", UpgradeHistory{}},
		{"upgrade history staging", UpgradeHistory{Gateway: "staging"}},
		{"upgrade audit r1", UpgradeAudit{Run: "r1"}},
		{`upgrade schedule prod to 1.0.3 at "0 2 * * 6"`, UpgradeSchedule{Gateway: "prod", Target: "1.0.3", When: When{Cron: "0 2 * * 6"}}},
		{`upgrade schedule prod to 1.0.3 at “0 2 * * 6”`, UpgradeSchedule{Gateway: "prod", Target: "1.0.3", When: When{Cron: "0 2 * * 6"}}},
		{`upgrade schedule prod to 1.0.3 at 0 2 * * 6`, UpgradeSchedule{Gateway: "prod", Target: "1.0.3", When: When{Cron: "0 2 * * 6"}}},
		{`upgrade schedule prod to 1.0.3 at "CRON_TZ=Europe/Berlin 0 2 * * 6"`, UpgradeSchedule{Gateway: "prod", Target: "1.0.3", When: When{Cron: "CRON_TZ=Europe/Berlin 0 2 * * 6"}}},
		{`upgrade schedule prod to 1.0.3 at "@weekly"`, UpgradeSchedule{Gateway: "prod", Target: "1.0.3", When: When{Cron: "@weekly"}}},
		{`upgrade schedule prod to 0.14.1 at "2026-12-05T02:00:00Z"`, UpgradeSchedule{Gateway: "prod", Target: "0.14.1", When: When{At: at}}},
		{`upgrade schedule prod to 0.14.1 at ‘2026-12-05T02:00:00Z’`, UpgradeSchedule{Gateway: "prod", Target: "0.14.1", When: When{At: at}}},
		{"upgrade schedules", UpgradeSchedules{}},
		{"upgrade unschedule s-3", UpgradeUnschedule{ID: "s-3"}},
		{"gateways", Gateways{}},
		{"check prod", Check{Gateway: "prod"}},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got, err := Parse(c.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", c.in, err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("Parse(%q) = %#v, want %#v", c.in, got, c.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	now := func() time.Time { return time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC) }
	cases := []struct {
		in      string
		msg     string // substring of the message
		suggest string
		usage   Name
	}{
		{"upgrade start prod to 0.15.0", "unknown version 0.15.0; supported targets: 0.14.1, 1.0.3", "", NameUpgradeStart},
		{"upgrade start prod to 1.0.2", "unknown version 1.0.2", "1.0.3", NameUpgradeStart},
		{"upgrade start prod to", "`to` needs a version", "", NameUpgradeStart},
		{"upgrade start", "needs a gateway", "", NameUpgradeStart},
		{"upgrade start prod --dryrun", "unknown flag --dryrun", "--dry-run", NameUpgradeStart},
		{"upgrade start prod --force", "unknown flag --force", "", NameUpgradeStart},
		{"upgrade start prod ot 1.0.3", `unexpected "ot"`, "to", NameUpgradeStart},
		{"upgrade start prod to 1.0.3 to 0.14.1", "given twice", "", NameUpgradeStart},
		{"upgrade strat prod", `unknown upgrade subcommand "strat"`, "upgrade start", ""},
		{"upgrade statsu", `unknown upgrade subcommand`, "upgrade status", ""},
		{"upgrade", "needs a subcommand", "", NameUpgradeStart},
		{"upgarde start prod", `unknown command "upgarde"`, "upgrade", ""},
		{"gatways", `unknown command`, "gateways", ""},
		{"deploy prod", `unknown command "deploy"`, "", ""},
		{"gateways prod", `unexpected "prod"`, "", NameGateways},
		{"gateways --all", "gateways takes no flags", "", NameGateways},
		{"check", "missing gateway", "", NameCheck},
		{"check pr/od", "invalid gateway name", "", NameCheck},
		{"upgrade abort", "missing run", "", NameUpgradeAbort},
		{"upgrade retry r1 r2", `unexpected "r2"`, "", NameUpgradeRetry},
		{"upgrade audit", "missing run", "", NameUpgradeAudit},
		{"upgrade unschedule", "missing schedule id", "", NameUpgradeUnschedule},
		{"upgrade schedule prod 1.0.3 at \"0 2 * * *\"", "expected `to`", "", NameUpgradeSchedule},
		{"upgrade schedule prod to 1.0.3 \"0 2 * * *\"", "expected `at`", "", NameUpgradeSchedule},
		{"upgrade schedule prod to 1.0.3 ta \"0 2 * * *\"", "expected `at`", "at", NameUpgradeSchedule},
		{"upgrade schedule prod to 1.0.3 at", "`at` needs", "", NameUpgradeSchedule},
		{"upgrade schedule prod to 1.0.3 at \"61 2 * * *\"", "bad cron spec", "", NameUpgradeSchedule},
		{"upgrade schedule prod to 1.0.3 at \"0 2 * *\"", "bad cron spec", "", NameUpgradeSchedule},
		{"upgrade schedule prod to 1.0.3 at \"2026-13-05T02:00:00Z\"", "bad time", "", NameUpgradeSchedule},
		{"upgrade schedule prod to 1.0.3 at TZ=", "needs a schedule after it", "", NameUpgradeSchedule},
		{"upgrade schedule prod to 1.0.3 at \"CRON_TZ=Mars/Olympus 0 2 * * *\"", "bad location", "", NameUpgradeSchedule},
		{"upgrade schedule prod to 1.0.3 at \"2026-12-05 02:00\"", "bad time", "", NameUpgradeSchedule},
		{"upgrade schedule prod to 1.0.3 at \"2020-01-01T00:00:00Z\"", "in the past", "", NameUpgradeSchedule},
		{"upgrade schedule prod to 0.15.0 at \"@daily\"", "unknown version 0.15.0", "", NameUpgradeSchedule},
		{"check prdo", `unknown gateway "prdo"; known gateways: prod, staging`, "prod", NameCheck},
		{"upgrade start \xff", "not valid UTF-8", "", ""},
		{strings.Repeat("a", 5000), "too long", "", ""},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got, err := ParseWith(c.in, Options{Gateways: gatewaysFor(c.in), Now: now})
			if got != nil {
				t.Errorf("got a command %#v beside the error", got)
			}
			var ue *UsageError
			if !errors.As(err, &ue) {
				t.Fatalf("ParseWith(%q) error %v is not a *UsageError", c.in, err)
			}
			if !strings.Contains(ue.Msg, c.msg) {
				t.Errorf("message %q does not say %q", ue.Msg, c.msg)
			}
			if ue.Suggestion != c.suggest {
				t.Errorf("suggestion %q, want %q", ue.Suggestion, c.suggest)
			}
			if c.usage != "" && ue.Usage != Usage(c.usage) {
				t.Errorf("usage %q, want %q", ue.Usage, Usage(c.usage))
			}
			if c.suggest != "" && !strings.Contains(err.Error(), "did you mean `"+c.suggest+"`?") {
				t.Errorf("error text %q lacks the suggestion", err)
			}
		})
	}
}

// gatewaysFor turns on the known-gateway check for the cases about it.
func gatewaysFor(in string) []string {
	if strings.HasPrefix(in, "check pr") {
		return []string{"prod", "staging"}
	}
	return nil
}

func TestHelpCoversEveryCommand(t *testing.T) {
	all := HelpText("")
	for _, n := range Names {
		if Usage(n) == "" || !strings.Contains(all, Usage(n)) {
			t.Errorf("help lacks %s", n)
		}
		if got := HelpText(string(n)); !strings.HasPrefix(got, Usage(n)) {
			t.Errorf("HelpText(%s) = %q", n, got)
		}
	}
	if HelpText("nonsense") != all {
		t.Error("unknown topic does not give the full help")
	}
}

// Every command the parser returns names itself as one of Names, and its
// usage line parses back (the help never shows a command that fails).
func TestNamesAreComplete(t *testing.T) {
	examples := map[Name]string{
		NameHelp: "help", NameUpgradeStart: "upgrade start prod", NameUpgradeStatus: "upgrade status",
		NameUpgradeAbort: "upgrade abort r1", NameUpgradeRetry: "upgrade retry r1", NameUpgradeHistory: "upgrade history",
		NameUpgradeAudit: "upgrade audit r1", NameUpgradeSchedule: `upgrade schedule prod to 1.0.3 at "@daily"`,
		NameUpgradeSchedules: "upgrade schedules", NameUpgradeUnschedule: "upgrade unschedule s1",
		NameGateways: "gateways", NameCheck: "check prod",
	}
	for _, n := range Names {
		c, err := Parse(examples[n])
		if err != nil || c.Name() != n {
			t.Errorf("%s: %v, %v", n, c, err)
		}
	}
}
