// Package pgserver starts a throwaway PostgreSQL server from the machine's own
// binaries (initdb, pg_ctl), for the tests and for `kongbot demo`.
//
// PostgreSQL refuses to run as root. When the process is root, the server runs
// as the `postgres` user (through runuser) in a data directory that user owns.
package pgserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Server is a running PostgreSQL server on a loopback port.
type Server struct {
	Port    int
	DataDir string
	binDir  string
	asUser  string // "" when running as the current user
	ownDir  bool   // remove DataDir's parent on Stop
	baseDir string
}

// Options tune Start. The zero value is a sensible default.
type Options struct {
	// BaseDir holds the data directory; a temporary directory when empty
	// (removed by Stop).
	BaseDir string
	// Port to listen on; a free port when 0.
	Port int
	// Durable keeps fsync on. Tests turn it off for speed; nothing they
	// check depends on surviving a machine crash.
	Durable bool
}

// BinDir finds the directory holding initdb and pg_ctl: $PG_BIN, PATH, then
// the newest /usr/lib/postgresql/*/bin.
func BinDir() (string, error) {
	if d := os.Getenv("PG_BIN"); d != "" {
		return d, nil
	}
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Dir(real), nil
		}
		return filepath.Dir(p), nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("pgserver: PostgreSQL server binaries not found (install postgresql, or set PG_BIN to the directory holding initdb and pg_ctl)")
}

func versionOf(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// Start initialises a fresh cluster and starts it. The caller must Stop it.
func Start(ctx context.Context, opt Options) (*Server, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	s := &Server{binDir: bin, Port: opt.Port}
	if os.Geteuid() == 0 {
		if _, err := user.Lookup("postgres"); err != nil {
			return nil, errors.New("pgserver: running as root needs a 'postgres' user (apt-get install postgresql creates it)")
		}
		s.asUser = "postgres"
	}
	s.baseDir = opt.BaseDir
	if s.baseDir == "" {
		d, err := os.MkdirTemp("", "kongbot-pg-")
		if err != nil {
			return nil, fmt.Errorf("pgserver: %w", err)
		}
		s.baseDir, s.ownDir = d, true
	}
	s.DataDir = filepath.Join(s.baseDir, "data")
	if s.asUser != "" {
		// The postgres user must reach the data directory through every parent.
		_ = os.Chmod(s.baseDir, 0o755)
		if err := exec.CommandContext(ctx, "chown", "-R", s.asUser, s.baseDir).Run(); err != nil {
			s.cleanup()
			return nil, fmt.Errorf("pgserver: chown %s: %w", s.baseDir, err)
		}
	}
	if s.Port == 0 {
		if s.Port, err = freePort(); err != nil {
			s.cleanup()
			return nil, err
		}
	}
	if out, err := s.run(ctx, "initdb", "-D", s.DataDir, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale"); err != nil {
		s.cleanup()
		return nil, fmt.Errorf("pgserver: initdb: %w: %s", err, out)
	}
	opts := []string{
		"-p " + strconv.Itoa(s.Port),
		"-c listen_addresses=127.0.0.1",
		"-c unix_socket_directories=" + s.DataDir,
		"-c max_connections=300",
		"-c shared_buffers=64MB",
	}
	if !opt.Durable {
		opts = append(opts, "-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off")
	}
	logFile := filepath.Join(s.DataDir, "server.log")
	if out, err := s.run(ctx, "pg_ctl", "-D", s.DataDir, "-l", logFile, "-w", "-t", "60", "-o", strings.Join(opts, " "), "start"); err != nil {
		log, _ := os.ReadFile(logFile)
		s.cleanup()
		return nil, fmt.Errorf("pgserver: pg_ctl start: %w: %s\n%s", err, out, log)
	}
	return s, nil
}

// DSN is the connection string for database db (user postgres, no password).
func (s *Server) DSN(db string) string {
	u := url.URL{Scheme: "postgres", User: url.User("postgres"), Host: "127.0.0.1:" + strconv.Itoa(s.Port), Path: "/" + db, RawQuery: "sslmode=disable"}
	return u.String()
}

// Stop shuts the server down immediately and removes what Start created.
func (s *Server) Stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := s.run(ctx, "pg_ctl", "-D", s.DataDir, "-m", "immediate", "-w", "stop")
	s.cleanup()
	if err != nil {
		return fmt.Errorf("pgserver: pg_ctl stop: %w", err)
	}
	return nil
}

func (s *Server) cleanup() {
	if s.ownDir {
		os.RemoveAll(s.baseDir)
	}
}

func (s *Server) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	path := filepath.Join(s.binDir, name)
	var cmd *exec.Cmd
	if s.asUser != "" {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", s.asUser, "--", path}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, path, args...)
	}
	cmd.Dir = "/"
	return cmd.CombinedOutput()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgserver: finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
