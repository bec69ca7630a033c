package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var exampleEnv = map[string]string{
	"KONGBOT_SLACK_BOT_TOKEN": "xoxb-test",
	"KONGBOT_SLACK_APP_TOKEN": "xapp-test",
	"KONGBOT_PROD_PG_DSN":     "postgres://kong:s3cret@localhost:5432/kong",
}

func lookupIn(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestExampleLoadsAndChecksClean(t *testing.T) {
	for k, v := range exampleEnv {
		t.Setenv(k, v)
	}
	c, err := Load("example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if ps := c.Check(); len(ps) != 0 {
		t.Fatalf("example.yaml has problems:\n%v", ps)
	}
	g, ok := c.Gateway("prod")
	if !ok {
		t.Fatal("no prod gateway")
	}
	if got := strings.Join(g.Versions(), ","); got != "0.13.1,0.14.1,1.0.3" {
		t.Fatalf("versions = %s", got)
	}
	if r, _ := c.Rule("irreversible"); r.Count != 2 || !r.ExcludeRequester {
		t.Fatalf("irreversible rule = %+v", r)
	}
	if g.Traffic.Stages[0].Percent != 5 || !g.Traffic.Stages[0].Approval || g.Traffic.Gates.MaxP95Latency != 800*time.Millisecond {
		t.Fatalf("traffic = %+v", g.Traffic)
	}
	dsn, err := g.DSN()
	if err != nil || dsn != exampleEnv["KONGBOT_PROD_PG_DSN"] {
		t.Fatalf("DSN = %q, %v", dsn, err)
	}
	if g.SmokeProbes[1].Method != "GET" {
		t.Fatalf("probe method default not applied: %+v", g.SmokeProbes[1])
	}
}

func TestExampleWithoutEnvNamesEveryMissingVariable(t *testing.T) {
	c, err := Load("example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ps := c.CheckEnv(lookupIn(nil))
	got := ps.Error()
	for _, want := range []string{
		"slack.bot_token_env: environment variable KONGBOT_SLACK_BOT_TOKEN is not set",
		"slack.app_token_env: environment variable KONGBOT_SLACK_APP_TOKEN is not set",
		"gateways[0].datastore.dsn_env: environment variable KONGBOT_PROD_PG_DSN is not set",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
	if len(ps) != 3 {
		t.Errorf("want exactly 3 problems, got:\n%s", got)
	}
}

// minimal is a valid config that each case below breaks in one place.
const minimal = `
store: {path: /tmp/k.db}
admin: {listen: "127.0.0.1:8089"}
slack: {mode: socket, bot_token_env: BOT, app_token_env: APP}
channels: {runs: C123}
approvers: {users: [U0AAA1, U0AAA2]}
gateways:
  - name: prod
    datastore: {dsn_env: DSN}
    generations:
      "0.13.1":
        nodes: [{name: a, admin_url: "http://h:8001", proxy_url: "http://h:8000"}]
      "0.14.1":
        nodes: [{name: b, admin_url: "http://h2:8001", proxy_url: "http://h2:8000"}]
    migrations:
      "0.14.1": {argv: [kong, migrations, "{{.Verb}}", -c, "{{.Config}}"], config: /etc/kong.conf}
    traffic: {front: {url: "http://lb:8000/status"}}
`

const minimalTraffic = "    traffic: {front: {url: \"http://lb:8000/status\"}}\n"

var minimalEnv = map[string]string{"BOT": "xoxb", "APP": "xapp", "DSN": "host=localhost dbname=kong password=pw"}

func TestCheckReportsEveryProblemWithItsPath(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(string) string
		env     map[string]string
		want    []string
		wantErr string // a Load error instead of problems
	}{
		{"clean", nil, nil, nil, ""},
		{"admin URL not a URL", func(s string) string {
			return strings.Replace(s, `admin_url: "http://h2:8001"`, `admin_url: "h2:8001"`, 1)
		}, nil, []string{`gateways[0].generations["0.14.1"].nodes[0].admin_url: "h2:8001" is not a URL`}, ""},
		{"unknown field", func(s string) string {
			return strings.Replace(s, "datastore: {dsn_env: DSN}", "datastore: {dsn_env: DSN, dsn: postgres://x}", 1)
		}, nil, nil, "field dsn not found"},
		{"dsn env unset", nil, map[string]string{"DSN": ""}, []string{"gateways[0].datastore.dsn_env: environment variable DSN is not set"}, ""},
		{"dsn value given instead of env name", func(s string) string {
			return strings.Replace(s, "dsn_env: DSN", `dsn_env: "postgres://kong:pw@h/kong"`, 1)
		}, nil, []string{"gateways[0].datastore.dsn_env: \"postgres://kong:pw@h/kong\" is not an environment variable name"}, ""},
		{"admin on a public address", func(s string) string { return strings.Replace(s, "127.0.0.1:8089", "0.0.0.0:8089", 1) },
			nil, []string{"admin.listen: \"0.0.0.0:8089\" is not a loopback address"}, ""},
		{"shell string migration", func(s string) string {
			return strings.Replace(s, `argv: [kong, migrations, "{{.Verb}}", -c, "{{.Config}}"]`, `argv: ["kong migrations up -c /etc/kong.conf"]`, 1)
		}, nil, []string{`gateways[0].migrations["0.14.1"].argv[0]: "kong migrations up -c /etc/kong.conf" looks like a shell string`}, ""},
		{"sh -c migration", func(s string) string {
			return strings.Replace(s, `argv: [kong, migrations, "{{.Verb}}", -c, "{{.Config}}"]`, `argv: [/bin/sh, -c, "kong migrations up"]`, 1)
		}, nil, []string{`gateways[0].migrations["0.14.1"].argv: runs a shell (sh -c)`}, ""},
		{"unknown placeholder", func(s string) string { return strings.Replace(s, "{{.Verb}}", "{{.Verbb}}", 1) },
			nil, []string{`gateways[0].migrations["0.14.1"].argv[2]: bad placeholder`}, ""},
		{"missing migration for a generation", func(s string) string {
			return strings.Replace(s, `"0.14.1": {argv`, `"1.0.3": {argv`, 1)
		}, nil, []string{`gateways[0].migrations["0.14.1"]: missing: generation 0.14.1 is configured`}, ""},
		{"unsupported generation and duplicate node", func(s string) string {
			return strings.Replace(strings.Replace(s, `"0.13.1":`, `"0.12.0":`, 1), "name: b", "name: a", 1)
		}, nil, []string{`gateways[0].generations["0.12.0"]: version "0.12.0" is not one kongbot handles`, `gateways[0].generations["0.14.1"].nodes[0].name: node "a" is also at`}, ""},
		{"no approvers, bad channel, rule needs too many", func(s string) string {
			s = strings.Replace(s, "approvers: {users: [U0AAA1, U0AAA2]}", "approvers: {users: [U0AAA1]}\napproval_rules: {irreversible: {count: 2, exclude_requester: true}, urgent: {count: 1}}", 1)
			return strings.Replace(s, "runs: C123", "runs: ops channel", 1)
		}, nil, []string{"channels.runs: \"ops channel\" is not a Slack channel ID", "approval_rules.irreversible.count: needs 2 approvers but approvers.users lists only 1", "approval_rules.urgent: unknown risk"}, ""},
		{"http mode needs a signing secret", func(s string) string {
			return strings.Replace(s, "mode: socket", "mode: http, signing_secret_env: SIGN", 1)
		}, nil, []string{"slack.signing_secret_env: environment variable SIGN is not set", "slack.listen: \"\" is not host:port"}, ""},
		{"manual backend without a front", func(s string) string {
			return strings.Replace(s, minimalTraffic, "", 1)
		}, nil, []string{"gateways[0].traffic.front: missing: the manual backend verifies each move"}, ""},
		{"bad front and http listener", func(s string) string {
			s = strings.Replace(s, `url: "http://lb:8000/status"`, `url: "lb:8000", requests: -1`, 1)
			return strings.Replace(s, "channels:", "http: {listen: \"8080\"}\nchannels:", 1)
		}, nil, []string{`http.listen: "8080" is not host:port`, `gateways[0].traffic.front.url: "lb:8000" is not a URL`, "gateways[0].traffic.front.requests: must be 1 to 10000, got -1"}, ""},
		{"exec hook with a per-call placeholder", func(s string) string {
			return strings.Replace(s, minimalTraffic, "    traffic: {backend: exec, exec: {argv: [/bin/move, \"{{.NewPercent}}\"]}}\n", 1)
		}, nil, []string{`gateways[0].traffic.exec.argv[1]: bad placeholder`}, ""},
		{"traffic problems", func(s string) string {
			s = strings.Replace(s, minimalTraffic, "", 1)
			return s + `    traffic:
      backend: haproxy
      haproxy: {runtime_api: "nowhere", servers: {"0.13.1": [old], "9.9.9": []}, up_wait: -1s}
      outage_bake: 1h
      stages: [{percent: 50}, {percent: 25}]
      gates: {max_5xx_ratio: 2}
    smoke_probes:
      - {path: test, expect_status: 0, generation: "1.0.3", method: FETCH}
`
		}, nil, []string{
			`gateways[0].traffic.haproxy.runtime_api: "nowhere" is neither`,
			`gateways[0].traffic.haproxy.backend: missing`,
			`gateways[0].traffic.haproxy.servers["9.9.9"]: "9.9.9" is not one of the gateway's generations`,
			`gateways[0].traffic.haproxy.servers["9.9.9"]: no server names`,
			`gateways[0].traffic.haproxy.up_wait: -1s must be between 0`,
			`gateways[0].traffic.outage_bake: 1h0m0s must be between 0`,
			`gateways[0].traffic.stages[1].percent: 25 must be above the previous stage (50)`,
			`gateways[0].traffic.stages[1].percent: the last stage must be 100, got 25`,
			`gateways[0].traffic.gates.max_5xx_ratio: 2 is not a ratio`,
			`gateways[0].smoke_probes[0].path: "test" must start with /`,
			`gateways[0].smoke_probes[0].expect_status: 0 is not an HTTP status`,
			`gateways[0].smoke_probes[0].generation: "1.0.3" is not one of the gateway's generations`,
			`gateways[0].smoke_probes[0].method: "FETCH" is not an HTTP method`,
		}, ""},
		{"bad cron and durations", func(s string) string {
			return s + "timers: {digest: \"every day\", approval_reminder: 2h, approval_expiry: 1h}\nchange_windows: [{name: w, start: \"0 25 * * *\", duration: 0s, gateways: [staging]}]\n"
		}, nil, []string{`timers.digest: "every day" is not a cron spec`, "timers.approval_reminder: 2h0m0s is not shorter than approval_expiry 1h0m0s",
			`change_windows[0].start: "0 25 * * *" is not a cron spec`, "change_windows[0].duration: must be more than 0", `change_windows[0].gateways[0]: unknown gateway "staging"`}, ""},
		{"duration given as a number", func(s string) string { return s + "timers: {approval_reminder: 30}\n" }, nil, nil, "cannot unmarshal"},
		{"pg_dump by name", func(s string) string { return s + "    pg_dump: pg_dump\n" },
			nil, []string{`gateways[0].pg_dump: "pg_dump" must be an absolute path to pg_dump`}, ""},
		{"pg_dump by path", func(s string) string { return s + "    pg_dump: /usr/lib/postgresql/16/bin/pg_dump\n" }, nil, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := minimal
			if tt.edit != nil {
				doc = tt.edit(doc)
			}
			env := map[string]string{}
			for k, v := range minimalEnv {
				env[k] = v
			}
			for k, v := range tt.env {
				env[k] = v
			}
			c, err := Parse([]byte(doc))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse = %v, want error %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			ps := c.CheckEnv(lookupIn(env))
			var got []string
			for _, p := range ps {
				got = append(got, p.String())
			}
			if len(tt.want) != len(got) {
				t.Fatalf("got %d problems, want %d:\n%s", len(got), len(tt.want), strings.Join(got, "\n"))
			}
			for _, w := range tt.want {
				found := false
				for _, g := range got {
					found = found || strings.HasPrefix(g, w)
				}
				if !found {
					t.Errorf("no problem starting %q in:\n%s", w, strings.Join(got, "\n"))
				}
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.yaml")
	_ = os.WriteFile(empty, nil, 0o600)
	two := filepath.Join(dir, "two.yaml")
	_ = os.WriteFile(two, []byte(minimal+"\n---\nstore: {path: x}\n"), 0o600)
	for path, want := range map[string]string{
		filepath.Join(dir, "missing.yaml"): "no such file",
		empty:                              "empty",
		two:                                "more than one YAML document",
	} {
		if _, err := Load(path); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Load(%s) = %v, want %q", filepath.Base(path), err, want)
		}
	}
}

func TestRedact(t *testing.T) {
	tests := []struct{ in, want string }{
		{"postgres://kong:s3cret@db:5432/kong?sslmode=disable", "postgres://kong:xxxxx@db:5432/kong?sslmode=disable"},
		{"postgres://kong@db/kong", "postgres://kong@db/kong"},
		{"postgres://db/kong?user=kong&password=s3cret", "postgres://db/kong?password=xxxxx&user=kong"},
		{"host=db user=kong password=s3cret dbname=kong", "host=db user=kong password=xxxxx dbname=kong"},
		{"host=db password='s3 cret' dbname=kong", "host=db password=xxxxx dbname=kong"},
		{"postgres://kong:s3cret@[bad", "[unparseable DSN redacted]"},
	}
	for _, tt := range tests {
		got := Redact(tt.in)
		if got != tt.want {
			t.Errorf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if strings.Contains(got, "s3cret") || strings.Contains(got, "s3 cret") {
			t.Errorf("Redact(%q) leaks the password: %q", tt.in, got)
		}
	}
}

func TestCheckNeverPrintsSecrets(t *testing.T) {
	c, err := Parse([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"BOT": "xoxb", "APP": "xapp", "DSN": "mysql://root:hunter2@db/kong"}
	got := c.CheckEnv(lookupIn(env)).Error()
	if !strings.Contains(got, "scheme must be postgres") || strings.Contains(got, "hunter2") {
		t.Fatalf("problems = %s", got)
	}
}
