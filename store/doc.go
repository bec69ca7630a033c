// Package store keeps kongbot's durable state in one bbolt file: runs, the
// hash-chained audit log, the outbox of Slack messages still to deliver (and
// the Slack timestamps of messages already posted), per-gateway locks,
// schedules, and each run's step journal.
//
// # Transactions
//
// A state change, its audit entries and its outbox messages are written
// together by [Store.Commit] in one bbolt read-write transaction, fsynced
// before Commit returns. The runner commits the intent to run a step before
// the side effect and the outcome after it, so a crash at any point leaves
// the file describing either "about to run" or "ran, with this outcome".
//
// # The audit chain
//
// Audit entries form one global chain: every entry carries a sequence number,
// the hash of the previous entry in the file (Prev) and the hash of the
// previous entry of the same run (RunPrev), and its own hash over all of
// that. The global chain orders everything that happened on the bot and
// makes a deleted or edited entry anywhere visible; the per-run link lets
// `kongbot runs audit ID --verify` check one run without trusting the others.
// The heads (last sequence and hash, globally and per run) are kept beside
// the entries so a truncated tail is detected too.
//
// # Runs
//
// The store does not import package steps: a run is kept as its JSON
// document plus a few fields the store indexes and shows (ID, gateway,
// status, terminal, created, updated) and a version used for optimistic
// concurrency: a Commit that carries a run must name the version it read.
//
// # Opening
//
// bbolt allows one writer process. [Open] waits at most Options.Timeout for
// the file lock and then reports [ErrHeld]. An existing file is first checked
// read-only (a bbolt file, with our meta bucket, a schema this build knows,
// consistent pages) so that a corrupt or foreign file is refused with
// [ErrCorrupt] or [ErrForeign] and never written to.
package store
