package haproxyproc_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/kongbot/kongbot/internal/haproxyproc"
)

func TestStartProxiesAndCloses(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("hi")) }))
	defer srv.Close()
	dir, err := os.MkdirTemp("", "hp")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	p, err := haproxyproc.Start(context.Background(), haproxyproc.Options{Dir: dir, Servers: []haproxyproc.Server{{Name: "a", Addr: strings.TrimPrefix(srv.URL, "http://"), Weight: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(p.FrontURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(p.FrontURL); err == nil {
		t.Fatal("frontend still answers after Close")
	}
}

func TestStartRejects(t *testing.T) {
	if _, err := haproxyproc.Start(context.Background(), haproxyproc.Options{Dir: t.TempDir()}); err == nil {
		t.Fatal("no servers accepted")
	}
	long := "/tmp/" + strings.Repeat("x", 120)
	if _, err := haproxyproc.Start(context.Background(), haproxyproc.Options{Dir: long, Servers: []haproxyproc.Server{{Name: "a", Addr: "127.0.0.1:1"}}}); err == nil || !strings.Contains(err.Error(), "too long") {
		t.Fatalf("long socket path: %v", err)
	}
	// A configuration HAProxy refuses is reported with its words.
	dir, err := os.MkdirTemp("", "hp")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	_, err = haproxyproc.Start(context.Background(), haproxyproc.Options{Dir: dir, Servers: []haproxyproc.Server{{Name: "bad name", Addr: "127.0.0.1:1"}}})
	if err == nil || !strings.Contains(err.Error(), "haproxy exited") {
		t.Fatalf("bad config: %v", err)
	}
}
