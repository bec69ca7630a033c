package kong

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kongbot/kongbot/internal/pgtest"
	"github.com/kongbot/kongbot/steps"
)

// fakePGDump writes a script that answers --version like a pg_dump of
// another version (and fails anything else, so a snapshot can never use
// it by mistake).
func fakePGDump(t *testing.T, versionLine string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pg_dump")
	script := "#!/bin/sh\nif [ \"$1\" = --version ]; then echo '" + versionLine + "'; exit 0; fi\necho fake pg_dump >&2; exit 1\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestPGDumpAccepts(t *testing.T) {
	v := func(num int, text string) pgVersion { return pgVersion{num: num, text: text} }
	tests := []struct {
		name      string
		dump, srv pgVersion
		want      string // "" means accepted
	}{
		{"same major, older minor", v(150002, "15.2"), v(150018, "15.18"), ""},
		{"newer major", v(170004, "17.4"), v(90624, "9.6.24"), ""},
		{"older major", v(150018, "15.18"), v(160004, "16.4"), "pg_dump 15 (/bin/pg_dump) cannot dump the datastore's PostgreSQL 16.4 server: pg_dump refuses a server of a newer major version; install postgresql-client-16 (or newer)"},
		{"9.6 against 10", v(90624, "9.6.24"), v(100001, "10.1"), "pg_dump 9.6 (/bin/pg_dump) cannot dump the datastore's PostgreSQL 10.1 server"},
		{"9.5 against 9.6", v(90525, "9.5.25"), v(90600, "9.6.0"), "install postgresql-client-9.6"},
		{"server before exported snapshots", v(160000, "16.0"), v(90124, "9.1.24"), "too old for a snapshot: it needs 9.2 or newer"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := pgDumpAccepts("/bin/pg_dump", tc.dump, tc.srv)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func TestPGDumpVersionParsing(t *testing.T) {
	tests := []struct {
		line string
		num  int
		text string
	}{
		{"pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)", 150018, "15.18"},
		{"pg_dump (PostgreSQL) 9.6.24", 90624, "9.6.24"},
		{"pg_dump (PostgreSQL) 17beta2", 170000, "17"},
		{"pg_dump (PostgreSQL) 16.4", 160004, "16.4"},
	}
	for _, tc := range tests {
		got, err := pgDumpVersion(context.Background(), fakePGDump(t, tc.line))
		if err != nil || got.num != tc.num || got.text != tc.text {
			t.Errorf("%q: %+v %v, want %d %q", tc.line, got, err, tc.num, tc.text)
		}
	}
	if _, err := pgDumpVersion(context.Background(), fakePGDump(t, "psql is not pg_dump")); err == nil || !strings.Contains(err.Error(), "not a PostgreSQL pg_dump") {
		t.Errorf("a program that is not pg_dump: %v", err)
	}
}

// TestCheckPGDump runs the check against a real server with the machine's
// pg_dump and with stand-ins that print other versions.
func TestCheckPGDump(t *testing.T) {
	real, err := findPGBin("pg_dump")
	if err != nil {
		t.Skip(err)
	}
	ctx := context.Background()
	dsn := pgtest.New(t)
	srv, err := serverVersion(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	major := srv.num / 10000
	older := fakePGDump(t, "pg_dump (PostgreSQL) "+itoa(major-1)+".9 (Debian)")
	newer := fakePGDump(t, "pg_dump (PostgreSQL) "+itoa(major+1)+".2")
	notExec := filepath.Join(t.TempDir(), "pg_dump")
	os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644)
	tests := []struct {
		name   string
		pgDump string
		want   string // "" means usable
	}{
		{"found on this machine", "", ""},
		{"configured, the machine's", real, ""},
		{"configured, a newer major", newer, ""},
		{"configured, an older major", older, "pg_dump " + itoa(major-1) + " (" + older + ") cannot dump the datastore's PostgreSQL " + srv.text +
			" server: pg_dump refuses a server of a newer major version; install postgresql-client-" + itoa(major) +
			" (or newer) where kongbot runs, or point the gateway's pg_dump setting at a pg_dump " + itoa(major) + " or newer"},
		{"configured, missing", "/nonexistent/pg_dump", "pg_dump /nonexistent/pg_dump (the gateway's pg_dump setting) does not exist: " +
			"a datastore snapshot needs pg_dump; install postgresql-client-" + itoa(major) + " (or newer) where kongbot runs"},
		{"configured, not executable", notExec, "is not executable"},
		{"configured, a directory", t.TempDir(), "is a directory"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(Options{Gateways: map[string]Gateway{"gw": {DatastoreDSN: dsn, PGDump: tc.pgDump,
				Generations: []GenerationNodes{{Version: "0.14.1", Nodes: []NodeOptions{{Name: "a", AdminURL: "http://127.0.0.1:1"}}}}}}})
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.CheckPGDump(ctx, "gw")
			if tc.want == "" {
				if err != nil || got.Version == "" || got.Server != srv.text {
					t.Fatalf("%+v %v", got, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

// TestPGDumpTooOldStopsPreflightAndSnapshot: the preflight names the
// problem before the hop starts, and the snapshot step refuses with the same
// words before it writes anything.
func TestPGDumpTooOldStopsPreflightAndSnapshot(t *testing.T) {
	if _, err := findPGBin("pg_dump"); err != nil {
		t.Skip(err)
	}
	ctx := context.Background()
	dsn := pgtest.New(t)
	simMigrate(t, dsn, "0.13.1", "up")
	old := simNode(t, dsn, "0.13.1")
	srv, err := serverVersion(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	major := itoa(srv.num / 10000)
	gw := Gateway{DatastoreDSN: dsn, SnapshotDir: t.TempDir(), Generations: []GenerationNodes{
		{Version: "0.13.1", Nodes: []NodeOptions{simNodeOpts("old-1", old)}},
		{Version: "0.14.1", Nodes: []NodeOptions{{Name: "new-1", AdminURL: deadURL(t), ProxyURL: deadURL(t)}}},
	}}

	chk, err := newClient(t, gw).Preflight(ctx, "gw", "1", nil)
	if err != nil || !chk.OK {
		t.Fatalf("with this machine's pg_dump: %+v %v", chk, err)
	}
	if !factHas(chk, "pg_dump", "for PostgreSQL "+srv.text) {
		t.Errorf("facts %+v", chk.Facts)
	}

	gw.PGDump = fakePGDump(t, "pg_dump (PostgreSQL) "+itoa(srv.num/10000-1)+".9")
	c := newClient(t, gw)
	for _, hop := range []string{"1", "2"} {
		chk, err := c.Preflight(ctx, "gw", hop, nil)
		if err != nil {
			t.Fatal(err)
		}
		if chk.OK || !missingHas(chk, "cannot dump the datastore's PostgreSQL "+srv.text+" server") || !missingHas(chk, "install postgresql-client-"+major) {
			t.Fatalf("hop %s with an older pg_dump: %+v", hop, chk.Missing)
		}
	}
	if _, err := c.Snapshot(ctx, "gw", "before"); err == nil || !strings.Contains(err.Error(), "install postgresql-client-"+major) {
		t.Fatalf("snapshot with an older pg_dump: %v", err)
	}
	if left, _ := os.ReadDir(gw.SnapshotDir); len(left) != 0 {
		t.Errorf("a refused snapshot left %d files", len(left))
	}

	gw.PGDump = "/nonexistent/pg_dump"
	chk, err = newClient(t, gw).Preflight(ctx, "gw", "1", nil)
	if err != nil || chk.OK || !missingHas(chk, "/nonexistent/pg_dump (the gateway's pg_dump setting) does not exist: a datastore snapshot needs pg_dump") {
		t.Fatalf("missing pg_dump: %+v %v", chk.Missing, err)
	}
}

func factHas(c steps.Check, name, sub string) bool {
	for _, f := range c.Facts {
		if f.Name == name && strings.Contains(f.Value, sub) {
			return true
		}
	}
	return false
}
