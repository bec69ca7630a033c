package schedule

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kongbot/kongbot/steps"
)

func node(name, gen, version string, up, db bool) steps.Node {
	n := steps.Node{Name: name, Generation: steps.Generation(gen), Reachable: up, DatabaseOK: db, Version: version}
	if !up {
		n.Error, n.Version = "GET /status: connection refused", ""
	}
	return n
}

func TestHealthWatchPostsChangesOnce(t *testing.T) {
	e := newEnv(t, fri, func(o *Options) { o.HealthInterval = 30 * time.Second })
	e.runAt("r1", "hop2.migrations-up", fri)
	inv := func(nodes ...steps.Node) steps.Inventory {
		return steps.Inventory{Nodes: nodes, Schema: steps.Schema014}
	}
	old := node("kong-014-1", "0.14.1", "0.14.1", true, true)
	fresh := node("kong-10-1", "1.0.3", "", false, false) // not started yet

	steps := []struct {
		name  string
		after time.Duration
		inv   steps.Inventory
		err   error
		reads int // inspector calls so far
		posts []string
	}{
		{"the first read is the baseline", 0, inv(old, fresh), nil, 1, nil},
		{"before the interval nothing is read", 10 * time.Second, inv(old, fresh), nil, 1, nil},
		{"a node goes down", 30 * time.Second, inv(node("kong-014-1", "0.14.1", "", false, false), fresh), nil, 2,
			[]string{":rotating_light: Health watch (prod): node kong-014-1 (0.14.1) is down: GET /status: connection refused"}},
		{"still down: not posted again", 30 * time.Second, inv(node("kong-014-1", "0.14.1", "", false, false), fresh), nil, 3, nil},
		{"back, and the new node runs the wrong version", 30 * time.Second, inv(old, node("kong-10-1", "1.0.3", "1.0.2", true, true)), nil, 4,
			[]string{":rotating_light: Health watch (prod): node kong-10-1 answers 1.0.2, but its generation is 1.0.3 (version drift)",
				":white_check_mark: Health watch (prod): recovered: node kong-014-1 answers again",
				":white_check_mark: Health watch (prod): recovered: node kong-10-1 answers again"}},
		{"the database goes away", 30 * time.Second, steps.Inventory{Schema: steps.SchemaUnknown, Problems: []string{"datastore unreadable by the bot: dial tcp: refused"},
			Nodes: []steps.Node{node("kong-014-1", "0.14.1", "0.14.1", true, false), node("kong-10-1", "1.0.3", "1.0.3", true, false)}}, nil, 5,
			[]string{":rotating_light: Health watch (prod): node kong-014-1 (0.14.1) cannot reach the datastore",
				":rotating_light: Health watch (prod): node kong-10-1 (1.0.3) cannot reach the datastore",
				":rotating_light: Health watch (prod): the datastore is unreachable: datastore unreadable by the bot: dial tcp: refused",
				":white_check_mark: Health watch (prod): recovered: node kong-10-1 runs its generation's version again"}},
		{"the gateway cannot be read at all", 30 * time.Second, steps.Inventory{}, errors.New("context deadline exceeded"), 6,
			[]string{":rotating_light: Health watch (prod): the gateway cannot be read: context deadline exceeded",
				":white_check_mark: Health watch (prod): recovered: node kong-014-1 reaches the datastore again",
				":white_check_mark: Health watch (prod): recovered: node kong-10-1 reaches the datastore again",
				":white_check_mark: Health watch (prod): recovered: the datastore is readable again"}},
	}
	var posted []string
	for _, s := range steps {
		e.clock.Advance(s.after)
		e.insp.set(s.inv, s.err)
		e.tick()
		if e.insp.n() != s.reads {
			t.Fatalf("%s: %d reads, want %d", s.name, e.insp.n(), s.reads)
		}
		got := e.texts("r1")
		var added []string
		if len(got) > len(posted) {
			added = strings.Split(strings.TrimPrefix(got[len(got)-1], "CRUNS: "), "\n")
		}
		if len(got)-len(posted) > 1 || strings.Join(added, "\n") != strings.Join(s.posts, "\n") {
			t.Fatalf("%s: posted %q, want %q", s.name, added, s.posts)
		}
		posted = got
	}

	// A restart forgets when it last read, not what it saw: the next read
	// is at once, and the same condition is not posted again.
	e.restart()
	e.tick()
	if e.insp.n() != 7 || len(e.texts("r1")) != len(posted) {
		t.Fatalf("after restart: %d reads, %d posts (want 7, %d)", e.insp.n(), len(e.texts("r1")), len(posted))
	}
	e.clock.Advance(30 * time.Second)
	e.insp.set(inv(old, node("kong-10-1", "1.0.3", "1.0.3", true, true)), nil)
	e.tick()
	got := e.texts("r1")
	if len(got) != len(posted)+1 || got[len(got)-1] != "CRUNS: :white_check_mark: Health watch (prod): recovered: the gateway can be read again" {
		t.Fatalf("recovery after restart: %q", got[len(posted):])
	}
}
