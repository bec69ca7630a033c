package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/kongbot/kongbot/internal/app"
	"github.com/kongbot/kongbot/steps"
)

// Options configure Run.
type Options struct {
	Env EnvOptions
	Bot BotOptions
	// Out receives the banner and the status line; default os.Stdout.
	Out io.Writer
	// StatusEvery is how often the status line is refreshed; default 1s.
	// Negative: no status line.
	StatusEvery time.Duration
	// Ready, when set, is called once everything is up, with the page URL.
	Ready func(pageURL string)
}

// Run is `kongbot demo`: it starts the environment and the bot in this
// process, prints the page's URL and what to type, keeps a status line, and
// stops everything when ctx ends (Ctrl-C).
func Run(ctx context.Context, o Options) error {
	if o.Out == nil {
		o.Out = os.Stdout
	}
	if o.StatusEvery == 0 {
		o.StatusEvery = time.Second
	}
	log := o.Env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	fmt.Fprintln(o.Out, "kongbot demo: starting Postgres, the fake Okta, three kongsim generations, HAProxy, localslack and the bot…")
	env, err := StartEnv(ctx, o.Env)
	if err != nil {
		return err
	}
	defer env.Close()
	botDir := filepath.Join(env.Dir, "bot")
	if err := os.MkdirAll(botDir, 0o700); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	bc, err := env.WriteConfig(botDir, o.Bot)
	if err != nil {
		return err
	}
	// The config names its secrets by environment variable, as in
	// production; this process is the bot, so they go in its environment.
	for _, kv := range bc.Env {
		k, v, _ := strings.Cut(kv, "=")
		if err := os.Setenv(k, v); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	}
	a, err := app.New(bc.Config, app.WithLogger(log.With("component", "kongbot")))
	if err != nil {
		return fmt.Errorf("demo: bot: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	botErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		botErr <- a.Run(ctx)
		cancel()
	}()
	prov := NewProvisioner(env, bc.AdminAddr, log.With("component", "provisioner"))
	wg.Add(1)
	go func() { defer wg.Done(); _ = prov.Run(ctx) }()

	if err := waitReady(ctx, a); err != nil {
		cancel()
		return err
	}
	fmt.Fprint(o.Out, Banner(env, bc))
	if o.Ready != nil {
		o.Ready(env.Slack.URL())
	}
	if o.StatusEvery > 0 {
		wg.Add(1)
		go func() { defer wg.Done(); statusLoop(ctx, o.Out, o.StatusEvery, env, prov) }()
	}
	<-ctx.Done()
	wg.Wait()
	fmt.Fprintln(o.Out, "\nkongbot demo: stopped; everything it started is gone.")
	select {
	case err := <-botErr:
		if err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("demo: bot: %w", err)
		}
	default:
	}
	return nil
}

func waitReady(ctx context.Context, a *app.App) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		err := a.Ready()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("demo: the bot did not connect to localslack: %w", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Banner says where the page is and what to type.
func Banner(env *Env, bc BotConfig) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n  Slack-like page:  %s   (act as olivia, the on-call engineer; liam and lena are the leads)\n", env.Slack.URL())
	fmt.Fprintf(&b, "  Gateway:          %s → API %s (okta-auth) on two 0.13.1 kongsim nodes\n", env.FrontURL, APIPath)
	if env.HAProxy == nil {
		fmt.Fprintf(&b, "  NOTE: haproxy is not installed, so the demo's own front proxy splits the traffic and the bot's\n        traffic backend is manual: it says what to move, the demo moves it, you press Mark done and the bot\n        checks the split through the front (apt-get install haproxy for the runtime-API backend).\n")
	}
	if env.pg != nil {
		fmt.Fprintf(&b, "  Postgres:         127.0.0.1:%d (throwaway; database kong, user postgres)\n", env.pg.Port)
	}
	fmt.Fprintf(&b, "  Bot admin:        %s   (kongbot runs list --admin %s)\n", bc.AdminAddr, bc.AdminAddr)
	fmt.Fprintf(&b, "  Files:            %s (removed on exit)\n\n", env.Dir)
	fmt.Fprintf(&b, "  In #%s type:\n", "kong-upgrades")
	fmt.Fprintf(&b, "    /kong check %s\n    /kong upgrade start %s to 1.0.3\n", Gateway, Gateway)
	fmt.Fprintf(&b, "  then approve as liam or lena. The demo starts and stops Kong nodes itself when a step asks people to.\n")
	fmt.Fprintf(&b, "  Ctrl-C stops everything.\n\n")
	return b.String()
}

// StatusLine is one line of what runs: nodes per version, HAProxy weights,
// the last second of traffic and the run.
func StatusLine(ctx context.Context, env *Env, run *steps.Run) string {
	var parts []string
	for _, v := range Versions {
		up := 0
		for _, n := range env.Nodes(v) {
			if n.Running() {
				up++
			}
		}
		parts = append(parts, fmt.Sprintf("%s:%d", v, up))
	}
	line := "nodes " + strings.Join(parts, " ")
	if split := env.Split(ctx); len(split) > 0 {
		var ws []string
		for _, v := range Versions {
			if split[v] > 0 {
				ws = append(ws, fmt.Sprintf("%s %d%%", v, split[v]))
			}
		}
		line += " | traffic split " + strings.Join(ws, " / ")
	}
	s := env.Load.LastSecond()
	line += fmt.Sprintf(" | traffic ok %d fail %d/s (%s)", s.OK(), s.Failed(), s)
	if run != nil {
		line += fmt.Sprintf(" | run %s %s", run.ID, run.Status)
		if run.Current != "" && !run.Status.Terminal() {
			line += " at " + run.Current
		}
	} else {
		line += " | no run yet"
	}
	return line
}

func statusLoop(ctx context.Context, out io.Writer, every time.Duration, env *Env, prov *Provisioner) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			line := StatusLine(ctx, env, prov.Latest())
			// \r and clear-to-end keep one refreshed line on a terminal;
			// piped, it is one line per refresh.
			if f, ok := out.(*os.File); ok && isTerminal(f) {
				fmt.Fprintf(out, "\r\033[K%s", line)
			} else {
				fmt.Fprintln(out, line)
			}
		}
	}
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
