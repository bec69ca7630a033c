package kong

import (
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// API is an old-DAO /apis entity (§1.7). Unset fields are absent on 0.x.
type API struct {
	ID                     string   `json:"id"`
	Name                   string   `json:"name"`
	Hosts                  []string `json:"hosts,omitempty"`
	URIs                   []string `json:"uris,omitempty"`
	Methods                []string `json:"methods,omitempty"`
	UpstreamURL            string   `json:"upstream_url"`
	StripURI               *bool    `json:"strip_uri,omitempty"`
	PreserveHost           *bool    `json:"preserve_host,omitempty"`
	Retries                *int     `json:"retries,omitempty"`
	UpstreamConnectTimeout *int     `json:"upstream_connect_timeout,omitempty"`
	UpstreamSendTimeout    *int     `json:"upstream_send_timeout,omitempty"`
	UpstreamReadTimeout    *int     `json:"upstream_read_timeout,omitempty"`
	HTTPSOnly              bool     `json:"https_only,omitempty"`
	HTTPIfTerminated       bool     `json:"http_if_terminated,omitempty"`
	CreatedAt              int64    `json:"created_at"` // ms
}

// UnmarshalJSON accepts `{}` for an empty array, as 0.x cjson writes empty
// Lua tables (§8.2).
func (a *API) UnmarshalJSON(b []byte) error {
	type plain API
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	for _, k := range []string{"hosts", "uris", "methods"} {
		if v, ok := raw[k]; ok && strings.TrimSpace(string(v)) == "{}" {
			delete(raw, k)
		}
	}
	fixed, _ := json.Marshal(raw)
	return json.Unmarshal(fixed, (*plain)(a))
}

// serviceSpec and routeSpec are what an API becomes (§6.1).
type serviceSpec struct {
	Name           string  `json:"name"`
	Protocol       string  `json:"protocol"`
	Host           string  `json:"host"`
	Port           int     `json:"port"`
	Path           *string `json:"path,omitempty"`
	Retries        int     `json:"retries"`
	ConnectTimeout int     `json:"connect_timeout"`
	WriteTimeout   int     `json:"write_timeout"`
	ReadTimeout    int     `json:"read_timeout"`
}

type routeSpec struct {
	Protocols     []string `json:"protocols"`
	Methods       []string `json:"methods,omitempty"`
	Hosts         []string `json:"hosts,omitempty"`
	Paths         []string `json:"paths,omitempty"`
	StripPath     bool     `json:"strip_path"`
	PreserveHost  bool     `json:"preserve_host"`
	RegexPriority int      `json:"regex_priority"`
}

// planItem is one API and everything the conversion does for it.
type planItem struct {
	API      API
	Service  serviceSpec
	Route    routeSpec
	Plugins  []plugin
	Warnings []string
	// Skip, when set, says why the API cannot be converted.
	Skip string
	// Level orders the work: level n starts after every item of level n-1
	// is converted and verified (narrowest first, §6.2).
	Level int
	// Probe is a request this API answers, used to compare its answer with
	// the Route's; nil when none could be made up (NoProbe says why).
	Probe   *Probe
	NoProbe string
	// after lists APIs that must be converted first (their Routes would
	// otherwise lose traffic they win today to this one's Route).
	after []string
}

// plan is the whole conversion.
type plan struct {
	Items    []*planItem
	Problems []string
}

// maxServiceTimeout is the largest timeout a Service takes; APIs allow one
// more (§6.1, conversion/25).
const maxServiceTimeout = 2147483646

// plainURI is Kong's test for a non-regex uri (kong/router.lua, §1.7).
var plainURI = regexp.MustCompile(`^[a-zA-Z0-9.\-_~/%]*$`)

// makePlan maps every API (pure: no I/O). plugins are all plugins of the
// gateway; takenServices are Service names that exist and were not created
// by this run.
func makePlan(apis []API, plugins []plugin, takenServices map[string]bool) *plan {
	p := &plan{}
	byAPI := map[string][]plugin{}
	for _, pl := range plugins {
		if pl.APIID != "" {
			byAPI[pl.APIID] = append(byAPI[pl.APIID], pl)
		}
	}
	sorted := append([]API(nil), apis...)
	sort.SliceStable(sorted, func(i, j int) bool {
		if sorted[i].CreatedAt != sorted[j].CreatedAt {
			return sorted[i].CreatedAt < sorted[j].CreatedAt
		}
		return sorted[i].Name < sorted[j].Name
	})
	for _, a := range sorted {
		it := mapAPI(a)
		it.Plugins = byAPI[a.ID]
		sort.Slice(it.Plugins, func(i, j int) bool { return it.Plugins[i].ID < it.Plugins[j].ID })
		if it.Skip == "" && takenServices[a.Name] {
			it.Skip = fmt.Sprintf("a Service named %q already exists (not created by this run)", a.Name)
		}
		if it.Skip != "" {
			p.Problems = append(p.Problems, fmt.Sprintf("API %s cannot be converted: %s", a.Name, it.Skip))
		}
		p.Items = append(p.Items, it)
	}
	assignRegexPriorities(p.Items)
	p.Problems = append(p.Problems, order(p.Items)...)
	return p
}

func mapAPI(a API) *planItem {
	it := &planItem{API: a}
	if len(a.Hosts) == 0 && len(a.URIs) == 0 && len(a.Methods) == 0 {
		it.Skip = "no hosts, uris or methods: the API is unroutable and has no Route form (§6.2)"
		return it
	}
	u, err := url.Parse(a.UpstreamURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		it.Skip = fmt.Sprintf("upstream_url %q is not an http(s) URL", a.UpstreamURL)
		return it
	}
	port := 80
	if u.Scheme == "https" {
		port = 443
	}
	if ps := u.Port(); ps != "" {
		if port, err = strconv.Atoi(ps); err != nil {
			it.Skip = fmt.Sprintf("upstream_url %q has a bad port", a.UpstreamURL)
			return it
		}
	}
	s := serviceSpec{Name: a.Name, Protocol: u.Scheme, Host: u.Hostname(), Port: port,
		Retries: intOr(a.Retries, 5)}
	if u.EscapedPath() != "" {
		p := u.EscapedPath()
		s.Path = &p
	}
	for _, t := range []struct {
		api  *int
		dst  *int
		name string
	}{{a.UpstreamConnectTimeout, &s.ConnectTimeout, "upstream_connect_timeout"},
		{a.UpstreamSendTimeout, &s.WriteTimeout, "upstream_send_timeout"},
		{a.UpstreamReadTimeout, &s.ReadTimeout, "upstream_read_timeout"}} {
		*t.dst = intOr(t.api, 60000)
		if *t.dst > maxServiceTimeout {
			it.Warnings = append(it.Warnings, fmt.Sprintf("%s %d lowered to %d (a Service's maximum)", t.name, *t.dst, maxServiceTimeout))
			*t.dst = maxServiceTimeout
		}
	}
	it.Service = s
	r := routeSpec{Protocols: []string{"http", "https"}, Methods: a.Methods, Hosts: a.Hosts, Paths: a.URIs,
		StripPath: boolOr(a.StripURI, true), PreserveHost: boolOr(a.PreserveHost, false)}
	if a.HTTPSOnly {
		r.Protocols = []string{"https"}
		if !a.HTTPIfTerminated {
			it.Warnings = append(it.Warnings, "https_only without http_if_terminated: the Route accepts X-Forwarded-Proto: https "+
				"from trusted_ips clients where the API answered 426, so it is slightly broader than its API (§6.2, conversion/22)")
		}
	}
	it.Route = r
	it.Probe, it.NoProbe = probeFor(a)
	return it
}

func intOr(p *int, d int) int {
	if p == nil {
		return d
	}
	return *p
}

func boolOr(p *bool, d bool) bool {
	if p == nil {
		return d
	}
	return *p
}

func hasRegex(uris []string) bool {
	for _, u := range uris {
		if !plainURI.MatchString(u) {
			return true
		}
	}
	return false
}

// assignRegexPriorities keeps the API router's order among regex uris:
// APIs try regexes by created_at, Routes by regex_priority and then a
// second-resolution created_at that ties in bulk (§6.2, 99-precedence e).
// The oldest regex API gets the highest priority.
func assignRegexPriorities(items []*planItem) {
	var rx []*planItem
	for _, it := range items {
		if it.Skip == "" && hasRegex(it.API.URIs) {
			rx = append(rx, it)
		}
	}
	if len(rx) < 2 {
		return
	}
	for i, it := range rx { // items are in created_at order
		it.Route.RegexPriority = len(rx) - i
		it.Warnings = append(it.Warnings, fmt.Sprintf("regex uri: regex_priority %d keeps the APIs' created_at order among %d regex APIs", it.Route.RegexPriority, len(rx)))
	}
}

// probeFor makes up a request the API matches: its first method (GET when
// allowed), first host (wildcards filled in), first uri (simple regexes
// filled in and checked).
func probeFor(a API) (*Probe, string) {
	p := &Probe{Name: "api " + a.Name, Method: "GET", Path: "/"}
	if len(a.Methods) > 0 && !slices.Contains(a.Methods, "GET") {
		p.Method = a.Methods[0]
	}
	if len(a.Hosts) > 0 {
		h := a.Hosts[0]
		h = strings.Replace(h, "*", "kongbot-probe", 1)
		p.Host = h
	}
	if len(a.URIs) > 0 {
		found := false
		for _, u := range a.URIs {
			if plainURI.MatchString(u) {
				p.Path, found = u, true
				break
			}
		}
		if !found {
			for _, u := range a.URIs {
				if s, ok := sampleRegex(u); ok {
					p.Path, found = s, true
					break
				}
			}
		}
		if !found {
			return nil, "no request could be made up for its regex uris"
		}
	}
	return p, ""
}

var regexFill = strings.NewReplacer(`\d+`, "1", `[0-9]+`, "1", `\d`, "1", `[0-9]`, "1", `\w+`, "a", `\w`, "a",
	`[a-z]+`, "a", `[A-Za-z]+`, "a", `[a-zA-Z]+`, "a", `.*`, "", `.+`, "a", `(`, "", `)`, "", `$`, "", `^`, "", `\.`, ".")

// sampleRegex fills in simple patterns and keeps the result only if the
// pattern (anchored at the start, as Kong does) matches it.
func sampleRegex(pattern string) (string, bool) {
	named := regexp.MustCompile(`\(\?<[a-zA-Z_][a-zA-Z0-9_]*>`)
	cand := regexFill.Replace(named.ReplaceAllString(pattern, "("))
	re, err := regexp.Compile("^(?:" + strings.ReplaceAll(pattern, "(?<", "(?P<") + ")")
	if err != nil || !strings.HasPrefix(cand, "/") || !re.MatchString(cand) {
		return "", false
	}
	return cand, true
}

// matcher is an API's matching rules in the form the overlap test needs.
type matcher struct {
	hosts, methods []string
	plain, regex   []string
	cats, mask     int // conditions set; mask hosts=4 uris=2 methods=1
}

func matcherOf(a API) matcher {
	m := matcher{hosts: a.Hosts, methods: a.Methods}
	for _, u := range a.URIs {
		if plainURI.MatchString(u) {
			m.plain = append(m.plain, u)
		} else {
			m.regex = append(m.regex, u)
		}
	}
	for i, n := range []int{len(a.Hosts), len(a.URIs), len(a.Methods)} {
		if n > 0 {
			m.cats++
			m.mask |= 4 >> i
		}
	}
	return m
}

func hostsMeet(a, b []string) bool {
	if len(a) == 0 || len(b) == 0 {
		return true
	}
	for _, x := range a {
		for _, y := range b {
			if x == y || wildMatch(x, y) || wildMatch(y, x) {
				return true
			}
		}
	}
	return false
}

// wildMatch: pattern "*.x" or "x.*" matching a plain host.
func wildMatch(pattern, host string) bool {
	if strings.HasPrefix(pattern, "*.") {
		return strings.HasSuffix(host, pattern[1:]) && len(host) > len(pattern)-1
	}
	if strings.HasSuffix(pattern, ".*") {
		return strings.HasPrefix(host, pattern[:len(pattern)-1]) && len(host) > len(pattern)-1
	}
	return false
}

func methodsMeet(a, b []string) bool {
	if len(a) == 0 || len(b) == 0 {
		return true
	}
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}

// literalPrefix is a regex's text before its first metacharacter.
func literalPrefix(re string) string {
	i := strings.IndexAny(re, `\.^$|?*+()[]{}`)
	if i < 0 {
		return re
	}
	return re[:i]
}

func prefixCompatible(a, b string) bool { return strings.HasPrefix(a, b) || strings.HasPrefix(b, a) }

// uriRelation says whether a and b can match one request, and how long the
// uri each would match with is (0 when it has none).
func uriRelation(a, b matcher) (meet bool, lenA, lenB int, regexA, regexB bool) {
	if len(a.plain)+len(a.regex) == 0 || len(b.plain)+len(b.regex) == 0 {
		return true, maxLen(a.plain), maxLen(b.plain), false, false
	}
	best := false
	for _, x := range a.plain {
		for _, y := range b.plain {
			if prefixCompatible(x, y) {
				best = true
				if len(x) > lenA || len(y) > lenB {
					lenA, lenB = max(lenA, len(x)), max(lenB, len(y))
				}
			}
		}
	}
	for _, x := range a.regex {
		for _, y := range append(append([]string(nil), b.plain...), b.regex...) {
			if prefixCompatible(literalPrefix(x), literalPrefix(y)) {
				best, regexA = true, true
				regexB = regexB || slices.Contains(b.regex, y)
			}
		}
	}
	for _, y := range b.regex {
		for _, x := range a.plain {
			if prefixCompatible(x, literalPrefix(y)) {
				best, regexB = true, true
			}
		}
	}
	return best, lenA, lenB, regexA, regexB
}

func maxLen(ss []string) int {
	n := 0
	for _, s := range ss {
		n = max(n, len(s))
	}
	return n
}

// beats says whether API b wins over API a for some request both match,
// in the APIs router: more matching conditions first, hosts before uris
// before methods (the router's category order), then regex before
// prefix, older regex first, longer prefix first (kong/api_router.lua).
// tie reports a request both match where neither clearly wins.
func beats(a, b matcher, aOlder bool) (wins, tie bool) {
	if !hostsMeet(a.hosts, b.hosts) || !methodsMeet(a.methods, b.methods) {
		return false, false
	}
	meet, lenA, lenB, rxA, rxB := uriRelation(a, b)
	if !meet {
		return false, false
	}
	switch {
	case b.cats != a.cats:
		return b.cats > a.cats, false
	case b.mask != a.mask:
		return b.mask > a.mask, false
	case rxA && rxB:
		return !aOlder, false
	case rxB != rxA:
		return rxB, false
	case lenB != lenA:
		return lenB > lenA, false
	}
	return false, true
}

// order sets each item's Level so that an API whose Route would take
// traffic another API wins today is converted after that one. Candidate
// pairs come from a prefix index, so 10,000 APIs with distinct paths cost
// little; APIs without uris or with regexes are compared with all.
func order(items []*planItem) []string {
	var live []*planItem
	for _, it := range items {
		if it.Skip == "" {
			live = append(live, it)
		}
	}
	ms := make([]matcher, len(live))
	idx := map[string]int{}
	byURI := map[string][]int{}
	var sortedURIs []string
	var wide []int // no uris, or regex uris
	for i, it := range live {
		ms[i] = matcherOf(it.API)
		idx[it.API.Name] = i
		if len(ms[i].plain) == 0 || len(ms[i].regex) > 0 {
			wide = append(wide, i)
		}
		for _, u := range ms[i].plain {
			if byURI[u] == nil {
				sortedURIs = append(sortedURIs, u)
			}
			byURI[u] = append(byURI[u], i)
		}
	}
	sort.Strings(sortedURIs)
	var problems []string
	deps := make([][]int, len(live))
	tied := map[[2]int]bool{}
	candidates := func(i int) []int {
		if len(ms[i].plain) == 0 || len(ms[i].regex) > 0 {
			all := make([]int, len(live))
			for k := range all {
				all[k] = k
			}
			return all
		}
		seen := map[int]bool{}
		var out []int
		add := func(js []int) {
			for _, j := range js {
				if !seen[j] {
					seen[j] = true
					out = append(out, j)
				}
			}
		}
		add(wide)
		for _, u := range ms[i].plain {
			for l := 1; l <= len(u); l++ { // uris u extends
				add(byURI[u[:l]])
			}
			k := sort.SearchStrings(sortedURIs, u) // uris extending u
			for ; k < len(sortedURIs) && strings.HasPrefix(sortedURIs[k], u); k++ {
				add(byURI[sortedURIs[k]])
			}
		}
		return out
	}
	for i := range live {
		for _, j := range candidates(i) {
			if j == i {
				continue
			}
			wins, tie := beats(ms[i], ms[j], i < j)
			if wins {
				deps[i] = append(deps[i], j)
			}
			if tie && i < j && !tied[[2]int{i, j}] {
				tied[[2]int{i, j}] = true
				msg := fmt.Sprintf("matches some requests of API %s equally; the APIs router and the Routes may pick either", live[j].API.Name)
				live[i].Warnings = append(live[i].Warnings, msg)
			}
		}
	}
	// Longest path from the roots, with cycle detection.
	const (
		white = iota
		grey
		black
	)
	color := make([]int, len(live))
	level := make([]int, len(live))
	var visit func(i int) int
	visit = func(i int) int {
		switch color[i] {
		case black:
			return level[i]
		case grey:
			problems = append(problems, fmt.Sprintf("APIs overlapping in a cycle around %s: no narrowest-first order exists", live[i].API.Name))
			return level[i]
		}
		color[i] = grey
		l := 0
		for _, d := range deps[i] {
			l = max(l, visit(d)+1)
		}
		color[i], level[i] = black, l
		return l
	}
	for i := range live {
		visit(i)
	}
	for i, it := range live {
		it.Level = level[i]
		if len(deps[i]) > 0 {
			names := make([]string, 0, len(deps[i]))
			for _, d := range deps[i] {
				names = append(names, live[d].API.Name)
			}
			sort.Strings(names)
			it.after = names
			shown := names
			if len(shown) > 5 {
				shown = append(shown[:5:5], fmt.Sprintf("%d more", len(names)-5))
			}
			it.Warnings = append(it.Warnings, fmt.Sprintf("its Route would capture traffic that API %s wins today: converted after it",
				strings.Join(shown, ", ")))
		}
	}
	_ = idx
	return problems
}

// describe renders a Route for people.
func (r routeSpec) describe() string {
	var parts []string
	if len(r.Hosts) > 0 {
		parts = append(parts, "hosts "+strings.Join(r.Hosts, ","))
	}
	if len(r.Paths) > 0 {
		parts = append(parts, "paths "+strings.Join(r.Paths, ","))
	}
	if len(r.Methods) > 0 {
		parts = append(parts, "methods "+strings.Join(r.Methods, ","))
	}
	parts = append(parts, "protocols "+strings.Join(r.Protocols, ","), fmt.Sprintf("strip_path %t", r.StripPath))
	if r.PreserveHost {
		parts = append(parts, "preserve_host")
	}
	if r.RegexPriority != 0 {
		parts = append(parts, fmt.Sprintf("regex_priority %d", r.RegexPriority))
	}
	return strings.Join(parts, "; ")
}

func (s serviceSpec) describe() string {
	p := ""
	if s.Path != nil {
		p = *s.Path
	}
	return fmt.Sprintf("%s → %s://%s:%d%s", s.Name, s.Protocol, s.Host, s.Port, p)
}

// pluginLabel renders a re-created plugin for people.
func pluginLabel(p plugin) string {
	l := p.Name
	if p.ConsumerID != "" {
		l += " (consumer " + p.ConsumerID + ")"
	}
	if p.Enabled != nil && !*p.Enabled {
		l += " (disabled)"
	}
	return l
}
