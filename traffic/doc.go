// Package traffic moves a gateway's traffic from its old Kong generation to
// its new one, stage by stage, with health gates, and implements the
// runbook's steps.Traffic port.
//
// # Basics
//
// A Backend is the thing that actually splits traffic. Three are provided:
//
//   - HAProxy: the runtime API over a unix socket or TCP (`set server B/S
//     weight N`, `show stat`, `set server … state drain`). It both moves the
//     weights and reports health figures (per-server response counters,
//     average response times, current sessions).
//   - Exec: the operator's own script, run as argv without a shell:
//     `shift OLD_PCT NEW_PCT`, and optionally `health` printing JSON figures.
//   - Manual: people move the weights; the backend returns a Move whose
//     Manual text says what to do, and verifies afterwards with HTTP probes
//     that count which Kong version answers.
//
// A Plan is the list of stages of one hop (hop 1 fast, hop 2 gradual), each
// with a bake time and optionally an approval before it. Gates judge each
// stage while it bakes, sampling about once a second: the 5xx ratio on the
// new servers, latency, and smoke probes through the new cluster. A clear
// breach stops the stage at once and rolls the weights back to the last good
// stage; an inconclusive result (too little traffic, borderline figures)
// pauses for a lead instead of guessing. Hop 1 runs inside the
// request-termination outage (Plan.Outage): Kong's own 503s are expected
// there, so its gates count only requests the new cluster did not answer.
//
// Traffic (New) implements steps.Traffic on top of Gateways. Shift never
// blocks waiting for a person: it returns a steps.Check with a steps.Pause
// (approval before a stage, a manual move, a gate breach, an inconclusive
// gate). The runner writes the person's answer to the step's Journal under
// Pause.Key and calls Shift again. The last good stage lives in the Journal,
// so a crash resumes from it.
//
// # Caveats
//
// HAProxy's rtime and ttime are averages over the server's last 1024
// requests, not percentiles, and lag behind a change; the figures say which
// latency source a gate used. Only probes give a p95.
package traffic
