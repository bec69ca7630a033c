package kong

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kongbot/kongbot/internal/pgtest"
	"github.com/kongbot/kongbot/kongsim"
)

// variedAPIs creates the demo gateway's API (okta-auth) and n varied APIs
// through the node's Admin API, and returns how many plugins they carry and
// how many of those are consumer-scoped.
func variedAPIs(t *testing.T, admin, upstream string, n int) (plugins, consumerScoped int) {
	t.Helper()
	alice := adminJSON(t, "POST", admin+"/consumers", map[string]any{"username": "alice", "custom_id": "c-1"}, 201)
	adminJSON(t, "POST", admin+"/consumers/alice/key-auth", map[string]any{"key": "alice-secret-key"}, 201)
	adminJSON(t, "POST", admin+"/apis", map[string]any{"name": "test", "uris": []string{"/test"}, "upstream_url": upstream + "/anything"}, 201)
	adminJSON(t, "POST", admin+"/apis/test/plugins", map[string]any{"name": "okta-auth", "config": map[string]any{
		"client_id": "c", "client_secret": "s", "authorization_server": "http://127.0.0.1:1/oauth2/default", "check_auth_server": false}}, 201)
	plugins++
	adminJSON(t, "POST", admin+"/apis", map[string]any{"name": "only-delete", "methods": []string{"DELETE"}, "upstream_url": upstream + "/del"}, 201)
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("api-%03d", i)
		a := map[string]any{"name": name, "upstream_url": fmt.Sprintf("%s/up%d", upstream, i)}
		switch i % 10 {
		case 0:
			a["uris"] = []string{fmt.Sprintf("/p%d", i)}
			a["strip_uri"] = false
		case 1:
			a["hosts"] = []string{fmt.Sprintf("h%d.test", i)}
			a["preserve_host"] = true
		case 2:
			a["hosts"] = []string{fmt.Sprintf("*.w%d.test", i)}
			a["uris"] = []string{"/w"}
		case 3:
			a["methods"] = []string{"GET", "POST"}
			a["uris"] = []string{fmt.Sprintf("/m%d", i)}
		case 4:
			a["https_only"] = true
			a["uris"] = []string{fmt.Sprintf("/s%d", i)}
		case 5:
			a["uris"] = []string{fmt.Sprintf(`/r%d/\d+`, i)}
		case 6, 7:
			a["uris"] = []string{fmt.Sprintf("/k%d", i)}
		case 8:
			a["uris"] = []string{fmt.Sprintf("/n%d/inner", i)}
		case 9:
			a["uris"] = []string{fmt.Sprintf("/n%d", i-1)} // the outer of case 8
			a["upstream_connect_timeout"] = 2147483647
		}
		adminJSON(t, "POST", admin+"/apis", a, 201)
		switch i % 10 {
		case 6:
			adminJSON(t, "POST", admin+"/apis/"+name+"/plugins", map[string]any{"name": "key-auth"}, 201)
			plugins++
		case 7:
			adminJSON(t, "POST", admin+"/apis/"+name+"/plugins", map[string]any{"name": "key-auth"}, 201)
			adminJSON(t, "POST", admin+"/apis/"+name+"/plugins", map[string]any{"name": "response-transformer",
				"consumer_id": alice["id"], "config": map[string]any{"add": map[string]any{"headers": []string{"x-alice:1"}}}}, 201)
			plugins += 2
			consumerScoped++
		}
	}
	return plugins, consumerScoped
}

func convEnv(t *testing.T, n int) (*Client, *kongsim.Node, string, int, int) {
	t.Helper()
	up := echoUpstream(t)
	dsn := pgtest.New(t)
	simMigrate(t, dsn, "0.14.1", "up", "bundled", "okta-auth")
	node := simNode(t, dsn, "0.14.1", "bundled", "okta-auth")
	plugins, consumerScoped := variedAPIs(t, node.AdminURL(), up.URL, n)
	c := newClient(t, Gateway{DatastoreDSN: dsn,
		Generations: []GenerationNodes{{Version: "0.14.1", Nodes: []NodeOptions{simNodeOpts("a", node)}}},
		Conversion:  ConversionOptions{Concurrency: 8}})
	return c, node, dsn, plugins, consumerScoped
}

func TestConvertDemoAndVariedAPIs(t *testing.T) {
	ctx := context.Background()
	c, node, dsn, plugins, consumerScoped := convEnv(t, 200)
	const apis = 202

	plan, err := c.PlanConversion(ctx, "gw")
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Items) != apis || len(plan.Problems) != 0 {
		t.Fatalf("plan: %d items, problems %q", len(plan.Items), plan.Problems)
	}
	if n := countSQL(t, dsn, "SELECT count(*) FROM services"); n != 0 {
		t.Fatalf("the dry run wrote %d services", n)
	}
	var onlyDelete, timeout bool
	for _, it := range plan.Items {
		if it.API == "only-delete" && strings.Contains(it.Route, fmt.Sprintf("step %d", 1)) {
			t.Errorf("methods-only API is not converted last: %s", it.Route)
		}
		onlyDelete = onlyDelete || it.API == "only-delete"
		for _, w := range it.Warnings {
			timeout = timeout || strings.Contains(w, "lowered to 2147483646")
		}
	}
	if !onlyDelete || !timeout {
		t.Errorf("plan lacks the methods-only API or the timeout warning")
	}

	sink := &lineSink{}
	j := newJournal()
	chk, err := c.Convert(ctx, "gw", j, sink)
	if err != nil || !chk.OK {
		t.Fatalf("convert: %v, missing %q", err, chk.Missing)
	}
	for q, want := range map[string]int{
		"SELECT count(*) FROM services":                                                       apis,
		"SELECT count(*) FROM routes":                                                         apis,
		"SELECT count(*) FROM plugins WHERE route_id IS NOT NULL":                             plugins,
		"SELECT count(*) FROM plugins WHERE route_id IS NOT NULL AND consumer_id IS NOT NULL": consumerScoped,
		"SELECT count(*) FROM routes WHERE 'KONGBOTPENDING' = ANY(methods)":                   0,
		"SELECT count(*) FROM routes WHERE protocols = '{https}'":                             20,
		"SELECT count(*) FROM routes WHERE regex_priority > 0":                                20,
	} {
		if n := countSQL(t, dsn, q); n != want {
			t.Errorf("%s = %d, want %d", q, n, want)
		}
	}
	v, err := c.VerifyConversion(ctx, "gw", j)
	if err != nil || !v.OK {
		t.Fatalf("verify: %v %q", err, v.Missing)
	}
	if err := c.DeleteAPIs(ctx, "gw", j, sink); err != nil {
		t.Fatal(err)
	}
	if n := countSQL(t, dsn, "SELECT count(*) FROM apis"); n != 0 {
		t.Fatalf("%d APIs left", n)
	}
	// Now only the Routes can answer: the same statuses as the APIs gave.
	v, err = c.VerifyConversion(ctx, "gw", j)
	if err != nil || !v.OK {
		t.Fatalf("verify after delete: %v %q", err, v.Missing)
	}
	// The demo: 401 without a token through the Route.
	a, err := c.gateways["gw"].probe(ctx, node.ProxyURL(), Probe{Path: "/test"})
	if err != nil || a.Status != 401 {
		t.Errorf("demo route: %d %v", a.Status, err)
	}
	// key-auth with alice's key passes and her consumer-scoped plugin runs.
	a, err = c.gateways["gw"].probe(ctx, node.ProxyURL(), Probe{Path: "/k7", Headers: map[string]string{"apikey": "alice-secret-key"}})
	if err != nil || a.Status != 200 {
		t.Errorf("key-auth route with key: %d %v", a.Status, err)
	}
}

// crashJournal cancels the run once `after` Routes are recorded, and fails
// the first write that holds the service of one API (as if the bot died
// between Kong's answer and the journal write: a batch is lost whole).
type crashJournal struct {
	*memJournal
	after  int32
	done   atomic.Int32
	cancel context.CancelFunc
	loseMu sync.Mutex
	lose   string
}

func (c *crashJournal) Put(k, v string) error {
	c.loseMu.Lock()
	if c.lose != "" && k == jConv(c.lose, jcService) {
		c.lose = ""
		c.loseMu.Unlock()
		return errors.New("disk gone")
	}
	c.loseMu.Unlock()
	return c.PutMany(map[string]string{k: v})
}

func (c *crashJournal) PutMany(kv map[string]string) error {
	c.loseMu.Lock()
	if _, ok := kv[jConv(c.lose, jcService)]; ok && c.lose != "" {
		c.lose = ""
		c.loseMu.Unlock()
		return errors.New("disk gone")
	}
	c.loseMu.Unlock()
	if err := c.memJournal.PutMany(kv); err != nil {
		return err
	}
	routes := int32(0)
	for k := range kv {
		if strings.HasSuffix(k, "/"+jcRoute) {
			routes++
		}
	}
	if routes > 0 {
		if n := c.done.Add(routes); n >= c.after && n-routes < c.after {
			c.cancel()
		}
	}
	return nil
}

func TestConvertCrashResumesWithoutDuplicates(t *testing.T) {
	c, _, dsn, plugins, _ := convEnv(t, 200)
	const apis = 202
	// Run 1: the journal write of one API's Service is lost (Kong created
	// it); the step stops after the level that failed.
	j := &crashJournal{memJournal: newJournal(), after: -1, cancel: func() {}, lose: "api-002"}
	chk, err := c.Convert(context.Background(), "gw", j, nil)
	if err != nil || chk.OK || j.lose != "" || !missingHas(chk, "api-002") {
		t.Fatalf("run 1: err %v, ok %v, lost write pending %q, missing %q", err, chk.OK, j.lose, chk.Missing)
	}
	t.Logf("run 1: %d of %d done; %q", len(convertedAPIs(j)), apis, chk.Missing)
	// Run 2: cancelled mid-way (the bot process stops).
	ctx, cancel := context.WithCancel(context.Background())
	routes := int32(0)
	for _, k := range j.Keys("conv/") {
		if strings.HasSuffix(k, "/"+jcRoute) {
			routes++
		}
	}
	j.cancel, j.after = cancel, routes+90
	j.done.Store(routes)
	chk, err = c.Convert(ctx, "gw", j, nil)
	if err == nil || chk.OK {
		t.Fatal("the interrupted run reports success")
	}
	done := len(convertedAPIs(j))
	if done >= apis {
		t.Fatalf("the crash came too late: %d done", done)
	}
	t.Logf("run 2: %d of %d done (%v)", done, apis, err)
	// Re-run with the same journal.
	chk, err = c.Convert(context.Background(), "gw", j.memJournal, nil)
	if err != nil || !chk.OK {
		t.Fatalf("resumed: %v %q", err, chk.Missing)
	}
	for q, want := range map[string]int{
		"SELECT count(*) FROM services":                           apis,
		"SELECT count(*) FROM routes":                             apis,
		"SELECT count(*) FROM plugins WHERE route_id IS NOT NULL": plugins,
		"SELECT count(DISTINCT name) FROM services":               apis,
	} {
		if n := countSQL(t, dsn, q); n != want {
			t.Errorf("%s = %d, want %d", q, n, want)
		}
	}
	if v, err := c.VerifyConversion(context.Background(), "gw", j.memJournal); err != nil || !v.OK {
		t.Fatalf("verify: %v %q", err, v.Missing)
	}
	// A third run finds everything done and writes nothing.
	chk, err = c.Convert(context.Background(), "gw", j.memJournal, nil)
	if err != nil || !chk.OK || countSQL(t, dsn, "SELECT count(*) FROM routes") != apis {
		t.Fatalf("third run: %v %q", err, chk.Missing)
	}
}
