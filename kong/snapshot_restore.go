package kong

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/jackc/pgx/v5"
)

// RestoreReport is what Restore checked.
type RestoreReport struct {
	Manifest Manifest
	Tables   int
	Rows     int64
}

// Restore loads an archive made by Snapshot into the empty database at dsn.
// It checks the whole archive first (VerifySnapshot) and touches the target
// database only when that passes; then, in one transaction, it creates the
// schema before the data and the indexes, constraints and triggers after it
// (so row order and triggers cannot change what is loaded), streams every
// table in with COPY, and recounts and re-checksums every table against the
// manifest before committing. out, when not nil, gets one progress line per
// table.
func Restore(ctx context.Context, archive, dsn string, out io.Writer) (RestoreReport, error) {
	var rep RestoreReport
	if out == nil {
		out = io.Discard
	}
	checked, err := scanArchive(ctx, archive, nil)
	if err != nil {
		return rep, fmt.Errorf("restore: %w (nothing was written to the target database)", err)
	}
	rep.Manifest = checked.manifest
	var rows int64
	for _, t := range checked.manifest.Tables {
		rows += t.Rows
	}
	fmt.Fprintf(out, "archive checked: %d tables, %d rows, counts and checksums match its manifest\n", len(checked.manifest.Tables), rows)

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
	if _, err := tx.Exec(ctx, schemaSQL(checked.pre), pgx.QueryExecModeSimpleProtocol); err != nil {
		return rep, fmt.Errorf("restore: schema (pre-data): %w", err)
	}
	if _, err := tx.Exec(ctx, "SET LOCAL search_path = public"); err != nil {
		return rep, fmt.Errorf("restore: %w", err)
	}
	want := map[string]TableDigest{}
	for _, t := range checked.manifest.Tables {
		want[t.Name] = t
	}
	loaded := map[string]bool{}
	// The second pass streams each table from the archive into COPY; it
	// checks the archive again on the way, so a file changed since the first
	// pass fails here, inside the transaction.
	_, err = scanArchive(ctx, archive, func(table string, r io.Reader) error {
		t, ok := want[table]
		if !ok {
			return nil
		}
		if _, err := tx.Conn().PgConn().CopyFrom(ctx, r, "COPY "+pgx.Identifier{"public", table}.Sanitize()+" FROM STDIN"); err != nil {
			return fmt.Errorf("loading: %w", err)
		}
		loaded[table] = true
		fmt.Fprintf(out, "loaded %s: %d rows\n", table, t.Rows)
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("restore: %w (nothing committed)", err)
	}
	for _, t := range checked.manifest.Tables {
		if !loaded[t.Name] {
			return rep, fmt.Errorf("restore: table %s was not loaded (nothing committed)", t.Name)
		}
	}
	if _, err := tx.Exec(ctx, schemaSQL(checked.post), pgx.QueryExecModeSimpleProtocol); err != nil {
		return rep, fmt.Errorf("restore: schema (post-data): %w", err)
	}
	// Check before committing: a mismatch leaves the database empty.
	var bad []string
	for _, t := range checked.manifest.Tables {
		d := &rowDigest{}
		if _, err := tx.Conn().PgConn().CopyTo(ctx, d, "COPY "+pgx.Identifier{"public", t.Name}.Sanitize()+" TO STDOUT"); err != nil {
			return rep, fmt.Errorf("restore: re-reading table %s: %w", t.Name, err)
		}
		if sum := d.sum(); d.rows != t.Rows || sum != t.Checksum {
			bad = append(bad, fmt.Sprintf("%s: %d rows (want %d), checksum %s (want %s)", t.Name, d.rows, t.Rows, sum[:12], short12(t.Checksum)))
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
