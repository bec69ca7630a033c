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
	RefusalAPIsPresent:     "the datastore still has /apis entities; run the API conversion step (convert-apis), then delete the APIs, then migrate",
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
	run, err := runCommand(ctx, cmdCfg, vars, out, []string{g.cfg.DatastoreDSN, g.cfg.AdminToken})
	res := steps.MigrationResult{ExitCode: run.exit, LogLines: run.lines, Took: run.took, Refusal: run.refusal}
	if err != nil {
		return res, fmt.Errorf("kong %s migrations %s: %w", target, verb, err)
	}
	g.log.Info("migrations ran", "target", target, "verb", verb, "exit", run.exit, "lines", run.lines, "took", run.took)

	ds, dsErr := ReadDatastore(ctx, g.cfg.DatastoreDSN)
	if dsErr != nil {
		return res, fmt.Errorf("kong %s migrations %s exited %d, but the schema could not be read back: %w",
			target, verb, run.exit, redactErr(dsErr, g.cfg.DatastoreDSN))
	}
	res.Schema = ds.Schema
	if run.refusal != "" {
		return res, &RefusalError{Verb: verb, Target: target, Refusal: run.refusal, Hint: refusalHints[run.refusal]}
	}
	if err := exitOK(tv, verb, run.exit); err != nil {
		return res, fmt.Errorf("kong %s migrations %s: %w: %w\n%s", target, verb, err, ErrMigrationFailed,
			strings.Join(run.tail, "\n"))
	}
	if want := expectedSchema(tv, verb, ds); want != "" && ds.Schema != want {
		return res, fmt.Errorf("kong %s migrations %s exited %d, but the schema is %s (want %s) by SQL",
			target, verb, run.exit, ds.Schema, want)
	}
	return res, nil
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
}

// runCommand runs one configured command: argv from templates, no shell,
// its own process group (killed whole on timeout or cancel), stdout and
// stderr read line by line into out with bounded memory.
func runCommand(ctx context.Context, cfg MigrationCommand, vars MigrationVars, out steps.Sink, secrets []string) (runResult, error) {
	var res runResult
	argv, err := expand(cfg.Argv, vars)
	if err != nil {
		return res, err
	}
	if len(argv) == 0 || argv[0] == "" {
		return res, errors.New("command: empty program name")
	}
	env, err := expand(cfg.Env, vars)
	if err != nil {
		return res, err
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = nil
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// kubectl, ssh and docker start children; end the whole group.
		if cmd.Process != nil {
			return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
		return nil
	}
	cmd.WaitDelay = 5 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return res, fmt.Errorf("stdout pipe: %w", err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return res, fmt.Errorf("stderr pipe: %w", err)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return res, fmt.Errorf("starting %s: %w", argv[0], err)
	}
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	collect := func(stream string, r io.Reader) {
		defer wg.Done()
		readLines(r, func(line string) {
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
	go collect("stdout", stdout)
	go collect("stderr", stderr)
	wg.Wait()
	werr := cmd.Wait()
	res.took = time.Since(start)
	if ctx.Err() != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return res, fmt.Errorf("timed out after %s (process group killed)", timeout)
		}
		return res, fmt.Errorf("cancelled (process group killed): %w", ctx.Err())
	}
	var ee *exec.ExitError
	switch {
	case werr == nil:
		res.exit = 0
	case errors.As(werr, &ee):
		res.exit = ee.ExitCode()
		if res.exit < 0 {
			return res, fmt.Errorf("%s ended by a signal: %w", argv[0], werr)
		}
	default:
		return res, fmt.Errorf("waiting for %s: %w", argv[0], werr)
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
