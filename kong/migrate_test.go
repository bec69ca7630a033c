package kong

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kongbot/kongbot/internal/pgtest"
	"github.com/kongbot/kongbot/steps"
)

// fakeKong writes a script standing in for `kong migrations`: it prints
// what it is given and then body.
func fakeKong(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "kong")
	script := "#!/bin/sh\necho \"args: $*\"\n" + body + "\n"
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func migClient(t *testing.T, dsn, target, script string, timeout time.Duration) *Client {
	t.Helper()
	c, err := New(Options{Gateways: map[string]Gateway{"gw": {
		Generations:  []GenerationNodes{{Version: "0.14.1", Nodes: []NodeOptions{{Name: "a", AdminURL: "http://127.0.0.1:1"}}}},
		DatastoreDSN: dsn, MigrationLogDir: t.TempDir(),
		Migrations: map[string]MigrationCommand{target: {
			Argv: []string{script, "migrations", "{{.Verb}}", "-c", "{{.Config}}"}, Config: "/etc/kong/kong.conf", Timeout: timeout,
			Env: []string{"KONG_PG_DSN={{.DSN}}"},
		}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestMigrate(t *testing.T) {
	tests := []struct {
		name      string
		state     string
		target    string
		verb      steps.MigrationVerb
		body      string
		timeout   time.Duration
		wantExit  int
		wantErr   string
		refusal   string
		wantState steps.SchemaState
		wantLine  string
	}{
		{name: "1.0 up refused while APIs exist", state: "0.14-apis", target: "1.0.3", verb: steps.MigrateUp,
			body:     "echo 'Error: cannot run migrations: you have `api` entities in your database; please convert them to `routes` and `services` prior to migrating to Kong 1.0.' >&2\necho >&2\necho '  Run with --v (verbose) or --vv (debug) for more details' >&2\nexit 1",
			wantExit: 1, refusal: RefusalAPIsPresent, wantErr: "hop2.apis-convert", wantState: steps.Schema014},
		{name: "1.0 list pending is exit 4, not a failure", state: "1.0-pending", target: "1.0.3", verb: steps.MigrateList,
			body: "echo 'executed migrations:'\necho 'database has pending migrations:'\nexit 4", wantExit: 4, wantState: steps.Schema10Pending,
			wantLine: "stdout: database has pending migrations:"},
		{name: "1.0 list needs bootstrap is exit 3", state: "0.14", target: "1.0.3", verb: steps.MigrateList,
			body: "echo \"database needs bootstrapping; run 'kong migrations bootstrap'\"\nexit 3", wantExit: 3, wantState: steps.Schema014},
		{name: "0.14 up exit 0 but schema unchanged is caught by SQL", state: "0.13", target: "0.14.1", verb: steps.MigrateUp,
			body: "echo '5 migrations ran'\nexit 0", wantErr: "schema is 0.13 (want 0.14) by SQL", wantState: steps.Schema013},
		{name: "0.14 up on 0.14 is fine", state: "0.14", target: "0.14.1", verb: steps.MigrateUp, body: "exit 0", wantState: steps.Schema014},
		{name: "finish before up exits 0 but is a refusal", state: "0.14", target: "1.0.3", verb: steps.MigrateFinish,
			body: "echo 'cannot run migrations: database not bootstrapped'\nexit 0", refusal: RefusalNotBootstrapped, wantErr: "refused", wantState: steps.Schema014},
		{name: "1.0 up while pending", state: "1.0-pending", target: "1.0.3", verb: steps.MigrateUp,
			body:     "echo \"Error: [PostgreSQL error] cluster_mutex callback threw an error: /k/kong/cmd/utils/migrations.lua:139: database has pending migrations; run 'kong migrations finish'\" >&2\necho 'stack traceback:' >&2\nexit 1",
			wantExit: 1, refusal: RefusalPending, wantErr: "migrations finish", wantState: steps.Schema10Pending},
		{name: "unknown failure carries the last lines", state: "0.13", target: "0.14.1", verb: steps.MigrateUp,
			body:     "echo 'Error: [postgres error] Error during migration 2015-01-12-175310_init_schema: ERROR: column \"request_host\" does not exist' >&2\nexit 1",
			wantExit: 1, wantErr: "request_host", wantState: steps.Schema013},
		{name: "placeholders and secrets", state: "0.14", target: "0.14.1", verb: steps.MigrateUp,
			body: "echo \"dsn $KONG_PG_DSN\"\nexit 0", wantState: steps.Schema014, wantLine: "stdout: args: migrations up -c /etc/kong/kong.conf"},
		{name: "timeout kills the process group", state: "0.14", target: "0.14.1", verb: steps.MigrateUp,
			body: "sleep 30 &\nsleep 30", timeout: 500 * time.Millisecond, wantErr: "timed out"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dsn := pgtest.New(t)
			loadFixture(t, dsn, tc.state)
			timeout := tc.timeout
			if timeout == 0 {
				timeout = time.Minute
			}
			c := migClient(t, dsn, tc.target, fakeKong(t, tc.body), timeout)
			sink := &lineSink{}
			start := time.Now()
			res, err := c.Migrate(context.Background(), "gw", tc.target, tc.verb, sink)
			if tc.wantErr == "" && err != nil {
				t.Fatalf("err = %v", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("err = %v, want containing %q", err, tc.wantErr)
			}
			if tc.timeout > 0 && time.Since(start) > 20*time.Second {
				t.Fatalf("the timeout did not end the command")
			}
			if res.ExitCode != tc.wantExit && tc.timeout == 0 {
				t.Errorf("exit = %d, want %d", res.ExitCode, tc.wantExit)
			}
			if res.Refusal != tc.refusal {
				t.Errorf("refusal = %q, want %q", res.Refusal, tc.refusal)
			}
			if tc.refusal != "" {
				var re *RefusalError
				if !errors.As(err, &re) || re.Refusal != tc.refusal {
					t.Errorf("error %v is not a RefusalError %s", err, tc.refusal)
				}
			}
			if tc.wantState != "" && res.Schema != tc.wantState {
				t.Errorf("schema = %s, want %s", res.Schema, tc.wantState)
			}
			lines := sink.all()
			if tc.wantLine != "" && !containsLine(lines, tc.wantLine) {
				t.Errorf("sink lines %q lack %q", lines, tc.wantLine)
			}
			pw := dsnPassword(dsn)
			for _, l := range lines {
				if pw != "" && strings.Contains(l, pw) {
					t.Errorf("a streamed line shows the DSN password: %q", l)
				}
			}
		})
	}
}

func containsLine(lines []string, want string) bool {
	for _, l := range lines {
		if strings.Contains(l, want) {
			return true
		}
	}
	return false
}

func TestMigrateRejectsBadInput(t *testing.T) {
	dsn := pgtest.New(t)
	c := migClient(t, dsn, "0.14.1", "/bin/true", time.Minute)
	ctx := context.Background()
	if _, err := c.Migrate(ctx, "gw", "0.14.1", steps.MigrateFinish, nil); err == nil || !strings.Contains(err.Error(), "no `migrations finish`") {
		t.Errorf("finish on 0.14.1: %v", err)
	}
	if _, err := c.Migrate(ctx, "gw", "0.14.1", "reset", nil); err == nil {
		t.Error("reset must not be allowed")
	}
	if _, err := c.Migrate(ctx, "gw", "1.0.3", steps.MigrateUp, nil); err == nil || !strings.Contains(err.Error(), "no migrations command") {
		t.Errorf("unconfigured target: %v", err)
	}
	if _, err := c.Migrate(ctx, "nope", "0.14.1", steps.MigrateUp, nil); !errors.Is(err, ErrUnknownGateway) {
		t.Errorf("unknown gateway: %v", err)
	}
}

func TestReadLinesBoundsMemory(t *testing.T) {
	long := strings.Repeat("x", 5*maxLine)
	in := "short\n" + long + "\nlast"
	var got []string
	readLines(strings.NewReader(in), func(s string) { got = append(got, s) })
	if len(got) != 3 || got[0] != "short" || got[2] != "last" {
		t.Fatalf("lines = %d %q", len(got), got[0])
	}
	if len(got[1]) > maxLine+32 || !strings.HasSuffix(got[1], "(line cut)") {
		t.Fatalf("long line kept %d bytes", len(got[1]))
	}
}
