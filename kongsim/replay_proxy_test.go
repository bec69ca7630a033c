package kongsim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The proxy fixture replay: every recorded proxy exchange is sent to a
// kongsim proxy of the same version whose view holds exactly the entities
// the recording had at that moment (rebuilt from the recorded Admin API
// responses, so ids match), with echo upstreams standing in for the
// recorded 127.0.0.1:15555 (:80, :15556) through the proxy's dial map.
// Compared: status, response headers (values, or presence for the volatile
// ones named in the fixtures README), the JSON body or text, and for
// proxied requests the echoed method, path, query, body and every upstream
// header.

// knownProxyMismatches are recorded exchanges kongsim does not reproduce,
// with the reason. The replay still runs them and fails if they start
// matching, so the list stays honest.
var knownProxyMismatches = map[string]string{
	// The conversion copy lacks API 13 (nested-inner, /nest/inner), which
	// took these requests on the recording node.
	"conversion/14-nested-outer/before/05-inner-subpath.json":      "depends on API 13, not in this copy of the fixtures",
	"conversion/14-nested-outer/before/06-inner-glued-suffix.json": "depends on API 13, not in this copy of the fixtures",
	"conversion/14-nested-outer/after/05-inner-subpath.json":       "depends on Route 13, not in this copy of the fixtures",
	"conversion/14-nested-outer/after/06-inner-glued-suffix.json":  "depends on Route 13, not in this copy of the fixtures",
}

// echoHandler answers like the recording's upstream: 200 and
// {"echo":true,"method","path","query","headers","body"}; ?sleep=N waits.
func echoHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s := r.URL.Query().Get("sleep"); s != "" {
			n, _ := strconv.Atoi(s)
			select {
			case <-time.After(time.Duration(n) * time.Second):
			case <-r.Context().Done():
				return
			}
		}
		body, _ := io.ReadAll(r.Body)
		h := map[string]string{"Host": r.Host}
		for k, v := range r.Header {
			h[k] = strings.Join(v, ", ")
		}
		if r.ContentLength > 0 {
			h["Content-Length"] = strconv.FormatInt(r.ContentLength, 10)
		}
		query := ""
		if i := strings.IndexByte(r.RequestURI, '?'); i >= 0 {
			query = r.RequestURI[i+1:]
		}
		out, _ := json.Marshal(map[string]any{"echo": true, "method": r.Method, "path": r.RequestURI, "query": query,
			"headers": h, "body": string(body)})
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Server", "echo")
		_, _ = w.Write(out)
	})
}

// replayHarness runs one kongsim proxy per version over one entity store.
type replayHarness struct {
	t       *testing.T
	dir     string
	store   *entityStore
	proxies map[Version]*httptest.Server
	// trusted is a second 0.14.1 proxy with trusted_ips = 127.0.0.1/32,
	// the conversion recording's "trusted node".
	trusted *httptest.Server
	views   map[Version]*atomic.Pointer[staticView]
	// pluginsMap holds a 1.0 node's plugins_map when it lags the store.
	pluginsMap map[Version]map[string]bool
	probed     map[string]bool
}

func newReplayHarness(t *testing.T) *replayHarness {
	t.Helper()
	dir := fixturesDir(t)
	echo := httptest.NewServer(echoHandler())
	t.Cleanup(echo.Close)
	tlsEcho := httptest.NewTLSServer(echoHandler())
	t.Cleanup(tlsEcho.Close)
	echoAddr := strings.TrimPrefix(echo.URL, "http://")
	tlsAddr := strings.TrimPrefix(tlsEcho.URL, "https://")
	h := &replayHarness{t: t, dir: dir, store: newEntityStore(), proxies: map[Version]*httptest.Server{},
		views: map[Version]*atomic.Pointer[staticView]{}, pluginsMap: map[Version]map[string]bool{}, probed: map[string]bool{},
	}
	for _, v := range []Version{V0131, V0141, V103} {
		ptr := &atomic.Pointer[staticView]{}
		ptr.Store(h.store.view(v, nil))
		h.views[v] = ptr
		p := newProxy(v, func(context.Context) (ProxyView, error) { return ptr.Load(), nil }, nil, nil)
		p.dialMap = map[string]string{
			"127.0.0.1:15555": echoAddr, "localhost:15555": echoAddr, "127.0.0.1:80": echoAddr,
			"127.0.0.1:15556": tlsAddr,
		}
		srv := httptest.NewServer(p)
		t.Cleanup(srv.Close)
		h.proxies[v] = srv
		if v == V0141 {
			tp := newProxy(v, func(context.Context) (ProxyView, error) { return ptr.Load(), nil }, nil, nil)
			tp.dialMap = p.dialMap
			tp.trusted = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
			h.trusted = httptest.NewServer(tp)
			t.Cleanup(h.trusted.Close)
		}
	}
	return h
}

func (h *replayHarness) admin(files ...string) {
	h.t.Helper()
	for _, f := range files {
		h.store.apply(h.t, loadExchange(h.t, filepath.Join(h.dir, f)))
	}
}

// adminDir applies every exchange of a folder whose file name is in
// [from, to] (by numeric prefix).
func (h *replayHarness) adminRange(dir string, from, to int) {
	h.t.Helper()
	for _, f := range sortedFixtureFiles(h.t, filepath.Join(h.dir, dir)) {
		n, err := strconv.Atoi(strings.SplitN(filepath.Base(f), "-", 2)[0])
		if err != nil || n < from || n > to {
			continue
		}
		h.store.apply(h.t, loadExchange(h.t, f))
	}
}

// probe replays one proxy exchange against version v.
func (h *replayHarness) probe(v Version, files ...string) {
	h.t.Helper()
	h.views[v].Store(h.store.view(v, h.pluginsMap[v]))
	for _, f := range files {
		h.probed[f] = true
		srv := h.proxies[v]
		if strings.Contains(f, "-trusted-node/") {
			srv = h.trusted
		}
		tgt := replayTarget{addr: strings.TrimPrefix(srv.URL, "http://"), mapID: func(s string) string { return s }}
		checkProxyExchange(h.t, tgt, f, loadExchange(h.t, filepath.Join(h.dir, f)))
	}
}

// replayTarget is the proxy listener an exchange is replayed against.
type replayTarget struct {
	addr string // host:port of the proxy listener
	// mapID turns a recorded id into the one the target's database holds.
	mapID func(string) string
}

// checkProxyExchange replays ex against tgt as a subtest named rel and
// reports differences, honouring knownProxyMismatches.
func checkProxyExchange(t *testing.T, tgt replayTarget, rel string, ex *exchange) {
	t.Helper()
	t.Run(rel, func(t *testing.T) {
		problems := compareProxyExchange(t, tgt, ex)
		reason, known := knownProxyMismatches[rel]
		switch {
		case known && len(problems) == 0:
			t.Errorf("listed as a known mismatch (%s) but now matches: remove it from knownProxyMismatches", reason)
		case known:
			t.Logf("known mismatch kept (%s): %s", reason, strings.Join(problems, "; "))
		case len(problems) > 0:
			t.Errorf("%s %s:\n  %s", ex.Method, ex.Path, strings.Join(problems, "\n  "))
		}
	})
}

func sendProxyExchange(t *testing.T, tgt replayTarget, ex *exchange) (*http.Response, []byte) {
	t.Helper()
	var body io.Reader
	contentType := ""
	if len(ex.RequestBody) > 0 && string(ex.RequestBody) != "null" {
		var s string
		if err := json.Unmarshal(ex.RequestBody, &s); err == nil {
			body = strings.NewReader(s)
			contentType = "application/x-www-form-urlencoded"
		} else {
			body = strings.NewReader(pythonJSON(t, ex.RequestBody))
			contentType = "application/json"
		}
	}
	req, err := http.NewRequest(ex.Method, "http://"+tgt.addr+ex.Path, body)
	if err != nil {
		t.Fatalf("build request: %v", err)
	}
	req.Header["User-Agent"] = []string{""}
	req.Header.Set("Accept-Encoding", "identity")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, val := range ex.RequestHeaders {
		if strings.EqualFold(k, "Host") {
			req.Host = val
			continue
		}
		req.Header[k] = []string{val}
	}
	// A new connection per request, as recorded, without asking for
	// Connection: close (Go's client would then hide Kong's own).
	tr := &http.Transport{DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", ex.Method, ex.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return resp, b
}

// ignoredResponseHeaders are volatile or transport-level (README,
// "Volatile fields"); presenceOnly must exist but may differ.
var (
	ignoredResponseHeaders = map[string]bool{"date": true, "content-length": true, "transfer-encoding": true}
	presenceOnlyHeaders    = map[string]bool{"x-kong-upstream-latency": true, "x-kong-proxy-latency": true}
)

func compareProxyExchange(t *testing.T, tgt replayTarget, ex *exchange) []string {
	resp, body := sendProxyExchange(t, tgt, ex)
	var problems []string
	if resp.StatusCode != ex.Status {
		problems = append(problems, fmt.Sprintf("status %d, recorded %d (body %q)", resp.StatusCode, ex.Status, truncate(string(body))))
		return problems
	}
	problems = append(problems, compareResponseHeaders(ex.Headers, resp.Header, resp.Close)...)
	var recorded any
	if err := decodeUseNumber(ex.Body, &recorded); err != nil {
		return append(problems, "recorded body unreadable: "+err.Error())
	}
	switch rb := recorded.(type) {
	case string:
		if ex.Method == http.MethodHead {
			rb = ""
		}
		if string(body) != rb {
			problems = append(problems, fmt.Sprintf("body %q, recorded %q", truncate(string(body)), truncate(rb)))
		}
	case map[string]any:
		var got map[string]any
		if err := decodeUseNumber(body, &got); err != nil {
			return append(problems, fmt.Sprintf("body is not JSON: %q", truncate(string(body))))
		}
		if rb["echo"] == true {
			problems = append(problems, compareEcho(tgt, rb, got)...)
		} else if !reflect.DeepEqual(rb, got) {
			problems = append(problems, fmt.Sprintf("body %s, recorded %s", mustJSON(got), mustJSON(rb)))
		}
	default:
		if !bytes.Equal(bytes.TrimSpace(body), bytes.TrimSpace(ex.Body)) {
			problems = append(problems, fmt.Sprintf("body %q, recorded %s", truncate(string(body)), ex.Body))
		}
	}
	return problems
}

// compareResponseHeaders compares headers; closed reports a
// `Connection: close`, which Go's client takes out of the header map.
func compareResponseHeaders(recorded map[string]string, got http.Header, closed bool) []string {
	var problems []string
	rec := map[string][]string{}
	for k, val := range recorded {
		lk := strings.ToLower(k)
		rec[lk] = append(rec[lk], val)
	}
	for lk, vals := range rec {
		if ignoredResponseHeaders[lk] {
			continue
		}
		gotVals := got.Values(lk)
		switch {
		case lk == "connection":
			// Keep-alive is the transport's business; close and Upgrade are
			// Kong's answers.
			for _, want := range vals {
				if want == "keep-alive" || (want == "close" && closed) {
					continue
				}
				if !containsFold(gotVals, want) {
					problems = append(problems, fmt.Sprintf("header Connection %v, recorded %q", gotVals, want))
				}
			}
		case len(gotVals) == 0:
			problems = append(problems, fmt.Sprintf("header %s missing (recorded %q)", lk, vals[0]))
		case presenceOnlyHeaders[lk] || strings.HasPrefix(lk, "x-ratelimit-remaining-"):
		case strings.Join(gotVals, ", ") != vals[0]:
			problems = append(problems, fmt.Sprintf("header %s %q, recorded %q", lk, strings.Join(gotVals, ", "), vals[0]))
		}
	}
	for k := range got {
		lk := strings.ToLower(k)
		if ignoredResponseHeaders[lk] || lk == "connection" {
			continue
		}
		if _, ok := rec[lk]; !ok {
			problems = append(problems, fmt.Sprintf("unexpected header %s: %q", k, got.Get(k)))
		}
	}
	sort.Strings(problems)
	return problems
}

func containsFold(vals []string, want string) bool {
	for _, v := range vals {
		for _, part := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(part), want) {
				return true
			}
		}
	}
	return false
}

// compareEcho checks what the upstream saw.
func compareEcho(tgt replayTarget, rec, got map[string]any) []string {
	var problems []string
	for _, k := range []string{"method", "path", "query", "body"} {
		rv, ok := rec[k]
		if !ok {
			continue
		}
		if k == "path" && strings.Contains(fmt.Sprint(rv), "added=1") {
			// request-transformer rebuilds the query from a Lua table:
			// argument order is volatile (conversion README, "0.13.1").
			if !sameQueryArgs(fmt.Sprint(rv), fmt.Sprint(got[k])) {
				problems = append(problems, fmt.Sprintf("upstream %s %v, recorded %v", k, got[k], rv))
			}
			continue
		}
		if k == "query" && strings.Contains(fmt.Sprint(rv), "added=1") {
			continue
		}
		if !reflect.DeepEqual(rv, got[k]) {
			problems = append(problems, fmt.Sprintf("upstream %s %v, recorded %v", k, got[k], rv))
		}
	}
	recH, _ := rec["headers"].(map[string]any)
	gotH, _ := got["headers"].(map[string]any)
	lower := func(m map[string]any) map[string]string {
		out := map[string]string{}
		for k, v := range m {
			out[strings.ToLower(k)] = fmt.Sprint(v)
		}
		return out
	}
	rl, gl := lower(recH), lower(gotH)
	_, port, _ := net.SplitHostPort(tgt.addr)
	for k, want := range rl {
		g, ok := gl[k]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("upstream header %s missing (recorded %q)", k, want))
		case k == "x-forwarded-port":
			// The recording's listener port is kept literally.
			if g != port {
				problems = append(problems, fmt.Sprintf("upstream X-Forwarded-Port %s, want our listener %s", g, port))
			}
		case want == "PROXY":
			if g != tgt.addr {
				problems = append(problems, fmt.Sprintf("upstream header %s %q, want the proxy address", k, g))
			}
		case g != tgt.mapID(want):
			problems = append(problems, fmt.Sprintf("upstream header %s %q, recorded %q", k, g, want))
		}
	}
	for k, g := range gl {
		if _, ok := rl[k]; !ok {
			problems = append(problems, fmt.Sprintf("unexpected upstream header %s: %q", k, g))
		}
	}
	sort.Strings(problems)
	return problems
}

func sameQueryArgs(a, b string) bool {
	split := func(s string) (string, []string) {
		p, q, _ := strings.Cut(s, "?")
		args := strings.Split(q, "&")
		sort.Strings(args)
		return p, args
	}
	pa, qa := split(a)
	pb, qb := split(b)
	return pa == pb && reflect.DeepEqual(qa, qb)
}

func truncate(s string) string {
	if len(s) > 300 {
		return s[:300] + "…"
	}
	return s
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestReplayProxyStory replays the proxy exchanges of stages 2-4 in
// recording order, with the Admin API writes applied in between.
func TestReplayProxyStory(t *testing.T) {
	h := newReplayHarness(t)
	const (
		s2a  = "stage2-0.13.1-admin/0.13.1/admin"
		s2p  = "stage2-0.13.1-admin/0.13.1/proxy/"
		s3a  = "stage3-0.14.1-upgrade/0.14.1/admin"
		s3p  = "stage3-0.14.1-upgrade/0.14.1/proxy/"
		s3o  = "stage3-0.14.1-upgrade/0.13.1/proxy/"
		s4a  = "stage4-1.0.3-upgrade/0.14.1/admin/"
		s4b  = "stage4-1.0.3-upgrade/1.0.3/admin/"
		s4p  = "stage4-1.0.3-upgrade/0.14.1/proxy/"
		s4p1 = "stage4-1.0.3-upgrade/1.0.3/proxy/"
	)
	// Stage 2: everything up to the global termination's delete.
	h.adminRange(s2a, 1, 56)
	h.probe(V0131, s2p+"01-api-test-no-key-while-termination.json", s2p+"02-api-test-with-key-while-termination.json",
		s2p+"03-route-svc13-while-termination.json", s2p+"04-no-match-while-termination.json")
	h.adminRange(s2a, 57, 58)
	h.probe(V0131, s2p+"05-api-test-with-key.json", s2p+"06-api-test-no-key.json", s2p+"07-api-test-wrong-key.json",
		s2p+"08-api-secure-https-only-over-http.json", s2p+"09-api-legacy-form-created.json", s2p+"10-route-svc13.json",
		s2p+"11-no-match.json")

	// Stage 3: 0.14.1 on the migrated database, then the old 0.13.1 node.
	h.adminRange(s3a, 1, 33)
	h.probe(V0141, s3p+"01-api-test-with-key.json", s3p+"02-route-svc13.json", s3p+"03-route-svc14-rate-limited.json",
		s3p+"04-no-match.json")
	h.adminRange(s3a, 34, 34)
	h.probe(V0141, s3p+"05-route-svc14-while-termination.json", s3p+"06-api-test-with-key-while-termination.json")
	h.adminRange(s3a, 35, 35)
	h.probe(V0141, s3p+"07-route-svc14-after-termination-removed.json")
	h.probe(V0131, s3o+"01-old-node-api-test-with-key.json", s3o+"02-old-node-route-svc14.json")

	// Stage 4: APIs deleted through 0.14.1; 1.0.3 beside 0.14.1.
	h.admin(s4a+"02-delete-api-secure.json", s4a+"03-delete-api-test.json", s4a+"04-delete-api-legacy.json")
	h.adminRange(s4b, 11, 43)
	h.probe(V103, s4p1+"01-route-svc10.json", s4p1+"02-route-svc14-from-0.14.json", s4p1+"03-route-svc13-from-0.13.json",
		s4p1+"04-api-test-gone.json", s4p1+"05-no-match.json")
	h.probe(V0141, s4p+"01-mixed-route-svc14.json", s4p+"02-mixed-route-svc13.json",
		s4p+"03-mixed-route-svc10-created-by-1.0.json", s4p+"04-mixed-no-match.json")
	h.admin(s4a+"10-mixed-post-service.json", s4a+"11-mixed-post-service-route.json")
	h.probe(V103, s4p1+"06-route-svc14late-created-by-0.14.json")
	// A global request-termination written through 1.0.3 (JSON nulls).
	h.admin(s4b + "44-post-global-request-termination.json")
	h.probe(V103, s4p1+"07-route-svc14-while-termination.json")
	h.probe(V0141, s4p+"05-mixed-route-svc14-while-1.0-termination.json")
	h.admin(s4b + "46-delete-global-request-termination.json")
	h.probe(V103, s4p1+"08-route-svc14-after-termination-removed.json")
	h.probe(V0141, s4p+"06-mixed-route-svc14-after-1.0-termination-removed.json")
	// One written through 0.14.1: 1.0.3's plugins_map does not know the
	// name until a plugin is written through 1.0.3 (the node cache's job;
	// here the view is built that way).
	before := h.store.pluginNames()
	h.admin(s4a + "13-mixed-post-global-request-termination.json")
	h.probe(V0141, s4p+"07-mixed-route-svc14-while-0.14-termination.json")
	h.pluginsMap[V103] = before
	h.probe(V103, s4p1+"09-route-svc14-while-0.14-termination-after-6s.json",
		s4p1+"10-route-svc14-while-0.14-termination-after-12s.json")
	h.admin(s4b + "48-patch-unrelated-plugin-through-1.0.json")
	delete(h.pluginsMap, V103)
	h.probe(V103, s4p1+"11-route-svc14-while-0.14-termination-after-1.0-plugin-write.json")
	h.admin(s4a + "14-mixed-delete-global-request-termination.json")
	h.probe(V0141, s4p+"08-mixed-route-svc14-after-0.14-termination-removed.json")
	h.probe(V103, s4p1+"12-route-svc14-after-0.14-termination-removed.json")
	// After finish.
	h.probe(V0141, s4p+"09-after-finish-route-svc14.json", s4p+"10-after-finish-route-svc13.json")
	h.probe(V103, s4p1+"13-after-finish-route-svc14.json")

	all, err := filepath.Glob(filepath.Join(h.dir, "*", "*", "proxy", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range all {
		rel, _ := filepath.Rel(h.dir, f)
		if !h.probed[rel] {
			t.Errorf("proxy fixture %s is not replayed", rel)
		}
	}
}

// TestReplayConversion replays kong-fixtures/conversion: every API probed
// through the 0.14.1 APIs router ("before", all APIs in place, which the
// README says gave the same answers as the recording order), then through
// its converted Service + Route ("after", all conversions done), and the
// Route-versus-API precedence sequences.
func TestReplayConversion(t *testing.T) {
	dir := filepath.Join(fixturesDir(t), "conversion")
	folders, err := filepath.Glob(filepath.Join(dir, "[0-9][0-9]-*"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(folders)
	var regular []string
	methodsOnly := ""
	for _, f := range folders {
		switch base := filepath.Base(f); {
		case strings.HasPrefix(base, "99-"):
		case strings.HasPrefix(base, "29-"):
			methodsOnly = base
		default:
			regular = append(regular, base)
		}
	}
	setup := func(h *replayHarness, folder string) {
		h.admin("conversion/" + folder + "/api.json")
		for _, f := range sortedFixtureFiles(t, filepath.Join(dir, folder, "setup")) {
			h.admin(strings.TrimPrefix(f, h.dir+"/"))
		}
	}
	convert := func(h *replayHarness, folder string) {
		for _, f := range sortedFixtureFiles(t, filepath.Join(dir, folder, "convert")) {
			h.admin(strings.TrimPrefix(f, h.dir+"/"))
		}
	}
	probeDir := func(h *replayHarness, v Version, folder, sub string) {
		for _, f := range sortedFixtureFiles(t, filepath.Join(dir, folder, sub)) {
			h.probe(v, strings.TrimPrefix(f, h.dir+"/"))
		}
	}

	t.Run("before", func(t *testing.T) {
		h := newReplayHarness(t)
		for _, f := range regular {
			setup(h, f)
		}
		for _, f := range regular {
			probeDir(h, V0141, f, "before")
			probeDir(h, V0141, f, "before-trusted-node")
			probeDir(h, V0131, f, "before-0.13.1")
		}
	})
	t.Run("after", func(t *testing.T) {
		h := newReplayHarness(t)
		for _, f := range regular {
			setup(h, f)
			convert(h, f)
		}
		for _, f := range regular {
			probeDir(h, V0141, f, "after")
			probeDir(h, V0141, f, "after-trusted-node")
		}
		if methodsOnly != "" {
			// API 29 came last, beside the 28 converted Routes.
			setup(h, methodsOnly)
			probeDir(h, V0141, methodsOnly, "before")
			convert(h, methodsOnly)
			probeDir(h, V0141, methodsOnly, "after")
		}
	})
	cases, err := filepath.Glob(filepath.Join(dir, "99-precedence", "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run("precedence/"+filepath.Base(c), func(t *testing.T) {
			h := newReplayHarness(t)
			for _, f := range sortedFixtureFiles(t, c) {
				rel := strings.TrimPrefix(f, h.dir+"/")
				if strings.Contains(filepath.Base(f), "-admin-") {
					h.admin(rel)
				} else {
					h.probe(V0141, rel)
				}
			}
		})
	}
}

// pythonJSON re-encodes a JSON body the way the recorder (Python's
// json.dumps) sent it: key order kept, ", " and ": " separators.
func pythonJSON(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var b strings.Builder
	type frame struct {
		obj   bool
		count int
	}
	var stack []frame
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("request body: %v", err)
		}
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			stack = stack[:len(stack)-1]
			b.WriteRune(rune(d))
			continue
		}
		if n := len(stack); n > 0 {
			top := &stack[n-1]
			switch {
			case top.obj && top.count%2 == 1:
				b.WriteString(": ")
			case top.count > 0:
				b.WriteString(", ")
			}
			top.count++
		}
		switch v := tok.(type) {
		case json.Delim:
			b.WriteRune(rune(v))
			stack = append(stack, frame{obj: v == '{'})
		case string:
			enc, _ := json.Marshal(v)
			b.Write(enc)
		case nil:
			b.WriteString("null")
		default:
			b.WriteString(fmt.Sprint(v))
		}
	}
	return b.String()
}
