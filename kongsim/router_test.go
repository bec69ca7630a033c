package kongsim

import (
	"testing"
	"time"
)

func TestRouterMatching(t *testing.T) {
	svc := map[string]Service{"s": {ID: "s", Protocol: "http", Host: "up", Port: 80}}
	route := func(id string, prio int, created int64, hosts, paths, methods []string) Route {
		return Route{ID: id, Hosts: hosts, Paths: paths, Methods: methods, RegexPriority: prio, StripPath: true,
			ServiceID: "s", CreatedAt: time.Unix(created, 0), Protocols: []string{"http", "https"}}
	}
	routes := []Route{
		route("regex-prio", 5, 9, nil, []string{`/p/\d+/x`}, nil),
		route("wild-left", 0, 1, []string{"*.wild.test"}, nil, nil),
		route("wild-right", 0, 2, []string{"wild2.*"}, nil, nil),
		route("plain-host", 0, 3, []string{"Exact.test"}, nil, nil),
		route("prefix-long", 0, 4, nil, []string{"/p/q"}, nil),
		route("prefix-short", 0, 5, nil, []string{"/p"}, nil),
		route("regex-old", 0, 6, nil, []string{`/p/\d+`}, nil),
		route("host-uri", 0, 7, []string{"combo.test"}, []string{"/p"}, nil),
		route("get-only", 0, 8, nil, []string{"/get"}, []string{"GET"}),
		route("no-service", 0, 10, nil, []string{"/orphan"}, nil),
	}
	routes[9].ServiceID = "missing"
	// A 1.0 stream route is not the HTTP router's business (and not an
	// unroutable entity either).
	routes = append(routes, Route{ID: "stream", Protocols: []string{"tcp"}, ServiceID: "s"})
	rt := newRoutesRouter(routes, func(id string) (Service, bool) { s, ok := svc[id]; return s, ok })
	if len(rt.skipped) != 1 {
		t.Fatalf("skipped %v, want the orphan route", rt.skipped)
	}
	tests := []struct {
		method, uri, host string
		want              string // "" for no match
		upstream          string
	}{
		{"GET", "/x", "b.c.wild.test", "wild-left", "/x"},
		{"GET", "/x", "wild.test", "", ""},
		{"GET", "/x", "wild2.example.org:8080", "wild-right", "/x"},
		{"GET", "/x", "x.wild2.example", "", ""},
		{"GET", "/x", "Exact.test", "plain-host", "/x"},
		{"GET", "/x", "exact.test", "", ""},
		{"GET", "/p/q/r", "", "prefix-long", "/r"},
		{"GET", "/px", "", "prefix-short", "/x"},
		{"GET", "/p/7", "", "regex-old", "/"},
		{"GET", "/p/7/x/y", "", "regex-prio", "/y"},
		{"GET", "/p/q", "combo.test", "host-uri", "/q"},
		{"GET", "/get", "", "get-only", "/"},
		{"HEAD", "/get", "", "", ""},
		{"GET", "/orphan", "", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.host+tc.uri, func(t *testing.T) {
			m := rt.find(tc.method, tc.uri, tc.host)
			switch {
			case m == nil && tc.want == "":
			case m == nil:
				t.Fatalf("no match, want %s", tc.want)
			case tc.want == "":
				t.Fatalf("matched %s, want none", m.entry.route.ID)
			case m.entry.route.ID != tc.want || m.upstreamURI != tc.upstream:
				t.Fatalf("matched %s → %s, want %s → %s", m.entry.route.ID, m.upstreamURI, tc.want, tc.upstream)
			}
		})
	}
}

func TestAPIRouterRegexOverridesPrefixHit(t *testing.T) {
	apis := []API{
		{ID: "prefix", URIs: []string{"/users"}, StripURI: true, UpstreamURL: "http://up/pre", CreatedAt: time.UnixMilli(1)},
		{ID: "regex", URIs: []string{`/users/\d+`}, StripURI: true, UpstreamURL: "http://up/re", CreatedAt: time.UnixMilli(2)},
		{ID: "broken", UpstreamURL: "http://up", CreatedAt: time.UnixMilli(3)},
	}
	rt := newAPIRouter(apis)
	if len(rt.skipped) != 1 {
		t.Fatalf("skipped %v, want the API without hosts/uris/methods", rt.skipped)
	}
	for uri, want := range map[string]string{"/users/42/a": "regex", "/users/abc": "prefix"} {
		m := rt.find("GET", uri, "")
		if m == nil || m.entry.api.ID != want {
			t.Fatalf("%s matched %v, want %s", uri, m, want)
		}
	}
	if m := rt.find("GET", "/users/42/a", ""); m.upstreamURI != "/re/a" {
		t.Fatalf("upstream %s", m.upstreamURI)
	}
}
