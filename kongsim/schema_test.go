package kongsim

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

var (
	createTableRe = regexp.MustCompile(`^CREATE TABLE public\.(\w+) \($`)
	columnRe      = regexp.MustCompile(`^    "?(\w+)"? (.+?)(?: DEFAULT .*| NOT NULL.*)?,?$`)
)

// dumpColumns reads table → column → type from a recorded pg_dump.
func dumpColumns(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	table := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if m := createTableRe.FindStringSubmatch(line); m != nil {
			table = m[1]
			continue
		}
		if table == "" {
			continue
		}
		if strings.HasPrefix(line, ")") {
			table = ""
			continue
		}
		if strings.HasPrefix(strings.TrimSpace(line), "CONSTRAINT ") {
			continue
		}
		if m := columnRe.FindStringSubmatch(line); m != nil {
			out[table+"."+m[1]] = strings.TrimSuffix(m[2], ",")
		}
	}
	return out
}

func (k *testKong) dbColumns() map[string]string {
	k.t.Helper()
	pool, err := openPool(k.ctx, k.dsn)
	if err != nil {
		k.t.Fatal(err)
	}
	defer pool.Close()
	rows, err := pool.Query(k.ctx, `SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod)
		FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'public' AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped`)
	if err != nil {
		k.t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var tbl, col, typ string
		if err := rows.Scan(&tbl, &col, &typ); err != nil {
			k.t.Fatal(err)
		}
		out[tbl+"."+col] = typ
	}
	return out
}

func diffColumns(want, got map[string]string) []string {
	var d []string
	for c, typ := range want {
		if g, ok := got[c]; !ok {
			d = append(d, "missing column "+c+" "+typ)
		} else if g != typ {
			d = append(d, "column "+c+" is "+g+", want "+typ)
		}
	}
	for c, typ := range got {
		if _, ok := want[c]; !ok {
			d = append(d, "unexpected column "+c+" "+typ)
		}
	}
	sort.Strings(d)
	return d
}

// TestSchemaMatchesRecordedDumps checks every table and column type kongsim
// creates against the recorded pg_dump of each point of the upgrade.
func TestSchemaMatchesRecordedDumps(t *testing.T) {
	dir := fixturesDir(t)
	k := newTestKong(t)
	steps := []struct {
		v    Version
		cmd  string
		dump string
	}{
		{V0131, "up", "stage1-0.13.1-install/db/schema.sql"},
		{V0141, "up", "stage3-0.14.1-upgrade/db/schema.sql"},
		{V103, "up", "stage4-1.0.3-upgrade/db/after-up/schema.sql"},
		{V103, "finish", "stage4-1.0.3-upgrade/db/after-finish/schema.sql"},
	}
	for _, s := range steps {
		if code, out, errOut := k.migrate(s.v, s.cmd, nil); code != 0 {
			t.Fatalf("%s %s: %d %s %s", s.v, s.cmd, code, out, errOut)
		}
		want := dumpColumns(t, filepath.Join(dir, s.dump))
		if len(want) < 100 {
			t.Fatalf("parsed only %d columns from %s", len(want), s.dump)
		}
		if d := diffColumns(want, k.dbColumns()); len(d) > 0 {
			t.Errorf("after %s %s, versus %s:\n  %s", s.v, s.cmd, s.dump, strings.Join(d, "\n  "))
		}
	}
	fresh := newTestKong(t)
	if code, _, errOut := fresh.migrate(V103, "bootstrap", nil); code != 0 {
		t.Fatalf("bootstrap: %s", errOut)
	}
	if d := diffColumns(dumpColumns(t, filepath.Join(dir, "stage5-1.0.3-bootstrap/db/schema.sql")), fresh.dbColumns()); len(d) > 0 {
		t.Errorf("after 1.0.3 bootstrap:\n  %s", strings.Join(d, "\n  "))
	}
}

// tsvRows reads a recorded `SELECT *` dump as header → value maps; an empty
// field is NULL.
func tsvRows(t *testing.T, path string) []map[string]*string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	head := strings.Split(lines[0], "\t")
	var out []map[string]*string
	for _, l := range lines[1:] {
		row := map[string]*string{}
		for i, f := range strings.Split(l, "\t") {
			if f != "" {
				v := f
				row[head[i]] = &v
			} else {
				row[head[i]] = nil
			}
		}
		out = append(out, row)
	}
	return out
}

func (k *testKong) schemaMeta() map[string]string {
	k.t.Helper()
	pool, err := openPool(k.ctx, k.dsn)
	if err != nil {
		k.t.Fatal(err)
	}
	defer pool.Close()
	rows, err := pool.Query(k.ctx, `SELECT subsystem, coalesce(last_executed, 'NULL'), coalesce(executed::text, 'NULL'),
		coalesce(pending::text, 'NULL') FROM schema_meta`)
	if err != nil {
		k.t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var sub, last, ex, pe string
		if err := rows.Scan(&sub, &last, &ex, &pe); err != nil {
			k.t.Fatal(err)
		}
		out[sub] = last + " " + ex + " " + pe
	}
	return out
}

func recordedMeta(t *testing.T, path string) map[string]string {
	out := map[string]string{}
	for _, r := range tsvRows(t, path) {
		val := func(k string) string {
			if r[k] == nil {
				return "NULL"
			}
			return *r[k]
		}
		out[val("subsystem")] = val("last_executed") + " " + val("executed") + " " + val("pending")
	}
	return out
}

// TestSchemaMetaMatchesRecording checks the 1.0 bookkeeping rows, NULL
// versus '{}' pending included, after up, finish and a fresh bootstrap.
func TestSchemaMetaMatchesRecording(t *testing.T) {
	dir := fixturesDir(t)
	k := newTestKong(t)
	k.mustMigrate(V0141, "up", "67 migrations ran")
	for _, s := range []struct{ cmd, tsv string }{
		{"up", "stage4-1.0.3-upgrade/db/after-up/schema_meta.tsv"},
		{"finish", "stage4-1.0.3-upgrade/db/after-finish/schema_meta.tsv"},
	} {
		if code, _, errOut := k.migrate(V103, s.cmd, nil); code != 0 {
			t.Fatalf("%s: %s", s.cmd, errOut)
		}
		want, got := recordedMeta(t, filepath.Join(dir, s.tsv)), k.schemaMeta()
		if mustJSON(want) != mustJSON(got) {
			t.Errorf("schema_meta after %s:\n got  %v\n want %v", s.cmd, got, want)
		}
	}
	fresh := newTestKong(t)
	fresh.mustMigrate(V103, "bootstrap", "22 executed")
	if want, got := recordedMeta(t, filepath.Join(dir, "stage5-1.0.3-bootstrap/db/schema_meta.tsv")), fresh.schemaMeta(); mustJSON(want) != mustJSON(got) {
		t.Errorf("schema_meta after bootstrap:\n got  %v\n want %v", got, want)
	}
}
