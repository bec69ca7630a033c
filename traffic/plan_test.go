package traffic_test

import (
	"strings"
	"testing"
	"time"

	"github.com/kongbot/kongbot/traffic"
)

func TestPlanValidate(t *testing.T) {
	s := func(pct int) traffic.Stage { return traffic.Stage{NewPct: pct, Bake: time.Second} }
	tests := []struct {
		name string
		plan traffic.Plan
		want string // "" = valid
	}{
		{"fast", traffic.FastPlan(30 * time.Second), ""},
		{"gradual", traffic.GradualPlan(time.Minute, []int{5, 25, 50, 100}, 25), ""},
		{"fast in two moves", traffic.Plan{Fast: true, Stages: []traffic.Stage{s(50), s(100)}}, ""},
		{"empty", traffic.Plan{}, "no stages"},
		{"not ending at 100", traffic.GradualPlan(time.Second, []int{5, 50}), "last stage is 50 %"},
		{"falling", traffic.GradualPlan(time.Second, []int{50, 25, 100}), "does not rise above 50 %"},
		{"repeated", traffic.GradualPlan(time.Second, []int{50, 50, 100}), "does not rise"},
		{"zero", traffic.GradualPlan(time.Second, []int{0, 100}), "outside 1..100"},
		{"above 100", traffic.GradualPlan(time.Second, []int{50, 150}), "outside 1..100"},
		{"no bake", traffic.GradualPlan(0, []int{100}), "bake time must be positive"},
		{"fast in three moves", traffic.Plan{Fast: true, Stages: []traffic.Stage{s(10), s(50), s(100)}}, "at most twice"},
		{"fast with approval", traffic.Plan{Fast: true, Stages: []traffic.Stage{{NewPct: 100, Bake: time.Second, Approval: true}}}, "cannot wait for approvals"},
		{"outage status", traffic.Plan{Outage: true, OutageStatus: 700, Stages: []traffic.Stage{s(100)}}, "outside 100..599"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.plan.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("valid plan rejected: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
	for hop, p := range traffic.DefaultPlans() {
		if err := p.Validate(); err != nil {
			t.Errorf("default plan %s: %v", hop, err)
		}
	}
	if got := traffic.GradualPlan(time.Minute, []int{5, 100}, 100).String(); got != "5 % (bake 1m0s) → 100 % (approval, bake 1m0s)" {
		t.Errorf("String = %q", got)
	}
}

func TestGatesEvaluate(t *testing.T) {
	g := traffic.Gates{Max5xxRatio: 0.01, MinRequests: 50, MaxLatency: 200 * time.Millisecond}
	haproxy := func(n, bad int64) traffic.Figures {
		return traffic.Figures{Stage: traffic.Split(25), Window: 10 * time.Second, Source: "haproxy show stat", Responses: n, Status5xx: bad}
	}
	withLat := func(f traffic.Figures, d time.Duration) traffic.Figures {
		f.Latency, f.LatencyKind = d, "probe p95 (n=10)"
		return f
	}
	withProbes := func(f traffic.Figures, n, fails int) traffic.Figures {
		f.Probes, f.ProbeFails, f.ProbeFailure = n, fails, "GET /test: 500"
		return f
	}
	tests := []struct {
		name  string
		f     traffic.Figures
		final bool
		want  traffic.Verdict
		why   string
	}{
		{"healthy", haproxy(500, 0), true, traffic.Healthy, ""},
		{"still baking", haproxy(500, 0), false, traffic.Baking, ""},
		{"20 % failing", haproxy(500, 99), false, traffic.Breach, "new cluster 5xx 19.8 % (99/500) over 10s > max 1.0 %"},
		{"one early 5xx is not clear", haproxy(60, 1), false, traffic.Baking, ""},
		{"one 5xx at the end is not clear", haproxy(60, 1), true, traffic.Inconclusive, "above max 1.0 % but not clearly"},
		{"few answers", haproxy(20, 0), true, traffic.Inconclusive, "too little traffic: 20 answers"},
		{"few answers while baking", haproxy(20, 5), false, traffic.Baking, ""},
		{"borderline ratio", haproxy(10000, 90), true, traffic.Inconclusive, "close to max 1.0 %"},
		{"slow", withLat(haproxy(500, 0), 300*time.Millisecond), false, traffic.Breach, "latency 300ms [probe p95 (n=10)] > max 200ms"},
		{"almost slow", withLat(haproxy(500, 0), 180*time.Millisecond), true, traffic.Inconclusive, "close to max 200ms"},
		{"fast enough", withLat(haproxy(500, 0), 100*time.Millisecond), true, traffic.Healthy, ""},
		{"probes failing", withProbes(haproxy(500, 0), 10, 2), false, traffic.Breach, "smoke probes failed 2 of 10 (last: GET /test: 500) > max 1"},
		{"one probe failed", withProbes(haproxy(500, 0), 10, 1), true, traffic.Inconclusive, "smoke probes failed 1 of 10"},
		{"outage: terminated answers do not count", traffic.Figures{Source: "haproxy show stat", Outage: true, Responses: 500, Status5xx: 500}, true, traffic.Healthy, ""},
		{"outage: too little traffic does not wait", traffic.Figures{Source: "haproxy show stat", Outage: true, Responses: 3}, true, traffic.Healthy, ""},
		{"outage: refused connections", traffic.Figures{Source: "haproxy show stat", Outage: true, Responses: 40, Errors: 60, Window: time.Second}, false, traffic.Breach, "new cluster connection/response errors 60.0 % (60/100) over 1s"},
		{"errors count with 5xx", traffic.Figures{Source: "haproxy show stat", Responses: 400, Status5xx: 10, Errors: 100, Window: time.Second}, false, traffic.Breach, "new cluster 5xx and connection/response errors 22.0 % (110/500)"},
		{"probes only, enough", traffic.Figures{Source: "probes", Responses: 8, Probes: 8}, true, traffic.Healthy, ""},
		{"probes only, too few", traffic.Figures{Source: "probes", Responses: 3, Probes: 3}, true, traffic.Inconclusive, "need 5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, why := g.Evaluate(tt.f, tt.final)
			if v != tt.want {
				t.Fatalf("verdict = %s (%q), want %s", v, why, tt.want)
			}
			if tt.why != "" && !strings.Contains(strings.Join(why, "; "), tt.why) {
				t.Fatalf("reasons %q lack %q", why, tt.why)
			}
		})
	}
}

func TestWeights(t *testing.T) {
	for _, w := range []traffic.Weights{{Old: 100}, {New: 100}, traffic.Split(37)} {
		if err := w.Validate(); err != nil {
			t.Errorf("%s: %v", w, err)
		}
	}
	for _, w := range []traffic.Weights{{Old: 50, New: 60}, {Old: -5, New: 105}, {}} {
		if err := w.Validate(); err == nil {
			t.Errorf("%s accepted", w)
		}
	}
	if s := traffic.Split(5).String(); s != "old 95 / new 5" {
		t.Errorf("String = %q", s)
	}
}
