package demo

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kongbot/kongbot/kongsim"
	"github.com/kongbot/kongbot/steps"
	"github.com/kongbot/kongbot/store"
)

// killPoint is where the crash test SIGKILLs the bot: when the run, as read
// through the admin endpoint, first matches.
type killPoint struct {
	name string
	when func(r steps.Run) bool
}

// succeeded is a step boundary: the step's outcome is durable, the next
// step has not ended yet.
func succeeded(id string) killPoint {
	return killPoint{name: "after " + id, when: func(r steps.Run) bool {
		s := stepState(r, id)
		return s != nil && s.Status == steps.StepSucceeded
	}}
}

// inside is a kill while the step runs.
func inside(id string, after time.Duration) killPoint {
	var seen time.Time
	return killPoint{name: "inside " + id, when: func(r steps.Run) bool {
		s := stepState(r, id)
		if s == nil || s.Status != steps.StepRunning {
			return false
		}
		if seen.IsZero() {
			seen = time.Now()
		}
		return time.Since(seen) >= after
	}}
}

// resumeFigure is one kill and how long the bot took to come back.
type resumeFigure struct {
	point string
	// ready: restart → /readyz; resumed: restart → the run's resume entry
	// in the audit log.
	ready, resumed time.Duration
}

// TestCrashInjection is the rehearsal with the bot (`kongbot serve`, a
// separate process) killed with SIGKILL at every step boundary worth one
// and inside the migrations, the conversion and both cutovers, and started
// again each time. The run must complete with the same checks as the
// rehearsal: no side effect twice, no audit entry or Slack message lost.
func TestCrashInjection(t *testing.T) {
	if testing.Short() {
		t.Skip("the crash rehearsal takes minutes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	w := newWorld(t, ctx, 40, 2*time.Second, false)
	w.allowRetry = true
	began := time.Now()

	points := []killPoint{
		succeeded("hop1.preflight-current"),
		succeeded("hop1.preflight-plugins"),
		succeeded("hop1.provision-new-nodes"),
		succeeded("hop1.preflight-new-nodes"),
		succeeded("hop1.snapshot"),
		// hop1.termination-on is followed at once by migrations-up, where
		// the migration itself kills the bot (below).
		succeeded("hop1.migrations-up"),
		succeeded("hop1.start-new-cluster"),
		inside("hop1.traffic-switch", 2*time.Second),
		succeeded("hop1.traffic-switch"),
		succeeded("hop1.termination-off"),
		succeeded("hop1.decommission-old"),
		succeeded("hop2.preflight-plugins"),
		succeeded("hop2.custom-plugins"),
		inside("hop2.apis-convert", 0),
		succeeded("hop2.apis-convert"),
		succeeded("hop2.apis-delete"),
		succeeded("hop2.preflight-migrations"),
		succeeded("hop2.snapshot"),
		// inside hop2.migrations-up: the migration kills the bot
		succeeded("hop2.migrations-up"),
		succeeded("hop2.provision-new-nodes"),
		inside("hop2.traffic-shift", 3*time.Second),
		inside("hop2.traffic-shift", 4*time.Second),
		succeeded("hop2.traffic-shift"),
		succeeded("hop2.smoke"),
		succeeded("hop2.decommission-old"),
		// inside hop2.migrations-finish: the migration kills the bot
	}
	fired := make([]bool, len(points))
	var resumes []resumeFigure
	armed := map[string]bool{}
	// lastArmed names the step whose migration holds the kill file.
	lastArmed := ""
	armedStep := map[string]string{"hop1-up": "hop1.migrations-up", "hop2-up": "hop2.migrations-up", "hop2-finish": "hop2.migrations-finish"}
	arm := func(key string) {
		if armed[key] {
			return
		}
		armed[key] = true
		lastArmed = armedStep[key]
		if err := os.WriteFile(w.killFile, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	slowed := false
	setAdminDelay := func(d time.Duration) {
		for _, n := range w.env.Nodes(V014) {
			if n.Running() {
				n.Kong().SetFault(kongsim.Fault{AdminDelay: d})
			}
		}
	}

	migrationsLeftRunning := 0
	restart := func(point string, auditBefore int, id string) {
		// The bot comes back at once, possibly while the migration it
		// started still runs (it is detached from the bot): the resumed
		// step must follow that migration, not start another, and judge
		// the schema only once it has ended.
		if len(migrationsRunning()) > 0 {
			migrationsLeftRunning++
		}
		start := time.Now()
		w.bot.start()
		if err := w.bot.waitReady(ctx); err != nil {
			t.Fatalf("restart after %s: %v", point, err)
		}
		ready := time.Since(start)
		var resumed time.Duration
		for time.Since(start) < 30*time.Second {
			rep, err := w.client.Audit(ctx, id, false)
			if err == nil && len(rep.Entries) > auditBefore && hasResume(rep.Entries[auditBefore:]) {
				resumed = time.Since(start)
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		resumes = append(resumes, resumeFigure{point: point, ready: ready, resumed: resumed})
		t.Logf("killed %s; ready after %s, resumed after %s", point, ready.Round(time.Millisecond), resumed.Round(time.Millisecond))
	}
	auditLen := func(id string) int {
		rep, err := w.client.Audit(ctx, id, false)
		if err != nil {
			return -1
		}
		return len(rep.Entries)
	}

	arm("hop1-up") // before the start: the first `up` is hop 1's
	id := w.startRun()
	lastAudit := 0
	r := w.drive(id, func(r steps.Run, ok bool) bool {
		if ok {
			if n := auditLen(id); n >= 0 {
				lastAudit = n
			}
		}
		// The migration killed the bot.
		select {
		case <-w.bot.done:
			if lastArmed == "hop2.migrations-finish" {
				w.finishKills++
				// This time the host comes back only after the finish the
				// killed bot started has completed: the resumed step must
				// find it done and not run `finish` a second time.
				for end := time.Now().Add(60 * time.Second); len(migrationsRunning()) > 0; time.Sleep(20 * time.Millisecond) {
					if time.Now().After(end) {
						t.Fatalf("migrations finish still runs 60s after the kill: %v", migrationsRunning())
					}
				}
			}
			restart("inside "+lastArmed+" (killed by the migration)", lastAudit, id)
			return true
		default:
		}
		if !ok {
			return false
		}
		switch {
		case r.Current == "hop2.preflight-migrations" || r.Current == "hop2.snapshot":
			arm("hop2-up")
		case r.Current == "hop2.decommission-old" || r.Current == "hop2.migrations-finish":
			arm("hop2-finish")
		}
		if r.Current == "hop2.apis-convert" && !slowed {
			// A conversion of one API takes a few hundred ms; slower Admin
			// API answers give the kill a window inside it.
			slowed = true
			setAdminDelay(300 * time.Millisecond)
		}
		for i, p := range points {
			if fired[i] || !p.when(r) {
				continue
			}
			fired[i] = true
			before := auditLen(id)
			w.bot.kill()
			if strings.HasPrefix(p.name, "inside hop2.apis-convert") {
				setAdminDelay(0)
			}
			restart(p.name, before, id)
			return true
		}
		return false
	})
	if r.Status != steps.RunSucceeded {
		t.Fatalf("run ended %s at %s", r.Status, r.Current)
	}
	setAdminDelay(0)
	for i, p := range points {
		if !fired[i] {
			t.Errorf("kill point %q never fired", p.name)
		}
	}
	if len(resumes) < 20 {
		t.Errorf("%d kills, want at least 20", len(resumes))
	}
	for _, rf := range resumes {
		if rf.resumed == 0 {
			t.Errorf("after the kill %s the run was not resumed within 30s", rf.point)
		}
		t.Logf("kill %-60s ready %6s resumed %6s", rf.point, rf.ready.Round(time.Millisecond), rf.resumed.Round(time.Millisecond))
	}
	// A migration seen running at a restart may end before the resumed
	// bot looks for it (about a second later): then the bot finds the
	// schema done instead, which "each migration ran once" and "no retry"
	// check. So not every one is followed, but the follow must happen.
	followed := strings.Count(w.bot.Logs(), "followed a migration started before a restart")
	if migrationsLeftRunning > 0 && followed == 0 {
		t.Errorf("%d restarts found a migration still running, but the bot followed none", migrationsLeftRunning)
	}
	t.Logf("%d restarts found the killed bot's migration still running; the bot followed %d", migrationsLeftRunning, followed)
	// checkRun asserts `finish` ran once: that means something only if the
	// bot was killed inside it.
	if w.finishKills != 1 {
		t.Errorf("%d kills inside migrations-finish, want 1", w.finishKills)
	}
	// The audit says so too: finish was started once, and the resumed
	// bot's verification found it done.
	if rep, err := w.client.Audit(ctx, id, false); err != nil {
		t.Errorf("audit: %v", err)
	} else {
		var started, verified []string
		for _, e := range rep.Entries {
			if e.Step != "hop2.migrations-finish" {
				continue
			}
			switch e.Kind {
			case "execute":
				started = append(started, e.Text)
			case string(steps.EvVerified):
				verified = append(verified, e.Text)
			}
		}
		if len(started) != 1 || len(verified) != 1 || !strings.Contains(verified[0], "step succeeded") {
			t.Errorf("finish in the audit: started %q, verified %q; want one start and one verification that found it done", started, verified)
		}
	}
	f := checkRun(t, w, id, r, began)
	t.Logf("crash rehearsal: %d kills, %d retries; %s", len(resumes), w.retries, f)
}

func hasResume(es []store.AuditEntry) bool {
	for _, e := range es {
		if e.Kind == string(steps.EvResume) {
			return true
		}
	}
	return false
}
