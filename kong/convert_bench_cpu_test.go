package kong

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// The benchmark's CPU accounting reads Linux's /proc; elsewhere the
// figures are simply not reported.

// processCPU is the user and system CPU this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loadAvg1 is the 1-minute load average, or -1 when unknown.
func loadAvg1() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f, err := strconv.ParseFloat(strings.Fields(string(b))[0], 64)
	if err != nil {
		return -1
	}
	return f
}

// pgCPU reads the CPU used by a PostgreSQL server on this machine: its
// postmaster's own and reaped children's time plus its live children's.
type pgCPU struct{ pid int }

// clockTick is USER_HZ, 100 on every Linux platform Go supports.
const clockTick = 100

func newPGCPU(tb testing.TB, dsn string) pgCPU {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return pgCPU{}
	}
	defer conn.Close(ctx)
	var dir string
	if err := conn.QueryRow(ctx, "SELECT current_setting('data_directory')").Scan(&dir); err != nil {
		return pgCPU{}
	}
	b, err := os.ReadFile(filepath.Join(dir, "postmaster.pid"))
	if err != nil {
		return pgCPU{}
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if err != nil {
		return pgCPU{}
	}
	return pgCPU{pid: pid}
}

func (p pgCPU) read() (time.Duration, bool) {
	if p.pid == 0 {
		return 0, false
	}
	own, ok := benchProcStat(p.pid)
	if !ok || len(own) < 15 {
		return 0, false
	}
	// Fields after the command: [0] state, [1] ppid, ... [11] utime,
	// [12] stime, [13] cutime, [14] cstime.
	ticks := atoi(own[11]) + atoi(own[12]) + atoi(own[13]) + atoi(own[14])
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, false
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f, ok := benchProcStat(pid)
		if ok && len(f) > 12 && atoi(f[1]) == int64(p.pid) {
			ticks += atoi(f[11]) + atoi(f[12])
		}
	}
	return time.Duration(ticks) * time.Second / clockTick, true
}

// benchProcStat returns /proc/pid/stat's fields after the command name.
func benchProcStat(pid int) ([]string, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil, false
	}
	return strings.Fields(s[i+1:]), true
}

func atoi(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}
