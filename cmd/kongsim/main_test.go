package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kongbot/kongbot/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestServeAndMigrations drives the binary's entry point: migrations, a
// refused start, a node that serves until told to stop through the fault
// control endpoint.
func TestServeAndMigrations(t *testing.T) {
	dsn := pgtest.New(t)
	var out, errb bytes.Buffer
	if code := run([]string{"migrations", "list", "--version", "1.0.3", "--pg", dsn}, &out, &errb); code != 3 {
		t.Fatalf("1.0.3 list on empty db: %d %q %q", code, out.String(), errb.String())
	}
	out.Reset()
	if code := run([]string{"serve", "--version", "1.0.3", "--pg", dsn, "--admin", freeAddr(t), "--proxy", freeAddr(t)}, &out, &errb); code != 1 ||
		!strings.Contains(out.String(), "database needs bootstrapping") {
		t.Fatalf("serve before bootstrap: %d %q", code, out.String())
	}
	out.Reset()
	if code := run([]string{"migrations", "bootstrap", "--version", "1.0.3", "--pg", dsn}, &out, &errb); code != 0 ||
		!strings.Contains(out.String(), "22 executed") {
		t.Fatalf("bootstrap: %d %q", code, out.String())
	}
	if code := run([]string{"migrations", "nope", "--version", "1.0.3", "--pg", dsn}, &out, &errb); code != 1 {
		t.Fatalf("unknown subcommand exit %d", code)
	}

	admin := freeAddr(t)
	var serveOut, serveErr bytes.Buffer
	var wg sync.WaitGroup
	wg.Add(1)
	code := -1
	go func() {
		defer wg.Done()
		code = run([]string{"serve", "--version", "1.0.3", "--pg", dsn, "--admin", admin, "--proxy", freeAddr(t),
			"--plugins", "bundled,okta-auth", "--name", "node-a"}, &serveOut, &serveErr)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var resp *http.Response
	var err error
	for {
		resp, err = http.Get("http://" + admin + "/status")
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("node never answered: %v (stderr %s)", err, serveErr.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Server") != "kong/1.0.3" {
		t.Fatalf("GET /status: %d %q", resp.StatusCode, resp.Header.Get("Server"))
	}
	resp, err = http.Post("http://"+admin+"/__kongsim/fault", "application/json", strings.NewReader(`{"stop":true}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	wg.Wait()
	if code != 0 || !strings.Contains(serveOut.String(), "Kong started") || !strings.Contains(serveOut.String(), "Kong stopped") {
		t.Fatalf("serve: exit %d, stdout %q", code, serveOut.String())
	}
	if strings.Contains(serveErr.String(), dsn) {
		t.Fatal("the DSN leaked into the log")
	}
}
