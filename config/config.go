// Package config loads kongbot's configuration: one YAML file, decoded
// strictly (an unknown field is an error), plus environment variables for
// every secret (the file only names them). Check reports every problem at
// once, each with its field path, so `kongbot config check` can list them
// all; Redact keeps DSN passwords out of logs and messages.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	yaml "go.yaml.in/yaml/v3"
)

// Config is the whole file.
type Config struct {
	Store         StoreConfig             `yaml:"store"`
	Admin         AdminConfig             `yaml:"admin"`
	HTTP          HTTPConfig              `yaml:"http"`
	Log           LogConfig               `yaml:"log"`
	Slack         SlackConfig             `yaml:"slack"`
	Channels      Channels                `yaml:"channels"`
	Starters      Who                     `yaml:"starters"`
	Approvers     Who                     `yaml:"approvers"`
	ApprovalRules map[string]ApprovalRule `yaml:"approval_rules"`
	Timers        Timers                  `yaml:"timers"`
	ChangeWindows []ChangeWindow          `yaml:"change_windows"`
	Gateways      []Gateway               `yaml:"gateways"`
}

// StoreConfig says where the bbolt store lives.
type StoreConfig struct {
	Path        string        `yaml:"path"`
	OpenTimeout time.Duration `yaml:"open_timeout"`
}

// AdminConfig is the bot's local admin endpoint (runs, audit, backup for
// the CLI while the bot holds the store). It has no authentication, so it
// must listen on a loopback address.
type AdminConfig struct {
	Listen string `yaml:"listen"`
}

// HTTPConfig is the bot's operational listener: /healthz, /readyz and
// /metrics (and, in Slack HTTP mode when slack.listen is the same address,
// Slack's requests too). Empty Listen: no such listener in Socket Mode; in
// HTTP mode the probes and metrics are served on slack.listen.
type HTTPConfig struct {
	Listen string `yaml:"listen"`
}

// LogConfig sets the bot's log level: debug, info (default), warn or error.
// `kongbot serve --log-level` overrides it.
type LogConfig struct {
	Level string `yaml:"level"`
}

// SlackConfig says how the bot talks to Slack. Tokens come from the named
// environment variables.
type SlackConfig struct {
	Mode             string `yaml:"mode"` // socket | http
	BotTokenEnv      string `yaml:"bot_token_env"`
	AppTokenEnv      string `yaml:"app_token_env"`      // socket mode
	SigningSecretEnv string `yaml:"signing_secret_env"` // http mode
	Listen           string `yaml:"listen"`             // http mode
	// APIURL overrides Slack's Web API base URL (localslack in tests and the demo).
	APIURL string `yaml:"api_url"`
}

// Channels are where the bot posts.
type Channels struct {
	Runs   string `yaml:"runs"`
	Digest string `yaml:"digest"`
}

// Who lists Slack user groups (IDs like S0123ABCD or handles like
// @kong-leads) and user IDs (U…/W…).
type Who struct {
	UserGroups []string `yaml:"user_groups"`
	Users      []string `yaml:"users"`
}

// Empty reports whether nobody is listed.
func (w Who) Empty() bool { return len(w.UserGroups) == 0 && len(w.Users) == 0 }

// ApprovalRule is how many distinct approvers a step of one risk needs, and
// whether the run's requester is excluded from them.
type ApprovalRule struct {
	Count            int  `yaml:"count"`
	ExcludeRequester bool `yaml:"exclude_requester"`
}

// Timers are the bot's reminders, expiries and periodic jobs.
type Timers struct {
	ApprovalReminder    time.Duration `yaml:"approval_reminder"`
	ApprovalExpiry      time.Duration `yaml:"approval_expiry"`
	ManualReminder      time.Duration `yaml:"manual_reminder"`
	HealthWatchInterval time.Duration `yaml:"health_watch_interval"`
	Digest              string        `yaml:"digest"` // cron spec
	// ScheduleGrace is how late a scheduled upgrade (or the digest) may
	// still start after the bot was down when it came due; later, it is
	// skipped with a note.
	ScheduleGrace time.Duration `yaml:"schedule_grace"`
}

// ChangeWindow is a recurring period in which scheduled runs may start.
type ChangeWindow struct {
	Name     string        `yaml:"name"`
	Start    string        `yaml:"start"` // cron spec of the window's start
	Duration time.Duration `yaml:"duration"`
	// Gateways the window applies to; empty means every gateway.
	Gateways []string `yaml:"gateways"`
}

// Gateway is one Kong cluster with all its node generations.
type Gateway struct {
	Name             string                `yaml:"name"`
	Datastore        Datastore             `yaml:"datastore"`
	AdminTokenEnv    string                `yaml:"admin_token_env"`
	AdminTokenHeader string                `yaml:"admin_token_header"`
	Generations      map[string]Generation `yaml:"generations"`
	Migrations       map[string]Migration  `yaml:"migrations"`
	Termination      Termination           `yaml:"request_termination"`
	SmokeProbes      []Probe               `yaml:"smoke_probes"`
	Traffic          Traffic               `yaml:"traffic"`
	SnapshotDir      string                `yaml:"snapshot_dir"`
	// PGDump is the pg_dump a snapshot runs (an absolute path); empty
	// means the newest found under /usr/lib/postgresql/<v>/bin or on PATH.
	PGDump string `yaml:"pg_dump"`
}

// Datastore is the gateway's PostgreSQL; the DSN is a secret.
type Datastore struct {
	DSNEnv string `yaml:"dsn_env"`
}

// Generation is the nodes that run (or will run) one Kong version.
type Generation struct {
	Nodes []Node `yaml:"nodes"`
}

// Node addresses one Kong node.
type Node struct {
	Name     string `yaml:"name"`
	AdminURL string `yaml:"admin_url"`
	ProxyURL string `yaml:"proxy_url"`
	// Plugins the node is configured with beyond the bundled ones (checked
	// when the node cannot be asked yet).
	Plugins []string `yaml:"plugins"`
}

// Migration is how to run `kong migrations <verb>` of one target version.
// Argv is run directly, never through a shell; each element is a Go
// template over MigrationVars.
type Migration struct {
	Argv    []string      `yaml:"argv"`
	Env     []string      `yaml:"env"` // KEY=template
	Config  string        `yaml:"config"`
	Timeout time.Duration `yaml:"timeout"`
}

// MigrationVars are the placeholders of Migration.Argv and Env.
type MigrationVars struct {
	Verb    string // up, finish, list
	Config  string // Migration.Config
	Target  string // the target version
	Gateway string
	DSN     string // secret: never log an expanded argv
}

// Termination is the request-termination plugin used for hop 1's outage.
type Termination struct {
	Status  int     `yaml:"status"`
	Message string  `yaml:"message"`
	Probes  []Probe `yaml:"probes"`
}

// Probe is one HTTP request through a proxy and the status it must answer.
type Probe struct {
	Name         string            `yaml:"name"`
	Method       string            `yaml:"method"`
	Path         string            `yaml:"path"`
	Host         string            `yaml:"host"`
	Headers      map[string]string `yaml:"headers"`
	ExpectStatus int               `yaml:"expect_status"`
	// Generation limits the probe to one generation's proxies; empty means all.
	Generation string `yaml:"generation"`
}

// Traffic is how traffic moves between a gateway's generations.
type Traffic struct {
	Backend string   `yaml:"backend"` // haproxy | exec | manual
	HAProxy *HAProxy `yaml:"haproxy"`
	Exec    *Exec    `yaml:"exec"`
	// Front is where clients reach the gateway (the load balancer): the
	// manual backend (required) and the exec backend (optional) verify a
	// split by counting which Kong version answers there, and the smoke
	// probes without a generation are sent there while a stage bakes.
	Front *Front `yaml:"front"`
	// Stages of hop 2's gradual shift, in order; the last is 100 %.
	Stages []Stage `yaml:"stages"`
	// OutageBake is how long hop 1's switch (straight to 100 %, inside the
	// request-termination outage) is watched for connection errors before
	// termination comes off. Every answer is Kong's 503 then, so only
	// connection and response errors can be judged; keep it short, it is
	// outage time. Default 5s.
	OutageBake time.Duration `yaml:"outage_bake"`
	Gates      Gates         `yaml:"gates"`
}

// HAProxy drives weights through HAProxy's runtime API.
type HAProxy struct {
	// RuntimeAPI is "unix:/path/to/admin.sock" or "host:port".
	RuntimeAPI string `yaml:"runtime_api"`
	Backend    string `yaml:"backend"`
	// Servers maps each generation (by version) to its HAProxy server names.
	Servers map[string][]string `yaml:"servers"`
	Timeout time.Duration       `yaml:"timeout"`
	// UpWait bounds how long a shift waits for HAProxy's health checks to
	// mark the new generation's servers UP before giving them weight (they
	// are DOWN until `rise` checks pass). About three check intervals.
	UpWait time.Duration `yaml:"up_wait"`
}

// Exec runs the user's own script to move traffic. The bot appends the
// action: `<argv> shift OLD_PCT NEW_PCT`, `<argv> health` (when Health),
// `<argv> drain` and `<argv> undrain` (when Drain).
type Exec struct {
	// Argv elements are Go templates over ExecVars; never a shell string.
	Argv    []string      `yaml:"argv"`
	Timeout time.Duration `yaml:"timeout"`
	// Health: the script answers `health` with a JSON health report
	// (counters per generation, optionally the weights).
	Health bool `yaml:"health"`
	// Drain: the script answers `drain` and `undrain`; without it the old
	// generation is taken out by setting its share to 0.
	Drain bool `yaml:"drain"`
}

// ExecVars are the placeholders of Exec.Argv, fixed for one hop.
type ExecVars struct {
	Gateway       string
	OldGeneration string
	NewGeneration string
}

// Front is the gateway's public entry point, through the load balancer.
type Front struct {
	URL string `yaml:"url"`
	// Host header and other headers sent with each request.
	Host    string            `yaml:"host"`
	Headers map[string]string `yaml:"headers"`
	// Requests per verification (default 60).
	Requests int `yaml:"requests"`
	// Where names the load balancer in manual instructions ("the F5 pool
	// kong-prod"); default "the load balancer".
	Where string `yaml:"where"`
}

// Stage is one step of a gradual shift.
type Stage struct {
	Percent  int           `yaml:"percent"`
	Bake     time.Duration `yaml:"bake"`
	Approval bool          `yaml:"approval"`
}

// Gates are the health thresholds checked during a bake; a breach pauses
// the shift and rolls back to the last good stage.
type Gates struct {
	Max5xxRatio   float64       `yaml:"max_5xx_ratio"`
	MaxP95Latency time.Duration `yaml:"max_p95_latency"`
	MinRequests   int           `yaml:"min_requests"`
}

// Defaults for fields left out of the file.
var (
	DefaultApprovalRules = map[string]ApprovalRule{
		"normal":       {Count: 1},
		"high":         {Count: 1, ExcludeRequester: true},
		"irreversible": {Count: 2, ExcludeRequester: true},
	}
	// DefaultOutageBake is hop 1's bake at 100 % inside the outage.
	DefaultOutageBake = 5 * time.Second
	DefaultStages     = []Stage{
		{Percent: 5, Bake: 5 * time.Minute, Approval: true},
		{Percent: 25, Bake: 10 * time.Minute},
		{Percent: 50, Bake: 10 * time.Minute},
		{Percent: 100, Bake: 10 * time.Minute},
	}
)

// Load reads and strictly decodes a config file and fills in defaults. It
// fails only when the file cannot be read or decoded (every unknown field
// and type error is listed); call Check for everything else.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	c, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes a config document (see Load).
func Parse(b []byte) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("the file is empty")
		}
		var te *yaml.TypeError
		if errors.As(err, &te) {
			return nil, fmt.Errorf("%d problem(s):\n  %s", len(te.Errors), strings.Join(te.Errors, "\n  "))
		}
		return nil, err
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("the file holds more than one YAML document")
	}
	c.applyDefaults()
	return &c, nil
}

func (c *Config) applyDefaults() {
	if c.Store.OpenTimeout == 0 {
		c.Store.OpenTimeout = 5 * time.Second
	}
	if c.Slack.Mode == "" {
		c.Slack.Mode = "socket"
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.ApprovalRules == nil {
		c.ApprovalRules = map[string]ApprovalRule{}
	}
	for k, v := range DefaultApprovalRules {
		if _, ok := c.ApprovalRules[k]; !ok {
			c.ApprovalRules[k] = v
		}
	}
	t := &c.Timers
	if t.ApprovalReminder == 0 {
		t.ApprovalReminder = 30 * time.Minute
	}
	if t.ApprovalExpiry == 0 {
		t.ApprovalExpiry = 24 * time.Hour
	}
	if t.ManualReminder == 0 {
		t.ManualReminder = 15 * time.Minute
	}
	if t.HealthWatchInterval == 0 {
		t.HealthWatchInterval = 30 * time.Second
	}
	if t.ScheduleGrace == 0 {
		t.ScheduleGrace = 30 * time.Minute
	}
	for i := range c.Gateways {
		g := &c.Gateways[i]
		if g.AdminTokenHeader == "" {
			g.AdminTokenHeader = "Kong-Admin-Token"
		}
		if g.Termination.Status == 0 {
			g.Termination.Status = 503
		}
		if g.Termination.Message == "" {
			g.Termination.Message = "Down for maintenance: the gateway is being upgraded"
		}
		for v, m := range g.Migrations {
			if m.Timeout == 0 {
				m.Timeout = 30 * time.Minute
				g.Migrations[v] = m
			}
		}
		for _, ps := range [][]Probe{g.SmokeProbes, g.Termination.Probes} {
			for j := range ps {
				if ps[j].Method == "" {
					ps[j].Method = "GET"
				}
			}
		}
		tr := &g.Traffic
		if tr.Backend == "" {
			tr.Backend = "manual"
		}
		if len(tr.Stages) == 0 {
			tr.Stages = append([]Stage(nil), DefaultStages...)
		}
		if tr.OutageBake == 0 {
			tr.OutageBake = DefaultOutageBake
		}
		if tr.HAProxy != nil && tr.HAProxy.Timeout == 0 {
			tr.HAProxy.Timeout = 5 * time.Second
		}
		if tr.HAProxy != nil && tr.HAProxy.UpWait == 0 {
			tr.HAProxy.UpWait = 10 * time.Second
		}
		if tr.Exec != nil && tr.Exec.Timeout == 0 {
			tr.Exec.Timeout = 2 * time.Minute
		}
		if tr.Front != nil && tr.Front.Requests == 0 {
			tr.Front.Requests = 60
		}
		if tr.Gates.Max5xxRatio == 0 {
			tr.Gates.Max5xxRatio = 0.01
		}
		if tr.Gates.MaxP95Latency == 0 {
			tr.Gates.MaxP95Latency = time.Second
		}
		if tr.Gates.MinRequests == 0 {
			tr.Gates.MinRequests = 50
		}
	}
}

// Gateway returns the gateway named name.
func (c *Config) Gateway(name string) (*Gateway, bool) {
	for i := range c.Gateways {
		if c.Gateways[i].Name == name {
			return &c.Gateways[i], true
		}
	}
	return nil, false
}

// GatewayNames lists the configured gateways in file order.
func (c *Config) GatewayNames() []string {
	var out []string
	for _, g := range c.Gateways {
		out = append(out, g.Name)
	}
	return out
}

// Rule returns the approval rule for a risk ("normal", "high", "irreversible").
func (c *Config) Rule(risk string) (ApprovalRule, bool) {
	r, ok := c.ApprovalRules[risk]
	return r, ok
}

// Versions lists the gateway's generations from the oldest version to the newest.
func (g *Gateway) Versions() []string {
	var vs []string
	for v := range g.Generations {
		vs = append(vs, v)
	}
	sort.Slice(vs, func(i, j int) bool { return versionLess(vs[i], vs[j]) })
	return vs
}

// DSN reads the datastore DSN from its environment variable.
func (g *Gateway) DSN() (string, error) {
	return secret(g.Datastore.DSNEnv, "gateway "+g.Name+" datastore DSN")
}

// AdminToken reads the Admin API token, or "" when none is configured.
func (g *Gateway) AdminToken() (string, error) {
	if g.AdminTokenEnv == "" {
		return "", nil
	}
	return secret(g.AdminTokenEnv, "gateway "+g.Name+" admin token")
}

// BotToken, AppToken and SigningSecret read Slack's secrets.
func (s *SlackConfig) BotToken() (string, error) { return secret(s.BotTokenEnv, "Slack bot token") }

// AppToken reads the Socket Mode app-level token.
func (s *SlackConfig) AppToken() (string, error) { return secret(s.AppTokenEnv, "Slack app token") }

// SigningSecret reads the HTTP-mode request signing secret.
func (s *SlackConfig) SigningSecret() (string, error) {
	return secret(s.SigningSecretEnv, "Slack signing secret")
}

func secret(env, what string) (string, error) {
	if env == "" {
		return "", fmt.Errorf("%s: no environment variable is configured for it", what)
	}
	v, ok := os.LookupEnv(env)
	if !ok || v == "" {
		return "", fmt.Errorf("%s: environment variable %s is not set", what, env)
	}
	return v, nil
}

// version is x.y.z as three numbers.
type version [3]int

func parseVersion(s string) (version, bool) {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return version{}, false
	}
	var v version
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || (len(p) > 1 && p[0] == '0') {
			return version{}, false
		}
		v[i] = n
	}
	return v, true
}

func versionLess(a, b string) bool {
	va, oka := parseVersion(a)
	vb, okb := parseVersion(b)
	if !oka || !okb {
		return a < b
	}
	for i := range va {
		if va[i] != vb[i] {
			return va[i] < vb[i]
		}
	}
	return false
}
