package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/kongbot/kongbot/internal/demo"
	"github.com/kongbot/kongbot/kongsim"
)

// demoMain is `kongbot demo [--pg DSN] [--slack ADDR] [--rate N] [--bake D]
// [--log FILE] [--no-haproxy]`: everything on this machine, no account
// anywhere (see package internal/demo). Ctrl-C stops it all.
//
// `kongbot demo kongsim-migrations up|finish|list --version V --pg DSN` is
// the demo's `kong migrations` (kongsim's CLI, in this binary): the demo's
// generated config points its migration commands at it, so the demo needs
// no other binary and builds nothing at run time.
func demoMain(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(args) > 0 && args[0] == "kongsim-migrations" {
		return kongsim.RunMigrationsCLI(ctx, args[1:], os.Stdout, os.Stderr)
	}
	return runDemo(ctx, args, os.Stdout, os.Stderr)
}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kongbot demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	pg := fs.String("pg", "", "DSN of an existing, empty Postgres database for Kong (default: a throwaway Postgres server)")
	slackAddr := fs.String("slack", "127.0.0.1:0", "listen address of the Slack-like page")
	rate := fs.Float64("rate", 5, "steady traffic through the gateway, requests per second (0: none)")
	bake := fs.Duration("bake", 10*time.Second, "bake time of each stage of hop 2's gradual traffic shift")
	logPath := fs.String("log", "", "write the components' logs to this file (default: none)")
	noHAProxy := fs.Bool("no-haproxy", false, "do not use HAProxy even when installed (manual traffic backend)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: kongbot demo [--pg DSN] [--slack ADDR] [--rate N] [--bake D] [--log FILE] [--no-haproxy]")
		return 2
	}
	if *rate < 0 || *bake <= 0 {
		fmt.Fprintln(stderr, "kongbot demo: --rate must be 0 or more and --bake positive")
		return 2
	}
	log := slog.New(slog.DiscardHandler)
	if *logPath != "" {
		f, err := os.OpenFile(*logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			fmt.Fprintln(stderr, "kongbot demo:", err)
			return 1
		}
		defer f.Close()
		log = slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	r := *rate
	if r == 0 {
		r = -1 // Options: negative means no traffic
	}
	err := demo.Run(ctx, demo.Options{
		Env: demo.EnvOptions{PGDSN: *pg, SlackAddr: *slackAddr, Rate: r, NoHAProxy: *noHAProxy, Logger: log},
		Bot: demo.BotOptions{Bake: *bake},
		Out: stdout,
	})
	if err != nil {
		fmt.Fprintln(stderr, "kongbot demo:", err)
		return 1
	}
	return 0
}
