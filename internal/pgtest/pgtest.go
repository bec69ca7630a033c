// Package pgtest gives each test its own database on one real PostgreSQL
// server per test binary (or the server named by $KONGBOT_TEST_PG, which
// .ci/run starts once for the whole suite). That server runs with fsync
// off; NewDurable gives a database on a second, durable server (fsync and
// synchronous commit on, as a production datastore runs) for the
// benchmarks whose figures depend on commit latency.
//
// A package that uses it wraps its tests:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
package pgtest

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kongbot/kongbot/internal/pgserver"
)

// EnvDSN names a DSN (to any database) of an already running server to use
// instead of starting one.
const EnvDSN = "KONGBOT_TEST_PG"

// EnvDurableDSN names a DSN of an already running durable server for
// NewDurable to use instead of starting one.
const EnvDurableDSN = "KONGBOT_TEST_PG_DURABLE"

// instance is one server shared by the test binary.
type instance struct {
	env     string
	durable bool
	server  *pgserver.Server
	baseDSN string
}

var (
	mu      sync.Mutex
	fast    = &instance{env: EnvDSN}
	durable = &instance{env: EnvDurableDSN, durable: true}
	seq     atomic.Int64
)

// Main runs the tests and stops the servers this binary started, if any.
func Main(m *testing.M) int {
	code := m.Run()
	mu.Lock()
	defer mu.Unlock()
	for _, in := range []*instance{fast, durable} {
		if in.server != nil {
			in.server.Stop()
			in.server = nil
		}
	}
	return code
}

// AdminDSN returns a DSN to the server's `postgres` database, starting the
// server on first use.
func AdminDSN(tb testing.TB) string {
	tb.Helper()
	return fast.adminDSN(tb)
}

// DurableAdminDSN is AdminDSN for the durable server.
func DurableAdminDSN(tb testing.TB) string {
	tb.Helper()
	return durable.adminDSN(tb)
}

func (in *instance) adminDSN(tb testing.TB) string {
	tb.Helper()
	mu.Lock()
	defer mu.Unlock()
	if in.baseDSN != "" {
		return in.baseDSN
	}
	if dsn := os.Getenv(in.env); dsn != "" {
		in.baseDSN = dsn
		return in.baseDSN
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := pgserver.Start(ctx, pgserver.Options{Durable: in.durable})
	if err != nil {
		tb.Fatalf("starting PostgreSQL for tests (durable: %v): %v", in.durable, err)
	}
	in.server = s
	in.baseDSN = s.DSN("postgres")
	return in.baseDSN
}

var unsafe = regexp.MustCompile(`[^a-z0-9_]+`)

// New creates an empty database for this test, dropped when the test ends,
// and returns its DSN.
func New(tb testing.TB) string {
	tb.Helper()
	return newDB(tb, AdminDSN(tb))
}

// NewDurable is New on the durable server: every commit waits for its WAL
// flush, as in production. Only benchmarks need it; it is slower.
func NewDurable(tb testing.TB) string {
	tb.Helper()
	return newDB(tb, DurableAdminDSN(tb))
}

func newDB(tb testing.TB, admin string) string {
	tb.Helper()
	name := strings.ToLower(tb.Name())
	name = unsafe.ReplaceAllString(name, "_")
	if len(name) > 40 {
		name = name[:40]
	}
	name = fmt.Sprintf("t%d_%s", seq.Add(1), name)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		tb.Fatalf("pgtest: connecting to %s: %v", redact(admin), err)
	}
	defer conn.Close(ctx)
	// Databases are named per process too, so that parallel test binaries
	// sharing one server never collide.
	name = fmt.Sprintf("%s_%d", name, pid)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		tb.Fatalf("pgtest: create database %s: %v", name, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			return
		}
		defer conn.Close(ctx)
		conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	})
	return withDB(admin, name)
}
