package schedule

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kongbot/kongbot/commands"
	"github.com/kongbot/kongbot/store"
)

// Schedule states (store.Schedule.State) of a one-off schedule that has
// come due; a waiting schedule has none.
const (
	StateStarted = "started"
	StateMissed  = "missed"
	StateFailed  = "failed"
)

// lateNote is how late a run may open before its note says it is late.
const lateNote = time.Minute

func isCron(sc store.Schedule) bool {
	_, err := time.Parse(time.RFC3339, sc.Spec)
	return err != nil
}

// Schedule plans an upgrade: `upgrade schedule <gateway> to <version> at
// "<cron | RFC3339>"`. It returns the text for the user. Bad input changes
// nothing.
func (s *Scheduler) Schedule(ctx context.Context, user, channel string, c commands.UpgradeSchedule) (string, error) {
	if s.o.Starter == nil {
		return "", errors.New("scheduled upgrades are not configured in this kongbot")
	}
	if c.Gateway == "" || c.Target == "" {
		return "", errors.New("a schedule needs a gateway and a target version")
	}
	if channel == "" {
		channel = s.o.DefaultChannel
	}
	now := s.clock.Now()
	sc := store.Schedule{Gateway: c.Gateway, Target: c.Target, CreatedBy: user, Created: now.UTC(), Channel: channel}
	switch {
	case !c.When.At.IsZero():
		if !c.When.At.After(now) {
			return "", fmt.Errorf("%s is in the past (now %s)", c.When.At.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
		}
		sc.Spec, sc.NextDue = c.When.At.UTC().Format(time.RFC3339), c.When.At.UTC()
	case c.When.Cron != "":
		cs, err := parseCron(c.When.Cron)
		if err != nil {
			return "", err
		}
		sc.Spec, sc.NextDue = c.When.Cron, next(cs, now)
		if sc.NextDue.IsZero() {
			return "", fmt.Errorf("cron spec %q never comes due", c.When.Cron)
		}
	default:
		return "", errors.New("a schedule needs a cron spec or an RFC3339 time")
	}
	id, err := s.st.NewScheduleID(ctx)
	if err != nil {
		return "", fmt.Errorf("creating the schedule: %w", err)
	}
	sc.ID = id
	what := describe(sc)
	err = s.st.PutSchedule(ctx, sc, store.AuditEntry{Run: id, Kind: "schedule-created", Actor: user,
		Text: fmt.Sprintf("%s scheduled %s: %s", user, id, what)})
	if err != nil {
		return "", fmt.Errorf("saving the schedule: %w", err)
	}
	s.log.Info("schedule created", "schedule", id, "gateway", sc.Gateway, "target", sc.Target, "spec", sc.Spec, "by", user)
	s.kick()
	var b strings.Builder
	fmt.Fprintf(&b, ":calendar: Scheduled *%s*: %s. The run opens then in <#%s>; its approvals are still needed.", id, what, channel)
	if w := s.o.Rules.Windows; w != nil {
		if ws := w.Window(sc.Gateway, sc.NextDue); ws.Restricted && !ws.Open {
			fmt.Fprintf(&b, "\n:warning: No change window is open for *%s* then: its high-risk steps will be %s.", sc.Gateway, ws.WindowText())
		}
	}
	return b.String(), nil
}

func describe(sc store.Schedule) string {
	if isCron(sc) {
		return fmt.Sprintf("upgrade *%s* to %s on cron `%s` (next %s)", sc.Gateway, sc.Target, sc.Spec, stamp(sc.NextDue))
	}
	return fmt.Sprintf("upgrade *%s* to %s at %s", sc.Gateway, sc.Target, stamp(sc.NextDue))
}

// Schedules lists the schedules: `upgrade schedules`.
func (s *Scheduler) Schedules(ctx context.Context) (string, error) {
	scs, err := s.st.Schedules(ctx)
	if err != nil {
		return "", fmt.Errorf("reading schedules: %w", err)
	}
	if len(scs) == 0 {
		return "No upgrades are scheduled. `/kong upgrade schedule <gateway> to <version> at \"<cron | RFC3339>\"` plans one.", nil
	}
	var b strings.Builder
	b.WriteString("*Scheduled upgrades*\n")
	for _, sc := range scs {
		fmt.Fprintf(&b, "• *%s* · %s · by %s", sc.ID, describe(sc), mention(sc.CreatedBy))
		if sc.State != "" {
			fmt.Fprintf(&b, " · _%s_", sc.State)
		}
		if sc.LastRun != "" {
			fmt.Fprintf(&b, " · last run *%s*", sc.LastRun)
		}
		if sc.Note != "" {
			fmt.Fprintf(&b, "\n    %s", sc.Note)
		}
		b.WriteString("\n")
	}
	b.WriteString("`/kong upgrade unschedule <id>` removes one.")
	return b.String(), nil
}

// Unschedule removes a schedule: `upgrade unschedule <id>`.
func (s *Scheduler) Unschedule(ctx context.Context, user, id string) (string, error) {
	sc, err := s.st.Schedule(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return "", fmt.Errorf("there is no schedule %s; `/kong upgrade schedules` lists them", id)
	}
	if err != nil {
		return "", fmt.Errorf("reading schedule %s: %w", id, err)
	}
	what := describe(sc)
	s.schedMu.Lock()
	err = s.st.DeleteSchedule(ctx, id, store.AuditEntry{Run: id, Kind: "schedule-deleted", Actor: user,
		Text: fmt.Sprintf("%s removed schedule %s: %s", user, id, what)})
	s.schedMu.Unlock()
	if errors.Is(err, store.ErrNotFound) {
		return "", fmt.Errorf("schedule %s was removed meanwhile", id)
	}
	if err != nil {
		return "", fmt.Errorf("removing schedule %s: %w", id, err)
	}
	s.log.Info("schedule removed", "schedule", id, "by", user)
	return fmt.Sprintf(":wastebasket: Removed schedule *%s* (%s).", id, what), nil
}

// dueSchedules opens the runs of every schedule that came due.
func (s *Scheduler) dueSchedules(ctx context.Context) error {
	scs, err := s.st.Schedules(ctx)
	if err != nil {
		return fmt.Errorf("reading schedules: %w", err)
	}
	var errs []error
	for _, sc := range scs {
		if sc.State != "" || sc.NextDue.IsZero() || s.clock.Now().Before(sc.NextDue) {
			continue
		}
		if err := s.fire(ctx, sc); err != nil {
			errs = append(errs, fmt.Errorf("schedule %s: %w", sc.ID, err))
		}
	}
	return errors.Join(errs...)
}

// fire handles one due schedule. The schedule moves on (next time, or its
// final state) in the store before the run is opened: if the bot dies
// between the two, the run is not opened twice, and the schedule's note
// shows it was being opened.
func (s *Scheduler) fire(ctx context.Context, sc store.Schedule) error {
	now := s.clock.Now()
	due := sc.NextDue
	late := now.Sub(due)
	after := sc
	after.LastDue = due
	if isCron(sc) {
		cs, err := parseCron(sc.Spec)
		if err != nil {
			return err
		}
		after.NextDue = next(cs, now)
	}
	if late > s.o.Grace {
		note := fmt.Sprintf("Due %s while kongbot was not running; it came back %s late, past the %s grace period, so this time was skipped.",
			stamp(due), late.Round(time.Second), s.o.Grace)
		if isCron(sc) {
			note += " Next: " + stamp(after.NextDue) + "."
		} else {
			after.State = StateMissed
		}
		after.Note = note
		msg, err := textMessage("", sc.Channel, fmt.Sprintf(":calendar: Scheduled upgrade *%s* of *%s* to %s was missed. %s", sc.ID, sc.Gateway, sc.Target, note))
		if err != nil {
			return err
		}
		_, err = s.putIfPresent(ctx, store.Change{PutSchedules: []store.Schedule{after}, Outbox: []store.Message{msg},
			Audit: []store.AuditEntry{{Run: sc.ID, Kind: "schedule-missed", Actor: "scheduler", Text: fmt.Sprintf("schedule %s due %s skipped: %s late, grace %s", sc.ID, due.UTC().Format(time.RFC3339), late.Round(time.Second), s.o.Grace)}}}, sc.ID)
		s.log.Warn("scheduled upgrade missed", "schedule", sc.ID, "due", due, "late", late)
		return err
	}
	if !isCron(sc) {
		after.State = StateStarted
	}
	after.Note = "Opening the run due " + stamp(due) + "."
	if ok, err := s.putIfPresent(ctx, store.Change{PutSchedules: []store.Schedule{after}}, sc.ID); err != nil || !ok {
		if err != nil {
			return fmt.Errorf("recording that schedule %s is due: %w", sc.ID, err)
		}
		return nil // removed meanwhile: nothing to open
	}
	runID, serr := s.o.Starter.StartRun(ctx, StartRequest{Gateway: sc.Gateway, Target: sc.Target, Requester: sc.CreatedBy, Channel: sc.Channel, Schedule: sc.ID})
	var (
		text  string
		run   string
		audit store.AuditEntry
	)
	if serr != nil {
		if !isCron(sc) {
			after.State = StateFailed
		}
		after.Note = fmt.Sprintf("Could not open the run due %s: %s", stamp(due), serr)
		text = fmt.Sprintf(":warning: Scheduled upgrade *%s* of *%s* to %s could not open its run: %s", sc.ID, sc.Gateway, sc.Target, serr)
		audit = store.AuditEntry{Run: sc.ID, Kind: "schedule-failed", Actor: "scheduler", Text: fmt.Sprintf("schedule %s due %s: %v", sc.ID, due.UTC().Format(time.RFC3339), serr)}
		s.log.Error("scheduled run not opened", "schedule", sc.ID, "err", serr)
	} else {
		run = runID
		after.LastRun = runID
		after.Note = fmt.Sprintf("Opened run *%s* due %s.", runID, stamp(due))
		text = fmt.Sprintf(":calendar: Opened by schedule *%s* of %s (due %s). Approvals are still needed.", sc.ID, mention(sc.CreatedBy), stamp(due))
		if late > lateNote {
			text += fmt.Sprintf(" It opened %s late: kongbot was not running when it came due (within the %s grace period).", late.Round(time.Second), s.o.Grace)
			after.Note += fmt.Sprintf(" Opened %s late.", late.Round(time.Second))
		}
		audit = store.AuditEntry{Run: sc.ID, Kind: "schedule-opened", Actor: "scheduler", Text: fmt.Sprintf("schedule %s due %s opened run %s (%s late)", sc.ID, due.UTC().Format(time.RFC3339), runID, late.Round(time.Second))}
		s.log.Info("scheduled run opened", "schedule", sc.ID, "run_id", runID, "late", late)
	}
	msg, err := textMessage(run, sc.Channel, text)
	if err != nil {
		return err
	}
	// The run's note and audit stay even if the schedule was removed while
	// the run was opening; the schedule itself is not written back then.
	if ok, err := s.putIfPresent(ctx, store.Change{PutSchedules: []store.Schedule{after}, Outbox: []store.Message{msg}, Audit: []store.AuditEntry{audit}}, sc.ID); err != nil {
		return fmt.Errorf("recording schedule %s: %w", sc.ID, err)
	} else if !ok {
		if _, err := s.st.Commit(ctx, store.Change{Outbox: []store.Message{msg}, Audit: []store.AuditEntry{audit}}); err != nil {
			return fmt.Errorf("recording schedule %s: %w", sc.ID, err)
		}
	}
	return serr
}

// putIfPresent commits ch, which writes schedule id, only if id still
// exists; ok reports whether it did.
func (s *Scheduler) putIfPresent(ctx context.Context, ch store.Change, id string) (bool, error) {
	s.schedMu.Lock()
	defer s.schedMu.Unlock()
	if _, err := s.st.Schedule(ctx, id); errors.Is(err, store.ErrNotFound) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	_, err := s.st.Commit(ctx, ch)
	return err == nil, err
}
