package kongsim

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kongbot/kongbot/internal/pgtest"
)

// TestReplayProxyThroughNodes replays the proxy exchanges of stages 2-4
// through real kongsim nodes on one Postgres database, with the recorded
// Admin API writes sent to the nodes' Admin APIs and the migrations run in
// between, as the recording did: the whole path (Admin API, datastore,
// cluster_events, node cache, proxy) is under test. Ids differ from the
// recording and are mapped.
func TestReplayProxyThroughNodes(t *testing.T) {
	r := newNodeReplay(t)
	const (
		s2a  = "stage2-0.13.1-admin/0.13.1/admin/"
		s2p  = "stage2-0.13.1-admin/0.13.1/proxy/"
		s3a  = "stage3-0.14.1-upgrade/0.14.1/admin/"
		s3p  = "stage3-0.14.1-upgrade/0.14.1/proxy/"
		s3o  = "stage3-0.14.1-upgrade/0.13.1/proxy/"
		s4a  = "stage4-1.0.3-upgrade/0.14.1/admin/"
		s4b  = "stage4-1.0.3-upgrade/1.0.3/admin/"
		s4p  = "stage4-1.0.3-upgrade/0.14.1/proxy/"
		s4p1 = "stage4-1.0.3-upgrade/1.0.3/proxy/"
	)
	r.migrate(V0131, "up")
	r.start(V0131)
	r.adminRange(V0131, s2a, 1, 56)
	r.probe(V0131, s2p, "01-api-test-no-key-while-termination.json", "02-api-test-with-key-while-termination.json",
		"03-route-svc13-while-termination.json", "04-no-match-while-termination.json")
	r.adminRange(V0131, s2a, 57, 58)
	r.probe(V0131, s2p, "05-api-test-with-key.json", "06-api-test-no-key.json", "07-api-test-wrong-key.json",
		"08-api-secure-https-only-over-http.json", "09-api-legacy-form-created.json", "10-route-svc13.json", "11-no-match.json")
	r.stop(V0131)

	r.migrate(V0141, "up")
	r.start(V0141)
	r.adminRange(V0141, s3a, 1, 33)
	r.probe(V0141, s3p, "01-api-test-with-key.json", "02-route-svc13.json", "03-route-svc14-rate-limited.json", "04-no-match.json")
	r.adminRange(V0141, s3a, 34, 34)
	r.probe(V0141, s3p, "05-route-svc14-while-termination.json", "06-api-test-with-key-while-termination.json")
	r.adminRange(V0141, s3a, 35, 35)
	r.probe(V0141, s3p, "07-route-svc14-after-termination-removed.json")
	r.start(V0131) // the old node on the migrated database
	r.probe(V0131, s3o, "01-old-node-api-test-with-key.json", "02-old-node-route-svc14.json")
	r.stop(V0131)

	r.adminRange(V0141, s4a, 2, 4)
	r.migrate(V103, "up")
	r.start(V103)
	r.adminRange(V103, s4b, 11, 43)
	r.probe(V103, s4p1, "01-route-svc10.json", "02-route-svc14-from-0.14.json", "03-route-svc13-from-0.13.json",
		"04-api-test-gone.json", "05-no-match.json")
	r.probeEventually(V0141, s4p, "01-mixed-route-svc14.json", "02-mixed-route-svc13.json", "03-mixed-route-svc10-created-by-1.0.json",
		"04-mixed-no-match.json")
	r.adminRange(V0141, s4a, 10, 11)
	r.probeEventually(V103, s4p1, "06-route-svc14late-created-by-0.14.json")
	r.adminRange(V103, s4b, 44, 45)
	r.probe(V103, s4p1, "07-route-svc14-while-termination.json")
	r.probeEventually(V0141, s4p, "05-mixed-route-svc14-while-1.0-termination.json")
	r.adminRange(V103, s4b, 46, 46)
	r.probe(V103, s4p1, "08-route-svc14-after-termination-removed.json")
	r.probeEventually(V0141, s4p, "06-mixed-route-svc14-after-1.0-termination-removed.json")
	r.adminRange(V0141, s4a, 13, 13)
	r.probe(V0141, s4p, "07-mixed-route-svc14-while-0.14-termination.json")
	r.propagate()
	r.probe(V103, s4p1, "09-route-svc14-while-0.14-termination-after-6s.json")
	r.propagate()
	r.probe(V103, s4p1, "10-route-svc14-while-0.14-termination-after-12s.json")
	r.adminRange(V103, s4b, 48, 48)
	r.probe(V103, s4p1, "11-route-svc14-while-0.14-termination-after-1.0-plugin-write.json")
	r.adminRange(V0141, s4a, 14, 14)
	r.probe(V0141, s4p, "08-mixed-route-svc14-after-0.14-termination-removed.json")
	r.probeEventually(V103, s4p1, "12-route-svc14-after-0.14-termination-removed.json")
	r.migrate(V103, "finish")
	r.probe(V0141, s4p, "09-after-finish-route-svc14.json", "10-after-finish-route-svc13.json")
	r.probe(V103, s4p1, "13-after-finish-route-svc14.json")

	all, err := filepath.Glob(filepath.Join(r.dir, "*", "*", "proxy", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range all {
		rel, _ := filepath.Rel(r.dir, f)
		if !r.probed[rel] {
			t.Errorf("proxy fixture %s is not replayed through nodes", rel)
		}
	}
}

var replayUUID = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)

type nodeReplay struct {
	t      *testing.T
	ctx    context.Context
	dir    string
	dsn    string
	freq   time.Duration
	echo   string
	nodes  map[Version]*Node
	ids    map[string]string // recorded id → actual id
	probed map[string]bool
}

func newNodeReplay(t *testing.T) *nodeReplay {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	t.Cleanup(cancel)
	echo := httptest.NewServer(echoHandler())
	t.Cleanup(echo.Close)
	r := &nodeReplay{t: t, ctx: ctx, dir: fixturesDir(t), dsn: pgtest.New(t), freq: 200 * time.Millisecond,
		echo: strings.TrimPrefix(echo.URL, "http://"), nodes: map[Version]*Node{}, ids: map[string]string{}, probed: map[string]bool{}}
	t.Cleanup(func() {
		for _, n := range r.nodes {
			n.Stop()
		}
	})
	return r
}

func (r *nodeReplay) migrate(v Version, cmd string) {
	r.t.Helper()
	var out bytes.Buffer
	if code := Migrate(r.ctx, MigrateOptions{Version: v, DSN: r.dsn}, cmd, &out, &out); code != 0 {
		r.t.Fatalf("%s migrations %s: exit %d\n%s", v, cmd, code, out.String())
	}
}

// start runs a node whose proxy dials the echo server for the recorded
// upstream 127.0.0.1:15555.
func (r *nodeReplay) start(v Version) {
	r.t.Helper()
	n, err := Start(r.ctx, Options{Version: v, DSN: r.dsn, DBUpdateFrequency: r.freq, Proxy: func(n *Node) http.Handler {
		p := newProxy(n.version, n.View, n.Fault, n.log)
		p.dialMap = map[string]string{"127.0.0.1:15555": r.echo}
		return p
	}})
	if err != nil {
		r.t.Fatalf("start %s: %v", v, err)
	}
	r.nodes[v] = n
}

func (r *nodeReplay) stop(v Version) {
	r.nodes[v].Stop()
	delete(r.nodes, v)
}

// propagate waits for other nodes' cluster_events polls.
func (r *nodeReplay) propagate() { time.Sleep(3 * r.freq) }

func (r *nodeReplay) mapIDs(s string) string {
	return replayUUID.ReplaceAllStringFunc(s, func(id string) string {
		if a, ok := r.ids[id]; ok {
			return a
		}
		return id
	})
}

// adminRange sends the successful writes among the folder's exchanges
// numbered from..to to version v's Admin API and learns the new ids.
func (r *nodeReplay) adminRange(v Version, dir string, from, to int) {
	r.t.Helper()
	files := sortedFixtureFiles(r.t, filepath.Join(r.dir, dir))
	sort.Strings(files)
	for _, f := range files {
		num, err := strconv.Atoi(strings.SplitN(filepath.Base(f), "-", 2)[0])
		if err != nil || num < from || num > to {
			continue
		}
		ex := loadExchange(r.t, f)
		if ex.Method == http.MethodGet || ex.Status >= 300 {
			continue
		}
		r.sendAdmin(v, f, ex)
	}
}

func (r *nodeReplay) sendAdmin(v Version, file string, ex *exchange) {
	r.t.Helper()
	var body io.Reader
	ct := ""
	if len(ex.RequestBody) > 0 && string(ex.RequestBody) != "null" {
		var s string
		if err := json.Unmarshal(ex.RequestBody, &s); err == nil {
			body, ct = strings.NewReader(r.mapIDs(s)), "application/x-www-form-urlencoded"
		} else {
			var buf bytes.Buffer
			if err := json.Compact(&buf, ex.RequestBody); err != nil {
				r.t.Fatal(err)
			}
			body, ct = strings.NewReader(r.mapIDs(buf.String())), "application/json"
		}
	}
	req, err := http.NewRequestWithContext(r.ctx, ex.Method, r.nodes[v].AdminURL()+r.mapIDs(ex.Path), body)
	if err != nil {
		r.t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	for k, val := range ex.RequestHeaders {
		req.Header.Set(k, val)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatalf("%s: %v", file, err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != ex.Status {
		r.t.Fatalf("%s: %s %s answered %d %s, recorded %d", file, ex.Method, ex.Path, resp.StatusCode, got, ex.Status)
	}
	var rec, act map[string]any
	if json.Unmarshal(ex.Body, &rec) == nil && json.Unmarshal(got, &act) == nil {
		if rid, ok := rec["id"].(string); ok {
			if aid, ok := act["id"].(string); ok {
				r.ids[rid] = aid
			}
		}
	}
}

// probeEventually is probe for an answer that depends on another node's
// write: it retries until the answer matches (or 15 s pass), since a
// loaded machine may delay a cluster_events poll.
func (r *nodeReplay) probeEventually(v Version, dir string, files ...string) {
	r.t.Helper()
	n := r.nodes[v]
	tgt := replayTarget{addr: strings.TrimPrefix(n.ProxyURL(), "http://"), mapID: r.mapIDs}
	for _, f := range files {
		ex := loadExchange(r.t, filepath.Join(r.dir, dir+f))
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) && len(compareProxyExchange(r.t, tgt, ex)) > 0 {
			time.Sleep(r.freq) // not faster: svc14 is rate-limited at 100/minute
		}
	}
	r.probe(v, dir, files...)
}

func (r *nodeReplay) probe(v Version, dir string, files ...string) {
	r.t.Helper()
	n := r.nodes[v]
	for _, f := range files {
		rel := dir + f
		r.probed[rel] = true
		tgt := replayTarget{addr: strings.TrimPrefix(n.ProxyURL(), "http://"), mapID: r.mapIDs}
		checkProxyExchange(r.t, tgt, rel, loadExchange(r.t, filepath.Join(r.dir, rel)))
	}
}
