package commands

import (
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/agnivade/levenshtein"
	"github.com/robfig/cron/v3"

	"github.com/kongbot/kongbot/steps"
)

// Options are what the parser may know beyond the text.
type Options struct {
	// Gateways, when set, are the gateway names in config: another name is
	// refused with a "did you mean". Empty accepts any well-formed name.
	Gateways []string
	// Now, when set, refuses one-off windows in the past.
	Now func() time.Time
}

// maxInput bounds what is parsed; Slack caps slash command text well below.
const maxInput = 4000

var (
	nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
	idRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$`)
)

// cronParser accepts the standard 5 fields and descriptors (@daily,
// @every 1h), as robfig/cron's ParseStandard does.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Parse parses the text after `/kong` with no Options.
func Parse(text string) (Command, error) { return ParseWith(text, Options{}) }

// ParseWith parses the text after `/kong`. Exactly one of the results is
// non-nil; the error is always a *UsageError.
func ParseWith(text string, o Options) (Command, error) {
	cmd, err := parse(text, o)
	if err != nil {
		return nil, err
	}
	return cmd, nil
}

func parse(text string, o Options) (Command, error) {
	if len(text) > maxInput {
		return nil, &UsageError{Msg: fmt.Sprintf("command too long (%d bytes, at most %d)", len(text), maxInput), Usage: "/kong help"}
	}
	if !utf8.ValidString(text) {
		return nil, &UsageError{Msg: "command is not valid UTF-8", Usage: "/kong help"}
	}
	toks := tokenize(text)
	p := &parser{toks: toks, o: o}
	if len(toks) == 0 {
		return Help{}, nil
	}
	verb := p.next()
	switch strings.ToLower(verb.text) {
	case "help", "-h", "--help", "?":
		return Help{Topic: strings.Join(p.rest(), " ")}, nil
	case "upgrade", "upgrades":
		return p.upgrade()
	case "gateways":
		return Gateways{}, p.end(NameGateways)
	case "check":
		gw, err := p.gateway(NameCheck)
		if err != nil {
			return nil, err
		}
		return Check{Gateway: gw}, p.end(NameCheck)
	}
	return nil, &UsageError{
		Msg:        fmt.Sprintf("unknown command %q", verb.text),
		Suggestion: suggest(verb.text, []string{"help", "upgrade", "gateways", "check"}),
		Usage:      "/kong help | upgrade … | gateways | check <gateway>",
	}
}

type token struct {
	text   string
	quoted bool
}

type parser struct {
	toks []token
	pos  int
	o    Options
}

func (p *parser) more() bool { return p.pos < len(p.toks) }

func (p *parser) next() token {
	t := p.toks[p.pos]
	p.pos++
	return t
}

func (p *parser) rest() []string {
	var out []string
	for p.more() {
		out = append(out, p.next().text)
	}
	return out
}

// end refuses anything left over.
func (p *parser) end(n Name) error {
	if !p.more() {
		return nil
	}
	t := p.next()
	if isFlag(t) {
		return p.badFlag(t, n, nil)
	}
	return &UsageError{Msg: fmt.Sprintf("unexpected %q after the command", t.text), Usage: Usage(n)}
}

var upgradeVerbs = []string{"start", "status", "abort", "retry", "history", "audit", "schedule", "schedules", "unschedule"}

func (p *parser) upgrade() (Command, error) {
	if !p.more() {
		return nil, &UsageError{Msg: "upgrade needs a subcommand: " + strings.Join(upgradeVerbs, ", "), Usage: Usage(NameUpgradeStart)}
	}
	verb := p.next()
	switch strings.ToLower(verb.text) {
	case "start":
		return p.start()
	case "status":
		run, err := p.optionalID(NameUpgradeStatus, "run")
		return UpgradeStatus{Run: run}, orEnd(err, p, NameUpgradeStatus)
	case "abort":
		run, err := p.id(NameUpgradeAbort, "run")
		if err != nil {
			return nil, err
		}
		return UpgradeAbort{Run: run, Reason: strings.Join(p.rest(), " ")}, nil
	case "retry":
		run, err := p.id(NameUpgradeRetry, "run")
		return UpgradeRetry{Run: run}, orEnd(err, p, NameUpgradeRetry)
	case "history":
		var gw string
		var err error
		if p.more() {
			gw, err = p.gateway(NameUpgradeHistory)
		}
		return UpgradeHistory{Gateway: gw}, orEnd(err, p, NameUpgradeHistory)
	case "audit":
		run, err := p.id(NameUpgradeAudit, "run")
		return UpgradeAudit{Run: run}, orEnd(err, p, NameUpgradeAudit)
	case "schedule":
		return p.schedule()
	case "schedules":
		return UpgradeSchedules{}, p.end(NameUpgradeSchedules)
	case "unschedule":
		id, err := p.id(NameUpgradeUnschedule, "schedule id")
		return UpgradeUnschedule{ID: id}, orEnd(err, p, NameUpgradeUnschedule)
	}
	return nil, &UsageError{
		Msg:        fmt.Sprintf("unknown upgrade subcommand %q", verb.text),
		Suggestion: prefixed("upgrade ", suggest(verb.text, upgradeVerbs)),
		Usage:      "/kong upgrade " + strings.Join(upgradeVerbs, "|") + " …",
	}
}

// orEnd returns err, or the leftover-argument error when err is nil.
// ParseWith drops a command returned beside an error.
func orEnd(err error, p *parser, n Name) error {
	if err != nil {
		return err
	}
	return p.end(n)
}

func (p *parser) start() (Command, error) {
	c := UpgradeStart{}
	for p.more() {
		t := p.next()
		switch {
		case isFlag(t):
			if normFlag(t.text) != "--dry-run" {
				return nil, p.badFlag(t, NameUpgradeStart, []string{"--dry-run"})
			}
			c.DryRun = true
		case c.Gateway == "":
			gw, err := p.checkGateway(t.text, NameUpgradeStart)
			if err != nil {
				return nil, err
			}
			c.Gateway = gw
		case strings.EqualFold(t.text, "to") && !t.quoted:
			if c.Target != "" {
				return nil, &UsageError{Msg: "target version given twice", Usage: Usage(NameUpgradeStart)}
			}
			if !p.more() {
				return nil, &UsageError{Msg: "`to` needs a version; supported targets: " + strings.Join(steps.Targets, ", "), Usage: Usage(NameUpgradeStart)}
			}
			v, err := version(p.next().text, NameUpgradeStart)
			if err != nil {
				return nil, err
			}
			c.Target = v
		default:
			return nil, p.unexpected(t, NameUpgradeStart, []string{"to"})
		}
	}
	if c.Gateway == "" {
		return nil, &UsageError{Msg: "upgrade start needs a gateway", Usage: Usage(NameUpgradeStart)}
	}
	return c, nil
}

func (p *parser) schedule() (Command, error) {
	n := NameUpgradeSchedule
	gw, err := p.gateway(n)
	if err != nil {
		return nil, err
	}
	if err := p.keyword("to", n); err != nil {
		return nil, err
	}
	if !p.more() {
		return nil, &UsageError{Msg: "`to` needs a version; supported targets: " + strings.Join(steps.Targets, ", "), Usage: Usage(n)}
	}
	target, err := version(p.next().text, n)
	if err != nil {
		return nil, err
	}
	if err := p.keyword("at", n); err != nil {
		return nil, err
	}
	if !p.more() {
		return nil, &UsageError{Msg: "`at` needs a cron spec or an RFC3339 time, in quotes", Usage: Usage(n)}
	}
	// Unquoted cron fields arrive as several tokens; they are the rest.
	spec := strings.Join(p.rest(), " ")
	when, err := p.when(spec)
	if err != nil {
		return nil, err
	}
	return UpgradeSchedule{Gateway: gw, Target: target, When: when}, nil
}

func (p *parser) when(spec string) (When, error) {
	spec = strings.TrimSpace(spec)
	n := NameUpgradeSchedule
	if spec == "" {
		return When{}, &UsageError{Msg: "empty schedule", Usage: Usage(n)}
	}
	if looksLikeTime(spec) {
		at, err := time.Parse(time.RFC3339, spec)
		if err != nil {
			return When{}, &UsageError{Msg: fmt.Sprintf("bad time %q: want RFC3339 such as 2026-12-05T02:00:00Z (%v)", spec, err), Usage: Usage(n)}
		}
		if p.o.Now != nil && !at.After(p.o.Now()) {
			return When{}, &UsageError{Msg: fmt.Sprintf("time %s is in the past", at.Format(time.RFC3339)), Usage: Usage(n)}
		}
		return When{At: at}, nil
	}
	if err := parseCron(spec); err != nil {
		return When{}, &UsageError{Msg: fmt.Sprintf("bad cron spec %q: %v (5 fields: minute hour day-of-month month day-of-week, or @daily, @weekly, @every 24h)", spec, err), Usage: Usage(n)}
	}
	return When{Cron: spec}, nil
}

// parseCron validates a cron spec. robfig/cron v3.0.1 panics on a time-zone
// prefix with nothing after it ("TZ=", found by FuzzParse), so that case is
// refused first and any other panic becomes an error.
func parseCron(spec string) (err error) {
	if (strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=")) && !strings.Contains(spec, " ") {
		return fmt.Errorf("time zone %q needs a schedule after it", spec)
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("unparseable spec (%v)", r)
		}
	}()
	_, err = cronParser.Parse(spec)
	return err
}

// looksLikeTime: an RFC3339 time starts with a 4-digit year and a dash; no
// cron spec does.
func looksLikeTime(s string) bool {
	return len(s) >= 5 && isDigits(s[:4]) && s[4] == '-'
}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

func (p *parser) keyword(kw string, n Name) error {
	if !p.more() {
		return &UsageError{Msg: fmt.Sprintf("missing `%s`", kw), Usage: Usage(n)}
	}
	t := p.next()
	if strings.EqualFold(t.text, kw) && !t.quoted {
		return nil
	}
	return &UsageError{Msg: fmt.Sprintf("expected `%s`, got %q", kw, t.text), Suggestion: suggest(t.text, []string{kw}), Usage: Usage(n)}
}

func (p *parser) gateway(n Name) (string, error) {
	if !p.more() {
		return "", &UsageError{Msg: "missing gateway name", Usage: Usage(n)}
	}
	t := p.next()
	if isFlag(t) {
		return "", &UsageError{Msg: fmt.Sprintf("expected a gateway name, got flag %q", t.text), Usage: Usage(n)}
	}
	return p.checkGateway(t.text, n)
}

func (p *parser) checkGateway(s string, n Name) (string, error) {
	if !nameRE.MatchString(s) {
		return "", &UsageError{Msg: fmt.Sprintf("invalid gateway name %q (letters, digits, '.', '_', '-')", s), Usage: Usage(n)}
	}
	if len(p.o.Gateways) == 0 {
		return s, nil
	}
	for _, g := range p.o.Gateways {
		if g == s {
			return s, nil
		}
	}
	return "", &UsageError{
		Msg:        fmt.Sprintf("unknown gateway %q; known gateways: %s", s, strings.Join(p.o.Gateways, ", ")),
		Suggestion: suggest(s, p.o.Gateways),
		Usage:      Usage(n),
	}
}

func (p *parser) id(n Name, what string) (string, error) {
	if !p.more() {
		return "", &UsageError{Msg: "missing " + what, Usage: Usage(n)}
	}
	t := p.next()
	if isFlag(t) || !idRE.MatchString(t.text) {
		return "", &UsageError{Msg: fmt.Sprintf("invalid %s %q", what, t.text), Usage: Usage(n)}
	}
	return t.text, nil
}

func (p *parser) optionalID(n Name, what string) (string, error) {
	if !p.more() {
		return "", nil
	}
	return p.id(n, what)
}

func version(s string, n Name) (string, error) {
	v := strings.TrimPrefix(strings.TrimPrefix(s, "v"), "V")
	if steps.IsTarget(v) {
		return v, nil
	}
	return "", &UsageError{
		Msg: fmt.Sprintf("unknown version %s; supported targets: %s", s, strings.Join(steps.Targets, ", ")),
		// One edit only: 0.15.0 is not a typo of 0.14.1, 1.0.2 is of 1.0.3.
		Suggestion: suggestWithin(v, steps.Targets, 1),
		Usage:      Usage(n),
	}
}

func (p *parser) unexpected(t token, n Name, keywords []string) error {
	return &UsageError{Msg: fmt.Sprintf("unexpected %q", t.text), Suggestion: suggest(t.text, keywords), Usage: Usage(n)}
}

func (p *parser) badFlag(t token, n Name, flags []string) error {
	msg := fmt.Sprintf("unknown flag %s", t.text)
	if len(flags) == 0 {
		msg = fmt.Sprintf("%s takes no flags, got %s", n, t.text)
	}
	return &UsageError{Msg: msg, Suggestion: suggest(normFlag(t.text), flags), Usage: Usage(n)}
}

func isFlag(t token) bool {
	return !t.quoted && (strings.HasPrefix(t.text, "-") || strings.HasPrefix(t.text, "—") || strings.HasPrefix(t.text, "–"))
}

// normFlag undoes what chat clients do to "--": an em or en dash.
func normFlag(s string) string {
	for _, d := range []string{"—", "–"} {
		if strings.HasPrefix(s, d) {
			return "--" + strings.TrimLeft(strings.TrimPrefix(s, d), "-")
		}
	}
	return strings.ToLower(s)
}

// suggest returns the candidate nearest to s when it is a near miss: at
// most 2 edits (a swap of two neighbours counts as one), and fewer than half
// of the candidate's length.
func suggest(s string, candidates []string) string { return suggestWithin(s, candidates, 2) }

func suggestWithin(s string, candidates []string, maxEdits int) string {
	s = strings.ToLower(s)
	if len(s) > 64 {
		return ""
	}
	best, bestD := "", maxEdits+1
	for _, c := range candidates {
		lc := strings.ToLower(c)
		d := levenshtein.ComputeDistance(s, lc)
		if swapped(s, lc) {
			d = 1
		}
		if d > 0 && d < bestD && d*2 < utf8.RuneCountInString(c)+1 {
			best, bestD = c, d
		}
	}
	return best
}

// swapped reports whether a and b differ by one swap of neighbours ("ot",
// "to"), the commonest typo, which plain edit distance counts as two.
func swapped(a, b string) bool {
	ra, rb := []rune(a), []rune(b)
	if len(ra) != len(rb) {
		return false
	}
	i := 0
	for i < len(ra) && ra[i] == rb[i] {
		i++
	}
	if i+1 >= len(ra) || ra[i] != rb[i+1] || ra[i+1] != rb[i] {
		return false
	}
	return string(ra[i+2:]) == string(rb[i+2:])
}

func prefixed(prefix, s string) string {
	if s == "" {
		return ""
	}
	return prefix + s
}

// Quote pairs accepted around arguments: ASCII and the typographic quotes
// Slack clients substitute.
var closing = map[rune]rune{'"': '"', '\'': '\'', '“': '”', '”': '”', '„': '“', '‘': '’', '’': '’'}

// tokenize splits on white space, keeping quoted strings whole. A quote
// only opens at the start of a word, so apostrophes in reasons survive.
func tokenize(s string) []token {
	var out []token
	rs := []rune(s)
	for i := 0; i < len(rs); {
		if unicode.IsSpace(rs[i]) {
			i++
			continue
		}
		if want, ok := closing[rs[i]]; ok {
			open := rs[i]
			j := i + 1
			for j < len(rs) && rs[j] != want && !(want == '”' && rs[j] == '"') && !(open == '"' && rs[j] == '”') {
				j++
			}
			if j < len(rs) {
				out = append(out, token{text: string(rs[i+1 : j]), quoted: true})
				i = j + 1
				continue
			}
			// Unterminated: the quote is an ordinary character (an
			// apostrophe in an abort reason, say).
		}
		j := i
		for j < len(rs) && !unicode.IsSpace(rs[j]) {
			j++
		}
		out = append(out, token{text: string(rs[i:j])})
		i = j
	}
	return out
}
