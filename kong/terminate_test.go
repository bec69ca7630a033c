package kong

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kongbot/kongbot/internal/pgtest"
	"github.com/kongbot/kongbot/kongsim"
)

// routeFor creates a service → echo upstream and a route on path through
// the node's Admin API.
func routeFor(t *testing.T, admin, name, upstream, path string) {
	t.Helper()
	adminJSON(t, "POST", admin+"/services", map[string]any{"name": name, "url": upstream + "/" + name}, 201)
	adminJSON(t, "POST", admin+"/services/"+name+"/routes", map[string]any{"paths": []string{path}}, 201)
}

// mixedWindow is hop 2's mixed window: a 0.14.1 node with a Route on
// /svc14 (to an echo upstream), then the 1.0.3 `up` and a 1.0.3 node on the
// same datastore.
func mixedWindow(t *testing.T) (dsn string, old, n10 *kongsim.Node) {
	t.Helper()
	up := echoUpstream(t)
	dsn = pgtest.New(t)
	simMigrate(t, dsn, "0.14.1", "up")
	old = simNode(t, dsn, "0.14.1")
	routeFor(t, old.AdminURL(), "svc14", up.URL, "/svc14")
	simMigrate(t, dsn, "1.0.3", "up")
	return dsn, old, simNode(t, dsn, "1.0.3")
}

func TestTerminationMixedWindow(t *testing.T) {
	ctx := context.Background()
	dsn, old, n10 := mixedWindow(t)
	c := newClient(t, Gateway{DatastoreDSN: dsn,
		Generations: []GenerationNodes{
			{Version: "0.14.1", Nodes: []NodeOptions{simNodeOpts("old", old)}},
			{Version: "1.0.3", Nodes: []NodeOptions{simNodeOpts("new", n10)}},
		},
		Termination: Termination{Status: 503, Message: "Down for the upgrade/maintenance", Probes: []Probe{{Path: "/svc14"}}},
	})
	if chk, err := c.VerifyTermination(ctx, "gw", false); err != nil || !chk.OK {
		t.Fatalf("before: %+v %v", chk, err)
	}
	j := newJournal()
	id, err := c.EnableTermination(ctx, "gw", j)
	if err != nil {
		t.Fatal(err)
	}
	// Written through 0.14.1: as a 0.x old-DAO row, without the JSON nulls
	// a 1.0.3 write stores (which make 0.14.1 answer 500).
	p := adminJSON(t, "GET", old.AdminURL()+"/plugins/"+id, nil, 200)
	if cfg, _ := p["config"].(map[string]any); cfg["message"] != "Down for the upgrade/maintenance" {
		t.Fatalf("plugin %v", p)
	}
	chk, err := c.VerifyTermination(ctx, "gw", true)
	if err != nil || !chk.OK {
		t.Fatalf("enabled: %+v %v", chk, err)
	}
	if len(chk.Facts) < 2 {
		t.Errorf("facts %v", chk.Facts)
	}
	// Idempotent: the journal's plugin is found again.
	id2, err := c.EnableTermination(ctx, "gw", j)
	if err != nil || id2 != id {
		t.Fatalf("second enable: %s %v (first %s)", id2, err, id)
	}
	if n := countSQL(t, dsn, "SELECT count(*) FROM plugins WHERE name = 'request-termination'"); n != 1 {
		t.Fatalf("%d request-termination rows", n)
	}
	if n := countSQL(t, dsn, "SELECT count(*) FROM plugins"); n != 1 {
		t.Fatalf("the no-op plugin write left %d plugin rows", n)
	}
	if err := c.DisableTermination(ctx, "gw", j); err != nil {
		t.Fatal(err)
	}
	if chk, err := c.VerifyTermination(ctx, "gw", false); err != nil || !chk.OK {
		t.Fatalf("disabled: %+v %v", chk, err)
	}
	if err := c.DisableTermination(ctx, "gw", j); err != nil {
		t.Fatalf("second disable: %v", err)
	}
	// Later in the same run, an abort's emergency stop: a plugin of its
	// own (the removed one is not looked for), seen by every node.
	id3, err := c.EnableTermination(ctx, "gw", j)
	if err != nil || id3 == "" || id3 == id {
		t.Fatalf("emergency stop: %q %v (first %s)", id3, err, id)
	}
	if chk, err := c.VerifyTermination(ctx, "gw", true); err != nil || !chk.OK {
		t.Fatalf("emergency stop on: %+v %v", chk, err)
	}
	if err := c.DisableTermination(ctx, "gw", j); err != nil {
		t.Fatal(err)
	}
	if chk, err := c.VerifyTermination(ctx, "gw", false); err != nil || !chk.OK {
		t.Fatalf("emergency stop lifted: %+v %v", chk, err)
	}
}

func TestTerminationLeavesForeignPluginAlone(t *testing.T) {
	ctx := context.Background()
	up := echoUpstream(t)
	dsn := pgtest.New(t)
	simMigrate(t, dsn, "0.13.1", "up")
	n := simNode(t, dsn, "0.13.1")
	routeFor(t, n.AdminURL(), "svc13", up.URL, "/svc13")
	foreign := adminJSON(t, "POST", n.AdminURL()+"/plugins", map[string]any{"name": "request-termination",
		"config": map[string]any{"status_code": 503, "message": "someone else's"}}, 201)
	c := newClient(t, Gateway{DatastoreDSN: dsn,
		Generations: []GenerationNodes{{Version: "0.13.1", Nodes: []NodeOptions{simNodeOpts("a", n)}}},
		Termination: Termination{Probes: []Probe{{Path: "/svc13"}}},
	})
	j := newJournal()
	_, err := c.EnableTermination(ctx, "gw", j)
	if err == nil || !strings.Contains(err.Error(), "did not create") {
		t.Fatalf("enable over a foreign termination: %v", err)
	}
	// The journal holds no id of ours, so disabling removes nothing.
	j.m = map[string]string{}
	if err := c.DisableTermination(ctx, "gw", j); err != nil {
		t.Fatal(err)
	}
	adminJSON(t, "GET", n.AdminURL()+"/plugins/"+foreign["id"].(string), nil, 200)
	// A journal pointing at some other plugin is refused too.
	ka := adminJSON(t, "POST", n.AdminURL()+"/plugins", map[string]any{"name": "cors"}, 201)
	j.Put(jTermID, ka["id"].(string))
	if err := c.DisableTermination(ctx, "gw", j); err == nil || !strings.Contains(err.Error(), "not the global request-termination") {
		t.Fatalf("disable of a cors plugin: %v", err)
	}
}

// TestVerifyTerminationNamesTheMixedWindowTrap writes the termination the
// wrong way (through 1.0.3, as fixtures stage4 0.14.1/proxy/05 did) and
// checks that the verification catches what 0.14.1 answers.
func TestVerifyTerminationNamesTheMixedWindowTrap(t *testing.T) {
	ctx := context.Background()
	dsn, old, n10 := mixedWindow(t)
	adminJSON(t, "POST", n10.AdminURL()+"/plugins", map[string]any{"name": "request-termination",
		"config": map[string]any{"status_code": 503, "message": "Maintenance"}}, 201)
	gw := Gateway{DatastoreDSN: dsn, PropagationTimeout: 3 * time.Second,
		Generations: []GenerationNodes{
			{Version: "0.14.1", Nodes: []NodeOptions{simNodeOpts("old", old)}},
			{Version: "1.0.3", Nodes: []NodeOptions{simNodeOpts("new", n10)}},
		},
		Termination: Termination{Probes: []Probe{{Path: "/svc14"}}},
	}
	chk, err := newClient(t, gw).VerifyTermination(ctx, "gw", true)
	if err != nil {
		t.Fatal(err)
	}
	if chk.OK || !missingHas(chk, "via old (0.14.1): answers 500") || missingHas(chk, "via new") {
		t.Fatalf("check %+v", chk)
	}
}

// TestTerminationNudgeIsWhatMakes1xSeeIt shows the second trap: written
// through 0.14.1 only, 1.0.3 keeps proxying; the bot's no-op plugin write
// through 1.0.3 is what makes it terminate (fixtures stage4 1.0.3/proxy/09-11).
func TestTerminationNudgeIsWhatMakes1xSeeIt(t *testing.T) {
	ctx := context.Background()
	dsn, old, n10 := mixedWindow(t)
	// Warm 1.0.3's plugin list before the termination exists.
	if resp, err := http.Get(n10.ProxyURL() + "/svc14"); err == nil {
		resp.Body.Close()
	}
	term := Termination{Probes: []Probe{{Path: "/svc14"}}}
	oldOnly := newClient(t, Gateway{DatastoreDSN: dsn, Termination: term,
		Generations: []GenerationNodes{{Version: "0.14.1", Nodes: []NodeOptions{simNodeOpts("old", old)}}}})
	both := newClient(t, Gateway{DatastoreDSN: dsn, Termination: term, PropagationTimeout: 3 * time.Second,
		Generations: []GenerationNodes{
			{Version: "0.14.1", Nodes: []NodeOptions{simNodeOpts("old", old)}},
			{Version: "1.0.3", Nodes: []NodeOptions{simNodeOpts("new", n10)}},
		}})
	j := newJournal()
	id, err := oldOnly.EnableTermination(ctx, "gw", j) // knows no 1.x node: no nudge
	if err != nil {
		t.Fatal(err)
	}
	chk, err := both.VerifyTermination(ctx, "gw", true)
	if err != nil || chk.OK || !missingHas(chk, "via new (1.0.3): answers 200") {
		t.Fatalf("without the nudge: %+v %v", chk, err)
	}
	if id2, err := both.EnableTermination(ctx, "gw", j); err != nil || id2 != id {
		t.Fatalf("enable again: %s %v", id2, err)
	}
	if chk, err := both.VerifyTermination(ctx, "gw", true); err != nil || !chk.OK {
		t.Fatalf("after the nudge: %+v %v", chk, err)
	}
}
