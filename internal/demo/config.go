package demo

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	yaml "go.yaml.in/yaml/v3"

	"github.com/kongbot/kongbot/config"
	"github.com/kongbot/kongbot/localslack"
)

// Environment variables the generated config names for its secrets.
const (
	EnvBotToken = "KONGBOT_DEMO_SLACK_BOT_TOKEN"
	EnvAppToken = "KONGBOT_DEMO_SLACK_APP_TOKEN"
	EnvPGDSN    = "KONGBOT_DEMO_PG_DSN"
)

// BotOptions tune the bot's generated config.
type BotOptions struct {
	// Migrations is the argv prefix of the kongsim migrations CLI; the
	// config appends `{{.Verb}} --version V --pg {{.DSN}}`. Default: this
	// binary's `demo kongsim-migrations` (see cmd/kongbot/demo.go).
	Migrations []string
	// Bake is each hop-2 stage's bake time; default 10s.
	Bake time.Duration
	// MinRequests is the gates' least sample; default 5 (the demo's traffic
	// is a few requests per second).
	MinRequests int
	// ManualReminder is how often the bot re-checks a manual step by
	// itself; default 3s, so the demo's own provisioning is noticed
	// without a click.
	ManualReminder time.Duration
	// AdminAddr and HTTPAddr are the bot's admin and operational
	// listeners; default free loopback ports.
	AdminAddr, HTTPAddr string
}

// BotConfig is the generated config and what the bot process needs.
type BotConfig struct {
	Path   string
	Config *config.Config
	// Env are the secret variables, KEY=value, for the bot's environment.
	Env       []string
	AdminAddr string
	HTTPAddr  string
}

// WriteConfig writes the bot's config for this environment into dir (mode
// 0600: it holds the demo token) and returns it with the secret variables.
func (e *Env) WriteConfig(dir string, o BotOptions) (BotConfig, error) {
	if len(o.Migrations) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return BotConfig{}, fmt.Errorf("demo: own executable: %w", err)
		}
		o.Migrations = []string{exe, "demo", "kongsim-migrations"}
	}
	if o.Bake <= 0 {
		o.Bake = 10 * time.Second
	}
	if o.MinRequests <= 0 {
		o.MinRequests = 5
	}
	if o.ManualReminder <= 0 {
		o.ManualReminder = 3 * time.Second
	}
	var err error
	if o.AdminAddr == "" {
		if o.AdminAddr, err = freeAddr(); err != nil {
			return BotConfig{}, err
		}
	}
	if o.HTTPAddr == "" {
		if o.HTTPAddr, err = freeAddr(); err != nil {
			return BotConfig{}, err
		}
	}
	bearer := map[string]string{"Authorization": "Bearer " + e.Token}
	g := config.Gateway{
		Name:        Gateway,
		Datastore:   config.Datastore{DSNEnv: EnvPGDSN},
		Generations: map[string]config.Generation{},
		Migrations:  map[string]config.Migration{},
		Termination: config.Termination{Status: 503, Message: "Down for maintenance: the demo gateway is being upgraded",
			// okta-auth answers before request-termination (§5.2): the
			// probe carries a token so it reaches the termination.
			Probes: []config.Probe{{Name: "test api with a token", Path: APIPath, Headers: bearer}}},
		SmokeProbes: []config.Probe{
			{Name: "test api rejects anonymous calls", Path: APIPath, ExpectStatus: 401},
			{Name: "test api accepts a token", Path: APIPath, Headers: bearer, ExpectStatus: 200},
		},
		SnapshotDir: filepath.Join(dir, "snapshots"),
	}
	for _, v := range Versions {
		var gen config.Generation
		for _, n := range e.Nodes(v) {
			cn := config.Node{Name: n.Name, AdminURL: "http://" + n.AdminAddr, ProxyURL: "http://" + n.ProxyAddr}
			if v != V013 {
				cn.Plugins = []string{"okta-auth"}
			}
			gen.Nodes = append(gen.Nodes, cn)
		}
		g.Generations[v] = gen
	}
	for _, v := range []string{V014, V10} {
		argv := append(append([]string{}, o.Migrations...), "{{.Verb}}", "--version", v, "--pg", "{{.DSN}}")
		g.Migrations[v] = config.Migration{Argv: argv, Timeout: 2 * time.Minute}
	}
	g.Traffic = config.Traffic{
		Front: &config.Front{URL: e.FrontURL + APIPath, Headers: bearer, Requests: 20, Where: "the demo's HAProxy"},
		Stages: []config.Stage{
			{Percent: 5, Bake: o.Bake, Approval: true},
			{Percent: 25, Bake: o.Bake},
			{Percent: 50, Bake: o.Bake},
			{Percent: 100, Bake: o.Bake},
		},
		Gates: config.Gates{Max5xxRatio: 0.01, MaxP95Latency: 2 * time.Second, MinRequests: o.MinRequests},
	}
	if e.HAProxy != nil {
		g.Traffic.Backend = "haproxy"
		g.Traffic.HAProxy = &config.HAProxy{RuntimeAPI: "unix:" + e.HAProxy.Socket, Backend: Backend,
			Servers: e.HAProxyServers(), Timeout: 5 * time.Second}
	} else {
		g.Traffic.Backend = "manual"
		g.Traffic.Front.Where = "the demo's front proxy"
	}
	cfg := &config.Config{
		Store:     config.StoreConfig{Path: filepath.Join(dir, "kongbot.db"), OpenTimeout: 5 * time.Second},
		Admin:     config.AdminConfig{Listen: o.AdminAddr},
		HTTP:      config.HTTPConfig{Listen: o.HTTPAddr},
		Slack:     config.SlackConfig{Mode: "socket", BotTokenEnv: EnvBotToken, AppTokenEnv: EnvAppToken, APIURL: e.Slack.APIURL()},
		Channels:  config.Channels{Runs: localslack.ChannelID},
		Approvers: config.Who{UserGroups: []string{localslack.LeadsGroupID}},
		Timers: config.Timers{ApprovalReminder: 30 * time.Minute, ApprovalExpiry: 24 * time.Hour,
			ManualReminder: o.ManualReminder, HealthWatchInterval: 30 * time.Second},
		Gateways: []config.Gateway{g},
	}
	raw, err := yaml.Marshal(cfg)
	if err != nil {
		return BotConfig{}, fmt.Errorf("demo: config: %w", err)
	}
	path := filepath.Join(dir, "kongbot.yaml")
	head := "# Generated by `kongbot demo` for its throwaway environment; secrets are in\n# the environment variables it names.\n"
	if err := os.WriteFile(path, append([]byte(head), raw...), 0o600); err != nil {
		return BotConfig{}, fmt.Errorf("demo: config: %w", err)
	}
	// Read back as the bot will, so defaults are filled in the same way.
	loaded, err := config.Load(path)
	if err != nil {
		return BotConfig{}, fmt.Errorf("demo: generated config: %w", err)
	}
	env := []string{EnvBotToken + "=" + e.Slack.BotToken(), EnvAppToken + "=" + e.Slack.AppToken(), EnvPGDSN + "=" + e.DSN}
	lookup := func(k string) (string, bool) {
		for _, kv := range env {
			if len(kv) > len(k) && kv[:len(k)] == k && kv[len(k)] == '=' {
				return kv[len(k)+1:], true
			}
		}
		return "", false
	}
	if ps := loaded.CheckEnv(lookup); len(ps) > 0 {
		return BotConfig{}, fmt.Errorf("demo: generated config: %w", ps.Err())
	}
	return BotConfig{Path: path, Config: loaded, Env: env, AdminAddr: o.AdminAddr, HTTPAddr: o.HTTPAddr}, nil
}
