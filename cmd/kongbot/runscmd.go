package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/kongbot/kongbot/admin"
	"github.com/kongbot/kongbot/config"
	"github.com/kongbot/kongbot/steps"
	"github.com/kongbot/kongbot/store"
)

// defaultAdmin is tried when neither --admin nor a config names one.
const defaultAdmin = "127.0.0.1:8089"

// source is where the runs and backup commands read the store: the running
// bot's admin endpoint when it answers (the bot holds the bbolt file), else
// the file itself, opened read-only with a short timeout.
type source struct {
	configPath string
	storePath  string
	adminAddr  string
	timeout    time.Duration
}

func (s *source) flags(fs *flag.FlagSet) {
	fs.StringVar(&s.configPath, "config", os.Getenv("KONGBOT_CONFIG"), "kongbot config file (gives store.path and admin.listen)")
	fs.StringVar(&s.storePath, "store", "", "store file (default: store.path of --config)")
	fs.StringVar(&s.adminAddr, "admin", "", "the running bot's admin address (default: admin.listen of --config, else "+defaultAdmin+")")
	fs.DurationVar(&s.timeout, "timeout", time.Second, "how long to wait for the store file when the bot is not answering")
}

func (s *source) resolve() error {
	if s.configPath != "" {
		c, err := config.Load(s.configPath)
		if err != nil {
			return err
		}
		if s.storePath == "" {
			s.storePath = c.Store.Path
		}
		if s.adminAddr == "" {
			s.adminAddr = c.Admin.Listen
		}
	}
	if s.adminAddr == "" {
		s.adminAddr = defaultAdmin
	}
	return nil
}

// reader is what the commands need; the admin client and a local store
// both provide it.
type reader interface {
	Runs(ctx context.Context, f store.RunFilter) ([]store.Run, error)
	Run(ctx context.Context, id string) (store.Run, error)
	Audit(ctx context.Context, id string, verify bool) (admin.AuditReport, error)
	Backup(ctx context.Context, path string) (store.BackupInfo, error)
}

type local struct{ st *store.Store }

func (l local) Runs(ctx context.Context, f store.RunFilter) ([]store.Run, error) {
	return l.st.Runs(ctx, f)
}
func (l local) Run(ctx context.Context, id string) (store.Run, error) { return l.st.Run(ctx, id) }
func (l local) Audit(ctx context.Context, id string, verify bool) (admin.AuditReport, error) {
	return admin.Audit(ctx, l.st, id, verify)
}
func (l local) Backup(ctx context.Context, path string) (store.BackupInfo, error) {
	return l.st.Backup(ctx, path)
}

// with runs fn against the bot's admin endpoint, or, when nothing answers
// there, against the store file.
func (s *source) with(ctx context.Context, stderr io.Writer, fn func(reader) error) error {
	if err := s.resolve(); err != nil {
		return err
	}
	err := fn(admin.NewClient(s.adminAddr))
	if !errors.Is(err, admin.ErrUnreachable) {
		return err
	}
	adminErr := err
	if s.storePath == "" {
		return fmt.Errorf("no kongbot answered at %s, and no store file is known: pass --store PATH or --config FILE", s.adminAddr)
	}
	st, err := store.Open(s.storePath, store.Options{ReadOnly: true, Timeout: s.timeout})
	if errors.Is(err, store.ErrHeld) {
		return fmt.Errorf("%w\nand no kongbot admin endpoint answered at %s (%v);\nif the bot is running, pass its admin address with --admin or its config with --config", err, s.adminAddr, errors.Unwrap(adminErr))
	}
	if err != nil {
		return err
	}
	defer st.Close()
	fmt.Fprintf(stderr, "(the bot is not answering at %s; read %s directly)\n", s.adminAddr, s.storePath)
	return fn(local{st})
}

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// runsMain is `kongbot runs list|show ID|audit ID [--verify]`.
func runsMain(args []string) int {
	ctx, stop := signalContext()
	defer stop()
	return runRuns(ctx, args, os.Stdout, os.Stderr)
}

func runRuns(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	usage := func() {
		fmt.Fprintln(stderr, "usage: kongbot runs list [--gateway G] [--active] | show ID [--json] | audit ID [--verify] [--json]")
		fmt.Fprintln(stderr, "  common flags: --config FILE, --store PATH, --admin ADDR, --timeout D")
	}
	if len(args) == 0 {
		usage()
		return 2
	}
	verb := args[0]
	fs := flag.NewFlagSet("kongbot runs "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var src source
	src.flags(fs)
	gateway := fs.String("gateway", "", "list: only this gateway")
	active := fs.Bool("active", false, "list: only runs that are not finished")
	verify := fs.Bool("verify", false, "audit: verify the hash chain (the run's and the whole log's)")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, ok := parseInterleaved(fs, args[1:])
	if !ok {
		usage()
		return 2
	}
	var err error
	code := 0
	switch {
	case verb == "list" && len(pos) == 0:
		err = src.with(ctx, stderr, func(r reader) error {
			runs, err := r.Runs(ctx, store.RunFilter{Gateway: *gateway, ActiveOnly: *active})
			if err != nil {
				return err
			}
			if *asJSON {
				return json.NewEncoder(stdout).Encode(runs)
			}
			printRuns(stdout, runs)
			return nil
		})
	case verb == "show" && len(pos) == 1:
		err = src.with(ctx, stderr, func(r reader) error {
			rec, err := r.Run(ctx, pos[0])
			if err != nil {
				return err
			}
			if *asJSON {
				return json.NewEncoder(stdout).Encode(rec)
			}
			return printRun(stdout, rec)
		})
	case verb == "audit" && len(pos) == 1:
		err = src.with(ctx, stderr, func(r reader) error {
			rep, err := r.Audit(ctx, pos[0], *verify)
			if err != nil {
				return err
			}
			if *asJSON {
				err = json.NewEncoder(stdout).Encode(rep)
			} else {
				printAudit(stdout, rep)
			}
			if (rep.RunChain != nil && !rep.RunChain.OK()) || (rep.Log != nil && !rep.Log.OK()) {
				code = 1
			}
			return err
		})
	default:
		usage()
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "kongbot runs %s: %v\n", verb, err)
		return 1
	}
	return code
}

// parseInterleaved parses flags that may come before or after positionals.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, bool) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, false
		}
		if fs.NArg() == 0 {
			return pos, true
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func ts(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

func printRuns(w io.Writer, runs []store.Run) {
	if len(runs) == 0 {
		fmt.Fprintln(w, "no runs")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tGATEWAY\tSTATUS\tREQUESTER\tCREATED\tUPDATED")
	for _, r := range runs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Gateway, r.Status, r.Requester, ts(r.Created), ts(r.Updated))
	}
	tw.Flush()
}

func printRun(w io.Writer, rec store.Run) error {
	var run steps.Run
	if err := json.Unmarshal(rec.Data, &run); err != nil {
		return fmt.Errorf("decoding run %s: %w", rec.ID, err)
	}
	fmt.Fprintf(w, "run %s: %s %s -> %s, %s\n", run.ID, run.Gateway, run.From, run.Target, run.Status)
	fmt.Fprintf(w, "requested by %s in %s at %s; updated %s\n", run.Requester, run.Channel, ts(run.CreatedAt), ts(rec.Updated))
	if run.DryRun {
		fmt.Fprintln(w, "dry run")
	}
	fmt.Fprintf(w, "plan fingerprint %s; path %s\n", run.Fingerprint, strings.Join(run.Path, " + "))
	if run.Current != "" {
		fmt.Fprintf(w, "current step: %s\n", run.Current)
	}
	if run.AbortedBy != "" {
		fmt.Fprintf(w, "aborted by %s: %s\n", run.AbortedBy, run.AbortReason)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\nSTEP\tSTATUS\tATTEMPTS\tAPPROVED BY\tDETAIL")
	for _, s := range run.Steps {
		var by []string
		for _, a := range run.Approvals[s.ID] {
			by = append(by, a.User)
		}
		detail := s.Error
		if s.SkipReason != "" {
			detail = "skipped: " + s.SkipReason
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", s.ID, s.Status, s.Attempts, strings.Join(by, ","), detail)
	}
	return tw.Flush()
}

func printAudit(w io.Writer, rep admin.AuditReport) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tAT\tACTOR\tKIND\tTEXT")
	for _, e := range rep.Entries {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", e.Seq, ts(e.At), e.Actor, e.Kind, e.Text)
	}
	tw.Flush()
	for _, v := range []struct {
		what string
		v    *store.Verification
	}{{"run " + rep.Run + "'s chain", rep.RunChain}, {"whole audit log", rep.Log}} {
		if v.v == nil {
			continue
		}
		if v.v.OK() {
			fmt.Fprintf(w, "%s: verified, %d entries, head %.16s\n", v.what, v.v.Entries, v.v.Head)
		} else {
			fmt.Fprintf(w, "%s: BROKEN at %s\n", v.what, v.v.Broken)
		}
	}
}

// storeMain is `kongbot store backup PATH`: a consistent, verified copy of
// the store, written atomically, through the running bot or from the file.
func storeMain(args []string) int {
	ctx, stop := signalContext()
	defer stop()
	return runStore(ctx, args, os.Stdout, os.Stderr)
}

func runStore(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	usage := func() {
		fmt.Fprintln(stderr, "usage: kongbot store backup PATH [--config FILE | --store PATH] [--admin ADDR]")
	}
	if len(args) == 0 || args[0] != "backup" {
		usage()
		return 2
	}
	fs := flag.NewFlagSet("kongbot store backup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var src source
	src.flags(fs)
	pos, ok := parseInterleaved(fs, args[1:])
	if !ok || len(pos) != 1 {
		usage()
		return 2
	}
	err := src.with(ctx, stderr, func(r reader) error {
		// The bot may run in another directory: send it an absolute path.
		path, err := absPath(pos[0])
		if err != nil {
			return err
		}
		info, err := r.Backup(ctx, path)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "backup written to %s: %d bytes, %d runs, %d audit entries (transaction %d), verified\n",
			info.Path, info.Bytes, info.Runs, info.Audit, info.TxID)
		if info.AuditBreak != "" {
			fmt.Fprintf(stdout, "warning: the audit chain is broken at %s (the backup keeps it as it is)\n", info.AuditBreak)
		}
		return nil
	})
	if err != nil {
		fmt.Fprintf(stderr, "kongbot store backup: %v\n", err)
		return 1
	}
	return 0
}

func absPath(p string) (string, error) {
	a, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("backup path %s: %w", p, err)
	}
	return a, nil
}
