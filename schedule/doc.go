// Package schedule provides kongbot's time-driven behaviour, on
// robfig/cron/v3 specs whose next times it computes itself (no cron
// goroutine), against an injected Clock:
//
//   - planned upgrades (`/kong upgrade schedule|schedules|unschedule`),
//     kept in the store's schedules bucket, that open a run through a
//     RunStarter when due (approvals are still needed);
//   - change windows (Windows, a steps.WindowGate): high and irreversible
//     steps wait for a window, and the scheduler wakes them when it opens;
//   - approval reminders and expiry, driven from the run's stored state
//     (steps.ApprovalRules.ApprovalDue), so a restart neither loses nor
//     repeats them;
//   - a digest of open runs and pending approvals, on a cron spec;
//   - a health watch of each active run's gateway that posts a change once
//     and its recovery once.
//
// Everything is level-triggered: Tick looks at the store and the clock and
// does what is due, so it can be called at any time, as often as wanted.
// Run calls Tick and sleeps until the next due time.
//
// # Missed times
//
// A schedule (or the digest) that came due while the bot was down is
// handled on the first Tick after the restart: within the grace period it
// opens late, with a note saying so; after it, it is skipped with a note
// in the schedule's channel. A one-off schedule is then marked missed; a
// cron schedule moves on to its next time.
package schedule
