// Package pgtest gives each test its own database on one real PostgreSQL
// server per test binary (or the server named by $KONGBOT_TEST_PG, which
// .ci/run starts once for the whole suite).
//
// A package that uses it wraps its tests:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
package pgtest

import (
	"context"
	"fmt"
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

var (
	mu      sync.Mutex
	server  *pgserver.Server
	baseDSN string
	seq     atomic.Int64
)

// Main runs the tests and stops the server this binary started, if any.
func Main(m *testing.M) int {
	code := m.Run()
	mu.Lock()
	defer mu.Unlock()
	if server != nil {
		server.Stop()
		server = nil
	}
	return code
}

// AdminDSN returns a DSN to the server's `postgres` database, starting the
// server on first use.
func AdminDSN(tb testing.TB) string {
	tb.Helper()
	mu.Lock()
	defer mu.Unlock()
	if baseDSN != "" {
		return baseDSN
	}
	if dsn := envDSN(); dsn != "" {
		baseDSN = dsn
		return baseDSN
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := pgserver.Start(ctx, pgserver.Options{})
	if err != nil {
		tb.Fatalf("starting PostgreSQL for tests: %v", err)
	}
	server = s
	baseDSN = s.DSN("postgres")
	return baseDSN
}

var unsafe = regexp.MustCompile(`[^a-z0-9_]+`)

// New creates an empty database for this test, dropped when the test ends,
// and returns its DSN.
func New(tb testing.TB) string {
	tb.Helper()
	admin := AdminDSN(tb)
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
