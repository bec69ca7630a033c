package kong

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Options configure a Client: the gateways it may act on and shared
// settings. The zero value of every optional field has a sane default.
type Options struct {
	// Gateways by name (the name used in /kong commands, e.g. "prod").
	Gateways map[string]Gateway
	// HTTPClient is used for Admin API and proxy requests. Default: a client
	// with keep-alive pools sized for the conversion's concurrency.
	HTTPClient *http.Client
	// Logger defaults to a discard logger.
	Logger *slog.Logger
	// Now defaults to time.Now.
	Now func() time.Time
}

// Gateway is one Kong cluster (all its generations) and its datastore.
type Gateway struct {
	// Generations from the oldest to the newest, e.g. 0.13.1, 0.14.1, 1.0.3.
	Generations []GenerationNodes
	// DatastoreDSN is the PostgreSQL DSN of the Kong database (read by the
	// inspector, the snapshot and the post-migration checks). Never logged.
	DatastoreDSN string
	// AdminToken, when set, is sent on every Admin API request in
	// AdminTokenHeader (default "Kong-Admin-Token"), for Admin APIs put behind
	// an authenticating proxy. Never logged.
	AdminToken       string
	AdminTokenHeader string
	// Migrations is the command per target version ("0.14.1", "1.0.3").
	Migrations map[string]MigrationCommand
	// Termination configures the maintenance switch.
	Termination Termination
	// Probes are the smoke probes run through each proxy.
	Probes []Probe
	// SnapshotDir is where Snapshot writes archives.
	SnapshotDir string
	// MigrationLogDir is where a migration's stdout and stderr are written
	// (one pair of files per run), tailed from there so the migration does
	// not depend on the bot staying alive. Default: SnapshotDir/migrations,
	// or kongbot-migrations under os.TempDir() without a SnapshotDir.
	MigrationLogDir string
	// Conversion tunes the /apis conversion.
	Conversion ConversionOptions
	// RequestTimeout bounds each Admin API and proxy request (default 10 s).
	RequestTimeout time.Duration
	// PropagationTimeout bounds how long a verification waits for other nodes
	// to see a change (they poll cluster_events every db_update_frequency,
	// default 5 s, §8.1). Default 30 s.
	PropagationTimeout time.Duration
	// PGDump is the pg_dump program a snapshot runs for the schema. Default:
	// the newest under /usr/lib/postgresql/<v>/bin, else pg_dump on PATH. Its
	// major version must be at least the datastore server's.
	PGDump string
}

// GenerationNodes is one generation of a gateway: the Kong version its nodes
// run (or will run) and the nodes.
type GenerationNodes struct {
	Version string
	Nodes   []NodeOptions
}

// NodeOptions addresses one Kong node.
type NodeOptions struct {
	Name     string
	AdminURL string
	ProxyURL string
	// Plugins is the node's configured `plugins` list (beyond the bundled
	// ones), declared for nodes that cannot be asked yet: a 1.0.3 node cannot
	// start before the 1.0.3 `migrations up` (§4.2), so hop 2's preflight
	// falls back to this list when the node does not answer.
	Plugins []string
}

// MigrationCommand is how to run `kong migrations <verb>` of one version.
type MigrationCommand struct {
	// Argv is the command, never run through a shell. Each element is a
	// text/template with the fields of MigrationVars, e.g.
	// ["kubectl","exec","kong-0","--","kong","migrations","{{.Verb}}","-c","{{.Config}}"].
	Argv []string
	// Env is extra environment, "KEY=template" (e.g. KONG_PG_PASSWORD).
	Env []string
	// Config is the value of {{.Config}} (a kong.conf path on the target).
	Config string
	// Timeout bounds one run (default 10 minutes).
	Timeout time.Duration
}

// MigrationVars are the placeholders available to MigrationCommand.Argv.
type MigrationVars struct {
	Verb    string // up, finish, list
	Config  string
	Target  string // target version
	Gateway string
	DSN     string // the datastore DSN (secret: argv is never logged whole)
}

// Termination is the maintenance switch: a global request-termination.
type Termination struct {
	Status  int    // default 503
	Message string // default "Maintenance"
	// Probes verify it through every proxy. They must reach a route where no
	// auth plugin answers first (key-auth answers 401 before termination
	// runs, §5.2), or carry credentials. Want is ignored: enabled expects
	// Status, disabled expects anything else.
	Probes []Probe
}

// Probe is one HTTP check through a proxy.
type Probe struct {
	Name    string
	Method  string // default GET
	Path    string
	Host    string // Host header, optional
	Headers map[string]string
	Want    int // expected status
	// Generation limits the probe to one generation's proxies ("" = all).
	Generation string
}

// ConversionOptions tune the /apis conversion.
type ConversionOptions struct {
	// Concurrency is how many APIs are converted at once (default 16).
	Concurrency int
	// SkipProbes turns off the per-API proxy verification (not recommended;
	// for gateways whose proxies the bot cannot reach).
	SkipProbes bool
}

func (o *Options) withDefaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.HTTPClient == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConns = 256
		tr.MaxIdleConnsPerHost = 64
		o.HTTPClient = &http.Client{Transport: tr}
	}
}

func (g *Gateway) withDefaults() {
	if g.AdminTokenHeader == "" {
		g.AdminTokenHeader = "Kong-Admin-Token"
	}
	if g.Termination.Status == 0 {
		g.Termination.Status = 503
	}
	if g.Termination.Message == "" {
		g.Termination.Message = "Maintenance"
	}
	if g.Conversion.Concurrency <= 0 {
		g.Conversion.Concurrency = 16
	}
	if g.RequestTimeout <= 0 {
		g.RequestTimeout = 10 * time.Second
	}
	if g.PropagationTimeout <= 0 {
		g.PropagationTimeout = 30 * time.Second
	}
	for v, m := range g.Migrations {
		if m.Timeout <= 0 {
			m.Timeout = 10 * time.Minute
			g.Migrations[v] = m
		}
	}
}

// validate reports every problem of one gateway's options at once.
func (g *Gateway) validate(name string) error {
	var errs []error
	if len(g.Generations) == 0 {
		errs = append(errs, errors.New("no node generations"))
	}
	seen := map[string]bool{}
	for i, gen := range g.Generations {
		if _, err := parseVersion(gen.Version); err != nil {
			errs = append(errs, fmt.Errorf("generation %d: %w", i, err))
		}
		for j, n := range gen.Nodes {
			if n.Name == "" {
				errs = append(errs, fmt.Errorf("generation %s node %d: no name", gen.Version, j))
			} else if seen[n.Name] {
				errs = append(errs, fmt.Errorf("node %s: name used twice", n.Name))
			}
			seen[n.Name] = true
			for _, u := range []struct{ what, v string }{{"admin URL", n.AdminURL}, {"proxy URL", n.ProxyURL}} {
				if u.v == "" {
					continue
				}
				pu, err := url.Parse(u.v)
				if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
					errs = append(errs, fmt.Errorf("node %s: %s %q is not an http(s) URL", n.Name, u.what, u.v))
				}
			}
			if n.AdminURL == "" {
				errs = append(errs, fmt.Errorf("node %s: no admin URL", n.Name))
			}
		}
	}
	if g.DatastoreDSN == "" {
		errs = append(errs, errors.New("no datastore DSN"))
	}
	for v, m := range g.Migrations {
		if len(m.Argv) == 0 {
			errs = append(errs, fmt.Errorf("migrations %s: empty argv", v))
		}
	}
	if s := g.Termination.Status; s < 100 || s > 599 {
		errs = append(errs, fmt.Errorf("termination status %d is not between 100 and 599", s))
	}
	for _, p := range append(append([]Probe(nil), g.Probes...), g.Termination.Probes...) {
		if !strings.HasPrefix(p.Path, "/") {
			errs = append(errs, fmt.Errorf("probe %q: path %q must start with /", p.Name, p.Path))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("gateway %s: %w", name, err)
	}
	return nil
}
