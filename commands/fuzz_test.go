package commands

import (
	"errors"
	"slices"
	"testing"

	"github.com/kongbot/kongbot/steps"
)

// FuzzParse checks the parser's promises on any input: it does not panic,
// it returns exactly one of a command or a *UsageError, the error says
// something and points to a usage, and a command's fields are valid.
// Seeds: testdata/fuzz/FuzzParse (run scripts/fuzz.sh for 60 s).
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", "help", "upgrade start prod to 1.0.3 --dry-run", "upgrade abort r1 it's late",
		`upgrade schedule prod to 1.0.3 at “0 2 * * 6”`, "check prod", "gateways",
	} {
		f.Add(s)
	}
	opts := Options{Gateways: []string{"prod", "staging"}}
	f.Fuzz(func(t *testing.T, in string) {
		for _, o := range []Options{{}, opts} {
			cmd, err := ParseWith(in, o)
			if (cmd == nil) == (err == nil) {
				t.Fatalf("ParseWith(%q) = %#v, %v: want exactly one", in, cmd, err)
			}
			if err != nil {
				var ue *UsageError
				if !errors.As(err, &ue) || ue.Msg == "" || ue.Usage == "" || err.Error() == "" {
					t.Fatalf("ParseWith(%q) error %#v is not a complete *UsageError", in, err)
				}
				continue
			}
			if !slices.Contains(Names, cmd.Name()) || Usage(cmd.Name()) == "" || HelpText(string(cmd.Name())) == "" {
				t.Fatalf("ParseWith(%q) = %#v: unknown name or no usage", in, cmd)
			}
			switch c := cmd.(type) {
			case Help:
				if HelpText(c.Topic) == "" {
					t.Fatalf("empty help for %q", c.Topic)
				}
			case UpgradeStart:
				if !nameRE.MatchString(c.Gateway) || (c.Target != "" && !steps.IsTarget(c.Target)) {
					t.Fatalf("ParseWith(%q) = %#v: bad gateway or target", in, c)
				}
			case UpgradeSchedule:
				if !steps.IsTarget(c.Target) || (c.When.Cron == "") == c.When.At.IsZero() {
					t.Fatalf("ParseWith(%q) = %#v: bad target or window", in, c)
				}
				if c.When.Cron != "" {
					if err := parseCron(c.When.Cron); err != nil {
						t.Fatalf("ParseWith(%q) accepted cron %q: %v", in, c.When.Cron, err)
					}
				}
			case Check:
				if o.Gateways != nil && !slices.Contains(o.Gateways, c.Gateway) {
					t.Fatalf("ParseWith(%q) accepted unknown gateway %q", in, c.Gateway)
				}
			}
			again, err := ParseWith(in, o)
			if err != nil || again.Name() != cmd.Name() {
				t.Fatalf("ParseWith(%q) is not deterministic", in)
			}
		}
	})
}
