package demo

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kongbot/kongbot/localslack"
	"github.com/kongbot/kongbot/steps"
)

// TestRehearsal is the seed's demo path end to end, driven through
// localslack as people would: check, start, lead approvals, both hops with
// the demo's own node provisioning, under steady traffic, then the figures.
//
// It runs twice: with HAProxy moved through its runtime API, and with the
// manual traffic backend (as when HAProxy is not installed), where the
// demo's front proxy is moved by the provisioner following the bot's
// instructions and a lead presses Mark done.
func TestRehearsal(t *testing.T) {
	for _, tc := range []struct {
		name   string
		manual bool
	}{{"haproxy", false}, {"manual", true}} {
		t.Run(tc.name, func(t *testing.T) { rehearse(t, tc.manual) })
	}
}

func rehearse(t *testing.T, manual bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	w := newWorld(t, ctx, 40, 2*time.Second, manual)
	began := time.Now()

	if err := w.env.Smoke(ctx, w.env.FrontURL); err != nil {
		t.Fatalf("before the run: %v", err)
	}
	id := w.startRun()
	// The check's answer comes through response_url after the ack.
	sawCheck := func() bool {
		for _, e := range w.env.Slack.Ephemerals(localslack.OnCallID) {
			if strings.Contains(e.Text, "*Gateway demo* · schema 0.13") && strings.Contains(e.Text, "kong-013-2 (0.13.1 generation): :white_check_mark: 0.13.1") {
				return true
			}
		}
		return false
	}
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	if err := w.env.Slack.WaitFor(wctx, sawCheck); err != nil {
		t.Errorf("/kong check demo did not show the 0.13.1 gateway: %v", err)
	}
	wcancel()

	hop1Smoked := false
	r := w.drive(id, func(r steps.Run, ok bool) bool {
		if ok && !hop1Smoked && strings.HasPrefix(r.Current, "hop2.") {
			hop1Smoked = true
			if err := w.env.Smoke(ctx, w.env.FrontURL); err != nil {
				t.Errorf("after hop 1: %v", err)
			}
		}
		return false
	})
	if r.Status != steps.RunSucceeded {
		t.Fatalf("run ended %s at %s", r.Status, r.Current)
	}
	if err := w.env.Smoke(ctx, w.env.FrontURL); err != nil {
		t.Errorf("after hop 2: %v", err)
	}
	for _, n := range w.env.Nodes(V10) {
		if err := w.env.Smoke(ctx, "http://"+n.ProxyAddr); err != nil {
			t.Errorf("after hop 2 through %s: %v", n.Name, err)
		}
	}
	f := checkRun(t, w, id, r, began)
	t.Logf("rehearsal figures: %s", f)
	for _, s := range r.Steps {
		t.Logf("%-28s %-10s %s", s.ID, s.Status, s.EndedAt.Sub(s.StartedAt).Round(time.Millisecond))
	}
}
