package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

func TestPlanText(t *testing.T) {
	var out, errb bytes.Buffer
	if code := runPlan([]string{"--from", "0.13.1", "--to", "1.0.3"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, want := range []string{
		"hop1: 0.13.1 -> 0.14.1", "hop2: 0.14.1 -> 1.0.3",
		"hop1.preflight-current", "hop2.preflight-current", "hop2.preflight-plugins",
		"hop1.termination-on", "hop1.migrations-up", "hop2.migrations-up",
		"hop2.custom-plugins", "hop2.apis-plan", "hop2.apis-convert", "hop2.apis-delete",
		"hop1.traffic-switch", "hop2.traffic-shift", "hop1.decommission-old", "hop2.decommission-old",
		"Steps 6-11 form the hop1-outage group",
		"run `kong migrations up` of 0.14.1", "run `kong migrations up` of 1.0.3",
		"kong migrations finish (1.0.3) [idempotent, verified first after a restart]",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("plan output lacks %q", want)
		}
	}
	var finish string
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.Contains(line, "hop2.migrations-finish") {
			finish = line
		}
	}
	if !strings.Contains(finish, "irreversible") || !strings.Contains(finish, "2 distinct approvers, neither the requester") {
		t.Errorf("finish line %q", finish)
	}
}

func TestPlanJSON(t *testing.T) {
	var out, errb bytes.Buffer
	if code := runPlan([]string{"--from", "0.14.1", "--json"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var got struct {
		Target string
		Steps  []planStepJSON
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Target != "1.0.3" || len(got.Steps) == 0 || got.Steps[0].ID != "hop2.preflight-current" {
		t.Fatalf("plan %+v", got)
	}
	last := got.Steps[len(got.Steps)-1]
	if last.ID != "hop2.migrations-finish" || !last.Approval.Needed || last.Approval.Rule.Approvers != 2 || last.Approval.Rule.AllowRequester || !last.VerifyFirst {
		t.Errorf("last step %+v", last)
	}
}

func TestPlanErrors(t *testing.T) {
	cases := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"--from", "0.13.1", "--to", "0.15.0"}, 1, "unknown target version 0.15.0; supported targets: 0.14.1, 1.0.3"},
		{[]string{"--from", "0.12.0"}, 1, "0.13.x, 0.14.0 or 0.14.1"},
		{[]string{"--from", "1.0.3"}, 0, "nothing to do"},
		{[]string{}, 2, "usage: kongbot plan"},
		{[]string{"--from", "0.13.1", "extra"}, 2, "usage: kongbot plan"},
	}
	for _, c := range cases {
		var out, errb bytes.Buffer
		code := runPlan(c.args, &out, &errb)
		if code != c.code || !strings.Contains(out.String()+errb.String(), c.msg) {
			t.Errorf("%v: exit %d, output %q %q; want %d saying %q", c.args, code, out.String(), errb.String(), c.code, c.msg)
		}
	}
}

func TestPlanWithConfigRules(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/kongbot.yaml"
	// Only the fields plan reads matter here; Load does not check the rest.
	cfg := "approval_rules:\n  irreversible: {count: 3, exclude_requester: true}\n  high: {count: 1, exclude_requester: false}\n"
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := runPlan([]string{"--from", "0.14.1", "--config", path}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, want := range []string{"irreversible = 3 distinct approvers, neither the requester", "high = 1 approver;"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("plan with config lacks %q:\n%s", want, out.String())
		}
	}
	var errOut bytes.Buffer
	if code := runPlan([]string{"--from", "0.14.1", "--config", dir + "/missing.yaml"}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "reading config") {
		t.Errorf("missing config: exit %d, %q", code, errOut.String())
	}
}
