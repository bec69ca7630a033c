package kongsim

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// MigrateOptions configure one `kong migrations` run.
type MigrateOptions struct {
	Version Version
	DSN     string
	Plugins []string
	Yes     bool
	Force   bool
}

// cliOut collects what a Kong CLI command prints.
type cliOut struct {
	stdout, stderr io.Writer
}

func (o cliOut) out(format string, a ...any) { fmt.Fprintf(o.stdout, format+"\n", a...) }

// fail prints Kong's error block and returns exit code 1.
func (o cliOut) fail(msg string) int {
	fmt.Fprintf(o.stderr, "Error: %s\n\n  Run with --v (verbose) or --vv (debug) for more details\n", msg)
	return 1
}

func (o cliOut) warn(format string, a ...any) {
	fmt.Fprintf(o.stderr, "%s [warn] %s\n", time.Now().UTC().Format("2006/01/02 15:04:05"), fmt.Sprintf(format, a...))
}

// RunMigrationsCLI implements `kongsim migrations up|list|bootstrap|finish|reset
// --version V --pg DSN [--plugins a,b] [--yes] [--force]` and returns the
// exit code Kong's CLI would.
func RunMigrationsCLI(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o := cliOut{stdout, stderr}
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintln(stderr, "Usage: kongsim migrations COMMAND --version V --pg DSN [--plugins bundled,okta-auth] [--yes] [--force]")
		return 1
	}
	cmd := args[0]
	fs := flag.NewFlagSet("migrations", flag.ContinueOnError)
	fs.SetOutput(stderr)
	version := fs.String("version", "", "Kong version: 0.13.1, 0.14.1 or 1.0.3")
	dsn := fs.String("pg", "", "PostgreSQL DSN of the Kong database")
	plugins := fs.String("plugins", "bundled", "Kong `plugins` setting")
	yes := fs.Bool("yes", false, "assume yes (reset)")
	fs.BoolVar(yes, "y", false, "assume yes (reset)")
	force := fs.Bool("force", false, "force (1.0 up)")
	if err := fs.Parse(args[1:]); err != nil {
		return 1
	}
	v, err := ParseVersion(*version)
	if err != nil {
		return o.fail(err.Error())
	}
	if *dsn == "" {
		return o.fail("--pg is required")
	}
	return Migrate(ctx, MigrateOptions{Version: v, DSN: *dsn, Plugins: splitList(*plugins), Yes: *yes, Force: *force}, cmd, stdout, stderr)
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Migrate runs one migrations subcommand and returns its exit code.
func Migrate(ctx context.Context, opts MigrateOptions, cmd string, stdout, stderr io.Writer) int {
	o := cliOut{stdout, stderr}
	loaded, err := loadedPlugins(opts.Version, opts.Plugins)
	if err != nil {
		return o.fail(err.Error())
	}
	valid := map[string]bool{"up": true, "list": true, "reset": true}
	if opts.Version.Is10() {
		valid["bootstrap"], valid["finish"] = true, true
	}
	if !valid[cmd] {
		return o.fail("No such command for migrations: " + cmd)
	}
	pool, err := openPool(ctx, opts.DSN)
	if err != nil {
		return o.fail("[postgres error] " + err.Error())
	}
	defer pool.Close()
	m := &migrator{pool: pool, v: opts.Version, loaded: loaded, o: o, opts: opts}
	if m.db, err = dbName(ctx, pool); err != nil {
		return o.fail("[postgres error] " + err.Error())
	}
	if opts.Version.Is10() {
		switch cmd {
		case "list":
			return m.list10(ctx)
		case "up":
			return m.up10(ctx)
		case "bootstrap":
			return m.bootstrap10(ctx)
		case "finish":
			return m.finish10(ctx)
		case "reset":
			return m.reset10(ctx)
		}
	}
	switch cmd {
	case "list":
		return m.listLegacy(ctx)
	case "up":
		return m.upLegacy(ctx)
	default:
		return m.resetLegacy(ctx)
	}
}

type migrator struct {
	pool   *pgxpool.Pool
	v      Version
	loaded map[string]bool
	o      cliOut
	opts   MigrateOptions
	db     string
}

func dbName(ctx context.Context, q querier) (string, error) {
	var s string
	err := q.QueryRow(ctx, `SELECT current_database()`).Scan(&s)
	return s, err
}

func tableExists(ctx context.Context, q querier, name string) (bool, error) {
	var ok bool
	err := q.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, "public."+name).Scan(&ok)
	return ok, err
}

// legacyRows reads schema_migrations; nil map when the table does not exist.
func legacyRows(ctx context.Context, q querier) (map[string][]string, []string, error) {
	ok, err := tableExists(ctx, q, "schema_migrations")
	if err != nil || !ok {
		return nil, nil, err
	}
	rows, err := q.Query(ctx, `SELECT id, migrations::text[] FROM schema_migrations`)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	out := map[string][]string{}
	var order []string
	for rows.Next() {
		var id string
		var ms []string
		if err := rows.Scan(&id, &ms); err != nil {
			return nil, nil, err
		}
		out[id] = ms
		order = append(order, id)
	}
	return out, order, rows.Err()
}

type metaRow struct {
	executed []string
	pending  []string
	hasPend  bool // pending is not NULL
}

// metaRows reads schema_meta; nil map when the table does not exist.
func metaRows(ctx context.Context, q querier) (map[string]metaRow, error) {
	ok, err := tableExists(ctx, q, "schema_meta")
	if err != nil || !ok {
		return nil, err
	}
	rows, err := q.Query(ctx, `SELECT subsystem, executed, pending FROM schema_meta WHERE key = 'schema_meta'`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]metaRow{}
	for rows.Next() {
		var sub string
		var ex, pe []string
		if err := rows.Scan(&sub, &ex, &pe); err != nil {
			return nil, err
		}
		out[sub] = metaRow{executed: ex, pending: pe, hasPend: pe != nil}
	}
	return out, rows.Err()
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// execScript runs a multi-statement script in one transaction.
func execScript(ctx context.Context, pool *pgxpool.Pool, script string) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	_, err = conn.Conn().PgConn().Exec(ctx, "BEGIN;\n"+script+"\nCOMMIT;").ReadAll()
	if err != nil {
		_, _ = conn.Conn().PgConn().Exec(ctx, "ROLLBACK").ReadAll()
	}
	return err
}

// ---- 0.13 / 0.14 ----

func (m *migrator) listLegacy(ctx context.Context) int {
	rows, order, err := legacyRows(ctx, m.pool)
	if err != nil {
		return m.o.fail("[postgres error] " + err.Error())
	}
	if len(rows) == 0 {
		m.o.out("No migrations have been run yet for database '%s'", m.db)
		return 0
	}
	m.o.out("Executed migrations for database '%s':", m.db)
	for _, id := range order {
		m.o.out("%s: %s", id, strings.Join(rows[id], ", "))
	}
	return 0
}

func (m *migrator) upLegacy(ctx context.Context) int {
	rows, _, err := legacyRows(ctx, m.pool)
	if err != nil {
		return m.o.fail("[postgres error] " + err.Error())
	}
	want := legacyMigrations(m.v, m.loaded)
	if rows == nil {
		populated, err := tableExists(ctx, m.pool, "services")
		if err != nil {
			return m.o.fail("[postgres error] " + err.Error())
		}
		if populated {
			return m.upLegacyOnFinished(ctx)
		}
		script := sqlBase0131
		if m.v == V0141 {
			script += "\n" + sqlUp0141
		}
		if err := execScript(ctx, m.pool, script); err != nil {
			return m.o.fail(fmt.Sprintf("[postgres error] Error during migration %s: %v", core0131[0], err))
		}
		rows = map[string][]string{}
	} else if m.v == V0141 && !contains(rows["core"], core0141Extra[0]) && contains(rows["core"], core0131[len(core0131)-1]) {
		if err := execScript(ctx, m.pool, sqlUp0141); err != nil {
			return m.o.fail(fmt.Sprintf("[postgres error] Error during migration %s: %v", core0141Extra[0], err))
		}
	}
	total := 0
	for _, sub := range want {
		var missing []string
		for _, name := range sub.migrations {
			if !contains(rows[sub.name], name) {
				missing = append(missing, name)
			}
		}
		if len(missing) == 0 {
			continue
		}
		m.o.out("migrating %s for database %s", sub.name, m.db)
		for _, name := range missing {
			if _, err := m.pool.Exec(ctx, `SELECT upsert_schema_migrations($1, $2)`, sub.name, name); err != nil {
				return m.o.fail(fmt.Sprintf("[postgres error] Error recording migration %s: %v", name, err))
			}
			m.o.out("%s migrated up to: %s", sub.name, name)
			total++
		}
	}
	if total > 0 {
		m.o.out("%d migrations ran", total)
	}
	return 0
}

// upLegacyOnFinished is a 0.x `up` on a database whose schema_migrations a
// 1.0 `finish` dropped: the skeleton migration recreates the table, then
// init_schema fails on the 1.0 schema, leaving the database altered
// (recorded in stage 7).
func (m *migrator) upLegacyOnFinished(ctx context.Context) int {
	err := execScript(ctx, m.pool, `CREATE TABLE IF NOT EXISTS public.schema_migrations (
    id text NOT NULL PRIMARY KEY, migrations character varying(100)[]);
INSERT INTO public.schema_migrations (id, migrations) VALUES ('core', ARRAY['2015-01-12-175310_skeleton']::varchar(100)[])
  ON CONFLICT (id) DO UPDATE SET migrations = array_append(schema_migrations.migrations, '2015-01-12-175310_skeleton');`)
	if err != nil {
		return m.o.fail(fmt.Sprintf("[postgres error] Error during migration %s: %v", core0131[0], err))
	}
	m.o.out("migrating core for database %s", m.db)
	m.o.out("core migrated up to: %s", core0131[0])
	return m.o.fail(`[postgres error] Error during migration 2015-01-12-175310_init_schema: ERROR: column "request_host" does not exist`)
}

func (m *migrator) resetLegacy(ctx context.Context) int {
	if !m.opts.Yes {
		// stdin is never a terminal for kongsim; Kong's prompt reads EOF
		// as a refusal.
		m.o.out("Canceled")
		return 0
	}
	if err := dropEverything(ctx, m.pool); err != nil {
		return m.o.fail("[postgres error] " + err.Error())
	}
	m.o.out("Schema successfully reset")
	return 0
}

func dropEverything(ctx context.Context, pool *pgxpool.Pool) error {
	var stmts []string
	rows, err := pool.Query(ctx, `SELECT format('DROP TABLE IF EXISTS public.%I CASCADE;', tablename) FROM pg_tables WHERE schemaname = 'public'
		UNION ALL
		SELECT format('DROP FUNCTION IF EXISTS public.%I(%s) CASCADE;', p.proname, pg_get_function_identity_arguments(p.oid))
		FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			rows.Close()
			return err
		}
		stmts = append(stmts, s)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	return execScript(ctx, pool, strings.Join(stmts, "\n"))
}

// ---- 1.0 ----

type state10 struct {
	needsBootstrap bool
	meta           map[string]metaRow
	executed       [][2]string // subsystem, joined names
	pending        [][2]string
	newM           [][2]string
}

func (m *migrator) state10(ctx context.Context) (*state10, error) {
	meta, err := metaRows(ctx, m.pool)
	if err != nil {
		return nil, err
	}
	st := &state10{needsBootstrap: meta == nil, meta: meta}
	if meta == nil {
		return st, nil
	}
	for _, sub := range loadedNewSubsystems(m.loaded) {
		row := meta[sub.name]
		if len(row.executed) > 0 {
			st.executed = append(st.executed, [2]string{sub.name, strings.Join(row.executed, ", ")})
		}
		if len(row.pending) > 0 {
			st.pending = append(st.pending, [2]string{sub.name, strings.Join(row.pending, ", ")})
		}
		var fresh []string
		for _, mg := range sub.migrations {
			if !contains(row.executed, mg.name) && !contains(row.pending, mg.name) {
				fresh = append(fresh, mg.name)
			}
		}
		if len(fresh) > 0 {
			st.newM = append(st.newM, [2]string{sub.name, strings.Join(fresh, ", ")})
		}
	}
	return st, nil
}

func (o cliOut) lines(pairs [][2]string) {
	for _, p := range pairs {
		o.out("%s: %s", p[0], p[1])
	}
}

func (m *migrator) list10(ctx context.Context) int {
	st, err := m.state10(ctx)
	if err != nil {
		return m.o.fail("[PostgreSQL error] " + err.Error())
	}
	if st.needsBootstrap {
		m.o.out("database needs bootstrapping; run 'kong migrations bootstrap'")
		return 3
	}
	if len(st.executed) > 0 {
		m.o.out("executed migrations:")
		m.o.lines(st.executed)
	}
	switch {
	case len(st.pending) > 0:
		m.o.out("database has pending migrations:")
		m.o.lines(st.pending)
		return 4
	case len(st.newM) > 0:
		m.o.out("database has new migrations available:")
		m.o.lines(st.newM)
		m.o.out("run 'kong migrations up' to proceed")
		return 5
	}
	m.o.out("database is up-to-date")
	return 0
}

// legacyCheck classifies a database without schema_meta for 1.0: empty,
// a complete 0.14 one, or an older one (with the subsystem it lacks).
func (m *migrator) legacyCheck(ctx context.Context) (hasLegacy, is014 bool, missing string, err error) {
	rows, _, err := legacyRows(ctx, m.pool)
	if err != nil || rows == nil {
		return false, false, "", err
	}
	required := map[string][]string{"core": append(append([]string(nil), core0131...), core0141Extra...)}
	for _, p := range legacyPlugins {
		m := append([]string(nil), p.migrations...)
		if p.name == "jwt" {
			m = append(m, jwt0141Extra)
		}
		required[p.name] = m
	}
	for _, sub := range is014Required {
		for _, name := range required[sub] {
			if !contains(rows[sub], name) {
				return true, false, sub, nil
			}
		}
	}
	return true, true, "", nil
}

func (m *migrator) up10(ctx context.Context) int {
	st, err := m.state10(ctx)
	if err != nil {
		return m.o.fail("[PostgreSQL error] " + err.Error())
	}
	if st.needsBootstrap {
		hasLegacy, is014, missing, err := m.legacyCheck(ctx)
		if err != nil {
			return m.o.fail("[PostgreSQL error] " + err.Error())
		}
		if !hasLegacy {
			return m.o.fail("cannot run migrations: database needs bootstrapping; run 'kong migrations bootstrap'")
		}
		if !is014 {
			return m.o.fail(fmt.Sprintf("Migration to 1.0 can only be performed from a 0.14 postgres database, but the current one seems to be older (missing migrations for '%s'). Migrate to 0.14 first, or install 1.0 on a fresh database.", missing))
		}
		var apis int
		if err := m.pool.QueryRow(ctx, `SELECT count(*) FROM apis`).Scan(&apis); err != nil {
			return m.o.fail("[PostgreSQL error] " + err.Error())
		}
		if apis > 0 {
			return m.o.fail("cannot run migrations: you have `api` entities in your database; please convert them to `routes` and `services` prior to migrating to Kong 1.0.")
		}
		m.o.out("upgrading from 0.14, bootstrapping database...")
		// schema_meta and locks first: the migrations mutex lives in locks.
		// The advisory lock keeps two concurrent runs from racing on the
		// catalog while both create the tables.
		if err := execScript(ctx, m.pool, "SELECT pg_advisory_xact_lock(1013);\n"+up103Bootstrap()); err != nil {
			return m.o.fail("[PostgreSQL error] " + err.Error())
		}
	}
	return m.withMutex(ctx, func() int {
		st, err := m.state10(ctx)
		if err != nil {
			return m.o.fail("[PostgreSQL error] " + err.Error())
		}
		if len(st.pending) > 0 {
			fmt.Fprint(m.o.stderr, pendingTraceback)
			return 1
		}
		if len(st.meta) == 0 {
			legacy, err := tableExists(ctx, m.pool, "schema_migrations")
			if err != nil {
				return m.o.fail("[PostgreSQL error] " + err.Error())
			}
			if legacy {
				if err := execScript(ctx, m.pool, up103Rest()); err != nil {
					return m.o.fail("[PostgreSQL error] " + err.Error())
				}
			}
		}
		if len(st.newM) == 0 {
			m.o.out("database is already up-to-date")
			return 0
		}
		return m.runUp10(ctx, st.meta)
	})
}

const up103Marker = "-- kongsim: end of the schema bootstrap\n"

func up103Bootstrap() string { return strings.SplitN(sqlUp103, up103Marker, 2)[0] }
func up103Rest() string      { return strings.SplitN(sqlUp103, up103Marker, 2)[1] }

// withMutex runs fn holding Kong 1.0's `migrations` row in locks (TTL 60 s).
// When another run holds it, this one waits for its release and then, like
// Kong's cluster_mutex, does nothing.
func (m *migrator) withMutex(ctx context.Context, fn func() int) int {
	owner := newUUID()
	tag, err := m.pool.Exec(ctx, `INSERT INTO locks (key, owner, ttl) VALUES ('migrations', $1, now() + interval '60 seconds')
		ON CONFLICT (key) DO UPDATE SET owner = EXCLUDED.owner, ttl = EXCLUDED.ttl WHERE locks.ttl < now()`, owner)
	if err != nil {
		return m.o.fail("[PostgreSQL error] " + err.Error())
	}
	if tag.RowsAffected() == 1 {
		defer func() {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			_, _ = m.pool.Exec(rctx, `DELETE FROM locks WHERE key = 'migrations' AND owner = $1`, owner)
		}()
		return fn()
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		var held bool
		if err := m.pool.QueryRow(wctx, `SELECT EXISTS (SELECT 1 FROM locks WHERE key = 'migrations' AND ttl >= now())`).Scan(&held); err != nil {
			return m.o.fail("[PostgreSQL error] " + err.Error())
		}
		if !held {
			break
		}
		select {
		case <-wctx.Done():
			return m.o.fail("timeout")
		case <-time.After(100 * time.Millisecond):
		}
	}
	m.o.out("aborted: another node is performing database changes")
	return 0
}

const pendingTraceback = `Error: [PostgreSQL error] cluster_mutex callback threw an error: <kong-src>/kong/cmd/utils/migrations.lua:139: database has pending migrations; run 'kong migrations finish'
stack traceback:
	[C]: in function 'error'
	<kong-src>/kong/cmd/utils/migrations.lua:139: in function <<kong-src>/kong/cmd/utils/migrations.lua:135>
	[C]: in function 'xpcall'
	<kong-src>/kong/db/init.lua:390: in function 'cluster_mutex'
	<kong-src>/kong/cmd/utils/migrations.lua:135: in function 'up'
	<kong-src>/kong/cmd/migrations.lua:139: in function 'cmd_exec'
	<kong-src>/kong/cmd/init.lua:87: in function <<kong-src>/kong/cmd/init.lua:87>
	[C]: in function 'xpcall'
	<kong-src>/kong/cmd/init.lua:87: in function <<kong-src>/kong/cmd/init.lua:44>
	<kong-src>/bin/kong:7: in function 'file_gen'
	init_worker_by_lua(nginx.conf:145):49: in function <init_worker_by_lua(nginx.conf:145):47>
	[C]: in function 'xpcall'
	init_worker_by_lua(nginx.conf:145):56: in function <init_worker_by_lua(nginx.conf:145):54>

  Run with --v (verbose) or --vv (debug) for more details
`

// runUp10 runs every migration not yet recorded: executed when it has no
// teardown, pending otherwise.
func (m *migrator) runUp10(ctx context.Context, meta map[string]metaRow) int {
	processed, executed, pending := 0, 0, 0
	for _, sub := range loadedNewSubsystems(m.loaded) {
		row := meta[sub.name]
		var ran bool
		ex, pe := append([]string(nil), row.executed...), append([]string(nil), row.pending...)
		last := ""
		for _, mg := range sub.migrations {
			if contains(row.executed, mg.name) || contains(row.pending, mg.name) {
				continue
			}
			if !ran {
				m.o.out("migrating %s on database '%s'...", sub.name, m.db)
				ran = true
			}
			processed++
			if mg.teardown {
				pe = append(pe, mg.name)
				pending++
				m.o.out("%s migrated up to: %s (pending)", sub.name, mg.name)
			} else {
				ex = append(ex, mg.name)
				last = mg.name
				executed++
				m.o.out("%s migrated up to: %s (executed)", sub.name, mg.name)
			}
		}
		if !ran {
			continue
		}
		var pendArg any
		if len(pe) > 0 {
			pendArg = pe
		} else if row.hasPend {
			pendArg = []string{}
		}
		var lastArg any
		if last != "" {
			lastArg = last
		}
		_, err := m.pool.Exec(ctx, `INSERT INTO schema_meta (key, subsystem, last_executed, executed, pending)
			VALUES ('schema_meta', $1, $2, $3, $4)
			ON CONFLICT (key, subsystem) DO UPDATE SET last_executed = COALESCE(EXCLUDED.last_executed, schema_meta.last_executed),
				executed = EXCLUDED.executed, pending = EXCLUDED.pending`, sub.name, lastArg, ex, pendArg)
		if err != nil {
			return m.o.fail("[PostgreSQL error] " + err.Error())
		}
	}
	m.o.out("%s processed", plural(processed, "migration"))
	m.o.out("%d executed", executed)
	if pending > 0 {
		m.o.out("%d pending", pending)
	}
	return 0
}

func (m *migrator) bootstrap10(ctx context.Context) int {
	st, err := m.state10(ctx)
	if err != nil {
		return m.o.fail("[PostgreSQL error] " + err.Error())
	}
	if !st.needsBootstrap {
		m.o.out("database already bootstrapped")
		return 0
	}
	hasLegacy, is014, _, err := m.legacyCheck(ctx)
	if err != nil {
		return m.o.fail("[PostgreSQL error] " + err.Error())
	}
	if hasLegacy && is014 {
		return m.o.fail("cannot bootstrap a non-empty database, run 'kong migrations up' instead")
	}
	if hasLegacy {
		return m.o.fail("cannot bootstrap a non-empty database, upgrade to 0.14 first,and run 'kong migrations up'")
	}
	m.o.out("bootstrapping database...")
	if err := execScript(ctx, m.pool, sqlBootstrap103); err != nil {
		return m.o.fail("[PostgreSQL error] " + err.Error())
	}
	n := 0
	for _, sub := range loadedNewSubsystems(m.loaded) {
		m.o.out("migrating %s on database '%s'...", sub.name, m.db)
		var names []string
		hasTeardown := false
		for _, mg := range sub.migrations {
			names = append(names, mg.name)
			hasTeardown = hasTeardown || mg.teardown
			m.o.out("%s migrated up to: %s (executed)", sub.name, mg.name)
			n++
		}
		var pend any
		if hasTeardown {
			pend = []string{}
		}
		if _, err := m.pool.Exec(ctx, `INSERT INTO schema_meta (key, subsystem, last_executed, executed, pending)
			VALUES ('schema_meta', $1, $2, $3, $4)`, sub.name, names[len(names)-1], names, pend); err != nil {
			return m.o.fail("[PostgreSQL error] " + err.Error())
		}
	}
	m.o.out("%s processed", plural(n, "migration"))
	m.o.out("%d executed", n)
	m.o.out("database is up-to-date")
	return 0
}

func (m *migrator) finish10(ctx context.Context) int {
	if m.opts.Force {
		m.o.out("cannot use --force with 'finish'")
		return 0
	}
	st, err := m.state10(ctx)
	if err != nil {
		return m.o.fail("[PostgreSQL error] " + err.Error())
	}
	if st.needsBootstrap {
		m.o.out("cannot run migrations: database not bootstrapped")
		return 0
	}
	return m.withMutex(ctx, func() int { return m.runFinish10(ctx) })
}

func (m *migrator) runFinish10(ctx context.Context) int {
	st, err := m.state10(ctx)
	if err != nil {
		return m.o.fail("[PostgreSQL error] " + err.Error())
	}
	if len(st.pending) == 0 {
		m.o.out("no pending migrations to finish")
		return 0
	}
	if err := execScript(ctx, m.pool, sqlFinish103); err != nil {
		return m.o.fail("[PostgreSQL error] " + err.Error())
	}
	n := 0
	for _, sub := range loadedNewSubsystems(m.loaded) {
		row := st.meta[sub.name]
		if len(row.pending) == 0 {
			continue
		}
		m.o.out("migrating %s on database '%s'...", sub.name, m.db)
		for _, name := range row.pending {
			m.o.out("%s migrated up to: %s (executed)", sub.name, name)
			n++
		}
		ex := append(append([]string(nil), row.executed...), row.pending...)
		if _, err := m.pool.Exec(ctx, `UPDATE schema_meta SET executed = $2, pending = '{}', last_executed = $3
			WHERE key = 'schema_meta' AND subsystem = $1`, sub.name, ex, ex[len(ex)-1]); err != nil {
			return m.o.fail("[PostgreSQL error] " + err.Error())
		}
	}
	m.o.out("%s processed", plural(n, "migration"))
	m.o.out("%d executed", n)
	return 0
}

func (m *migrator) reset10(ctx context.Context) int {
	if !m.opts.Yes {
		return m.o.fail("not a tty: invoke 'reset' non-interactively with the --yes flag")
	}
	st, err := m.state10(ctx)
	if err != nil {
		return m.o.fail("[PostgreSQL error] " + err.Error())
	}
	if st.needsBootstrap {
		m.o.out("database not bootstrapped, nothing to reset")
		return 1
	}
	m.o.out("resetting database...")
	if err := dropEverything(ctx, m.pool); err != nil {
		return m.o.fail("[PostgreSQL error] " + err.Error())
	}
	m.o.out("database successfully reset")
	return 0
}

// ---- node start ----

const schemaMismatch = "<kong-src>/kong/cmd/start.lua:37: [postgres error] the current database schema does not match this version of Kong. Please run `kong migrations up` to update/initialize the database schema. Be aware that Kong migrations should only run from a single node, and that nodes running migrations concurrently will conflict with each other and might corrupt your database schema!"

func initByLuaError(v Version, line int, msg, fn string) []string {
	start, chunk := 50, 30
	if v == V0141 {
		start, chunk = 60, 29
	}
	return []string{
		fmt.Sprintf("Error: <kong-src>/kong/cmd/start.lua:%d: nginx: [error] init_by_lua error: <kong-src>/kong/init.lua:%d: %s", start, line, msg),
		"stack traceback:",
		fmt.Sprintf("\t[C]: in function '%s'", fn),
		fmt.Sprintf("\t<kong-src>/kong/init.lua:%d: in function 'init'", line),
		fmt.Sprintf("\tinit_by_lua(nginx-kong.conf:%d):3: in main chunk", chunk),
		"", "",
		"  Run with --v (verbose) or --vv (debug) for more details",
	}
}

// startupCheck refuses to start like `kong start` on a schema that does not
// match the node's version, or with plugins in use that it does not load.
func (n *Node) startupCheck(ctx context.Context) error {
	db, err := dbName(ctx, n.pool)
	if err != nil {
		return fmt.Errorf("connecting to the database: %w", err)
	}
	if n.version.Is10() {
		meta, err := metaRows(ctx, n.pool)
		if err != nil {
			return fmt.Errorf("reading schema_meta: %w", err)
		}
		if meta == nil {
			return &StartError{
				Stdout: []string{"database needs bootstrapping; run 'kong migrations bootstrap'"},
				Stderr: initByLuaError(n.version, 281, "database needs bootstrap; run 'kong migrations bootstrap'", "error"),
				Err:    errors.New("database needs bootstrap; run 'kong migrations bootstrap'"),
			}
		}
		m := &migrator{pool: n.pool, v: n.version, loaded: n.loaded, db: db}
		st, err := m.state10(ctx)
		if err != nil {
			return fmt.Errorf("reading schema_meta: %w", err)
		}
		if len(st.newM) > 0 {
			out := []string{"database has new migrations available:"}
			for _, p := range st.newM {
				out = append(out, p[0]+": "+p[1])
			}
			out = append(out, "run 'kong migrations up' to proceed")
			return &StartError{Stdout: out,
				Stderr: initByLuaError(n.version, 284, "new migrations available; run 'kong migrations list'", "error"),
				Err:    errors.New("new migrations available; run 'kong migrations list'")}
		}
		if len(st.pending) > 0 {
			var parts []string
			for _, p := range st.pending {
				parts = append(parts, fmt.Sprintf("%s (%s)", p[0], p[1]))
			}
			n.log.Info("starting with pending migrations: " + strings.Join(parts, " "))
		}
	} else {
		rows, _, err := legacyRows(ctx, n.pool)
		if err != nil {
			return fmt.Errorf("reading schema_migrations: %w", err)
		}
		// Kong reports whichever missing migration its hash order reaches
		// first; plugins before core matches the recorded runs.
		want := legacyMigrations(n.version, n.loaded)
		want = append(want[1:], want[0])
		for _, sub := range want {
			for _, name := range sub.migrations {
				if !contains(rows[sub.name], name) {
					return &StartError{
						Stderr: []string{
							fmt.Sprintf("%s [warn] postgres database '%s' is missing migration: (%s) %s", time.Now().UTC().Format("2006/01/02 15:04:05"), db, sub.name, name),
							"Error: " + schemaMismatch, "",
							"  Run with --v (verbose) or --vv (debug) for more details",
						},
						Err: errors.New("the current database schema does not match this version of Kong. Please run `kong migrations up` to update/initialize the database schema"),
					}
				}
			}
		}
	}
	var names []string
	rows, err := n.pool.Query(ctx, `SELECT DISTINCT name FROM plugins`)
	if err != nil {
		return fmt.Errorf("reading plugins: %w", err)
	}
	names, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("reading plugins: %w", err)
	}
	for _, name := range names {
		if !n.loaded[name] {
			line := 293
			if n.version == V0141 {
				line = 204
			}
			msg := name + " plugin is in use but not enabled"
			return &StartError{Stderr: initByLuaError(n.version, line, msg, "assert"), Err: errors.New(msg)}
		}
	}
	return nil
}

// plural is Kong's pl_utils-style count: "1 migration", "2 migrations".
func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}
