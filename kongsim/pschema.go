package kongsim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"sync"
)

// cfgField is one plugin config field. typ: string, number (0.x), integer
// (1.0), boolean, array, record.
type cfgField struct {
	name    string
	typ     string
	def     any
	oneOf   []string
	between []int
	req     bool
	fields  []cfgField
}

// pluginSchema is the part of a plugin's schema kongsim validates.
type pluginSchema struct {
	fields []cfgField
	// check is the self_check / entity check; it returns Kong's message.
	check func(v Version, cfg map[string]any) string
}

func arr(name string) cfgField { return cfgField{name: name, typ: "array", def: []any{}} }

func transformerSchema(keys ...string) []cfgField {
	var out []cfgField
	for _, k := range keys {
		out = append(out, arr(k))
	}
	return out
}

// pluginSchemas returns the schemas kongsim validates for version v. Plugins
// not listed are stored with the config as given (inert).
func pluginSchemas(v Version) map[string]pluginSchema {
	num := "number"
	if v.Is10() {
		num = "integer"
	}
	anonDef := any("")
	if v.Is10() {
		anonDef = nil
	}
	rl := []cfgField{{name: "second", typ: "number"}, {name: "minute", typ: "number"}, {name: "hour", typ: "number"},
		{name: "day", typ: "number"}, {name: "month", typ: "number"}, {name: "year", typ: "number"},
		{name: "limit_by", typ: "string", def: "consumer", oneOf: []string{"consumer", "credential", "ip"}},
		{name: "policy", typ: "string", def: "cluster", oneOf: []string{"local", "cluster", "redis"}},
		{name: "fault_tolerant", typ: "boolean", def: true},
		{name: "redis_host", typ: "string"}, {name: "redis_port", typ: num, def: json.Number("6379")},
		{name: "redis_password", typ: "string"}, {name: "redis_timeout", typ: num, def: json.Number("2000")},
		{name: "redis_database", typ: num, def: json.Number("0")},
		{name: "hide_client_headers", typ: "boolean", def: false}}
	rtKeys := []string{"remove", "replace", "add", "append"}
	var rt []cfgField
	for _, k := range rtKeys {
		rt = append(rt, cfgField{name: k, typ: "record", fields: transformerSchema("json", "headers")})
	}
	var reqT []cfgField
	reqT = append(reqT, cfgField{name: "http_method", typ: "string"})
	for _, k := range []string{"remove", "rename", "replace", "add", "append"} {
		reqT = append(reqT, cfgField{name: k, typ: "record", fields: transformerSchema("body", "headers", "querystring")})
	}
	return map[string]pluginSchema{
		"request-termination": {
			fields: []cfgField{{name: "status_code", typ: num, def: json.Number("503"), between: []int{100, 599}},
				{name: "message", typ: "string"}, {name: "content_type", typ: "string"}, {name: "body", typ: "string"}},
			check: func(v Version, cfg map[string]any) string {
				set := func(k string) bool {
					s, ok := cfg[k].(string)
					if v.Is10() {
						return ok && s != ""
					}
					return cfg[k] != nil && (ok || cfg[k] != nil)
				}
				if !v.Is10() {
					if n, ok := toFloat(cfg["status_code"]); ok && (n < 100 || n > 599) {
						return "status_code must be between 100 .. 599"
					}
				}
				if set("message") && (set("content_type") || set("body")) {
					return "message cannot be used with content_type or body"
				}
				if set("content_type") && !set("body") {
					return "content_type requires a body"
				}
				return ""
			},
		},
		"key-auth": {fields: []cfgField{{name: "key_names", typ: "array", def: []any{"apikey"}},
			{name: "hide_credentials", typ: "boolean", def: false}, {name: "anonymous", typ: "string", def: anonDef},
			{name: "key_in_body", typ: "boolean", def: false}, {name: "run_on_preflight", typ: "boolean", def: true}}},
		"rate-limiting": {fields: rl, check: func(v Version, cfg map[string]any) string {
			for _, k := range []string{"second", "minute", "hour", "day", "month", "year"} {
				if cfg[k] != nil {
					return ""
				}
			}
			return "You need to set at least one limit: second, minute, hour, day, month, year"
		}},
		"response-transformer": {fields: rt},
		"cors": {fields: []cfgField{arr("origins"), arr("headers"), arr("exposed_headers"),
			{name: "methods", typ: "array", def: []any{"GET", "HEAD", "PUT", "PATCH", "POST"}},
			{name: "max_age", typ: "number"}, {name: "credentials", typ: "boolean", def: false},
			{name: "preflight_continue", typ: "boolean", def: false}}},
		"acl": {fields: []cfgField{{name: "whitelist", typ: "array"}, {name: "blacklist", typ: "array"},
			{name: "hide_groups_header", typ: "boolean", def: false}},
			check: func(v Version, cfg map[string]any) string {
				w, _ := cfg["whitelist"].([]any)
				b, _ := cfg["blacklist"].([]any)
				switch {
				case len(w) > 0 && len(b) > 0:
					if v.Is10() {
						return "only one of these fields must be non-empty: 'config.whitelist', 'config.blacklist'"
					}
					return "You cannot set both a whitelist and a blacklist"
				case len(w) == 0 && len(b) == 0:
					if v.Is10() {
						return "at least one of these fields must be non-empty: 'config.whitelist', 'config.blacklist'"
					}
					return "You must set at least a whitelist or blacklist"
				}
				return ""
			}},
		"request-transformer": {fields: reqT},
		"okta-auth": {fields: []cfgField{{name: "client_id", typ: "string", req: true},
			{name: "client_secret", typ: "string", req: true}, {name: "authorization_server", typ: "string", req: true},
			{name: "api_version", typ: "string", def: "v1"}, {name: "check_auth_server", typ: "boolean", def: true}}},
	}
}

var (
	selfChecksMu sync.RWMutex
	selfChecks   = map[string]func(ctx context.Context, v Version, cfg map[string]any) string{}
)

// RegisterConfigCheck adds a plugin config check that needs the outside
// world (okta-auth's introspection call). It returns Kong's message, or ""
// when the config is acceptable.
func RegisterConfigCheck(name string, fn func(ctx context.Context, v Version, cfg map[string]any) string) {
	selfChecksMu.Lock()
	defer selfChecksMu.Unlock()
	selfChecks[name] = fn
}

func toFloat(v any) (float64, bool) {
	switch t := v.(type) {
	case json.Number:
		f, err := t.Float64()
		return f, err == nil
	case float64:
		return t, true
	case int:
		return float64(t), true
	case string:
		f, err := strconv.ParseFloat(t, 64)
		return f, err == nil
	}
	return 0, false
}

// cfgErrors collects config field errors: 0.x keys them "config.<f>", 1.0
// nests them under "config".
type cfgErrors map[string]any

// validateConfig checks and normalises a config for version v: 0.x fills
// defaults, 1.0 also writes null for unset fields. form tells that string
// values came from a form body.
func validateConfig(v Version, s pluginSchema, in map[string]any, form bool, patch map[string]any) (map[string]any, cfgErrors) {
	out, errs := validateFields(v, s.fields, in, form, true)
	if len(errs) > 0 {
		return nil, errs
	}
	if s.check != nil {
		if msg := s.check(v, out); msg != "" {
			return nil, cfgErrors{"": msg}
		}
	}
	return out, nil
}

func validateFields(v Version, fields []cfgField, in map[string]any, form, top bool) (map[string]any, cfgErrors) {
	out := map[string]any{}
	errs := cfgErrors{}
	known := map[string]bool{}
	for _, f := range fields {
		known[f.name] = true
		val, present := in[f.name]
		if !present || val == nil {
			if f.req {
				if v.Is10() {
					errs[f.name] = "required field missing"
				} else {
					errs[f.name] = f.name + " is required"
				}
				continue
			}
			switch {
			case f.typ == "record":
				sub, e := validateFields(v, f.fields, map[string]any{}, form, false)
				for k, m := range e {
					errs[f.name+"."+k] = m
				}
				out[f.name] = sub
			case f.def != nil:
				out[f.name] = cloneJSON(f.def)
			case v.Is10() || (present && val == nil):
				out[f.name] = nil
			}
			continue
		}
		nv, msg := coerce(v, f, val, form)
		if msg != "" {
			errs[f.name] = msg
			continue
		}
		if f.typ == "record" {
			sub, e := validateFields(v, f.fields, nv.(map[string]any), form, false)
			for k, m := range e {
				errs[f.name+"."+k] = m
			}
			nv = sub
		}
		out[f.name] = nv
	}
	for k := range in {
		if !known[k] {
			if v.Is10() {
				errs[k] = "unknown field"
			} else {
				errs[k] = k + " is an unknown field"
			}
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return out, nil
}

func coerce(v Version, f cfgField, val any, form bool) (any, string) {
	switch f.typ {
	case "string":
		if s, ok := val.(string); ok {
			if len(f.oneOf) > 0 && !contains(f.oneOf, s) {
				if v.Is10() {
					return nil, "expected one of: " + joinComma(f.oneOf)
				}
				return nil, fmt.Sprintf("\"%s\" is not allowed. Allowed values are: \"%s\"", s, joinQuoted(f.oneOf))
			}
			return s, ""
		}
		if v.Is10() {
			return nil, "expected a string"
		}
		return nil, f.name + " is not a string"
	case "number", "integer":
		fl, ok := toFloat(val)
		if _, isStr := val.(string); isStr && !form {
			ok = false
		}
		if !ok {
			if v.Is10() {
				if f.typ == "integer" {
					return nil, "expected an integer"
				}
				return nil, "expected a number"
			}
			return nil, f.name + " is not a number"
		}
		if f.typ == "integer" && fl != math.Trunc(fl) {
			return nil, "expected an integer"
		}
		if v.Is10() && len(f.between) == 2 && (fl < float64(f.between[0]) || fl > float64(f.between[1])) {
			return nil, fmt.Sprintf("value should be between %d and %d", f.between[0], f.between[1])
		}
		return json.Number(strconv.FormatFloat(fl, 'f', -1, 64)), ""
	case "boolean":
		switch t := val.(type) {
		case bool:
			return t, ""
		case string:
			if form && (t == "true" || t == "false") {
				return t == "true", ""
			}
		}
		if v.Is10() {
			return nil, "expected a boolean"
		}
		return nil, f.name + " is not a boolean"
	case "array":
		switch t := val.(type) {
		case []any:
			return t, ""
		case string:
			if !v.Is10() {
				return splitCSVAny(t), ""
			}
			return []any{t}, ""
		case map[string]any:
			if len(t) == 0 {
				return []any{}, ""
			}
		}
		if v.Is10() {
			return nil, "expected an array"
		}
		return nil, f.name + " is not an array"
	case "record":
		if m, ok := val.(map[string]any); ok {
			return m, ""
		}
		if v.Is10() {
			return nil, "expected a record"
		}
		return nil, f.name + " is not a table"
	}
	return val, ""
}

func splitCSVAny(s string) []any {
	var out []any
	for _, p := range splitList(s) {
		out = append(out, p)
	}
	if out == nil {
		out = []any{}
	}
	return out
}

func joinComma(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += ", "
		}
		out += x
	}
	return out
}

func joinQuoted(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += "\", \""
		}
		out += x
	}
	return out
}

func cloneJSON(v any) any {
	b, _ := json.Marshal(v)
	out, _ := decodeAny(b)
	return out
}

func decodeAny(b []byte) (any, error) {
	var out any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	err := dec.Decode(&out)
	return out, err
}

// fillNulls adds null for every schema field missing from a stored config
// (1.0 reads rows written by 0.x this way).
func fillNulls(fields []cfgField, cfg map[string]any) map[string]any {
	out := make(map[string]any, len(cfg)+len(fields))
	for k, v := range cfg {
		out[k] = v
	}
	for _, f := range fields {
		val, ok := out[f.name]
		if f.typ == "record" {
			m, _ := val.(map[string]any)
			if m == nil {
				m = map[string]any{}
			}
			out[f.name] = fillNulls(f.fields, m)
			continue
		}
		if !ok {
			out[f.name] = nil
		}
	}
	return out
}

// legacyConfigJSON renders a config as 0.x's cjson does: empty arrays become
// empty objects.
func legacyConfigJSON(v any) any {
	switch t := v.(type) {
	case []any:
		if len(t) == 0 {
			return map[string]any{}
		}
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = legacyConfigJSON(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[k] = legacyConfigJSON(e)
		}
		return out
	}
	return v
}

// schemaJSON renders GET /plugins/schema/{name}.
func schemaJSON(v Version, s pluginSchema) any {
	if v.Is10() {
		var fields []any
		for _, f := range s.fields {
			fields = append(fields, map[string]any{f.name: fieldJSON(v, f)})
		}
		return map[string]any{"fields": fields}
	}
	m := map[string]any{}
	for _, f := range s.fields {
		m[f.name] = fieldJSON(v, f)
	}
	out := map[string]any{"fields": m}
	if s.check != nil {
		out["self_check"] = "function"
	}
	return out
}

func fieldJSON(v Version, f cfgField) map[string]any {
	typ := f.typ
	if typ == "record" && !v.Is10() {
		typ = "table"
	}
	m := map[string]any{"type": typ}
	if f.def != nil {
		m["default"] = f.def
	}
	if f.req {
		m["required"] = true
	}
	if len(f.oneOf) > 0 {
		if v.Is10() {
			m["one_of"] = f.oneOf
		} else {
			m["enum"] = f.oneOf
		}
	}
	if v.Is10() && len(f.between) == 2 {
		m["between"] = f.between
	}
	if typ == "record" || typ == "table" {
		if v.Is10() {
			var sub []any
			for _, sf := range f.fields {
				sub = append(sub, map[string]any{sf.name: fieldJSON(v, sf)})
			}
			m["fields"] = sub
		} else {
			sub := map[string]any{}
			for _, sf := range f.fields {
				sub[sf.name] = fieldJSON(v, sf)
			}
			m["schema"] = map[string]any{"fields": sub}
		}
	}
	return m
}

func sortedNames(m map[string]pluginSchema) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
