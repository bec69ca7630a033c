package traffic

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kongbot/kongbot/steps"
)

// HAProxyOptions configure one HAProxy backend that holds the old and the
// new Kong proxies of a gateway.
type HAProxyOptions struct {
	// Address of the runtime API: "unix:/run/haproxy/admin.sock",
	// "tcp:127.0.0.1:9999", or a bare path (unix) or host:port (tcp). The
	// socket needs `level admin` to change weights.
	Address string
	// Backend is the HAProxy backend (proxy) name, e.g. "kong".
	Backend string
	// Old and New name the servers of each generation in that backend.
	Old []string
	New []string
	// Timeout bounds each runtime API command; default 5s.
	Timeout time.Duration
	// UpWait bounds how long a shift waits for HAProxy's health checks to
	// mark the new servers UP before giving them weight: nodes started just
	// before the shift are DOWN until `rise` checks pass. Set it to about
	// three health-check intervals; default 10s.
	UpWait time.Duration
	// UpPoll is how often the servers' state is read while waiting;
	// default 200ms.
	UpPoll time.Duration
}

// HAProxy is a Backend on HAProxy's runtime API. Each command opens its own
// connection (non-interactive mode), so there is no session to keep alive.
type HAProxy struct {
	network, addr string
	backend       string
	old, new      []string
	timeout       time.Duration
	upWait        time.Duration
	upPoll        time.Duration
}

var _ Backend = (*HAProxy)(nil)

// maxWeight is HAProxy's largest server weight.
const maxWeight = 256

// NewHAProxy checks the options and returns the backend; it does not connect.
func NewHAProxy(o HAProxyOptions) (*HAProxy, error) {
	h := &HAProxy{backend: o.Backend, old: o.Old, new: o.New, timeout: o.Timeout, upWait: o.UpWait, upPoll: o.UpPoll}
	switch {
	case strings.HasPrefix(o.Address, "unix:"):
		h.network, h.addr = "unix", strings.TrimPrefix(o.Address, "unix:")
	case strings.HasPrefix(o.Address, "tcp:"):
		h.network, h.addr = "tcp", strings.TrimPrefix(o.Address, "tcp:")
	case strings.HasPrefix(o.Address, "/"):
		h.network, h.addr = "unix", o.Address
	default:
		h.network, h.addr = "tcp", o.Address
	}
	if h.addr == "" {
		return nil, errors.New("haproxy: runtime API address is empty")
	}
	if h.backend == "" || strings.ContainsAny(h.backend, " /;\n") {
		return nil, fmt.Errorf("haproxy: backend name %q is empty or has a space, slash or semicolon", h.backend)
	}
	if len(h.old) == 0 || len(h.new) == 0 {
		return nil, errors.New("haproxy: need at least one old and one new server")
	}
	seen := map[string]bool{}
	for _, s := range slices.Concat(h.old, h.new) {
		if s == "" || strings.ContainsAny(s, " /;\n") {
			return nil, fmt.Errorf("haproxy: server name %q is empty or has a space, slash or semicolon", s)
		}
		if seen[s] {
			return nil, fmt.Errorf("haproxy: server %q is listed twice", s)
		}
		seen[s] = true
	}
	if h.timeout <= 0 {
		h.timeout = 5 * time.Second
	}
	if h.upWait <= 0 {
		h.upWait = 10 * time.Second
	}
	if h.upPoll <= 0 {
		h.upPoll = 200 * time.Millisecond
	}
	return h, nil
}

// WaitServing waits, up to UpWait, until HAProxy no longer reports any new
// server DOWN when w gives the new generation weight. It reports what it
// waits for through report. When servers stay DOWN it returns a Check that
// is not OK naming them, as VerifyWeights would after the move.
func (h *HAProxy) WaitServing(ctx context.Context, w Weights, report func(string)) (steps.Check, error) {
	if err := w.Validate(); err != nil {
		return steps.Check{}, err
	}
	if w.New == 0 {
		return steps.Check{OK: true}, nil
	}
	start := time.Now()
	deadline := start.Add(h.upWait)
	waited := false
	for {
		st, err := h.Stats(ctx)
		if err != nil {
			return steps.Check{}, err
		}
		var down []string
		for _, s := range h.new {
			if strings.HasPrefix(st[s].Status, "DOWN") {
				down = append(down, s)
			}
		}
		if len(down) == 0 {
			if waited {
				report(fmt.Sprintf("HAProxy health checks mark %s/%s UP after %s", h.backend, strings.Join(h.new, ","), time.Since(start).Round(100*time.Millisecond)))
			}
			return steps.Check{OK: true}, nil
		}
		if !time.Now().Before(deadline) {
			c := steps.Check{}
			for _, s := range down {
				c.Missing = append(c.Missing, fmt.Sprintf("server %s/%s is %s, want it serving (still DOWN after waiting %s for HAProxy's health checks)", h.backend, s, st[s].Status, h.upWait))
			}
			return c, nil
		}
		if !waited {
			waited = true
			states := make([]string, len(down))
			for i, s := range down {
				states[i] = fmt.Sprintf("%s/%s (%s)", h.backend, s, st[s].Status)
			}
			report(fmt.Sprintf("waiting up to %s for HAProxy health checks to mark %s UP before moving weight to them", h.upWait, strings.Join(states, ", ")))
		}
		if err := sleepCtx(ctx, min(h.upPoll, time.Until(deadline))); err != nil {
			return steps.Check{}, err
		}
	}
}

// Kind implements Backend.
func (h *HAProxy) Kind() string { return "haproxy" }

// Command sends one runtime API command and returns HAProxy's answer.
func (h *HAProxy) Command(ctx context.Context, cmd string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, h.network, h.addr)
	if err != nil {
		return "", fmt.Errorf("haproxy runtime API %s: %w", h.addr, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	if _, err := io.WriteString(conn, cmd+"\n"); err != nil {
		return "", fmt.Errorf("haproxy %q: %w", cmd, err)
	}
	out, err := io.ReadAll(io.LimitReader(conn, 16<<20))
	if err != nil {
		return "", fmt.Errorf("haproxy %q: %w", cmd, err)
	}
	return string(out), nil
}

// set runs a command that answers nothing on success.
func (h *HAProxy) set(ctx context.Context, cmd string) error {
	out, err := h.Command(ctx, cmd)
	if err != nil {
		return err
	}
	if msg := strings.TrimSpace(out); msg != "" {
		return fmt.Errorf("%w: %q: %s", ErrHAProxy, cmd, msg)
	}
	return nil
}

// ServerWeights returns the HAProxy weight of each old and each new server
// for w. With equal server counts the weights are proportional to the
// percentages; otherwise each generation's total is, as closely as HAProxy's
// 1..256 range allows. A generation with a share above 0 gets at least 1.
func (h *HAProxy) ServerWeights(w Weights) (old, new int) {
	return serverWeight(w.Old, len(h.old), len(h.old), len(h.new)),
		serverWeight(w.New, len(h.new), len(h.old), len(h.new))
}

func serverWeight(pct, n, nOld, nNew int) int {
	if pct <= 0 {
		return 0
	}
	// The generation with fewer servers gets the full range at 100 %.
	v := int(math.Round(float64(pct) * maxWeight / 100 * float64(min(nOld, nNew)) / float64(n)))
	return max(1, min(maxWeight, v))
}

// SetWeights implements Backend: new servers first when traffic grows
// towards them, old servers first when it shrinks, so there is never a
// moment with every server at weight 0.
func (h *HAProxy) SetWeights(ctx context.Context, w Weights) (Move, error) {
	if err := w.Validate(); err != nil {
		return Move{}, err
	}
	ow, nw := h.ServerWeights(w)
	type group struct {
		servers []string
		weight  int
	}
	order := []group{{h.new, nw}, {h.old, ow}}
	if nw == 0 {
		order[0], order[1] = order[1], order[0]
	}
	for _, g := range order {
		for _, s := range g.servers {
			if err := h.set(ctx, fmt.Sprintf("set server %s/%s weight %d", h.backend, s, g.weight)); err != nil {
				return Move{}, err
			}
		}
	}
	return Move{}, nil
}

// ServerStat is one server's row of `show stat`.
type ServerStat struct {
	Name   string
	Status string // UP, DOWN, DRAIN, MAINT, "no check", …
	Weight int    // user weight (uweight) when HAProxy reports it
	Scur   int64  // current sessions
	Stot   int64  // total sessions
	Hrsp   [6]int64
	ReqTot int64
	Econ   int64         // connection errors
	Eresp  int64         // response errors
	RTime  time.Duration // mean response time of the last 1024 requests
	TTime  time.Duration // mean total time of the last 1024 requests
	// Drained: in drain or maintenance (from the status here; the weight
	// and decommission checks also read the admin state).
	Drained bool
}

// Responses is the sum of every HTTP status class.
func (s ServerStat) Responses() int64 {
	var n int64
	for _, v := range s.Hrsp {
		n += v
	}
	return n
}

// Stats reads `show stat` for the backend's servers, by name.
func (h *HAProxy) Stats(ctx context.Context) (map[string]ServerStat, error) {
	out, err := h.Command(ctx, "show stat")
	if err != nil {
		return nil, err
	}
	rows, err := parseShowStat(out)
	if err != nil {
		return nil, err
	}
	res := map[string]ServerStat{}
	for _, r := range rows {
		if r["pxname"] != h.backend || r["svname"] == "BACKEND" || r["svname"] == "FRONTEND" {
			continue
		}
		res[r["svname"]] = serverStat(r)
	}
	for _, s := range slices.Concat(h.old, h.new) {
		if _, ok := res[s]; !ok {
			return nil, fmt.Errorf("haproxy: backend %q has no server %q in show stat", h.backend, s)
		}
	}
	return res, nil
}

func parseShowStat(out string) ([]map[string]string, error) {
	out = strings.TrimLeft(out, "\n")
	if !strings.HasPrefix(out, "# ") {
		return nil, fmt.Errorf("%w: show stat answered %q", ErrHAProxy, firstLine(out))
	}
	r := csv.NewReader(strings.NewReader(strings.TrimPrefix(out, "# ")))
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("haproxy: parse show stat: %w", err)
	}
	if len(recs) == 0 {
		return nil, errors.New("haproxy: show stat is empty")
	}
	head := recs[0]
	var rows []map[string]string
	for _, rec := range recs[1:] {
		m := make(map[string]string, len(head))
		for i, k := range head {
			if i < len(rec) {
				m[k] = rec[i]
			}
		}
		rows = append(rows, m)
	}
	return rows, nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

func serverStat(r map[string]string) ServerStat {
	num := func(k string) int64 {
		v, _ := strconv.ParseInt(r[k], 10, 64)
		return v
	}
	s := ServerStat{
		Name:   r["svname"],
		Status: r["status"],
		Scur:   num("scur"),
		Stot:   num("stot"),
		ReqTot: num("req_tot"),
		Econ:   num("econ"),
		Eresp:  num("eresp"),
		RTime:  time.Duration(num("rtime")) * time.Millisecond,
		TTime:  time.Duration(num("ttime")) * time.Millisecond,
	}
	for i, k := range []string{"hrsp_1xx", "hrsp_2xx", "hrsp_3xx", "hrsp_4xx", "hrsp_5xx", "hrsp_other"} {
		s.Hrsp[i] = num(k)
	}
	// uweight (HAProxy >= 2.4) is the weight we set; weight is the effective
	// one, which drain and slowstart change.
	if _, ok := r["uweight"]; ok {
		s.Weight = int(num("uweight"))
	} else {
		s.Weight = int(num("weight"))
	}
	s.Drained = strings.HasPrefix(s.Status, "DRAIN") || strings.Contains(s.Status, "MAINT")
	return s
}

// adminStates reads each server's admin state bits from `show servers
// state`: show stat's status says "DOWN" for a drained server whose health
// check fails (a stopped Kong node), hiding the drain.
func (h *HAProxy) adminStates(ctx context.Context) (map[string]int, error) {
	out, err := h.Command(ctx, "show servers state "+h.backend)
	if err != nil {
		return nil, err
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var head []string
	res := map[string]int{}
	for _, l := range lines {
		if after, ok := strings.CutPrefix(l, "# "); ok {
			head = strings.Fields(after)
			continue
		}
		f := strings.Fields(l)
		if head == nil || len(f) != len(head) {
			continue
		}
		var name string
		state := -1
		for i, k := range head {
			switch k {
			case "srv_name":
				name = f[i]
			case "srv_admin_state":
				state, _ = strconv.Atoi(f[i])
			}
		}
		if name != "" && state >= 0 {
			res[name] = state
		}
	}
	if head == nil {
		return nil, fmt.Errorf("%w: show servers state answered %q", ErrHAProxy, firstLine(out))
	}
	return res, nil
}

// Admin state bits of `show servers state` (HAProxy's SRV_ADMF_*).
const (
	admMaint = 0x01 | 0x02 | 0x04 | 0x20 | 0x40 // forced, inherited, config, resolution, hostname
	admDrain = 0x08 | 0x10                      // forced, inherited
)

// statsWithAdmin is Stats with Drained also set from the admin state.
func (h *HAProxy) statsWithAdmin(ctx context.Context) (map[string]ServerStat, error) {
	st, err := h.Stats(ctx)
	if err != nil {
		return nil, err
	}
	adm, err := h.adminStates(ctx)
	if err != nil {
		return nil, err
	}
	for name, s := range st {
		if a, ok := adm[name]; ok && a&(admMaint|admDrain) != 0 {
			s.Drained = true
			st[name] = s
		}
	}
	return st, nil
}

// VerifyWeights implements Backend: every server's weight must be the one
// SetWeights gives for want.
func (h *HAProxy) VerifyWeights(ctx context.Context, want Weights) (steps.Check, error) {
	if err := want.Validate(); err != nil {
		return steps.Check{}, err
	}
	st, err := h.statsWithAdmin(ctx)
	if err != nil {
		return steps.Check{}, err
	}
	ow, nw := h.ServerWeights(want)
	c := steps.Check{OK: true}
	var sumOld, sumNew int
	check := func(servers []string, wantW int, sum *int) {
		for _, s := range servers {
			got := st[s].Weight
			*sum += got
			if got != wantW {
				c.OK = false
				c.Missing = append(c.Missing, fmt.Sprintf("server %s/%s has weight %d, want %d", h.backend, s, got, wantW))
			}
			if wantW > 0 && (st[s].Drained || strings.HasPrefix(st[s].Status, "DOWN")) {
				c.OK = false
				c.Missing = append(c.Missing, fmt.Sprintf("server %s/%s is %s, want it serving", h.backend, s, st[s].Status))
			}
		}
	}
	check(h.old, ow, &sumOld)
	check(h.new, nw, &sumNew)
	c.Facts = append(c.Facts,
		steps.Fact{Name: "wanted", Value: want.String()},
		steps.Fact{Name: "server weights", Value: fmt.Sprintf("old %d × %d, new %d × %d", len(h.old), ow, len(h.new), nw)},
		steps.Fact{Name: "effective new share", Value: pctOf(sumNew, sumOld+sumNew)},
	)
	return c, nil
}

func pctOf(part, total int) string {
	if total == 0 {
		return "n/a (all weights 0)"
	}
	return fmt.Sprintf("%.1f %%", 100*float64(part)/float64(total))
}

// Sample implements Backend from `show stat`. Latency is the highest rtime
// of a generation's servers: HAProxy's mean over each server's last 1024
// requests, not a percentile.
func (h *HAProxy) Sample(ctx context.Context) (Sample, error) {
	st, err := h.Stats(ctx)
	if err != nil {
		return Sample{}, err
	}
	sum := func(servers []string) GenStats {
		var g GenStats
		for _, s := range servers {
			r := st[s]
			g.Responses += r.Responses()
			g.Status5xx += r.Hrsp[4]
			g.Errors += r.Econ + r.Eresp
			g.Sessions += r.Scur
			g.Latency = max(g.Latency, r.RTime)
		}
		g.LatencyKind = "haproxy rtime (mean of the last 1024 requests)"
		return g
	}
	return Sample{At: time.Now(), Source: "haproxy show stat", Old: sum(h.old), New: sum(h.new)}, nil
}

// Drain implements Backend: old servers to weight 0, then state drain.
func (h *HAProxy) Drain(ctx context.Context) (Move, error) {
	for _, s := range h.old {
		if err := h.set(ctx, fmt.Sprintf("set server %s/%s weight 0", h.backend, s)); err != nil {
			return Move{}, err
		}
		if err := h.set(ctx, fmt.Sprintf("set server %s/%s state drain", h.backend, s)); err != nil {
			return Move{}, err
		}
	}
	return Move{}, nil
}

// Undrain implements Backend: old servers back to state ready (weights are
// left to SetWeights).
func (h *HAProxy) Undrain(ctx context.Context) (Move, error) {
	for _, s := range h.old {
		if err := h.set(ctx, fmt.Sprintf("set server %s/%s state ready", h.backend, s)); err != nil {
			return Move{}, err
		}
	}
	return Move{}, nil
}

// Decommissioned implements Backend: every old server at weight 0, drained
// (or in maintenance) and with no current session.
func (h *HAProxy) Decommissioned(ctx context.Context) (steps.Check, error) {
	st, err := h.statsWithAdmin(ctx)
	if err != nil {
		return steps.Check{}, err
	}
	c := steps.Check{OK: true}
	for _, s := range h.old {
		r := st[s]
		if r.Weight != 0 {
			c.Missing = append(c.Missing, fmt.Sprintf("server %s/%s has weight %d, want 0", h.backend, s, r.Weight))
		}
		if !r.Drained {
			c.Missing = append(c.Missing, fmt.Sprintf("server %s/%s is %s, want DRAIN or MAINT", h.backend, s, r.Status))
		}
		if r.Scur != 0 {
			c.Missing = append(c.Missing, fmt.Sprintf("server %s/%s still has %d current sessions", h.backend, s, r.Scur))
		}
		c.Facts = append(c.Facts, steps.Fact{Name: s, Value: fmt.Sprintf("weight %d, %s, %d sessions, %d sessions in total", r.Weight, r.Status, r.Scur, r.Stot)})
	}
	c.OK = len(c.Missing) == 0
	return c, nil
}
