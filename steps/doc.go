// Package steps provides kongbot's runbook as data and the run state machine.
//
// A Plan is the ordered list of Steps that takes one gateway from the Kong
// version it runs to a target version (0.13.x -> 0.14.1 -> 1.0.3), made by
// PlanPath from the detected version. Each Step carries its kind, its risk
// (which sets its approval rule), whether it is idempotent or skippable, the
// outage group it belongs to, and its Do and Verify, which reach the gateway
// only through the ports declared in ports.go.
//
// A Run is the durable, JSON-serialisable state of one upgrade. Transition is
// a pure function (run, event) -> (run', effects): it never does I/O, it only
// says what the runner must do next (execute a step, verify one, post or
// update a message, schedule a timer, run a rollback, release the lock). The
// runner persists run' and the effects before it carries them out, so a crash
// at any point is recovered by an EvResume event.
package steps
