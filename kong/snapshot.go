package kong

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Manifest describes a datastore snapshot archive.
type Manifest struct {
	Gateway string        `json:"gateway,omitempty"`
	Label   string        `json:"label,omitempty"`
	TakenAt time.Time     `json:"taken_at"`
	Server  string        `json:"server_version"`
	Tables  []TableDigest `json:"tables"`
}

// TableDigest is one table's row count and an order-independent checksum of
// its rows in COPY text form (the sum of each row's SHA-256, lane-wise mod
// 2^64, so a restore that stores rows in another order still matches).
type TableDigest struct {
	Name     string `json:"name"`
	Rows     int64  `json:"rows"`
	Checksum string `json:"checksum"`
}

// Archive layout (tar, gzip): manifest.json, schema/pre-data.sql,
// schema/post-data.sql, data/<table>.copy.
const (
	arManifest = "manifest.json"
	arPre      = "schema/pre-data.sql"
	arPost     = "schema/post-data.sql"
	arData     = "data/"
)

// rowDigest accumulates the multiset checksum of COPY text rows.
type rowDigest struct {
	rows  int64
	lanes [4]uint64
	part  []byte // an unfinished line across writes
}

func (d *rowDigest) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			d.part = append(d.part, p...)
			break
		}
		line := p[:i+1]
		if len(d.part) > 0 {
			line = append(d.part, line...)
			d.part = d.part[:0]
		}
		d.add(line)
		p = p[i+1:]
	}
	return n, nil
}

func (d *rowDigest) add(line []byte) {
	sum := sha256.Sum256(line)
	for i := range d.lanes {
		d.lanes[i] += binary.BigEndian.Uint64(sum[i*8:])
	}
	d.rows++
}

func (d *rowDigest) sum() string {
	if len(d.part) > 0 {
		d.add(d.part)
		d.part = nil
	}
	var b [32]byte
	for i, l := range d.lanes {
		binary.BigEndian.PutUint64(b[i*8:], l)
	}
	return hex.EncodeToString(b[:])
}

// Snapshot writes a consistent copy of the gateway's datastore to
// SnapshotDir and returns the archive's path.
func (c *Client) Snapshot(ctx context.Context, gateway, label string) (string, error) {
	g, err := c.gateway(gateway)
	if err != nil {
		return "", err
	}
	if g.cfg.SnapshotDir == "" {
		return "", fmt.Errorf("gateway %s: no snapshot directory configured", gateway)
	}
	if err := os.MkdirAll(g.cfg.SnapshotDir, 0o700); err != nil {
		return "", fmt.Errorf("snapshot directory: %w", err)
	}
	now := c.opts.Now().UTC()
	name := fmt.Sprintf("%s-%s-%s.tar.gz", gateway, safeLabel(label), now.Format("20060102T150405Z"))
	path := filepath.Join(g.cfg.SnapshotDir, name)
	m, err := SnapshotTo(ctx, g.cfg.DatastoreDSN, path, Manifest{Gateway: gateway, Label: label, TakenAt: now})
	if err != nil {
		return "", err
	}
	g.log.Info("datastore snapshot", "archive", path, "tables", len(m.Tables))
	return path, nil
}

func safeLabel(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		return "snapshot"
	}
	return b.String()
}

// SnapshotTo copies every table of the public schema with COPY inside one
// REPEATABLE READ transaction, and the schema with pg_dump on the same
// exported snapshot, into a gzip tar at path (written to a temporary file
// and renamed, so a failed snapshot leaves nothing behind).
func SnapshotTo(ctx context.Context, dsn, path string, m Manifest) (Manifest, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return m, fmt.Errorf("snapshot: connecting to the datastore: %w", redactErr(err, dsn))
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return m, fmt.Errorf("snapshot: begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	var snapID string
	if err := tx.QueryRow(ctx, "SELECT pg_export_snapshot(), current_setting('server_version')").Scan(&snapID, &m.Server); err != nil {
		return m, fmt.Errorf("snapshot: exporting the snapshot: %w", err)
	}
	tables, err := publicTables(ctx, tx)
	if err != nil {
		return m, err
	}
	pre, err := pgDump(ctx, dsn, snapID, "pre-data")
	if err != nil {
		return m, err
	}
	post, err := pgDump(ctx, dsn, snapID, "post-data")
	if err != nil {
		return m, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".snapshot-*")
	if err != nil {
		return m, fmt.Errorf("snapshot: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	gz := gzip.NewWriter(tmp)
	tw := tar.NewWriter(gz)
	add := func(name string, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: int64(len(data)), ModTime: m.TakenAt}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	if err := add(arPre, pre); err != nil {
		return m, fmt.Errorf("snapshot: writing the archive: %w", err)
	}
	if err := add(arPost, post); err != nil {
		return m, fmt.Errorf("snapshot: writing the archive: %w", err)
	}
	for _, t := range tables {
		// A table's COPY goes to a spool file first: a tar header needs the
		// size before the data.
		spool, err := os.CreateTemp(filepath.Dir(path), ".copy-*")
		if err != nil {
			return m, fmt.Errorf("snapshot: %w", err)
		}
		d := &rowDigest{}
		bw := bufio.NewWriterSize(spool, 1<<16)
		_, cerr := tx.Conn().PgConn().CopyTo(ctx, io.MultiWriter(bw, d), "COPY "+pgx.Identifier{"public", t}.Sanitize()+" TO STDOUT")
		ferr := bw.Flush()
		size, _ := spool.Seek(0, io.SeekCurrent)
		if err := errors.Join(cerr, ferr); err != nil {
			spool.Close()
			os.Remove(spool.Name())
			return m, fmt.Errorf("snapshot: copying table %s: %w", t, err)
		}
		if _, err := spool.Seek(0, io.SeekStart); err == nil {
			err = tw.WriteHeader(&tar.Header{Name: arData + t + ".copy", Mode: 0o600, Size: size, ModTime: m.TakenAt})
			if err == nil {
				_, err = io.Copy(tw, spool)
			}
			if err != nil {
				spool.Close()
				os.Remove(spool.Name())
				return m, fmt.Errorf("snapshot: archiving table %s: %w", t, err)
			}
		}
		spool.Close()
		os.Remove(spool.Name())
		m.Tables = append(m.Tables, TableDigest{Name: t, Rows: d.rows, Checksum: d.sum()})
	}
	mj, _ := json.MarshalIndent(m, "", "  ")
	if err := add(arManifest, mj); err != nil {
		return m, fmt.Errorf("snapshot: writing the archive: %w", err)
	}
	if err := errors.Join(tw.Close(), gz.Close(), tmp.Sync(), tmp.Close()); err != nil {
		return m, fmt.Errorf("snapshot: closing the archive: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return m, fmt.Errorf("snapshot: %w", err)
	}
	return m, nil
}

func publicTables(ctx context.Context, q queryer) ([]string, error) {
	rows, err := q.Query(ctx, `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY c.relname`)
	if err != nil {
		return nil, fmt.Errorf("listing tables: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// pgDump runs pg_dump for one section of the schema on an exported
// snapshot. The password goes through the environment, never argv.
func pgDump(ctx context.Context, dsn, snapID, section string) ([]byte, error) {
	bin, err := findPGBin("pg_dump")
	if err != nil {
		return nil, err
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("snapshot: parsing the DSN: %w", redactErr(err, dsn))
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--schema-only", "--section="+section, "--no-owner", "--no-privileges",
		"--schema=public", "--snapshot="+snapID, "-h", cfg.Host, "-p", fmt.Sprint(cfg.Port), "-U", cfg.User, "-d", cfg.Database)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+cfg.Password, "PGCONNECT_TIMEOUT=10")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("snapshot: pg_dump %s: %w: %s", section, err, redactSecrets(strings.TrimSpace(stderr.String()), dsn))
	}
	return out, nil
}

// findPGBin finds a PostgreSQL client program on PATH or in the newest
// /usr/lib/postgresql/<v>/bin.
func findPGBin(name string) (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/" + name)
	sort.Slice(dirs, func(i, j int) bool { return pgMajor(dirs[i]) > pgMajor(dirs[j]) })
	if len(dirs) > 0 {
		return dirs[0], nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%s not found on PATH or under /usr/lib/postgresql", name)
}

func pgMajor(p string) int {
	var v int
	fmt.Sscanf(filepath.Base(filepath.Dir(filepath.Dir(p))), "%d", &v)
	return v
}

// schemaSQL drops psql meta-commands (\restrict … of newer pg_dump) so the
// script runs through the simple query protocol.
func schemaSQL(b []byte) string {
	var out strings.Builder
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, `\`) {
			continue
		}
		// --schema=public dumps the schema itself, which an empty
		// database already has.
		if line == "CREATE SCHEMA public;" {
			line = "CREATE SCHEMA IF NOT EXISTS public;"
		}
		out.WriteString(line)
		out.WriteByte('\n')
	}
	return out.String()
}

// RestoreReport is what Restore checked.
type RestoreReport struct {
	Manifest Manifest
	Tables   int
	Rows     int64
}

// Restore loads an archive made by Snapshot into the empty database at dsn
// (schema before data, indexes, constraints and triggers after, so row
// order and triggers cannot change what is loaded), then recounts and
// re-checksums every table against the manifest. out, when not nil, gets
// one progress line per table.
func Restore(ctx context.Context, archive, dsn string, out io.Writer) (RestoreReport, error) {
	var rep RestoreReport
	if out == nil {
		out = io.Discard
	}
	parts, err := readArchive(archive)
	if err != nil {
		return rep, err
	}
	rep.Manifest = parts.manifest
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return rep, fmt.Errorf("restore: connecting: %w", redactErr(err, dsn))
	}
	defer conn.Close(context.WithoutCancel(ctx))
	existing, err := publicTables(ctx, conn)
	if err != nil {
		return rep, err
	}
	if len(existing) > 0 {
		return rep, fmt.Errorf("restore: the target database is not empty (%d tables in public, e.g. %s); restore into an empty database", len(existing), existing[0])
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return rep, fmt.Errorf("restore: begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, schemaSQL(parts.pre), pgx.QueryExecModeSimpleProtocol); err != nil {
		return rep, fmt.Errorf("restore: schema (pre-data): %w", err)
	}
	if _, err := tx.Exec(ctx, "SET LOCAL search_path = public"); err != nil {
		return rep, fmt.Errorf("restore: %w", err)
	}
	for _, t := range parts.manifest.Tables {
		f, ok := parts.data[t.Name]
		if !ok {
			return rep, fmt.Errorf("restore: archive has no data for table %s", t.Name)
		}
		if _, err := tx.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(f), "COPY "+pgx.Identifier{"public", t.Name}.Sanitize()+" FROM STDIN"); err != nil {
			return rep, fmt.Errorf("restore: loading table %s: %w", t.Name, err)
		}
		fmt.Fprintf(out, "loaded %s: %d rows\n", t.Name, t.Rows)
	}
	if _, err := tx.Exec(ctx, schemaSQL(parts.post), pgx.QueryExecModeSimpleProtocol); err != nil {
		return rep, fmt.Errorf("restore: schema (post-data): %w", err)
	}
	// Check before committing: a mismatch leaves the database empty.
	var bad []string
	for _, t := range parts.manifest.Tables {
		d := &rowDigest{}
		if _, err := tx.Conn().PgConn().CopyTo(ctx, d, "COPY "+pgx.Identifier{"public", t.Name}.Sanitize()+" TO STDOUT"); err != nil {
			return rep, fmt.Errorf("restore: re-reading table %s: %w", t.Name, err)
		}
		if sum := d.sum(); d.rows != t.Rows || sum != t.Checksum {
			bad = append(bad, fmt.Sprintf("%s: %d rows (want %d), checksum %s (want %s)", t.Name, d.rows, t.Rows, sum[:12], t.Checksum[:12]))
		}
		rep.Tables++
		rep.Rows += d.rows
	}
	if len(bad) > 0 {
		return rep, fmt.Errorf("restore: the loaded data does not match the manifest, nothing committed:\n%s", strings.Join(bad, "\n"))
	}
	if err := tx.Commit(ctx); err != nil {
		return rep, fmt.Errorf("restore: commit: %w", err)
	}
	fmt.Fprintf(out, "restored %d tables, %d rows; counts and checksums match the manifest\n", rep.Tables, rep.Rows)
	return rep, nil
}

type archiveParts struct {
	manifest  Manifest
	pre, post []byte
	data      map[string][]byte
}

func readArchive(path string) (archiveParts, error) {
	p := archiveParts{data: map[string][]byte{}}
	f, err := os.Open(path)
	if err != nil {
		return p, fmt.Errorf("restore: %w", err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return p, fmt.Errorf("restore: %s is not a snapshot archive: %w", path, err)
	}
	tr := tar.NewReader(gz)
	haveManifest := false
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return p, fmt.Errorf("restore: reading %s: %w", path, err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return p, fmt.Errorf("restore: reading %s: %w", h.Name, err)
		}
		switch {
		case h.Name == arManifest:
			if err := json.Unmarshal(b, &p.manifest); err != nil {
				return p, fmt.Errorf("restore: manifest: %w", err)
			}
			haveManifest = true
		case h.Name == arPre:
			p.pre = b
		case h.Name == arPost:
			p.post = b
		case strings.HasPrefix(h.Name, arData) && strings.HasSuffix(h.Name, ".copy"):
			p.data[strings.TrimSuffix(strings.TrimPrefix(h.Name, arData), ".copy")] = b
		}
	}
	if !haveManifest || p.pre == nil {
		return p, fmt.Errorf("restore: %s lacks a manifest or schema: not a kongbot snapshot", path)
	}
	return p, nil
}
