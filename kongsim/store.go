package kongsim

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// querier is a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// openPool connects to the Kong database. Sessions run in UTC, as Kong's
// connector sets, so `timestamp without time zone` columns hold UTC.
func openPool(ctx context.Context, dsn string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parsing postgres DSN: %w", err)
	}
	cfg.ConnConfig.RuntimeParams["timezone"] = "UTC"
	if cfg.MaxConns < 16 {
		cfg.MaxConns = 16
	}
	// Migrations change column types under running nodes; cached plans
	// would then fail with "cached plan must not change result type".
	cfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeExec
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to postgres: %w", err)
	}
	return pool, nil
}

func epochTime(f float64) time.Time {
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(math.Round(frac*1e3))*1e6).UTC()
}

// jsonArrayText decodes the 0.x apis hosts/uris/methods columns (text holding
// a JSON array).
func jsonArrayText(s *string) []string {
	if s == nil || *s == "" {
		return nil
	}
	var out []string
	if err := json.Unmarshal([]byte(*s), &out); err != nil {
		return nil
	}
	return out
}

const apiCols = `id::text, name, upstream_url, preserve_host, extract(epoch from created_at)::float8,
	retries, https_only, http_if_terminated, hosts, uris, methods, strip_uri,
	upstream_connect_timeout, upstream_send_timeout, upstream_read_timeout`

func scanAPI(r pgx.Row) (API, error) {
	var a API
	var name, up, hosts, uris, methods *string
	var https, hit, strip *bool
	var retries, ct, st, rt *int64
	var created float64
	if err := r.Scan(&a.ID, &name, &up, &a.PreserveHost, &created, &retries, &https, &hit,
		&hosts, &uris, &methods, &strip, &ct, &st, &rt); err != nil {
		return a, err
	}
	a.Name, a.UpstreamURL = deref(name), deref(up)
	a.CreatedAt = epochTime(created)
	a.Hosts, a.URIs, a.Methods = jsonArrayText(hosts), jsonArrayText(uris), jsonArrayText(methods)
	a.HTTPSOnly, a.HTTPIfTerminated, a.StripURI = derefB(https), derefB(hit), derefB(strip)
	a.Retries = int(derefI(retries))
	a.UpstreamConnectTimeout, a.UpstreamSendTimeout, a.UpstreamReadTimeout = int(derefI(ct)), int(derefI(st)), int(derefI(rt))
	return a, nil
}

func selectAPIs(ctx context.Context, q querier, where string, args []any) ([]API, error) {
	rows, err := q.Query(ctx, `SELECT `+apiCols+` FROM apis `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("reading apis: %w", err)
	}
	defer rows.Close()
	var out []API
	for rows.Next() {
		a, err := scanAPI(rows)
		if err != nil {
			return nil, fmt.Errorf("reading apis: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading apis: %w", err)
	}
	return out, nil
}

const serviceCols = `id::text, extract(epoch from created_at)::float8, extract(epoch from updated_at)::float8,
	name, retries, protocol, host, port, path, connect_timeout, write_timeout, read_timeout`

func scanService(r pgx.Row) (Service, error) {
	var s Service
	var c, u *float64
	var retries, port, ct, wt, rt *int64
	var proto, host *string
	if err := r.Scan(&s.ID, &c, &u, &s.Name, &retries, &proto, &host, &port, &s.Path, &ct, &wt, &rt); err != nil {
		return s, err
	}
	if c != nil {
		s.CreatedAt = epochTime(*c)
	}
	if u != nil {
		s.UpdatedAt = epochTime(*u)
	}
	s.Retries, s.Port = int(derefI(retries)), int(derefI(port))
	s.Protocol, s.Host = deref(proto), deref(host)
	s.ConnectTimeout, s.WriteTimeout, s.ReadTimeout = int(derefI(ct)), int(derefI(wt)), int(derefI(rt))
	return s, nil
}

func selectServices(ctx context.Context, q querier, where string, args []any) ([]Service, error) {
	rows, err := q.Query(ctx, `SELECT `+serviceCols+` FROM services `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("reading services: %w", err)
	}
	defer rows.Close()
	var out []Service
	for rows.Next() {
		s, err := scanService(rows)
		if err != nil {
			return nil, fmt.Errorf("reading services: %w", err)
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

func routeCols(v Version) string {
	c := `id::text, extract(epoch from created_at)::float8, extract(epoch from updated_at)::float8,
	protocols, methods, hosts, paths, regex_priority, strip_path, preserve_host, service_id::text`
	if v.Is10() {
		c += `, name, snis, sources::text[], destinations::text[]`
	}
	return c
}

func scanRoute(v Version, r pgx.Row) (Route, error) {
	var rt Route
	var c, u *float64
	var prio *int64
	var strip, preserve *bool
	var svc *string
	dest := []any{&rt.ID, &c, &u, &rt.Protocols, &rt.Methods, &rt.Hosts, &rt.Paths, &prio, &strip, &preserve, &svc}
	var sources, dests []string
	if v.Is10() {
		dest = append(dest, &rt.Name, &rt.SNIs, &sources, &dests)
	}
	if err := r.Scan(dest...); err != nil {
		return rt, err
	}
	if c != nil {
		rt.CreatedAt = epochTime(*c)
	}
	if u != nil {
		rt.UpdatedAt = epochTime(*u)
	}
	rt.RegexPriority = int(derefI(prio))
	rt.StripPath, rt.PreserveHost = derefB(strip), derefB(preserve)
	rt.ServiceID = deref(svc)
	for _, s := range sources {
		rt.Sources = append(rt.Sources, json.RawMessage(s))
	}
	for _, s := range dests {
		rt.Destinations = append(rt.Destinations, json.RawMessage(s))
	}
	return rt, nil
}

func selectRoutes(ctx context.Context, q querier, v Version, where string, args []any) ([]Route, error) {
	rows, err := q.Query(ctx, `SELECT `+routeCols(v)+` FROM routes `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("reading routes: %w", err)
	}
	defer rows.Close()
	var out []Route
	for rows.Next() {
		r, err := scanRoute(v, rows)
		if err != nil {
			return nil, fmt.Errorf("reading routes: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func pluginCols(v Version) string {
	c := `id::text, name, extract(epoch from created_at)::float8, config::text, enabled,
	api_id::text, service_id::text, route_id::text, consumer_id::text`
	if v.Is10() {
		c += `, run_on`
	}
	return c
}

func scanPlugin(v Version, r pgx.Row) (Plugin, error) {
	var p Plugin
	var c *float64
	var cfg string
	var api, svc, rt, cons, runOn *string
	dest := []any{&p.ID, &p.Name, &c, &cfg, &p.Enabled, &api, &svc, &rt, &cons}
	if v.Is10() {
		dest = append(dest, &runOn)
	}
	if err := r.Scan(dest...); err != nil {
		return p, err
	}
	if c != nil {
		p.CreatedAt = epochTime(*c)
	}
	m, err := decodeConfig([]byte(cfg))
	if err != nil {
		return p, err
	}
	p.Config = m
	p.APIID, p.ServiceID, p.RouteID, p.ConsumerID, p.RunOn = deref(api), deref(svc), deref(rt), deref(cons), deref(runOn)
	return p, nil
}

func selectPlugins(ctx context.Context, q querier, v Version, where string, args []any) ([]Plugin, error) {
	rows, err := q.Query(ctx, `SELECT `+pluginCols(v)+` FROM plugins `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("reading plugins: %w", err)
	}
	defer rows.Close()
	var out []Plugin
	for rows.Next() {
		p, err := scanPlugin(v, rows)
		if err != nil {
			return nil, fmt.Errorf("reading plugins: %w", err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

const consumerCols = `id::text, username, custom_id, extract(epoch from created_at)::float8`

func scanConsumer(r pgx.Row) (Consumer, error) {
	var c Consumer
	var t *float64
	if err := r.Scan(&c.ID, &c.Username, &c.CustomID, &t); err != nil {
		return c, err
	}
	if t != nil {
		c.CreatedAt = epochTime(*t)
	}
	return c, nil
}

func selectConsumers(ctx context.Context, q querier, where string, args []any) ([]Consumer, error) {
	rows, err := q.Query(ctx, `SELECT `+consumerCols+` FROM consumers `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("reading consumers: %w", err)
	}
	defer rows.Close()
	var out []Consumer
	for rows.Next() {
		c, err := scanConsumer(rows)
		if err != nil {
			return nil, fmt.Errorf("reading consumers: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

func selectKeyAuth(ctx context.Context, q querier, where string, args []any) ([]KeyAuthCredential, error) {
	rows, err := q.Query(ctx, `SELECT id::text, consumer_id::text, key, extract(epoch from created_at)::float8
		FROM keyauth_credentials `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("reading keyauth_credentials: %w", err)
	}
	defer rows.Close()
	var out []KeyAuthCredential
	for rows.Next() {
		var k KeyAuthCredential
		var cons, key *string
		var t *float64
		if err := rows.Scan(&k.ID, &cons, &key, &t); err != nil {
			return nil, fmt.Errorf("reading keyauth_credentials: %w", err)
		}
		k.ConsumerID, k.Key = deref(cons), deref(key)
		if t != nil {
			k.CreatedAt = epochTime(*t)
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func derefB(b *bool) bool { return b != nil && *b }

func derefI(i *int64) int64 {
	if i == nil {
		return 0
	}
	return *i
}
