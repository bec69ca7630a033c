package kong

import (
	"context"
	"os"
	"testing"

	"github.com/kongbot/kongbot/internal/pgtest"
	"github.com/kongbot/kongbot/steps"
)

func TestMain(m *testing.M) {
	if os.Getenv(migrateChildEnv) != "" {
		os.Exit(migrateChild())
	}
	if os.Getenv(childEnv) != "" {
		os.Exit(convertChild())
	}
	os.Exit(pgtest.Main(m))
}

func TestReadDatastoreRecordedStates(t *testing.T) {
	tests := []struct {
		state   string
		extra   []string
		want    steps.SchemaState
		apis    int
		plugins map[string]int
		pending int
	}{
		{state: "0.13", want: steps.Schema013},
		{state: "0.14", want: steps.Schema014},
		{state: "0.14-apis", want: steps.Schema014, apis: 3},
		{state: "0.14", extra: []string{"stage8-edge-cases/db/0.14.1-okta-auth-row"}, want: steps.Schema014,
			plugins: map[string]int{"okta-auth": 1}},
		{state: "1.0-pending", want: steps.Schema10Pending, plugins: map[string]int{"rate-limiting": 1}, pending: 9},
		{state: "1.0-finished", want: steps.Schema10, plugins: map[string]int{"rate-limiting": 1}},
		{state: "1.0-bootstrap", want: steps.Schema10},
	}
	for _, tc := range tests {
		name := tc.state
		if len(tc.extra) > 0 {
			name += "+extra"
		}
		t.Run(name, func(t *testing.T) {
			dsn := pgtest.New(t)
			loadFixture(t, dsn, tc.state, tc.extra...)
			d, err := ReadDatastore(context.Background(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			if d.Schema != tc.want {
				t.Fatalf("schema = %s (%s), want %s", d.Schema, d.Detail, tc.want)
			}
			if d.Counts.APIs != tc.apis {
				t.Errorf("apis = %d, want %d", d.Counts.APIs, tc.apis)
			}
			if len(d.Pending) != tc.pending {
				t.Errorf("pending = %v, want %d", d.Pending, tc.pending)
			}
			for name, n := range tc.plugins {
				if d.Counts.Plugins[name] != n {
					t.Errorf("plugins[%s] = %d, want %d", name, d.Counts.Plugins[name], n)
				}
			}
		})
	}
}

func TestReadDatastoreEmptyAndPartial(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.New(t)
	d, err := ReadDatastore(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if d.Schema != steps.SchemaEmpty {
		t.Fatalf("empty database: schema = %s", d.Schema)
	}
	// A 1.0 bootstrap that recorded nothing yet.
	execSQL(t, dsn, `CREATE TABLE schema_meta(key text, subsystem text, last_executed text, executed text[], pending text[], PRIMARY KEY (key, subsystem));
		CREATE TABLE services(id uuid); CREATE TABLE routes(id uuid); CREATE TABLE consumers(id uuid); CREATE TABLE plugins(id uuid, name text)`)
	if d, err = ReadDatastore(ctx, dsn); err != nil || d.Schema != steps.Schema10Bootstrap {
		t.Fatalf("bootstrapped empty: %s, %v", d.Schema, err)
	}
	// A 0.13 install interrupted after the skeleton.
	dsn2 := pgtest.New(t)
	execSQL(t, dsn2, `CREATE TABLE schema_migrations(id text PRIMARY KEY, migrations varchar(100)[]);
		INSERT INTO schema_migrations VALUES ('core', '{2015-01-12-175310_skeleton}');
		CREATE TABLE apis(id uuid); CREATE TABLE services(id uuid); CREATE TABLE routes(id uuid); CREATE TABLE consumers(id uuid); CREATE TABLE plugins(id uuid, name text)`)
	d, err = ReadDatastore(ctx, dsn2)
	if err != nil {
		t.Fatal(err)
	}
	if d.Schema != steps.SchemaUnknown || d.Detail == "" {
		t.Fatalf("partial 0.13: %s %q", d.Schema, d.Detail)
	}
}

func TestReadDatastoreUnreachableHidesPassword(t *testing.T) {
	_, err := ReadDatastore(context.Background(), "postgres://kong:sup3rsecret@127.0.0.1:1/kong?connect_timeout=2")
	if err == nil {
		t.Fatal("want an error")
	}
	if contains(err.Error(), "sup3rsecret") {
		t.Fatalf("error leaks the password: %v", err)
	}
}
