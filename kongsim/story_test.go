package kongsim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kongbot/kongbot/internal/pgtest"
)

// testKong drives kongsim like an operator would: CLI runs and Admin API
// calls, with fatal checks.
type testKong struct {
	t   *testing.T
	ctx context.Context
	dsn string
}

func newTestKong(t *testing.T) *testKong {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return &testKong{t: t, ctx: ctx, dsn: pgtest.New(t)}
}

func (k *testKong) migrate(v Version, cmd string, plugins []string) (int, string, string) {
	k.t.Helper()
	var out, errb bytes.Buffer
	code := Migrate(k.ctx, MigrateOptions{Version: v, DSN: k.dsn, Plugins: plugins}, cmd, &out, &errb)
	return code, out.String(), errb.String()
}

func (k *testKong) mustMigrate(v Version, cmd string, wantOut string) {
	k.t.Helper()
	code, out, errOut := k.migrate(v, cmd, nil)
	if code != 0 || !strings.Contains(out, wantOut) {
		k.t.Fatalf("%s migrations %s: exit %d, stdout %q, stderr %q; want exit 0 and %q", v, cmd, code, out, errOut, wantOut)
	}
}

func (k *testKong) start(v Version, plugins ...string) *Node {
	k.t.Helper()
	n, err := Start(k.ctx, Options{Version: v, DSN: k.dsn, Plugins: plugins, DBUpdateFrequency: 100 * time.Millisecond})
	if err != nil {
		k.t.Fatalf("start %s: %v", v, err)
	}
	k.t.Cleanup(n.Stop)
	return n
}

// call sends a JSON request and decodes the JSON answer.
func (k *testKong) call(n *Node, method, path string, body any, want int) map[string]any {
	k.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(k.ctx, method, n.AdminURL()+path, rd)
	if err != nil {
		k.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		k.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		k.t.Fatalf("%s %s on %s: status %d, want %d: %s", method, path, n.Version(), resp.StatusCode, want, raw)
	}
	out := map[string]any{}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			k.t.Fatalf("%s %s: body %q: %v", method, path, raw, err)
		}
	}
	return out
}

// eventually polls cond until it holds (other nodes see writes at their next
// cluster_events poll) or the test context ends.
func (k *testKong) eventually(what string, cond func() bool) {
	k.t.Helper()
	for !cond() {
		select {
		case <-k.ctx.Done():
			k.t.Fatalf("never happened: %s", what)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func viewHasRoutePath(t *testing.T, n *Node, path string) bool {
	t.Helper()
	v, err := n.View(context.Background())
	if err != nil {
		t.Fatalf("view: %v", err)
	}
	for _, r := range v.Routes() {
		for _, p := range r.Paths {
			if p == path {
				return true
			}
		}
	}
	return false
}

func viewPlugin(t *testing.T, n *Node, name string) (Plugin, bool) {
	t.Helper()
	v, err := n.View(context.Background())
	if err != nil {
		t.Fatalf("view: %v", err)
	}
	for _, p := range v.Plugins() {
		if p.Name == name {
			return p, true
		}
	}
	return Plugin{}, false
}

var okta = []string{"bundled", "okta-auth"}

var oktaConfig = map[string]any{"client_id": "kongbot", "client_secret": "s3cret",
	"authorization_server": "http://127.0.0.1:1/oauth2/default", "check_auth_server": false}

// TestDemoStoryDatastore is the seed's demo story on the datastore side:
// 0.13.1 install with API `test` and okta-auth, the 0.14.1 upgrade under a
// running 0.13.1 node, the refused 1.0.3 `up`, a hand conversion through the
// Admin API, `up`, a 1.0.3 node beside the 0.14.1 one, `finish`, and the
// 0.14.1 node that then cannot start again.
func TestDemoStoryDatastore(t *testing.T) {
	k := newTestKong(t)
	k.mustMigrate(V0131, "up", "62 migrations ran")
	n13 := k.start(V0131, okta...)
	api := k.call(n13, "POST", "/apis", map[string]any{"name": "test", "uris": []string{"/test"},
		"upstream_url": "http://127.0.0.1:15555/anything"}, 201)
	k.call(n13, "POST", "/apis/test/plugins", map[string]any{"name": "okta-auth", "config": oktaConfig}, 201)
	term := k.call(n13, "POST", "/plugins", map[string]any{"name": "request-termination",
		"config": map[string]any{"status_code": 503, "message": "Maintenance"}}, 201)
	if p, ok := viewPlugin(t, n13, "request-termination"); !ok || !p.Global() {
		t.Fatalf("0.13.1 view lacks the global request-termination just written: %+v", p)
	}
	k.call(n13, "DELETE", "/plugins/"+term["id"].(string), nil, 204)

	k.mustMigrate(V0141, "up", "5 migrations ran")
	// The old node keeps working on the migrated schema.
	if got := k.call(n13, "GET", "/apis", nil, 200); got["total"].(float64) != 1 {
		t.Fatalf("0.13.1 node after 0.14.1 up: %v", got)
	}
	v13, err := n13.View(k.ctx)
	if err != nil || len(v13.APIs()) != 1 || v13.APIs()[0].Name != "test" {
		t.Fatalf("0.13.1 view after 0.14.1 up: %v %v", v13, err)
	}

	n14 := k.start(V0141, okta...)
	if got := k.call(n14, "GET", "/apis/test", nil, 200); got["id"] != api["id"] {
		t.Fatalf("0.14.1 reads another API: %v", got)
	}
	n13.Stop()

	code, _, errOut := k.migrate(V103, "up", nil)
	if code != 1 || !strings.Contains(errOut, "you have `api` entities in your database") {
		t.Fatalf("1.0.3 up with APIs: exit %d, stderr %q", code, errOut)
	}
	if code, out, _ := k.migrate(V103, "list", nil); code != 3 || !strings.Contains(out, "needs bootstrapping") {
		t.Fatalf("the refused up changed the database: list exit %d %q", code, out)
	}

	// The hand conversion, through the 0.14.1 Admin API.
	plugins := k.call(n14, "GET", "/plugins?api_id="+api["id"].(string), nil, 200)["data"].([]any)
	if len(plugins) != 1 {
		t.Fatalf("plugins of API test: %v", plugins)
	}
	k.call(n14, "POST", "/services", map[string]any{"name": "test", "url": "http://127.0.0.1:15555/anything"}, 201)
	route := k.call(n14, "POST", "/services/test/routes", map[string]any{"paths": []string{"/test"}, "strip_path": true}, 201)
	old := plugins[0].(map[string]any)
	k.call(n14, "POST", "/routes/"+route["id"].(string)+"/plugins", map[string]any{"name": old["name"], "config": old["config"]}, 201)
	k.call(n14, "DELETE", "/apis/test", nil, 204)
	if got := k.call(n14, "GET", "/apis", nil, 200); got["total"].(float64) != 0 {
		t.Fatalf("APIs left: %v", got)
	}

	k.mustMigrate(V103, "up", "9 pending")
	if code, _, errOut := k.migrate(V103, "up", nil); code != 1 || !strings.Contains(errOut, "database has pending migrations") {
		t.Fatalf("second 1.0.3 up while pending: exit %d %q", code, errOut)
	}
	if _, err := Start(k.ctx, Options{Version: V103, DSN: k.dsn}); err == nil ||
		!strings.Contains(err.Error(), "okta-auth plugin is in use but not enabled") {
		t.Fatalf("1.0.3 node without okta-auth: %v", err)
	}
	n10 := k.start(V103, okta...)
	if !viewHasRoutePath(t, n10, "/test") {
		t.Fatal("1.0.3 node does not route the converted /test")
	}
	if p, ok := viewPlugin(t, n10, "okta-auth"); !ok || p.RouteID != route["id"] {
		t.Fatalf("1.0.3 node does not run okta-auth on the converted route: %+v", p)
	}
	// 0.14.1 still serves during the up-but-not-finished window.
	k.call(n14, "GET", "/routes", nil, 200)
	if !viewHasRoutePath(t, n14, "/test") {
		t.Fatal("0.14.1 view lost the route during the window")
	}

	k.mustMigrate(V103, "finish", "9 executed")
	if code, out, _ := k.migrate(V103, "list", nil); code != 0 || !strings.Contains(out, "database is up-to-date") {
		t.Fatalf("list after finish: %d %q", code, out)
	}
	// The running 0.14.1 node keeps serving from its cache …
	if !viewHasRoutePath(t, n14, "/test") {
		t.Fatal("0.14.1 view lost the route after finish")
	}
	k.call(n14, "GET", "/status", nil, 200)
	// … but a 0.14.1 node cannot start any more.
	_, err = Start(k.ctx, Options{Version: V0141, DSN: k.dsn, Plugins: okta})
	var se *StartError
	if !errors.As(err, &se) || !strings.Contains(strings.Join(se.Stderr, "\n"), "the current database schema does not match this version of Kong") {
		t.Fatalf("0.14.1 start after finish: %v", err)
	}
}

// TestMixedVersionPlugins checks what each version stores and runs in the
// up-but-not-finished window (reference §8.2): a 1.0.3-written global
// request-termination is stored with null body/content_type, which the
// 0.14.1 node sees as such; a 0.14.1-written one is not run by the 1.0.3 node
// until a plugin is written through a 1.0.3 node.
func TestMixedVersionPlugins(t *testing.T) {
	k := newTestKong(t)
	k.mustMigrate(V0141, "up", "67 migrations ran")
	n14 := k.start(V0141)
	k.call(n14, "POST", "/services", map[string]any{"name": "svc14", "url": "http://127.0.0.1:15555/svc14"}, 201)
	k.call(n14, "POST", "/services/svc14/routes", map[string]any{"paths": []string{"/svc14"}}, 201)
	k.mustMigrate(V103, "up", "upgrading from 0.14")
	n10 := k.start(V103)
	rt := k.call(n10, "POST", "/routes/"+firstRouteID(k, n10)+"/plugins", map[string]any{"name": "response-transformer",
		"config": map[string]any{"add": map[string]any{"headers": []string{"X-Fixture:1"}}}}, 201)

	// 1.0.3 writes nulls for the unset fields.
	term := k.call(n10, "POST", "/plugins", map[string]any{"name": "request-termination",
		"config": map[string]any{"status_code": 503, "message": "Maintenance"}}, 201)
	var stored string
	pool, err := openPool(k.ctx, k.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := pool.QueryRow(k.ctx, `SELECT config::text FROM plugins WHERE id = $1`, term["id"]).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stored, `"body": null`) || !strings.Contains(stored, `"content_type": null`) {
		t.Fatalf("1.0.3 stored %s, want explicit nulls", stored)
	}
	k.eventually("0.14.1 sees the 1.0.3 termination", func() bool {
		p, ok := viewPlugin(t, n14, "request-termination")
		if !ok {
			return false
		}
		body, present := p.Config["body"]
		return present && body == nil
	})
	k.call(n10, "DELETE", "/plugins/"+term["id"].(string), nil, 204)
	k.eventually("0.14.1 drops the deleted termination", func() bool {
		_, ok := viewPlugin(t, n14, "request-termination")
		return !ok
	})

	// A request through 1.0.3 rebuilds its plugins_map (lazily, as Kong
	// does) while no termination exists, as the recorded proxy probe did.
	if _, ok := viewPlugin(t, n10, "request-termination"); ok {
		t.Fatal("1.0.3 still runs its deleted termination")
	}
	// 0.14.1 writes one; 1.0.3 reads the row but its plugins_map lacks the name.
	t14 := k.call(n14, "POST", "/plugins", map[string]any{"name": "request-termination",
		"config": map[string]any{"status_code": 503, "message": "Maintenance"}}, 201)
	if _, ok := viewPlugin(t, n14, "request-termination"); !ok {
		t.Fatal("0.14.1 does not run its own termination at once")
	}
	// Several poll cycles: the row is read, yet not run.
	for i := 0; i < 5; i++ {
		time.Sleep(100 * time.Millisecond)
		if _, ok := viewPlugin(t, n10, "request-termination"); ok {
			t.Fatal("1.0.3 runs a plugin name its plugins_map does not hold")
		}
	}
	k.call(n10, "PATCH", "/plugins/"+rt["id"].(string), map[string]any{"enabled": true}, 200)
	if _, ok := viewPlugin(t, n10, "request-termination"); !ok {
		t.Fatal("1.0.3 still ignores the termination after a plugin write through 1.0.3")
	}
	k.call(n14, "DELETE", "/plugins/"+t14["id"].(string), nil, 204)
	k.eventually("1.0.3 drops the termination deleted through 0.14.1", func() bool {
		_, ok := viewPlugin(t, n10, "request-termination")
		return !ok
	})

	// A route created through one version reaches the other at its next poll.
	k.call(n14, "POST", "/services", map[string]any{"name": "late", "url": "http://127.0.0.1:15555/late"}, 201)
	k.call(n14, "POST", "/services/late/routes", map[string]any{"paths": []string{"/late"}}, 201)
	k.eventually("1.0.3 routes a 0.14.1-created route", func() bool { return viewHasRoutePath(t, n10, "/late") })
}

func firstRouteID(k *testKong, n *Node) string {
	k.t.Helper()
	data := k.call(n, "GET", "/routes", nil, 200)["data"].([]any)
	if len(data) == 0 {
		k.t.Fatal("no routes")
	}
	return data[0].(map[string]any)["id"].(string)
}

// TestNodeCache covers db_cache_ttl and serving from the cache when the
// datastore cannot be read any more.
func TestNodeCache(t *testing.T) {
	k := newTestKong(t)
	k.mustMigrate(V0131, "up", "62 migrations ran")
	pool, err := openPool(k.ctx, k.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	start := func(ttl time.Duration) *Node {
		n, err := Start(k.ctx, Options{Version: V0131, DSN: k.dsn, DBCacheTTL: ttl, DBUpdateFrequency: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(n.Stop)
		return n
	}
	never, short := start(-1), start(200*time.Millisecond)
	for _, n := range []*Node{never, short} {
		if v, err := n.View(k.ctx); err != nil || len(v.APIs()) != 0 {
			t.Fatalf("empty view: %v %v", v, err)
		}
	}
	// A row written behind Kong's back sends no invalidation: only the TTL
	// brings it in.
	if _, err := pool.Exec(k.ctx, `INSERT INTO apis (id, name, upstream_url, preserve_host, uris, strip_uri)
		VALUES ($1, 'sql', 'http://127.0.0.1:15555', false, '["\/sql"]', true)`, newUUID()); err != nil {
		t.Fatal(err)
	}
	k.eventually("the 0.13.1 node with a short db_cache_ttl re-reads the APIs", func() bool {
		v, _ := short.View(k.ctx)
		return len(v.APIs()) == 1 && v.APIs()[0].URIs[0] == "/sql"
	})
	time.Sleep(300 * time.Millisecond)
	if v, _ := never.View(k.ctx); len(v.APIs()) != 0 {
		t.Fatal("a node without TTL re-read the APIs without an invalidation")
	}

	// The schema moves away under a node: it keeps what it cached.
	if _, err := pool.Exec(k.ctx, `ALTER TABLE apis RENAME TO apis_moved`); err != nil {
		t.Fatal(err)
	}
	short.cache.invalidate("api_router:version")
	v, err := short.View(k.ctx)
	if err != nil || len(v.APIs()) != 1 {
		t.Fatalf("node lost its cached APIs when the table went away: %v %v", v.APIs(), err)
	}
}

// TestCascadeInvalidation: deleting a route or service removes its plugins
// through the foreign-key cascade; the nodes must drop them too.
func TestCascadeInvalidation(t *testing.T) {
	for _, v := range []Version{V0141, V103} {
		t.Run(string(v), func(t *testing.T) {
			k := newTestKong(t)
			if v.Is10() {
				k.mustMigrate(v, "bootstrap", "22 executed")
			} else {
				k.mustMigrate(v, "up", "67 migrations ran")
			}
			a, b := k.start(v), k.start(v)
			k.call(a, "POST", "/services", map[string]any{"name": "s", "url": "http://127.0.0.1:15555"}, 201)
			rt := k.call(a, "POST", "/services/s/routes", map[string]any{"paths": []string{"/s"}}, 201)
			k.call(a, "POST", "/routes/"+rt["id"].(string)+"/plugins", map[string]any{"name": "key-auth"}, 201)
			k.eventually("node b runs the route's key-auth", func() bool { _, ok := viewPlugin(t, b, "key-auth"); return ok })
			k.call(a, "DELETE", "/routes/"+rt["id"].(string), nil, 204)
			if _, ok := viewPlugin(t, a, "key-auth"); ok {
				t.Fatal("node a still runs the plugin of its deleted route")
			}
			k.eventually("node b drops the cascaded plugin", func() bool { _, ok := viewPlugin(t, b, "key-auth"); return !ok })
		})
	}
}
