package bot

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kongbot/kongbot/config"
	"github.com/kongbot/kongbot/schedule"
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

// ownPauseRules are the golden runs' rules with a change window (Saturdays
// 02:00-04:00 UTC) and approval requests that expire after two hours.
func ownPauseRules(t *testing.T) steps.ApprovalRules {
	t.Helper()
	w, err := schedule.NewWindows([]config.ChangeWindow{{Name: "saturday-night", Start: "0 2 * * 6", Duration: 2 * time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	rules := steps.DefaultRules()
	rules.ExpireAfter, rules.Windows = 2*time.Hour, w
	return rules
}

// goldenOwnPauses walks a hop-1 run to the outage group's approval with
// ownPauseRules, then to the engine's own pauses: the request expiring, and
// (approved after a re-request, outside the window) the wait for the
// window and its override.
func goldenOwnPauses(t *testing.T) map[string]steps.Run {
	t.Helper()
	at := time.Date(2026, 11, 28, 22, 0, 0, 0, time.UTC) // a Saturday, after its window
	inv := steps.Inventory{Gateway: "prod", Schema: steps.Schema013, Nodes: []steps.Node{
		{Name: "kong-old-1", Generation: "0.13.1", Reachable: true, Version: "0.13.1", DatabaseOK: true}}}
	plan, err := steps.PlanPath("0.13.1", "0.14.1")
	if err != nil {
		t.Fatal(err)
	}
	run := steps.NewRun("r8", "prod", "U0ONCALL01", "C0KONGUPG1", plan, inv, false, at)
	rules := ownPauseRules(t)
	out := map[string]steps.Run{}
	send := func(after time.Duration, ev steps.Event) {
		t.Helper()
		at = at.Add(after)
		next, _, err := steps.Transition(run, ev, rules, at)
		if err != nil {
			t.Fatalf("%s %s: %v", ev.Kind, ev.Answer, err)
		}
		run = next
	}
	send(time.Second, steps.Event{Kind: steps.EvStart, User: "U0ONCALL01"})
	for range 3 {
		send(time.Second, steps.Event{Kind: steps.EvStepSucceeded, Step: run.Current, Attempt: 1, Check: &steps.Check{OK: true}})
	}
	send(time.Second, steps.Event{Kind: steps.EvMarkDone, Step: run.Current, User: "U0ONCALL01"})
	send(time.Second, steps.Event{Kind: steps.EvVerified, Step: run.Current, Check: &steps.Check{OK: true}})
	send(time.Second, steps.Event{Kind: steps.EvStepSucceeded, Step: run.Current, Attempt: 1, Check: &steps.Check{OK: true}})
	if run.Status != steps.RunAwaitingApproval || run.Current != "hop1.termination-on" {
		t.Fatalf("run is %s at %s, want awaiting approval at hop1.termination-on", run.Status, run.Current)
	}
	asked, _ := run.Step(run.Current)
	send(asked.AskedAt.Add(rules.ExpireAfter).Sub(at), steps.Event{Kind: steps.EvTimer, Step: run.Current, Token: run.TimerToken})
	out["expired"] = run
	st, _ := run.Step(run.Current)
	send(time.Minute, steps.Event{Kind: steps.EvAnswer, Step: run.Current, User: "U0ONCALL01", Key: st.Check.Pause.Key, Answer: steps.ChoiceRerequest})
	send(time.Minute, steps.Event{Kind: steps.EvApprove, Step: run.Current, User: "U0LEAD0001", Eligible: true, Fingerprint: run.Fingerprint})
	out["window"] = run
	st, _ = run.Step(run.Current)
	if st.Check == nil || st.Check.Pause == nil || st.Check.Pause.Kind != steps.PauseWindow {
		t.Fatalf("approved outside the window, the step is %+v", st)
	}
	send(time.Minute, steps.Event{Kind: steps.EvAnswer, Step: run.Current, User: "U0LEAD0002", Eligible: true, Key: st.Check.Pause.Key, Answer: steps.ChoiceOverrideWindow})
	out["overridden"] = run
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
	own := goldenOwnPauses(t)
	ov := func(run steps.Run, key string) *view {
		x := v(run, key)
		x.rules = ownPauseRules(t)
		return x
	}
	const term = "hop1.termination-on"
	cases = append(cases, []struct {
		name string
		out  rendered
	}{
		{"approval-expired", ov(own["expired"], "approval/"+term).approval(term)},
		{"step-expired", ov(own["expired"], "step/"+term).step(term)},
		{"approval-rerequested", ov(own["window"], "approval/"+term).approval(term)},
		{"step-window", ov(own["window"], "step/"+term).step(term)},
		{"step-window-overridden", ov(own["overridden"], "step/"+term).step(term)},
		{"summary-window", ov(own["window"], "summary").summary()},
		{"reminder", ov(own["window"], "").notice(steps.Effect{Kind: steps.EffPost, Message: steps.MsgReminder, Step: term})},
	}...)
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
