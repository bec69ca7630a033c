package kongsim

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/kongbot/kongbot/internal/pgtest"
)

// TestViewConcurrentAfterOwnWrite checks that every request following a
// node's own write sees it, also when many arrive together while the first
// of them rebuilds the cache (they must wait for that rebuild, not take the
// older snapshot).
func TestViewConcurrentAfterOwnWrite(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.New(t)
	var out, errb bytes.Buffer
	if code := Migrate(ctx, MigrateOptions{Version: V0141, DSN: dsn}, "up", &out, &errb); code != 0 {
		t.Fatalf("up: %s", errb.String())
	}
	pool, err := openPool(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	// Enough rows that a rebuild takes a while, so concurrent readers
	// arrive while it runs.
	if _, err := pool.Exec(ctx, `
		INSERT INTO apis (id, name, upstream_url, preserve_host, uris, strip_uri, retries, upstream_connect_timeout, upstream_send_timeout, upstream_read_timeout)
		SELECT md5('a'||i)::uuid, 'bulk'||i, 'http://127.0.0.1:9', false, '["\/bulk'||i||'"]', true, 5, 60000, 60000, 60000 FROM generate_series(1, 2000) i`); err != nil {
		t.Fatal(err)
	}
	n, err := Start(ctx, Options{Version: V0141, DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop()
	if _, err := n.View(ctx); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32}}
	tests := []struct {
		name  string
		read  func(api string) error // nil error: the API is seen
		count int
	}{
		{"view", func(api string) error {
			v, err := n.View(ctx)
			if err != nil {
				return err
			}
			for _, a := range v.APIs() {
				if a.Name == api {
					return nil
				}
			}
			return fmt.Errorf("view of %d APIs lacks %s", len(v.APIs()), api)
		}, 20},
		{"proxy", func(api string) error {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, n.ProxyURL()+"/"+api, nil)
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode == http.StatusNotFound && strings.Contains(string(body), "no route and no API found") {
				return fmt.Errorf("proxy answered 404 %s", body)
			}
			return nil
		}, 20},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for round := 0; round < 5; round++ {
				api := fmt.Sprintf("%s%d", tc.name, round)
				body := fmt.Sprintf(`{"name":%q,"uris":["/%s"],"upstream_url":"http://127.0.0.1:9"}`, api, api)
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, n.AdminURL()+"/apis", strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					t.Fatalf("POST /apis: %d", resp.StatusCode)
				}
				var wg sync.WaitGroup
				errs := make([]error, tc.count)
				start := make(chan struct{})
				for i := range errs {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						errs[i] = tc.read(api)
					}()
				}
				close(start)
				wg.Wait()
				stale := 0
				for _, err := range errs {
					if err != nil {
						stale++
						t.Log(err)
					}
				}
				if stale > 0 {
					t.Fatalf("round %d: %d of %d concurrent reads after the write missed %s", round, stale, tc.count, api)
				}
			}
		})
	}
}
