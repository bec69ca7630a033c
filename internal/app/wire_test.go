package app

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kongbot/kongbot/config"
	"github.com/kongbot/kongbot/runner"
	"github.com/kongbot/kongbot/steps"
	"github.com/kongbot/kongbot/store"
	"github.com/kongbot/kongbot/traffic"
)

func TestRedactorKeepsSecretsOutOfLogRecords(t *testing.T) {
	const (
		dsn      = "postgres://kong:Pa55w0rd-zz@pg.internal:5432/kong?sslmode=require"
		kvDSN    = "host=pg dbname=kong user=kong password=kvS3cret99"
		botToken = "xoxb-1111-2222-abcdefabcdef"
	)
	r := NewRedactorFor(dsn, kvDSN, botToken, "short")
	tests := []struct {
		name   string
		log    func(l *slog.Logger)
		hidden []string
		kept   []string
	}{
		{"secret in the message", func(l *slog.Logger) { l.Info("token is " + botToken) }, []string{botToken}, []string{"token is [redacted]"}},
		{"DSN in a string attribute", func(l *slog.Logger) { l.Info("connecting", "target", dsn) }, []string{"Pa55w0rd-zz"}, []string{"connecting"}},
		{"password alone in an error", func(l *slog.Logger) {
			l.Error("failed", "err", fmt.Errorf("auth failed for password %q: %w", "Pa55w0rd-zz", errors.New("boom")))
		}, []string{"Pa55w0rd-zz"}, []string{"auth failed for password", "boom"}},
		{"key=value DSN password", func(l *slog.Logger) { l.Warn("x", "detail", "bad login password=kvS3cret99") }, []string{"kvS3cret99"}, nil},
		{"a key naming a DSN keeps the host", func(l *slog.Logger) { l.Info("x", "dsn", "postgres://u:other-pass@db:5432/k") },
			[]string{"other-pass"}, []string{"db:5432"}},
		{"a key naming a token is redacted whatever it holds", func(l *slog.Logger) { l.Info("x", "app_token", "xapp-unknown-to-config") },
			[]string{"xapp-unknown-to-config"}, []string{`"app_token":"[redacted]"`}},
		{"inside a group", func(l *slog.Logger) { l.WithGroup("req").Info("x", "header", "Bearer "+botToken) }, []string{botToken}, nil},
		{"structured value holding a secret", func(l *slog.Logger) { l.Info("x", "cfg", map[string]string{"dsn": dsn}) }, []string{"Pa55w0rd-zz"}, nil},
		{"short values are not treated as secrets", func(l *slog.Logger) { l.Info("a short word") }, nil, []string{"a short word"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			tc.log(NewLogger(&b, slog.LevelDebug, r))
			out := b.String()
			for _, h := range tc.hidden {
				if strings.Contains(out, h) {
					t.Errorf("log holds %q: %s", h, out)
				}
			}
			for _, k := range tc.kept {
				if !strings.Contains(out, k) {
					t.Errorf("log lost %q: %s", k, out)
				}
			}
		})
	}
}

func TestDatastoreLabelNamesNoPassword(t *testing.T) {
	tests := []struct{ dsn, want string }{
		{"postgres://kong:secret@pg.internal:5432/kong?sslmode=require", "kong@pg.internal:5432"},
		{"host=pg port=6432 dbname=konga user=k password='x y'", "konga@pg:6432"},
		{"postgres://pg/", "postgres@pg"},
		{"", "its datastore"},
	}
	for _, tc := range tests {
		if got := datastoreLabel(tc.dsn); got != tc.want {
			t.Errorf("datastoreLabel(%q) = %q, want %q", config.Redact(tc.dsn), got, tc.want)
		}
	}
}

func TestDetectVersionTakesTheOldestAnsweringNode(t *testing.T) {
	tests := []struct {
		name  string
		nodes []steps.Node
		want  string
		err   string
	}{
		{"old cluster still up", []steps.Node{
			{Name: "a", Reachable: true, Version: "0.14.1"}, {Name: "b", Reachable: true, Version: "0.13.1"}, {Name: "c"},
		}, "0.13.1", ""},
		{"numeric, not lexical", []steps.Node{{Name: "a", Reachable: true, Version: "0.9.9"}, {Name: "b", Reachable: true, Version: "0.13.1"}}, "0.9.9", ""},
		{"only new nodes answer", []steps.Node{{Name: "a"}, {Name: "b", Reachable: true, Version: "1.0.3"}}, "1.0.3", ""},
		{"nothing answers", []steps.Node{{Name: "a"}, {Name: "b", Reachable: true}}, "", "no node of gateway prod answers (a, b)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DetectVersion(steps.Inventory{Gateway: "prod", Nodes: tc.nodes})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("DetectVersion = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func gatewayWith(versions []string, tr config.Traffic) *config.Gateway {
	g := &config.Gateway{Name: "prod", Generations: map[string]config.Generation{}, Traffic: tr,
		Termination: config.Termination{Status: 503},
		SmokeProbes: []config.Probe{
			{Name: "anon", Method: "GET", Path: "/test?x=1", Host: "api.example.com", ExpectStatus: 401},
			{Name: "new only", Method: "GET", Path: "/test", ExpectStatus: 200, Generation: "1.0.3"},
		}}
	for _, v := range versions {
		g.Generations[v] = config.Generation{Nodes: []config.Node{{Name: "n-" + v, AdminURL: "http://" + v + ":8001"}}}
	}
	return g
}

func TestTrafficGatewayMapsEachHop(t *testing.T) {
	front := &config.Front{URL: "http://lb.example.com:8000/status", Requests: 60}
	haproxy := &config.HAProxy{RuntimeAPI: "unix:/run/haproxy.sock", Backend: "kong",
		Servers: map[string][]string{"0.13.1": {"o1"}, "0.14.1": {"m1"}, "1.0.3": {"n1"}}}
	stages := []config.Stage{{Percent: 10, Approval: true}, {Percent: 100, Bake: 60e9}}
	tests := []struct {
		name     string
		versions []string
		tr       config.Traffic
		hops     []string
		kinds    string
		err      string
	}{
		{"haproxy, both hops", []string{"0.13.1", "0.14.1", "1.0.3"}, config.Traffic{Backend: "haproxy", HAProxy: haproxy, Stages: stages}, []string{"hop1", "hop2"}, "haproxy", ""},
		{"manual with a front", []string{"0.14.1", "1.0.3"}, config.Traffic{Backend: "manual", Front: front, Stages: stages}, []string{"hop2"}, "manual", ""},
		{"exec with per-hop placeholders", []string{"0.14.0", "0.14.1"}, config.Traffic{Backend: "exec", Stages: stages,
			Exec: &config.Exec{Argv: []string{"/bin/move", "{{.Gateway}}", "{{.OldGeneration}}", "{{.NewGeneration}}"}}}, []string{"hop0"}, "exec", ""},
		{"manual without a front", []string{"0.13.1", "0.14.1"}, config.Traffic{Backend: "manual", Stages: stages}, nil, "", "front: missing"},
		{"haproxy without servers for a hop", []string{"0.14.1", "1.0.3"}, config.Traffic{Backend: "haproxy", Stages: stages,
			HAProxy: &config.HAProxy{RuntimeAPI: "/s", Backend: "kong", Servers: map[string][]string{"0.14.1": {"m1"}}}}, nil, "", "hop2, 0.14.1 -> 1.0.3"},
		{"exec with a per-call placeholder", []string{"0.13.1", "0.14.1"}, config.Traffic{Backend: "exec", Stages: stages,
			Exec: &config.Exec{Argv: []string{"/bin/move", "{{.NewPercent}}"}}}, nil, "", "exec.argv: [1]"},
		{"one generation only", []string{"0.13.1"}, config.Traffic{Backend: "manual", Front: front}, nil, "", "no pair of generations"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tg, err := trafficGateway(gatewayWith(tc.versions, tc.tr), "gateways[0].traffic")
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, hop := range tc.hops {
				b, ok := tg.HopBackends[hop]
				if !ok || b.Kind() != tc.kinds {
					t.Errorf("hop %s backend = %v, want %s", hop, b, tc.kinds)
				}
				p, ok := tg.Plans[hop]
				if !ok {
					t.Fatalf("no plan for %s", hop)
				}
				if err := p.Validate(); err != nil {
					t.Errorf("plan %s: %v", hop, err)
				}
				if hop == "hop1" && (!p.Fast || !p.Outage || p.OutageStatus != 503) {
					t.Errorf("hop1 plan %+v, want fast, in the outage, status 503", p)
				}
				if hop != "hop1" && (len(p.Stages) != 2 || !p.Stages[0].Approval || p.Stages[0].Bake <= 0) {
					t.Errorf("%s plan %s, want the configured stages with a positive bake", hop, p)
				}
			}
			if len(tg.HopBackends) != len(tc.hops) {
				t.Errorf("hops %v, want %v", tg.HopBackends, tc.hops)
			}
			if tc.tr.Front != nil {
				want := []traffic.Probe{{Name: "anon", Method: "GET", URL: "http://lb.example.com:8000/test?x=1", WantStatus: 401}}
				if len(tg.Probes) != 1 || tg.Probes[0].URL != want[0].URL || tg.Probes[0].Header.Get("Host") != "api.example.com" || tg.Probes[0].WantStatus != 401 {
					t.Errorf("probes %+v, want only the generation-free one through the front: %+v", tg.Probes, want)
				}
			}
		})
	}
}

func TestKongOptionsNeedTheSecrets(t *testing.T) {
	g := *gatewayWith([]string{"0.13.1", "0.14.1"}, config.Traffic{})
	g.Datastore.DSNEnv = "TEST_APP_DSN_UNSET"
	cfg := &config.Config{Gateways: []config.Gateway{g}}
	t.Setenv("TEST_APP_DSN_UNSET", "")
	if _, err := kongOptions(cfg, nil); err == nil || !strings.Contains(err.Error(), "TEST_APP_DSN_UNSET is not set") {
		t.Fatalf("err = %v, want the unset variable named", err)
	}
	t.Setenv("TEST_APP_DSN_UNSET", "postgres://k:pw@db/kong")
	opts, err := kongOptions(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	kg := opts.Gateways["prod"]
	if len(kg.Generations) != 2 || kg.Generations[0].Version != "0.13.1" || kg.DatastoreDSN != "postgres://k:pw@db/kong" {
		t.Fatalf("gateway options %+v", kg)
	}
	if len(kg.Probes) != 2 || kg.Probes[0].Want != 401 || kg.Probes[1].Generation != "1.0.3" {
		t.Fatalf("probes %+v", kg.Probes)
	}
}

func TestMetricsHooksMeasureStepsAndApprovalWaits(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "m.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	t0 := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	clock := t0
	newMetrics := func() (*Metrics, runner.Hooks) {
		m := NewMetrics(st, slog.New(slog.DiscardHandler))
		m.now = func() time.Time { return clock }
		return m, m.Hooks(runner.Hooks{})
	}
	m, h := newMetrics()
	run := steps.Run{ID: "r1", CreatedAt: t0, Status: steps.RunRunning, Current: "a",
		Steps: []steps.StepState{{ID: "a", Status: steps.StepRunning, Attempts: 1}, {ID: "b", Status: steps.StepPending}}}
	h.BeforeEffect(run, steps.Effect{Kind: steps.EffExecute, Step: "a", Attempt: 1})
	clock = t0.Add(3 * time.Second)
	run.Steps[0].Status, run.Steps[0].EndedAt = steps.StepSucceeded, clock
	run.Steps[1].Status, run.Status, run.Current = steps.StepAwaitingApproval, steps.RunAwaitingApproval, "b"
	h.AfterCommit(run, steps.Event{Kind: steps.EvStepSucceeded, Step: "a", Attempt: 1})
	if got := histCount(t, m, "kongbot_step_duration_seconds", 3); got != 1 {
		t.Fatalf("step a observed %d times at 3s", got)
	}

	// A restart: a new process sees the request on resume and still counts
	// from when the run reached the step.
	m, h = newMetrics()
	clock = t0.Add(10 * time.Minute)
	h.AfterCommit(run, steps.Event{Kind: steps.EvResume})
	clock = t0.Add(20 * time.Minute)
	run.Steps[1].Status, run.Status = steps.StepRunning, steps.RunRunning
	h.AfterCommit(run, steps.Event{Kind: steps.EvApprove, Step: "b", User: "U1"})
	if got := histCount(t, m, "kongbot_approval_wait_seconds", (20*time.Minute - 3*time.Second).Seconds()); got != 1 {
		t.Fatalf("approval wait not observed at 19m57s")
	}
}

// histCount is how many observations of the only series of name equal v.
func histCount(t *testing.T, m *Metrics, name string, v float64) int {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, mt := range mf.GetMetric() {
			h := mt.GetHistogram()
			if h.GetSampleCount() == 1 && h.GetSampleSum() == v {
				return 1
			}
			t.Logf("%s: count %d sum %v", name, h.GetSampleCount(), h.GetSampleSum())
		}
	}
	return 0
}

func TestFrontProbesSendTheirHostHeader(t *testing.T) {
	got := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Host
		w.Header().Set("Via", "kong/0.14.1")
	}))
	defer srv.Close()
	g := gatewayWith([]string{"0.13.1", "0.14.1"}, config.Traffic{Backend: "manual", Front: &config.Front{URL: srv.URL + "/", Requests: 1}})
	tg, err := trafficGateway(g, "gateways[0].traffic")
	if err != nil {
		t.Fatal(err)
	}
	res := tg.Prober.Do(context.Background(), tg.Probes[0])
	if res.Err != "" || res.Status != 200 {
		t.Fatalf("probe: %+v", res)
	}
	if h := <-got; h != "api.example.com" {
		t.Fatalf("the front saw Host %q, want api.example.com", h)
	}
}

// TestTrafficProbesPerHop: while a hop bakes, the smoke probes naming the
// generation it moves to reach that generation's proxies; those without a
// generation go through the front (or, with no front, to the new proxies).
func TestTrafficProbesPerHop(t *testing.T) {
	haproxy := &config.HAProxy{RuntimeAPI: "unix:/run/haproxy.sock", Backend: "kong",
		Servers: map[string][]string{"0.13.1": {"o1"}, "0.14.1": {"m1"}, "1.0.3": {"n1"}}}
	type probe struct{ name, url, host string }
	tests := []struct {
		name  string
		front *config.Front
		all   []probe
		hops  map[string][]probe
	}{
		{"with a front", &config.Front{URL: "http://lb:8000/"},
			[]probe{{"anon", "http://lb:8000/test?x=1", "api.example.com"}},
			map[string][]probe{
				"hop1": {{"mid via n-0.14.1", "http://0.14.1:8000/mid", ""}},
				"hop2": {{"new only via n-1.0.3", "http://1.0.3:8000/test", ""}},
			}},
		{"without a front", nil, nil,
			map[string][]probe{
				"hop1": {{"anon via n-0.14.1", "http://0.14.1:8000/test?x=1", "api.example.com"}, {"mid via n-0.14.1", "http://0.14.1:8000/mid", ""}},
				"hop2": {{"anon via n-1.0.3", "http://1.0.3:8000/test?x=1", "api.example.com"}, {"new only via n-1.0.3", "http://1.0.3:8000/test", ""}},
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := gatewayWith([]string{"0.13.1", "0.14.1", "1.0.3"}, config.Traffic{Backend: "haproxy", HAProxy: haproxy, Front: tc.front})
			g.SmokeProbes = append(g.SmokeProbes, config.Probe{Name: "mid", Path: "/mid", ExpectStatus: 200, Generation: "0.14.1"})
			for v, gen := range g.Generations {
				gen.Nodes[0].ProxyURL = "http://" + v + ":8000"
			}
			tg, err := trafficGateway(g, "gateways[0].traffic")
			if err != nil {
				t.Fatal(err)
			}
			got := func(ps []traffic.Probe) []probe {
				var out []probe
				for _, p := range ps {
					out = append(out, probe{p.Name, p.URL, p.Header.Get("Host")})
				}
				return out
			}
			if g := got(tg.Probes); !slices.Equal(g, tc.all) {
				t.Errorf("probes of every hop %v, want %v", g, tc.all)
			}
			for _, hop := range []string{"hop1", "hop2"} {
				if g := got(tg.HopProbes[hop]); !slices.Equal(g, tc.hops[hop]) {
					t.Errorf("%s probes %v, want %v", hop, g, tc.hops[hop])
				}
			}
		})
	}
}
