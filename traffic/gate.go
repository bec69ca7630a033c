package traffic

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/kongbot/kongbot/steps"
)

// Gates are the health limits a stage must stay within while it bakes.
type Gates struct {
	// Max5xxRatio is the largest acceptable share of the new servers'
	// requests over the bake that were answered 5xx or not answered
	// properly (connection and response errors); default 0.01 (1 %).
	Max5xxRatio float64
	// MinRequests is how many new-server answers a bake needs before the
	// 5xx ratio can pass a stage; fewer is "too little traffic"
	// (inconclusive). Default 50.
	MinRequests int64
	// MaxLatency gates latency: the probes' p95 when there are at least
	// MinProbes probe answers, else the backend's own figure (HAProxy: the
	// mean rtime of the last 1024 requests). 0 turns the gate off.
	MaxLatency time.Duration
	// MaxProbeFailures is how many smoke probe failures a bake tolerates
	// before it counts as a breach; up to it, it is inconclusive. Default 1.
	MaxProbeFailures int
	// MinProbes is how many probe answers count as enough when probes are
	// the only source of figures (manual backend); default 5.
	MinProbes int
	// Borderline is the fraction of a limit above which a finished bake is
	// called inconclusive rather than healthy; default 0.75.
	Borderline float64
	// Interval is how often the gates sample during a bake; default 1s.
	Interval time.Duration
}

func (g Gates) withDefaults() Gates {
	if g.Max5xxRatio <= 0 {
		g.Max5xxRatio = 0.01
	}
	if g.MinRequests <= 0 {
		g.MinRequests = 50
	}
	if g.MaxProbeFailures <= 0 {
		g.MaxProbeFailures = 1
	}
	if g.MinProbes <= 0 {
		g.MinProbes = 5
	}
	if g.Borderline <= 0 || g.Borderline >= 1 {
		g.Borderline = 0.75
	}
	if g.Interval <= 0 {
		g.Interval = time.Second
	}
	return g
}

// Figures are what the gates saw over a stage's bake window so far.
type Figures struct {
	Stage  Weights
	Window time.Duration
	// Source names where the request counts come from: "haproxy show stat",
	// "exec health", or "probes" when the backend has none.
	Source    string
	Responses int64 // new-generation answers in the window
	Status5xx int64 // of which 5xx
	Errors    int64 // new-generation requests without a proper answer
	// Outage: the hop runs inside request-termination (see Plan.Outage);
	// the gate then counts Errors, not 5xx.
	Outage bool
	// Old-generation answers, for context only.
	OldResponses int64
	OldStatus5xx int64
	NewSessions  int64

	Latency     time.Duration
	LatencyKind string // "probe p95 (n=12)", "haproxy rtime (mean of the last 1024 requests)"

	Probes       int
	ProbeFails   int
	ProbeFailure string // the last failure, e.g. "GET /test: 500"
}

// Bad and Total are what the ratio gate counts: requests to the new
// cluster, and those answered 5xx or not properly answered at all (a
// refused connection that HAProxy retried elsewhere still counts against
// the new cluster). In an outage only the errors count.
func (f Figures) Bad() int64 {
	if f.Outage {
		return f.Errors
	}
	return f.Status5xx + f.Errors
}

// Total: see Bad.
func (f Figures) Total() int64 { return f.Responses + f.Errors }

// Ratio is Bad over Total.
func (f Figures) Ratio() float64 {
	if f.Total() == 0 {
		return 0
	}
	return float64(f.Bad()) / float64(f.Total())
}

func (f Figures) ratioName() string {
	switch {
	case f.Outage:
		return "new cluster connection/response errors"
	case f.Errors > 0:
		return "new cluster 5xx and connection/response errors"
	}
	return "new cluster 5xx"
}

func (f Figures) window() string { return f.Window.Round(100 * time.Millisecond).String() }

// Summary is the one-line version for messages.
func (f Figures) Summary() string {
	parts := []string{fmt.Sprintf("%s %s (%d/%d) over %s [%s]", f.ratioName(), pct1(f.Ratio()), f.Bad(), f.Total(), f.window(), f.Source)}
	if f.LatencyKind != "" {
		parts = append(parts, fmt.Sprintf("latency %s [%s]", f.Latency.Round(100*time.Microsecond), f.LatencyKind))
	}
	if f.Probes > 0 {
		parts = append(parts, fmt.Sprintf("smoke probes %d/%d passed", f.Probes-f.ProbeFails, f.Probes))
	}
	return strings.Join(parts, ", ")
}

// Facts are the figures as Check facts.
func (f Figures) Facts() []steps.Fact {
	fs := []steps.Fact{
		{Name: "stage", Value: f.Stage.String()},
		{Name: "window", Value: f.window()},
		{Name: f.ratioName(), Value: fmt.Sprintf("%s (%d/%d) [%s]", pct1(f.Ratio()), f.Bad(), f.Total(), f.Source)},
	}
	if f.Outage {
		fs = append(fs, steps.Fact{Name: "outage", Value: "request-termination is on: 5xx answers are expected and not counted"})
	}
	if f.Source != "probes" {
		fs = append(fs, steps.Fact{Name: "old cluster 5xx", Value: fmt.Sprintf("%d/%d", f.OldStatus5xx, f.OldResponses)})
	}
	if f.LatencyKind != "" {
		fs = append(fs, steps.Fact{Name: "latency", Value: fmt.Sprintf("%s [%s]", f.Latency.Round(100*time.Microsecond), f.LatencyKind)})
	}
	if f.Probes > 0 {
		v := fmt.Sprintf("%d/%d passed", f.Probes-f.ProbeFails, f.Probes)
		if f.ProbeFailure != "" {
			v += "; last failure: " + f.ProbeFailure
		}
		fs = append(fs, steps.Fact{Name: "smoke probes", Value: v})
	}
	return fs
}

func pct1(r float64) string { return fmt.Sprintf("%.1f %%", 100*r) }

// Verdict is a gate decision.
type Verdict string

const (
	// Baking: nothing decided yet, keep watching.
	Baking Verdict = "baking"
	// Healthy: the bake finished within every limit.
	Healthy Verdict = "healthy"
	// Breach: clearly bad; stop now and roll back.
	Breach Verdict = "breach"
	// Inconclusive: too little traffic or borderline figures; ask a lead.
	Inconclusive Verdict = "inconclusive"
)

// Evaluate judges figures. During the bake (final false) it returns Breach
// or Baking; at the end of the bake, Healthy, Breach or Inconclusive. The
// reasons say why, with the figures.
//
// A 5xx ratio is a clear breach only when the count of 5xx is more than
// three standard deviations above what the limit allows for that many
// answers, so a single early 5xx does not roll back a healthy stage; a ratio
// above the limit that is not clear yet is inconclusive.
func (g Gates) Evaluate(f Figures, final bool) (Verdict, []string) {
	g = g.withDefaults()
	var breach, doubt []string

	minReq := g.MinRequests
	if f.Source == "probes" {
		minReq = int64(g.MinProbes)
	}
	n, bad := float64(f.Total()), float64(f.Bad())
	limit := g.Max5xxRatio
	ratioMsg := fmt.Sprintf("%s %s (%d/%d) over %s", f.ratioName(), pct1(f.Ratio()), f.Bad(), f.Total(), f.window())
	switch {
	case f.Total() >= minReq && bad > limit*n+3*math.Sqrt(limit*(1-limit)*n):
		breach = append(breach, fmt.Sprintf("%s > max %s", ratioMsg, pct1(limit)))
	case f.Total() < minReq && f.Outage:
		// Clients are being turned away; few of them retry. Waiting for a
		// lead would only lengthen the outage.
	case f.Total() < minReq:
		doubt = append(doubt, fmt.Sprintf("too little traffic: %d answers from the new cluster over %s [%s], need %d", f.Total(), f.window(), f.Source, minReq))
	case f.Ratio() > limit:
		doubt = append(doubt, fmt.Sprintf("%s is above max %s but not clearly", ratioMsg, pct1(limit)))
	case f.Ratio() > g.Borderline*limit:
		doubt = append(doubt, fmt.Sprintf("%s is close to max %s", ratioMsg, pct1(limit)))
	}

	if g.MaxLatency > 0 && f.LatencyKind != "" {
		msg := fmt.Sprintf("latency %s [%s]", f.Latency.Round(100*time.Microsecond), f.LatencyKind)
		switch {
		case f.Latency > g.MaxLatency:
			breach = append(breach, fmt.Sprintf("%s > max %s", msg, g.MaxLatency))
		case float64(f.Latency) > g.Borderline*float64(g.MaxLatency):
			doubt = append(doubt, fmt.Sprintf("%s is close to max %s", msg, g.MaxLatency))
		}
	}

	if f.ProbeFails > 0 {
		msg := fmt.Sprintf("smoke probes failed %d of %d (last: %s)", f.ProbeFails, f.Probes, f.ProbeFailure)
		if f.ProbeFails > g.MaxProbeFailures {
			breach = append(breach, fmt.Sprintf("%s > max %d", msg, g.MaxProbeFailures))
		} else {
			doubt = append(doubt, msg)
		}
	}

	switch {
	case len(breach) > 0:
		return Breach, breach
	case !final:
		return Baking, nil
	case len(doubt) > 0:
		return Inconclusive, doubt
	}
	return Healthy, nil
}

// window accumulates what one stage's bake saw.
type window struct {
	stage    Weights
	outage   int // request-termination status while in an outage, else 0
	start    time.Time
	base     *Sample // first backend sample; nil when the backend has none
	last     *Sample
	source   string
	probeLat []time.Duration
	probes   int
	fails    int
	probe5xx int
	lastFail string
	minProbe int
}

func (w *window) addProbe(r ProbeResult) {
	if w.outage != 0 && r.FromKong && r.Status == w.outage {
		r.Pass = true // request-termination answering, as it should
	}
	w.probes++
	if r.Status != 0 {
		w.probeLat = append(w.probeLat, r.Took)
	}
	if !r.Pass && (r.Status >= 500 || r.Status == 0) {
		w.probe5xx++
	}
	if !r.Pass {
		w.fails++
		if r.Err != "" {
			w.lastFail = fmt.Sprintf("%s: %s", r.Probe, r.Err)
		} else {
			w.lastFail = fmt.Sprintf("%s: %d", r.Probe, r.Status)
		}
	}
}

func (w *window) figures(now time.Time) Figures {
	f := Figures{Stage: w.stage, Window: now.Sub(w.start), Probes: w.probes, ProbeFails: w.fails, ProbeFailure: w.lastFail, Outage: w.outage != 0}
	if w.base != nil && w.last != nil {
		f.Source = w.source
		f.Responses = w.last.New.Responses - w.base.New.Responses
		f.Status5xx = w.last.New.Status5xx - w.base.New.Status5xx
		f.Errors = w.last.New.Errors - w.base.New.Errors
		f.OldResponses = w.last.Old.Responses - w.base.Old.Responses
		f.OldStatus5xx = w.last.Old.Status5xx - w.base.Old.Status5xx
		f.NewSessions = w.last.New.Sessions
		if w.last.New.LatencyKind != "" {
			f.Latency, f.LatencyKind = w.last.New.Latency, w.last.New.LatencyKind
		}
	} else {
		f.Source = "probes"
		f.Responses = int64(w.probes)
		f.Status5xx = int64(w.probe5xx)
		if f.Outage {
			f.Responses, f.Errors, f.Status5xx = int64(w.probes-w.probe5xx), int64(w.probe5xx), 0
		}
	}
	if len(w.probeLat) >= w.minProbe {
		f.Latency = p95(w.probeLat)
		f.LatencyKind = fmt.Sprintf("probe p95 (n=%d)", len(w.probeLat))
	}
	return f
}

func p95(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(0.95*float64(len(s)))) - 1
	return s[max(0, i)]
}
