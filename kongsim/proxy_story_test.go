package kongsim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kongbot/kongbot/internal/pgtest"
)

// storyEnv is a real-Postgres cluster of kongsim nodes for the demo story.
type storyEnv struct {
	t    *testing.T
	ctx  context.Context
	dsn  string
	freq time.Duration
	echo string
	okta *Okta
}

func newStoryEnv(t *testing.T) *storyEnv {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	echo := httptest.NewServer(echoHandler())
	t.Cleanup(echo.Close)
	return &storyEnv{t: t, ctx: ctx, dsn: pgtest.New(t), freq: 200 * time.Millisecond, echo: echo.URL, okta: startTestOkta(t)}
}

func (e *storyEnv) migrate(v Version, cmd string) (int, string) {
	e.t.Helper()
	var out, errb bytes.Buffer
	code := Migrate(e.ctx, MigrateOptions{Version: v, DSN: e.dsn, Plugins: []string{"bundled", "okta-auth"}}, cmd, &out, &errb)
	return code, out.String() + errb.String()
}

func (e *storyEnv) start(v Version) (*Node, error) {
	n, err := Start(e.ctx, Options{Version: v, DSN: e.dsn, Plugins: []string{"bundled", "okta-auth"}, DBUpdateFrequency: e.freq})
	if err == nil {
		e.t.Cleanup(n.Stop)
	}
	return n, err
}

// admin sends a JSON Admin API request and decodes the answer.
func (e *storyEnv) admin(n *Node, method, path string, body any, want int) map[string]any {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(e.ctx, method, n.AdminURL()+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		e.t.Fatalf("%s %s on %s: %d %s, want %d", method, path, n.Version(), resp.StatusCode, b, want)
	}
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return out
}

type probeResult struct {
	status int
	body   string
	header http.Header
}

func (e *storyEnv) probe(n *Node, path, token string) probeResult {
	e.t.Helper()
	req, err := http.NewRequestWithContext(e.ctx, http.MethodGet, n.ProxyURL()+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("proxy %s on %s: %v", path, n.Version(), err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return probeResult{resp.StatusCode, string(b), resp.Header}
}

// eventually probes until want is seen: other nodes apply writes at their
// next cluster_events poll.
func (e *storyEnv) eventually(n *Node, path, token string, want int) probeResult {
	e.t.Helper()
	deadline := time.Now().Add(20 * e.freq)
	for {
		r := e.probe(n, path, token)
		if r.status == want || time.Now().After(deadline) {
			if r.status != want {
				e.t.Fatalf("%s on %s: %d %q, want %d", path, n.Version(), r.status, r.body, want)
			}
			return r
		}
		time.Sleep(e.freq / 4)
	}
}

func (e *storyEnv) expect(n *Node, path, token string, want int, bodyPart string) {
	e.t.Helper()
	r := e.probe(n, path, token)
	if r.status != want || !strings.Contains(r.body, bodyPart) {
		e.t.Fatalf("%s on %s: %d %q, want %d containing %q", path, n.Version(), r.status, r.body, want, bodyPart)
	}
}

func (e *storyEnv) oktaConfig() map[string]any {
	return map[string]any{"client_id": "cid-1", "client_secret": "s3cret", "authorization_server": e.okta.AuthorizationServer()}
}

// TestDemoStoryProxy is the seed's demo story, proxy side, on a real
// Postgres: a 0.13.1 node with API `test` and okta-auth (401 without a
// token, 200 with a minted one), global request-termination (503), 0.14.1
// `migrations up` and a 0.14.1 node serving the same API, 1.0.3 `up`
// refused while APIs exist, a hand conversion through the Admin API, 1.0.3
// `up` and a 1.0.3 node beside 0.14.1 with the mixed-window traps, `finish`,
// and the 0.14.1 node refusing to start.
func TestDemoStoryProxy(t *testing.T) {
	e := newStoryEnv(t)
	token := e.okta.Mint("alice@example.com", time.Hour)

	if code, out := e.migrate(V0131, "up"); code != 0 {
		t.Fatalf("0.13.1 up: %d %s", code, out)
	}
	n13, err := e.start(V0131)
	if err != nil {
		t.Fatalf("start 0.13.1: %v", err)
	}
	e.admin(n13, "POST", "/apis", map[string]any{"name": "test", "uris": []string{"/test"}, "upstream_url": e.echo + "/anything"}, 201)
	e.admin(n13, "POST", "/apis/test/plugins", map[string]any{"name": "okta-auth", "config": e.oktaConfig()}, 201)
	bad := e.oktaConfig()
	bad["client_secret"] = "wrong"
	e.admin(n13, "POST", "/apis/test/plugins", map[string]any{"name": "okta-auth", "config": bad}, 400)

	e.expect(n13, "/test/foo", "", 401, `{"message":"Unauthorized"}`)
	r := e.probe(n13, "/test/foo?x=1", token)
	if r.status != 200 || !strings.Contains(r.body, `"path":"/anything/foo?x=1"`) || r.header.Get("Via") != "kong/0.13.1" {
		t.Fatalf("0.13.1 with token: %d %s %v", r.status, r.body, r.header)
	}
	if up := echoHeaders(t, r.body); up["Okta-Sub"] != "alice@example.com" || up["Authorization"] != "" {
		t.Fatalf("upstream headers %v", up)
	}

	rt := e.admin(n13, "POST", "/plugins", map[string]any{"name": "request-termination", "config": map[string]any{"status_code": 503, "message": "Maintenance"}}, 201)
	e.expect(n13, "/test/foo", token, 503, `{"message":"Maintenance"}`)
	e.expect(n13, "/test/foo", "", 401, "Unauthorized") // okta-auth (1000) runs before termination (2)
	e.expect(n13, "/nope", token, 404, "no route and no API found with those values")

	// Hop 1: 0.14.1 migrations while the 0.13.1 node keeps serving.
	if code, out := e.migrate(V0141, "up"); code != 0 {
		t.Fatalf("0.14.1 up: %d %s", code, out)
	}
	n14, err := e.start(V0141)
	if err != nil {
		t.Fatalf("start 0.14.1: %v", err)
	}
	e.expect(n14, "/test/foo", token, 503, "Maintenance")
	e.admin(n14, "DELETE", "/plugins/"+rt["id"].(string), nil, 204)
	e.expect(n14, "/test/foo", token, 200, `"path":"/anything/foo"`)
	e.expect(n14, "/test/foo", "", 401, "Unauthorized")
	e.eventually(n13, "/test/foo", token, 200) // the old node on the new schema
	n13.Stop()

	// Hop 2: 1.0.3 refuses while APIs exist.
	if code, out := e.migrate(V103, "up"); code != 1 || !strings.Contains(out, "you have `api` entities in your database") {
		t.Fatalf("1.0.3 up with APIs: %d %s", code, out)
	}
	// Convert the API by hand through the 0.14.1 Admin API.
	e.admin(n14, "POST", "/services", map[string]any{"name": "test", "url": e.echo + "/anything"}, 201)
	route := e.admin(n14, "POST", "/services/test/routes", map[string]any{"paths": []string{"/test"}}, 201)
	e.admin(n14, "POST", "/routes/"+route["id"].(string)+"/plugins", map[string]any{"name": "okta-auth", "config": e.oktaConfig()}, 201)
	e.admin(n14, "DELETE", "/apis/test", nil, 204)
	e.expect(n14, "/test/foo", token, 200, `"path":"/anything/foo"`)
	e.expect(n14, "/test/foo", "", 401, "Unauthorized")

	if code, out := e.migrate(V103, "up"); code != 0 {
		t.Fatalf("1.0.3 up: %d %s", code, out)
	}
	n10, err := e.start(V103)
	if err != nil {
		t.Fatalf("start 1.0.3 beside 0.14.1: %v", err)
	}
	e.expect(n10, "/test/foo", token, 200, `"path":"/anything/foo"`)
	e.expect(n10, "/test/foo", "", 401, "Unauthorized")
	e.expect(n10, "/nope", token, 404, "no Route matched with those values")
	e.expect(n14, "/test/foo", token, 200, `"path":"/anything/foo"`)

	// Trap 1: a global request-termination written through 1.0.3 stores
	// "body":null,"content_type":null, which 0.14.1 cannot run.
	rt10 := e.admin(n10, "POST", "/plugins", map[string]any{"name": "request-termination", "config": map[string]any{"status_code": 503, "message": "Maintenance"}}, 201)
	e.expect(n10, "/test/foo", token, 503, `{"message":"Maintenance"}`)
	trap := e.eventually(n14, "/test/foo", token, 500)
	if trap.body != "An unexpected error occurred\n" || trap.header.Get("Content-Type") != "text/plain; charset=UTF-8" {
		t.Fatalf("0.14.1 trap answer %q %q", trap.body, trap.header.Get("Content-Type"))
	}
	e.admin(n10, "DELETE", "/plugins/"+rt10["id"].(string), nil, 204)
	e.eventually(n14, "/test/foo", token, 200)
	e.expect(n10, "/test/foo", token, 200, "")

	// Trap 2: one written through 0.14.1 is not run by 1.0.3 until a plugin
	// is written through a 1.0.3 node (plugins_map).
	rt14 := e.admin(n14, "POST", "/plugins", map[string]any{"name": "request-termination", "config": map[string]any{"status_code": 503, "message": "Maintenance"}}, 201)
	e.expect(n14, "/test/foo", token, 503, "Maintenance")
	time.Sleep(5 * e.freq) // several polls: the 1.0.3 node has seen the write
	e.expect(n10, "/test/foo", token, 200, "")
	plugins := e.admin(n10, "GET", "/routes/"+route["id"].(string)+"/plugins", nil, 200)
	okta := plugins["data"].([]any)[0].(map[string]any)
	e.admin(n10, "PATCH", "/plugins/"+okta["id"].(string), map[string]any{"enabled": true}, 200)
	e.expect(n10, "/test/foo", token, 503, "Maintenance")
	e.admin(n14, "DELETE", "/plugins/"+rt14["id"].(string), nil, 204)
	e.eventually(n10, "/test/foo", token, 200)
	e.expect(n14, "/test/foo", token, 200, "")

	// finish: the running 0.14.1 node keeps serving but cannot start again.
	if code, out := e.migrate(V103, "finish"); code != 0 {
		t.Fatalf("1.0.3 finish: %d %s", code, out)
	}
	e.expect(n14, "/test/foo", token, 200, "")
	e.expect(n10, "/test/foo", token, 200, "")
	n14.Stop()
	if _, err := e.start(V0141); err == nil {
		t.Fatal("0.14.1 node started after 1.0.3 finish")
	} else {
		var se *StartError
		if !errors.As(err, &se) || !strings.Contains(err.Error(), "does not match this version of Kong") {
			t.Fatalf("0.14.1 start after finish: %v", err)
		}
	}
}

// TestProxyDownFault stops and reopens a node's proxy listener.
func TestProxyDownFault(t *testing.T) {
	e := newStoryEnv(t)
	if code, out := e.migrate(V0141, "up"); code != 0 {
		t.Fatalf("up: %d %s", code, out)
	}
	n, err := e.start(V0141)
	if err != nil {
		t.Fatal(err)
	}
	e.admin(n, "POST", "/services", map[string]any{"name": "s", "url": e.echo}, 201)
	e.admin(n, "POST", "/services/s/routes", map[string]any{"paths": []string{"/s"}}, 201)
	e.expect(n, "/s", "", 200, "")

	// Proxy traffic shows in GET /status, as nginx's counters do.
	total := func() float64 {
		st := e.admin(n, "GET", "/status", nil, 200)
		return st["server"].(map[string]any)["total_requests"].(float64)
	}
	before := total()
	for range 5 {
		e.expect(n, "/s", "", 200, "")
	}
	if d := total() - before; d < 5 {
		t.Fatalf("total_requests grew by %v after 5 proxy requests", d)
	}

	if err := n.SetProxyFault(ProxyFault{FailShare: 1, FailStatus: 503}); err != nil {
		t.Fatal(err)
	}
	e.expect(n, "/s", "", 503, "The upstream server is currently unavailable")
	if f := n.Fault(); f.ProxyFailShare != 1 || f.ProxyFailStatus != 503 {
		t.Fatalf("Fault() %+v", f)
	}
	// The admin listener's control endpoint drives the same settings.
	e.admin(n, "PUT", "/__kongsim/fault", map[string]any{"proxy_fail_share": 1, "proxy_fail_status": 500}, 200)
	e.expect(n, "/s", "", 500, "An unexpected error occurred")
	e.admin(n, "PUT", "/__kongsim/fault", map[string]any{}, 200)
	e.expect(n, "/s", "", 200, "")
	if err := n.SetProxyFault(ProxyFault{FailShare: 2}); err == nil {
		t.Fatal("fail share 2 accepted")
	}
	if err := n.SetProxyFault(ProxyFault{Down: true}); err != nil {
		t.Fatal(err)
	}
	if !n.ProxyDown() {
		t.Fatal("ProxyDown false after Down")
	}
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(n.ProxyURL(), "http://"), time.Second)
	if err == nil {
		c.Close()
		t.Fatal("proxy still accepts connections while down")
	}
	// The Admin API is unaffected.
	e.admin(n, "GET", "/status", nil, 200)
	if err := n.SetProxyFault(ProxyFault{}); err != nil {
		t.Fatal(err)
	}
	e.expect(n, "/s", "", 200, "")
	if n.ProxyDown() {
		t.Fatal("ProxyDown true after clearing")
	}
}
