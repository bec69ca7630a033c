package config

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"text/template"
	"time"

	"github.com/robfig/cron/v3"
)

// Problem is one thing wrong with a config, at a field path such as
// `gateways[0].generations["0.14.1"].nodes[1].admin_url`.
type Problem struct {
	Path    string
	Message string
}

func (p Problem) String() string { return p.Path + ": " + p.Message }

// Problems is every problem Check found; as an error it lists them all.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return fmt.Sprintf("%d config problem(s):\n  %s", len(ps), strings.Join(lines, "\n  "))
}

// Err returns ps as an error, or nil when there are none.
func (ps Problems) Err() error {
	if len(ps) == 0 {
		return nil
	}
	return ps
}

// Supported versions: generations may run these, migrations target these.
var (
	supportedGenerations = regexp.MustCompile(`^(0\.13\.\d+|0\.14\.[01]|1\.0\.\d+)$`)
	migrationTargets     = []string{"0.14.1", "1.0.3"}
	envName              = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	gatewayName          = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,39}$`)
	slackUser            = regexp.MustCompile(`^[UW][A-Z0-9]{2,}$`)
	slackGroup           = regexp.MustCompile(`^(S[A-Z0-9]{2,}|@?[a-z0-9][a-z0-9._-]*)$`)
	slackChannel         = regexp.MustCompile(`^([CGD][A-Z0-9]{2,}|#[a-z0-9][a-z0-9._-]*)$`)
	httpMethods          = map[string]bool{"GET": true, "HEAD": true, "POST": true, "PUT": true, "PATCH": true, "DELETE": true, "OPTIONS": true}
	cronParser           = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
)

type checker struct {
	lookup func(string) (string, bool)
	ps     Problems
}

func (c *checker) add(path, format string, args ...any) {
	c.ps = append(c.ps, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

// Check validates the config and the environment variables it names, and
// returns every problem found (nil when there is none).
func (c *Config) Check() Problems { return c.CheckEnv(os.LookupEnv) }

// CheckEnv is Check with a given environment lookup.
func (c *Config) CheckEnv(lookup func(string) (string, bool)) Problems {
	k := &checker{lookup: lookup}
	k.store(c.Store)
	k.admin(c.Admin)
	k.httpListen(c.HTTP, c.Admin)
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		k.add("log.level", "%q is not debug, info, warn or error", c.Log.Level)
	}
	k.slack(c.Slack)
	k.channels(c.Channels)
	k.who("starters", c.Starters, false)
	k.who("approvers", c.Approvers, true)
	k.rules(c)
	k.timers(c.Timers)
	names := map[string]bool{}
	if len(c.Gateways) == 0 {
		k.add("gateways", "no gateway is configured")
	}
	for i := range c.Gateways {
		g := &c.Gateways[i]
		p := fmt.Sprintf("gateways[%d]", i)
		if names[g.Name] {
			k.add(p+".name", "gateway %q is configured twice", g.Name)
		}
		names[g.Name] = true
		k.gateway(p, g)
	}
	for i, w := range c.ChangeWindows {
		p := fmt.Sprintf("change_windows[%d]", i)
		if w.Name == "" {
			k.add(p+".name", "missing")
		}
		k.cron(p+".start", w.Start, true)
		if w.Duration <= 0 || w.Duration > 7*24*time.Hour {
			k.add(p+".duration", "must be more than 0 and at most 168h, got %s", w.Duration)
		}
		for j, gw := range w.Gateways {
			if !names[gw] {
				k.add(fmt.Sprintf("%s.gateways[%d]", p, j), "unknown gateway %q", gw)
			}
		}
	}
	return k.ps
}

func (k *checker) env(path, name string, required bool) {
	if name == "" {
		if required {
			k.add(path, "missing: name the environment variable that holds this secret")
		}
		return
	}
	if !envName.MatchString(name) {
		k.add(path, "%q is not an environment variable name (give the variable's name, not its value)", name)
		return
	}
	if v, ok := k.lookup(name); !ok || v == "" {
		k.add(path, "environment variable %s is not set", name)
	}
}

func (k *checker) store(s StoreConfig) {
	if s.Path == "" {
		k.add("store.path", "missing")
	}
	if s.OpenTimeout < 0 {
		k.add("store.open_timeout", "must not be negative")
	}
}

func (k *checker) admin(a AdminConfig) {
	if a.Listen == "" {
		k.add("admin.listen", "missing (e.g. 127.0.0.1:8089)")
		return
	}
	host, port, err := net.SplitHostPort(a.Listen)
	if err != nil || port == "" {
		k.add("admin.listen", "%q is not host:port", a.Listen)
		return
	}
	if host != "localhost" {
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			k.add("admin.listen", "%q is not a loopback address; the admin endpoint has no authentication", a.Listen)
		}
	}
}

func (k *checker) httpListen(h HTTPConfig, a AdminConfig) {
	if h.Listen == "" {
		return
	}
	_, port, err := net.SplitHostPort(h.Listen)
	if err != nil || port == "" {
		k.add("http.listen", "%q is not host:port (e.g. :8080)", h.Listen)
		return
	}
	if h.Listen == a.Listen && port != "0" { // port 0: each gets its own free port
		k.add("http.listen", "%q is also admin.listen; the admin endpoint needs its own loopback address", h.Listen)
	}
}

func (k *checker) slack(s SlackConfig) {
	k.env("slack.bot_token_env", s.BotTokenEnv, true)
	switch s.Mode {
	case "socket":
		k.env("slack.app_token_env", s.AppTokenEnv, true)
	case "http":
		k.env("slack.signing_secret_env", s.SigningSecretEnv, true)
		if _, _, err := net.SplitHostPort(s.Listen); err != nil {
			k.add("slack.listen", "%q is not host:port (http mode needs an address to receive Slack's requests)", s.Listen)
		}
	default:
		k.add("slack.mode", "%q is not socket or http", s.Mode)
	}
	if s.APIURL != "" {
		k.url("slack.api_url", s.APIURL)
	}
}

func (k *checker) channels(c Channels) {
	if c.Runs == "" {
		k.add("channels.runs", "missing: the channel where runs are posted")
	} else if !slackChannel.MatchString(c.Runs) {
		k.add("channels.runs", "%q is not a Slack channel ID (C…) or #name", c.Runs)
	}
	if c.Digest != "" && !slackChannel.MatchString(c.Digest) {
		k.add("channels.digest", "%q is not a Slack channel ID (C…) or #name", c.Digest)
	}
}

func (k *checker) who(path string, w Who, required bool) {
	if required && w.Empty() {
		k.add(path, "nobody is listed: give user_groups and/or users")
	}
	for i, g := range w.UserGroups {
		if !slackGroup.MatchString(g) {
			k.add(fmt.Sprintf("%s.user_groups[%d]", path, i), "%q is not a user group ID (S…) or handle", g)
		}
	}
	for i, u := range w.Users {
		if !slackUser.MatchString(u) {
			k.add(fmt.Sprintf("%s.users[%d]", path, i), "%q is not a Slack user ID (U… or W…)", u)
		}
	}
}

func (k *checker) rules(c *Config) {
	var risks []string
	for r := range c.ApprovalRules {
		risks = append(risks, r)
	}
	sort.Strings(risks)
	for _, risk := range risks {
		r := c.ApprovalRules[risk]
		p := fmt.Sprintf("approval_rules.%s", risk)
		if _, ok := DefaultApprovalRules[risk]; !ok {
			k.add(p, "unknown risk %q (normal, high, irreversible)", risk)
			continue
		}
		if r.Count < 1 || r.Count > 5 {
			k.add(p+".count", "must be 1 to 5, got %d", r.Count)
		}
		// With only named users (no groups), the rule must be satisfiable.
		if len(c.Approvers.UserGroups) == 0 && len(c.Approvers.Users) > 0 && r.Count > len(c.Approvers.Users) {
			k.add(p+".count", "needs %d approvers but approvers.users lists only %d", r.Count, len(c.Approvers.Users))
		}
	}
	if h, i := c.ApprovalRules["high"], c.ApprovalRules["irreversible"]; i.Count < h.Count {
		k.add("approval_rules.irreversible.count", "is lower than high's (%d < %d): an irreversible step needs at least as much", i.Count, h.Count)
	}
}

func (k *checker) timers(t Timers) {
	for _, d := range []struct {
		path string
		v    time.Duration
	}{
		{"timers.approval_reminder", t.ApprovalReminder},
		{"timers.approval_expiry", t.ApprovalExpiry},
		{"timers.manual_reminder", t.ManualReminder},
		{"timers.health_watch_interval", t.HealthWatchInterval},
		{"timers.schedule_grace", t.ScheduleGrace},
	} {
		if d.v <= 0 {
			k.add(d.path, "must be positive, got %s", d.v)
		}
	}
	if t.ApprovalExpiry > 0 && t.ApprovalReminder >= t.ApprovalExpiry {
		k.add("timers.approval_reminder", "%s is not shorter than approval_expiry %s", t.ApprovalReminder, t.ApprovalExpiry)
	}
	if t.HealthWatchInterval > 0 && t.HealthWatchInterval < time.Second {
		k.add("timers.health_watch_interval", "%s is below 1s", t.HealthWatchInterval)
	}
	k.cron("timers.digest", t.Digest, false)
}

func (k *checker) cron(path, spec string, required bool) {
	if spec == "" {
		if required {
			k.add(path, "missing cron spec")
		}
		return
	}
	if _, err := cronParser.Parse(spec); err != nil {
		k.add(path, "%q is not a cron spec: %v", spec, err)
	}
}

func (k *checker) url(path, s string) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		k.add(path, "%q is not a URL (want http:// or https://host[:port])", s)
	}
}

func (k *checker) gateway(p string, g *Gateway) {
	if !gatewayName.MatchString(g.Name) {
		k.add(p+".name", "%q must be 1-40 lowercase letters, digits, - or _", g.Name)
	}
	k.env(p+".datastore.dsn_env", g.Datastore.DSNEnv, true)
	if g.Datastore.DSNEnv != "" && envName.MatchString(g.Datastore.DSNEnv) {
		if dsn, ok := k.lookup(g.Datastore.DSNEnv); ok && dsn != "" {
			if err := checkDSN(dsn); err != nil {
				k.add(p+".datastore.dsn_env", "the DSN in %s is not usable: %v", g.Datastore.DSNEnv, err)
			}
		}
	}
	k.env(p+".admin_token_env", g.AdminTokenEnv, false)
	if len(g.Generations) == 0 {
		k.add(p+".generations", "no node generations: list at least the version the gateway runs now")
	}
	nodeNames := map[string]string{}
	for _, v := range g.Versions() {
		gp := fmt.Sprintf("%s.generations[%q]", p, v)
		if !supportedGenerations.MatchString(v) {
			k.add(gp, "version %q is not one kongbot handles (0.13.x, 0.14.0, 0.14.1, 1.0.x)", v)
		}
		gen := g.Generations[v]
		if len(gen.Nodes) == 0 {
			k.add(gp+".nodes", "no nodes")
		}
		for j, n := range gen.Nodes {
			np := fmt.Sprintf("%s.nodes[%d]", gp, j)
			if n.Name == "" {
				k.add(np+".name", "missing")
			} else if other, dup := nodeNames[n.Name]; dup {
				k.add(np+".name", "node %q is also at %s", n.Name, other)
			} else {
				nodeNames[n.Name] = np
			}
			if n.AdminURL == "" {
				k.add(np+".admin_url", "missing")
			} else {
				k.url(np+".admin_url", n.AdminURL)
			}
			if n.ProxyURL == "" {
				k.add(np+".proxy_url", "missing")
			} else {
				k.url(np+".proxy_url", n.ProxyURL)
			}
		}
	}
	k.migrations(p, g)
	if g.Termination.Status < 100 || g.Termination.Status > 599 {
		k.add(p+".request_termination.status", "%d is not an HTTP status", g.Termination.Status)
	}
	for j, pr := range g.Termination.Probes {
		k.probe(fmt.Sprintf("%s.request_termination.probes[%d]", p, j), pr, g, false)
	}
	for j, pr := range g.SmokeProbes {
		k.probe(fmt.Sprintf("%s.smoke_probes[%d]", p, j), pr, g, true)
	}
	if g.PGDump != "" && !filepath.IsAbs(g.PGDump) {
		k.add(p+".pg_dump", "%q must be an absolute path to pg_dump (empty: the newest found on the machine)", g.PGDump)
	}
	k.traffic(p+".traffic", g)
}

func (k *checker) migrations(p string, g *Gateway) {
	var targets []string
	for t := range g.Migrations {
		targets = append(targets, t)
	}
	sort.Strings(targets)
	for _, t := range targets {
		m := g.Migrations[t]
		mp := fmt.Sprintf("%s.migrations[%q]", p, t)
		known := false
		for _, s := range migrationTargets {
			known = known || s == t
		}
		if !known {
			k.add(mp, "%q is not a migration target (%s)", t, strings.Join(migrationTargets, ", "))
		}
		vars := MigrationVars{Verb: "up", Config: m.Config, Target: t, Gateway: g.Name, DSN: "postgres://x"}
		k.argv(mp+".argv", m.Argv, vars)
		for j, e := range m.Env {
			ep := fmt.Sprintf("%s.env[%d]", mp, j)
			name, val, ok := strings.Cut(e, "=")
			if !ok || !envName.MatchString(name) {
				k.add(ep, "%q is not KEY=value", e)
				continue
			}
			k.template(ep, val, vars)
		}
		usesConfig := false
		for _, a := range m.Argv {
			usesConfig = usesConfig || strings.Contains(a, ".Config")
		}
		if usesConfig && m.Config == "" {
			k.add(mp+".config", "argv uses {{.Config}} but config is empty")
		}
		if m.Timeout <= 0 {
			k.add(mp+".timeout", "must be positive")
		}
	}
	// Every generation newer than the oldest is reached by a migration.
	vs := g.Versions()
	for i, v := range vs {
		if i == 0 {
			continue
		}
		for _, t := range migrationTargets {
			if v == t {
				if _, ok := g.Migrations[t]; !ok {
					k.add(fmt.Sprintf("%s.migrations[%q]", p, t), "missing: generation %s is configured, so its `migrations up` must be", t)
				}
			}
		}
	}
}

// argv checks a command given as a list: never a shell string.
func (k *checker) argv(path string, argv []string, vars any) {
	if len(argv) == 0 {
		k.add(path, "missing: give the command as a list, e.g. [kong, migrations, \"{{.Verb}}\", -c, \"{{.Config}}\"]")
		return
	}
	if len(argv) == 1 && strings.ContainsAny(argv[0], " \t") {
		k.add(path+"[0]", "%q looks like a shell string; give each argument as its own list item (commands never go through a shell)", argv[0])
	}
	base := argv[0][strings.LastIndex(argv[0], "/")+1:]
	if (base == "sh" || base == "bash" || base == "zsh") && len(argv) > 1 && argv[1] == "-c" {
		k.add(path, "runs a shell (%s -c); give the command itself so its arguments cannot be reinterpreted", base)
	}
	for i, a := range argv {
		k.template(fmt.Sprintf("%s[%d]", path, i), a, vars)
	}
}

func (k *checker) template(path, text string, vars any) {
	t, err := template.New("x").Option("missingkey=error").Parse(text)
	if err != nil {
		k.add(path, "bad placeholder: %v", err)
		return
	}
	if err := t.Execute(new(strings.Builder), vars); err != nil {
		k.add(path, "bad placeholder: %v", err)
	}
}

func (k *checker) probe(p string, pr Probe, g *Gateway, needStatus bool) {
	if !httpMethods[pr.Method] {
		k.add(p+".method", "%q is not an HTTP method", pr.Method)
	}
	if !strings.HasPrefix(pr.Path, "/") {
		k.add(p+".path", "%q must start with /", pr.Path)
	}
	if needStatus && (pr.ExpectStatus < 100 || pr.ExpectStatus > 599) {
		k.add(p+".expect_status", "%d is not an HTTP status", pr.ExpectStatus)
	}
	if pr.Generation != "" {
		if _, ok := g.Generations[pr.Generation]; !ok {
			k.add(p+".generation", "%q is not one of the gateway's generations (%s)", pr.Generation, strings.Join(g.Versions(), ", "))
		}
	}
}

func (k *checker) traffic(p string, g *Gateway) {
	t := g.Traffic
	switch t.Backend {
	case "haproxy":
		if t.HAProxy == nil {
			k.add(p+".haproxy", "missing: backend is haproxy")
			break
		}
		h := t.HAProxy
		if !strings.HasPrefix(h.RuntimeAPI, "unix:/") && !strings.HasPrefix(h.RuntimeAPI, "/") {
			if _, _, err := net.SplitHostPort(h.RuntimeAPI); err != nil {
				k.add(p+".haproxy.runtime_api", "%q is neither unix:/path/to/socket nor host:port", h.RuntimeAPI)
			}
		}
		if h.Backend == "" {
			k.add(p+".haproxy.backend", "missing: the HAProxy backend that holds the Kong servers")
		}
		if len(h.Servers) == 0 {
			k.add(p+".haproxy.servers", "missing: the HAProxy server names of each generation")
		}
		var gens []string
		for v := range h.Servers {
			gens = append(gens, v)
		}
		sort.Strings(gens)
		for _, v := range gens {
			sp := fmt.Sprintf("%s.haproxy.servers[%q]", p, v)
			if _, ok := g.Generations[v]; !ok {
				k.add(sp, "%q is not one of the gateway's generations", v)
			}
			if len(h.Servers[v]) == 0 {
				k.add(sp, "no server names")
			}
		}
		if h.Timeout <= 0 {
			k.add(p+".haproxy.timeout", "must be positive")
		}
		if h.UpWait < 0 || h.UpWait > 10*time.Minute {
			k.add(p+".haproxy.up_wait", "%s must be between 0 (the default, 10s) and 10m", h.UpWait)
		}
	case "exec":
		if t.Exec == nil {
			k.add(p+".exec", "missing: backend is exec")
			break
		}
		k.argv(p+".exec.argv", t.Exec.Argv, ExecVars{})
		if t.Exec.Timeout <= 0 {
			k.add(p+".exec.timeout", "must be positive")
		}
	case "manual":
		if t.Front == nil {
			k.add(p+".front", "missing: the manual backend verifies each move through the load balancer, so it needs front.url")
		}
	default:
		k.add(p+".backend", "%q is not haproxy, exec or manual", t.Backend)
	}
	if t.HAProxy != nil && t.Backend != "haproxy" {
		k.add(p+".haproxy", "is set but backend is %q", t.Backend)
	}
	if t.Exec != nil && t.Backend != "exec" {
		k.add(p+".exec", "is set but backend is %q", t.Backend)
	}
	if f := t.Front; f != nil {
		if f.URL == "" {
			k.add(p+".front.url", "missing: the URL clients use, through the load balancer")
		} else {
			k.url(p+".front.url", f.URL)
		}
		if f.Requests < 1 || f.Requests > 10000 {
			k.add(p+".front.requests", "must be 1 to 10000, got %d", f.Requests)
		}
	}
	if t.OutageBake < 0 || t.OutageBake > 10*time.Minute {
		k.add(p+".outage_bake", "%s must be between 0 (the default, 5s) and 10m: it is outage time", t.OutageBake)
	}
	last := 0
	for i, s := range t.Stages {
		sp := fmt.Sprintf("%s.stages[%d]", p, i)
		if s.Percent <= last || s.Percent > 100 {
			k.add(sp+".percent", "%d must be above the previous stage (%d) and at most 100", s.Percent, last)
		}
		if s.Bake < 0 {
			k.add(sp+".bake", "must not be negative")
		}
		last = s.Percent
	}
	if len(t.Stages) > 0 && last != 100 {
		k.add(fmt.Sprintf("%s.stages[%d].percent", p, len(t.Stages)-1), "the last stage must be 100, got %d", last)
	}
	if t.Gates.Max5xxRatio < 0 || t.Gates.Max5xxRatio > 1 {
		k.add(p+".gates.max_5xx_ratio", "%g is not a ratio between 0 and 1", t.Gates.Max5xxRatio)
	}
	if t.Gates.MaxP95Latency <= 0 {
		k.add(p+".gates.max_p95_latency", "must be positive")
	}
	if t.Gates.MinRequests < 0 {
		k.add(p+".gates.min_requests", "must not be negative")
	}
}
