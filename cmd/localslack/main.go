// Command localslack runs the local Slack workspace on its own, for manual
// use: point a bot at its Web API (-addr, then /api/) and open the page.
//
//	localslack -addr 127.0.0.1:8090 [-seed seed.json] [-commands-url http://127.0.0.1:8080/slack/commands ...]
//
// Tokens and the signing secret come from LOCALSLACK_BOT_TOKEN,
// LOCALSLACK_APP_TOKEN and LOCALSLACK_SIGNING_SECRET (fixed fake values when
// unset); -print-env prints them as shell exports for a bot to use.
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

	"github.com/kongbot/kongbot/localslack"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "localslack:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("localslack", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8090", "listen address")
	seedPath := fs.String("seed", "", "workspace seed (JSON); empty uses the built-in one")
	commands := fs.String("commands-url", "", "bot's slash command URL (HTTP mode)")
	interactions := fs.String("interactions-url", "", "bot's interactivity URL (HTTP mode)")
	events := fs.String("events-url", "", "bot's Events API URL (HTTP mode)")
	printEnv := fs.Bool("print-env", false, "print the tokens and API URL as shell exports")
	verbose := fs.Bool("v", false, "debug logging")
	if err := fs.Parse(args); err != nil {
		return err
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	opts := localslack.Options{
		Addr:          *addr,
		BotToken:      os.Getenv("LOCALSLACK_BOT_TOKEN"),
		AppToken:      os.Getenv("LOCALSLACK_APP_TOKEN"),
		SigningSecret: os.Getenv("LOCALSLACK_SIGNING_SECRET"),
		Endpoints:     localslack.Endpoints{Commands: *commands, Interactions: *interactions, Events: *events},
		Logger:        log,
	}
	if *seedPath != "" {
		seed, err := localslack.LoadSeed(*seedPath)
		if err != nil {
			return err
		}
		opts.Seed = &seed
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ls := localslack.New(opts)
	if err := ls.Start(ctx); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "localslack: page %s\nlocalslack: Web API %s\n", ls.URL(), ls.APIURL())
	if *printEnv {
		fmt.Fprintf(stdout, "export SLACK_API_URL=%s\nexport SLACK_BOT_TOKEN=%s\nexport SLACK_APP_TOKEN=%s\nexport SLACK_SIGNING_SECRET=%s\n",
			ls.APIURL(), ls.BotToken(), ls.AppToken(), ls.SigningSecret())
	}
	<-ctx.Done()
	if err := ls.Close(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
