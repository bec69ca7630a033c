package kongsim

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// proxy is the simulated node's proxy listener handler: Routes router first,
// then (0.13/0.14) the APIs router, the access phase of the plugins kongsim
// runs, then forwarding to the upstream with Kong's headers.
type proxy struct {
	version Version
	views   func(ctx context.Context) (ProxyView, error)
	fault   func() Fault
	log     *slog.Logger

	transport *http.Transport
	// dialMap redirects upstream dials (host:port → host:port) without
	// changing the Host header; tests use it to stand in for the recorded
	// upstream addresses.
	dialMap map[string]string
	// trusted is Kong's trusted_ips: clients whose X-Forwarded-* and
	// X-Real-IP headers are believed. Empty, as Kong's default, trusts none.
	trusted []netip.Prefix

	state     atomic.Pointer[proxyState]
	stateMu   sync.Mutex
	rateLimit *rateLimiter
	jwks      *jwksCache
}

// proxyState is what the proxy compiles from one ProxyView: Kong rebuilds
// its routers when the router version changes; kongsim when the view does.
type proxyState struct {
	view    ProxyView
	routes  *router
	apis    *router
	plugins *pluginIndex
}

// newProxyHandler is the hook node.go mounts on the proxy listener. Proxy
// requests count in GET /status like Admin API ones: nginx's counters cover
// the whole node, and "this node gets no traffic" is read from them.
func newProxyHandler(n *Node) http.Handler {
	p := newProxy(n.version, n.View, n.Fault, n.log)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.stats.active.Add(1)
		n.stats.accepted.Add(1)
		n.stats.total.Add(1)
		defer n.stats.active.Add(-1)
		p.ServeHTTP(w, r)
	})
}

func newProxy(v Version, views func(context.Context) (ProxyView, error), fault func() Fault, log *slog.Logger) *proxy {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if fault == nil {
		fault = func() Fault { return Fault{} }
	}
	p := &proxy{version: v, views: views, fault: fault, log: log, rateLimit: newRateLimiter(), jwks: newJWKSCache()}
	dialer := &net.Dialer{KeepAlive: 30 * time.Second}
	p.transport = &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if to, ok := p.dialMap[addr]; ok {
				addr = to
			}
			d := *dialer
			if t, ok := ctx.Value(connectTimeoutKey{}).(time.Duration); ok && t > 0 {
				d.Timeout = t
			}
			return d.DialContext(ctx, network, addr)
		},
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     60 * time.Second,
		DisableCompression:  true,
		// Kong does not verify upstream certificates unless told to.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // simulated gateway, as Kong's default
	}
	return p
}

type connectTimeoutKey struct{}

// current returns the compiled state for the node's current view.
func (p *proxy) current(ctx context.Context) (*proxyState, error) {
	v, err := p.views(ctx)
	if err != nil {
		return nil, err
	}
	if st := p.state.Load(); st != nil && sameView(st.view, v) {
		return st, nil
	}
	p.stateMu.Lock()
	defer p.stateMu.Unlock()
	if st := p.state.Load(); st != nil && sameView(st.view, v) {
		return st, nil
	}
	st := compileState(v, p.state.Load())
	for _, s := range append(st.routes.skipped, apisSkipped(st)...) {
		p.log.Warn("entity not routable", "reason", s)
	}
	p.state.Store(st)
	return st, nil
}

func apisSkipped(st *proxyState) []string {
	if st.apis == nil {
		return nil
	}
	return st.apis.skipped
}

// sameView compares views by identity when their type allows it; a view
// type that is not comparable is compiled on every request.
func sameView(a, b ProxyView) bool {
	if a == nil || b == nil {
		return false
	}
	ta, tb := reflect.TypeOf(a), reflect.TypeOf(b)
	if ta != tb || !ta.Comparable() {
		return false
	}
	return a == b
}

// compileState builds the routers and the plugin index of a view, reusing
// prev's for the parts whose entities did not change (the cache keeps an
// unchanged set's slice): Kong rebuilds a router only when its version key
// is invalidated, and a plugin write evicts one cache key, not every
// plugin.
func compileState(v ProxyView, prev *proxyState) *proxyState {
	st := &proxyState{view: v}
	if prev != nil && sameSlice(prev.view.Routes(), v.Routes()) {
		st.routes = prev.routes
	} else {
		st.routes = newRoutesRouter(v.Routes(), v.Service)
	}
	if !v.Version().Is10() {
		if prev != nil && prev.apis != nil && sameSlice(prev.view.APIs(), v.APIs()) {
			st.apis = prev.apis
		} else {
			st.apis = newAPIRouter(v.APIs())
		}
	}
	if prev != nil && sameSlice(prev.view.Plugins(), v.Plugins()) {
		st.plugins = prev.plugins
	} else {
		st.plugins = newPluginIndex(v.Plugins())
	}
	return st
}

// sameSlice reports whether a and b are the same slice (not just equal).
func sameSlice[T any](a, b []T) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// reqCtx is the per-request state shared by the plugins.
type reqCtx struct {
	p        *proxy
	view     ProxyView
	in       *http.Request
	match    *routeMatch
	upHeader http.Header // request headers going upstream
	query    url.Values  // nil until a plugin needs to edit the query
	rawQuery string
	// respHeader holds headers plugins set on whatever response the client
	// gets (rate-limiting's counters), Kong-made or proxied.
	respHeader http.Header
	consumer   *Consumer
	credential string
	clientIP   string
}

func (c *reqCtx) routeID() string {
	if c.match.entry.route != nil {
		return c.match.entry.route.ID
	}
	return ""
}

func (c *reqCtx) serviceID() string {
	if c.match.entry.service != nil {
		return c.match.entry.service.ID
	}
	return ""
}

func (c *reqCtx) apiID() string {
	if c.match.entry.api != nil {
		return c.match.entry.api.ID
	}
	return ""
}

// editQuery parses the query for plugins that change it.
func (c *reqCtx) editQuery() url.Values {
	if c.query == nil {
		q, err := url.ParseQuery(c.rawQuery)
		if err != nil && q == nil {
			q = url.Values{}
		}
		c.query = q
	}
	return c.query
}

// kongResponse is a response Kong makes itself (plugins, router, errors).
type kongResponse struct {
	status int
	header http.Header
	// message is sent as {"message": …}; body, when set, verbatim.
	message     string
	noBody      bool
	body        []byte
	contentType string // with body; "" sends none
	// errorPage renders the nginx error page handler's text instead of JSON
	// (runtime errors and upstream failures), and close drops keep-alive.
	errorPage bool
	close     bool
}

// defaultMessages are the bodies kong.tools.responses (0.x) and
// kong.response.exit users (1.0) give a status without a message.
func defaultMessage(v Version, status int) (string, bool) {
	switch status {
	case 401:
		return "Unauthorized", true
	case 404:
		return "Not found", true
	case 405:
		return "Method not allowed", true
	case 500:
		return "An unexpected error occurred", true
	case 502:
		if v.Is10() {
			return "Bad Gateway", true
		}
	case 503:
		return "Service unavailable", true
	}
	return "", false
}

// errorPageBodies are the texts of Kong's nginx error handler.
var errorPageBodies = map[int]string{
	400: "Bad request",
	404: "Not found",
	408: "Request timeout",
	411: "Length required",
	412: "Precondition failed",
	413: "Payload too large",
	414: "URI too long",
	417: "Expectation failed",
	494: "Request Header Or Cookie Too Large",
	500: "An unexpected error occurred",
	502: "An invalid response was received from the upstream server",
	503: "The upstream server is currently unavailable",
	504: "The upstream server is timing out",
}

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	f := p.fault()
	if f.ProxyDelay > 0 {
		t := time.NewTimer(f.ProxyDelay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	if f.ProxyFailShare > 0 && rand.Float64() < f.ProxyFailShare {
		status := f.ProxyFailStatus
		if status == 0 {
			status = http.StatusBadGateway
		}
		p.write(w, r, nil, &kongResponse{status: status, errorPage: true})
		return
	}
	st, err := p.current(r.Context())
	if err != nil {
		p.log.Error("proxy: no entity view", "err", err)
		p.write(w, r, nil, &kongResponse{status: 500, message: "An unexpected error occurred"})
		return
	}
	path, rawQuery := splitRequestURI(r.RequestURI)
	m := st.routes.find(r.Method, path, r.Host)
	if m == nil && st.apis != nil {
		m = st.apis.find(r.Method, path, r.Host)
	}
	if m == nil {
		msg := "no route and no API found with those values"
		if p.version.Is10() {
			msg = "no Route matched with those values"
		}
		p.write(w, r, nil, &kongResponse{status: 404, message: msg})
		return
	}
	remote := remoteIP(r)
	trusted := p.isTrusted(remote)
	if resp := httpsCheck(m, r, trusted); resp != nil {
		p.write(w, r, nil, resp)
		return
	}
	clientIP := remote
	if real := r.Header.Get("X-Real-IP"); trusted && real != "" {
		clientIP = real // nginx realip: real_ip_header X-Real-IP from trusted_ips
	}
	c := &reqCtx{p: p, view: st.view, in: r, match: m, rawQuery: rawQuery, respHeader: http.Header{}, clientIP: clientIP}
	c.upHeader = upstreamHeaders(r, clientIP, remote, trusted)
	if resp := p.access(st, c); resp != nil {
		p.write(w, r, c, resp)
		return
	}
	p.forward(w, r, st, c, start)
}

// httpsCheck answers 426 for https-only APIs and Routes. The listener
// speaks plain HTTP, so only a trusted client's X-Forwarded-Proto can make
// a request count as https: for a Route always, for an API only with
// http_if_terminated (utils.check_https).
func httpsCheck(m *routeMatch, r *http.Request, trusted bool) *kongResponse {
	e := m.entry
	xfp := ""
	if trusted {
		if v := r.Header.Values("X-Forwarded-Proto"); len(v) == 1 {
			xfp = strings.ToLower(v[0])
		}
	}
	need := false
	if e.api != nil {
		need = e.api.HTTPSOnly && !(e.api.HTTPIfTerminated && xfp == "https")
	} else if e.route != nil && len(e.route.Protocols) > 0 {
		need = xfp != "https"
		for _, pr := range e.route.Protocols {
			if pr == "http" {
				need = false
			}
		}
	}
	if !need {
		return nil
	}
	h := http.Header{}
	h["connection"] = []string{"Upgrade"}
	h["upgrade"] = []string{"TLS/1.2, HTTP/1.1"}
	return &kongResponse{status: 426, message: "Please use HTTPS protocol", header: h}
}

func (p *proxy) isTrusted(ip string) bool {
	if len(p.trusted) == 0 {
		return false
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	for _, pr := range p.trusted {
		if pr.Contains(a.Unmap()) {
			return true
		}
	}
	return false
}

func splitRequestURI(uri string) (path, query string) {
	if i := strings.IndexByte(uri, '?'); i >= 0 {
		return uri[:i], uri[i+1:]
	}
	return uri, ""
}

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// hopHeaders are not forwarded in either direction.
var hopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// upstreamHeaders builds what nginx sends upstream: the client's headers
// plus Kong's proxy_set_header lines. X-Forwarded-Proto/Host/Port are the
// client's own only when it is trusted (trusted_ips); X-Forwarded-For always
// appends the peer address.
func upstreamHeaders(r *http.Request, clientIP, remote string, trusted bool) http.Header {
	h := make(http.Header, len(r.Header)+8)
	for k, v := range r.Header {
		h[k] = v
	}
	for _, k := range hopHeaders {
		delete(h, k)
	}
	if c := r.Header.Get("Connection"); c != "" {
		for _, f := range strings.Split(c, ",") {
			delete(h, http.CanonicalHeaderKey(strings.TrimSpace(f)))
		}
	}
	xff := clientIP
	if prior := r.Header.Values("X-Forwarded-For"); len(prior) > 0 {
		xff = strings.Join(prior, ", ") + ", " + remote
	}
	host := r.Host
	if i := strings.LastIndexByte(host, ':'); i > 0 && !strings.HasSuffix(host, "]") {
		host = host[:i]
	}
	proto, fwdHost, port := "http", strings.ToLower(host), "80"
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if _, p, err := net.SplitHostPort(la.String()); err == nil {
			port = p
		}
	}
	if trusted {
		if v := r.Header.Get("X-Forwarded-Proto"); v != "" {
			proto = v
		}
		if v := r.Header.Get("X-Forwarded-Host"); v != "" {
			fwdHost = v
		}
		if v := r.Header.Get("X-Forwarded-Port"); v != "" {
			port = v
		}
	}
	for _, k := range []string{"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Forwarded-Port", "X-Real-Ip"} {
		delete(h, k)
	}
	// Literal names, as nginx sends them.
	h["Connection"] = []string{"keep-alive"}
	h["X-Forwarded-For"] = []string{xff}
	h["X-Forwarded-Proto"] = []string{proto}
	h["X-Forwarded-Host"] = []string{fwdHost}
	h["X-Forwarded-Port"] = []string{port}
	h["X-Real-IP"] = []string{clientIP}
	if _, ok := h["User-Agent"]; !ok {
		// Keep Go's transport from inventing one.
		h["User-Agent"] = []string{""}
	}
	return h
}

// access runs the plugins' access phase in priority order, resolving each
// plugin's configuration for the matched route/service/api and the consumer
// known at that point (Kong's plugins iterator).
func (p *proxy) access(st *proxyState, c *reqCtx) *kongResponse {
	for _, impl := range st.plugins.ordered {
		if impl.access == nil {
			continue
		}
		pl := st.plugins.resolve(impl.name, c)
		if pl == nil {
			continue
		}
		if resp := impl.access(c, pl); resp != nil {
			return resp
		}
	}
	return nil
}

// write sends a Kong-made response.
func (p *proxy) write(w http.ResponseWriter, r *http.Request, c *reqCtx, resp *kongResponse) {
	h := w.Header()
	if c != nil {
		for k, v := range c.respHeader {
			h[k] = v
		}
	}
	for k, v := range resp.header {
		h[k] = v
	}
	h.Set("Server", "kong/"+string(p.version))
	if resp.close {
		h.Set("Connection", "close")
	}
	var body []byte
	switch {
	case resp.errorPage:
		msg, ok := errorPageBodies[resp.status]
		if !ok {
			msg = fmt.Sprintf("The upstream server responded with %d", resp.status)
		}
		ct, text := errorPage(r.Header.Get("Accept"), msg)
		h.Set("Content-Type", ct)
		body = []byte(text)
	case resp.body != nil:
		if resp.contentType != "" {
			h.Set("Content-Type", resp.contentType)
		} else {
			h["Content-Type"] = nil // no sniffing: Kong 1.0 sends none
		}
		body = resp.body
	default:
		msg := resp.message
		if msg == "" && !resp.noBody {
			msg, _ = defaultMessage(p.version, resp.status)
		}
		h.Set("Content-Type", "application/json; charset=utf-8")
		if msg != "" {
			body = kongJSON(p.version, map[string]any{"message": msg})
		}
	}
	// 0.13.1 streams its own responses (chunked); later versions and the
	// error pages' Content-Length is what the fixtures show.
	chunked := resp.errorPage || p.version == V0131
	if !chunked {
		h.Set("Content-Length", strconv.Itoa(len(body)))
	}
	w.WriteHeader(resp.status)
	if len(body) > 0 && r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
	if chunked {
		if fl, ok := w.(http.Flusher); ok {
			fl.Flush()
		}
	}
}

// errorPage renders Kong's error handler: plain text unless the client
// asked for JSON, HTML or XML.
func errorPage(accept, msg string) (contentType, body string) {
	switch {
	case strings.Contains(accept, "text/html"):
		return "text/html; charset=UTF-8", "<html><head><title>Kong Error</title></head><body><h1>Kong Error</h1><p>" + msg + ".</p></body></html>\n"
	case strings.Contains(accept, "application/json"):
		return "application/json; charset=UTF-8", "{\"message\":\"" + msg + "\"}\n"
	case strings.Contains(accept, "application/xml"):
		return "application/xml; charset=UTF-8", "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<error><message>" + msg + "</message></error>\n"
	}
	return "text/plain; charset=UTF-8", msg + "\n"
}

type upstreamSettings struct {
	retries        int
	connectTimeout time.Duration
	readTimeout    time.Duration
}

func (e *routerEntry) settings() upstreamSettings {
	ms := func(v int) time.Duration {
		if v <= 0 {
			return 60 * time.Second
		}
		return time.Duration(v) * time.Millisecond
	}
	if e.api != nil {
		return upstreamSettings{e.api.Retries, ms(e.api.UpstreamConnectTimeout), ms(e.api.UpstreamReadTimeout)}
	}
	return upstreamSettings{e.service.Retries, ms(e.service.ConnectTimeout), ms(e.service.ReadTimeout)}
}

var copyBufPool = sync.Pool{New: func() any { b := make([]byte, 32*1024); return &b }}

// maxRetryBody bounds the request body kept in memory so that a failed
// connect can be retried with the same body.
const maxRetryBody = 8 << 20

func (p *proxy) forward(w http.ResponseWriter, r *http.Request, st *proxyState, c *reqCtx, start time.Time) {
	e := c.match.entry
	set := e.settings()
	target := e.target

	var body []byte
	hasBody := r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0
	if hasBody {
		b, err := io.ReadAll(io.LimitReader(r.Body, maxRetryBody+1))
		if err != nil {
			p.write(w, r, c, &kongResponse{status: 400, errorPage: true})
			return
		}
		if len(b) > maxRetryBody {
			p.write(w, r, c, &kongResponse{status: 413, errorPage: true})
			return
		}
		body = b
	}
	uri := c.match.upstreamURI
	query := c.rawQuery
	if c.query != nil {
		query = c.query.Encode()
	}
	hostHeader := c.match.upstreamHost
	if hostHeader == "" {
		hostHeader = target.hostHeader()
	}

	proxyLatency := time.Since(start)
	upStart := time.Now()
	var (
		resp     *http.Response
		err      error
		timedOut bool
	)
	for attempt := 0; attempt <= set.retries; attempt++ {
		resp, timedOut, err = p.roundTrip(r.Context(), r.Method, target, uri, query, hostHeader, c.upHeader, body, set)
		if err == nil || !isDialError(err) || r.Context().Err() != nil {
			break
		}
	}
	if err != nil {
		if r.Context().Err() != nil {
			return // client went away; nginx logs 499
		}
		status := 502
		if timedOut {
			status = 504
		}
		p.log.Warn("upstream request failed", "upstream", target.dialAddr(), "status", status, "err", err)
		p.write(w, r, c, &kongResponse{status: status, errorPage: true})
		return
	}
	defer resp.Body.Close()
	upLatency := time.Since(upStart)

	h := w.Header()
	for k, v := range resp.Header {
		h[k] = v
	}
	for _, k := range hopHeaders {
		delete(h, k)
	}
	for _, impl := range st.plugins.ordered {
		if impl.headerFilter == nil {
			continue
		}
		if pl := st.plugins.resolve(impl.name, c); pl != nil {
			impl.headerFilter(c, pl, h)
		}
	}
	for k, v := range c.respHeader {
		h[k] = v
	}
	h.Set("X-Kong-Upstream-Latency", strconv.FormatInt(upLatency.Milliseconds(), 10))
	h.Set("X-Kong-Proxy-Latency", strconv.FormatInt(proxyLatency.Milliseconds(), 10))
	h.Set("Via", "kong/"+string(p.version))
	if resp.ContentLength >= 0 && h.Get("Content-Length") == "" {
		h.Set("Content-Length", strconv.FormatInt(resp.ContentLength, 10))
	}
	w.WriteHeader(resp.StatusCode)
	bp := copyBufPool.Get().(*[]byte)
	_, _ = io.CopyBuffer(w, resp.Body, *bp)
	copyBufPool.Put(bp)
}

// roundTrip sends one attempt. The read timeout covers the wait for the
// response headers, as nginx's proxy_read_timeout does for the first byte.
func (p *proxy) roundTrip(ctx context.Context, method string, t upstreamTarget, uri, query, host string,
	header http.Header, body []byte, set upstreamSettings) (*http.Response, bool, error) {
	ctx = context.WithValue(ctx, connectTimeoutKey{}, set.connectTimeout)
	ctx, cancel := context.WithCancel(ctx)
	u := &url.URL{Scheme: t.scheme, Host: t.dialAddr(), Opaque: uri, RawQuery: query}
	if strings.HasPrefix(uri, "//") {
		u = &url.URL{Scheme: t.scheme, Host: t.dialAddr(), Path: uri, RawQuery: query}
	}
	req := &http.Request{
		Method:     method,
		URL:        u,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     header,
		Host:       host,
	}
	req = req.WithContext(ctx)
	if body != nil {
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.ContentLength = int64(len(body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	// Until the request is written the connect timeout bounds the attempt
	// (the dialer enforces it too); then the read timeout runs. The timer
	// only ever concerns the wait for the response headers.
	var (
		mu      sync.Mutex
		fired   bool
		settled bool
	)
	timer := time.AfterFunc(set.connectTimeout+set.readTimeout, func() {
		mu.Lock()
		defer mu.Unlock()
		if !settled {
			fired = true
			cancel()
		}
	})
	req = req.WithContext(httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(httptrace.WroteRequestInfo) {
			mu.Lock()
			defer mu.Unlock()
			if !settled {
				timer.Reset(set.readTimeout)
			}
		},
	}))
	resp, err := p.transport.RoundTrip(req)
	mu.Lock()
	settled = true
	timer.Stop()
	timedOut := fired
	mu.Unlock()
	if err != nil {
		cancel()
		var ne net.Error
		return nil, timedOut || (errors.As(err, &ne) && ne.Timeout()), err
	}
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	return resp, false, nil
}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
