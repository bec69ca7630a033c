package kongsim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// Helpers shared by the proxy replay tests: recorded exchanges, and an
// in-memory entity store fed with the Admin API responses the recording
// got, so the proxy sees exactly the recorded entities (ids included).

const fixturesRoot = "/work/shared/kong-fixtures"

func fixturesDir(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("KONG_FIXTURES"); d != "" {
		return d
	}
	if _, err := os.Stat(fixturesRoot); err != nil {
		t.Skipf("kong fixtures not found at %s (set KONG_FIXTURES)", fixturesRoot)
	}
	return fixturesRoot
}

type exchange struct {
	Method         string            `json:"method"`
	Path           string            `json:"path"`
	RequestBody    json.RawMessage   `json:"request_body"`
	RequestHeaders map[string]string `json:"request_headers"`
	Status         int               `json:"status"`
	Headers        map[string]string `json:"headers"`
	Body           json.RawMessage   `json:"body"`
}

func loadExchange(t testing.TB, path string) *exchange {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read fixture: %v", err)
	}
	var ex exchange
	if err := json.Unmarshal(b, &ex); err != nil {
		t.Fatalf("parse fixture %s: %v", path, err)
	}
	return &ex
}

// entityStore is the datastore of the replay: entities as the Admin API
// returned them.
type entityStore struct {
	apis      map[string]API
	services  map[string]Service
	routes    map[string]Route
	plugins   map[string]Plugin
	consumers map[string]Consumer
	creds     map[string]KeyAuthCredential
}

func newEntityStore() *entityStore {
	return &entityStore{apis: map[string]API{}, services: map[string]Service{}, routes: map[string]Route{},
		plugins: map[string]Plugin{}, consumers: map[string]Consumer{}, creds: map[string]KeyAuthCredential{}}
}

func decodeUseNumber(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	return d.Decode(v)
}

func jStr(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

func jStrPtr(m map[string]any, k string) *string {
	if s, ok := m[k].(string); ok {
		return &s
	}
	return nil
}

func jInt(m map[string]any, k string) int {
	if n, ok := m[k].(json.Number); ok {
		i, _ := n.Int64()
		return int(i)
	}
	return 0
}

func jBool(m map[string]any, k string) bool {
	b, _ := m[k].(bool)
	return b
}

func jStrings(m map[string]any, k string) []string {
	a, ok := m[k].([]any)
	if !ok {
		return nil
	}
	out := make([]string, 0, len(a))
	for _, e := range a {
		out = append(out, fmt.Sprint(e))
	}
	return out
}

// jTime reads created_at: milliseconds (old DAO) or seconds (new DAO).
func jTime(m map[string]any, k string) time.Time {
	n, ok := m[k].(json.Number)
	if !ok {
		return time.Time{}
	}
	f, _ := n.Float64()
	if f > 1e11 {
		return time.UnixMilli(int64(f))
	}
	return time.Unix(int64(f), 0)
}

func jForeign(m map[string]any, nested, flat string) string {
	if s := jStr(m, flat); s != "" {
		return s
	}
	if f, ok := m[nested].(map[string]any); ok {
		return jStr(f, "id")
	}
	return ""
}

// apply feeds one successful Admin exchange into the store.
func (s *entityStore) apply(t testing.TB, ex *exchange) {
	t.Helper()
	if ex.Status >= 300 || ex.Method == "GET" {
		return
	}
	path := strings.SplitN(ex.Path, "?", 2)[0]
	parts := strings.Split(strings.Trim(path, "/"), "/")
	if ex.Method == "DELETE" {
		s.delete(parts)
		return
	}
	var body map[string]any
	if err := decodeUseNumber(ex.Body, &body); err != nil {
		t.Fatalf("admin body of %s %s: %v", ex.Method, ex.Path, err)
	}
	last := parts[len(parts)-1]
	switch {
	case parts[0] == "apis" && len(parts) <= 2:
		s.addAPI(body)
	case last == "plugins" || parts[0] == "plugins":
		s.addPlugin(body)
	case last == "key-auth":
		s.creds[jStr(body, "id")] = KeyAuthCredential{ID: jStr(body, "id"), ConsumerID: jForeign(body, "consumer", "consumer_id"),
			Key: jStr(body, "key"), CreatedAt: jTime(body, "created_at")}
	case last == "routes" || parts[0] == "routes":
		s.addRoute(body)
	case parts[0] == "services":
		s.addService(body)
	case parts[0] == "consumers":
		s.consumers[jStr(body, "id")] = Consumer{ID: jStr(body, "id"), Username: jStrPtr(body, "username"),
			CustomID: jStrPtr(body, "custom_id"), CreatedAt: jTime(body, "created_at")}
	default:
		t.Fatalf("replay: cannot apply %s %s", ex.Method, ex.Path)
	}
}

func (s *entityStore) addAPI(b map[string]any) {
	s.apis[jStr(b, "id")] = API{
		ID: jStr(b, "id"), Name: jStr(b, "name"), CreatedAt: jTime(b, "created_at"),
		Hosts: jStrings(b, "hosts"), URIs: jStrings(b, "uris"), Methods: jStrings(b, "methods"),
		UpstreamURL: jStr(b, "upstream_url"), StripURI: jBool(b, "strip_uri"), PreserveHost: jBool(b, "preserve_host"),
		Retries: jInt(b, "retries"), UpstreamConnectTimeout: jInt(b, "upstream_connect_timeout"),
		UpstreamSendTimeout: jInt(b, "upstream_send_timeout"), UpstreamReadTimeout: jInt(b, "upstream_read_timeout"),
		HTTPSOnly: jBool(b, "https_only"), HTTPIfTerminated: jBool(b, "http_if_terminated"),
	}
}

func (s *entityStore) addService(b map[string]any) {
	s.services[jStr(b, "id")] = Service{
		ID: jStr(b, "id"), Name: jStrPtr(b, "name"), CreatedAt: jTime(b, "created_at"), Retries: jInt(b, "retries"),
		Protocol: jStr(b, "protocol"), Host: jStr(b, "host"), Port: jInt(b, "port"), Path: jStrPtr(b, "path"),
		ConnectTimeout: jInt(b, "connect_timeout"), WriteTimeout: jInt(b, "write_timeout"), ReadTimeout: jInt(b, "read_timeout"),
	}
}

func (s *entityStore) addRoute(b map[string]any) {
	s.routes[jStr(b, "id")] = Route{
		ID: jStr(b, "id"), Name: jStrPtr(b, "name"), CreatedAt: jTime(b, "created_at"),
		Protocols: jStrings(b, "protocols"), Methods: jStrings(b, "methods"), Hosts: jStrings(b, "hosts"),
		Paths: jStrings(b, "paths"), RegexPriority: jInt(b, "regex_priority"), StripPath: jBool(b, "strip_path"),
		PreserveHost: jBool(b, "preserve_host"), ServiceID: jForeign(b, "service", "service_id"),
	}
}

func (s *entityStore) addPlugin(b map[string]any) {
	cfg, _ := b["config"].(map[string]any)
	enabled := true
	if e, ok := b["enabled"].(bool); ok {
		enabled = e
	}
	s.plugins[jStr(b, "id")] = Plugin{
		ID: jStr(b, "id"), Name: jStr(b, "name"), CreatedAt: jTime(b, "created_at"), Config: cfg, Enabled: enabled,
		APIID: jStr(b, "api_id"), ServiceID: jForeign(b, "service", "service_id"), RouteID: jForeign(b, "route", "route_id"),
		ConsumerID: jForeign(b, "consumer", "consumer_id"), RunOn: jStr(b, "run_on"),
	}
}

func (s *entityStore) delete(parts []string) {
	key := parts[len(parts)-1]
	switch parts[0] {
	case "apis":
		for id, a := range s.apis {
			if id == key || a.Name == key {
				delete(s.apis, id)
				for pid, p := range s.plugins {
					if p.APIID == id {
						delete(s.plugins, pid) // ON DELETE CASCADE
					}
				}
			}
		}
	case "services":
		for id, sv := range s.services {
			if id == key || (sv.Name != nil && *sv.Name == key) {
				delete(s.services, id)
			}
		}
	case "routes":
		for id, r := range s.routes {
			if id == key || (r.Name != nil && *r.Name == key) {
				delete(s.routes, id)
			}
		}
	case "plugins":
		delete(s.plugins, key)
	}
}

// view returns an immutable ProxyView of the store for a node of version v.
// pluginNames, when non-nil, is a 1.0 node's plugins_map: names outside it
// are not run.
func (s *entityStore) view(v Version, pluginNames map[string]bool) *staticView {
	sv := &staticView{version: v, services: map[string]Service{}, consumers: map[string]Consumer{}, keys: map[string]KeyAuthCredential{}}
	if !v.Is10() {
		for _, a := range s.apis {
			sv.apis = append(sv.apis, a)
		}
		sort.SliceStable(sv.apis, func(i, j int) bool { return sv.apis[i].CreatedAt.Before(sv.apis[j].CreatedAt) })
	}
	for _, r := range s.routes {
		sv.routes = append(sv.routes, r)
	}
	sort.SliceStable(sv.routes, func(i, j int) bool {
		a, b := sv.routes[i], sv.routes[j]
		if a.RegexPriority != b.RegexPriority {
			return a.RegexPriority > b.RegexPriority
		}
		if !a.CreatedAt.Equal(b.CreatedAt) {
			return a.CreatedAt.Before(b.CreatedAt)
		}
		return a.ID < b.ID
	})
	for id, x := range s.services {
		sv.services[id] = x
	}
	for _, p := range s.plugins {
		if pluginNames != nil && !pluginNames[p.Name] {
			continue
		}
		sv.plugins = append(sv.plugins, p)
	}
	sort.Slice(sv.plugins, func(i, j int) bool { return sv.plugins[i].ID < sv.plugins[j].ID })
	for id, c := range s.consumers {
		sv.consumers[id] = c
	}
	for _, k := range s.creds {
		sv.keys[k.Key] = k
	}
	return sv
}

func (s *entityStore) pluginNames() map[string]bool {
	m := map[string]bool{}
	for _, p := range s.plugins {
		m[p.Name] = true
	}
	return m
}

type staticView struct {
	version   Version
	apis      []API
	routes    []Route
	services  map[string]Service
	plugins   []Plugin
	consumers map[string]Consumer
	keys      map[string]KeyAuthCredential
}

func (v *staticView) Version() Version { return v.version }
func (v *staticView) APIs() []API      { return v.apis }
func (v *staticView) Routes() []Route  { return v.routes }
func (v *staticView) Service(id string) (Service, bool) {
	s, ok := v.services[id]
	return s, ok
}
func (v *staticView) Plugins() []Plugin { return v.plugins }
func (v *staticView) Consumer(id string) (Consumer, bool) {
	c, ok := v.consumers[id]
	return c, ok
}
func (v *staticView) ConsumerByKey(key string) (KeyAuthCredential, Consumer, bool) {
	k, ok := v.keys[key]
	if !ok {
		return KeyAuthCredential{}, Consumer{}, false
	}
	c, ok := v.consumers[k.ConsumerID]
	return k, c, ok
}
func (v *staticView) PluginLoaded(string) bool { return true }

// sortedFixtureFiles lists dir/*.json in name order.
func sortedFixtureFiles(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(m)
	return m
}

func readAllString(r io.Reader) string {
	b, _ := io.ReadAll(r)
	return string(b)
}
