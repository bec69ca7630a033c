package schedule

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestDigest(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, fri.Add(8*time.Hour), func(o *Options) { o.Digest, o.DigestChannel = "0 9 * * *", "CDIGEST" })
	e.runAt("r1", "hop2.migrations-finish", fri.Add(8*time.Hour))
	if _, err := e.sched.Schedule(ctx, "UOPS", "C1", at(fri.AddDate(0, 0, 10))); err != nil {
		t.Fatal(err)
	}
	e.tick()
	if n := len(e.texts("")); n != 0 {
		t.Fatalf("%d digests before 09:00", n)
	}
	e.clock.Set(fri.Add(9 * time.Hour))
	e.tick()
	e.tick()
	got := e.texts("")
	if len(got) != 1 {
		t.Fatalf("digests at 09:00: %q", got)
	}
	for _, want := range []string{
		"CDIGEST: :newspaper: *kongbot digest*",
		"*r1* · prod 0.14.1 → 1.0.3 · awaiting-approval at *",
		"started by <@UREQ>",
		"*Pending approvals and waits*",
		"(irreversible risk) waits for approval since <!date^",
		": 0 of 2 distinct approvers, neither the requester",
		"*Scheduled*\n• *s1* · upgrade *prod* to 1.0.3 at",
	} {
		if !strings.Contains(got[0], want) {
			t.Errorf("digest lacks %q:\n%s", want, got[0])
		}
	}
	if strings.Contains(got[0], "late") {
		t.Errorf("on-time digest says late: %s", got[0])
	}

	// Down at the next 09:00, back within the grace period: posted late.
	e.restart()
	e.clock.Set(fri.Add(33*time.Hour + 10*time.Minute))
	e.tick()
	got = e.texts("")
	if len(got) != 2 || !strings.Contains(got[1], "Posted 10m0s late: kongbot was not running at") {
		t.Fatalf("late digest: %q", got)
	}
	// Down past the grace period: skipped, and the next one comes on time.
	e.restart()
	e.clock.Set(fri.Add(57*time.Hour + 45*time.Minute))
	e.tick()
	if n := len(e.texts("")); n != 2 {
		t.Fatalf("%d digests, the 2h45m late one was not skipped", n)
	}
	e.clock.Set(fri.Add(81 * time.Hour))
	e.tick()
	if n := len(e.texts("")); n != 3 {
		t.Fatalf("%d digests, want the next on-time one", n)
	}

	// Nothing open: the digest says so.
	e2 := newEnv(t, fri, func(o *Options) { o.Digest = "@daily" })
	text, err := e2.sched.DigestText(ctx)
	if err != nil || !strings.Contains(text, "No upgrade runs are open.") {
		t.Errorf("empty digest %q %v", text, err)
	}
	if _, err := New(Options{Store: e2.st, Runs: e2.runner, Digest: "0 9 * *"}); err == nil {
		t.Error("a bad digest spec was accepted")
	}
}
