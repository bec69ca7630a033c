package kong

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// demoProxy answers like the seed's demo route: 401 without a token, 200
// with one; /moved redirects (which a probe must not follow).
func demoProxy(t *testing.T, version string) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/moved":
			http.Redirect(w, r, "/test", http.StatusFound)
		case r.URL.Path != "/test" || r.Host != "api.test":
			w.WriteHeader(404)
		case r.Header.Get("Authorization") == "Bearer good":
			w.Write([]byte(`{"ok":true,"via":"` + version + `"}`))
		default:
			w.WriteHeader(401)
			w.Write([]byte(`{"message":"Unauthorized"}`))
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func TestSmoke(t *testing.T) {
	p13, p14 := demoProxy(t, "0.13.1"), demoProxy(t, "0.14.1")
	probes := []Probe{
		{Name: "no token", Path: "/test", Host: "api.test", Want: 401},
		{Name: "with token", Path: "/test", Host: "api.test", Headers: map[string]string{"Authorization": "Bearer good"}, Want: 200},
		{Name: "redirect kept", Path: "/moved", Want: 302, Generation: "0.14.1"},
	}
	gw := Gateway{DatastoreDSN: "postgres://x@127.0.0.1:1/k", Probes: probes, Generations: []GenerationNodes{
		{Version: "0.13.1", Nodes: []NodeOptions{{Name: "old", AdminURL: "http://127.0.0.1:1", ProxyURL: p13.URL}}},
		{Version: "0.14.1", Nodes: []NodeOptions{{Name: "new", AdminURL: "http://127.0.0.1:1", ProxyURL: p14.URL},
			{Name: "down", AdminURL: "http://127.0.0.1:1", ProxyURL: deadURL(t)}}},
	}}
	c := newClient(t, gw)
	ctx := context.Background()
	tests := []struct {
		gen     string
		ok      bool
		facts   int
		missing string
	}{
		{gen: "0.13.1", ok: true, facts: 2},
		{gen: "0.14.1", ok: false, facts: 6, missing: "via down"},
		{gen: "", ok: false, facts: 8, missing: "via down"},
		{gen: "9.9.9", ok: false, missing: "no smoke probes apply"},
	}
	for _, tc := range tests {
		t.Run("gen="+tc.gen, func(t *testing.T) {
			chk, err := c.Smoke(ctx, "gw", stepsGen(tc.gen))
			if err != nil {
				t.Fatal(err)
			}
			if chk.OK != tc.ok || len(chk.Facts) != tc.facts {
				t.Fatalf("ok %v facts %d (%v), missing %q", chk.OK, len(chk.Facts), chk.Facts, chk.Missing)
			}
			if tc.missing != "" && !missingHas(chk, tc.missing) {
				t.Errorf("missing %q lacks %q", chk.Missing, tc.missing)
			}
		})
	}
	// A wrong expectation names what came back.
	gw.Probes = []Probe{{Name: "expects 200 without token", Path: "/test", Host: "api.test", Want: 200}}
	gw.Generations = gw.Generations[:1]
	chk, err := newClient(t, gw).Smoke(ctx, "gw", "")
	if err != nil || chk.OK || !strings.Contains(chk.Missing[0], "got 401, want 200") || !strings.Contains(chk.Missing[0], "Unauthorized") {
		t.Fatalf("%+v %v", chk, err)
	}
}

func TestOptionsValidation(t *testing.T) {
	_, err := New(Options{Gateways: map[string]Gateway{
		"bad": {Generations: []GenerationNodes{{Version: "zero", Nodes: []NodeOptions{{Name: "a", AdminURL: "ftp://x"}, {Name: "a", AdminURL: "http://y"}}}},
			Migrations:  map[string]MigrationCommand{"1.0.3": {}},
			Termination: Termination{Status: 700},
			Probes:      []Probe{{Name: "p", Path: "nope"}}},
	}})
	if err == nil {
		t.Fatal("bad options accepted")
	}
	for _, want := range []string{`version "zero"`, "not an http(s) URL", "name used twice", "no datastore DSN", "empty argv",
		"termination status 700", `path "nope" must start with /`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	c, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Inspect(context.Background(), "nope"); err == nil {
		t.Error("unknown gateway accepted")
	}
	if _, err := ParseHop("3"); err == nil {
		t.Error("hop 3 accepted")
	}
}

func TestRedactSecrets(t *testing.T) {
	got := redactSecrets("dial postgres://kong:p4ssw0rd@db:5432/kong failed, token tok-123456", "postgres://kong:p4ssw0rd@db:5432/kong", "tok-123456")
	if strings.Contains(got, "p4ssw0rd") || strings.Contains(got, "tok-123456") {
		t.Fatalf("%q", got)
	}
	if got := redactSecrets("password=abc123 host=x", "host=x password=abc123"); strings.Contains(got, "abc123") {
		t.Fatalf("%q", got)
	}
}

func TestBodyMessage(t *testing.T) {
	for body, want := range map[string]string{
		`{"message":"Down for the upgrade\/maintenance"}`: "Down for the upgrade/maintenance",
		`{"message":"Maintenance"}`:                       "Maintenance",
		`An unexpected error occurred`:                    "",
	} {
		if got := bodyMessage(body); got != want {
			t.Errorf("%s: %q, want %q", body, got, want)
		}
	}
}
