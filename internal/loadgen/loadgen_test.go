package loadgen_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kongbot/kongbot/internal/loadgen"
)

func TestRunCountsByStatus(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch n.Add(1) % 4 {
		case 0:
			w.WriteHeader(http.StatusServiceUnavailable)
		case 1:
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))
	defer srv.Close()
	res, err := loadgen.Run(context.Background(), loadgen.Options{URL: srv.URL, Rate: 500, Total: 100})
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 100 || res.Failed != 25 || res.OK != 75 || res.ByStatus[503] != 25 || res.ByStatus[401] != 25 || res.ByStatus[200] != 50 {
		t.Fatalf("result: %s", res)
	}
}

func TestRunStopsOnCancelAndCountsNoAnswer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	url := srv.URL
	srv.Close() // nobody answers
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(200 * time.Millisecond); cancel() }()
	res, err := loadgen.Run(ctx, loadgen.Options{URL: url, Rate: 50, Total: 1_000_000})
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent == 0 || res.Sent >= 1_000_000 || res.Failed != res.Sent || len(res.Errors) == 0 {
		t.Fatalf("result: %s", res)
	}
}

func TestRunRejectsBadOptions(t *testing.T) {
	for _, o := range []loadgen.Options{{}, {URL: "http://x", Rate: 1}, {URL: "http://x", Total: 1}} {
		if _, err := loadgen.Run(context.Background(), o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}
