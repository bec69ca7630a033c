package kong

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/kongbot/kongbot/internal/pgtest"
)

// fill014 adds n APIs, each with a key-auth plugin, plus a consumer and a
// service with a route, to a recorded 0.14.1 schema.
func fill014(t testing.TB, dsn string, n int) {
	t.Helper()
	execSQL(t, dsn, `SET search_path = public;
		INSERT INTO apis (id, name, upstream_url, preserve_host, created_at, retries, https_only, http_if_terminated, uris, strip_uri,
			upstream_connect_timeout, upstream_send_timeout, upstream_read_timeout)
		SELECT md5('api'||i)::uuid, 'api-'||i, 'http://127.0.0.1:15555/up/'||i, false, now(), 5, false, false,
			'["\/api\/'||i||'"]', true, 60000, 60000, 60000 FROM generate_series(1, `+itoa(n)+`) i;
		INSERT INTO plugins (id, name, api_id, config, enabled, created_at)
		SELECT md5('plugin'||i)::uuid, 'key-auth', md5('api'||i)::uuid,
			'{"key_names":["apikey"],"hide_credentials":false,"anonymous":"","key_in_body":false,"run_on_preflight":true}', true, now()
		FROM generate_series(1, `+itoa(n)+`) i;
		INSERT INTO consumers (id, username, custom_id, created_at) VALUES ('11111111-1111-1111-1111-111111111111', 'alice', 'c-1', now());
		INSERT INTO services (id, created_at, updated_at, name, retries, protocol, host, port, path, connect_timeout, write_timeout, read_timeout)
		VALUES ('22222222-2222-2222-2222-222222222222', now(), now(), 'svc14', 5, 'http', '127.0.0.1', 15555, '/svc14', 60000, 60000, 60000);
		INSERT INTO routes (id, created_at, updated_at, protocols, paths, regex_priority, strip_path, preserve_host, service_id)
		VALUES ('33333333-3333-3333-3333-333333333333', now(), now(), '{http,https}', '{/svc14}', 0, true, false, '22222222-2222-2222-2222-222222222222');
		SET session_replication_role = replica;
		INSERT INTO cluster_events (id, node_id, at, nbf, expire_at, channel, data)
		VALUES ('44444444-4444-4444-4444-444444444444', '55555555-5555-5555-5555-555555555555', now() - interval '2 hours', NULL,
			now() - interval '1 hour', 'invalidations', 'router:version')`)
}

func TestSnapshotRestoreRoundTrip(t *testing.T) {
	if _, err := findPGBin("pg_dump"); err != nil {
		t.Skip(err)
	}
	ctx := context.Background()
	src := pgtest.New(t)
	loadFixture(t, src, "0.14")
	fill014(t, src, 10000)
	dir := t.TempDir()
	c, err := New(Options{Gateways: map[string]Gateway{"gw": {
		Generations:  []GenerationNodes{{Version: "0.14.1", Nodes: []NodeOptions{{Name: "a", AdminURL: "http://127.0.0.1:1"}}}},
		DatastoreDSN: src, SnapshotDir: dir,
	}}, Now: func() time.Time { return time.Date(2026, 11, 29, 13, 0, 0, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	archive, err := c.Snapshot(ctx, "gw", "before 1.0.3 up")
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(archive) != dir || !strings.Contains(archive, "before_1.0.3_up") {
		t.Errorf("archive path %s", archive)
	}
	// The check streams the tables: what it allocates is far below what
	// the archive holds uncompressed (the old reader held all of it).
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	info, err := VerifySnapshot(ctx, archive)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	parts := readArchive(t, archive)
	var unpacked int
	for _, b := range parts.data {
		unpacked += len(b)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > uint64(unpacked)/4 {
		t.Errorf("VerifySnapshot allocated %d bytes for %d bytes of table data", alloc, unpacked)
	} else {
		t.Logf("VerifySnapshot: %d rows, %d bytes of table data, %d bytes archived, %d bytes allocated", info.Rows, unpacked, info.Size, alloc)
	}
	counts := map[string]int64{}
	for _, tb := range parts.manifest.Tables {
		counts[tb.Name] = tb.Rows
	}
	if counts["apis"] != 10000 || counts["plugins"] != 10000 || counts["schema_migrations"] != 17 || counts["cluster_events"] != 1 {
		t.Fatalf("manifest counts: %v", counts)
	}

	dst := pgtest.New(t)
	var out bytes.Buffer
	rep, err := Restore(ctx, archive, dst, &out)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Tables != len(parts.manifest.Tables) || rep.Rows < 20000 {
		t.Errorf("report %+v", rep)
	}
	// The restored database is a Kong 0.14 datastore in its own right,
	// expired cluster_events row included (the trigger did not run).
	ds, err := ReadDatastore(ctx, dst)
	if err != nil {
		t.Fatal(err)
	}
	if ds.Schema != "0.14" || ds.Counts.APIs != 10000 || ds.Counts.Plugins["key-auth"] != 10000 {
		t.Errorf("restored: %s %+v", ds.Schema, ds.Counts)
	}
	// A second snapshot of the restored database has the same digests.
	m2, err := SnapshotTo(ctx, dst, filepath.Join(dir, "again.tar.gz"), Manifest{})
	if err != nil {
		t.Fatal(err)
	}
	for i, tb := range m2.Tables {
		if tb != parts.manifest.Tables[i] {
			t.Errorf("table %s: %+v after restore, %+v before", tb.Name, tb, parts.manifest.Tables[i])
		}
	}
	t.Logf("%d tables, %d rows; %s", rep.Tables, rep.Rows, strings.TrimSpace(out.String()[strings.LastIndex(strings.TrimSpace(out.String()), "\n")+1:]))

	// Restore refuses a database that is not empty, and changes nothing.
	if _, err := Restore(ctx, archive, dst, nil); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("restore into a non-empty database: %v", err)
	}
}

func TestRestoreRejectsTamperedArchive(t *testing.T) {
	if _, err := findPGBin("pg_dump"); err != nil {
		t.Skip(err)
	}
	ctx := context.Background()
	src := pgtest.New(t)
	loadFixture(t, src, "0.14-apis")
	dir := t.TempDir()
	path := filepath.Join(dir, "s.tar.gz")
	m, err := SnapshotTo(ctx, src, path, Manifest{})
	if err != nil {
		t.Fatal(err)
	}
	// Claim one more API than was copied.
	for i := range m.Tables {
		if m.Tables[i].Name == "apis" {
			m.Tables[i].Rows++
		}
	}
	parts := readArchive(t, path)
	parts.manifest = m
	bad := filepath.Join(dir, "bad.tar.gz")
	writeParts(t, bad, parts)
	dst := pgtest.New(t)
	if _, err := Restore(ctx, bad, dst, nil); err == nil || !strings.Contains(err.Error(), "table apis: 3 rows in data/apis.copy, the manifest says 4") {
		t.Fatalf("tampered archive: %v", err)
	}
	ds, err := ReadDatastore(ctx, dst)
	if err != nil || ds.Schema != "empty" {
		t.Fatalf("a failed restore left %s (%v)", ds.Schema, err)
	}
	if _, err := Restore(ctx, filepath.Join(dir, "missing.tar.gz"), dst, nil); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("missing archive: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "junk.tar.gz"), []byte("junk"), 0o600)
	if _, err := Restore(ctx, filepath.Join(dir, "junk.tar.gz"), dst, nil); err == nil || !strings.Contains(err.Error(), "not a kongbot snapshot") {
		t.Fatalf("junk archive: %v", err)
	}
}

// archiveParts is an archive read whole into memory, for tests that take
// one apart and write it back changed (writeParts).
type archiveParts struct {
	manifest  Manifest
	pre, post []byte
	data      map[string][]byte
}

func readArchive(t testing.TB, path string) archiveParts {
	t.Helper()
	p := archiveParts{data: map[string][]byte{}}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case h.Name == arManifest:
			if err := json.Unmarshal(b, &p.manifest); err != nil {
				t.Fatal(err)
			}
		case h.Name == arPre:
			p.pre = b
		case h.Name == arPost:
			p.post = b
		case strings.HasPrefix(h.Name, arData):
			p.data[strings.TrimSuffix(strings.TrimPrefix(h.Name, arData), ".copy")] = b
		}
	}
	return p
}
