package steps

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
)

// kvJournal is a bare in-memory Journal.
type kvJournal map[string]string

func (j kvJournal) Get(k string) (string, bool) { v, ok := j[k]; return v, ok }
func (j kvJournal) Put(k, v string) error       { j[k] = v; return nil }
func (j kvJournal) PutMany(kv map[string]string) error {
	for k, v := range kv {
		j[k] = v
	}
	return nil
}
func (j kvJournal) Keys(prefix string) []string {
	var out []string
	for k := range j {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

func TestSnapshotStepVerifiesTheArchive(t *testing.T) {
	const key = jHop2Snapshot
	const archive = "/var/backups/before-1.0.3-migrations.dump"
	step := snapshotStep("hop2", key, "1.0.3")
	tests := []struct {
		name string
		// change breaks something after a successful Do.
		change  func(g *fakeGateway, j kvJournal)
		ok      bool
		missing string
		fact    string
	}{
		{name: "the archive reads back with the recorded counts", ok: true, fact: "rows=19"},
		{name: "the archive is gone",
			change:  func(g *fakeGateway, j kvJournal) { delete(g.snapshots, archive) },
			missing: "snapshot archive " + archive + " does not exist"},
		{name: "the archive is damaged",
			change: func(g *fakeGateway, j kvJournal) {
				g.failNext = map[string]error{"verify snapshot": errors.New("snapshot archive " + archive + " is truncated: it ends inside data/apis.copy")}
			},
			missing: "is truncated: it ends inside data/apis.copy"},
		{name: "another archive at the path: a count differs",
			change:  func(g *fakeGateway, j kvJournal) { g.snapshots[archive]["apis"] = 5 },
			missing: "table apis has 5 rows in the archive, 2 when the snapshot was taken"},
		{name: "another archive at the path: a table more",
			change:  func(g *fakeGateway, j kvJournal) { g.snapshots[archive]["ttls"] = 0 },
			missing: "table ttls (0 rows) is in the archive but was not when the snapshot was taken"},
		{name: "another archive at the path: a table less",
			change:  func(g *fakeGateway, j kvJournal) { delete(g.snapshots[archive], "services") },
			missing: "table services (0 rows when the snapshot was taken) is not in the archive"},
		{name: "recorded counts unreadable",
			change:  func(g *fakeGateway, j kvJournal) { j[key+snapshotCountsSuffix] = "{" },
			missing: "do not parse"},
		{name: "recorded by an earlier kongbot: only the path",
			change: func(g *fakeGateway, j kvJournal) { delete(j, key+snapshotCountsSuffix) },
			ok:     true, fact: "recorded counts=none"},
		{name: "nothing recorded",
			change:  func(g *fakeGateway, j kvJournal) { delete(j, key) },
			missing: "no snapshot recorded"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			g := newFakeGateway("0.14.1")
			j := kvJournal{}
			env := &Env{Gateway: "prod", Kong: g, Journal: j}
			if err := step.Do(ctx, env); err != nil {
				t.Fatal(err)
			}
			if j[key] != archive || j[key+snapshotCountsSuffix] != `{"apis":2,"schema_migrations":17,"services":0}` {
				t.Fatalf("journal %v", j)
			}
			if tc.change != nil {
				tc.change(g, j)
			}
			c, err := step.Verify(ctx, env)
			if err != nil {
				t.Fatal(err)
			}
			missing := strings.Join(c.Missing, "; ")
			if c.OK != tc.ok || (tc.missing != "" && !strings.Contains(missing, tc.missing)) {
				t.Fatalf("check ok=%v missing %q; want ok=%v mentioning %q", c.OK, missing, tc.ok, tc.missing)
			}
			if tc.fact != "" {
				var facts []string
				for _, f := range c.Facts {
					facts = append(facts, f.Name+"="+f.Value)
				}
				if !slices.ContainsFunc(facts, func(f string) bool { return strings.HasPrefix(f, tc.fact) }) {
					t.Errorf("facts %q, want %q", facts, tc.fact)
				}
			}
		})
	}
}

func TestSnapshotStepDoChecksTheNewArchive(t *testing.T) {
	ctx := context.Background()
	g := newFakeGateway("0.13.1")
	g.failNext = map[string]error{"verify snapshot": errors.New("snapshot archive /x is corrupted: the data does not match the gzip checksum")}
	j := kvJournal{}
	step := snapshotStep("hop1", jHop1Snapshot, "0.14.1")
	err := step.Do(ctx, &Env{Gateway: "prod", Kong: g, Journal: j})
	if err == nil || !strings.Contains(err.Error(), "the new snapshot does not read back: snapshot archive /x is corrupted") {
		t.Fatalf("Do: %v", err)
	}
	if len(j) != 0 {
		t.Errorf("a snapshot that does not read back was recorded: %v", j)
	}
}

// A cancelled check says nothing about the archive: it is an error, not a
// "not done" that would take another snapshot.
func TestSnapshotStepVerifyCancelled(t *testing.T) {
	g := newFakeGateway("0.13.1")
	j := kvJournal{}
	step := snapshotStep("hop1", jHop1Snapshot, "0.14.1")
	if err := step.Do(context.Background(), &Env{Gateway: "prod", Kong: g, Journal: j}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	g.failNext = map[string]error{"verify snapshot": context.Canceled}
	if _, err := step.Verify(ctx, &Env{Gateway: "prod", Kong: g, Journal: j}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Verify with a cancelled context: %v", err)
	}
}
