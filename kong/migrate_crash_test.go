package kong

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kongbot/kongbot/internal/pgtest"
	"github.com/kongbot/kongbot/steps"
)

const migrateChildEnv = "KONG_TEST_MIGRATE_CHILD"

type migrateChildCfg struct {
	DSN, Script, Journal, LogDir string
}

func migrateChildClient(cfg migrateChildCfg) (*Client, error) {
	return New(Options{Gateways: map[string]Gateway{"gw": {
		Generations:  []GenerationNodes{{Version: "0.14.1", Nodes: []NodeOptions{{Name: "a", AdminURL: "http://127.0.0.1:1"}}}},
		DatastoreDSN: cfg.DSN, MigrationLogDir: cfg.LogDir,
		Migrations: map[string]MigrationCommand{"0.14.1": {
			Argv: []string{cfg.Script, "migrations", "{{.Verb}}"}, Timeout: time.Minute,
		}},
	}}})
}

// migrateChild runs one journaled migration in a child process (the
// re-executed test binary) standing in for the bot, until its parent kills it.
func migrateChild() int {
	var cfg migrateChildCfg
	if err := json.Unmarshal([]byte(os.Getenv(migrateChildEnv)), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	j, err := openFileJournal(cfg.Journal)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	c, err := migrateChildClient(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	_, err = c.MigrateJournaled(context.Background(), "gw", "0.14.1", steps.MigrateUp, j, nil)
	fmt.Fprintln(os.Stderr, "child finished", err)
	return 0
}

// TestMigrationSurvivesBotSIGKILL kills the bot's side in the middle of a
// migration: the migration must run to its end, and the next call for the
// same step must follow the running one, not start a second: whether the
// restarted bot runs the step again (an idempotent step) or verifies it
// (a non-idempotent one: Verify waits for the migration to end).
func TestMigrationSurvivesBotSIGKILL(t *testing.T) {
	for _, resume := range []string{"do again", "verify"} {
		t.Run(resume, func(t *testing.T) { testMigrationSurvivesBotSIGKILL(t, resume) })
	}
}

func testMigrationSurvivesBotSIGKILL(t *testing.T, resume string) {
	dsn := pgtest.New(t)
	loadFixture(t, dsn, "0.14")
	dir := t.TempDir()
	starts, marker := filepath.Join(dir, "starts"), filepath.Join(dir, "marker")
	script := fakeKong(t, fmt.Sprintf("echo started >> %s\nfor i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15; do echo \"migrating $i\"; echo \"warn $i\" >&2; sleep 0.2; done\necho done > %s\necho 'all migrated'", starts, marker))
	cfg := migrateChildCfg{DSN: dsn, Script: script, Journal: filepath.Join(dir, "journal"), LogDir: filepath.Join(dir, "logs")}
	b, _ := json.Marshal(cfg)
	killChildWhen(t, migrateChildEnv, string(b), func() bool {
		jb, _ := os.ReadFile(cfg.Journal)
		logs, _ := filepath.Glob(filepath.Join(cfg.LogDir, "*.out.log"))
		var lb []byte
		if len(logs) == 1 {
			lb, _ = os.ReadFile(logs[0])
		}
		return strings.Contains(string(jb), migrationKey("0.14.1", steps.MigrateUp)) && strings.Contains(string(lb), "migrating 2")
	})
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the migration finished before the bot was killed; the test proves nothing")
	}

	j, err := openFileJournal(cfg.Journal)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := runningMigration(j, migrationKey("0.14.1", steps.MigrateUp)); !ok {
		t.Fatal("the migration did not outlive the bot's process")
	}
	c, err := migrateChildClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sink := &lineSink{}
	if resume == "verify" {
		followed, err := c.AwaitMigration(context.Background(), "gw", "0.14.1", steps.MigrateUp, j, sink)
		if err != nil || !followed {
			t.Fatalf("AwaitMigration: followed %v, err %v", followed, err)
		}
	} else {
		res, err := c.MigrateJournaled(context.Background(), "gw", "0.14.1", steps.MigrateUp, j, sink)
		if err != nil {
			t.Fatalf("second call: %v", err)
		}
		if res.Schema != steps.Schema014 || res.ExitCode != 0 {
			t.Errorf("second call: schema %s exit %d", res.Schema, res.ExitCode)
		}
	}
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("the migration did not complete: %v", err)
	}
	sb, _ := os.ReadFile(starts)
	if n := strings.Count(string(sb), "started"); n != 1 {
		t.Errorf("the migration started %d times, want 1", n)
	}
	lines := sink.all()
	for _, want := range []string{"kongbot: a migration started", "stdout: migrating 15", "stderr: warn 15", "stdout: all migrated"} {
		if !containsLine(lines, want) {
			t.Errorf("followed output lacks %q: %q", want, lines)
		}
	}
}

// TestAwaitMigrationWithoutOne: a Verify with nothing recorded, or with a
// record whose process has ended, does not wait.
func TestAwaitMigrationWithoutOne(t *testing.T) {
	_, j, c := awaitEnv(t)
	if followed, err := c.AwaitMigration(context.Background(), "gw", "0.14.1", steps.MigrateUp, j, nil); followed || err != nil {
		t.Fatalf("empty journal: followed %v, err %v", followed, err)
	}
	ended := osexec.Command("/bin/true")
	if err := ended.Run(); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(migrationRecord{PID: ended.Process.Pid, StartTicks: 1, Started: time.Now()})
	if err := j.Put(migrationKey("0.14.1", steps.MigrateUp), string(b)); err != nil {
		t.Fatal(err)
	}
	if followed, err := c.AwaitMigration(context.Background(), "gw", "0.14.1", steps.MigrateUp, j, nil); followed || err != nil {
		t.Fatalf("ended process: followed %v, err %v", followed, err)
	}
	// Our own PID with another start time stands for a reused PID.
	b, _ = json.Marshal(migrationRecord{PID: os.Getpid(), StartTicks: 1, Started: time.Now()})
	if err := j.Put(migrationKey("0.14.1", steps.MigrateUp), string(b)); err != nil {
		t.Fatal(err)
	}
	if _, ok := runningMigration(j, migrationKey("0.14.1", steps.MigrateUp)); ok {
		t.Fatal("a reused PID counted as the migration")
	}
	_, ticks, err := procStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	b, _ = json.Marshal(migrationRecord{PID: os.Getpid(), StartTicks: ticks, Started: time.Now()})
	if err := j.Put(migrationKey("0.14.1", steps.MigrateUp), string(b)); err != nil {
		t.Fatal(err)
	}
	if _, ok := runningMigration(j, migrationKey("0.14.1", steps.MigrateUp)); !ok {
		t.Fatal("a live process with its recorded start time not recognised")
	}
	if _, ok := runningMigration(j, migrationKey("1.0.3", steps.MigrateUp)); ok {
		t.Fatal("another step's record followed")
	}
}

// TestMigrationFoundByTokenAlone: a bot killed between starting the
// migration and recording its PID left only the record written before the
// start; the restarted bot finds the process by the token in its
// environment and waits for it, and once it has ended does not wait.
func TestMigrationFoundByTokenAlone(t *testing.T) {
	dir, j, c := awaitEnv(t)
	out, errLog := filepath.Join(dir, "out.log"), filepath.Join(dir, "err.log")
	rec := migrationRecord{Token: "0123456789abcdef", Stdout: out, Stderr: errLog, Started: time.Now()}
	b, _ := json.Marshal(rec)
	key := migrationKey("1.0.3", steps.MigrateFinish)
	if err := j.Put(key, string(b)); err != nil {
		t.Fatal(err)
	}
	script := fakeKong(t, "for i in 1 2 3 4 5 6 7 8; do echo \"finishing $i\"; sleep 0.1; done")
	of, _ := os.Create(out)
	ef, _ := os.Create(errLog)
	orphan := osexec.Command(script)
	orphan.Env = append(os.Environ(), tokenEnv+"="+rec.Token)
	orphan.Stdout, orphan.Stderr = of, ef
	orphan.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := orphan.Start(); err != nil {
		t.Fatal(err)
	}
	of.Close()
	ef.Close()
	exited := make(chan struct{})
	go func() { orphan.Wait(); close(exited) }()

	sink := &lineSink{}
	followed, err := c.AwaitMigration(context.Background(), "gw", "1.0.3", steps.MigrateFinish, j, sink)
	if err != nil || !followed {
		t.Fatalf("AwaitMigration: followed %v, err %v", followed, err)
	}
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		t.Fatal("AwaitMigration returned while the migration still ran")
	}
	if !containsLine(sink.all(), "stdout: finishing 8") {
		t.Errorf("followed output: %q", sink.all())
	}
	if followed, err := c.AwaitMigration(context.Background(), "gw", "1.0.3", steps.MigrateFinish, j, nil); followed || err != nil {
		t.Fatalf("after the end: followed %v, err %v", followed, err)
	}
}

// awaitEnv is a journal file and a client whose datastore is never reached.
func awaitEnv(t *testing.T) (string, *fileJournal, *Client) {
	t.Helper()
	dir := t.TempDir()
	j, err := openFileJournal(filepath.Join(dir, "journal"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := migrateChildClient(migrateChildCfg{DSN: "postgres://127.0.0.1:1/none", Script: "/bin/true", LogDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return dir, j, c
}
