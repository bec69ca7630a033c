package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	yaml "go.yaml.in/yaml/v3"

	"github.com/kongbot/kongbot/config"
	"github.com/kongbot/kongbot/localslack"
	"github.com/kongbot/kongbot/steps"
	"github.com/kongbot/kongbot/store"
)

// TestEmergencyStop aborts a real run (the kongbot process, driven through
// localslack) in hop 2's mixed window — 0.14.1 and 1.0.3 nodes serving from
// one datastore, traffic split between them — and takes the abort's
// emergency stop. Real Kong has two traps there (kong-fixtures README,
// "mixed clusters"): a global request-termination written through 1.0.3
// makes 0.14.1 answer 500, and one written through 0.14.1 is ignored by
// 1.0.3 until a plugin is written through a 1.0.3 Admin API. Every node's
// proxy of both versions is probed directly, and the datastore read by SQL,
// to show the stop took neither. Then the stop is lifted, every proxy serves
// again, and the run ends aborted with its lock released and its audit chain
// intact.
//
// It runs with HAProxy (the 25 % stage made to wait for a lead, so the run
// pauses with 5 % of traffic on 1.0.3) and with the manual traffic backend
// (the run pauses for a person to move the demo's front proxy, which the
// provisioner has done).
func TestEmergencyStop(t *testing.T) {
	for _, tc := range []struct {
		name   string
		manual bool
	}{{"haproxy", false}, {"manual", true}} {
		t.Run(tc.name, func(t *testing.T) { emergencyStop(t, tc.manual) })
	}
}

func emergencyStop(t *testing.T, manual bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	w := newWorld(t, ctx, 20, 2*time.Second, manual)
	began := time.Now()
	if !manual {
		// The demo's only approval stage is the first (5 %), before any
		// traffic has moved; a second one stops the run with traffic split.
		w.secondStageApproval()
	}
	cfg := w.bc.Config.Gateways[0].Termination

	id := w.startRun()
	var split map[string]int
	reached := false
	stopID := ""
	r := w.drive(id, func(r steps.Run, ok bool) bool {
		if !ok || reached || !inMixedWindow(w, r) {
			return false
		}
		reached = true
		split = w.env.Split(ctx)
		t.Logf("in hop 2's mixed window after %s: %s, traffic %v", time.Since(began).Round(time.Second), r.Status, split)
		stopID = w.emergencyStopScenario(id, r, cfg.Status, cfg.Message)
		// The run has ended: let drive read it again and return.
		return true
	})
	if !reached {
		t.Fatalf("the run ended %s at %s without pausing in hop 2's cutover with traffic on both versions", r.Status, r.Current)
	}
	if r.Status != steps.RunAborted {
		t.Fatalf("run ended %s at %s, want aborted", r.Status, r.Current)
	}
	w.checkEmergencyRun(id, r, stopID)
	t.Logf("emergency stop in the mixed window: wall %s, traffic at the abort %v", time.Since(began).Round(time.Second), split)
}

// inMixedWindow: the run waits for a person inside hop 2's cutover while
// both versions serve and take traffic.
func inMixedWindow(w *world, r steps.Run) bool {
	if r.Current != "hop2.traffic-shift" || r.Status != steps.RunPaused {
		return false
	}
	st := stepState(r, r.Current)
	if st == nil || st.Check == nil || st.Check.Pause == nil {
		return false
	}
	for _, v := range []string{V014, V10} {
		for _, n := range w.env.Nodes(v) {
			if !n.Running() {
				return false
			}
		}
	}
	split := w.env.Split(w.ctx)
	return split[V014] > 0 && split[V10] > 0
}

// secondStageApproval makes hop 2's second stage wait for a lead too: the
// bot is stopped, its config edited and read back, and the bot started
// again, before any run exists.
func (w *world) secondStageApproval() {
	t := w.t
	t.Helper()
	w.bot.stop(syscall.SIGTERM)
	raw, err := os.ReadFile(w.bc.Path)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("bot config: %v", err)
	}
	gws, _ := doc["gateways"].([]any)
	if len(gws) != 1 {
		t.Fatalf("bot config has %d gateways, want 1", len(gws))
	}
	gw, _ := gws[0].(map[string]any)
	tr, _ := gw["traffic"].(map[string]any)
	stages, _ := tr["stages"].([]any)
	if len(stages) < 3 {
		t.Fatalf("bot config has %d traffic stages, want at least 3", len(stages))
	}
	stage, _ := stages[1].(map[string]any)
	stage["approval"] = true
	out, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(w.bc.Path, out, 0o600); err != nil {
		t.Fatal(err)
	}
	loaded, err := config.Load(w.bc.Path)
	if err != nil {
		t.Fatalf("edited bot config: %v", err)
	}
	if st := loaded.Gateways[0].Traffic.Stages; !st[1].Approval || st[2].Approval {
		t.Fatalf("edited stages: %+v", st)
	}
	w.bot.start()
	if err := w.bot.waitReady(w.ctx); err != nil {
		t.Fatal(err)
	}
}

// emergencyStopScenario is what a lead does once the run is in the mixed
// window: abort, take the emergency stop, lift it, leave the rest. It
// returns the stop's plugin ID.
func (w *world) emergencyStopScenario(id string, r steps.Run, status int, message string) (stopID string) {
	t := w.t
	t.Helper()
	// Abort through the pause's own Abort button (a lead's answer; Slack
	// shows a confirm dialog first, which localslack takes as confirmed).
	if !w.click(localslack.Lead1ID, id, r.Current, "pause_abort") {
		t.Fatalf("no Abort button on the paused %s", r.Current)
	}
	r = w.waitRun(id, "the rollback offer", func(r steps.Run) bool {
		return r.Status == steps.RunAborting && r.RollbackRunning == "" && len(r.Rollbacks) > 0
	})
	want := []steps.RollbackAction{steps.RollbackTrafficBack, steps.RollbackEmergencyStop, steps.RollbackNone}
	if got := offered(r); !slices.Equal(got, want) {
		t.Fatalf("offered %v, want %v (note %q)", got, want, r.RollbackNote)
	}
	seen := map[string]bool{}
	offer := w.offer(id, seen, "rollback_traffic-back", "rollback_emergency-stop", "rollback_none")
	text := offer.BlockText()
	for _, s := range []string{"*Move traffic back*", "*Emergency stop: request-termination on*", "*Leave the gateway as it is*"} {
		if !strings.Contains(text, s) {
			t.Errorf("the rollback offer does not show %s: %s", s, oneLine(text))
		}
	}
	// An outage on purpose is one click away: Slack asks first.
	if b, _ := offer.Button("rollback_emergency-stop", ""); len(b.Confirm) == 0 {
		t.Errorf("the emergency stop button has no confirm dialog")
	}

	// Only leads choose a rollback: the on-call engineer's click changes
	// nothing.
	w.clickOn(offer, localslack.OnCallID, "rollback_emergency-stop")
	ectx, ecancel := context.WithTimeout(w.ctx, 30*time.Second)
	err := w.env.Slack.WaitFor(ectx, func() bool {
		return slices.ContainsFunc(w.env.Slack.Ephemerals(localslack.OnCallID), func(e localslack.Ephemeral) bool {
			return strings.Contains(e.Text, "can choose a rollback")
		})
	})
	ecancel()
	if err != nil {
		t.Fatalf("the on-call engineer's emergency stop was not refused: %v", err)
	}
	if r, _, _ := w.run(id); r.RollbackRunning != "" || len(r.RollbacksDone) != 0 || w.sqlInt("SELECT count(*) FROM plugins WHERE name = 'request-termination'") != 0 {
		t.Fatalf("after a refused click: running %q, done %v", r.RollbackRunning, r.RollbacksDone)
	}

	clicked := time.Now()
	w.clickOn(offer, localslack.Lead2ID, "rollback_emergency-stop")
	r = w.waitRun(id, "the emergency stop", func(r steps.Run) bool {
		return r.RollbackRunning == "" && slices.Contains(r.RollbacksDone, steps.RollbackEmergencyStop)
	})
	t.Logf("emergency stop: click → on and verified on every proxy in %s", time.Since(clicked).Round(time.Millisecond))
	if r.Status != steps.RunAborting {
		t.Fatalf("after the emergency stop the run is %s, want still aborting (its removal offered)", r.Status)
	}

	// Every node of both versions terminates, as configured: not 500 on
	// 0.14.1 (written through 1.0.3), not a pass-through on 1.0.3 (written
	// through 0.14.1 without the nudge).
	for _, v := range []string{V014, V10} {
		for _, n := range w.env.Nodes(v) {
			a, err := probeProxy(w.ctx, "http://"+n.ProxyAddr, w.env.Token)
			if err != nil {
				t.Errorf("%s (%s): %v", n.Name, v, err)
				continue
			}
			if a.status != status || a.message != message {
				t.Errorf("%s (%s) answers %d %q, want %d %q (body %s)", n.Name, v, a.status, a.message, status, message, a.body)
			}
		}
	}
	for _, n := range w.env.Nodes(V013) {
		if n.Running() {
			t.Errorf("0.13.1 node %s runs in hop 2", n.Name)
		}
	}
	stopID = w.checkTerminationRow()

	want = []steps.RollbackAction{steps.RollbackRemoveTermination, steps.RollbackTrafficBack, steps.RollbackNone}
	if got := offered(r); !slices.Equal(got, want) {
		t.Fatalf("with the stop on, offered %v, want %v", got, want)
	}
	offer = w.offer(id, seen, "rollback_remove-termination", "rollback_traffic-back", "rollback_none")
	if _, ok := offer.Button("rollback_emergency-stop", ""); ok {
		t.Errorf("the emergency stop is offered again while it is on")
	}
	if !strings.Contains(offer.BlockText(), "lift the emergency stop") {
		t.Errorf("the removal does not say it lifts the stop: %s", oneLine(offer.BlockText()))
	}
	clicked = time.Now()
	w.clickOn(offer, localslack.Lead1ID, "rollback_remove-termination")
	r = w.waitRun(id, "the stop lifted", func(r steps.Run) bool {
		return r.RollbackRunning == "" && slices.Contains(r.RollbacksDone, steps.RollbackRemoveTermination)
	})
	t.Logf("stop lifted: click → off and verified on every proxy in %s", time.Since(clicked).Round(time.Millisecond))
	if !slices.Equal(r.RollbacksDone, []steps.RollbackAction{steps.RollbackEmergencyStop, steps.RollbackRemoveTermination}) {
		t.Errorf("rollbacks done %v, want the stop then its removal", r.RollbacksDone)
	}
	// The bot verified the removal on every proxy before saying done: each
	// serves the demo's smoke answers at once.
	for _, v := range []string{V014, V10} {
		for _, n := range w.env.Nodes(v) {
			if err := w.env.Smoke(w.ctx, "http://"+n.ProxyAddr); err != nil {
				t.Errorf("after the stop was lifted, %s (%s): %v", n.Name, v, err)
			}
		}
	}
	if n := w.sqlInt("SELECT count(*) FROM plugins WHERE name = 'request-termination'"); n != 0 {
		t.Errorf("%d request-termination plugins left after the removal", n)
	}
	// HAProxy's health checks are TCP, so the front never stopped routing:
	// it serves again as soon as the nodes do.
	if err := w.env.waitSmoke(w.ctx, w.env.FrontURL); err != nil {
		t.Errorf("through the front after the stop was lifted: %v", err)
	}

	// Lifted, the stop is offered again beside moving traffic back; leave
	// the gateway as it is.
	want = []steps.RollbackAction{steps.RollbackTrafficBack, steps.RollbackEmergencyStop, steps.RollbackNone}
	if got := offered(r); !slices.Equal(got, want) {
		t.Fatalf("after lifting the stop, offered %v, want %v", got, want)
	}
	offer = w.offer(id, seen, "rollback_traffic-back", "rollback_emergency-stop", "rollback_none")
	w.clickOn(offer, localslack.Lead1ID, "rollback_none")
	r = w.waitRun(id, "the run aborted", func(r steps.Run) bool { return r.Status == steps.RunAborted })
	if len(r.RollbacksDone) != 2 {
		t.Errorf("rollbacks done %v after leaving the gateway as it is", r.RollbacksDone)
	}
	return stopID
}

// offered lists the actions of the run's rollback offer.
func offered(r steps.Run) []steps.RollbackAction {
	var out []steps.RollbackAction
	for _, c := range r.Rollbacks {
		out = append(out, c.Action)
	}
	return out
}

// waitRun polls the run until cond holds; a failed rollback ends the test
// with the bot's reason.
func (w *world) waitRun(id, what string, cond func(steps.Run) bool) steps.Run {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(w.ctx, 2*time.Minute)
	defer cancel()
	for {
		r, _, ok := w.run(id)
		if ok {
			if cond(r) {
				return r
			}
			for _, e := range r.Errors {
				if strings.HasPrefix(e.Step, "rollback:") {
					w.t.Fatalf("waiting for %s: %s failed: %s", what, e.Step, e.Message)
				}
			}
		}
		select {
		case <-ctx.Done():
			w.t.Fatalf("waiting for %s: %v (run %s at %s, offered %v, running %q, done %v)", what, ctx.Err(),
				r.Status, r.Current, offered(r), r.RollbackRunning, r.RollbacksDone)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// offer waits for a rollback offer in the run's thread not seen before
// that carries every one of actions, and marks it seen.
func (w *world) offer(id string, seen map[string]bool, actions ...string) localslack.Message {
	w.t.Helper()
	var found localslack.Message
	ctx, cancel := context.WithTimeout(w.ctx, 30*time.Second)
	defer cancel()
	err := w.env.Slack.WaitFor(ctx, func() bool {
		parent := ThreadOf(w.env.Slack, id)
		if parent == "" {
			return false
		}
		thread := w.env.Slack.Thread(parent)
		for _, m := range slices.Backward(thread) {
			if seen[m.TS] || !strings.Contains(m.BlockText(), "is being aborted") {
				continue
			}
			all := true
			for _, a := range actions {
				b, ok := m.Button(a, "")
				v, vok := ButtonRun(b)
				all = all && ok && vok && v.Run == id
			}
			if all {
				found = m
				return true
			}
		}
		return false
	})
	if err != nil {
		w.t.Fatalf("no new rollback offer with %v in the thread: %v", actions, err)
	}
	seen[found.TS] = true
	return found
}

// clickOn presses actionID on that very message as user.
func (w *world) clickOn(m localslack.Message, user, actionID string) {
	w.t.Helper()
	b, ok := m.Button(actionID, "")
	if !ok {
		w.t.Fatalf("no %s button on message %s", actionID, m.TS)
	}
	ctx, cancel := context.WithTimeout(w.ctx, 10*time.Second)
	defer cancel()
	if _, err := w.env.Slack.Click(ctx, user, localslack.ChannelID, m.TS, actionID, b.Value); err != nil {
		w.t.Fatalf("click %s as %s: %v", actionID, user, err)
	}
	w.clicks = append(w.clicks, fmt.Sprintf("%s %s", user, actionID))
}

// proxyAnswer is what a node's proxy answered to the demo API.
type proxyAnswer struct {
	status  int
	message string
	body    string
}

// probeProxy requests the demo API through one proxy with the token (okta-auth
// answers before request-termination, §5.2, so without one the probe would
// never reach it).
func probeProxy(ctx context.Context, base, token string) (proxyAnswer, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+APIPath, nil)
	if err != nil {
		return proxyAnswer{}, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return proxyAnswer{}, fmt.Errorf("GET %s: %w", base+APIPath, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return proxyAnswer{}, fmt.Errorf("GET %s: body: %w", base+APIPath, err)
	}
	a := proxyAnswer{status: resp.StatusCode, body: string(raw)}
	var m struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(raw, &m) == nil {
		a.message = m.Message
	}
	return a, nil
}

// checkTerminationRow asserts by SQL that the datastore holds exactly one
// request-termination, global, in the shape a 0.x Admin API writes: config
// with status_code and message only (1.0.3 would add "body": null and
// "content_type": null, which 0.14.1 fails on) and no cache_key or run_on
// (1.0.3 sets both). It returns the plugin's ID.
func (w *world) checkTerminationRow() string {
	t := w.t
	t.Helper()
	conn, err := pgx.Connect(w.ctx, w.env.DSN)
	if err != nil {
		t.Fatalf("datastore: %v", err)
	}
	defer conn.Close(context.WithoutCancel(w.ctx))
	rows, err := conn.Query(w.ctx, `SELECT id::text, config::text, enabled, cache_key, run_on,
		api_id IS NULL AND route_id IS NULL AND service_id IS NULL AND consumer_id IS NULL
		FROM plugins WHERE name = 'request-termination'`)
	if err != nil {
		t.Fatalf("datastore: %v", err)
	}
	type row struct {
		id, config      string
		enabled, global bool
		cacheKey, runOn *string
	}
	var got []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.id, &r.config, &r.enabled, &r.cacheKey, &r.runOn, &r.global); err != nil {
			t.Fatalf("datastore: %v", err)
		}
		got = append(got, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("datastore: %v", err)
	}
	if len(got) != 1 {
		t.Fatalf("%d request-termination plugin rows, want exactly 1: %+v", len(got), got)
	}
	r := got[0]
	var cfg map[string]any
	if err := json.Unmarshal([]byte(r.config), &cfg); err != nil {
		t.Fatalf("request-termination config %s: %v", r.config, err)
	}
	keys := make([]string, 0, len(cfg))
	for k := range cfg {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"message", "status_code"}) {
		t.Errorf("request-termination config %s has keys %v, want message and status_code only (the 0.x shape; 1.0.3 writes nulls 0.14.1 fails on)", r.config, keys)
	}
	if r.cacheKey != nil || r.runOn != nil {
		t.Errorf("request-termination row has cache_key %v and run_on %v: written through 1.0.3, not 0.14.1", deref(r.cacheKey), deref(r.runOn))
	}
	if !r.enabled || !r.global {
		t.Errorf("request-termination row: enabled %v, global %v", r.enabled, r.global)
	}
	// The nudge that makes 1.0.3 nodes load it wrote a disabled plugin and
	// deleted it at once: only okta-auth and the stop remain.
	var names []string
	nrows, err := conn.Query(w.ctx, "SELECT name FROM plugins ORDER BY name")
	if err != nil {
		t.Fatalf("datastore: %v", err)
	}
	for nrows.Next() {
		var n string
		if err := nrows.Scan(&n); err != nil {
			t.Fatalf("datastore: %v", err)
		}
		names = append(names, n)
	}
	if err := nrows.Err(); err != nil {
		t.Fatalf("datastore: %v", err)
	}
	if !slices.Equal(names, []string{"okta-auth", "request-termination"}) {
		t.Errorf("plugins in the datastore: %v, want okta-auth and request-termination", names)
	}
	return r.id
}

func deref(s *string) string {
	if s == nil {
		return "NULL"
	}
	return *s
}

func (w *world) sqlInt(q string) int {
	w.t.Helper()
	conn, err := pgx.Connect(w.ctx, w.env.DSN)
	if err != nil {
		w.t.Fatalf("datastore: %v", err)
	}
	defer conn.Close(context.WithoutCancel(w.ctx))
	var n int
	if err := conn.QueryRow(w.ctx, q).Scan(&n); err != nil {
		w.t.Fatalf("%s: %v", q, err)
	}
	return n
}

// checkEmergencyRun asserts what an aborted run with an emergency stop
// leaves: the thread tells each rollback once, the audit log has the
// choices and verifies, never two terminations at once, the bot wrote the
// stop through 0.14.1 and nudged 1.0.3, and the gateway's lock is free.
func (w *world) checkEmergencyRun(id string, r steps.Run, stopID string) {
	t := w.t
	t.Helper()
	ctx := w.ctx
	// The end of the run is broadcast last; wait for it before reading the
	// thread.
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := w.env.Slack.WaitFor(wctx, func() bool {
		for _, m := range w.env.Slack.Channel(localslack.ChannelID) {
			if m.Broadcast && strings.Contains(m.BlockText(), "*Run "+id+" aborted*") {
				return true
			}
		}
		return false
	}); err != nil {
		t.Errorf("the run's end is not broadcast to the channel: %v", err)
	}
	thread := w.env.Slack.Thread(ThreadOf(w.env.Slack, id))
	count := map[string]int{}
	var ends []string
	for _, m := range thread {
		txt := strings.TrimSpace(m.BlockText())
		count[txt]++
		if strings.Contains(txt, "*Run "+id+" aborted*") {
			ends = append(ends, txt)
		}
		if strings.Contains(txt, ":x: rollback") {
			t.Errorf("a rollback failed: %s", oneLine(txt))
		}
	}
	for _, s := range []string{":rewind: Rollback done: emergency-stop", ":rewind: Rollback done: emergency-stop, remove-termination"} {
		if count[s] != 1 {
			t.Errorf("the thread says %q %d times, want once", s, count[s])
		}
	}
	if len(ends) != 1 {
		t.Errorf("%d end-of-run messages in the thread, want 1", len(ends))
	} else if !strings.Contains(ends[0], "Rolled back: emergency-stop, remove-termination.") {
		t.Errorf("the end of the run does not list the rollbacks: %s", oneLine(ends[0]))
	}

	rep, err := w.client.Audit(ctx, id, true)
	if err != nil {
		t.Fatalf("audit: %v", err)
	}
	if rep.RunChain == nil || !rep.RunChain.OK() || rep.Log == nil || !rep.Log.OK() {
		t.Errorf("audit chain does not verify: run %+v, log %+v", rep.RunChain, rep.Log)
	}
	var aborts, choices, done int
	for _, e := range rep.Entries {
		switch e.Kind {
		case string(steps.EvAbort):
			aborts++
		case string(steps.EvRollback):
			choices++
			if e.Actor != localslack.Lead1ID && e.Actor != localslack.Lead2ID {
				t.Errorf("rollback chosen by %q, want a lead", e.Actor)
			}
		case string(steps.EvRollbackDone):
			done++
		}
	}
	answeredAbort := slices.ContainsFunc(rep.Entries, func(e store.AuditEntry) bool {
		return e.Kind == string(steps.EvAnswer) && e.Actor == localslack.Lead1ID && strings.Contains(e.Text+string(e.Data), "abort")
	})
	if (aborts == 0 && !answeredAbort) || choices != 3 || done != 2 {
		t.Errorf("audit log: %d aborts (answered abort %v), %d rollback choices (want 3), %d rollbacks done (want 2)", aborts, answeredAbort, choices, done)
	}

	w.dbMu.Lock()
	most := w.maxTermination
	w.dbMu.Unlock()
	if most != 1 {
		t.Errorf("at most %d request-termination plugins at once during the run, want 1 (hop 1's, then the stop)", most)
	}

	// The bot's own account of the write: through a 0.14.1 node, then the
	// 1.0.3 nodes nudged.
	logs := w.bot.Logs()
	var enabled []string
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, "request-termination enabled") {
			enabled = append(enabled, l)
		}
	}
	if len(enabled) != 2 {
		t.Errorf("%d request-termination enables in the bot's log, want 2 (hop 1, the stop)", len(enabled))
	} else if !strings.Contains(enabled[1], "kong-014-") || !strings.Contains(enabled[1], V014) {
		t.Errorf("the stop was not written through a 0.14.1 node: %s", enabled[1])
	}
	if n := strings.Count(logs, "1.x nodes nudged to reload their plugin list"); n != 1 {
		t.Errorf("1.0.3 nodes nudged %d times, want once (for the stop)", n)
	}

	// The lock is read from the store itself, once the bot has let go of it.
	w.bot.stop(syscall.SIGTERM)
	st, err := store.Open(w.bc.Config.Store.Path, store.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("store: %v", err)
	}
	defer st.Close()
	locks, err := st.Locks(ctx)
	if err != nil {
		t.Fatalf("locks: %v", err)
	}
	if len(locks) != 0 {
		t.Errorf("locks held after the abort: %+v", locks)
	}
	j, err := st.Journal(ctx, id)
	if err != nil {
		t.Fatalf("journal: %v", err)
	}
	if j["termination/plugin-id"] != "" || j["termination/removed-id"] != stopID {
		t.Errorf("journal: plugin-id %q, removed-id %q; want none on and the stop %s removed", j["termination/plugin-id"], j["termination/removed-id"], stopID)
	}
}
