package kong

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kongbot/kongbot/internal/pgtest"
)

// entry is one file of a hand-built archive.
type entry struct {
	name string
	data []byte
}

// entries lists an archive's parts in the order SnapshotTo writes them.
func (p archiveParts) entries() []entry {
	out := []entry{{arPre, p.pre}, {arPost, p.post}}
	var names []string
	for n := range p.data {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		out = append(out, entry{arData + n + ".copy", p.data[n]})
	}
	mj, _ := json.Marshal(p.manifest)
	return append(out, entry{arManifest, mj})
}

// writeEntries writes a well-formed gzip tar of the given entries, so that
// only its content can be wrong.
func writeEntries(t testing.TB, path string, es []entry) {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range es {
		if err := tw.WriteHeader(&tar.Header{Name: e.name, Mode: 0o600, Size: int64(len(e.data))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// snapshotFixture takes a real snapshot of a 0.14.1 datastore with a few
// APIs (pg_dump and COPY, as the step does) and returns the archive's path.
func snapshotFixture(t *testing.T) string {
	t.Helper()
	if _, err := findPGBin("pg_dump"); err != nil {
		t.Skip(err)
	}
	src := pgtest.New(t)
	loadFixture(t, src, "0.14-apis")
	fill014(t, src, 200)
	path := filepath.Join(t.TempDir(), "good.tar.gz")
	if _, err := SnapshotTo(context.Background(), src, path, Manifest{Gateway: "gw", Label: "test", TakenAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestVerifySnapshot(t *testing.T) {
	ctx := context.Background()
	good := snapshotFixture(t)
	raw, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	parts := readArchive(t, good)
	dir := t.TempDir()

	info, err := VerifySnapshot(ctx, good)
	if err != nil {
		t.Fatalf("a good archive: %v", err)
	}
	want := map[string]int64{}
	for _, tb := range parts.manifest.Tables {
		want[tb.Name] = tb.Rows
	}
	if want["apis"] != 203 || want["plugins"] != 200 || info.Rows < 403 || info.Size != int64(len(raw)) || info.Manifest.Gateway != "gw" {
		t.Fatalf("info %+v, counts %v", info, want)
	}

	// Each case builds a damaged copy of the good archive.
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	changed := func(name string, f func(p *archiveParts) []entry) string {
		p := readArchive(t, good)
		path := filepath.Join(dir, name)
		writeEntries(t, path, f(&p))
		return path
	}
	tests := []struct {
		name string
		path func() string
		want string
	}{
		{"missing file", func() string { return filepath.Join(dir, "none.tar.gz") }, "does not exist"},
		{"a directory", func() string { return dir }, "is a directory"},
		{"empty file", func() string { return write("empty.tar.gz", nil) }, "is empty (0 bytes)"},
		{"not gzip", func() string { return write("junk.tar.gz", []byte("this is not an archive at all")) }, "is not a gzip file"},
		{"truncated inside the gzip header", func() string { return write("t5.tar.gz", raw[:5]) }, "is truncated: it ends inside the gzip header"},
		{"truncated to half", func() string { return write("half.tar.gz", raw[:len(raw)/2]) }, "is truncated: it ends inside data/"},
		{"truncated by one byte", func() string { return write("minus1.tar.gz", raw[:len(raw)-1]) }, "is truncated"},
		{"bytes after the end", func() string { return write("extra.tar.gz", append(bytes.Clone(raw), "trailing"...)) }, "unexpected bytes after the end"},
		{"a table's data file removed", func() string {
			return changed("nodata.tar.gz", func(p *archiveParts) []entry { delete(p.data, "apis"); return p.entries() })
		}, "table apis: its data file data/apis.copy is missing"},
		{"manifest claims one row more", func() string {
			return changed("count.tar.gz", func(p *archiveParts) []entry {
				for i := range p.manifest.Tables {
					if p.manifest.Tables[i].Name == "plugins" {
						p.manifest.Tables[i].Rows++
					}
				}
				return p.entries()
			})
		}, "table plugins: 200 rows in data/plugins.copy, the manifest says 201"},
		{"a row changed, same count", func() string {
			return changed("row.tar.gz", func(p *archiveParts) []entry {
				p.data["apis"] = bytes.Replace(p.data["apis"], []byte("api-7\t"), []byte("api-X\t"), 1)
				return p.entries()
			})
		}, "table apis: the checksum of data/apis.copy is"},
		{"a data file the manifest does not list", func() string {
			return changed("extra-table.tar.gz", func(p *archiveParts) []entry { p.data["stray"] = []byte("1\n"); return p.entries() })
		}, "data/stray.copy is not in the manifest"},
		{"no manifest", func() string {
			return changed("nomanifest.tar.gz", func(p *archiveParts) []entry { es := p.entries(); return es[:len(es)-1] })
		}, "has no manifest.json"},
		{"manifest does not parse", func() string {
			return changed("badmanifest.tar.gz", func(p *archiveParts) []entry {
				es := p.entries()
				es[len(es)-1].data = []byte(`{"tables": [`)
				return es
			})
		}, "has a manifest.json that does not parse"},
		{"no schema", func() string {
			return changed("noschema.tar.gz", func(p *archiveParts) []entry { return p.entries()[1:] })
		}, "has no schema/pre-data.sql"},
		{"no post-data schema", func() string {
			return changed("nopost.tar.gz", func(p *archiveParts) []entry { es := p.entries(); return append(es[:1:1], es[2:]...) })
		}, "has no schema/post-data.sql"},
		{"schema lacks a table", func() string {
			return changed("schema-lacks.tar.gz", func(p *archiveParts) []entry {
				p.pre = bytes.Replace(p.pre, []byte("CREATE TABLE public.consumers ("), []byte("-- dropped ("), 1)
				return p.entries()
			})
		}, "table consumers: schema/pre-data.sql does not create it"},
		{"an entry twice", func() string {
			return changed("twice.tar.gz", func(p *archiveParts) []entry {
				es := p.entries()
				return append(es[:3:3], es[2:]...)
			})
		}, "twice"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.path()
			_, err := VerifySnapshot(ctx, path)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrBadSnapshot) {
				t.Fatalf("got %v, want an ErrBadSnapshot containing %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("the error does not name the archive: %v", err)
			}
			t.Log(err)
		})
	}

	// A byte changed anywhere after the gzip header (whose mtime and OS
	// bytes gzip does not check) is found, and called damage, not
	// truncation or a content mismatch.
	t.Run("one byte changed", func(t *testing.T) {
		positions := []int{len(raw) - 8, len(raw) - 1} // the CRC and the length in the trailer
		for i := 1; i <= 24; i++ {
			positions = append(positions, 10+(len(raw)-20)*i/25)
		}
		for _, pos := range positions {
			b := bytes.Clone(raw)
			b[pos] ^= 0xff
			path := write("flip.tar.gz", b)
			_, err := VerifySnapshot(ctx, path)
			if err == nil || !strings.Contains(err.Error(), "is corrupted") {
				t.Errorf("byte %d of %d changed: %v", pos, len(raw), err)
			}
			t.Logf("byte %d: %v", pos, err)
		}
	})

	t.Run("cancelled", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := VerifySnapshot(cctx, good); !errors.Is(err, context.Canceled) || errors.Is(err, ErrBadSnapshot) {
			t.Fatalf("cancelled: %v", err)
		}
	})
}

func TestClientVerifySnapshot(t *testing.T) {
	ctx := context.Background()
	good := snapshotFixture(t)
	c, err := New(Options{Gateways: map[string]Gateway{
		"gw":    {Generations: []GenerationNodes{{Version: "0.14.1", Nodes: []NodeOptions{{Name: "a", AdminURL: "http://127.0.0.1:1"}}}}, DatastoreDSN: "postgres://x@127.0.0.1:1/k"},
		"other": {Generations: []GenerationNodes{{Version: "0.14.1", Nodes: []NodeOptions{{Name: "b", AdminURL: "http://127.0.0.1:1"}}}}, DatastoreDSN: "postgres://x@127.0.0.1:1/k"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	sum, err := c.VerifySnapshot(ctx, "gw", good)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Archive != good || sum.Tables["apis"] != 203 || sum.Tables["plugins"] != 200 || sum.Bytes == 0 {
		t.Fatalf("summary %+v", sum)
	}
	var rows int64
	for _, n := range sum.Tables {
		rows += n
	}
	if rows != sum.Rows {
		t.Errorf("rows %d, tables add up to %d", sum.Rows, rows)
	}
	if _, err := c.VerifySnapshot(ctx, "other", good); err == nil || !strings.Contains(err.Error(), "is a snapshot of gateway gw, not other") {
		t.Fatalf("another gateway's archive: %v", err)
	}
}

// TestRestoreChecksTheArchiveFirst: a damaged archive is refused before the
// target database is even connected to, and leaves it empty.
func TestRestoreChecksTheArchiveFirst(t *testing.T) {
	ctx := context.Background()
	good := snapshotFixture(t)
	raw, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	flipped := bytes.Clone(raw)
	flipped[len(raw)/2] ^= 0xff
	truncated := raw[:len(raw)*3/4]
	dst := pgtest.New(t)
	for name, b := range map[string][]byte{"flipped": flipped, "truncated": truncated} {
		path := filepath.Join(dir, name+".tar.gz")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		// An unreachable target: the archive's problem must be what is reported.
		_, err := Restore(ctx, path, "postgres://kong:secret@127.0.0.1:1/kong", nil)
		if err == nil || !errors.Is(err, ErrBadSnapshot) || !strings.Contains(err.Error(), "nothing was written") || strings.Contains(err.Error(), "connecting") {
			t.Fatalf("%s archive, unreachable target: %v", name, err)
		}
		var out bytes.Buffer
		if _, err := Restore(ctx, path, dst, &out); err == nil || !errors.Is(err, ErrBadSnapshot) {
			t.Fatalf("%s archive: %v", name, err)
		}
		if out.Len() != 0 {
			t.Errorf("%s archive: restore reported progress %q", name, out.String())
		}
		ds, err := ReadDatastore(ctx, dst)
		if err != nil || ds.Schema != "empty" {
			t.Fatalf("%s archive left the target %s (%v)", name, ds.Schema, err)
		}
	}
	// The good archive restores into the same, still empty, database.
	rep, err := Restore(ctx, good, dst, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ds, err := ReadDatastore(ctx, dst); err != nil || ds.Counts.APIs != 203 || rep.Rows == 0 {
		t.Fatalf("restored %+v, report %+v (%v)", ds.Counts, rep, err)
	}
}

func TestRowDigestStreams(t *testing.T) {
	rows := "a\tb\n" + strings.Repeat("x", 100000) + "\n\\N\t1\n" + "last row without newline"
	whole := &rowDigest{}
	whole.Write([]byte(rows))
	wholeSum := whole.sum() // counts the last, unterminated row
	for _, chunk := range []int{1, 3, 4096} {
		d := &rowDigest{}
		for i := 0; i < len(rows); i += chunk {
			d.Write([]byte(rows[i:min(i+chunk, len(rows))]))
		}
		if sum := d.sum(); d.rows != whole.rows || sum != wholeSum {
			t.Errorf("chunks of %d: %d rows %s, whole: %d rows %s", chunk, d.rows, sum, whole.rows, wholeSum)
		}
	}
	if whole.rows != 4 {
		t.Errorf("rows %d, want 4", whole.rows)
	}
	// The checksum does not depend on row order.
	rev := &rowDigest{}
	rev.Write([]byte("\\N\t1\na\tb\n"))
	fwd := &rowDigest{}
	fwd.Write([]byte("a\tb\n\\N\t1\n"))
	if rev.sum() != fwd.sum() {
		t.Error("row order changes the checksum")
	}
}
