package traffic

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/kongbot/kongbot/steps"
)

// Probe is one smoke request sent through the new cluster's proxy while a
// stage bakes.
type Probe struct {
	Name   string
	Method string // default GET
	URL    string
	// Header is sent with the request. A "Host" entry names the virtual host
	// (a Kong route or a load balancer matched by host) and is sent as the
	// request's Host, not as a header: net/http ignores Header["Host"].
	Header http.Header
	// WantStatus is the status that counts as a pass; 0 accepts anything
	// below 500 (a 401 from an auth plugin is Kong working).
	WantStatus int
}

// ProbeResult is one probe's answer.
type ProbeResult struct {
	Probe   string
	Status  int // 0 when no answer
	Took    time.Duration
	Err     string
	Version string // Kong version from Via or Server, "" when neither
	// FromKong: Kong answered itself (Server: kong/<v>, no Via), e.g.
	// request-termination, rather than proxying to the upstream.
	FromKong bool
	Pass     bool
}

// Prober sends probes with a bounded timeout.
type Prober struct {
	Client  *http.Client
	Timeout time.Duration // per request; default 5s
}

func (p Prober) client() *http.Client {
	if p.Client != nil {
		return p.Client
	}
	return http.DefaultClient
}

// Do sends one probe.
func (p Prober) Do(ctx context.Context, pr Probe) ProbeResult {
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res := ProbeResult{Probe: pr.Name}
	if res.Probe == "" {
		res.Probe = pr.URL
	}
	method := pr.Method
	if method == "" {
		method = http.MethodGet
	}
	req, err := http.NewRequestWithContext(ctx, method, pr.URL, nil)
	if err != nil {
		res.Err = err.Error()
		return res
	}
	for k, vs := range pr.Header {
		if http.CanonicalHeaderKey(k) == "Host" {
			if len(vs) > 0 {
				req.Host = vs[0]
			}
			continue
		}
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	start := time.Now()
	resp, err := p.client().Do(req)
	if err != nil {
		res.Took = time.Since(start)
		res.Err = err.Error()
		return res
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	res.Took = time.Since(start)
	res.Status = resp.StatusCode
	res.Version = kongVersion(resp.Header)
	res.FromKong = resp.Header.Get("Via") == "" && strings.HasPrefix(resp.Header.Get("Server"), "kong/")
	if pr.WantStatus != 0 {
		res.Pass = resp.StatusCode == pr.WantStatus
	} else {
		res.Pass = resp.StatusCode < 500
	}
	return res
}

// kongVersion reads the Kong version off a response: proxied responses carry
// `Via: kong/<v>`, Kong's own (plugin) responses `Server: kong/<v>`.
func kongVersion(h http.Header) string {
	for _, k := range []string{"Via", "Server"} {
		for _, v := range h.Values(k) {
			for _, part := range strings.Split(v, ",") {
				part = strings.TrimSpace(part)
				if after, ok := strings.CutPrefix(part, "kong/"); ok {
					after, _, _ = strings.Cut(after, " ")
					return after
				}
			}
		}
	}
	return ""
}

// ShareProbe verifies a split from the outside: it sends Requests requests
// through the load balancer's front and counts which Kong version answers.
// Used by the manual and exec backends, which cannot read weights back.
type ShareProbe struct {
	URL string
	// Header as in Probe: a "Host" entry is sent as the request's Host.
	Header http.Header
	// OldVersion and NewVersion are the Kong versions of each generation as
	// they appear in `Via: kong/<v>` or `Server: kong/<v>`.
	OldVersion string
	NewVersion string
	Requests   int // default 60
	Prober     Prober
}

// Validate reports an unusable share probe.
func (s ShareProbe) Validate() error {
	switch {
	case s.URL == "":
		return errors.New("share probe: URL is empty")
	case s.OldVersion == "" || s.NewVersion == "":
		return errors.New("share probe: old and new Kong versions are needed to tell the generations apart")
	case s.OldVersion == s.NewVersion:
		return fmt.Errorf("share probe: old and new version are both %q", s.OldVersion)
	}
	return nil
}

// Verify sends the requests and checks the observed new share against want.
// At 0 % and 100 % no answer from the other generation is allowed; in
// between the observed share must lie within three standard deviations of a
// binomial sample (at least 10 percentage points).
func (s ShareProbe) Verify(ctx context.Context, want Weights) (steps.Check, error) {
	if err := s.Validate(); err != nil {
		return steps.Check{}, err
	}
	n := s.Requests
	if n <= 0 {
		n = 60
	}
	var old, nw, other, failed int
	var others []string
	for range n {
		if err := ctx.Err(); err != nil {
			return steps.Check{}, fmt.Errorf("share probe: %w", err)
		}
		r := s.Prober.Do(ctx, Probe{URL: s.URL, Header: s.Header})
		switch {
		case r.Status == 0:
			failed++
		case r.Version == s.OldVersion:
			old++
		case r.Version == s.NewVersion:
			nw++
		default:
			other++
			if !slices.Contains(others, r.Version) && len(others) < 5 {
				others = append(others, r.Version)
			}
		}
	}
	c := steps.Check{OK: true, Facts: []steps.Fact{
		{Name: "wanted", Value: want.String()},
		{Name: "probes through " + s.URL, Value: fmt.Sprintf("%d answered by %s, %d by %s, %d by neither, %d without answer", old, s.OldVersion, nw, s.NewVersion, other, failed)},
	}}
	seen := old + nw
	if seen == 0 {
		c.OK = false
		c.Missing = append(c.Missing, fmt.Sprintf("no probe answer named kong/%s or kong/%s (saw %q): cannot tell the split", s.OldVersion, s.NewVersion, others))
		return c, nil
	}
	got := float64(nw) / float64(seen)
	p := float64(want.New) / 100
	c.Facts = append(c.Facts, steps.Fact{Name: "observed new share", Value: fmt.Sprintf("%.1f %% (%d/%d)", 100*got, nw, seen)})
	switch want.New {
	case 0:
		if nw > 0 {
			c.Missing = append(c.Missing, fmt.Sprintf("%d of %d probes answered by the new generation (%s), want none", nw, seen, s.NewVersion))
		}
	case 100:
		if old > 0 {
			c.Missing = append(c.Missing, fmt.Sprintf("%d of %d probes answered by the old generation (%s), want none", old, seen, s.OldVersion))
		}
	default:
		tol := max(0.10, 3*math.Sqrt(p*(1-p)/float64(seen)))
		if math.Abs(got-p) > tol {
			c.Missing = append(c.Missing, fmt.Sprintf("observed new share %.1f %% (%d/%d), want %d %% ± %.0f", 100*got, nw, seen, want.New, 100*tol))
		}
	}
	if failed > 0 {
		c.Missing = append(c.Missing, fmt.Sprintf("%d of %d probes got no answer", failed, n))
	}
	c.OK = len(c.Missing) == 0
	return c, nil
}
