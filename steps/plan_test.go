package steps

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestPlanPath(t *testing.T) {
	cases := []struct {
		from, to string
		hops     []string
		wantErr  error
		wantMsg  string
	}{
		{from: "0.13.0", to: "1.0.3", hops: []string{"hop1", "hop2"}},
		{from: "0.13.1", to: "", hops: []string{"hop1", "hop2"}},
		{from: "0.13.1", to: "0.14.1", hops: []string{"hop1"}},
		{from: "0.14.0", to: "1.0.3", hops: []string{"hop0", "hop2"}},
		{from: "0.14.0", to: "0.14.1", hops: []string{"hop0"}},
		{from: "0.14.1", to: "1.0.3", hops: []string{"hop2"}},
		{from: "0.14.1", to: "0.14.1", wantErr: ErrNothingToDo, wantMsg: "already runs 0.14.1"},
		{from: "1.0.0", to: "1.0.3", wantErr: ErrNothingToDo, wantMsg: "already runs 1.0.0"},
		{from: "1.0.3", to: "1.0.3", wantErr: ErrNothingToDo},
		{from: "1.0.3", to: "0.14.1", wantErr: ErrUnsupportedPath, wantMsg: "downgrading"},
		{from: "0.12.2", to: "1.0.3", wantErr: ErrUnsupportedPath, wantMsg: "0.13.x, 0.14.0 or 0.14.1"},
		{from: "0.14.2", to: "1.0.3", wantErr: ErrUnsupportedPath, wantMsg: "0.13.x, 0.14.0 or 0.14.1"},
		{from: "1.1.0", to: "1.0.3", wantErr: ErrUnsupportedPath},
		{from: "2.8.1", to: "1.0.3", wantErr: ErrUnsupportedPath},
		{from: "0.13", to: "1.0.3", wantErr: ErrUnsupportedPath, wantMsg: "not major.minor.patch"},
		{from: "", to: "1.0.3", wantErr: ErrUnsupportedPath},
		{from: "0.13.01", to: "1.0.3", wantErr: ErrUnsupportedPath},
		{from: "0.13.1", to: "0.15.0", wantErr: ErrUnsupportedPath, wantMsg: "unknown target version 0.15.0; supported targets: 0.14.1, 1.0.3"},
	}
	for _, c := range cases {
		t.Run(c.from+"->"+c.to, func(t *testing.T) {
			p, err := PlanPath(c.from, c.to)
			if c.wantErr != nil {
				if !errors.Is(err, c.wantErr) || !strings.Contains(err.Error(), c.wantMsg) {
					t.Fatalf("err %v, want %v saying %q", err, c.wantErr, c.wantMsg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var hops []string
			for _, h := range p.Hops {
				hops = append(hops, h.Name)
			}
			if !reflect.DeepEqual(hops, c.hops) {
				t.Errorf("hops %v, want %v", hops, c.hops)
			}
		})
	}
}

func TestPlansAreWellFormed(t *testing.T) {
	for _, c := range []struct{ from, to string }{{"0.13.1", "1.0.3"}, {"0.14.0", "1.0.3"}, {"0.14.1", "1.0.3"}} {
		p, err := PlanPath(c.from, c.to)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, s := range p.Steps() {
			if seen[s.ID] {
				t.Errorf("%s: duplicate ID", s.ID)
			}
			seen[s.ID] = true
			if !strings.HasPrefix(s.ID, s.Hop+".") || s.Title == "" || s.Runbook == "" || s.Describe == nil || s.Verify == nil {
				t.Errorf("%s: incomplete step %+v", s.ID, s)
			}
			if (s.Kind == KindAction || s.Kind == KindCutover) != (s.Do != nil) && s.Kind != KindCheck {
				t.Errorf("%s: kind %s with Do=%v", s.ID, s.Kind, s.Do != nil)
			}
			if s.Kind == KindManual && (s.Do != nil || s.Gate) {
				t.Errorf("%s: a manual step neither runs nor is approved", s.ID)
			}
			if s.Risk == RiskIrreversible && (!s.Gate || s.Group != "") {
				t.Errorf("%s: irreversible steps are approved alone", s.ID)
			}
			if strings.Contains(s.ID, "migrations-up") {
				if i := slices.IndexFunc(p.Steps(), func(x Step) bool { return x.ID == s.ID }); !slices.ContainsFunc(p.Steps()[:i], func(x Step) bool { return x.ID == s.Hop+".snapshot" }) {
					t.Errorf("%s: no snapshot before it", s.ID)
				}
			}
		}
	}
	p, _ := PlanPath("0.13.1", "1.0.3")
	var group []string
	for _, s := range p.Steps() {
		if s.Group == "hop1-outage" {
			group = append(group, s.ID)
		}
	}
	want := []string{"hop1.termination-on", "hop1.migrations-up", "hop1.start-new-cluster", "hop1.traffic-switch", "hop1.termination-off", "hop1.smoke"}
	if !reflect.DeepEqual(group, want) {
		t.Errorf("outage group %v, want %v", group, want)
	}
	if risk, gated := p.ApprovalRisk("hop1.smoke"); risk != RiskHigh || !gated {
		t.Errorf("group approval risk %s %v, want high", risk, gated)
	}
	var irreversible []string
	for _, s := range p.Steps() {
		if s.Risk == RiskIrreversible {
			irreversible = append(irreversible, s.ID)
		}
	}
	if !reflect.DeepEqual(irreversible, []string{"hop2.apis-delete", "hop2.migrations-finish"}) {
		t.Errorf("irreversible steps %v", irreversible)
	}
	if last := p.Steps()[len(p.Steps())-1]; last.ID != "hop2.migrations-finish" {
		t.Errorf("last step %s, want hop2.migrations-finish", last.ID)
	}
	s, _ := p.Step("hop1.migrations-up")
	if d := s.Description(Labels{Gateway: "prod", Datastore: "kong@db-1"}); d != "run `kong migrations up` of 0.14.1 against datastore kong@db-1, stream its output here, then check by SQL that the schema is 0.14" {
		t.Errorf("description %q", d)
	}
}

func TestFingerprint(t *testing.T) {
	p, _ := PlanPath("0.13.1", "1.0.3")
	inv := Inventory{Gateway: "prod", Schema: Schema013, ReadAt: time.Unix(1, 0),
		Nodes: []Node{
			{Name: "a", Generation: "0.13.1", Reachable: true, Version: "0.13.1", Available: []string{"jwt", "acl"}},
			{Name: "b", Generation: "0.14.1", Error: "connection refused"},
		},
		Counts: Counts{APIs: 2, Plugins: map[string]int{"okta-auth": 1, "key-auth": 3}}}
	base := Fingerprint(p, inv)
	if len(base) != 32 {
		t.Errorf("fingerprint %q", base)
	}
	same := inv
	same.ReadAt = time.Unix(99, 0)
	same.Nodes = []Node{inv.Nodes[1], inv.Nodes[0]}
	same.Nodes[0].Error = "i/o timeout"
	same.Nodes[1].Available = []string{"acl", "jwt"}
	if got := Fingerprint(p, same); got != base {
		t.Error("volatile fields or order changed the fingerprint")
	}
	changes := map[string]func(*Inventory, *Plan){
		"schema": func(i *Inventory, _ *Plan) { i.Schema = Schema014 },
		"apis":   func(i *Inventory, _ *Plan) { i.Counts.APIs = 3 },
		"version": func(i *Inventory, _ *Plan) {
			i.Nodes = []Node{{Name: "a", Generation: "0.13.1", Reachable: true, Version: "0.13.0"}, inv.Nodes[1]}
		},
		"plugins": func(i *Inventory, _ *Plan) { i.Counts.Plugins = map[string]int{"okta-auth": 1} },
		"target":  func(_ *Inventory, p *Plan) { *p, _ = PlanPath("0.13.1", "0.14.1") },
		"risk": func(_ *Inventory, p *Plan) {
			p.Hops = slices.Clone(p.Hops)
			p.Hops[0].Steps = slices.Clone(p.Hops[0].Steps)
			p.Hops[0].Steps[0].Risk = RiskHigh
		},
	}
	for name, change := range changes {
		i2, p2 := inv, p
		change(&i2, &p2)
		if Fingerprint(p2, i2) == base {
			t.Errorf("changing %s kept the fingerprint", name)
		}
	}
}

func TestApprovalText(t *testing.T) {
	p, _ := PlanPath("0.13.1", "1.0.3")
	cases := map[string]string{
		"hop1.preflight-current":   "none (read-only check)",
		"hop1.termination-on":      "1 approver, not the requester, once for the whole hop1-outage group",
		"hop1.migrations-up":       "covered by the hop1-outage approval",
		"hop1.smoke":               "covered by the hop1-outage approval",
		"hop2.custom-plugins":      "1 approver, not the requester (confirms)",
		"hop2.apis-convert":        "1 approver",
		"hop2.migrations-finish":   "2 distinct approvers, neither the requester",
		"hop1.provision-new-nodes": "none; people do it and press Done, the bot verifies",
		"hop2.decommission-old":    "none; people do it, the bot verifies",
		"hop2.snapshot":            "none",
	}
	for id, want := range cases {
		if got := p.Approval(id, ApprovalRules{}).Text; got != want {
			t.Errorf("%s: %q, want %q", id, got, want)
		}
	}
	if a := p.Approval("hop2.migrations-finish", DefaultRules()); !a.Needed || a.Rule.Approvers != 2 {
		t.Errorf("finish approval %+v", a)
	}
}
