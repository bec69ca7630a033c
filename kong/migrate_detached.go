package kong

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kongbot/kongbot/steps"
)

// migrationKey is the run Journal key holding the record of the migration
// a step started: one per target and verb, as each is one step.
func migrationKey(target string, verb steps.MigrationVerb) string {
	return "kong.migration." + target + "." + string(verb)
}

// migrationRecord is what the Journal keeps about a started migration, so a
// restarted bot finds it still running instead of starting a second one.
// PID and StartTicks (the process's start time in clock ticks since boot,
// /proc/PID/stat field 22, set at fork and kept across exec) identify the
// process: a reused PID has another start time. Token is written before
// the process starts and given to it in its environment, so a bot killed
// between the start and the record of its PID still leaves a way to find
// it (/proc/PID/environ).
type migrationRecord struct {
	PID        int       `json:"pid,omitempty"`
	StartTicks uint64    `json:"start_ticks,omitempty"`
	Token      string    `json:"token"`
	Stdout     string    `json:"stdout"`
	Stderr     string    `json:"stderr"`
	Started    time.Time `json:"started"`
}

// tokenEnv carries a migration's token in its environment.
const tokenEnv = "KONGBOT_MIGRATION_TOKEN"

// findByToken looks for the session leader started with rec's token in its
// environment (the migration itself; children it starts carry the token
// too but lead no session) and fills in its PID and start time.
func (rec *migrationRecord) findByToken() bool {
	if rec.Token == "" {
		return false
	}
	want := []byte(tokenEnv + "=" + rec.Token)
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return false
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil || !slices.ContainsFunc(bytes.Split(b, []byte{0}), func(v []byte) bool { return bytes.Equal(v, want) }) {
			continue
		}
		if sid, err := procSession(pid); err != nil || sid != pid {
			continue
		}
		if _, ticks, err := procStat(pid); err == nil {
			rec.PID, rec.StartTicks = pid, ticks
			return true
		}
	}
	return false
}

// procStat reads a process's state letter and start time from
// /proc/PID/stat.
func procStat(pid int) (state byte, startTicks uint64, err error) {
	f, err := procStatFields(pid)
	if err != nil {
		return 0, 0, err
	}
	// f[0] is field 3 (state), so field 22 (starttime) is f[19].
	startTicks, err = strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("/proc/%d/stat starttime: %w", pid, err)
	}
	return f[0][0], startTicks, nil
}

// procSession is a process's session ID (/proc/PID/stat field 6).
func procSession(pid int) (int, error) {
	f, err := procStatFields(pid)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(f[3])
}

// procStatFields are /proc/PID/stat's fields from the third on. The command
// name (field 2) may hold spaces and parentheses, so they are counted after
// its last ')'.
func procStatFields(pid int) ([]string, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return nil, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return nil, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	return f, nil
}

// running reports whether rec's process is alive and is still the process
// that was started (not a zombie, not a reused PID).
func (rec migrationRecord) running() bool {
	if rec.PID <= 0 {
		return false
	}
	state, start, err := procStat(rec.PID)
	return err == nil && state != 'Z' && state != 'X' && start == rec.StartTicks
}

// followReader reads a log file another process appends to: at end of file
// it waits for more until done is closed, then drains what is left.
type followReader struct {
	ctx  context.Context
	f    *os.File
	done <-chan struct{}
}

func (r *followReader) Read(p []byte) (int, error) {
	for {
		n, err := r.f.Read(p)
		if n > 0 || (err != nil && !errors.Is(err, io.EOF)) {
			return n, err
		}
		select {
		case <-r.done:
			// The writer has ended: one last read picks up its final bytes.
			n, err := r.f.Read(p)
			if n > 0 {
				return n, nil
			}
			if err == nil {
				err = io.EOF
			}
			return 0, err
		case <-r.ctx.Done():
			return 0, io.EOF
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// startDetached starts argv in its own session with stdout and stderr
// written to files under dir, so the migration survives the bot's death
// (no pipe to break, no signal to the bot's process group reaches it).
// The record is written to j twice: with a token before the start (the
// process carries it in its environment) and with the PID and start time
// right after, so a bot killed at any point leaves the migration findable.
func startDetached(argv, env []string, dir, name string, j steps.Journal, key string) (*exec.Cmd, migrationRecord, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, migrationRecord{}, fmt.Errorf("migration log dir: %w", err)
	}
	token := make([]byte, 16)
	if _, err := rand.Read(token); err != nil {
		return nil, migrationRecord{}, fmt.Errorf("migration token: %w", err)
	}
	base := filepath.Join(dir, fmt.Sprintf("%s-%s", name, time.Now().UTC().Format("20060102T150405.000000000")))
	rec := migrationRecord{Token: hex.EncodeToString(token), Stdout: base + ".out.log", Stderr: base + ".err.log", Started: time.Now()}
	put := func() error {
		if j == nil {
			return nil
		}
		b, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		return j.Put(key, string(b))
	}
	outF, err := os.OpenFile(rec.Stdout, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, migrationRecord{}, fmt.Errorf("migration log: %w", err)
	}
	defer outF.Close()
	errF, err := os.OpenFile(rec.Stderr, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, migrationRecord{}, fmt.Errorf("migration log: %w", err)
	}
	defer errF.Close()
	if err := put(); err != nil {
		return nil, migrationRecord{}, fmt.Errorf("recording the migration in the journal: %w", err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(env, tokenEnv+"="+rec.Token)
	cmd.Stdout = outF
	cmd.Stderr = errF
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, migrationRecord{}, fmt.Errorf("starting %s: %w", argv[0], err)
	}
	rec.PID = cmd.Process.Pid
	_, ticks, err := procStat(rec.PID)
	if err != nil {
		// Without its start time a restart could not tell it from a reused PID.
		_ = syscall.Kill(-rec.PID, syscall.SIGKILL)
		_ = cmd.Wait()
		return nil, migrationRecord{}, fmt.Errorf("reading the migration's process start time: %w", err)
	}
	rec.StartTicks = ticks
	if err := put(); err != nil {
		// The token record stands; a restart finds the process by it.
		_ = syscall.Kill(-rec.PID, syscall.SIGKILL)
		_ = cmd.Wait()
		return nil, rec, fmt.Errorf("recording the migration's pid in the journal: %w", err)
	}
	return cmd, rec, nil
}

// runningMigration is the journal's record when its process still runs.
func runningMigration(j steps.Journal, key string) (migrationRecord, bool) {
	if j == nil {
		return migrationRecord{}, false
	}
	v, ok := j.Get(key)
	if !ok {
		return migrationRecord{}, false
	}
	var rec migrationRecord
	if json.Unmarshal([]byte(v), &rec) != nil {
		return migrationRecord{}, false
	}
	if rec.PID == 0 && !rec.findByToken() {
		// Recorded before its start, then not found: it never started
		// (the bot died first) or has ended.
		return rec, false
	}
	return rec, rec.running()
}

func (g *gateway) migrationLogDir() string {
	switch {
	case g.cfg.MigrationLogDir != "":
		return g.cfg.MigrationLogDir
	case g.cfg.SnapshotDir != "":
		return filepath.Join(g.cfg.SnapshotDir, "migrations")
	}
	return filepath.Join(os.TempDir(), "kongbot-migrations")
}
