package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kongbot/kongbot/localslack"
	"github.com/kongbot/kongbot/steps"
	"github.com/kongbot/kongbot/store"
)

// figures are what the rehearsal measures.
type figures struct {
	Wall time.Duration
	// Outage is hop 1's request-termination on → termination removed (after
	// 100 % on 0.14.1), from the audit log; Migration the 0.14.1 `up`'s
	// own part of it (its execute → its success).
	Outage, Migration time.Duration
	// ClientOutage is the span of seconds in which the steady traffic got
	// 503 from request-termination.
	ClientOutage time.Duration
	// Cutover traffic: requests sent and failed during each traffic step,
	// and for hop 1 the failures other than request-termination's 503.
	Hop1Sent, Hop1Failed, Hop1Non503 int
	Hop2Sent, Hop2Failed             int
}

func (f figures) String() string {
	return fmt.Sprintf("wall %s; hop-1 outage %s (migration %s, without it %s; clients saw 503 for %s); hop-1 cutover %d requests, %d failed (%d not the planned 503); hop-2 cutover %d requests, %d failed",
		f.Wall.Round(time.Second), f.Outage.Round(time.Millisecond), f.Migration.Round(time.Millisecond), (f.Outage - f.Migration).Round(time.Millisecond),
		f.ClientOutage, f.Hop1Sent, f.Hop1Failed, f.Hop1Non503, f.Hop2Sent, f.Hop2Failed)
}

// auditSpan is the time from the first `execute` of step from to the last
// success (step-succeeded, or verified after a restart) of step to.
func auditSpan(entries []store.AuditEntry, from, to string) (time.Duration, bool) {
	var start, end time.Time
	for _, e := range entries {
		if e.Step == from && e.Kind == "execute" && start.IsZero() {
			start = e.At
		}
		if e.Step == to && (e.Kind == string(steps.EvStepSucceeded) || e.Kind == string(steps.EvVerified)) {
			end = e.At
		}
	}
	if start.IsZero() || end.IsZero() {
		return 0, false
	}
	return end.Sub(start), true
}

// checkRun asserts what the rehearsal must show once a run has succeeded
// and returns its figures.
func checkRun(t *testing.T, w *world, id string, r steps.Run, began time.Time) figures {
	t.Helper()
	f := figures{Wall: time.Since(began)}
	ctx := w.ctx
	rep, err := w.client.Audit(ctx, id, true)
	if err != nil {
		t.Fatalf("audit: %v", err)
	}
	if rep.RunChain == nil || !rep.RunChain.OK() || rep.Log == nil || !rep.Log.OK() {
		t.Errorf("audit chain does not verify: run %+v, log %+v", rep.RunChain, rep.Log)
	}

	// No audit entry lost: every step has its outcome in the log.
	done := map[string]bool{}
	for _, e := range rep.Entries {
		if e.Kind == string(steps.EvStepSucceeded) || e.Kind == string(steps.EvVerified) || e.Kind == string(steps.EvSkip) {
			done[e.Step] = true
		}
	}
	for _, s := range r.Steps {
		if s.Status != steps.StepSucceeded && s.Status != steps.StepSkipped {
			t.Errorf("step %s ended %s", s.ID, s.Status)
		}
		if s.Status == steps.StepSucceeded && !done[s.ID] {
			t.Errorf("step %s succeeded but the audit log has no outcome for it", s.ID)
		}
	}

	// The outage, from the audit log.
	var ok bool
	if f.Outage, ok = auditSpan(rep.Entries, "hop1.termination-on", "hop1.termination-off"); !ok {
		t.Errorf("audit log lacks the outage's ends")
	}
	if f.Migration, ok = auditSpan(rep.Entries, "hop1.migrations-up", "hop1.migrations-up"); !ok {
		t.Errorf("audit log lacks hop 1's migration")
	}
	first, last := time.Time{}, time.Time{}
	for _, s := range w.env.Load.Between(began, time.Now()) {
		if s.ByStatus[503] > 0 {
			if first.IsZero() {
				first = s.At
			}
			last = s.At
		}
	}
	if !first.IsZero() {
		f.ClientOutage = last.Sub(first) + time.Second
	}
	stepWindow := func(step string) []Second {
		s := stepState(r, step)
		from := s.StartedAt
		// After a restart a step's StartedAt is its last attempt's; the
		// audit log has the first.
		for _, e := range rep.Entries {
			if e.Step == step && e.Kind == "execute" {
				from = e.At
				break
			}
		}
		return w.env.Load.Between(from, s.EndedAt)
	}
	h1 := stepWindow("hop1.traffic-switch")
	f.Hop1Sent, _, f.Hop1Failed = Totals(h1)
	for _, s := range h1 {
		f.Hop1Non503 += s.Failed() - s.ByStatus[503]
	}
	f.Hop2Sent, _, f.Hop2Failed = Totals(stepWindow("hop2.traffic-shift"))
	if f.Hop2Sent == 0 || f.Hop1Sent == 0 {
		t.Errorf("no traffic during a cutover: hop 1 %d, hop 2 %d requests", f.Hop1Sent, f.Hop2Sent)
	}
	if f.Hop1Non503 > 0 || f.Hop2Failed > 0 {
		t.Errorf("cutover lost requests: hop 1 %d (besides the planned 503s), hop 2 %d", f.Hop1Non503, f.Hop2Failed)
	}

	// The bot delivers its messages after the run's transitions, in order
	// per run; the end of the run, broadcast to the channel, is the last.
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := w.env.Slack.WaitFor(wctx, func() bool {
		for _, m := range w.env.Slack.Channel(localslack.ChannelID) {
			if m.Broadcast && strings.Contains(m.BlockText(), "succeeded") {
				return true
			}
		}
		return false
	}); err != nil {
		t.Errorf("the run's end is not broadcast to the channel: %v", err)
	}

	// The okta-auth compatibility check: the 1.0.3 nodes without okta-auth
	// were refused and the bot's check of them failed; with it, it passed.
	var refused, checkFailed bool
	parent := ThreadOf(w.env.Slack, id)
	thread := w.env.Slack.Thread(parent)
	for _, m := range thread {
		if strings.Contains(m.Text, "okta-auth plugin is in use but not enabled") {
			refused = true
		}
	}
	for _, e := range rep.Entries {
		if e.Step == "hop2.provision-new-nodes" && e.Kind == string(steps.EvVerified) && strings.Contains(e.Text+string(e.Data), "kong-103-1 does not answer") {
			checkFailed = true
		}
	}
	if !refused || !checkFailed {
		t.Errorf("okta-auth check on 1.0.3: nodes refused without it %v, bot's check failed %v", refused, checkFailed)
	}
	for _, n := range w.env.Nodes(V10) {
		if !n.Running() || !n.Kong().PluginLoaded("okta-auth") {
			t.Errorf("1.0.3 node %s: running %v, want running with okta-auth", n.Name, n.Running())
		}
	}

	// The conversion: one Service and one Route carrying okta-auth, no API,
	// no request-termination left, never more than one at a time.
	admin := "http://" + w.env.Nodes(V10)[0].AdminAddr
	for path, want := range map[string]int{"/services": 1, "/routes": 1} {
		if n := countData(t, ctx, admin+path); n != want {
			t.Errorf("%s has %d entries, want %d", path, n, want)
		}
	}
	plugins := listData(t, ctx, admin+"/plugins")
	names := map[string]int{}
	for _, p := range plugins {
		names[fmt.Sprint(p["name"])]++
		if p["name"] == "okta-auth" && p["route"] == nil {
			t.Errorf("okta-auth is not on the route: %v", p)
		}
	}
	if names["okta-auth"] != 1 || names["request-termination"] != 0 || len(plugins) != 1 {
		t.Errorf("plugins after the run: %v, want okta-auth once", names)
	}
	w.dbMu.Lock()
	if w.maxTermination != 1 || w.maxServices != 1 || w.maxRoutes != 1 {
		t.Errorf("most at once during the run: %d request-termination plugins, %d services, %d routes; want 1 each", w.maxTermination, w.maxServices, w.maxRoutes)
	}
	w.dbMu.Unlock()

	// Each migration ran once.
	raw, err := os.ReadFile(w.migLog)
	if err != nil {
		t.Fatalf("migration log: %v", err)
	}
	runs := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		runs[l]++
	}
	for _, want := range []string{"up 0.14.1 0", "up 1.0.3 0", "finish 1.0.3 0"} {
		if runs[want] != 1 {
			t.Errorf("migration %q ran %d times, want 1 (all runs: %v)", want, runs[want], runs)
			for _, l := range strings.Split(w.bot.Logs(), "\n") {
				if strings.Contains(l, "migration") {
					t.Log(l)
				}
			}
		}
	}

	// The thread holds every decision and every step, each message once.
	var all strings.Builder
	perStep := map[string]int{}
	for _, m := range thread {
		txt := m.BlockText()
		all.WriteString(txt + "\n")
		for i := range r.Steps {
			if strings.Contains(txt, fmt.Sprintf("*Step %d/%d · ", i+1, len(r.Steps))) {
				perStep[r.Steps[i].ID]++
			}
		}
	}
	for _, s := range r.Steps {
		if perStep[s.ID] != 1 {
			t.Errorf("step %s has %d messages in the thread, want 1", s.ID, perStep[s.ID])
		}
	}
	for step, as := range r.Approvals {
		for _, a := range as {
			if !strings.Contains(all.String(), "<@"+a.User+">") {
				t.Errorf("approval of %s by %s is not in the thread", step, a.User)
			}
		}
	}
	decisions := 0
	for _, e := range rep.Entries {
		if !strings.HasPrefix(e.Actor, "U") {
			continue
		}
		switch e.Kind {
		case string(steps.EvApprove), string(steps.EvMarkDone), string(steps.EvAnswer), string(steps.EvRetry):
			decisions++
			if !strings.Contains(all.String(), "<@"+e.Actor+">") {
				t.Errorf("%s by %s on %s is not in the thread", e.Kind, e.Actor, e.Step)
			}
		}
	}
	if n := len(r.Approvals); n < 5 {
		t.Errorf("%d approvals recorded, want the outage group, custom plugins, conversion, deletion, migrations, cutover, finish", n)
	}
	t.Logf("%d decisions by people in the audit log, %d thread messages", decisions, len(thread))
	return f
}

func listData(t *testing.T, ctx context.Context, url string) []map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var body struct {
		Data []map[string]any `json:"data"`
	}
	if err := json.Unmarshal(raw, &body); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, raw)
	}
	return body.Data
}

func countData(t *testing.T, ctx context.Context, url string) int {
	return len(listData(t, ctx, url))
}
