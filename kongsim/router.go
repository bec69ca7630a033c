package kongsim

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// The router follows Kong's own two routers (kong/router.lua for Routes,
// kong/api_router.lua for APIs): a request is first placed in the most
// specific category of rules it could satisfy (host+uri+method down to a
// single rule), candidates indexed under the request's "hit" values are
// tried before the rest of the category, and categories are walked from the
// most to the least specific. The observable consequences the fixtures pin
// down (prefix glued to text still matches, regexes anchored at the start
// only, older regex wins on ties, Host matching ignores the port and is case
// sensitive, HEAD is not GET) fall out of the same algorithm.

type matchRule uint8

const (
	ruleHost matchRule = 1 << iota
	ruleURI
	ruleMethod
)

// categoryOrder is Kong's CATEGORIES table: most specific first.
var categoryOrder = []matchRule{
	ruleHost | ruleURI | ruleMethod,
	ruleHost | ruleURI,
	ruleHost | ruleMethod,
	ruleMethod | ruleURI,
	ruleHost,
	ruleURI,
	ruleMethod,
}

// plainURI is the character set of a prefix (non-regex) path in both routers.
var plainURI = regexp.MustCompile(`^[a-zA-Z0-9.\-_~/%]*$`)

type hostRule struct {
	value    string
	wildcard *regexp.Regexp // nil for a plain host
}

type uriRule struct {
	value string
	regex *regexp.Regexp // anchored find; nil for a prefix
	strip *regexp.Regexp // regex plus the stripped_uri group
}

// upstreamTarget is where a matched API or Service sends traffic.
type upstreamTarget struct {
	scheme string
	host   string
	port   int
	path   string // "" when none
	file   string // path without its trailing slash
}

// hostHeader is the Host Kong sends upstream without preserve_host: the
// port is left out when it is the scheme's default.
func (t upstreamTarget) hostHeader() string {
	if (t.scheme == "http" && t.port == 80) || (t.scheme == "https" && t.port == 443) {
		return t.host
	}
	return net.JoinHostPort(t.host, strconv.Itoa(t.port))
}

func (t upstreamTarget) dialAddr() string {
	return net.JoinHostPort(t.host, strconv.Itoa(t.port))
}

// routerEntry is one API or Route prepared for matching.
type routerEntry struct {
	api     *API
	route   *Route
	service *Service

	rules        matchRule
	hosts        []hostRule
	hostSet      map[string]bool
	uris         []*uriRule
	uriSet       map[string]*uriRule
	methods      map[string]bool
	stripURI     bool
	preserveHost bool
	target       upstreamTarget
}

type routerCategory struct {
	all      []*routerEntry
	byHost   map[string][]*routerEntry
	byURI    map[string][]*routerEntry
	byMethod map[string][]*routerEntry
}

// router matches requests against either Routes or APIs.
type router struct {
	apiRouter    bool
	plainHosts   map[string]bool
	plainURIs    map[string]bool
	plainMethods map[string]bool
	prefixes     []*uriRule
	regexes      []*uriRule
	wildcards    []hostRule
	categories   map[matchRule]*routerCategory
	// skipped lists entities that could not be prepared (Kong logs and
	// ignores them, e.g. an API left without hosts/uris/methods by a PATCH).
	skipped []string
}

// routeMatch is the result of a successful match.
type routeMatch struct {
	entry        *routerEntry
	upstreamURI  string // path only; the query string is appended by the proxy
	upstreamHost string // "" unless preserve_host
}

func newRouter(apiRouter bool) *router {
	return &router{
		apiRouter:    apiRouter,
		plainHosts:   map[string]bool{},
		plainURIs:    map[string]bool{},
		plainMethods: map[string]bool{},
		categories:   map[matchRule]*routerCategory{},
	}
}

// newRoutesRouter builds the Routes router. routes must already be in Kong's
// order (regex_priority desc, created_at asc); routes whose service is
// missing are skipped as Kong does.
func newRoutesRouter(routes []Route, service func(string) (Service, bool)) *router {
	rt := newRouter(false)
	for i := range routes {
		r := &routes[i]
		if !httpRoute(r) {
			continue // 1.0 stream routes (tcp/tls) belong to the stream router
		}
		svc, ok := service(r.ServiceID)
		if !ok {
			rt.skipped = append(rt.skipped, "route "+r.ID+": service not found")
			continue
		}
		e := &routerEntry{route: r, service: &svc, stripURI: r.StripPath, preserveHost: r.PreserveHost}
		if err := e.prepare(r.Hosts, r.Paths, r.Methods); err != nil {
			rt.skipped = append(rt.skipped, "route "+r.ID+": "+err.Error())
			continue
		}
		e.target = serviceTarget(svc)
		rt.add(e)
	}
	rt.finish()
	return rt
}

// newAPIRouter builds the 0.13/0.14 APIs router from APIs ordered by
// created_at.
func newAPIRouter(apis []API) *router {
	rt := newRouter(true)
	for i := range apis {
		a := &apis[i]
		e := &routerEntry{api: a, stripURI: a.StripURI, preserveHost: a.PreserveHost}
		if err := e.prepare(a.Hosts, a.URIs, a.Methods); err != nil {
			rt.skipped = append(rt.skipped, "api "+a.Name+": "+err.Error())
			continue
		}
		t, err := parseUpstreamURL(a.UpstreamURL)
		if err != nil {
			rt.skipped = append(rt.skipped, "api "+a.Name+": "+err.Error())
			continue
		}
		e.target = t
		rt.add(e)
	}
	rt.finish()
	return rt
}

func httpRoute(r *Route) bool {
	if len(r.Protocols) == 0 {
		return true
	}
	for _, p := range r.Protocols {
		if p == "http" || p == "https" {
			return true
		}
	}
	return false
}

func serviceTarget(s Service) upstreamTarget {
	t := upstreamTarget{scheme: s.Protocol, host: s.Host, port: s.Port}
	if t.scheme == "" {
		t.scheme = "http"
	}
	if s.Path != nil {
		t.setPath(*s.Path)
	}
	return t
}

func parseUpstreamURL(raw string) (upstreamTarget, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return upstreamTarget{}, fmt.Errorf("bad upstream_url %q", raw)
	}
	t := upstreamTarget{scheme: strings.ToLower(u.Scheme), host: u.Hostname()}
	if p := u.Port(); p != "" {
		t.port, err = strconv.Atoi(p)
		if err != nil {
			return upstreamTarget{}, fmt.Errorf("bad upstream_url port %q", raw)
		}
	} else if t.scheme == "https" {
		t.port = 443
	} else {
		t.port = 80
	}
	if p := u.EscapedPath(); p != "" {
		t.setPath(p)
	}
	return t, nil
}

func (t *upstreamTarget) setPath(p string) {
	t.path = p
	t.file = p
	if len(p) > 1 && strings.HasSuffix(p, "/") {
		t.file = p[:len(p)-1]
	}
}

func (e *routerEntry) prepare(hosts, uris, methods []string) error {
	e.hostSet = map[string]bool{}
	e.uriSet = map[string]*uriRule{}
	e.methods = map[string]bool{}
	for _, h := range hosts {
		hr := hostRule{value: h}
		if strings.Contains(h, "*") {
			pat := strings.ReplaceAll(regexp.QuoteMeta(h), `\*`, `.+`)
			re, err := regexp.Compile(`^(?:` + pat + `)$`)
			if err != nil {
				return fmt.Errorf("bad wildcard host %q: %w", h, err)
			}
			hr.wildcard = re
		}
		e.hosts = append(e.hosts, hr)
		e.hostSet[h] = true
	}
	for _, u := range uris {
		ur := &uriRule{value: u}
		if !plainURI.MatchString(u) {
			// Kong matches regex paths with PCRE anchored at the start
			// ("ajo"); the group keeps alternations anchored too.
			re, err := regexp.Compile(`^(?:` + u + `)`)
			if err != nil {
				return fmt.Errorf("bad regex path %q: %w", u, err)
			}
			strip, err := regexp.Compile(`^(?:` + u + `/?(?P<stripped_uri>.*))`)
			if err != nil {
				return fmt.Errorf("bad regex path %q: %w", u, err)
			}
			ur.regex, ur.strip = re, strip
		}
		e.uris = append(e.uris, ur)
		e.uriSet[u] = ur
	}
	for _, m := range methods {
		e.methods[strings.ToUpper(m)] = true
	}
	if len(e.hosts) > 0 {
		e.rules |= ruleHost
	}
	if len(e.uris) > 0 {
		e.rules |= ruleURI
	}
	if len(e.methods) > 0 {
		e.rules |= ruleMethod
	}
	if e.rules == 0 {
		return fmt.Errorf("could not categorize")
	}
	return nil
}

func (rt *router) add(e *routerEntry) {
	cat := rt.categories[e.rules]
	if cat == nil {
		cat = &routerCategory{byHost: map[string][]*routerEntry{}, byURI: map[string][]*routerEntry{}, byMethod: map[string][]*routerEntry{}}
		rt.categories[e.rules] = cat
	}
	cat.all = append(cat.all, e)
	for _, h := range e.hosts {
		cat.byHost[h.value] = append(cat.byHost[h.value], e)
		if h.wildcard != nil {
			rt.wildcards = append(rt.wildcards, h)
		} else {
			rt.plainHosts[h.value] = true
		}
	}
	for _, u := range e.uris {
		cat.byURI[u.value] = append(cat.byURI[u.value], e)
		if u.regex != nil {
			rt.regexes = append(rt.regexes, u)
		} else {
			rt.plainURIs[u.value] = true
			rt.prefixes = append(rt.prefixes, u)
		}
	}
	for m := range e.methods {
		cat.byMethod[m] = append(cat.byMethod[m], e)
		rt.plainMethods[m] = true
	}
}

func (rt *router) finish() {
	sort.SliceStable(rt.prefixes, func(i, j int) bool { return len(rt.prefixes[i].value) > len(rt.prefixes[j].value) })
}

type matchCtx struct {
	method  string
	uri     string
	host    string // without port
	rawHost string
	hitHost string
	hitURI  string

	strippedURI string
	hasStripped bool
}

// find returns the matching entry for a request, or nil. uri is the raw
// request path without the query string; host is the Host header as sent.
func (rt *router) find(method, uri, rawHost string) *routeMatch {
	c := &matchCtx{method: strings.ToUpper(method), uri: uri, rawHost: rawHost, host: rawHost}
	// Matching ignores the port (the separator search starts at the second
	// character, as in Kong).
	if i := strings.IndexByte(rawHost, ':'); i >= 1 {
		c.host = rawHost[:i]
	}
	var cat matchRule
	if rt.plainHosts[c.host] {
		cat |= ruleHost
	} else if c.host != "" {
		for _, w := range rt.wildcards {
			if w.wildcard.MatchString(c.host) {
				c.hitHost = w.value
				cat |= ruleHost
				break
			}
		}
	}
	if rt.apiRouter {
		rt.uriHitsAPI(c, &cat)
	} else {
		rt.uriHitsRoutes(c, &cat)
	}
	if rt.plainMethods[c.method] {
		cat |= ruleMethod
	}
	if cat == 0 {
		return nil
	}
	start := 0
	for i, cr := range categoryOrder {
		if cr == cat {
			start = i
			break
		}
	}
	for _, cr := range categoryOrder[start:] {
		category := rt.categories[cr]
		if category == nil {
			continue
		}
		var matched *routerEntry
		for _, e := range rt.reduce(category, cr, c) {
			if e.match(c) {
				matched = e
				break
			}
		}
		if matched == nil {
			for _, e := range category.all {
				if e.match(c) {
					matched = e
					break
				}
			}
		}
		if matched != nil {
			return matched.result(c)
		}
	}
	return nil
}

// uriHitsRoutes is kong/router.lua: regexes first (in route order), then an
// exact plain path, then the longest prefix.
func (rt *router) uriHitsRoutes(c *matchCtx, cat *matchRule) {
	for _, u := range rt.regexes {
		if u.regex.MatchString(c.uri) {
			c.hitURI = u.value
			*cat |= ruleURI
			return
		}
	}
	if rt.plainURIs[c.uri] {
		c.hitURI = c.uri
		*cat |= ruleURI
		return
	}
	for _, u := range rt.prefixes {
		if strings.HasPrefix(c.uri, u.value) {
			c.hitURI = u.value
			*cat |= ruleURI
			return
		}
	}
}

// uriHitsAPI is kong/api_router.lua: an exact plain uri, else the longest
// prefix, then the first matching regex (in API order) overrides the hit.
func (rt *router) uriHitsAPI(c *matchCtx, cat *matchRule) {
	if rt.plainURIs[c.uri] {
		*cat |= ruleURI
		return
	}
	for _, u := range rt.prefixes {
		if strings.HasPrefix(c.uri, u.value) {
			c.hitURI = u.value
			*cat |= ruleURI
			break
		}
	}
	for _, u := range rt.regexes {
		if u.regex.MatchString(c.uri) {
			c.hitURI = u.value
			*cat |= ruleURI
			break
		}
	}
}

// reduce returns the smallest candidate set indexed under the request's hits
// for the rules of the category.
func (rt *router) reduce(cat *routerCategory, rules matchRule, c *matchCtx) []*routerEntry {
	var best []*routerEntry
	found := false
	consider := func(set []*routerEntry, ok bool) {
		if ok && (!found || len(set) < len(best)) {
			best, found = set, true
		}
	}
	if rules&ruleHost != 0 {
		set, ok := cat.byHost[c.hitHost]
		consider(set, ok)
	}
	if rules&ruleURI != 0 {
		key := c.hitURI
		if key == "" {
			key = c.uri
		}
		set, ok := cat.byURI[key]
		consider(set, ok)
	}
	if rules&ruleMethod != 0 {
		set, ok := cat.byMethod[c.method]
		consider(set, ok)
	}
	return best
}

func (e *routerEntry) match(c *matchCtx) bool {
	c.hasStripped = false
	c.strippedURI = ""
	if e.rules&ruleHost != 0 {
		key := c.hitHost
		if key == "" {
			key = c.host
		}
		if !e.hostSet[key] {
			return false
		}
	}
	if e.rules&ruleURI != 0 && !e.matchURI(c) {
		return false
	}
	if e.rules&ruleMethod != 0 && !e.methods[c.method] {
		return false
	}
	return true
}

func (e *routerEntry) matchURI(c *matchCtx) bool {
	key := c.hitURI
	if key == "" {
		key = c.uri
	}
	if u, ok := e.uriSet[key]; ok {
		if u.regex != nil && e.matchRegex(u, c) {
			return true
		}
		if e.stripURI {
			e.stripPrefix(c, len(u.value))
		}
		return true
	}
	for _, u := range e.uris {
		if u.regex != nil {
			if e.matchRegex(u, c) {
				return true
			}
			continue
		}
		if strings.HasPrefix(c.uri, u.value) {
			if e.stripURI {
				e.stripPrefix(c, len(u.value))
			}
			return true
		}
	}
	return false
}

func (e *routerEntry) matchRegex(u *uriRule, c *matchCtx) bool {
	m := u.strip.FindStringSubmatch(c.uri)
	if m == nil {
		return false
	}
	c.strippedURI = "/" + m[u.strip.SubexpIndex("stripped_uri")]
	c.hasStripped = true
	return true
}

func (e *routerEntry) stripPrefix(c *matchCtx, n int) {
	s := c.uri[n:]
	if !strings.HasPrefix(s, "/") {
		s = "/" + s
	}
	c.strippedURI = s
	c.hasStripped = true
}

// result computes the upstream path the way both routers do (including the
// trailing-slash rules recorded in kong-fixtures/conversion).
func (e *routerEntry) result(c *matchCtx) *routeMatch {
	m := &routeMatch{entry: e}
	uriRoot := c.uri == "/"
	up := c.uri
	if !uriRoot && e.stripURI && c.hasStripped {
		up = c.strippedURI
	}
	path, file := e.target.path, e.target.file
	if path != "" && path != "/" {
		switch {
		case up != "/":
			up = file + up
		case path != file:
			if uriRoot || strings.HasSuffix(c.uri, "/") {
				up = path
			} else {
				up = file
			}
		default:
			if uriRoot || !strings.HasSuffix(c.uri, "/") {
				up = file
			} else {
				up = file + up
			}
		}
	}
	m.upstreamURI = up
	if e.preserveHost {
		m.upstreamHost = c.rawHost
	}
	return m
}
