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
// table's row count and checksum against the archive's manifest; and
// `kongbot datastore verify ARCHIVE`: the same check of the archive alone.
func datastoreMain(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runDatastore(ctx, args, os.Stdout, os.Stderr)
}

func runDatastore(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	usage := func() {
		fmt.Fprintln(stderr, "usage: kongbot datastore restore ARCHIVE --dsn DSN")
		fmt.Fprintln(stderr, "       kongbot datastore verify ARCHIVE")
		fmt.Fprintln(stderr, "  restore checks the archive whole first (nothing is written if it is damaged), then restores the")
		fmt.Fprintln(stderr, "  kongbot snapshot into an EMPTY PostgreSQL database and checks counts and checksums;")
		fmt.Fprintln(stderr, "  the DSN may also come from $KONGBOT_RESTORE_DSN (keeps the password out of the process list)")
		fmt.Fprintln(stderr, "  verify reads the archive back and checks every table against its manifest, touching no database")
	}
	if len(args) == 0 || (args[0] != "restore" && args[0] != "verify") {
		usage()
		return 2
	}
	verb := args[0]
	fs := flag.NewFlagSet("kongbot datastore "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var dsn *string
	if verb == "restore" {
		dsn = fs.String("dsn", os.Getenv("KONGBOT_RESTORE_DSN"), "DSN of the empty target database")
	}
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
	if len(positional) != 1 || (dsn != nil && *dsn == "") {
		usage()
		return 2
	}
	if verb == "verify" {
		info, err := kong.VerifySnapshot(ctx, positional[0])
		if err != nil {
			fmt.Fprintf(stderr, "kongbot datastore verify: %v\n", err)
			return 1
		}
		m := info.Manifest
		fmt.Fprintf(stdout, "snapshot of %q (%s) taken %s from PostgreSQL %s: %d tables, %d rows, %d bytes; every table matches the manifest\n",
			m.Gateway, m.Label, m.TakenAt.Format("2006-01-02 15:04:05Z"), m.Server, len(m.Tables), info.Rows, info.Size)
		return 0
	}
	rep, err := kong.Restore(ctx, positional[0], *dsn, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "kongbot datastore restore: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "snapshot of %q (%s) taken %s restored\n", rep.Manifest.Gateway, rep.Manifest.Label, rep.Manifest.TakenAt.Format("2006-01-02 15:04:05Z"))
	return 0
}
