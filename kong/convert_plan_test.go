package kong

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
)

type exchange struct {
	Method      string          `json:"method"`
	Path        string          `json:"path"`
	RequestBody json.RawMessage `json:"request_body"`
	Status      int             `json:"status"`
	Body        json.RawMessage `json:"body"`
}

func readExchange(t *testing.T, path string) exchange {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var e exchange
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return e
}

// TestPlanMatchesRecordedConversions maps each recorded API and compares
// the Service, Route and plugin bodies with the ones a real 0.14.1 accepted
// in the hand conversion whose proxy answers matched the API's
// (conversion/README.md).
func TestPlanMatchesRecordedConversions(t *testing.T) {
	root := fixtureDir(t, "conversion")
	dirs, _ := filepath.Glob(filepath.Join(root, "[0-2]*"))
	if len(dirs) < 15 {
		t.Fatalf("only %d conversion folders", len(dirs))
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			var api API
			if err := json.Unmarshal(readExchange(t, filepath.Join(dir, "api.json")).Body, &api); err != nil {
				t.Fatal(err)
			}
			var plugins []plugin
			var wantPlugins []map[string]any
			var wantService, wantRoute map[string]any
			files, _ := filepath.Glob(filepath.Join(dir, "convert", "*.json"))
			for _, f := range files {
				e := readExchange(t, f)
				switch {
				case e.Method == "GET" && strings.HasPrefix(e.Path, "/plugins?api_id=") && wantService == nil:
					var page oldPage[plugin]
					if err := json.Unmarshal(e.Body, &page); err != nil {
						t.Fatal(err)
					}
					plugins = page.Data
				case e.Method == "POST" && e.Path == "/services" && e.Status == 201:
					json.Unmarshal(e.RequestBody, &wantService)
				case e.Method == "POST" && strings.HasSuffix(e.Path, "/routes") && e.Status == 201:
					json.Unmarshal(e.RequestBody, &wantRoute)
				case e.Method == "POST" && strings.HasSuffix(e.Path, "/plugins") && e.Status == 201:
					var m map[string]any
					json.Unmarshal(e.RequestBody, &m)
					wantPlugins = append(wantPlugins, m)
				}
			}
			if wantService == nil || wantRoute == nil {
				t.Fatal("recording has no service or route creation")
			}
			p := makePlan([]API{api}, plugins, nil)
			if len(p.Items) != 1 || p.Items[0].Skip != "" {
				t.Fatalf("plan: %+v", p)
			}
			it := p.Items[0]
			gotService := roundTrip(t, it.Service)
			if !reflect.DeepEqual(gotService, wantService) {
				t.Errorf("service\n got %v\nwant %v", gotService, wantService)
			}
			gotRoute := roundTrip(t, it.Route)
			delete(gotRoute, "regex_priority") // not set by hand: 0 either way
			if !reflect.DeepEqual(gotRoute, wantRoute) {
				t.Errorf("route\n got %v\nwant %v", gotRoute, wantRoute)
			}
			if len(it.Plugins) != len(wantPlugins) {
				t.Fatalf("plugins %d, want %d", len(it.Plugins), len(wantPlugins))
			}
			for i, pl := range it.Plugins {
				var cfg any
				json.Unmarshal(pl.Config, &cfg)
				if pl.Name != wantPlugins[i]["name"] || !reflect.DeepEqual(cfg, wantPlugins[i]["config"]) {
					t.Errorf("plugin %d: %s %v, want %v", i, pl.Name, cfg, wantPlugins[i])
				}
			}
			if it.Probe == nil {
				t.Errorf("no probe: %s", it.NoProbe)
			}
		})
	}
}

func roundTrip(t *testing.T, v any) map[string]any {
	t.Helper()
	b, _ := json.Marshal(v)
	var m map[string]any
	json.Unmarshal(b, &m)
	return m
}

func ip(v int) *int { return &v }

func TestPlanProblemsAndOrder(t *testing.T) {
	apis := []API{
		{Name: "outer", URIs: []string{"/nest"}, UpstreamURL: "http://u/outer", CreatedAt: 1},
		{Name: "inner", URIs: []string{"/nest/inner"}, UpstreamURL: "http://u/inner", CreatedAt: 2},
		{Name: "get-all", Methods: []string{"GET"}, UpstreamURL: "http://u", CreatedAt: 3},
		{Name: "rx-broad", URIs: []string{`/users/\d+`}, UpstreamURL: "http://u/u", CreatedAt: 4},
		{Name: "rx-narrow", URIs: []string{`/users/\d+/profile`}, UpstreamURL: "http://u/u", CreatedAt: 5},
		{Name: "secure", Hosts: []string{"secure.test"}, URIs: []string{"/s"}, HTTPSOnly: true, UpstreamURL: "https://u", CreatedAt: 6},
		{Name: "terminated", URIs: []string{"/t"}, HTTPSOnly: true, HTTPIfTerminated: true, UpstreamURL: "https://u", CreatedAt: 7},
		{Name: "dead", UpstreamURL: "http://u", CreatedAt: 8}, // PATCHed to no rules: unroutable
		{Name: "slow", URIs: []string{"/slow"}, UpstreamURL: "http://u:8080", UpstreamReadTimeout: ip(2147483647), CreatedAt: 9},
		{Name: "taken", URIs: []string{"/taken"}, UpstreamURL: "http://u", CreatedAt: 10},
		{Name: "same-a", URIs: []string{"/same"}, UpstreamURL: "http://u", CreatedAt: 11},
		{Name: "same-b", URIs: []string{"/same"}, UpstreamURL: "http://u", CreatedAt: 12},
	}
	p := makePlan(apis, nil, map[string]bool{"taken": true})
	by := map[string]*planItem{}
	for _, it := range p.Items {
		by[it.API.Name] = it
	}
	problems := strings.Join(p.Problems, "\n")
	for _, want := range []string{"API dead cannot be converted: no hosts, uris or methods", `API taken cannot be converted: a Service named "taken"`} {
		if !strings.Contains(problems, want) {
			t.Errorf("problems lack %q:\n%s", want, problems)
		}
	}
	if by["inner"].Level >= by["outer"].Level {
		t.Errorf("inner (level %d) must go before outer (level %d)", by["inner"].Level, by["outer"].Level)
	}
	for _, name := range []string{"outer", "inner", "rx-broad", "rx-narrow", "slow", "same-a", "same-b"} {
		if by["get-all"].Level <= by[name].Level {
			t.Errorf("methods-only get-all (level %d) must go after %s (level %d)", by["get-all"].Level, name, by[name].Level)
		}
	}
	if by["rx-broad"].Route.RegexPriority <= by["rx-narrow"].Route.RegexPriority {
		t.Errorf("older regex must keep priority: broad %d narrow %d", by["rx-broad"].Route.RegexPriority, by["rx-narrow"].Route.RegexPriority)
	}
	if by["rx-narrow"].Level <= by["rx-broad"].Level {
		t.Errorf("the older regex API wins today, so it goes first")
	}
	if by["rx-narrow"].Probe == nil || by["rx-narrow"].Probe.Path != "/users/1/profile" {
		t.Errorf("regex probe = %+v (%s)", by["rx-narrow"].Probe, by["rx-narrow"].NoProbe)
	}
	if !hasWarning(by["secure"], "slightly broader") || hasWarning(by["terminated"], "slightly broader") {
		t.Errorf("http_if_terminated warnings: secure %v, terminated %v", by["secure"].Warnings, by["terminated"].Warnings)
	}
	if !slices.Equal(by["secure"].Route.Protocols, []string{"https"}) || by["secure"].Service.Port != 443 {
		t.Errorf("secure: %+v %+v", by["secure"].Route, by["secure"].Service)
	}
	if by["slow"].Service.ReadTimeout != 2147483646 || !hasWarning(by["slow"], "lowered to 2147483646") || by["slow"].Service.Port != 8080 {
		t.Errorf("slow: %+v %v", by["slow"].Service, by["slow"].Warnings)
	}
	if !hasWarning(by["same-a"], "equally") {
		t.Errorf("same-a/same-b tie not flagged: %v", by["same-a"].Warnings)
	}
	pub := p.public()
	if len(pub.Items) != len(apis) {
		t.Fatalf("public plan has %d items", len(pub.Items))
	}
	levels := []int{}
	for _, it := range sortedItems(p.Items) {
		levels = append(levels, it.Level)
	}
	if !sort.IntsAreSorted(levels) {
		t.Errorf("items not in level order: %v", levels)
	}
}

func hasWarning(it *planItem, sub string) bool {
	for _, w := range it.Warnings {
		if strings.Contains(w, sub) {
			return true
		}
	}
	return false
}

func TestPlanScalesToTenThousand(t *testing.T) {
	var apis []API
	for i := 0; i < 10000; i++ {
		apis = append(apis, API{Name: "bench-" + itoa(i), URIs: []string{"/bench/" + itoa(i)}, UpstreamURL: "http://127.0.0.1:1/x", CreatedAt: int64(i)})
	}
	p := makePlan(apis, nil, nil)
	if len(p.Problems) != 0 {
		t.Fatalf("problems: %v", p.Problems[:1])
	}
	// /bench/1 is a prefix of /bench/10 … /bench/19, /bench/100 …: those
	// longer ones win today and go first.
	by := map[string]*planItem{}
	for _, it := range p.Items {
		by[it.API.Name] = it
	}
	if by["bench-1"].Level <= by["bench-10"].Level || by["bench-10"].Level <= by["bench-100"].Level {
		t.Errorf("levels: 1=%d 10=%d 100=%d", by["bench-1"].Level, by["bench-10"].Level, by["bench-100"].Level)
	}
}

func itoa(i int) string { return strings.TrimSpace(strings.Replace(jsonInt(i), "\n", "", -1)) }

func jsonInt(i int) string { b, _ := json.Marshal(i); return string(b) }
