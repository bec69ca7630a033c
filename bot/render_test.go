package bot

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kongbot/kongbot/steps"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// goldenRun walks a hop-1 run through the engine to a failed
// `migrations up`, keeping the run at each stage of interest.
func goldenRun(t *testing.T) map[string]steps.Run {
	t.Helper()
	at := time.Date(2026, 11, 28, 22, 0, 0, 0, time.UTC)
	inv := steps.Inventory{Gateway: "prod", Schema: steps.Schema013, Nodes: []steps.Node{
		{Name: "kong-old-1", Generation: "0.13.1", Reachable: true, Version: "0.13.1", DatabaseOK: true}}}
	plan, err := steps.PlanPath("0.13.1", "0.14.1")
	if err != nil {
		t.Fatal(err)
	}
	run := steps.NewRun("r7", "prod", "U0ONCALL01", "C0KONGUPG1", plan, inv, false, at)
	rules := steps.DefaultRules()
	out := map[string]steps.Run{}
	send := func(ev steps.Event) {
		t.Helper()
		at = at.Add(90 * time.Second)
		next, _, err := steps.Transition(run, ev, rules, at)
		if err != nil {
			t.Fatalf("%s: %v", ev.Kind, err)
		}
		run = next
	}
	send(steps.Event{Kind: steps.EvStart, User: "U0ONCALL01"})
	for range 3 {
		send(steps.Event{Kind: steps.EvStepSucceeded, Step: run.Current, Attempt: 1,
			Check: &steps.Check{OK: true, Facts: []steps.Fact{{Name: "nodes", Value: "1"}}}})
	}
	out["manual"] = run
	send(steps.Event{Kind: steps.EvMarkDone, Step: run.Current, User: "U0ONCALL01"})
	send(steps.Event{Kind: steps.EvVerified, Step: run.Current, Check: &steps.Check{OK: true}})
	send(steps.Event{Kind: steps.EvStepSucceeded, Step: run.Current, Attempt: 1, Check: &steps.Check{OK: true}})
	out["awaiting"] = run
	send(steps.Event{Kind: steps.EvApprove, Step: run.Current, User: "U0LEAD0001", Eligible: true, Fingerprint: run.Fingerprint})
	send(steps.Event{Kind: steps.EvStepSucceeded, Step: run.Current, Attempt: 1, Check: &steps.Check{OK: true}})
	send(steps.Event{Kind: steps.EvStepFailed, Step: run.Current, Attempt: 1, Err: "kong migrations up (0.14.1) exited 1"})
	out["failed"] = run
	return out
}

// TestRenderGolden pins the Block Kit of the run's messages; run with
// -update to accept a deliberate change.
func TestRenderGolden(t *testing.T) {
	runs := goldenRun(t)
	plan, _ := steps.PlanPath("0.13.1", "0.14.1")
	v := func(run steps.Run, key string) *view {
		return &view{run: run, plan: plan, labels: steps.Labels{Gateway: "prod", Datastore: "kong@db-1"},
			rules: steps.DefaultRules(), approvers: "<!subteam^S0KONGLEAD|@kong-leads>", key: key}
	}
	cases := []struct {
		name string
		out  rendered
	}{
		{"summary-awaiting", v(runs["awaiting"], "summary").summary()},
		{"step-manual", v(runs["manual"], "step/hop1.provision-new-nodes").step("hop1.provision-new-nodes")},
		{"approval-waiting", v(runs["awaiting"], "approval/hop1.termination-on").approval("hop1.termination-on")},
		{"approval-approved", v(runs["failed"], "approval/hop1.termination-on").approval("hop1.termination-on")},
		{"step-failed", v(runs["failed"], "step/hop1.migrations-up").step("hop1.migrations-up")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := json.MarshalIndent(map[string]any{"text": c.out.text, "blocks": c.out.blocks, "broadcast": c.out.broadcast}, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", c.name+".json")
			if *update {
				if err := os.WriteFile(path, append(got, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if string(want) != string(got)+"\n" {
				t.Errorf("%s changed; diff it against %s, or rerun with -update if deliberate:\n%s", c.name, path, got)
			}
		})
	}
}
