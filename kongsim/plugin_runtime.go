package kongsim

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// runtimePlugin is a plugin kongsim executes on the proxy path. Every other
// plugin is stored and listed by the Admin API but inert here.
type runtimePlugin struct {
	name     string
	priority int
	// access runs in the access phase; a non-nil response ends the request.
	access func(c *reqCtx, pl *Plugin) *kongResponse
	// headerFilter edits a proxied response's headers.
	headerFilter func(c *reqCtx, pl *Plugin, h http.Header)
}

// runtimePlugins returns the executed plugins in Kong's order: priority
// descending; ties (key-auth and okta-auth, both 1000) by name.
func runtimePlugins() []*runtimePlugin {
	ps := []*runtimePlugin{
		{name: "key-auth", priority: 1000, access: keyAuthAccess},
		{name: "okta-auth", priority: 1000, access: oktaAuthAccess},
		{name: "rate-limiting", priority: 901, access: rateLimitingAccess},
		{name: "request-transformer", priority: 801, access: requestTransformerAccess},
		{name: "response-transformer", priority: 800, headerFilter: responseTransformerHeaders},
		{name: "request-termination", priority: 2, access: requestTerminationAccess},
	}
	sort.SliceStable(ps, func(i, j int) bool {
		if ps[i].priority != ps[j].priority {
			return ps[i].priority > ps[j].priority
		}
		return ps[i].name < ps[j].name
	})
	return ps
}

type pluginKey struct {
	name, route, service, api, consumer string
}

// pluginIndex resolves which configuration of a plugin applies to a request.
type pluginIndex struct {
	ordered []*runtimePlugin // only plugins with at least one enabled row
	byKey   map[pluginKey]*Plugin
}

func newPluginIndex(rows []Plugin) *pluginIndex {
	ix := &pluginIndex{byKey: map[pluginKey]*Plugin{}}
	present := map[string]bool{}
	for i := range rows {
		p := &rows[i]
		if !p.Enabled {
			// A disabled row is skipped and the next less specific
			// configuration applies, as in Kong's plugins iterator.
			continue
		}
		k := pluginKey{p.Name, p.RouteID, p.ServiceID, p.APIID, p.ConsumerID}
		if _, dup := ix.byKey[k]; !dup {
			ix.byKey[k] = p
		}
		present[p.Name] = true
	}
	for _, rp := range runtimePlugins() {
		if present[rp.name] {
			ix.ordered = append(ix.ordered, rp)
		}
	}
	return ix
}

// resolve walks Kong's precedence, most specific first: route+service+
// consumer, route+consumer, service+consumer, api+consumer, route+service,
// consumer, route, service, api, global.
func (ix *pluginIndex) resolve(name string, c *reqCtx) *Plugin {
	route, service, api := c.routeID(), c.serviceID(), c.apiID()
	consumer := ""
	if c.consumer != nil {
		consumer = c.consumer.ID
	}
	try := func(r, s, a, co string) *Plugin {
		return ix.byKey[pluginKey{name, r, s, a, co}]
	}
	type combo struct {
		ok         bool
		r, s, a, c string
	}
	for _, k := range []combo{
		{route != "" && service != "" && consumer != "", route, service, "", consumer},
		{route != "" && consumer != "", route, "", "", consumer},
		{service != "" && consumer != "", "", service, "", consumer},
		{api != "" && consumer != "", "", "", api, consumer},
		{route != "" && service != "", route, service, "", ""},
		{consumer != "", "", "", "", consumer},
		{route != "", route, "", "", ""},
		{service != "", "", service, "", ""},
		{api != "", "", "", api, ""},
		{true, "", "", "", ""},
	} {
		if !k.ok {
			continue
		}
		if p := try(k.r, k.s, k.a, k.c); p != nil {
			return p
		}
	}
	return nil
}

// Config accessors. Values come from the datastore as JSON decoded with
// UseNumber; 1.0-written configs carry explicit nulls, and 0.14-read empty
// arrays may be empty objects.

func cfgString(cfg map[string]any, key string) (string, bool) {
	v, ok := cfg[key]
	if !ok || v == nil {
		return "", false
	}
	s, ok := v.(string)
	return s, ok
}

func cfgBool(cfg map[string]any, key string, def bool) bool {
	if b, ok := cfg[key].(bool); ok {
		return b
	}
	return def
}

// cfgNumber returns a numeric config value.
func cfgNumber(cfg map[string]any, key string) (float64, bool) {
	switch v := cfg[key].(type) {
	case json.Number:
		f, err := v.Float64()
		return f, err == nil
	case float64:
		return v, true
	case int:
		return float64(v), true
	case int64:
		return float64(v), true
	case string:
		f, err := strconv.ParseFloat(v, 64)
		return f, err == nil
	}
	return 0, false
}

func cfgInt(cfg map[string]any, key string, def int) int {
	if f, ok := cfgNumber(cfg, key); ok && !math.IsNaN(f) {
		return int(f)
	}
	return def
}

// cfgStrings reads an array of strings; an empty object counts as empty.
func cfgStrings(cfg map[string]any, key string) []string {
	switch v := cfg[key].(type) {
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			out = append(out, fmt.Sprint(e))
		}
		return out
	case []string:
		return v
	case string:
		if v == "" {
			return nil
		}
		return strings.Split(v, ",")
	}
	return nil
}

func cfgRecord(cfg map[string]any, key string) map[string]any {
	if m, ok := cfg[key].(map[string]any); ok {
		return m
	}
	return nil
}

// splitColonPair splits a transformer "name:value" entry.
func splitColonPair(s string) (string, string, bool) {
	i := strings.IndexByte(s, ':')
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+1:], true
}
