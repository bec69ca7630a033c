// Package haproxyproc starts a throwaway HAProxy in front of a set of
// servers, with an admin runtime API socket, for tests and the demo.
//
// The generated configuration is tuned so that moving weights never fails a
// client request: connection failures, empty responses and response
// timeouts are retried on another server (`retry-on`, `option redispatch`),
// and a server at weight 0 finishes what it is serving but gets no new
// requests.
package haproxyproc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"text/template"
	"time"
)

// Server is one backend server.
type Server struct {
	Name   string
	Addr   string // host:port
	Weight int    // 0..256
	// Check turns on HAProxy's TCP health check (every 200 ms).
	Check bool
}

// Options configure the process.
type Options struct {
	// Binary is the haproxy executable; default "haproxy" from PATH.
	Binary string
	// Dir holds the configuration and the admin socket; it must exist and
	// be short enough for a unix socket path (about 100 bytes).
	Dir string
	// Backend is the backend name; default "kong".
	Backend string
	Servers []Server
	// AdminTCP adds a second admin runtime API on a loopback TCP port.
	AdminTCP bool
	// StartTimeout bounds the wait for the runtime API; default 10s.
	StartTimeout time.Duration
}

// Process is a running HAProxy.
type Process struct {
	// FrontURL is the HTTP frontend, e.g. "http://127.0.0.1:41234".
	FrontURL string
	// Socket is the admin runtime API socket path; AdminTCP its TCP
	// address when Options.AdminTCP ("127.0.0.1:port").
	Socket   string
	AdminTCP string
	Backend  string
	Config   string // the generated configuration file
	cmd      *exec.Cmd
	done     chan struct{}
	stderr   *bytes.Buffer
}

var cfgTmpl = template.Must(template.New("cfg").Parse(`global
    stats socket {{.Socket}} level admin mode 600
{{- if .AdminTCP}}
    stats socket ipv4@{{.AdminTCP}} level admin
{{- end}}
    stats timeout 30s
    maxconn 4096

defaults
    mode http
    option redispatch
    retries 3
    retry-on conn-failure empty-response response-timeout
    timeout connect 2s
    timeout client 30s
    timeout server 10s
    timeout queue 5s
    timeout http-keep-alive 10s

frontend fe
    bind {{.Front}}
    default_backend {{.Backend}}

backend {{.Backend}}
    balance roundrobin
    http-reuse safe
{{- range .Servers}}
    server {{.Name}} {{.Addr}} weight {{.Weight}}{{if .Check}} check inter 200ms{{end}}
{{- end}}
`))

// Start writes the configuration, starts HAProxy on a free loopback port and
// waits until its runtime API answers.
func Start(ctx context.Context, o Options) (*Process, error) {
	if o.Binary == "" {
		o.Binary = "haproxy"
	}
	bin, err := exec.LookPath(o.Binary)
	if err != nil {
		return nil, fmt.Errorf("haproxy not installed (apt-get install haproxy): %w", err)
	}
	if o.Backend == "" {
		o.Backend = "kong"
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = 10 * time.Second
	}
	if len(o.Servers) == 0 {
		return nil, errors.New("haproxyproc: no servers")
	}
	sock := filepath.Join(o.Dir, "admin.sock")
	if len(sock) > 100 {
		return nil, fmt.Errorf("haproxyproc: socket path %q is too long for a unix socket", sock)
	}
	var lastErr error
	// The free port can be taken between probing and binding; try again.
	for range 3 {
		p, err := start(ctx, bin, o, sock)
		if err == nil {
			return p, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func start(ctx context.Context, bin string, o Options, sock string) (*Process, error) {
	front, err := freePort()
	if err != nil {
		return nil, fmt.Errorf("haproxyproc: free port: %w", err)
	}
	adminTCP := ""
	if o.AdminTCP {
		if adminTCP, err = freePort(); err != nil {
			return nil, fmt.Errorf("haproxyproc: free port: %w", err)
		}
	}
	var cfg bytes.Buffer
	if err := cfgTmpl.Execute(&cfg, map[string]any{"Socket": sock, "AdminTCP": adminTCP, "Front": front, "Backend": o.Backend, "Servers": o.Servers}); err != nil {
		return nil, fmt.Errorf("haproxyproc: config: %w", err)
	}
	cfgPath := filepath.Join(o.Dir, "haproxy.cfg")
	if err := os.WriteFile(cfgPath, cfg.Bytes(), 0o600); err != nil {
		return nil, fmt.Errorf("haproxyproc: %w", err)
	}
	_ = os.Remove(sock)
	// -db: stay in the foreground, so the process is ours to stop.
	cmd := exec.Command(bin, "-db", "-f", cfgPath)
	stderr := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = stderr, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("haproxyproc: start: %w", err)
	}
	p := &Process{FrontURL: "http://" + front, Socket: sock, AdminTCP: adminTCP, Backend: o.Backend, Config: cfgPath, cmd: cmd, done: make(chan struct{}), stderr: stderr}
	go func() { _ = cmd.Wait(); close(p.done) }()

	deadline := time.Now().Add(o.StartTimeout)
	for {
		if err := p.ping(); err == nil {
			if c, err := net.DialTimeout("tcp", front, time.Second); err == nil {
				c.Close()
				return p, nil
			}
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("haproxyproc: haproxy exited: %s", strings.TrimSpace(stderr.String()))
		case <-ctx.Done():
			_ = p.Close()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = p.Close()
			return nil, fmt.Errorf("haproxyproc: runtime API did not answer within %s: %s", o.StartTimeout, strings.TrimSpace(stderr.String()))
		}
	}
}

func (p *Process) ping() error {
	c, err := net.DialTimeout("unix", p.Socket, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("show info\n")); err != nil {
		return err
	}
	buf := make([]byte, 64)
	_, err = c.Read(buf)
	return err
}

// Close stops HAProxy and waits for it to exit.
func (p *Process) Close() error {
	select {
	case <-p.done:
		return nil
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
	return nil
}
