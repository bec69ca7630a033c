package schedule

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kongbot/kongbot/bot"
	"github.com/kongbot/kongbot/commands"
	"github.com/kongbot/kongbot/config"
)

// The bot routes the schedule commands to a Scheduler and renders its
// text messages.
var _ bot.Scheduler = (*Scheduler)(nil)

func TestTextKindIsTheBots(t *testing.T) {
	if KindText != bot.KindText {
		t.Fatalf("KindText %q, the bot renders %q", KindText, bot.KindText)
	}
}

func at(t time.Time) commands.UpgradeSchedule {
	return commands.UpgradeSchedule{Gateway: "prod", Target: "1.0.3", When: commands.When{At: t}}
}

func onCron(spec string) commands.UpgradeSchedule {
	return commands.UpgradeSchedule{Gateway: "prod", Target: "1.0.3", When: commands.When{Cron: spec}}
}

func TestScheduleCommands(t *testing.T) {
	ctx := context.Background()
	w, err := NewWindows([]config.ChangeWindow{{Name: "saturday-night", Start: "0 2 * * 6", Duration: 2 * time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, fri, func(o *Options) { o.Rules.Windows = w })
	s := e.sched

	out, err := s.Schedule(ctx, "UOPS", "C1", at(fri.Add(26*time.Hour+30*time.Minute))) // Sat 02:30: inside the window
	if err != nil || !strings.Contains(out, "Scheduled *s1*") || strings.Contains(out, "No change window") {
		t.Fatalf("one-off: %q %v", out, err)
	}
	out, err = s.Schedule(ctx, "UOPS", "", onCron("0 9 * * 1"))
	if err != nil || !strings.Contains(out, "Scheduled *s2*") || !strings.Contains(out, "<#CRUNS>") ||
		!strings.Contains(out, "No change window is open for *prod* then: its high-risk steps will be waiting for the window saturday-night that opens Sat 12 Dec 02:00 UTC") {
		t.Fatalf("cron outside the window: %q %v", out, err)
	}
	sc, err := e.st.Schedule(ctx, "s2")
	if err != nil || !sc.NextDue.Equal(time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)) || sc.CreatedBy != "UOPS" || sc.Channel != "CRUNS" {
		t.Fatalf("stored %+v %v", sc, err)
	}

	for _, c := range []struct {
		name string
		cmd  commands.UpgradeSchedule
		want string
	}{
		{"a time in the past", at(fri.Add(-time.Minute)), "is in the past"},
		{"now", at(fri), "is in the past"},
		{"a bad cron spec", onCron("0 25 * * *"), "cron spec"},
		{"a cron spec that never comes due", onCron("0 0 30 2 *"), "never comes due"},
		{"no target", commands.UpgradeSchedule{Gateway: "prod", When: commands.When{Cron: "@daily"}}, "needs a gateway and a target"},
		{"no time", commands.UpgradeSchedule{Gateway: "prod", Target: "1.0.3"}, "cron spec or an RFC3339 time"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := s.Schedule(ctx, "UOPS", "C1", c.cmd); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err %v, want %q", err, c.want)
			}
		})
	}
	if scs, _ := e.st.Schedules(ctx); len(scs) != 2 {
		t.Fatalf("refused input changed the store: %d schedules", len(scs))
	}

	list, err := s.Schedules(ctx)
	if err != nil || !strings.Contains(list, "*s1*") || !strings.Contains(list, "*s2*") || !strings.Contains(list, "cron `0 9 * * 1`") {
		t.Fatalf("list %q %v", list, err)
	}
	if _, err := s.Unschedule(ctx, "UOPS", "s9"); err == nil || !strings.Contains(err.Error(), "no schedule s9") {
		t.Errorf("unknown id: %v", err)
	}
	if out, err := s.Unschedule(ctx, "ULEAD1", "s1"); err != nil || !strings.Contains(out, "Removed schedule *s1*") {
		t.Fatalf("unschedule: %q %v", out, err)
	}
	list, _ = s.Schedules(ctx)
	if strings.Contains(list, "*s1*") {
		t.Errorf("s1 still listed: %q", list)
	}
	a := e.audit("s1")
	if !hasAudit(a, "schedule-created", "UOPS scheduled s1") || !hasAudit(a, "schedule-deleted", "ULEAD1 removed schedule s1") {
		t.Errorf("audit %+v", a)
	}

	// Without a starter, scheduling is refused.
	e.sched.o.Starter = nil
	if _, err := s.Schedule(ctx, "UOPS", "C1", onCron("@daily")); err == nil {
		t.Error("scheduled without a starter")
	}
}

func TestDueSchedulesOpenRuns(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, fri, nil)
	if _, err := e.sched.Schedule(ctx, "UOPS", "C1", at(fri.Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sched.Schedule(ctx, "UOPS", "C2", onCron("0 3 * * *")); err != nil {
		t.Fatal(err)
	}
	e.clock.Set(fri.Add(59 * time.Minute))
	e.tick()
	if got := e.starter.started(); len(got) != 0 {
		t.Fatalf("opened early: %v", got)
	}
	e.clock.Set(fri.Add(time.Hour))
	e.tick()
	e.tick()
	if got := e.starter.started(); !slices.Equal(got, []string{"s1"}) {
		t.Fatalf("started %v", got)
	}
	req := e.starter.reqs[0]
	if req.Gateway != "prod" || req.Target != "1.0.3" || req.Requester != "UOPS" || req.Channel != "C1" {
		t.Errorf("request %+v", req)
	}
	sc, _ := e.st.Schedule(ctx, "s1")
	if sc.State != StateStarted || sc.LastRun != "r101" {
		t.Errorf("s1 %+v", sc)
	}
	if txt := e.texts("r101"); len(txt) != 1 || !strings.Contains(txt[0], "Opened by schedule *s1*") || strings.Contains(txt[0], "late") {
		t.Errorf("run thread %q", txt)
	}
	// The cron schedule opens every day at 03:00.
	e.clock.Set(fri.Add(3 * time.Hour))
	e.tick()
	e.clock.Set(fri.Add(27 * time.Hour))
	e.tick()
	if got := e.starter.started(); !slices.Equal(got, []string{"s1", "s2", "s2"}) {
		t.Fatalf("started %v", got)
	}
	sc, _ = e.st.Schedule(ctx, "s2")
	if sc.State != "" || !sc.NextDue.Equal(fri.Add(51*time.Hour)) || sc.LastRun != "r103" {
		t.Errorf("s2 %+v", sc)
	}
	if a := e.audit("s2"); !hasAudit(a, "schedule-opened", "schedule s2 due 2026-12-05T03:00:00Z opened run r103") {
		t.Errorf("audit %+v", a)
	}

	// A run that cannot open: the one-off schedule fails, with a note.
	if _, err := e.sched.Schedule(ctx, "UOPS", "C1", at(e.clock.Now().Add(time.Minute))); err != nil {
		t.Fatal(err)
	}
	e.starter.err = errors.New("gateway prod is being upgraded by run r7")
	e.clock.Advance(time.Minute)
	if err := e.sched.Tick(ctx); err == nil || !strings.Contains(err.Error(), "r7") {
		t.Fatalf("tick: %v", err)
	}
	sc, _ = e.st.Schedule(ctx, "s3")
	if sc.State != StateFailed || !strings.Contains(sc.Note, "being upgraded by run r7") {
		t.Errorf("s3 %+v", sc)
	}
	if txt := e.texts(""); len(txt) != 1 || !strings.HasPrefix(txt[0], "C1: :warning: Scheduled upgrade *s3*") {
		t.Errorf("channel %q", txt)
	}
}

// The bot was down when schedules came due: within the grace period the
// run opens late with a note; after it, the time is skipped with a note (a
// one-off schedule is missed, a cron one waits for its next time).
func TestRestartAcrossDueSchedules(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, fri, nil)
	for _, c := range []commands.UpgradeSchedule{
		at(fri.Add(time.Hour)),        // s1: 10 min late
		at(fri.Add(30 * time.Minute)), // s2: 40 min late
		onCron("0 1 * * *"),           // s3: 10 min late
		onCron("30 0 * * *"),          // s4: 40 min late
		at(fri.Add(2 * time.Hour)),    // s5: not due yet
	} {
		if _, err := e.sched.Schedule(ctx, "UOPS", "C1", c); err != nil {
			t.Fatal(err)
		}
	}
	e.close()
	e.clock.Set(fri.Add(70 * time.Minute))
	e.open()
	e.tick()

	if got := e.starter.started(); !slices.Equal(got, []string{"s1", "s3"}) {
		t.Fatalf("opened %v", got)
	}
	get := func(id string) string {
		sc, err := e.st.Schedule(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return sc.State + " | " + sc.NextDue.UTC().Format("Mon 15:04") + " | " + sc.Note
	}
	for id, want := range map[string][]string{
		"s1": {"started |", "Opened 10m0s late."},
		"s2": {"missed |", "40m0s late, past the 30m0s grace period, so this time was skipped."},
		"s3": {" | Sat 01:00 |", "Opened 10m0s late."},
		"s4": {" | Sat 00:30 |", "so this time was skipped. Next:"},
		"s5": {" | Fri 02:00 | "},
	} {
		got := get(id)
		for _, w := range want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: %q lacks %q", id, got, w)
			}
		}
	}
	for _, run := range []string{"r101", "r102"} {
		if txt := e.texts(run); len(txt) != 1 || !strings.Contains(txt[0], "It opened 10m0s late: kongbot was not running when it came due") {
			t.Errorf("%s: %q", run, txt)
		}
	}
	top := e.texts("")
	if len(top) != 2 || !strings.Contains(top[0]+top[1], "*s2* of *prod* to 1.0.3 was missed") || !strings.Contains(top[0]+top[1], "*s4* of *prod* to 1.0.3 was missed") {
		t.Errorf("channel notes %q", top)
	}

	// Another restart changes nothing: every due time was handled once.
	e.restart()
	e.tick()
	if got := e.starter.started(); len(got) != 2 || len(e.texts("")) != 2 {
		t.Errorf("after the second restart: %v, %d notes", got, len(e.texts("")))
	}
	list, _ := e.sched.Schedules(ctx)
	if !strings.Contains(list, "_missed_") || !strings.Contains(list, "last run *r101*") {
		t.Errorf("list %q", list)
	}
}

func TestNextWake(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, fri, nil)
	if at, err := e.sched.NextWake(ctx); err != nil || !at.IsZero() {
		t.Fatalf("empty: %s %v", at, err)
	}
	if _, err := e.sched.Schedule(ctx, "UOPS", "C1", at(fri.Add(3*time.Hour))); err != nil {
		t.Fatal(err)
	}
	e.runAt("r1", "hop2.migrations-up", fri.Add(-10*time.Minute))
	if at, err := e.sched.NextWake(ctx); err != nil || !at.Equal(fri.Add(20*time.Minute)) {
		t.Fatalf("wake %s %v, want the reminder at 00:20", at, err)
	}
}

type starterFunc func(ctx context.Context, req StartRequest) (string, error)

func (f starterFunc) StartRun(ctx context.Context, req StartRequest) (string, error) {
	return f(ctx, req)
}

// A schedule removed while its run was opening is not written back.
func TestUnscheduleWhileOpening(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, fri, nil)
	if _, err := e.sched.Schedule(ctx, "UOPS", "C1", onCron("0 1 * * *")); err != nil {
		t.Fatal(err)
	}
	e.sched.o.Starter = starterFunc(func(ctx context.Context, req StartRequest) (string, error) {
		if _, err := e.sched.Unschedule(ctx, "ULEAD1", req.Schedule); err != nil {
			t.Error(err)
		}
		return "r9", nil
	})
	e.clock.Set(fri.Add(time.Hour))
	e.tick()
	if _, err := e.st.Schedule(ctx, "s1"); err == nil {
		t.Fatal("the removed schedule was written back")
	}
	if txt := e.texts("r9"); len(txt) != 1 || !strings.Contains(txt[0], "Opened by schedule *s1*") {
		t.Errorf("run note %q", txt)
	}
	if a := e.audit("s1"); !hasAudit(a, "schedule-deleted", "ULEAD1") || !hasAudit(a, "schedule-opened", "opened run r9") {
		t.Errorf("audit %+v", a)
	}
}
