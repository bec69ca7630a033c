package kong

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kongbot/kongbot/internal/pgtest"
	"github.com/kongbot/kongbot/kongsim"
	"github.com/kongbot/kongbot/steps"
)

// simMigrate runs a kongsim migrations command in process (test set-up).
func simMigrate(t testing.TB, dsn, version, verb string, plugins ...string) {
	t.Helper()
	var out, errb bytes.Buffer
	opts := kongsim.MigrateOptions{Version: kongsim.Version(version), DSN: dsn, Plugins: plugins}
	if code := kongsim.Migrate(context.Background(), opts, verb, &out, &errb); code != 0 {
		t.Fatalf("kongsim %s migrations %s: exit %d\n%s%s", version, verb, code, out.String(), errb.String())
	}
}

func simNode(t testing.TB, dsn, version string, plugins ...string) *kongsim.Node {
	t.Helper()
	n, err := kongsim.Start(context.Background(), kongsim.Options{Version: kongsim.Version(version), DSN: dsn,
		Plugins: plugins, Name: "sim-" + version, DBUpdateFrequency: 300 * time.Millisecond})
	if err != nil {
		t.Fatalf("starting kongsim %s: %v", version, err)
	}
	t.Cleanup(n.Stop)
	return n
}

// deadURL is an address nothing listens on.
func deadURL(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

func echoUpstream(t testing.TB) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"echo": true, "method": r.Method, "path": r.URL.RequestURI()})
	}))
	t.Cleanup(s.Close)
	return s
}

func simNodeOpts(name string, n *kongsim.Node) NodeOptions {
	return NodeOptions{Name: name, AdminURL: n.AdminURL(), ProxyURL: n.ProxyURL()}
}

func newClient(t testing.TB, gw Gateway) *Client {
	t.Helper()
	if gw.PropagationTimeout == 0 {
		gw.PropagationTimeout = 10 * time.Second
	}
	c, err := New(Options{Gateways: map[string]Gateway{"gw": gw}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// adminJSON sends one Admin API request and decodes the answer.
func adminJSON(t testing.TB, method, url string, body any, want int) map[string]any {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d %s (want %d)", method, url, resp.StatusCode, b, want)
	}
	var m map[string]any
	json.Unmarshal(b, &m)
	return m
}

func countSQL(t testing.TB, dsn, q string) int {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(context.Background(), q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func missingHas(chk steps.Check, sub string) bool {
	for _, m := range chk.Missing {
		if strings.Contains(m, sub) {
			return true
		}
	}
	return false
}

func TestPreflightOnKongsim(t *testing.T) {
	ctx := context.Background()
	type setup struct {
		gw      Gateway
		journal *memJournal
	}
	tests := []struct {
		name    string
		hop     string
		build   func(t *testing.T) setup
		ok      bool
		missing []string
		pause   string
	}{
		{name: "hop 1 pass", hop: "1", ok: true, build: func(t *testing.T) setup {
			dsn := pgtest.New(t)
			simMigrate(t, dsn, "0.13.1", "up")
			old := simNode(t, dsn, "0.13.1")
			return setup{gw: Gateway{DatastoreDSN: dsn, Generations: []GenerationNodes{
				{Version: "0.13.1", Nodes: []NodeOptions{simNodeOpts("old-1", old)}},
				{Version: "0.14.1", Nodes: []NodeOptions{{Name: "new-1", AdminURL: deadURL(t), ProxyURL: deadURL(t)}}},
			}}}
		}},
		{name: "hop 1 schema ahead of the nodes", hop: "1", missing: []string{"schema is 0.14, want 0.13 (the schema is ahead of the nodes)"},
			build: func(t *testing.T) setup {
				dsn := pgtest.New(t)
				simMigrate(t, dsn, "0.13.1", "up")
				simMigrate(t, dsn, "0.14.1", "up")
				old := simNode(t, dsn, "0.13.1") // a 0.13.1 node still starts on the 0.14 schema
				return setup{gw: Gateway{DatastoreDSN: dsn, Generations: []GenerationNodes{
					{Version: "0.13.1", Nodes: []NodeOptions{simNodeOpts("old-1", old)}},
					{Version: "0.14.1", Nodes: []NodeOptions{{Name: "new-1", AdminURL: deadURL(t), ProxyURL: deadURL(t)}}},
				}}}
			}},
		{name: "hop 2 pass", hop: "2", ok: true, build: func(t *testing.T) setup {
			dsn := pgtest.New(t)
			simMigrate(t, dsn, "0.14.1", "up")
			n := simNode(t, dsn, "0.14.1")
			return setup{gw: Gateway{DatastoreDSN: dsn, Generations: []GenerationNodes{
				{Version: "0.14.1", Nodes: []NodeOptions{simNodeOpts("a", n)}},
				{Version: "1.0.3", Nodes: []NodeOptions{{Name: "new-1", AdminURL: deadURL(t)}}},
			}}}
		}},
		{name: "hop 2 APIs present", hop: "2", missing: []string{"1 APIs in the datastore (SQL): convert them"},
			build: func(t *testing.T) setup {
				dsn := pgtest.New(t)
				simMigrate(t, dsn, "0.14.1", "up")
				n := simNode(t, dsn, "0.14.1")
				adminJSON(t, "POST", n.AdminURL()+"/apis", map[string]any{"name": "test", "uris": []string{"/test"}, "upstream_url": "http://127.0.0.1:15555"}, 201)
				return setup{gw: Gateway{DatastoreDSN: dsn, Generations: []GenerationNodes{
					{Version: "0.14.1", Nodes: []NodeOptions{simNodeOpts("a", n)}},
					{Version: "1.0.3", Nodes: []NodeOptions{{Name: "new-1", AdminURL: deadURL(t)}}},
				}}}
			}},
		{name: "hop 2 okta-auth missing on a new node", hop: "2",
			missing: []string{"plugin okta-auth is in use (1 rows) but 1.0.3 node new-2 neither answers nor declares it"},
			build: func(t *testing.T) setup {
				dsn := pgtest.New(t)
				simMigrate(t, dsn, "0.14.1", "up", "bundled", "okta-auth")
				n := simNode(t, dsn, "0.14.1", "bundled", "okta-auth")
				adminJSON(t, "POST", n.AdminURL()+"/plugins", map[string]any{"name": "okta-auth", "config": map[string]any{
					"client_id": "c", "client_secret": "s", "authorization_server": "http://127.0.0.1:1/oauth2/default", "check_auth_server": false}}, 201)
				j := newJournal()
				j.Put(ConfirmKeyPrefix+"okta-auth", "approve")
				return setup{journal: j, gw: Gateway{DatastoreDSN: dsn, Generations: []GenerationNodes{
					{Version: "0.14.1", Nodes: []NodeOptions{simNodeOpts("a", n)}},
					{Version: "1.0.3", Nodes: []NodeOptions{
						{Name: "new-1", AdminURL: deadURL(t), Plugins: []string{"okta-auth"}},
						{Name: "new-2", AdminURL: deadURL(t)},
					}},
				}}}
			}},
		{name: "hop 2 okta-auth everywhere but not confirmed asks an approver", hop: "2",
			missing: []string{"plugin okta-auth needs an approver's confirmation"}, pause: ConfirmKeyPrefix + "okta-auth",
			build: func(t *testing.T) setup {
				dsn := pgtest.New(t)
				simMigrate(t, dsn, "0.14.1", "up", "bundled", "okta-auth")
				n := simNode(t, dsn, "0.14.1", "bundled", "okta-auth")
				adminJSON(t, "POST", n.AdminURL()+"/plugins", map[string]any{"name": "okta-auth", "config": map[string]any{
					"client_id": "c", "client_secret": "s", "authorization_server": "http://127.0.0.1:1/oauth2/default", "check_auth_server": false}}, 201)
				return setup{gw: Gateway{DatastoreDSN: dsn, Generations: []GenerationNodes{
					{Version: "0.14.1", Nodes: []NodeOptions{simNodeOpts("a", n)}},
					{Version: "1.0.3", Nodes: []NodeOptions{{Name: "new-1", AdminURL: deadURL(t), Plugins: []string{"okta-auth"}}}},
				}}}
			}},
		{name: "hop 2 mixed versions", hop: "2", missing: []string{"node b answers 0.13.1, want 0.14.1 (mixed versions)"},
			build: func(t *testing.T) setup {
				dsn := pgtest.New(t)
				simMigrate(t, dsn, "0.13.1", "up")
				simMigrate(t, dsn, "0.14.1", "up")
				a := simNode(t, dsn, "0.14.1")
				b := simNode(t, dsn, "0.13.1")
				return setup{gw: Gateway{DatastoreDSN: dsn, Generations: []GenerationNodes{
					{Version: "0.14.1", Nodes: []NodeOptions{simNodeOpts("a", a), simNodeOpts("b", b)}},
					{Version: "1.0.3", Nodes: []NodeOptions{{Name: "new-1", AdminURL: deadURL(t)}}},
				}}}
			}},
		{name: "hop 2 a node down", hop: "2", missing: []string{"node b (0.14.1) is unreachable"},
			build: func(t *testing.T) setup {
				dsn := pgtest.New(t)
				simMigrate(t, dsn, "0.14.1", "up")
				a := simNode(t, dsn, "0.14.1")
				return setup{gw: Gateway{DatastoreDSN: dsn, Generations: []GenerationNodes{
					{Version: "0.14.1", Nodes: []NodeOptions{simNodeOpts("a", a), {Name: "b", AdminURL: deadURL(t), ProxyURL: deadURL(t)}}},
					{Version: "1.0.3", Nodes: []NodeOptions{{Name: "new-1", AdminURL: deadURL(t)}}},
				}}}
			}},
		{name: "hop 2 schema ahead of the nodes", hop: "2", missing: []string{"schema is 1.0-pending, want 0.14 (the schema is ahead of the nodes)"},
			build: func(t *testing.T) setup {
				dsn := pgtest.New(t)
				simMigrate(t, dsn, "0.14.1", "up")
				a := simNode(t, dsn, "0.14.1")
				simMigrate(t, dsn, "1.0.3", "up")
				return setup{gw: Gateway{DatastoreDSN: dsn, Generations: []GenerationNodes{
					{Version: "0.14.1", Nodes: []NodeOptions{simNodeOpts("a", a)}},
					{Version: "1.0.3", Nodes: []NodeOptions{{Name: "new-1", AdminURL: deadURL(t)}}},
				}}}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.build(t)
			c := newClient(t, s.gw)
			var j steps.Journal
			if s.journal != nil {
				j = s.journal
			}
			chk, err := c.Preflight(ctx, "gw", tc.hop, j)
			if err != nil {
				t.Fatal(err)
			}
			if chk.OK != tc.ok {
				t.Fatalf("OK = %v, missing %q", chk.OK, chk.Missing)
			}
			for _, m := range tc.missing {
				if !missingHas(chk, m) {
					t.Errorf("missing %q lacks %q", chk.Missing, m)
				}
			}
			if tc.pause != "" && (chk.Pause == nil || chk.Pause.Key != tc.pause) {
				t.Errorf("pause = %+v, want key %s", chk.Pause, tc.pause)
			}
			if tc.pause == "" && chk.Pause != nil {
				t.Errorf("unexpected pause %+v", chk.Pause)
			}
		})
	}
}

func TestInspectNamesProblems(t *testing.T) {
	dsn := pgtest.New(t)
	simMigrate(t, dsn, "0.14.1", "up")
	a := simNode(t, dsn, "0.14.1")
	c := newClient(t, Gateway{DatastoreDSN: dsn, Generations: []GenerationNodes{
		{Version: "0.14.1", Nodes: []NodeOptions{simNodeOpts("a", a), {Name: "b", AdminURL: deadURL(t)}}},
	}})
	inv, err := c.Inspect(context.Background(), "gw")
	if err != nil {
		t.Fatal(err)
	}
	if inv.Schema != steps.Schema014 || len(inv.Nodes) != 2 || inv.Nodes[0].Version != "0.14.1" || !inv.Nodes[0].DatabaseOK {
		t.Fatalf("inventory %+v", inv)
	}
	if len(inv.Nodes[0].Available) < 31 {
		t.Errorf("available plugins %d", len(inv.Nodes[0].Available))
	}
	if len(inv.Problems) != 1 || !strings.Contains(inv.Problems[0], "node b (0.14.1) unreachable") {
		t.Errorf("problems %q", inv.Problems)
	}
}

// TestMigrateKongsimCLI runs the real runner against `kongsim migrations`
// built into a temporary directory.
func TestMigrateKongsimCLI(t *testing.T) {
	bin := buildKongsim(t)
	dsn := pgtest.New(t)
	simMigrate(t, dsn, "0.13.1", "up")
	n := simNode(t, dsn, "0.13.1")
	cmd := func(v string) MigrationCommand {
		return MigrationCommand{Argv: []string{bin, "migrations", "{{.Verb}}", "--version", "{{.Target}}", "--pg", "{{.DSN}}"}, Timeout: time.Minute}
	}
	c := newClient(t, Gateway{DatastoreDSN: dsn,
		Generations: []GenerationNodes{{Version: "0.13.1", Nodes: []NodeOptions{simNodeOpts("a", n)}}},
		Migrations:  map[string]MigrationCommand{"0.14.1": cmd("0.14.1"), "1.0.3": cmd("1.0.3")}})
	ctx := context.Background()
	sink := &lineSink{}
	res, err := c.Migrate(ctx, "gw", "0.14.1", steps.MigrateUp, sink)
	if err != nil || res.Schema != steps.Schema014 || res.LogLines == 0 {
		t.Fatalf("0.14.1 up: %+v %v %q", res, err, sink.all())
	}
	adminJSON(t, "POST", n.AdminURL()+"/apis", map[string]any{"name": "test", "uris": []string{"/test"}, "upstream_url": "http://127.0.0.1:15555"}, 201)
	res, err = c.Migrate(ctx, "gw", "1.0.3", steps.MigrateList, sink)
	if err != nil || res.ExitCode != 3 {
		t.Fatalf("1.0.3 list: %+v %v", res, err)
	}
	res, err = c.Migrate(ctx, "gw", "1.0.3", steps.MigrateUp, sink)
	if res.Refusal != RefusalAPIsPresent || err == nil || !strings.Contains(err.Error(), "hop2.apis-convert") || res.Schema != steps.Schema014 {
		t.Fatalf("1.0.3 up with APIs: %+v %v", res, err)
	}
	execSQL(t, dsn, "DELETE FROM apis")
	res, err = c.Migrate(ctx, "gw", "1.0.3", steps.MigrateUp, sink)
	if err != nil || res.Schema != steps.Schema10Pending {
		t.Fatalf("1.0.3 up: %+v %v", res, err)
	}
	res, err = c.Migrate(ctx, "gw", "1.0.3", steps.MigrateList, sink)
	if err != nil || res.ExitCode != 4 {
		t.Fatalf("1.0.3 list pending: %+v %v", res, err)
	}
	res, err = c.Migrate(ctx, "gw", "1.0.3", steps.MigrateFinish, sink)
	if err != nil || res.Schema != steps.Schema10 {
		t.Fatalf("1.0.3 finish: %+v %v", res, err)
	}
}

// TestPreflightReadsAvailableOnServer covers running 1.0.3 nodes (possible
// once `up` ran): the plugin list comes from their GET /, and a node
// without okta-auth does not even start (§4.3).
func TestPreflightReadsAvailableOnServer(t *testing.T) {
	dsn := pgtest.New(t)
	simMigrate(t, dsn, "0.14.1", "up", "bundled", "okta-auth")
	old := simNode(t, dsn, "0.14.1", "bundled", "okta-auth")
	adminJSON(t, "POST", old.AdminURL()+"/plugins", map[string]any{"name": "okta-auth", "config": map[string]any{
		"client_id": "c", "client_secret": "s", "authorization_server": "http://127.0.0.1:1/oauth2/default", "check_auth_server": false}}, 201)
	simMigrate(t, dsn, "1.0.3", "up", "bundled", "okta-auth")
	with := simNode(t, dsn, "1.0.3", "bundled", "okta-auth")
	if _, err := kongsim.Start(context.Background(), kongsim.Options{Version: "1.0.3", DSN: dsn}); err == nil ||
		!strings.Contains(err.Error(), "okta-auth plugin is in use but not enabled") {
		t.Fatalf("a 1.0.3 node without okta-auth started: %v", err)
	}
	j := newJournal()
	j.Put(ConfirmKeyPrefix+"okta-auth", "approve")
	c := newClient(t, Gateway{DatastoreDSN: dsn, Generations: []GenerationNodes{
		{Version: "0.14.1", Nodes: []NodeOptions{simNodeOpts("old", old)}},
		{Version: "1.0.3", Nodes: []NodeOptions{simNodeOpts("with", with), {Name: "without", AdminURL: deadURL(t)}}},
	}})
	chk, err := c.Preflight(context.Background(), "gw", "2", j)
	if err != nil {
		t.Fatal(err)
	}
	if missingHas(chk, "node with ") || !missingHas(chk, "1.0.3 node without neither answers nor declares it") {
		t.Fatalf("missing %q", chk.Missing)
	}
	if !missingHas(chk, "schema is 1.0-pending") {
		t.Errorf("the pending schema is not named: %q", chk.Missing)
	}
}
