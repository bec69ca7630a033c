// Package app composes kongbot from its config: the store, the Kong and
// traffic adapters, the runner, the planner, the Slack bot, the local admin
// endpoint, and the operational HTTP listener (/healthz, /readyz, /metrics).
// New builds and checks everything and binds the listeners; Run serves until
// its context ends and then stops in order: Slack input first, then the
// runner (a step in flight sees its context end and is verified on the
// next start), then the listeners, and the store last.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/slack-go/slack"

	"github.com/kongbot/kongbot/admin"
	"github.com/kongbot/kongbot/bot"
	"github.com/kongbot/kongbot/config"
	"github.com/kongbot/kongbot/kong"
	"github.com/kongbot/kongbot/runner"
	"github.com/kongbot/kongbot/schedule"
	"github.com/kongbot/kongbot/steps"
	"github.com/kongbot/kongbot/store"
	"github.com/kongbot/kongbot/traffic"
)

// Deps are the parts a scheduler is built from (see WithScheduler).
type Deps struct {
	Config *config.Config
	// Rules are the engine's rules with the config's change windows, the
	// same the runner and the bot have.
	Rules   steps.ApprovalRules
	Store   *store.Store
	Runner  *runner.Runner
	Planner *Planner
	Logger  *slog.Logger
}

// Runnable is a component with its own loop; App runs it beside the bot and
// stops it (by its context) before the runner and the store.
type Runnable interface {
	Run(ctx context.Context) error
}

type options struct {
	logger    *slog.Logger
	hooks     runner.Hooks
	botOpts   []func(*bot.Options)
	scheduler func(Deps) (bot.Scheduler, error)
	storeOpts store.Options
}

// Option tunes New.
type Option func(*options)

// WithLogger sets the logger (default: discard). serve passes a JSON logger
// whose ReplaceAttr is a Redactor's.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithRunnerHooks adds runner hooks after the metrics' own (tests, the demo).
func WithRunnerHooks(h runner.Hooks) Option { return func(o *options) { o.hooks = h } }

// WithBotOptions edits the bot's options before bot.New (tests shorten the
// delivery intervals).
func WithBotOptions(f func(*bot.Options)) Option {
	return func(o *options) { o.botOpts = append(o.botOpts, f) }
}

// WithScheduler replaces the default scheduler (package schedule: upgrade
// windows, scheduled runs, reminders, the digest, the health watch), built
// from the composed parts. When the scheduler is also a Runnable, App runs
// it. A nil result turns scheduling off.
func WithScheduler(f func(Deps) (bot.Scheduler, error)) Option {
	return func(o *options) { o.scheduler = f }
}

// WithStoreOptions overrides how the store is opened (the timeout defaults
// to store.open_timeout).
func WithStoreOptions(so store.Options) Option { return func(o *options) { o.storeOpts = so } }

// App is kongbot, composed. Make it with New, then call Run once.
type App struct {
	cfg *config.Config
	log *slog.Logger

	store   *store.Store
	kong    *kong.Client
	traffic *traffic.Traffic
	runner  *runner.Runner
	planner *Planner
	bot     *bot.Bot
	sched   bot.Scheduler
	metrics *Metrics

	opsLn, slackLn, adminLn net.Listener
	opsSrv, slackSrv        *http.Server
	adminSrv                *http.Server

	storeClosed atomic.Bool
	ran         atomic.Bool
	closeOnce   sync.Once
}

// New builds kongbot from cfg. It reads the secrets the config names from
// the environment, opens the store and binds the listeners; on any error
// everything already opened is closed again. cfg should have passed Check.
func New(cfg *config.Config, opts ...Option) (a *App, err error) {
	o := options{}
	for _, f := range opts {
		f(&o)
	}
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}
	a = &App{cfg: cfg, log: o.logger}
	defer func() {
		if err != nil {
			a.release()
		}
	}()

	so := o.storeOpts
	if so.Timeout == 0 {
		so.Timeout = cfg.Store.OpenTimeout
	}
	if a.store, err = store.Open(cfg.Store.Path, so); err != nil {
		return nil, fmt.Errorf("opening the store: %w", err)
	}
	a.metrics = NewMetrics(a.store, a.log)

	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 256, 64
	kopts, err := kongOptions(cfg, &http.Client{Transport: newKongTransport(cfg, a.metrics, tr)})
	if err != nil {
		return nil, err
	}
	kopts.Logger = a.log.With("component", "kong")
	if a.kong, err = kong.New(kopts); err != nil {
		return nil, err
	}
	topts, err := trafficOptions(cfg, a.store)
	if err != nil {
		return nil, err
	}
	topts.Logger = a.log.With("component", "traffic")
	if a.traffic, err = traffic.New(topts); err != nil {
		return nil, err
	}
	// The change windows are part of the rules: the runner's engine holds
	// high and irreversible steps outside them, and the bot and the
	// scheduler must judge with the same rules.
	sopts, err := schedule.FromConfig(cfg)
	if err != nil {
		return nil, err
	}
	rules := sopts.Rules
	a.runner, err = runner.New(runner.Options{Store: a.store, Kong: a.kong, Traffic: a.traffic, Rules: rules,
		Logger: a.log.With("component", "runner"), Hooks: a.metrics.Hooks(o.hooks)})
	if err != nil {
		return nil, err
	}
	a.planner = NewPlanner(cfg, a.kong)
	deps := Deps{Config: cfg, Rules: rules, Store: a.store, Runner: a.runner, Planner: a.planner, Logger: a.log.With("component", "schedule")}
	if o.scheduler == nil {
		o.scheduler = defaultScheduler(a.kong)
	}
	if a.sched, err = o.scheduler(deps); err != nil {
		return nil, fmt.Errorf("scheduler: %w", err)
	}
	if a.bot, err = a.newBot(rules, o.botOpts); err != nil {
		return nil, err
	}
	if err := a.listen(); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *App) newBot(rules steps.ApprovalRules, edits []func(*bot.Options)) (*bot.Bot, error) {
	s := &a.cfg.Slack
	botToken, err := s.BotToken()
	if err != nil {
		return nil, err
	}
	sopts := []slack.Option{slack.OptionHTTPClient(&http.Client{Timeout: 30 * time.Second})}
	if s.APIURL != "" {
		sopts = append(sopts, slack.OptionAPIURL(s.APIURL))
	}
	bo := bot.Options{Mode: s.Mode, Store: a.store, Runner: a.runner, Rules: rules,
		Planner: a.planner, Scheduler: a.sched, Approvers: a.cfg.Approvers, Starters: a.cfg.Starters,
		Metrics: a.metrics, Logger: a.log.With("component", "bot")}
	if a.cfg.Channels.Runs != "" {
		bo.Channels = []string{a.cfg.Channels.Runs}
	}
	switch s.Mode {
	case bot.ModeHTTP:
		if bo.SigningSecret, err = s.SigningSecret(); err != nil {
			return nil, err
		}
	default:
		appToken, err := s.AppToken()
		if err != nil {
			return nil, err
		}
		sopts = append(sopts, slack.OptionAppLevelToken(appToken))
	}
	bo.API = slack.New(botToken, sopts...)
	for _, f := range edits {
		f(&bo)
	}
	return bot.New(bo)
}

// defaultScheduler is package schedule wired to the runner, the planner and
// the config's timers and channels.
func defaultScheduler(k steps.Inspector) func(Deps) (bot.Scheduler, error) {
	return func(d Deps) (bot.Scheduler, error) {
		o, err := schedule.FromConfig(d.Config)
		if err != nil {
			return nil, err
		}
		o.Rules = d.Rules
		o.Store, o.Runs, o.Inspector, o.Logger = d.Store, d.Runner, k, d.Logger
		o.Starter = schedule.PlanStarter{Planner: d.Planner, Runner: d.Runner, Store: d.Store}
		return schedule.New(o)
	}
}

// listen binds the operational listener, the Slack listener in HTTP mode
// (the same one when the addresses match) and the admin endpoint.
func (a *App) listen() error {
	ops := a.cfg.HTTP.Listen
	slackAddr := ""
	if a.cfg.Slack.Mode == bot.ModeHTTP {
		slackAddr = a.cfg.Slack.Listen
		if ops == "" {
			ops = slackAddr
		}
	}
	if ops != "" {
		ln, err := net.Listen("tcp", ops)
		if err != nil {
			return fmt.Errorf("http.listen %s: %w", ops, err)
		}
		a.opsLn = ln
		mux := a.opsMux()
		if slackAddr == ops {
			mux.Handle("/slack/", a.bot.Handler())
		}
		a.opsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	} else {
		a.log.Warn("no http.listen configured: /healthz, /readyz and /metrics are not served")
	}
	if slackAddr != "" && slackAddr != ops {
		ln, err := net.Listen("tcp", slackAddr)
		if err != nil {
			return fmt.Errorf("slack.listen %s: %w", slackAddr, err)
		}
		a.slackLn = ln
		a.slackSrv = &http.Server{Handler: a.bot.Handler(), ReadHeaderTimeout: 5 * time.Second}
	}
	ln, err := net.Listen("tcp", a.cfg.Admin.Listen)
	if err != nil {
		return fmt.Errorf("admin.listen %s: %w", a.cfg.Admin.Listen, err)
	}
	a.adminLn = ln
	a.adminSrv = &http.Server{Handler: admin.Handler(a.store, a.log.With("component", "admin")), ReadHeaderTimeout: 5 * time.Second}
	return nil
}

// opsMux serves the process's health, readiness and metrics.
func (a *App) opsMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := a.Ready(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "not ready:", err)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.metrics.Registry, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError, Timeout: 10 * time.Second}))
	return mux
}

// Ready reports nil when the bot can serve: the store is open and Slack is
// connected (bot.Ready).
func (a *App) Ready() error {
	var errs []error
	if a.storeClosed.Load() {
		errs = append(errs, errors.New("store is closed"))
	} else if _, err := a.store.Schema(); err != nil {
		errs = append(errs, fmt.Errorf("store: %w", err))
	}
	if err := a.bot.Ready(); err != nil {
		errs = append(errs, fmt.Errorf("slack: %w", err))
	}
	return errors.Join(errs...)
}

// Run serves until ctx ends or a part fails for good (Slack refused the
// token, a listener died), then stops everything in order. On start it
// resumes every unfinished run. It returns the first failure, or nil after
// a clean stop on ctx.
func (a *App) Run(ctx context.Context) error {
	if !a.ran.CompareAndSwap(false, true) {
		return errors.New("app: Run called twice")
	}
	defer a.release()
	ctx, fail := context.WithCancelCause(ctx)
	defer fail(nil)

	var servers sync.WaitGroup
	serve := func(name string, srv *http.Server, ln net.Listener) {
		if srv == nil {
			return
		}
		a.log.Info("listening", "listener", name, "addr", ln.Addr().String())
		servers.Go(func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				fail(fmt.Errorf("%s listener: %w", name, err))
			}
		})
	}
	serve("http", a.opsSrv, a.opsLn)
	serve("admin", a.adminSrv, a.adminLn)

	// Slack input: the bot (socket or deliverer) and, in HTTP mode, its listener.
	botCtx, stopBot := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBot()
	botDone := make(chan struct{})
	go func() {
		defer close(botDone)
		if err := a.bot.Run(botCtx); err != nil && botCtx.Err() == nil {
			fail(fmt.Errorf("slack: %w", err))
		}
	}()
	serve("slack", a.slackSrv, a.slackLn)

	var work sync.WaitGroup
	workCtx, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()
	if r, ok := a.sched.(Runnable); ok {
		work.Go(func() {
			if err := r.Run(workCtx); err != nil && workCtx.Err() == nil {
				fail(fmt.Errorf("scheduler: %w", err))
			}
		})
	}
	work.Go(func() {
		n, err := a.runner.Resume(workCtx)
		if err != nil {
			a.log.Error("resuming runs", "resumed", n, "err", err)
			return
		}
		a.log.Info("resumed runs", "resumed", n)
	})

	<-ctx.Done()
	cause := context.Cause(ctx)
	if errors.Is(cause, context.Canceled) {
		cause = nil
	}
	a.log.Info("stopping", "reason", context.Cause(ctx))

	shutdown := func(srv *http.Server) {
		if srv == nil {
			return
		}
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			a.log.Warn("listener shutdown", "err", err)
		}
	}
	// 1. No more Slack input; the bot cancels and waits for the work its
	// commands and clicks started (their steps see the context end).
	shutdown(a.slackSrv)
	stopBot()
	<-botDone
	// 2. The runner's own work: resume, the scheduler, timers. A step in
	// flight records what it can (journal writes outlive the context) and
	// is verified on the next start.
	stopWork()
	work.Wait()
	a.runner.Close()
	// 3. The listeners, then the store (readyz says so meanwhile).
	a.storeClosed.Store(true)
	shutdown(a.opsSrv)
	shutdown(a.adminSrv)
	servers.Wait()
	return cause
}

// release closes what New opened; Run calls it on its way out.
func (a *App) release() {
	a.closeOnce.Do(func() {
		for _, ln := range []net.Listener{a.opsLn, a.slackLn, a.adminLn} {
			if ln != nil {
				_ = ln.Close()
			}
		}
		if a.runner != nil {
			a.runner.Close()
		}
		if a.store != nil {
			a.storeClosed.Store(true)
			if err := a.store.Close(); err != nil {
				a.log.Error("closing the store", "err", err)
			}
		}
	})
}

// Close releases everything New opened when Run is never called.
func (a *App) Close() {
	if !a.ran.Load() {
		a.release()
	}
}

// Store, Runner, Planner, Bot and Metrics give tests and the demo the parts.
func (a *App) Store() *store.Store { return a.store }

// Runner is the run engine's executor.
func (a *App) Runner() *runner.Runner { return a.runner }

// Planner is the bot's planner.
func (a *App) Planner() *Planner { return a.planner }

// Bot is the Slack adapter.
func (a *App) Bot() *bot.Bot { return a.bot }

// Metrics is the Prometheus registry and its hooks.
func (a *App) Metrics() *Metrics { return a.metrics }

// Kong is the gateway adapter.
func (a *App) Kong() *kong.Client { return a.kong }

// HTTPAddr is the operational listener's address ("" when none).
func (a *App) HTTPAddr() string { return addrOf(a.opsLn) }

// SlackAddr is the HTTP-mode Slack listener's address when it is separate.
func (a *App) SlackAddr() string { return addrOf(a.slackLn) }

// AdminAddr is the admin endpoint's address.
func (a *App) AdminAddr() string { return addrOf(a.adminLn) }

func addrOf(ln net.Listener) string {
	if ln == nil {
		return ""
	}
	return ln.Addr().String()
}
