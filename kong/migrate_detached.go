package kong

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
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
// process: a reused PID has another start time.
type migrationRecord struct {
	PID        int       `json:"pid"`
	StartTicks uint64    `json:"start_ticks"`
	Stdout     string    `json:"stdout"`
	Stderr     string    `json:"stderr"`
	Started    time.Time `json:"started"`
}

// procStat reads a process's state letter and start time from
// /proc/PID/stat. The command name (field 2) may hold spaces and
// parentheses, so the fields are counted after its last ')'.
func procStat(pid int) (state byte, startTicks uint64, err error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state), so field 22 (starttime) is f[19].
	if len(f) < 20 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	startTicks, err = strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("/proc/%d/stat starttime: %w", pid, err)
	}
	return f[0][0], startTicks, nil
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
// The record is written to j (one Put) as soon as the PID is known.
func startDetached(argv, env []string, dir, name string, j steps.Journal, key string) (*exec.Cmd, migrationRecord, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, migrationRecord{}, fmt.Errorf("migration log dir: %w", err)
	}
	base := filepath.Join(dir, fmt.Sprintf("%s-%s", name, time.Now().UTC().Format("20060102T150405.000000000")))
	outF, err := os.OpenFile(base+".out.log", os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, migrationRecord{}, fmt.Errorf("migration log: %w", err)
	}
	defer outF.Close()
	errF, err := os.OpenFile(base+".err.log", os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, migrationRecord{}, fmt.Errorf("migration log: %w", err)
	}
	defer errF.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Stdout = outF
	cmd.Stderr = errF
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, migrationRecord{}, fmt.Errorf("starting %s: %w", argv[0], err)
	}
	_, ticks, err := procStat(cmd.Process.Pid)
	if err != nil {
		// Without its start time a restart could not tell it from a reused PID.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		return nil, migrationRecord{}, fmt.Errorf("reading the migration's process start time: %w", err)
	}
	rec := migrationRecord{PID: cmd.Process.Pid, StartTicks: ticks, Stdout: base + ".out.log", Stderr: base + ".err.log", Started: time.Now()}
	if j != nil {
		b, _ := json.Marshal(rec)
		if err := j.Put(key, string(b)); err != nil {
			// Unrecorded, a restart could start a second one: end it now.
			_ = syscall.Kill(-rec.PID, syscall.SIGKILL)
			_ = cmd.Wait()
			return nil, rec, fmt.Errorf("recording migration pid in the journal: %w", err)
		}
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
