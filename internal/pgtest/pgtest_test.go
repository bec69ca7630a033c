package pgtest

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

func TestNewGivesIsolatedDatabases(t *testing.T) {
	a, b := New(t), New(t)
	if a == b {
		t.Fatalf("two calls gave one database: %s", a)
	}
	ctx := context.Background()
	ca, err := pgx.Connect(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close(ctx)
	if _, err := ca.Exec(ctx, "CREATE TABLE only_in_a (x int)"); err != nil {
		t.Fatal(err)
	}
	cb, err := pgx.Connect(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close(ctx)
	var exists bool
	if err := cb.QueryRow(ctx, "SELECT to_regclass('only_in_a') IS NOT NULL").Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Fatal("a table created in one test database is visible in another")
	}
}

func TestServersKeepTheirDurability(t *testing.T) {
	if os.Getenv(EnvDSN) != "" || os.Getenv(EnvDurableDSN) != "" {
		t.Skip("a server named by the environment has the durability it was started with")
	}
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		dsn   string
		fsync string
		sync  string
	}{
		{"New", New(t), "off", "off"},
		{"NewDurable", NewDurable(t), "on", "on"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := pgx.Connect(ctx, tc.dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(ctx)
			var fsync, sync string
			if err := c.QueryRow(ctx, "SELECT current_setting('fsync'), current_setting('synchronous_commit')").Scan(&fsync, &sync); err != nil {
				t.Fatal(err)
			}
			if fsync != tc.fsync || sync != tc.sync {
				t.Fatalf("fsync=%s synchronous_commit=%s, want %s and %s", fsync, sync, tc.fsync, tc.sync)
			}
		})
	}
}
