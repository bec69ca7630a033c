package bot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"

	"github.com/kongbot/kongbot/commands"
	"github.com/kongbot/kongbot/config"
	"github.com/kongbot/kongbot/runner"
	"github.com/kongbot/kongbot/steps"
	"github.com/kongbot/kongbot/store"
)

// Transport modes.
const (
	ModeSocket = "socket"
	ModeHTTP   = "http"
)

// Planner reads gateways and plans upgrades; cmd/kongbot wires it to
// package kong (Inspect) and steps.PlanPath.
type Planner interface {
	// Gateways lists the configured gateway names.
	Gateways() []string
	// Labels names a gateway and its datastore for step descriptions
	// (never a secret: no DSN password).
	Labels(gateway string) steps.Labels
	// Inspect reads a gateway back.
	Inspect(ctx context.Context, gateway string) (steps.Inventory, error)
	// Plan inspects the gateway and plans the path to target ("" is the
	// default target). Errors wrap steps.ErrUnsupportedPath or
	// steps.ErrNothingToDo when no plan applies.
	Plan(ctx context.Context, gateway, target string) (steps.Plan, steps.Inventory, error)
}

// Scheduler handles the upgrade window commands; package schedule provides
// one. Each method returns the text to show the user (mrkdwn).
type Scheduler interface {
	Schedule(ctx context.Context, user, channel string, c commands.UpgradeSchedule) (string, error)
	Schedules(ctx context.Context) (string, error)
	Unschedule(ctx context.Context, user string, id string) (string, error)
}

// Metrics receives the bot's counters; cmd/kongbot implements it with
// Prometheus. Methods must be cheap and safe for concurrent use.
type Metrics interface {
	// APIError counts a failed Slack Web API call: op is what the bot was
	// doing ("post", "update", "upload", "publish", "users.info", ...),
	// reason one of "rate_limited", "server", "network" or the Slack error
	// code ("not_in_channel").
	APIError(op, reason string)
	// RateLimited counts a 429 and the Retry-After Slack asked for.
	RateLimited(op string, retryAfter time.Duration)
	// OutboxDepth is the number of undelivered outbox messages.
	OutboxDepth(n int)
	// Acked observes how long a request waited for its acknowledgement.
	Acked(transport, kind string, d time.Duration)
}

// NopMetrics discards everything.
type NopMetrics struct{}

func (NopMetrics) APIError(string, string)             {}
func (NopMetrics) RateLimited(string, time.Duration)   {}
func (NopMetrics) OutboxDepth(int)                     {}
func (NopMetrics) Acked(string, string, time.Duration) {}

// Options configure a Bot.
type Options struct {
	// API is the Web API client made with the bot token (xoxb-), and in
	// Socket Mode the app-level token (slack.OptionAppLevelToken).
	API *slack.Client
	// Mode is ModeSocket (default) or ModeHTTP.
	Mode string
	// SigningSecret verifies HTTP-mode requests; required in HTTP mode.
	SigningSecret string

	Store   *store.Store
	Runner  *runner.Runner
	Rules   steps.ApprovalRules
	Planner Planner
	// Scheduler is nil when scheduling is not configured.
	Scheduler Scheduler

	// Approvers may approve, reject, answer pauses and choose rollbacks.
	Approvers config.Who
	// Starters may start runs; empty means anyone who is not a guest.
	Starters config.Who
	// Channels are where /kong is accepted (IDs, or #names); empty: any.
	Channels []string

	Metrics Metrics
	Logger  *slog.Logger
	Now     func() time.Time

	// PollInterval is how often the deliverer looks for new outbox
	// messages; default 200ms.
	PollInterval time.Duration
	// RetryBase and RetryMax bound the delivery backoff; default 1s, 5m.
	RetryBase, RetryMax time.Duration
	// GroupCacheTTL is how long user group members and users.info answers
	// are reused for display; decisions always ask Slack again (and fall
	// back to an entry this fresh only when Slack does not answer).
	// Default 1m.
	GroupCacheTTL time.Duration
	// HomeRefresh is the least time between App Home republishes for one
	// viewer when runs change; default 5s.
	HomeRefresh time.Duration
	// CallTimeout bounds each Slack Web API call; default 10s.
	CallTimeout time.Duration
	// Workers bounds how many commands, clicks and events are worked on at
	// once after their ack (runs' steps are not counted); default 16. A
	// burst of requests then queues instead of starving the acks of CPU.
	Workers int
	// SocketOptions are passed to socketmode.New.
	SocketOptions []socketmode.Option
}

// Bot is the Slack adapter. Make it with New.
type Bot struct {
	api     *slack.Client
	mode    string
	secret  string
	st      *store.Store
	run     *runner.Runner
	rules   steps.ApprovalRules
	planner Planner
	sched   Scheduler
	auth    *authz
	chans   []string
	metrics Metrics
	log     *slog.Logger
	now     func() time.Time
	opts    Options
	http    *http.Client

	base    context.Context
	cancel  context.CancelFunc
	work    sync.WaitGroup
	seen    *dedup
	slots   chan struct{}
	wake    chan struct{}
	running atomic.Bool
	conn    atomic.Bool // socket mode: connected
	authErr atomic.Pointer[string]
	botUser atomic.Pointer[string]

	dmu        sync.Mutex
	dirty      map[string]bool      // runs whose summary needs an edit
	drawn      map[string]time.Time // when each run's summary was last edited
	pauseUntil time.Time            // rate limited: no calls before this
	checkHeads map[uint64]bool      // posts to look up in Slack before posting
	links      map[string]string
	homes      map[string]time.Time // viewers -> last publish
	homeDirty  bool
	lastDepth  time.Time
}

// New checks the options and makes a Bot; it does not contact Slack.
func New(o Options) (*Bot, error) {
	var errs []error
	if o.API == nil {
		errs = append(errs, errors.New("no Slack API client"))
	}
	if o.Store == nil {
		errs = append(errs, errors.New("no store"))
	}
	if o.Runner == nil {
		errs = append(errs, errors.New("no runner"))
	}
	if o.Planner == nil {
		errs = append(errs, errors.New("no planner"))
	}
	switch o.Mode {
	case "":
		o.Mode = ModeSocket
	case ModeSocket:
	case ModeHTTP:
		if o.SigningSecret == "" {
			errs = append(errs, errors.New("HTTP mode needs the signing secret"))
		}
	default:
		errs = append(errs, fmt.Errorf("unknown mode %q (socket or http)", o.Mode))
	}
	if o.Approvers.Empty() {
		errs = append(errs, errors.New("no approvers: give user groups and/or users"))
	}
	if err := o.Rules.Normalize().Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("bot: %w", err)
	}
	if o.Metrics == nil {
		o.Metrics = NopMetrics{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.PollInterval, 200*time.Millisecond)
	def(&o.RetryBase, time.Second)
	def(&o.RetryMax, 5*time.Minute)
	def(&o.GroupCacheTTL, time.Minute)
	def(&o.HomeRefresh, 5*time.Second)
	def(&o.CallTimeout, 10*time.Second)
	if o.Workers <= 0 {
		o.Workers = 16
	}
	base, cancel := context.WithCancel(context.Background())
	b := &Bot{
		api: o.API, mode: o.Mode, secret: o.SigningSecret, st: o.Store, run: o.Runner,
		rules: o.Rules.Normalize(), planner: o.Planner, sched: o.Scheduler,
		chans: o.Channels, metrics: o.Metrics, log: o.Logger, now: o.Now, opts: o,
		http: &http.Client{Timeout: o.CallTimeout},
		base: base, cancel: cancel, seen: newDedup(10 * time.Minute),
		wake: make(chan struct{}, 1), slots: make(chan struct{}, o.Workers),
		dirty: map[string]bool{}, drawn: map[string]time.Time{}, checkHeads: map[uint64]bool{}, links: map[string]string{},
		homes: map[string]time.Time{},
	}
	b.auth = newAuthz(b, o.Approvers, o.Starters, o.GroupCacheTTL)
	return b, nil
}

// Run delivers the outbox until ctx ends and, in Socket Mode, connects to
// Slack and serves commands and clicks. In HTTP mode Run must still be
// called (for the deliverer) while Handler serves requests. On return,
// work started by commands and clicks has been cancelled and waited for.
func (b *Bot) Run(ctx context.Context) error {
	if !b.running.CompareAndSwap(false, true) {
		return errors.New("bot: Run called twice")
	}
	defer b.running.Store(false)
	defer func() {
		b.cancel()
		b.work.Wait()
	}()
	go func() {
		select {
		case <-ctx.Done():
			b.cancel()
		case <-b.base.Done():
		}
	}()
	if err := b.authTest(ctx); err != nil {
		return err
	}
	b.startupChecks(ctx)
	var wg sync.WaitGroup
	errc := make(chan error, 1)
	if b.mode == ModeSocket {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := b.runSocket(b.base); err != nil && b.base.Err() == nil {
				errc <- err
				b.cancel()
			}
		}()
	}
	b.deliverLoop(b.base)
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
	}
	return nil
}

// authTest learns the bot's own user ID; it retries until Slack answers,
// and gives up only on a bad token.
func (b *Bot) authTest(ctx context.Context) error {
	delay := b.opts.RetryBase
	for {
		cctx, cancel := context.WithTimeout(ctx, b.opts.CallTimeout)
		resp, err := b.api.AuthTestContext(cctx)
		cancel()
		if err == nil {
			id := resp.UserID
			b.botUser.Store(&id)
			b.authErr.Store(nil)
			return nil
		}
		msg := err.Error()
		b.authErr.Store(&msg)
		var se slack.SlackErrorResponse
		if errors.As(err, &se) && (se.Err == "invalid_auth" || se.Err == "not_authed" || se.Err == "account_inactive" || se.Err == "token_revoked") {
			return fmt.Errorf("bot: Slack refused the bot token (auth.test: %s)", se.Err)
		}
		b.log.Warn("auth.test failed; retrying", "err", err, "in", delay)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay = min(delay*2, b.opts.RetryMax)
	}
}

// Ready reports nil when the bot can serve: Run is going, Slack accepted
// the token and, in Socket Mode, the socket is connected.
func (b *Bot) Ready() error {
	if !b.running.Load() {
		return errors.New("bot is not running")
	}
	if e := b.authErr.Load(); e != nil {
		return fmt.Errorf("slack auth.test failing: %s", *e)
	}
	if b.botUser.Load() == nil {
		return errors.New("slack auth.test not done yet")
	}
	if b.mode == ModeSocket && !b.conn.Load() {
		return errors.New("socket mode is not connected")
	}
	return nil
}

// Close stops work started by commands and clicks; Run returns soon after.
func (b *Bot) Close() { b.cancel() }

// spawn runs slow work after an ack, tied to the bot's life.
func (b *Bot) spawn(name string, f func(ctx context.Context)) {
	if b.base.Err() != nil {
		return
	}
	b.work.Add(1)
	go func() {
		defer b.work.Done()
		defer func() {
			if p := recover(); p != nil {
				b.log.Error("panic in handler", "handler", name, "panic", p)
			}
		}()
		f(b.base)
	}()
}

// handle runs a request's work after its ack, at most Options.Workers at
// once; the ack never waits for a slot.
func (b *Bot) handle(name string, f func(ctx context.Context)) {
	b.spawn(name, func(ctx context.Context) {
		select {
		case b.slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		defer func() { <-b.slots }()
		f(ctx)
	})
}

// kick wakes the deliverer (something was queued).
func (b *Bot) kick() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

func (b *Bot) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, b.opts.CallTimeout)
}

// channelAllowed reports whether /kong may be used in the channel.
func (b *Bot) channelAllowed(id, name string) bool {
	if len(b.chans) == 0 {
		return true
	}
	for _, c := range b.chans {
		if c == id || (strings.HasPrefix(c, "#") && strings.TrimPrefix(c, "#") == name) {
			return true
		}
	}
	return false
}

func (b *Bot) channelsText() string {
	var out []string
	for _, c := range b.chans {
		if strings.HasPrefix(c, "#") {
			out = append(out, c)
		} else {
			out = append(out, "<#"+c+">")
		}
	}
	return strings.Join(out, ", ")
}

// dedup remembers request IDs (envelope, trigger, event IDs) for a while so
// a redelivered or replayed request does its work once.
type dedup struct {
	mu   sync.Mutex
	ttl  time.Duration
	seen map[string]time.Time
	last time.Time
}

func newDedup(ttl time.Duration) *dedup { return &dedup{ttl: ttl, seen: map[string]time.Time{}} }

// first reports whether id is new, and remembers it.
func (d *dedup) first(id string, now time.Time) bool {
	if id == "" {
		return true
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if now.Sub(d.last) > d.ttl {
		for k, t := range d.seen {
			if now.Sub(t) > d.ttl {
				delete(d.seen, k)
			}
		}
		d.last = now
	}
	if _, ok := d.seen[id]; ok {
		return false
	}
	d.seen[id] = now
	return true
}
