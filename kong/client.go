package kong

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	gokong "github.com/kong/go-kong/kong"

	"github.com/kongbot/kongbot/steps"
)

// Client acts on the configured gateways. It is safe for concurrent use.
type Client struct {
	opts     Options
	gateways map[string]*gateway
}

var _ steps.Kong = (*Client)(nil)

// gateway is one configured gateway with its Admin API clients.
type gateway struct {
	name  string
	cfg   Gateway
	nodes []*node // every node of every generation, oldest generation first
	http  *http.Client
	log   *slog.Logger
}

// node is one configured node and its Admin API client.
type node struct {
	opts  NodeOptions
	gen   string // configured generation version
	admin *admin
}

// New checks the options and returns a Client. It makes no request.
func New(opts Options) (*Client, error) {
	opts.withDefaults()
	c := &Client{opts: opts, gateways: map[string]*gateway{}}
	var errs []error
	for name, g := range opts.Gateways {
		g.withDefaults()
		if err := g.validate(name); err != nil {
			errs = append(errs, err)
			continue
		}
		gw := &gateway{name: name, cfg: g, http: opts.HTTPClient, log: opts.Logger.With("gateway", name)}
		for _, gen := range g.Generations {
			for _, n := range gen.Nodes {
				a, err := newAdmin(n.AdminURL, opts.HTTPClient, g.AdminTokenHeader, g.AdminToken, g.RequestTimeout)
				if err != nil {
					errs = append(errs, fmt.Errorf("gateway %s node %s: %w", name, n.Name, err))
					continue
				}
				gw.nodes = append(gw.nodes, &node{opts: n, gen: gen.Version, admin: a})
			}
		}
		c.gateways[name] = gw
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("kong options: %w", err)
	}
	return c, nil
}

// ErrUnknownGateway is returned for a gateway name that is not configured.
var ErrUnknownGateway = errors.New("unknown gateway")

func (c *Client) gateway(name string) (*gateway, error) {
	g, ok := c.gateways[name]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownGateway, name)
	}
	return g, nil
}

// Gateways lists the configured gateway names, sorted.
func (c *Client) Gateways() []string {
	var out []string
	for n := range c.gateways {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// admin talks to one node's Admin API: go-kong for the calls it covers, and
// plain requests through the same go-kong client for the rest.
type admin struct {
	kc      *gokong.Client
	base    string
	timeout time.Duration
}

// tokenTransport adds the admin token header to every request.
type tokenTransport struct {
	next          http.RoundTripper
	header, token string
}

func (t tokenTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set(t.header, t.token)
	return t.next.RoundTrip(r)
}

func newAdmin(baseURL string, hc *http.Client, tokenHeader, token string, timeout time.Duration) (*admin, error) {
	if token != "" {
		next := hc.Transport
		if next == nil {
			next = http.DefaultTransport
		}
		cp := *hc
		cp.Transport = tokenTransport{next: next, header: tokenHeader, token: token}
		hc = &cp
	}
	base := strings.TrimRight(baseURL, "/")
	kc, err := gokong.NewClient(&base, hc)
	if err != nil {
		return nil, fmt.Errorf("admin client: %w", err)
	}
	// go-kong keeps only the "message" key of an error body, which old-DAO
	// errors lack (GOKONG.md note 5); keep the whole body instead.
	kc.SetDoer(func(ctx context.Context, c *http.Client, req *http.Request) (*http.Response, error) {
		resp, err := c.Do(req.WithContext(ctx))
		if err != nil {
			return nil, err
		}
		if resp.StatusCode >= 400 {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			return nil, &AdminError{Method: req.Method, Path: req.URL.Path, Status: resp.StatusCode, Body: string(bytes.TrimSpace(body))}
		}
		resp.Body = drainOnClose{resp.Body}
		return resp, nil
	})
	return &admin{kc: kc, base: base, timeout: timeout}, nil
}

// drainOnClose reads what is left of a body before closing it. go-kong
// closes unread bodies (a call with no result, a decoder stopping before
// EOF), and net/http drops a connection whose body was not read to the end:
// without this every such call would open a new connection (a new TLS
// handshake on a real gateway).
type drainOnClose struct{ io.ReadCloser }

func (d drainOnClose) Close() error {
	_, _ = io.Copy(io.Discard, io.LimitReader(d.ReadCloser, 1<<20))
	return d.ReadCloser.Close()
}

// AdminError is a non-2xx Admin API answer with its whole body.
type AdminError struct {
	Method, Path string
	Status       int
	Body         string
}

func (e *AdminError) Error() string {
	return fmt.Sprintf("%s %s: HTTP %d: %s", e.Method, e.Path, e.Status, e.Body)
}

// statusOf returns the HTTP status of an AdminError, or 0.
func statusOf(err error) int {
	var ae *AdminError
	if errors.As(err, &ae) {
		return ae.Status
	}
	return 0
}

// do sends a plain request. body is JSON-encoded when not nil; out, when not
// nil, receives the decoded JSON answer.
func (a *admin) do(ctx context.Context, method, path string, body, out any) error {
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	req, err := a.kc.NewRequest(method, path, nil, body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if _, err := a.kc.Do(ctx, req, out); err != nil {
		var ae *AdminError
		if errors.As(err, &ae) {
			return ae
		}
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	return nil
}

// call runs one go-kong call under the request timeout.
func call[T any](ctx context.Context, a *admin, f func(context.Context) (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	return f(ctx)
}

// oldPage is an old-DAO list page (§1.4): next is an absolute URL or absent.
type oldPage[T any] struct {
	Data   []T    `json:"data"`
	Total  int    `json:"total"`
	Offset string `json:"offset"`
	Next   string `json:"next"`
}

// listOld pages through an old-DAO collection (/apis, 0.x /plugins) by its
// offset token, which is a page number and stable (§1.4).
func listOld[T any](ctx context.Context, a *admin, path string, query map[string]string) ([]T, error) {
	var all []T
	offset := ""
	for page := 0; ; page++ {
		q := []string{"size=1000"}
		for k, v := range query {
			q = append(q, k+"="+urlQueryEscape(v))
		}
		sort.Strings(q)
		if offset != "" {
			q = append(q, "offset="+urlQueryEscape(offset))
		}
		var p oldPage[T]
		if err := a.do(ctx, http.MethodGet, path+"?"+strings.Join(q, "&"), nil, &p); err != nil {
			return nil, err
		}
		all = append(all, p.Data...)
		if p.Offset == "" || len(p.Data) == 0 {
			return all, nil
		}
		if page > 100000 {
			return nil, fmt.Errorf("GET %s: more than 100000 pages", path)
		}
		offset = p.Offset
	}
}

// version is a parsed Kong version (major.minor.patch).
type version struct{ major, minor, patch int }

func parseVersion(s string) (version, error) {
	parts := strings.SplitN(strings.TrimSpace(s), ".", 3)
	if len(parts) < 2 {
		return version{}, fmt.Errorf("version %q: want major.minor[.patch]", s)
	}
	var v version
	var err error
	if v.major, err = strconv.Atoi(parts[0]); err != nil {
		return version{}, fmt.Errorf("version %q: %w", s, err)
	}
	if v.minor, err = strconv.Atoi(parts[1]); err != nil {
		return version{}, fmt.Errorf("version %q: %w", s, err)
	}
	if len(parts) == 3 {
		// Tolerate suffixes such as "1.0.3-enterprise" or "0.14.1rc1".
		p := parts[2]
		i := 0
		for i < len(p) && p[i] >= '0' && p[i] <= '9' {
			i++
		}
		if i == 0 {
			return version{}, fmt.Errorf("version %q: bad patch", s)
		}
		v.patch, _ = strconv.Atoi(p[:i])
	}
	return v, nil
}

func (v version) String() string { return fmt.Sprintf("%d.%d.%d", v.major, v.minor, v.patch) }

// series is the release line: "0.13", "0.14" or "1.0".
func (v version) series() string { return fmt.Sprintf("%d.%d", v.major, v.minor) }

// is1x reports a 1.x node (new-DAO plugins, no /apis).
func (v version) is1x() bool { return v.major >= 1 }

func less(a, b version) bool {
	if a.major != b.major {
		return a.major < b.major
	}
	if a.minor != b.minor {
		return a.minor < b.minor
	}
	return a.patch < b.patch
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }

// decodeJSON decodes into v and names what failed.
func decodeJSON(data []byte, v any, what string) error {
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("decoding %s: %w", what, err)
	}
	return nil
}

// parallel runs f for i in [0,n) with at most k at once and returns every
// error joined. It stops starting new work once ctx is done.
func parallel(ctx context.Context, n, k int, f func(ctx context.Context, i int) error) error {
	if k < 1 {
		k = 1
	}
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		sem  = make(chan struct{}, k)
	)
	for i := 0; i < n; i++ {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return errors.Join(append(errs, ctx.Err())...)
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			if err := f(ctx, i); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}(i)
	}
	wg.Wait()
	return errors.Join(errs...)
}
