// Package bot provides kongbot's Slack adapter: it receives `/kong` slash
// commands, button clicks and App Home events over Socket Mode (the default)
// or signed HTTP requests, acknowledges each within Slack's 3 seconds before
// doing any slow work, checks who may act (Slack user groups and user lists,
// no guests, bots or deactivated accounts, no self-approval of high-risk
// steps), turns decisions into engine events for the runner, and delivers
// the store's outbox to Slack in Block Kit.
//
// # Messages
//
// Messages are rendered at delivery time from the run's current state: the
// outbox only says which message (kind, run, step) is due. Each run has one
// parent message (its summary, edited in place as the run moves); every
// other message lives in its thread: one per step, one per approval request,
// step output (long logs as files), notices, and the end of the run,
// broadcast to the channel. The Slack ts of each keyed message is kept in
// the store, so a restarted bot edits the same messages instead of posting
// new ones.
//
// # Delivery
//
// A deliverer goroutine drains the outbox in order per run, retries with
// exponential backoff, honours Slack's Retry-After, and stops for no outage:
// a message is marked delivered only once Slack accepted it. Posts carry
// message metadata naming their outbox entry, so a post whose outcome was
// unknown (a timeout, a crash) is found in Slack instead of posted twice.
//
// # Wiring
//
// New takes the Slack client, the store, the runner and the interfaces the
// bot declares (Planner, Scheduler, Metrics). Run drives the deliverer and,
// in Socket Mode, the socket; in HTTP mode serve Handler as well. Ready
// reports whether the bot can serve (for /readyz).
package bot
