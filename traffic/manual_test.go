package traffic_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kongbot/kongbot/steps"
	"github.com/kongbot/kongbot/traffic"
)

// TestManualBackend: the bot asks people to move the weights, waits for
// "Mark done", and believes only what probes through the front show. The
// test plays the people, moving HAProxy's weights by hand.
func TestManualBackend(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	share := traffic.ShareProbe{URL: r.proc.FrontURL + "/test", OldVersion: "0.14.1", NewVersion: "1.0.3", Requests: 40}
	m, err := traffic.NewManual(traffic.ManualOptions{Where: "the HAProxy backend kong", Share: share})
	if err != nil {
		t.Fatal(err)
	}
	tr := newTraffic(t, &traffic.Gateway{
		Backend: m,
		Plans:   map[string]traffic.Plan{"hop2": traffic.GradualPlan(time.Second, []int{50, 100})},
		Gates:   traffic.Gates{Interval: 100 * time.Millisecond},
		Probes:  []traffic.Probe{{Name: "through new1", URL: r.new.nodes[0].srv.URL + "/test", WantStatus: 200}},
	})
	j := newJournal()
	out := &sink{t: t}
	shift := func() steps.Check {
		t.Helper()
		c, err := tr.Shift(ctx, "prod", "hop2", j, out)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	answer := func(c steps.Check, ch steps.Choice) {
		t.Helper()
		if c.Pause == nil {
			t.Fatalf("no pause to answer: %+v", c)
		}
		_ = j.Put(c.Pause.Key, string(ch))
	}

	c := shift()
	if c.Pause == nil || c.Pause.Kind != steps.PauseManual ||
		!strings.Contains(c.Pause.Message, "Set the HAProxy backend kong to send 50 % to old (0.14.1) and 50 % to new (1.0.3)") {
		t.Fatalf("want a manual move to 50 %%, got %+v", c)
	}
	if !slicesEqual(c.Pause.Choices, []steps.Choice{steps.ChoiceDone, steps.ChoiceRollBack, steps.ChoiceAbort}) {
		t.Fatalf("choices = %v", c.Pause.Choices)
	}

	// "Mark done" without doing it: the probes see no new cluster; ask again.
	answer(c, steps.ChoiceDone)
	c2 := shift()
	if c2.Pause == nil || c2.Pause.Kind != steps.PauseManual || c2.Pause.Key == c.Pause.Key ||
		!strings.Contains(c2.Pause.Message, "The probes do not see it yet: observed new share 0.0 %") {
		t.Fatalf("want a second manual pause after a false Mark done, got %+v", c2)
	}

	// Done for real.
	if _, err := r.hap.SetWeights(ctx, traffic.Split(50)); err != nil {
		t.Fatal(err)
	}
	answer(c2, steps.ChoiceDone)
	c = shift()
	if c.Pause == nil || c.Pause.Kind != steps.PauseManual || !strings.Contains(c.Pause.Message, "0 % to old (0.14.1) and 100 % to new (1.0.3)") {
		t.Fatalf("want the manual move to 100 %%, got %+v", c)
	}
	if out.count("stage 1 of 2 healthy") != 1 || !strings.Contains(strings.Join(out.all(), "\n"), "[probes]") {
		t.Fatalf("stage 1 not judged on probes: %q", out.all())
	}
	if _, err := r.hap.SetWeights(ctx, traffic.Split(100)); err != nil {
		t.Fatal(err)
	}
	answer(c, steps.ChoiceDone)
	c = shift()
	if !c.OK {
		t.Fatalf("shift not done: %+v", c)
	}
	next := ""
	for _, f := range c.Facts {
		if f.Name == "next" {
			next = f.Value
		}
	}
	if !strings.Contains(next, "Drain old (0.14.1)") {
		t.Fatalf("no drain instruction in %+v", c.Facts)
	}
	dc, err := tr.VerifyDecommissioned(ctx, "prod")
	if err != nil || !dc.OK {
		t.Fatalf("decommissioned: %+v, %v", dc, err)
	}
	if err := tr.RollBack(ctx, "prod", j, out); !errors.Is(err, traffic.ErrManual) || !strings.Contains(err.Error(), "100 % to old (0.14.1)") {
		t.Fatalf("RollBack with the manual backend: %v", err)
	}
}

func TestShareProbeVerify(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	share := traffic.ShareProbe{URL: r.proc.FrontURL + "/", OldVersion: "0.14.1", NewVersion: "1.0.3", Requests: 40}
	for _, tt := range []struct {
		set, want int
		ok        bool
	}{
		{0, 0, true}, {0, 5, true}, {0, 50, false}, {50, 50, true}, {50, 0, false}, {50, 100, false}, {100, 100, true}, {100, 95, true}, {100, 50, false},
	} {
		if _, err := r.hap.SetWeights(ctx, traffic.Split(tt.set)); err != nil {
			t.Fatal(err)
		}
		c, err := share.Verify(ctx, traffic.Split(tt.want))
		if err != nil {
			t.Fatal(err)
		}
		if c.OK != tt.ok {
			t.Errorf("set %d, want %d: OK = %v, %v %v", tt.set, tt.want, c.OK, c.Missing, c.Facts)
		}
	}
	if _, err := (traffic.ShareProbe{URL: "http://x", OldVersion: "1", NewVersion: "1"}).Verify(ctx, traffic.Split(0)); err == nil {
		t.Fatal("same versions accepted")
	}
	if _, err := traffic.NewManual(traffic.ManualOptions{}); err == nil {
		t.Fatal("manual backend without share probe accepted")
	}
}
