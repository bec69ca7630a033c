package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kongbot/kongbot/store"
)

func TestEndpointThroughClient(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "kongbot.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, id := range []string{"r1", "r2"} {
		if _, err := st.Commit(ctx, store.Change{
			Run:   &store.Run{ID: id, Gateway: "prod", Status: "running", Requester: "U1", Data: json.RawMessage(`{"id":"` + id + `"}`)},
			Audit: []store.AuditEntry{{Kind: "start", Actor: "U1"}, {Kind: "approve", Actor: "U2"}},
		}); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(Handler(st, nil))
	defer srv.Close()
	c := NewClient(strings.TrimPrefix(srv.URL, "http://"))

	runs, err := c.Runs(ctx, store.RunFilter{Gateway: "prod"})
	if err != nil || len(runs) != 2 || runs[0].Data != nil {
		t.Fatalf("runs = %+v, %v", runs, err)
	}
	run, err := c.Run(ctx, "r2")
	if err != nil || string(run.Data) != `{"id":"r2"}` {
		t.Fatalf("run = %+v, %v", run, err)
	}
	if _, err := c.Run(ctx, "r9"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing run = %v", err)
	}
	rep, err := c.Audit(ctx, "r1", true)
	if err != nil || len(rep.Entries) != 2 || rep.RunChain == nil || !rep.RunChain.OK() || !rep.Log.OK() || rep.Log.Entries != 4 {
		t.Fatalf("audit = %+v, %v", rep, err)
	}
	if rep, _ := c.Audit(ctx, "r1", false); rep.RunChain != nil {
		t.Fatal("verification without verify=1")
	}
	if _, err := c.Backup(ctx, "relative.db"); err == nil || !strings.Contains(err.Error(), "must be absolute") {
		t.Fatalf("relative backup = %v", err)
	}
	info, err := c.Backup(ctx, filepath.Join(dir, "backup.db"))
	if err != nil || info.Runs != 2 || info.Audit != 4 {
		t.Fatalf("backup = %+v, %v", info, err)
	}
	down := NewClient("127.0.0.1:1")
	if _, err := down.Runs(ctx, store.RunFilter{}); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("unreachable = %v", err)
	}
}

func TestServeStopsWithItsContext(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "kongbot.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, addr, Handler(st, nil), nil) }()
	c := NewClient(addr)
	var runs []store.Run
	for range 100 { // wait for the listener
		if runs, err = c.Runs(context.Background(), store.RunFilter{}); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil || len(runs) != 0 {
		t.Fatalf("runs = %v, %v", runs, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve = %v", err)
	}
	if _, err := c.Runs(context.Background(), store.RunFilter{}); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("after shutdown = %v", err)
	}
}
