package kong

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kongbot/kongbot/steps"
)

// The core migrations that tell 0.13 and 0.14 apart (§3.2, §3.4).
var (
	core013 = []string{
		"2015-01-12-175310_skeleton", "2015-01-12-175310_init_schema",
		"2015-11-23-817313_nodes", "2016-02-29-142793_ttls", "2016-09-05-212515_retries",
		"2016-09-16-141423_upstreams", "2016-12-14-172100_move_ssl_certs_to_core",
		"2016-11-11-151900_new_apis_router_1", "2016-11-11-151900_new_apis_router_2",
		"2016-11-11-151900_new_apis_router_3", "2016-01-25-103600_unique_custom_id",
		"2017-01-24-132600_upstream_timeouts", "2017-01-24-132600_upstream_timeouts_2",
		"2017-03-27-132300_anonymous", "2017-04-18-153000_unique_plugins_id",
		"2017-04-18-153000_unique_plugins_id_2",
		"2017-05-19-180200_cluster_events", "2017-05-19-173100_remove_nodes_table",
		"2017-06-16-283123_ttl_indexes", "2017-07-28-225000_balancer_orderlist_remove",
		"2017-10-02-173400_apis_created_at_ms_precision", "2017-11-07-192000_upstream_healthchecks",
		"2017-10-27-134100_consistent_hashing_1", "2017-11-07-192100_upstream_healthchecks_2",
		"2017-10-27-134100_consistent_hashing_2", "2017-09-14-121200_routes_and_services",
		"2017-10-25-180700_plugins_routes_and_services",
	}
	core014Extra = []string{
		"2018-03-27-123400_prepare_certs_and_snis", "2018-03-27-125400_fill_in_snis_ids",
		"2018-03-27-130400_make_ids_primary_keys_in_snis", "2018-05-17-173100_hash_on_cookie",
	}
)

// Datastore is the Kong database read by SQL alone.
type Datastore struct {
	Schema steps.SchemaState
	Counts steps.Counts
	// Detail explains an unknown or partial state in plain words.
	Detail string
	// Pending lists "subsystem: name" of 1.0 migrations still to finish.
	Pending []string
}

// queryer is what the readers need from a pgx connection or transaction.
type queryer interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// ReadDatastore connects to dsn and reads the schema state and entity counts
// in one read-only transaction.
func ReadDatastore(ctx context.Context, dsn string) (Datastore, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return Datastore{}, fmt.Errorf("connecting to the datastore: %w", redactErr(err, dsn))
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return Datastore{}, fmt.Errorf("datastore transaction: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	return readDatastore(ctx, tx)
}

func readDatastore(ctx context.Context, q queryer) (Datastore, error) {
	var d Datastore
	var legacy, meta, snis, sslNames, apis, services bool
	err := q.QueryRow(ctx, `SELECT to_regclass('public.schema_migrations') IS NOT NULL,
		to_regclass('public.schema_meta') IS NOT NULL,
		to_regclass('public.snis') IS NOT NULL,
		to_regclass('public.ssl_servers_names') IS NOT NULL,
		to_regclass('public.apis') IS NOT NULL,
		to_regclass('public.services') IS NOT NULL`).Scan(&legacy, &meta, &snis, &sslNames, &apis, &services)
	if err != nil {
		return d, fmt.Errorf("reading the datastore's tables: %w", err)
	}
	switch {
	case meta:
		if err := readMeta(ctx, q, &d, legacy); err != nil {
			return d, err
		}
	case legacy:
		if err := readLegacy(ctx, q, &d, snis, sslNames); err != nil {
			return d, err
		}
	case apis || services:
		d.Schema = steps.SchemaUnknown
		d.Detail = "Kong tables exist but neither schema_migrations nor schema_meta"
	default:
		d.Schema = steps.SchemaEmpty
	}
	if d.Schema == steps.SchemaEmpty {
		d.Counts.Plugins = map[string]int{}
		return d, nil
	}
	c, err := readCounts(ctx, q, apis)
	if err != nil {
		return d, err
	}
	d.Counts = c
	return d, nil
}

func readMeta(ctx context.Context, q queryer, d *Datastore, legacy bool) error {
	rows, err := q.Query(ctx, `SELECT subsystem, COALESCE(pending, '{}') FROM schema_meta
		WHERE key = 'schema_meta' ORDER BY subsystem`)
	if err != nil {
		return fmt.Errorf("reading schema_meta: %w", err)
	}
	n := 0
	for rows.Next() {
		var sub string
		var pending []string
		if err := rows.Scan(&sub, &pending); err != nil {
			rows.Close()
			return fmt.Errorf("reading schema_meta: %w", err)
		}
		n++
		for _, p := range pending {
			d.Pending = append(d.Pending, sub+": "+p)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading schema_meta: %w", err)
	}
	switch {
	case n == 0:
		d.Schema = steps.Schema10Bootstrap
		d.Detail = "schema_meta has no rows: bootstrapped, no migration recorded"
	case len(d.Pending) > 0:
		d.Schema = steps.Schema10Pending
		d.Detail = fmt.Sprintf("1.0 `up` done, %d migrations pending `finish`", len(d.Pending))
	default:
		d.Schema = steps.Schema10
		if legacy {
			// finish drops schema_migrations (§3.2); its presence with
			// nothing pending is unusual but still a finished 1.0 schema.
			d.Detail = "1.0 finished, but schema_migrations is still present"
		}
	}
	return nil
}

func readLegacy(ctx context.Context, q queryer, d *Datastore, snis, sslNames bool) error {
	var core []string
	err := q.QueryRow(ctx, `SELECT COALESCE((SELECT migrations FROM schema_migrations WHERE id = 'core'), '{}')`).Scan(&core)
	if err != nil {
		return fmt.Errorf("reading schema_migrations: %w", err)
	}
	has := func(names []string) (missing []string) {
		for _, n := range names {
			if !slices.Contains(core, n) {
				missing = append(missing, n)
			}
		}
		return missing
	}
	miss013, miss014 := has(core013), has(core014Extra)
	switch {
	case len(core) == 0:
		d.Schema = steps.SchemaUnknown
		d.Detail = "schema_migrations has no core row"
	case len(miss013) > 0:
		d.Schema = steps.SchemaUnknown
		d.Detail = fmt.Sprintf("incomplete 0.13 core schema: %d of %d core migrations missing (first: %s)",
			len(miss013), len(core013), miss013[0])
	case len(miss014) == 0 && snis:
		d.Schema = steps.Schema014
	case len(miss014) == len(core014Extra) && sslNames:
		d.Schema = steps.Schema013
	default:
		d.Schema = steps.SchemaUnknown
		d.Detail = fmt.Sprintf("partial 0.14 core schema: %d of %d 0.14 core migrations missing",
			len(miss014), len(core014Extra))
	}
	return nil
}

func readCounts(ctx context.Context, q queryer, apis bool) (steps.Counts, error) {
	c := steps.Counts{Plugins: map[string]int{}}
	apiCount := "0"
	if apis {
		apiCount = "(SELECT count(*) FROM apis)"
	}
	err := q.QueryRow(ctx, `SELECT `+apiCount+`, (SELECT count(*) FROM services),
		(SELECT count(*) FROM routes), (SELECT count(*) FROM consumers)`).
		Scan(&c.APIs, &c.Services, &c.Routes, &c.Consumers)
	if err != nil {
		return c, fmt.Errorf("counting entities: %w", err)
	}
	rows, err := q.Query(ctx, `SELECT name, count(*) FROM plugins GROUP BY name ORDER BY name`)
	if err != nil {
		return c, fmt.Errorf("counting plugins: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var n int
		if err := rows.Scan(&name, &n); err != nil {
			return c, fmt.Errorf("counting plugins: %w", err)
		}
		c.Plugins[name] = n
	}
	if err := rows.Err(); err != nil {
		return c, fmt.Errorf("counting plugins: %w", err)
	}
	return c, nil
}

// redactErr replaces the DSN's password in an error's text, in case a
// driver error quotes the connection string.
func redactErr(err error, dsn string) error {
	if err == nil {
		return nil
	}
	return &redactedError{err: err, dsn: dsn}
}

type redactedError struct {
	err error
	dsn string
}

func (e *redactedError) Error() string { return redactSecrets(e.err.Error(), e.dsn) }
func (e *redactedError) Unwrap() error { return e.err }
