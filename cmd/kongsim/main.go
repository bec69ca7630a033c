// Command kongsim runs a simulated Kong node (0.13.1, 0.14.1 or 1.0.3) on a
// PostgreSQL datastore, Kong's `migrations` CLI of those versions, and a small
// Okta-like authorization server. It is a test and demo double for Kong.
//
//	kongsim serve --version 0.14.1 --admin 127.0.0.1:8001 --proxy 127.0.0.1:8000 --pg DSN [--plugins bundled,okta-auth] [--name NODE]
//	kongsim migrations up|list|bootstrap|finish|reset --version V --pg DSN [--plugins …] [--yes]
//	kongsim okta …
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
	"time"

	"github.com/kongbot/kongbot/kongsim"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: kongsim serve|migrations|okta [flags]`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stdout, stderr)
	case "migrations":
		return kongsim.RunMigrationsCLI(ctx, args[1:], stdout, stderr)
	case "okta":
		return kongsim.RunOkta(args[1:])
	}
	fmt.Fprintln(stderr, usage)
	return 1
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	version := fs.String("version", "", "Kong version: 0.13.1, 0.14.1 or 1.0.3")
	admin := fs.String("admin", "127.0.0.1:8001", "Admin API listen address")
	proxy := fs.String("proxy", "127.0.0.1:8000", "proxy listen address")
	dsn := fs.String("pg", "", "PostgreSQL DSN of the Kong database")
	plugins := fs.String("plugins", "bundled", "Kong `plugins` setting, e.g. bundled,okta-auth")
	name := fs.String("name", "", "node name reported as hostname (default: the host name)")
	freq := fs.Duration("db-update-frequency", kongsim.DefaultDBUpdateFrequency, "cluster_events polling interval")
	ttl := fs.Duration("db-cache-ttl", 0, "db_cache_ttl (0: the version's default, 1h on 0.13.1 and never after; negative: never)")
	if err := fs.Parse(args); err != nil {
		return 1
	}
	v, err := kongsim.ParseVersion(*version)
	if err != nil {
		fmt.Fprintln(stderr, "Error:", err)
		return 1
	}
	if *dsn == "" {
		fmt.Fprintln(stderr, "Error: --pg is required")
		return 1
	}
	pl := splitComma(*plugins)
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	startCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	n, err := kongsim.Start(startCtx, kongsim.Options{Version: v, DSN: *dsn, AdminAddr: *admin, ProxyAddr: *proxy,
		Plugins: pl, Name: *name, DBUpdateFrequency: *freq, DBCacheTTL: *ttl, Logger: log})
	cancel()
	var se *kongsim.StartError
	switch {
	case errors.As(err, &se):
		for _, l := range se.Stdout {
			fmt.Fprintln(stdout, l)
		}
		for _, l := range se.Stderr {
			fmt.Fprintln(stderr, l)
		}
		return 1
	case err != nil:
		fmt.Fprintf(stderr, "Error: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, "Kong started")
	select {
	case <-ctx.Done():
	case <-n.Done():
	}
	n.Stop()
	fmt.Fprintln(stdout, "Kong stopped")
	return 0
}

func splitComma(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			if i > start {
				out = append(out, s[start:i])
			}
			start = i + 1
		}
	}
	return out
}
