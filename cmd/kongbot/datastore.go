package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/kongbot/kongbot/kong"
)

// datastoreMain is `kongbot datastore restore ARCHIVE --dsn DSN`: load a
// snapshot taken before a migration into an empty database and check every
// table's row count and checksum against the archive's manifest.
func datastoreMain(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runDatastore(ctx, args, os.Stdout, os.Stderr)
}

func runDatastore(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	usage := func() {
		fmt.Fprintln(stderr, "usage: kongbot datastore restore ARCHIVE --dsn DSN")
		fmt.Fprintln(stderr, "  restores a kongbot snapshot into an EMPTY PostgreSQL database and checks counts and checksums;")
		fmt.Fprintln(stderr, "  the DSN may also come from $KONGBOT_RESTORE_DSN (keeps the password out of the process list)")
	}
	if len(args) == 0 || args[0] != "restore" {
		usage()
		return 2
	}
	fs := flag.NewFlagSet("kongbot datastore restore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dsn := fs.String("dsn", os.Getenv("KONGBOT_RESTORE_DSN"), "DSN of the empty target database")
	rest := args[1:]
	var positional []string
	for {
		if err := fs.Parse(rest); err != nil {
			usage()
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if len(positional) != 1 || *dsn == "" {
		usage()
		return 2
	}
	rep, err := kong.Restore(ctx, positional[0], *dsn, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "kongbot datastore restore: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "snapshot of %q (%s) taken %s restored\n", rep.Manifest.Gateway, rep.Manifest.Label, rep.Manifest.TakenAt.Format("2006-01-02 15:04:05Z"))
	return 0
}
