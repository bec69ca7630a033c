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
	"hash"
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

// rowDigest accumulates the multiset checksum of COPY text rows. Each row
// is hashed as it streams by, so memory stays bounded however long a row or
// a table is.
type rowDigest struct {
	rows  int64
	lanes [4]uint64
	h     hash.Hash // the unfinished row across writes, when open
	open  bool
}

func (d *rowDigest) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			d.partial(p)
			break
		}
		if d.open {
			d.partial(p[:i+1])
			d.finish()
		} else {
			d.add(sha256.Sum256(p[:i+1]))
		}
		p = p[i+1:]
	}
	return n, nil
}

func (d *rowDigest) partial(b []byte) {
	if d.h == nil {
		d.h = sha256.New()
	}
	d.h.Write(b)
	d.open = true
}

func (d *rowDigest) finish() {
	var sum [sha256.Size]byte
	d.h.Sum(sum[:0])
	d.h.Reset()
	d.open = false
	d.add(sum)
}

func (d *rowDigest) add(sum [sha256.Size]byte) {
	for i := range d.lanes {
		d.lanes[i] += binary.BigEndian.Uint64(sum[i*8:])
	}
	d.rows++
}

func (d *rowDigest) sum() string {
	if d.open {
		d.finish()
	}
	var b [32]byte
	for i, l := range d.lanes {
		binary.BigEndian.PutUint64(b[i*8:], l)
	}
	return hex.EncodeToString(b[:])
}

// Snapshot writes a consistent copy of the gateway's datastore to
// SnapshotDir and returns the archive's path. It first checks that the
// gateway's pg_dump can dump the datastore's server, so a missing or too old
// pg_dump is named as such instead of surfacing as pg_dump's own error.
func (c *Client) Snapshot(ctx context.Context, gateway, label string) (string, error) {
	g, err := c.gateway(gateway)
	if err != nil {
		return "", err
	}
	if g.cfg.SnapshotDir == "" {
		return "", fmt.Errorf("gateway %s: no snapshot directory configured", gateway)
	}
	bin, err := g.pgDumpPath("")
	if err != nil {
		return "", fmt.Errorf("snapshot: %w", err)
	}
	if err := os.MkdirAll(g.cfg.SnapshotDir, 0o700); err != nil {
		return "", fmt.Errorf("snapshot directory: %w", err)
	}
	now := c.opts.Now().UTC()
	name := fmt.Sprintf("%s-%s-%s.tar.gz", gateway, safeLabel(label), now.Format("20060102T150405Z"))
	path := filepath.Join(g.cfg.SnapshotDir, name)
	m, err := snapshotTo(ctx, g.cfg.DatastoreDSN, bin, path, Manifest{Gateway: gateway, Label: label, TakenAt: now})
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
// and renamed, so a failed snapshot leaves nothing behind). It runs the
// newest pg_dump it finds (see findPGBin).
func SnapshotTo(ctx context.Context, dsn, path string, m Manifest) (Manifest, error) {
	bin, err := findPGBin("pg_dump")
	if err != nil {
		return m, fmt.Errorf("snapshot: %w", err)
	}
	return snapshotTo(ctx, dsn, bin, path, m)
}

func snapshotTo(ctx context.Context, dsn, pgDumpBin, path string, m Manifest) (Manifest, error) {
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
	var (
		snapID    string
		serverNum int
	)
	if err := tx.QueryRow(ctx, "SELECT pg_export_snapshot(), current_setting('server_version'), current_setting('server_version_num')::int").
		Scan(&snapID, &m.Server, &serverNum); err != nil {
		return m, fmt.Errorf("snapshot: exporting the snapshot: %w", err)
	}
	if _, err := checkPGDump(ctx, pgDumpBin, pgVersion{num: serverNum, text: m.Server}); err != nil {
		return m, fmt.Errorf("snapshot: %w", err)
	}
	tables, err := publicTables(ctx, tx)
	if err != nil {
		return m, err
	}
	pre, err := pgDump(ctx, pgDumpBin, dsn, snapID, "pre-data")
	if err != nil {
		return m, err
	}
	post, err := pgDump(ctx, pgDumpBin, dsn, snapID, "post-data")
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
func pgDump(ctx context.Context, bin, dsn, snapID, section string) ([]byte, error) {
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
