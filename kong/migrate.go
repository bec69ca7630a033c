package kong

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"text/template"
	"time"

	"github.com/kongbot/kongbot/steps"
)

// Refusals: a migration command that declined to act, named (§4.2, fixtures
// README "CLI exit codes and messages").
const (
	RefusalAPIsPresent     = "apis-present"      // 1.0 up while /apis has rows
	RefusalPending         = "pending"           // 1.0 up while migrations are pending finish
	RefusalNeedsBootstrap  = "needs-bootstrap"   // 1.0 up on an empty database
	RefusalTooOld          = "schema-too-old"    // 1.0 up on a pre-0.14 database
	RefusalNotBootstrapped = "not-bootstrapped"  // 1.0 finish before up (exit 0!)
	RefusalLockHeld        = "lock-held"         // 1.0: another node is migrating (exit 0)
	RefusalNotBootstrapDB  = "bootstrap-refused" // 1.0 bootstrap on a non-empty database
)

// refusalPatterns map an output fragment to its refusal.
var refusalPatterns = []struct{ frag, refusal string }{
	{"you have `api` entities in your database", RefusalAPIsPresent},
	{"database has pending migrations; run 'kong migrations finish'", RefusalPending},
	{"cannot run migrations: database needs bootstrapping", RefusalNeedsBootstrap},
	{"Migration to 1.0 can only be performed from a 0.14", RefusalTooOld},
	{"cannot run migrations: database not bootstrapped", RefusalNotBootstrapped},
	{"aborted: another node is performing database changes", RefusalLockHeld},
	{"cannot bootstrap a non-empty database", RefusalNotBootstrapDB},
}

// RefusalError is a migration run that a known refusal stopped. Hint says
// what to do about it.
type RefusalError struct {
	Verb    steps.MigrationVerb
	Target  string
	Refusal string
	Hint    string
}

func (e *RefusalError) Error() string {
	return fmt.Sprintf("kong %s migrations %s refused (%s): %s", e.Target, e.Verb, e.Refusal, e.Hint)
}

var refusalHints = map[string]string{
	RefusalAPIsPresent:     "the datastore still has /apis entities; run the API conversion step (hop2.apis-convert), then delete the APIs (hop2.apis-delete), then migrate",
	RefusalPending:         "1.0 migrations are pending; run `migrations finish` (after the 0.14 nodes are decommissioned) instead of `up`",
	RefusalNeedsBootstrap:  "the database is empty; a new 1.0 cluster is bootstrapped, not upgraded",
	RefusalTooOld:          "the schema is older than 0.14; run hop 1 (0.14.1 `migrations up`) first",
	RefusalNotBootstrapped: "`finish` found nothing to finish: 1.0 `up` has not run",
	RefusalLockHeld:        "another node holds the migrations lock; wait for it and check the schema",
	RefusalNotBootstrapDB:  "the database is not empty; use `up`",
}

// ErrMigrationFailed marks a migration command that failed without a known
// refusal; the message carries the last lines of its output.
var ErrMigrationFailed = errors.New("migration command failed")

// maxLine bounds one captured output line; longer lines are cut.
const maxLine = 8 << 10

// tailLines is how many last lines are kept for the error message.
const tailLines = 20

// Migrate runs `kong migrations <verb>` of target through the configured
// command, streaming its output line by line to out, then reads the schema
// back by SQL. It never trusts the output alone: an exit 0 whose schema is
// not the expected one is an error.
func (c *Client) Migrate(ctx context.Context, gateway, target string, verb steps.MigrationVerb, out steps.Sink) (steps.MigrationResult, error) {
	return c.MigrateJournaled(ctx, gateway, target, verb, nil, out)
}

// MigrateJournaled is Migrate recording the started process in j, so that
// after a bot restart a migration of the same step still running is
// followed (its log tailed to out) rather than started a second time.
func (c *Client) MigrateJournaled(ctx context.Context, gateway, target string, verb steps.MigrationVerb, j steps.Journal, out steps.Sink) (steps.MigrationResult, error) {
	g, err := c.gateway(gateway)
	if err != nil {
		return steps.MigrationResult{}, err
	}
	cmdCfg, ok := g.cfg.Migrations[target]
	if !ok {
		return steps.MigrationResult{}, fmt.Errorf("gateway %s: no migrations command configured for %s", gateway, target)
	}
	tv, err := parseVersion(target)
	if err != nil {
		return steps.MigrationResult{}, err
	}
	switch verb {
	case steps.MigrateUp, steps.MigrateList:
	case steps.MigrateFinish:
		if !tv.is1x() {
			return steps.MigrationResult{}, fmt.Errorf("kong %s has no `migrations finish` (0.x has up, list, reset only)", target)
		}
	default:
		return steps.MigrationResult{}, fmt.Errorf("migration verb %q is not allowed (up, finish, list)", verb)
	}
	vars := MigrationVars{Verb: string(verb), Config: cmdCfg.Config, Target: target, Gateway: gateway, DSN: g.cfg.DatastoreDSN}
	run, err := runCommand(ctx, cmdCfg, vars, out, []string{g.cfg.DatastoreDSN, g.cfg.AdminToken}, j,
		migrationKey(target, verb), g.migrationLogDir(), fmt.Sprintf("%s-%s-%s", gateway, target, verb))
	res := steps.MigrationResult{ExitCode: run.exit, LogLines: run.lines, Took: run.took, Refusal: run.refusal}
	if err != nil {
		return res, fmt.Errorf("kong %s migrations %s: %w", target, verb, err)
	}
	if run.attached {
		g.log.Info("followed a migration started before a restart", "target", target, "verb", verb, "lines", run.lines, "took", run.took)
	} else {
		g.log.Info("migrations ran", "target", target, "verb", verb, "exit", run.exit, "lines", run.lines, "took", run.took)
	}

	ds, dsErr := ReadDatastore(ctx, g.cfg.DatastoreDSN)
	if dsErr != nil {
		return res, fmt.Errorf("kong %s migrations %s exited %d, but the schema could not be read back: %w",
			target, verb, run.exit, redactErr(dsErr, g.cfg.DatastoreDSN))
	}
	res.Schema = ds.Schema
	if run.refusal != "" {
		return res, &RefusalError{Verb: verb, Target: target, Refusal: run.refusal, Hint: refusalHints[run.refusal]}
	}
	if err := exitOK(tv, verb, run.exit); err != nil && !run.attached {
		return res, fmt.Errorf("kong %s migrations %s: %w: %w\n%s", target, verb, err, ErrMigrationFailed,
			strings.Join(run.tail, "\n"))
	}
	if want := expectedSchema(tv, verb, ds); want != "" && ds.Schema != want {
		return res, fmt.Errorf("kong %s migrations %s exited %d, but the schema is %s (want %s) by SQL",
			target, verb, run.exit, ds.Schema, want)
	}
	if run.attached {
		// A followed process is not our child, so its exit status cannot
		// be read; the schema read by SQL above stands for it.
		res.ExitCode = 0
	}
	return res, nil
}

// AwaitMigration waits for a migration recorded in j that still runs (one
// an earlier bot started before it died), streaming the rest of its output
// to out, so a step's Verify judges the schema only once the migration has
// ended. It reports whether there was one to wait for.
func (c *Client) AwaitMigration(ctx context.Context, gateway, target string, verb steps.MigrationVerb, j steps.Journal, out steps.Sink) (bool, error) {
	rec, ok := runningMigration(j, migrationKey(target, verb))
	if !ok {
		return false, nil
	}
	g, err := c.gateway(gateway)
	if err != nil {
		return true, err
	}
	res, err := follow(ctx, nil, rec, g.cfg.Migrations[target].timeout(), out, []string{g.cfg.DatastoreDSN, g.cfg.AdminToken})
	if err != nil {
		return true, fmt.Errorf("kong %s migration (pid %d): %w", target, rec.PID, err)
	}
	g.log.Info("followed a migration started before a restart", "target", target, "pid", rec.PID, "lines", res.lines, "took", res.took)
	return true, nil
}

// exitOK reads an exit code per §4: 0 is success; 1.0 `list` also answers
// 3 (needs bootstrap), 4 (pending) and 5 (new migrations), which are states,
// not failures.
func exitOK(v version, verb steps.MigrationVerb, code int) error {
	if code == 0 {
		return nil
	}
	if v.is1x() && verb == steps.MigrateList && (code == 3 || code == 4 || code == 5) {
		return nil
	}
	return fmt.Errorf("exit code %d", code)
}

// ListState names a 1.0 `migrations list` exit code (§4.2).
func ListState(code int) string {
	switch code {
	case 0:
		return "up-to-date"
	case 3:
		return "needs bootstrap"
	case 4:
		return "pending migrations"
	case 5:
		return "new migrations available"
	}
	return fmt.Sprintf("exit %d", code)
}

// expectedSchema is the schema a successful run leaves ("" = no claim).
func expectedSchema(v version, verb steps.MigrationVerb, ds Datastore) steps.SchemaState {
	switch {
	case verb == steps.MigrateList:
		return ""
	case v.series() == "0.13" && verb == steps.MigrateUp:
		// A 0.13 `up` on a 0.14 schema is a silent no-op (§4.1).
		if ds.Schema == steps.Schema014 {
			return ""
		}
		return steps.Schema013
	case v.series() == "0.14" && verb == steps.MigrateUp:
		return steps.Schema014
	case v.is1x() && verb == steps.MigrateUp:
		// From 0.14: pending teardowns remain; on a finished database `up`
		// is "already up-to-date".
		if ds.Schema == steps.Schema10 {
			return ""
		}
		return steps.Schema10Pending
	case v.is1x() && verb == steps.MigrateFinish:
		return steps.Schema10
	}
	return ""
}

type runResult struct {
	exit    int
	lines   int
	took    time.Duration
	refusal string
	tail    []string
	// attached: the run followed a migration started before a restart;
	// its exit code is unknown (-1) and the schema decides.
	attached bool
}

// runCommand runs one configured command: argv from templates, no shell,
// detached in its own session with its output in log files (so it survives
// the bot's death: no pipe to break, no signal from the bot's process
// group), the files tailed line by line into out with bounded memory. With
// a Journal, the process is recorded there as soon as it starts, and a
// migration of the same step still running from before a restart is
// followed instead of started again.
func runCommand(ctx context.Context, cfg MigrationCommand, vars MigrationVars, out steps.Sink, secrets []string, j steps.Journal, key, logDir, name string) (runResult, error) {
	argv, err := expand(cfg.Argv, vars)
	if err != nil {
		return runResult{}, err
	}
	if len(argv) == 0 || argv[0] == "" {
		return runResult{}, errors.New("command: empty program name")
	}
	env, err := expand(cfg.Env, vars)
	if err != nil {
		return runResult{}, err
	}
	if r, ok := runningMigration(j, key); ok {
		return follow(ctx, nil, r, cfg.timeout(), out, secrets)
	}
	cmd, rec, err := startDetached(argv, append(os.Environ(), env...), logDir, name, j, key)
	if err != nil {
		return runResult{}, err
	}
	return follow(ctx, cmd, rec, cfg.timeout(), out, secrets)
}

func (cfg MigrationCommand) timeout() time.Duration {
	if cfg.Timeout <= 0 {
		return 10 * time.Minute
	}
	return cfg.Timeout
}

// follow tails a started migration's log files into out until it ends. cmd
// is the process when this bot started it; nil means a process recorded by
// an earlier bot, which is not our child: its exit status cannot be read
// (exit -1, attached) and the schema read by SQL afterwards decides. At
// rec.Started+timeout the process group is killed; a cancelled ctx stops
// only the following, never the migration.
func follow(ctx context.Context, cmd *exec.Cmd, rec migrationRecord, timeout time.Duration, out steps.Sink, secrets []string) (runResult, error) {
	res := runResult{attached: cmd == nil}
	tctx, cancel := context.WithDeadline(ctx, rec.Started.Add(timeout))
	defer cancel()
	done := make(chan struct{})
	stop := make(chan struct{})
	defer close(stop)
	var werr error
	if cmd != nil {
		go func() { werr = cmd.Wait(); close(done) }()
	} else {
		if out != nil {
			out.Line("kongbot", fmt.Sprintf("a migration started at %s (pid %d) is still running; following it instead of starting another",
				rec.Started.UTC().Format(time.RFC3339), rec.PID))
		}
		go func() {
			t := time.NewTicker(200 * time.Millisecond)
			defer t.Stop()
			for rec.running() {
				select {
				case <-stop:
					return
				case <-t.C:
				}
			}
			close(done)
		}()
	}
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	collect := func(stream, path string) {
		defer wg.Done()
		f, err := os.Open(path)
		if err != nil {
			if out != nil {
				out.Line("kongbot", fmt.Sprintf("cannot read the migration's %s log: %v", stream, err))
			}
			return
		}
		defer f.Close()
		readLines(&followReader{ctx: ctx, f: f, done: done}, func(line string) {
			line = redactSecrets(line, secrets...)
			mu.Lock()
			res.lines++
			res.tail = append(res.tail, stream+": "+line)
			if len(res.tail) > tailLines {
				res.tail = res.tail[len(res.tail)-tailLines:]
			}
			if res.refusal == "" {
				for _, p := range refusalPatterns {
					if strings.Contains(line, p.frag) {
						res.refusal = p.refusal
						break
					}
				}
			}
			mu.Unlock()
			if out != nil {
				out.Line(stream, line)
			}
		})
	}
	wg.Add(2)
	go collect("stdout", rec.Stdout)
	go collect("stderr", rec.Stderr)
	timedOut := false
	select {
	case <-done:
	case <-tctx.Done():
		if ctx.Err() != nil {
			// The bot is going away: the migration goes on without it.
			wg.Wait()
			return res, fmt.Errorf("stopped following (pid %d goes on, log %s): %w", rec.PID, rec.Stdout, ctx.Err())
		}
		timedOut = true
		// kubectl, ssh and docker start children; end the whole group.
		_ = syscall.Kill(-rec.PID, syscall.SIGKILL)
		select {
		case <-done:
		case <-ctx.Done():
		}
	}
	wg.Wait()
	res.took = time.Since(rec.Started)
	if timedOut {
		return res, fmt.Errorf("timed out after %s (process group killed)", timeout)
	}
	if res.attached {
		res.exit = -1
		return res, nil
	}
	var ee *exec.ExitError
	switch {
	case werr == nil:
		res.exit = 0
	case errors.As(werr, &ee):
		res.exit = ee.ExitCode()
		if res.exit < 0 {
			return res, fmt.Errorf("%s ended by a signal: %w", cmd.Path, werr)
		}
	default:
		return res, fmt.Errorf("waiting for %s: %w", cmd.Path, werr)
	}
	return res, nil
}

// readLines calls f for every line of r. A line longer than maxLine is cut
// and the rest of it dropped, so a runaway line cannot exhaust memory.
func readLines(r io.Reader, f func(string)) {
	br := bufio.NewReaderSize(r, maxLine)
	var buf []byte
	truncated := false
	for {
		chunk, isPrefix, err := br.ReadLine()
		if len(chunk) > 0 && !truncated {
			room := maxLine - len(buf)
			if len(chunk) > room {
				chunk = chunk[:room]
				truncated = true
			}
			buf = append(buf, chunk...)
		}
		if err != nil {
			if len(buf) > 0 {
				f(lineText(buf, truncated))
			}
			return
		}
		if !isPrefix {
			f(lineText(buf, truncated))
			buf = buf[:0]
			truncated = false
		}
	}
}

func lineText(b []byte, truncated bool) string {
	s := string(bytes.TrimRight(b, "\r"))
	if truncated {
		s += " …(line cut)"
	}
	return s
}

// expand renders each element as a text/template over vars. A missing
// field is an error, never an empty argument.
func expand(items []string, vars MigrationVars) ([]string, error) {
	out := make([]string, 0, len(items))
	for i, it := range items {
		t, err := template.New("arg").Option("missingkey=error").Parse(it)
		if err != nil {
			return nil, fmt.Errorf("command element %d: %w", i, err)
		}
		var b strings.Builder
		if err := t.Execute(&b, vars); err != nil {
			return nil, fmt.Errorf("command element %d: %w", i, err)
		}
		out = append(out, b.String())
	}
	return out, nil
}
