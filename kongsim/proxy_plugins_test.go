package kongsim

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// proxyFixture is a proxy over a fixed view, with an echo upstream.
type proxyFixture struct {
	url  string
	echo string // host:port of the echo upstream
	view *staticView
	p    *proxy
}

func newProxyFixture(t *testing.T, v Version) *proxyFixture {
	t.Helper()
	echo := httptest.NewServer(echoHandler())
	t.Cleanup(echo.Close)
	f := &proxyFixture{echo: strings.TrimPrefix(echo.URL, "http://"),
		view: &staticView{version: v, services: map[string]Service{}, consumers: map[string]Consumer{}, keys: map[string]KeyAuthCredential{}}}
	f.p = newProxy(v, func(context.Context) (ProxyView, error) { return f.view, nil }, nil, nil)
	srv := httptest.NewServer(f.p)
	t.Cleanup(srv.Close)
	f.url = srv.URL
	return f
}

// addRoute adds a service on the echo upstream and a route with paths.
func (f *proxyFixture) addRoute(id string, paths ...string) {
	host, port, _ := net.SplitHostPort(f.echo)
	var p int
	_, _ = jsonNumberInt(port, &p)
	f.view.services["svc-"+id] = Service{ID: "svc-" + id, Protocol: "http", Host: host, Port: p, Retries: 5,
		ConnectTimeout: 60000, ReadTimeout: 60000, WriteTimeout: 60000}
	f.view.routes = append(f.view.routes, Route{ID: id, Paths: paths, Protocols: []string{"http", "https"},
		StripPath: true, ServiceID: "svc-" + id, CreatedAt: time.Unix(int64(len(f.view.routes)), 0)})
}

func jsonNumberInt(s string, out *int) (int, error) {
	err := json.Unmarshal([]byte(s), out)
	return *out, err
}

func (f *proxyFixture) addAPI(a API) {
	if a.UpstreamURL == "" {
		a.UpstreamURL = "http://" + f.echo
	}
	f.view.apis = append(f.view.apis, a)
}

func (f *proxyFixture) do(t *testing.T, method, path string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, f.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func echoHeaders(t *testing.T, body string) map[string]string {
	t.Helper()
	var echo struct {
		Headers map[string]string `json:"headers"`
	}
	if err := json.Unmarshal([]byte(body), &echo); err != nil {
		t.Fatalf("not an echo body: %q", body)
	}
	return echo.Headers
}

func TestRequestTerminationPerVersion(t *testing.T) {
	nulls := map[string]any{"status_code": json.Number("503"), "message": "Maintenance", "body": nil, "content_type": nil}
	tests := []struct {
		name     string
		v        Version
		cfg      map[string]any
		status   int
		ct       string // "-" means absent
		body     string
		closeCon bool
	}{
		{"0.13.1 message", V0131, map[string]any{"status_code": json.Number("503"), "message": "Maintenance"}, 503, "application/json; charset=utf-8", "{\"message\":\"Maintenance\"}\n", false},
		{"0.14.1 message", V0141, map[string]any{"status_code": json.Number("503"), "message": "Maintenance"}, 503, "application/json; charset=utf-8", "{\"message\":\"Maintenance\"}\n", false},
		{"1.0.3 message", V103, map[string]any{"status_code": json.Number("503"), "message": "Maintenance"}, 503, "application/json; charset=utf-8", `{"message":"Maintenance"}`, false},
		{"1.0.3-written nulls on 0.14.1", V0141, nulls, 500, "text/plain; charset=UTF-8", "An unexpected error occurred\n", true},
		{"1.0.3-written nulls on 1.0.3", V103, nulls, 503, "application/json; charset=utf-8", `{"message":"Maintenance"}`, false},
		{"0.14.1 default text", V0141, map[string]any{"status_code": json.Number("503")}, 503, "application/json; charset=utf-8", "{\"message\":\"Service unavailable\"}\n", false},
		{"0.14.1 no default for 418", V0141, map[string]any{"status_code": json.Number("418")}, 418, "application/json; charset=utf-8", "", false},
		{"0.14.1 no default for 502", V0141, map[string]any{"status_code": json.Number("502")}, 502, "application/json; charset=utf-8", "", false},
		{"1.0.3 default for 502", V103, map[string]any{"status_code": json.Number("502")}, 502, "application/json; charset=utf-8", `{"message":"Bad Gateway"}`, false},
		{"0.14.1 body", V0141, map[string]any{"status_code": json.Number("200"), "body": "<p>down</p>", "content_type": "text/html"}, 200, "text/html", "<p>down</p>", false},
		{"0.13.1 body, default type", V0131, map[string]any{"status_code": json.Number("503"), "body": "down"}, 503, "application/json; charset=utf-8", "down\n", false},
		{"1.0.3 body without type", V103, map[string]any{"status_code": json.Number("503"), "body": "down"}, 503, "-", "down", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newProxyFixture(t, tc.v)
			f.addRoute("r1", "/x")
			f.view.plugins = []Plugin{{ID: "p1", Name: "request-termination", Enabled: true, Config: tc.cfg}}
			resp, body := f.do(t, "GET", "/x/y", nil)
			if resp.StatusCode != tc.status || body != tc.body {
				t.Fatalf("got %d %q, want %d %q", resp.StatusCode, body, tc.status, tc.body)
			}
			ct, has := resp.Header["Content-Type"]
			if tc.ct == "-" {
				if has {
					t.Fatalf("Content-Type %v, want none", ct)
				}
			} else if resp.Header.Get("Content-Type") != tc.ct {
				t.Fatalf("Content-Type %q, want %q", resp.Header.Get("Content-Type"), tc.ct)
			}
			if resp.Close != tc.closeCon {
				t.Fatalf("connection close %v, want %v", resp.Close, tc.closeCon)
			}
			if resp.Header.Get("Server") != "kong/"+string(tc.v) || resp.Header.Get("Via") != "" {
				t.Fatalf("Server %q Via %q", resp.Header.Get("Server"), resp.Header.Get("Via"))
			}
		})
	}
}

func TestPluginPrecedence(t *testing.T) {
	term := func(id, msg string, enabled bool, scope func(*Plugin)) Plugin {
		p := Plugin{ID: id, Name: "request-termination", Enabled: enabled,
			Config: map[string]any{"status_code": json.Number("503"), "message": msg}}
		if scope != nil {
			scope(&p)
		}
		return p
	}
	custom := "c-1"
	alice := "alice"
	tests := []struct {
		name    string
		plugins []Plugin
		apikey  string
		status  int
		message string
	}{
		{"global only", []Plugin{term("g", "global", true, nil)}, "", 503, "global"},
		{"route beats global", []Plugin{term("g", "global", true, nil), term("r", "route", true, func(p *Plugin) { p.RouteID = "r1" })}, "", 503, "route"},
		{"service beats global", []Plugin{term("g", "global", true, nil), term("s", "service", true, func(p *Plugin) { p.ServiceID = "svc-r1" })}, "", 503, "service"},
		{"route beats service", []Plugin{term("s", "service", true, func(p *Plugin) { p.ServiceID = "svc-r1" }), term("r", "route", true, func(p *Plugin) { p.RouteID = "r1" })}, "", 503, "route"},
		{"disabled route falls back to global", []Plugin{term("g", "global", true, nil), term("r", "route", false, func(p *Plugin) { p.RouteID = "r1" })}, "", 503, "global"},
		{"other route's plugin does not apply", []Plugin{term("r", "route", true, func(p *Plugin) { p.RouteID = "r2" })}, "", 200, ""},
		{"consumer plugin after key-auth", []Plugin{
			{ID: "ka", Name: "key-auth", Enabled: true, RouteID: "r1", Config: map[string]any{"key_names": []any{"apikey"}}},
			term("g", "global", true, nil),
			term("c", "consumer", true, func(p *Plugin) { p.ConsumerID = "cons-1" }),
		}, "k1", 503, "consumer"},
		{"key-auth runs before termination", []Plugin{
			{ID: "ka", Name: "key-auth", Enabled: true, RouteID: "r1", Config: map[string]any{}},
			term("g", "global", true, nil),
		}, "", 401, "No API key found in request"},
		{"inert plugin", []Plugin{{ID: "cors", Name: "cors", Enabled: true, Config: map[string]any{}}}, "", 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newProxyFixture(t, V0141)
			f.addRoute("r1", "/x")
			f.addRoute("r2", "/other")
			f.view.consumers["cons-1"] = Consumer{ID: "cons-1", Username: &alice, CustomID: &custom}
			f.view.keys["k1"] = KeyAuthCredential{ID: "cred-1", ConsumerID: "cons-1", Key: "k1"}
			f.view.plugins = tc.plugins
			hdr := map[string]string{}
			if tc.apikey != "" {
				hdr["apikey"] = tc.apikey
			}
			resp, body := f.do(t, "GET", "/x", hdr)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if tc.message != "" {
				var m map[string]string
				_ = json.Unmarshal([]byte(body), &m)
				if m["message"] != tc.message {
					t.Fatalf("message %q, want %q", m["message"], tc.message)
				}
			}
		})
	}
}

func TestKeyAuthVariants(t *testing.T) {
	anonName := "anonymous"
	tests := []struct {
		name    string
		cfg     map[string]any
		path    string
		hdr     map[string]string
		status  int
		checkUp func(t *testing.T, up map[string]string, path string)
	}{
		{"key in query", map[string]any{}, "/x?apikey=k1&y=1", nil, 200, func(t *testing.T, up map[string]string, path string) {
			if up["X-Consumer-Id"] != "cons-1" || up["X-Consumer-Username"] != "alice" {
				t.Fatalf("consumer headers %v", up)
			}
			if !strings.Contains(path, "apikey=k1") {
				t.Fatalf("key hidden without hide_credentials: %s", path)
			}
		}},
		{"hide credentials header", map[string]any{"hide_credentials": true}, "/x", map[string]string{"apikey": "k1"}, 200, func(t *testing.T, up map[string]string, _ string) {
			if _, ok := up["Apikey"]; ok {
				t.Fatalf("apikey forwarded: %v", up)
			}
		}},
		{"hide credentials query", map[string]any{"hide_credentials": true}, "/x?apikey=k1&y=1", nil, 200, func(t *testing.T, _ map[string]string, path string) {
			if strings.Contains(path, "apikey") || !strings.Contains(path, "y=1") {
				t.Fatalf("upstream path %s", path)
			}
		}},
		{"custom key name", map[string]any{"key_names": []any{"x-key"}}, "/x", map[string]string{"X-Key": "k1"}, 200, nil},
		{"wrong key", map[string]any{}, "/x", map[string]string{"apikey": "nope"}, 403, nil},
		{"duplicate key", map[string]any{}, "/x?apikey=k1&apikey=k1", nil, 401, nil},
		{"anonymous", map[string]any{"anonymous": "anon"}, "/x", nil, 200, func(t *testing.T, up map[string]string, _ string) {
			if up["X-Anonymous-Consumer"] != "true" || up["X-Consumer-Id"] != "anon" {
				t.Fatalf("anonymous headers %v", up)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newProxyFixture(t, V103)
			f.addRoute("r1", "/x")
			alice := "alice"
			f.view.consumers["cons-1"] = Consumer{ID: "cons-1", Username: &alice}
			f.view.consumers["anon"] = Consumer{ID: "anon", Username: &anonName}
			f.view.keys["k1"] = KeyAuthCredential{ID: "cred-1", ConsumerID: "cons-1", Key: "k1"}
			f.view.plugins = []Plugin{{ID: "ka", Name: "key-auth", Enabled: true, RouteID: "r1", Config: tc.cfg}}
			resp, body := f.do(t, "GET", tc.path, tc.hdr)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if tc.checkUp != nil {
				var echo struct {
					Path    string            `json:"path"`
					Headers map[string]string `json:"headers"`
				}
				_ = json.Unmarshal([]byte(body), &echo)
				tc.checkUp(t, echo.Headers, echo.Path)
			}
		})
	}
}

func TestOktaAuthThroughProxy(t *testing.T) {
	o := startTestOkta(t)
	other := startTestOkta(t)
	f := newProxyFixture(t, V0131)
	f.addAPI(API{ID: "api-test", Name: "test", URIs: []string{"/test"}, StripURI: true, UpstreamURL: "http://" + f.echo + "/anything"})
	f.view.plugins = []Plugin{{ID: "okta", Name: "okta-auth", Enabled: true, APIID: "api-test", Config: map[string]any{
		"client_id": "cid-1", "client_secret": "s3cret", "authorization_server": o.AuthorizationServer(),
		"api_version": "v1", "check_auth_server": true}}}
	tests := []struct {
		name   string
		auth   string
		status int
	}{
		{"no token", "", 401},
		{"minted token", "Bearer " + o.Mint("alice@example.com", time.Hour), 200},
		{"lowercase bearer", "bearer " + o.Mint("alice@example.com", time.Hour), 200},
		{"expired token", "Bearer " + o.Mint("alice@example.com", -time.Minute), 401},
		{"other server's key", "Bearer " + other.Mint("alice@example.com", time.Hour), 401},
		{"not a JWT", "Bearer abc", 401},
		{"basic auth", "Basic YTpi", 401},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hdr := map[string]string{"OKTA-Injected": "evil"}
			if tc.auth != "" {
				hdr["Authorization"] = tc.auth
			}
			resp, body := f.do(t, "GET", "/test/foo", hdr)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if tc.status == 401 {
				if body != "{\"message\":\"Unauthorized\"}\n" {
					t.Fatalf("body %q", body)
				}
				return
			}
			up := echoHeaders(t, body)
			if up["Okta-Sub"] != "alice@example.com" || up["Okta-Cid"] != o.ClientID() || up["Okta-Scp"] != "openid" {
				t.Fatalf("OKTA headers upstream: %v", up)
			}
			if _, ok := up["Authorization"]; ok {
				t.Fatal("Authorization forwarded upstream")
			}
			if _, ok := up["Okta-Injected"]; ok {
				t.Fatal("client OKTA-* header forwarded upstream")
			}
		})
	}
}

func TestUpstreamFailures(t *testing.T) {
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()
	slow := httptest.NewServer(echoHandler())
	t.Cleanup(slow.Close)
	tests := []struct {
		name   string
		v      Version
		api    API
		path   string
		accept string
		status int
		ct     string
		body   string
	}{
		{"refused 0.14.1", V0141, API{URIs: []string{"/dead"}, UpstreamURL: "http://" + deadAddr, Retries: 2}, "/dead", "",
			502, "text/plain; charset=UTF-8", "An invalid response was received from the upstream server\n"},
		{"refused, JSON wanted", V103, API{}, "/dead", "application/json", 502, "application/json; charset=UTF-8",
			"{\"message\":\"An invalid response was received from the upstream server\"}\n"},
		{"read timeout", V0131, API{URIs: []string{"/slow"}, UpstreamURL: slow.URL, UpstreamReadTimeout: 200}, "/slow?sleep=2", "",
			504, "text/plain; charset=UTF-8", "The upstream server is timing out\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newProxyFixture(t, tc.v)
			if tc.v.Is10() {
				host, port, _ := net.SplitHostPort(deadAddr)
				var p int
				_, _ = jsonNumberInt(port, &p)
				f.view.services["s"] = Service{ID: "s", Protocol: "http", Host: host, Port: p, Retries: 1}
				f.view.routes = []Route{{ID: "r", Paths: []string{"/dead"}, Protocols: []string{"http"}, ServiceID: "s"}}
			} else {
				tc.api.ID, tc.api.Name = "a", "a"
				f.addAPI(tc.api)
			}
			hdr := map[string]string{}
			if tc.accept != "" {
				hdr["Accept"] = tc.accept
			}
			resp, body := f.do(t, "GET", tc.path, hdr)
			if resp.StatusCode != tc.status || body != tc.body || resp.Header.Get("Content-Type") != tc.ct {
				t.Fatalf("got %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
			}
		})
	}
}

func TestProxyFailShareAndDelay(t *testing.T) {
	f := newProxyFixture(t, V0141)
	f.addRoute("r1", "/x")
	var cur atomic.Pointer[Fault]
	cur.Store(&Fault{})
	f.p.fault = func() Fault { return *cur.Load() }
	set := func(fl Fault) { cur.Store(&fl) }

	set(Fault{ProxyFailShare: 1, ProxyFailStatus: 500})
	resp, body := f.do(t, "GET", "/x", nil)
	if resp.StatusCode != 500 || body != "An unexpected error occurred\n" {
		t.Fatalf("fail share 1: %d %q", resp.StatusCode, body)
	}
	set(Fault{ProxyFailShare: 1})
	if resp, _ := f.do(t, "GET", "/x", nil); resp.StatusCode != 502 {
		t.Fatalf("default fail status %d", resp.StatusCode)
	}
	set(Fault{ProxyFailShare: 0.5})
	fails := 0
	for range 400 {
		if resp, _ := f.do(t, "GET", "/x", nil); resp.StatusCode == 502 {
			fails++
		}
	}
	// A loose band: the share is random, the test must not flake.
	if fails < 120 || fails > 280 {
		t.Fatalf("fail share 0.5 failed %d of 400", fails)
	}
	set(Fault{ProxyDelay: 300 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", f.url+"/x", nil)
	if _, err := http.DefaultClient.Do(req); err == nil {
		t.Fatal("a 300ms delay answered within 100ms")
	}
	set(Fault{})
	if resp, _ := f.do(t, "GET", "/x", nil); resp.StatusCode != 200 {
		t.Fatalf("cleared fault: %d", resp.StatusCode)
	}
}

func TestForwardedHeadersTrust(t *testing.T) {
	sent := map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "edge.example", "X-Forwarded-Port": "443",
		"X-Real-IP": "203.0.113.7", "X-Forwarded-For": "198.51.100.1", "Host": "svc.test:8080"}
	tests := []struct {
		name    string
		trusted bool
		want    map[string]string
	}{
		{"untrusted client", false, map[string]string{"X-Forwarded-Proto": "http", "X-Forwarded-Host": "svc.test",
			"X-Real-Ip": "127.0.0.1", "X-Forwarded-For": "198.51.100.1, 127.0.0.1"}},
		{"trusted client", true, map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "edge.example",
			"X-Forwarded-Port": "443", "X-Real-Ip": "203.0.113.7", "X-Forwarded-For": "198.51.100.1, 127.0.0.1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newProxyFixture(t, V0141)
			f.addRoute("r1", "/x")
			if tc.trusted {
				f.p.trusted = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
			}
			resp, body := f.do(t, "GET", "/x", sent)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			up := echoHeaders(t, body)
			for k, v := range tc.want {
				if up[k] != v {
					t.Errorf("upstream %s = %q, want %q", k, up[k], v)
				}
			}
			if !tc.trusted && up["X-Forwarded-Port"] == "443" {
				t.Error("untrusted X-Forwarded-Port passed through")
			}
		})
	}
}
