package app

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/kongbot/kongbot/bot"
	"github.com/kongbot/kongbot/config"
	"github.com/kongbot/kongbot/runner"
	"github.com/kongbot/kongbot/steps"
	"github.com/kongbot/kongbot/store"
)

// Metrics is kongbot's Prometheus registry and the hooks that feed it: the
// runner's durable points (step durations, approval waits, transitions),
// the bot's Slack counters (bot.Metrics), Kong HTTP calls (an
// http.RoundTripper around package kong's client), and the runs by state,
// read from the store at each scrape.
type Metrics struct {
	Registry *prometheus.Registry

	stepDuration *prometheus.HistogramVec
	approvalWait *prometheus.HistogramVec
	transitions  *prometheus.CounterVec
	outboxDepth  prometheus.Gauge
	slackErrors  *prometheus.CounterVec
	slackLimited *prometheus.CounterVec
	slackAck     *prometheus.HistogramVec
	kongRequests *prometheus.CounterVec
	kongErrors   *prometheus.CounterVec

	now func() time.Time

	mu     sync.Mutex
	starts map[string]time.Time // run/step/attempt -> when its effect began
	waits  map[string]time.Time // run/step -> when its approval was asked
}

var _ bot.Metrics = (*Metrics)(nil)

// runStates are every run status, so each state's series exists at 0.
var runStates = []steps.RunStatus{steps.RunPending, steps.RunRunning, steps.RunAwaitingApproval, steps.RunWaitingManual,
	steps.RunFailed, steps.RunPaused, steps.RunAborting, steps.RunAborted, steps.RunSucceeded}

// NewMetrics registers every kongbot metric, the runs-by-state collector
// over st, and the Go and process collectors.
func NewMetrics(st *store.Store, log *slog.Logger) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		stepDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "kongbot_step_duration_seconds",
			Help: "Time a runbook step's effect took (execute: Do then Verify; verify: Verify alone), by step ID and the step's status after it.",
			// Checks take a second, migrations and bakes tens of minutes.
			Buckets: []float64{0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600},
		}, []string{"step", "effect", "outcome"}),
		approvalWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kongbot_approval_wait_seconds",
			Help:    "Time from an approval request (when the run reached the step) to its end: approved, rejected or aborted.",
			Buckets: []float64{10, 30, 60, 300, 600, 1800, 3600, 4 * 3600, 12 * 3600, 24 * 3600},
		}, []string{"outcome"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kongbot_run_transitions_total",
			Help: "Durable run transitions committed, by event kind.",
		}, []string{"event"}),
		outboxDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kongbot_outbox_depth",
			Help: "Slack messages committed but not yet delivered.",
		}),
		slackErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kongbot_slack_api_errors_total",
			Help: "Failed Slack Web API calls, by operation and reason (rate_limited, server, network or Slack's error code).",
		}, []string{"op", "reason"}),
		slackLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kongbot_slack_rate_limited_total",
			Help: "Slack 429 answers, by operation.",
		}, []string{"op"}),
		slackAck: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kongbot_slack_ack_seconds",
			Help:    "Time until a Slack request was acknowledged (Slack's limit is 3 s).",
			Buckets: []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5},
		}, []string{"transport", "kind"}),
		kongRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kongbot_kong_requests_total",
			Help: "HTTP requests to Kong nodes, by API (admin or proxy) and status class (or error).",
		}, []string{"api", "code"}),
		kongErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kongbot_kong_call_errors_total",
			Help: "Kong calls that failed: no answer (network, timeout) on either API, or a 5xx from an Admin API. Proxy 5xx are not counted: request-termination answers 503 on purpose.",
		}, []string{"api", "reason"}),
		now:    time.Now,
		starts: map[string]time.Time{},
		waits:  map[string]time.Time{},
	}
	reg.MustRegister(m.stepDuration, m.approvalWait, m.transitions, m.outboxDepth, m.slackErrors, m.slackLimited,
		m.slackAck, m.kongRequests, m.kongErrors,
		&runsCollector{st: st, log: log},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// bot.Metrics.

// APIError counts a failed Slack Web API call.
func (m *Metrics) APIError(op, reason string) { m.slackErrors.WithLabelValues(op, reason).Inc() }

// RateLimited counts a Slack 429.
func (m *Metrics) RateLimited(op string, _ time.Duration) { m.slackLimited.WithLabelValues(op).Inc() }

// OutboxDepth sets the undelivered message count.
func (m *Metrics) OutboxDepth(n int) { m.outboxDepth.Set(float64(n)) }

// Acked observes an acknowledgement delay.
func (m *Metrics) Acked(transport, kind string, d time.Duration) {
	m.slackAck.WithLabelValues(transport, kind).Observe(d.Seconds())
}

// Hooks returns runner hooks that feed the step and approval metrics, then
// call next's hooks (tests and the demo add their own).
func (m *Metrics) Hooks(next runner.Hooks) runner.Hooks {
	return runner.Hooks{
		BeforeEffect: func(run steps.Run, e steps.Effect) {
			m.beforeEffect(run, e)
			if next.BeforeEffect != nil {
				next.BeforeEffect(run, e)
			}
		},
		AfterCommit: func(run steps.Run, ev steps.Event) {
			m.afterCommit(run, ev)
			if next.AfterCommit != nil {
				next.AfterCommit(run, ev)
			}
		},
	}
}

func effectKey(run, step, effect string, attempt int) string {
	return run + "/" + step + "/" + effect + "/" + strconv.Itoa(attempt)
}

func (m *Metrics) beforeEffect(run steps.Run, e steps.Effect) {
	var key string
	switch e.Kind {
	case steps.EffExecute:
		key = effectKey(run.ID, e.Step, "execute", e.Attempt)
	case steps.EffVerify:
		key = effectKey(run.ID, e.Step, "verify", 0)
	default:
		return
	}
	m.mu.Lock()
	m.starts[key] = m.now()
	m.mu.Unlock()
}

func (m *Metrics) afterCommit(run steps.Run, ev steps.Event) {
	m.transitions.WithLabelValues(string(ev.Kind)).Inc()
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	var key, effect string
	switch ev.Kind {
	case steps.EvStepSucceeded, steps.EvStepFailed:
		attempt := ev.Attempt
		if st, ok := run.Step(ev.Step); ok && attempt == 0 {
			attempt = st.Attempts
		}
		key, effect = effectKey(run.ID, ev.Step, "execute", attempt), "execute"
	case steps.EvVerified:
		key, effect = effectKey(run.ID, ev.Step, "verify", 0), "verify"
	}
	if key != "" {
		if start, ok := m.starts[key]; ok {
			delete(m.starts, key)
			outcome := "unknown"
			if st, ok := run.Step(ev.Step); ok {
				outcome = string(st.Status)
			}
			m.stepDuration.WithLabelValues(ev.Step, effect, outcome).Observe(now.Sub(start).Seconds())
		}
	}
	// Approval waits: started when a committed run first shows the request,
	// ended when the step leaves awaiting-approval or the run ends.
	for k, start := range m.waits {
		runID, stepID := splitWaitKey(k)
		if runID != run.ID {
			continue
		}
		st, ok := run.Step(stepID)
		if ok && st.Status == steps.StepAwaitingApproval && !run.Status.Terminal() && run.Status != steps.RunAborting {
			continue
		}
		outcome := "approved"
		switch {
		case run.Status == steps.RunAborted || run.Status == steps.RunAborting:
			outcome = "aborted"
		case ev.Kind == steps.EvReject:
			outcome = "rejected"
		}
		m.approvalWait.WithLabelValues(outcome).Observe(now.Sub(start).Seconds())
		delete(m.waits, k)
	}
	if run.Status == steps.RunAwaitingApproval && run.Current != "" {
		k := run.ID + "\x00" + run.Current
		if _, ok := m.waits[k]; !ok {
			m.waits[k] = askedAt(run, now)
		}
	}
}

// askedAt estimates when the current step's approval was first asked from
// the stored run, so a restart does not reset the clock: the run entered
// the step when the step before it ended (or when the run was created).
func askedAt(run steps.Run, now time.Time) time.Time {
	at := run.CreatedAt
	for _, st := range run.Steps {
		if st.ID == run.Current {
			break
		}
		if st.EndedAt.After(at) {
			at = st.EndedAt
		}
	}
	if at.IsZero() || at.After(now) {
		return now
	}
	return at
}

func splitWaitKey(k string) (string, string) {
	for i := 0; i < len(k); i++ {
		if k[i] == 0 {
			return k[:i], k[i+1:]
		}
	}
	return k, ""
}

// runsCollector reports kongbot_runs{state} from the store at scrape time,
// so the figure is right after a restart and never drifts from the file.
type runsCollector struct {
	st  *store.Store
	log *slog.Logger
}

var runsDesc = prometheus.NewDesc("kongbot_runs", "Runs in the store, by state.", []string{"state"}, nil)

func (c *runsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- runsDesc }

func (c *runsCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	recs, err := c.st.Runs(ctx, store.RunFilter{})
	if err != nil {
		c.log.Warn("metrics: reading runs", "err", err)
		ch <- prometheus.NewInvalidMetric(runsDesc, err)
		return
	}
	counts := map[string]int{}
	for _, s := range runStates {
		counts[string(s)] = 0
	}
	for _, r := range recs {
		counts[r.Status]++
	}
	for s, n := range counts {
		ch <- prometheus.MustNewConstMetric(runsDesc, prometheus.GaugeValue, float64(n), s)
	}
}

// kongTransport counts requests to Kong nodes and their failures. It wraps
// the HTTP client package kong uses, so no Kong call goes uncounted.
type kongTransport struct {
	next  http.RoundTripper
	m     *Metrics
	admin map[string]bool // host:port of every Admin API
	proxy map[string]bool
}

func newKongTransport(cfg *config.Config, m *Metrics, next http.RoundTripper) *kongTransport {
	t := &kongTransport{next: next, m: m, admin: map[string]bool{}, proxy: map[string]bool{}}
	for _, g := range cfg.Gateways {
		for _, gen := range g.Generations {
			for _, n := range gen.Nodes {
				if u, err := url.Parse(n.AdminURL); err == nil {
					t.admin[u.Host] = true
				}
				if u, err := url.Parse(n.ProxyURL); err == nil {
					t.proxy[u.Host] = true
				}
			}
		}
	}
	return t
}

func (t *kongTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	api := "other"
	switch {
	case t.admin[r.URL.Host]:
		api = "admin"
	case t.proxy[r.URL.Host]:
		api = "proxy"
	}
	resp, err := t.next.RoundTrip(r)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return nil, err // shutting down or the caller gave up: not Kong's fault
		}
		reason := "network"
		var ne net.Error
		if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
			reason = "timeout"
		}
		t.m.kongRequests.WithLabelValues(api, "error").Inc()
		t.m.kongErrors.WithLabelValues(api, reason).Inc()
		return nil, err
	}
	t.m.kongRequests.WithLabelValues(api, strconv.Itoa(resp.StatusCode/100)+"xx").Inc()
	if api == "admin" && resp.StatusCode >= 500 {
		t.m.kongErrors.WithLabelValues(api, "status_5xx").Inc()
	}
	return resp, nil
}
