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
		return demoMigrations(ctx, args[1:])
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

// demoMigrations runs kongsim's migrations CLI. Two variables serve the
// demo's tests: KONGBOT_DEMO_MIGRATION_LOG names a file where each run
// appends its arguments' verb and version and its exit code (so a test can
// tell a migration never ran twice), and KONGBOT_DEMO_KILL_PARENT names a
// file whose existence makes the run SIGKILL its parent (the bot) while it
// migrates (the file is removed first, so it happens once): the crash test's
// kill inside a migration.
func demoMigrations(ctx context.Context, args []string) int {
	if f := os.Getenv("KONGBOT_DEMO_KILL_PARENT"); f != "" && len(args) > 0 && (args[0] == "up" || args[0] == "finish") {
		// Only the bot that started this run: once it is gone the parent
		// is whatever adopted the orphan.
		if ppid := os.Getppid(); ppid > 1 && os.Remove(f) == nil {
			_ = syscall.Kill(ppid, syscall.SIGKILL)
			// Let the bot die before the migration ends, as a host crash
			// in the middle of a long migration would.
			time.Sleep(200 * time.Millisecond)
		}
	}
	code := kongsim.RunMigrationsCLI(ctx, args, os.Stdout, os.Stderr)
	if f := os.Getenv("KONGBOT_DEMO_MIGRATION_LOG"); f != "" {
		verb, version := "", ""
		if len(args) > 0 {
			verb = args[0]
		}
		for i, a := range args {
			if a == "--version" && i+1 < len(args) {
				version = args[i+1]
			}
		}
		if lf, err := os.OpenFile(f, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err == nil {
			fmt.Fprintf(lf, "%s %s %d\n", verb, version, code)
			lf.Close()
		}
	}
	return code
}
