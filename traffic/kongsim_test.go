package traffic_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kongbot/kongbot/internal/haproxyproc"
	"github.com/kongbot/kongbot/internal/pgtest"
	"github.com/kongbot/kongbot/kongsim"
	"github.com/kongbot/kongbot/steps"
	"github.com/kongbot/kongbot/traffic"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// kongRig is hop 2 as it really stands: one datastore after 1.0.3's
// `migrations up`, two 0.14.1 nodes (old) and two 1.0.3 nodes (new), all
// kongsim, proxying a Route /test to one upstream, HAProxy in front.
type kongRig struct {
	old, new []*kongsim.Node
	proc     *haproxyproc.Process
	hap      *traffic.HAProxy
}

func newKongRig(t *testing.T) *kongRig {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dsn := pgtest.New(t)
	migrate := func(v kongsim.Version, cmd string) {
		t.Helper()
		var out, errb bytes.Buffer
		if code := kongsim.Migrate(ctx, kongsim.MigrateOptions{Version: v, DSN: dsn}, cmd, &out, &errb); code != 0 {
			t.Fatalf("kong %s migrations %s: exit %d: %s %s", v, cmd, code, out.String(), errb.String())
		}
	}
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(time.Millisecond)
		fmt.Fprintln(w, `{"ok":true}`)
	}))
	t.Cleanup(upstream.Close)

	start := func(v kongsim.Version, name string) *kongsim.Node {
		t.Helper()
		n, err := kongsim.Start(ctx, kongsim.Options{Version: v, DSN: dsn, Name: name, DBUpdateFrequency: 200 * time.Millisecond})
		if err != nil {
			t.Fatalf("start %s %s: %v", v, name, err)
		}
		t.Cleanup(n.Stop)
		return n
	}
	r := &kongRig{}
	migrate(kongsim.V0141, "up")
	r.old = []*kongsim.Node{start(kongsim.V0141, "kong-old-1"), start(kongsim.V0141, "kong-old-2")}
	admin := func(path string, form url.Values) {
		t.Helper()
		resp, err := http.PostForm(r.old[0].AdminURL()+path, form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("POST %s: %d", path, resp.StatusCode)
		}
	}
	admin("/services", url.Values{"name": {"echo"}, "url": {upstream.URL}})
	admin("/services/echo/routes", url.Values{"paths[]": {"/test"}})
	migrate(kongsim.V103, "up")
	r.new = []*kongsim.Node{start(kongsim.V103, "kong-new-1"), start(kongsim.V103, "kong-new-2")}

	// Every proxy serves the route before HAProxy sends anything there.
	for _, n := range append(append([]*kongsim.Node{}, r.old...), r.new...) {
		waitFor(t, n.Name()+" serves /test", func() (bool, string) {
			resp, err := http.Get(n.ProxyURL() + "/test")
			if err != nil {
				return false, err.Error()
			}
			resp.Body.Close()
			return resp.StatusCode == 200, resp.Status
		})
	}

	var servers []haproxyproc.Server
	addr := func(n *kongsim.Node) string { return strings.TrimPrefix(n.ProxyURL(), "http://") }
	for i, n := range r.old {
		servers = append(servers, haproxyproc.Server{Name: fmt.Sprintf("old%d", i+1), Addr: addr(n), Weight: 256})
	}
	for i, n := range r.new {
		servers = append(servers, haproxyproc.Server{Name: fmt.Sprintf("new%d", i+1), Addr: addr(n), Weight: 0})
	}
	dir, err := os.MkdirTemp("", "hap")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if r.proc, err = haproxyproc.Start(ctx, haproxyproc.Options{Dir: dir, Servers: servers}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.proc.Close() })
	if r.hap, err = traffic.NewHAProxy(traffic.HAProxyOptions{Address: "unix:" + r.proc.Socket, Backend: r.proc.Backend,
		Old: []string{"old1", "old2"}, New: []string{"new1", "new2"}}); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestShiftKongsimClusters runs hop 2's shift between two simulated Kong
// clusters under 300 requests/s (60 under the race detector): no request
// fails. Then the new cluster fails 20 % of its requests (kongsim proxy
// fault) and hop 1's fast plan (50 then 100 %) stops on the gate at 50 %
// and rolls back.
func TestShiftKongsimClusters(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL, four kongsim nodes and HAProxy")
	}
	r := newKongRig(t)
	ctx := context.Background()
	rate, minSent, bake := 300.0, 1500, 1500*time.Millisecond
	if raceEnabled {
		rate, minSent, bake = 60, 300, 3*time.Second
	}
	g := &traffic.Gateway{
		Backend: r.hap,
		Plans: map[string]traffic.Plan{
			"hop2": hop2(bake),
			"hop1": {Fast: true, Stages: []traffic.Stage{{NewPct: 50, Bake: bake}, {NewPct: 100, Bake: bake}}},
		},
		Gates:  traffic.Gates{MinRequests: 10, Interval: 250 * time.Millisecond},
		Probes: []traffic.Probe{{Name: "new1 /test", URL: r.new[0].ProxyURL() + "/test", WantStatus: 200}},
	}
	tr := newTraffic(t, g)

	stop := load(t, r.proc.FrontURL+"/test", rate)
	time.Sleep(300 * time.Millisecond)
	// On a loaded machine kongsim may answer too slowly for a stage to see
	// enough traffic; the gate then asks, and the test answers as a lead
	// would. What this test asserts is that no request fails.
	c, err := shiftThrough(ctx, t, tr, "hop2", newJournal(), &sink{t: t})
	time.Sleep(300 * time.Millisecond)
	res := stop()
	if err != nil || !c.OK {
		t.Fatalf("shift: %+v, %v", c, err)
	}
	t.Logf("load through kongsim: %s", res)
	if res.Failed != 0 || res.Sent < minSent {
		t.Fatalf("want 0 failed of at least %d: %s", minSent, res)
	}
	share := traffic.ShareProbe{URL: r.proc.FrontURL + "/test", OldVersion: "0.14.1", NewVersion: "1.0.3", Requests: 20}
	if vc, err := share.Verify(ctx, traffic.Split(100)); err != nil || !vc.OK {
		t.Fatalf("Via headers after the shift: %+v, %v", vc, err)
	}

	// Back to the old cluster, and the new one breaks.
	if err := tr.RollBack(ctx, "prod", nil, nil); err != nil {
		t.Fatal(err)
	}
	for _, n := range r.new {
		if err := n.SetProxyFault(kongsim.ProxyFault{FailShare: 0.2, FailStatus: 500}); err != nil {
			t.Fatal(err)
		}
	}
	g.Probes = nil // the gate must catch it from HAProxy's counters alone
	stop = load(t, r.proc.FrontURL+"/test", rate)
	defer stop()
	c, err = tr.Shift(ctx, "prod", "hop1", newJournal(), &sink{t: t})
	if err != nil {
		t.Fatal(err)
	}
	if c.Pause == nil || c.Pause.Kind != steps.PauseBreach || !strings.Contains(c.Pause.Message, "weights rolled back to old 100 / new 0") {
		t.Fatalf("want a breach at 50 %% rolled back to 0, got %+v", c)
	}
	t.Logf("breach: %s", c.Pause.Message)
	if vc, err := r.hap.VerifyWeights(ctx, traffic.Split(0)); err != nil || !vc.OK {
		t.Fatalf("weights after the breach: %+v, %v", vc, err)
	}
}
