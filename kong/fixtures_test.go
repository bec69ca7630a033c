package kong

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// fixtures is the recorded real-Kong material (kong-fixtures/README.md).
const fixtures = "/work/shared/kong-fixtures"

// Datastore states recorded by real Kong, as schema dump + row files.
var fixtureStates = map[string]string{
	"0.13":          "stage1-0.13.1-install/db",
	"0.14":          "stage3-0.14.1-upgrade/db",
	"0.14-apis":     "stage4-1.0.3-upgrade/db/before-up-with-apis",
	"1.0-pending":   "stage4-1.0.3-upgrade/db/after-up",
	"1.0-finished":  "stage4-1.0.3-upgrade/db/after-finish",
	"1.0-bootstrap": "stage5-1.0.3-bootstrap/db",
}

func fixtureDir(t testing.TB, rel string) string {
	t.Helper()
	dir := filepath.Join(fixtures, rel)
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("kong-fixtures not available: %v", err)
	}
	return dir
}

// loadFixture creates the recorded schema of state in the database at dsn
// and loads its row files, then the row files of each extra directory
// (relative to kong-fixtures). Foreign keys are not checked while loading:
// the recordings keep some tables' rows only (plugins without their routes).
func loadFixture(t testing.TB, dsn, state string, extra ...string) {
	t.Helper()
	rel, ok := fixtureStates[state]
	if !ok {
		t.Fatalf("unknown fixture state %q", state)
	}
	dir := fixtureDir(t, rel)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	schema, err := os.ReadFile(filepath.Join(dir, "schema.sql"))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, line := range strings.Split(string(schema), "\n") {
		// psql meta-commands of this pg_dump version, and owners that may
		// not exist on the test server.
		if strings.HasPrefix(line, `\`) || strings.Contains(line, " OWNER TO ") {
			continue
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, b.String()); err != nil {
		t.Fatalf("loading %s/schema.sql: %v", rel, err)
	}
	if _, err := conn.Exec(ctx, "SET search_path = public; SET session_replication_role = replica"); err != nil {
		t.Fatal(err)
	}
	dirs := []string{dir}
	for _, e := range extra {
		dirs = append(dirs, fixtureDir(t, e))
	}
	for _, d := range dirs {
		files, _ := filepath.Glob(filepath.Join(d, "*.tsv"))
		for _, f := range files {
			loadTSV(t, ctx, conn, f)
		}
	}
}

// loadTSV inserts a recorded `SELECT *` dump: header row, tab-separated
// Postgres text values, empty field = NULL. Values go in as untyped
// literals so that Postgres applies each column's input function.
func loadTSV(t testing.TB, ctx context.Context, conn *pgx.Conn, file string) {
	t.Helper()
	table := strings.TrimSuffix(filepath.Base(file), ".tsv")
	fh, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	var cols []string
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "# table") {
			return
		}
		if cols == nil {
			cols = strings.Split(line, "\t")
			continue
		}
		vals := strings.Split(line, "\t")
		if len(vals) != len(cols) {
			t.Fatalf("%s: %d values for %d columns", file, len(vals), len(cols))
		}
		lits := make([]string, len(vals))
		for i, v := range vals {
			if v == "" {
				lits[i] = "NULL"
			} else {
				lits[i] = "'" + strings.ReplaceAll(v, "'", "''") + "'"
			}
		}
		qcols := make([]string, len(cols))
		for i, c := range cols {
			qcols[i] = pgx.Identifier{c}.Sanitize()
		}
		q := "INSERT INTO " + pgx.Identifier{table}.Sanitize() + " (" + strings.Join(qcols, ",") + ") VALUES (" + strings.Join(lits, ",") + ")"
		if _, err := conn.Exec(ctx, q, pgx.QueryExecModeSimpleProtocol); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
}
