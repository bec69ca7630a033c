package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/kongbot/kongbot/config"
	"github.com/kongbot/kongbot/internal/app"
)

// serveMain is `kongbot serve --config FILE [--log-level L]`: the bot
// itself. It runs until SIGINT or SIGTERM, then stops in order (Slack input,
// the runner, the listeners, the store). Exit 0 after a clean stop, 1 when
// it cannot start or a part fails, 2 on usage.
func serveMain(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runServe(ctx, args, os.Stderr)
}

func runServe(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("kongbot serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "the config file (see config/example.yaml)")
	level := fs.String("log-level", "", "debug, info, warn or error (default: log.level from the config)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *path == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: kongbot serve --config FILE [--log-level debug|info|warn|error]")
		return 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if *level != "" {
		cfg.Log.Level = *level
	}
	if ps := cfg.Check(); len(ps) > 0 {
		fmt.Fprintf(stderr, "%s: %d problem(s); `kongbot config check %s` lists them too\n", *path, len(ps), *path)
		for _, p := range ps {
			fmt.Fprintf(stderr, "  %s\n", p)
		}
		return 1
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(cfg.Log.Level)); err != nil {
		fmt.Fprintf(stderr, "log level %q: %v\n", cfg.Log.Level, err)
		return 2
	}
	log := app.NewLogger(stderr, lv, app.NewRedactor(cfg))
	a, err := app.New(cfg, app.WithLogger(log))
	if err != nil {
		log.Error("kongbot cannot start", "err", err)
		return 1
	}
	log.Info("kongbot starting", "config", *path, "slack_mode", cfg.Slack.Mode, "http", a.HTTPAddr(), "admin", a.AdminAddr(),
		"gateways", cfg.GatewayNames())
	if err := a.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		log.Error("kongbot stopped", "err", err)
		return 1
	}
	log.Info("kongbot stopped")
	return 0
}
