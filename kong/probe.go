package kong

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/kongbot/kongbot/steps"
)

// probeAnswer is what a proxy answered to one probe.
type probeAnswer struct {
	Status int
	Body   string // first bytes, for messages
}

// probe sends one request through a proxy. Redirects are not followed: the
// status Kong gives is the answer.
func (g *gateway) probe(ctx context.Context, proxyURL string, p Probe) (probeAnswer, error) {
	ctx, cancel := context.WithTimeout(ctx, g.cfg.RequestTimeout)
	defer cancel()
	method := p.Method
	if method == "" {
		method = http.MethodGet
	}
	u := strings.TrimRight(proxyURL, "/") + p.Path
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return probeAnswer{}, fmt.Errorf("probe %s %s: %w", method, p.Path, err)
	}
	if p.Host != "" {
		req.Host = p.Host
	}
	for k, v := range p.Headers {
		req.Header.Set(k, v)
	}
	hc := *g.http
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := hc.Do(req)
	if err != nil {
		return probeAnswer{}, fmt.Errorf("probe %s %s: %w", method, p.Path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	return probeAnswer{Status: resp.StatusCode, Body: strings.TrimSpace(string(body))}, nil
}

// proxies lists the nodes with a proxy URL in generation gen ("" = all).
func (g *gateway) proxies(gen steps.Generation) []*node {
	var out []*node
	for _, n := range g.nodes {
		if n.opts.ProxyURL == "" {
			continue
		}
		if gen != "" && steps.Generation(n.gen) != gen {
			continue
		}
		out = append(out, n)
	}
	return out
}

// Smoke runs the configured probes through each proxy of gen (all
// generations when gen is empty) and compares the statuses.
func (c *Client) Smoke(ctx context.Context, gateway string, gen steps.Generation) (steps.Check, error) {
	g, err := c.gateway(gateway)
	if err != nil {
		return steps.Check{}, err
	}
	type job struct {
		n *node
		p Probe
	}
	var jobs []job
	for _, n := range g.proxies(gen) {
		for _, p := range g.cfg.Probes {
			if p.Generation != "" && p.Generation != n.gen {
				continue
			}
			jobs = append(jobs, job{n, p})
		}
	}
	var chk steps.Check
	if len(jobs) == 0 {
		chk.Missing = append(chk.Missing, fmt.Sprintf("no smoke probes apply to generation %q of gateway %s", gen, gateway))
		return chk, nil
	}
	var mu sync.Mutex
	results := make([]string, len(jobs))
	_ = parallel(ctx, len(jobs), 8, func(ctx context.Context, i int) error {
		j := jobs[i]
		name := j.p.Name
		if name == "" {
			name = j.p.Method + " " + j.p.Path
		}
		a, err := g.probe(ctx, j.n.opts.ProxyURL, j.p)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err != nil:
			results[i] = "error"
			chk.Missing = append(chk.Missing, fmt.Sprintf("%s via %s: %v", name, j.n.opts.Name, err))
		case a.Status != j.p.Want:
			results[i] = fmt.Sprint(a.Status)
			chk.Missing = append(chk.Missing, fmt.Sprintf("%s via %s: got %d, want %d (%s)", name, j.n.opts.Name, a.Status, j.p.Want, a.Body))
		default:
			results[i] = fmt.Sprint(a.Status)
		}
		return nil
	})
	for i, j := range jobs {
		name := j.p.Name
		if name == "" {
			name = j.p.Path
		}
		chk.Facts = append(chk.Facts, steps.Fact{Name: name + " via " + j.n.opts.Name, Value: results[i]})
	}
	if err := ctx.Err(); err != nil {
		return chk, err
	}
	chk.OK = len(chk.Missing) == 0
	return chk, nil
}
