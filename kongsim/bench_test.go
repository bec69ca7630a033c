package kongsim

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kongbot/kongbot/internal/pgtest"
)

// BenchmarkAdminConvertAPI measures one hand conversion of an API through a
// 0.14.1 node's Admin API (read API, read its plugins, create service, create
// route, delete API), with 8 concurrent clients like a converter would use.
func BenchmarkAdminConvertAPI(b *testing.B) {
	ctx := context.Background()
	dsn := pgtest.New(b)
	var out, errb bytes.Buffer
	if code := Migrate(ctx, MigrateOptions{Version: V0141, DSN: dsn}, "up", &out, &errb); code != 0 {
		b.Fatalf("up: %s", errb.String())
	}
	n, err := Start(ctx, Options{Version: V0141, DSN: dsn})
	if err != nil {
		b.Fatal(err)
	}
	defer n.Stop()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	do := func(method, path, body string, want int) {
		var rd io.Reader
		if body != "" {
			rd = bytes.NewBufferString(body)
		}
		req, _ := http.NewRequestWithContext(ctx, method, n.AdminURL()+path, rd)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := client.Do(req)
		if err != nil {
			b.Error(err)
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			b.Errorf("%s %s: %d, want %d", method, path, resp.StatusCode, want)
		}
	}
	parallel := func(count int, fn func(i int)) {
		var next atomic.Int64
		var wg sync.WaitGroup
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1)) - 1
					if i >= count {
						return
					}
					fn(i)
				}
			}()
		}
		wg.Wait()
	}
	parallel(b.N, func(i int) {
		do("POST", "/apis", fmt.Sprintf(`{"name":"api%d","uris":["/p%d"],"upstream_url":"http://127.0.0.1:15555/u%d"}`, i, i, i), 201)
	})
	b.ResetTimer()
	parallel(b.N, func(i int) {
		do("GET", fmt.Sprintf("/apis/api%d", i), "", 200)
		do("GET", "/plugins?api_id=00000000-0000-0000-0000-000000000000", "", 200)
		do("POST", "/services", fmt.Sprintf(`{"name":"api%d","url":"http://127.0.0.1:15555/u%d"}`, i, i), 201)
		do("POST", fmt.Sprintf("/services/api%d/routes", i), fmt.Sprintf(`{"paths":["/p%d"]}`, i), 201)
		do("DELETE", fmt.Sprintf("/apis/api%d", i), "", 204)
	})
}

// BenchmarkViewRebuild measures the node cache's full re-read of 10,000
// APIs, services and routes (what a node does after an invalidation).
func BenchmarkViewRebuild(b *testing.B) {
	ctx := context.Background()
	dsn := pgtest.New(b)
	var out, errb bytes.Buffer
	if code := Migrate(ctx, MigrateOptions{Version: V0141, DSN: dsn}, "up", &out, &errb); code != 0 {
		b.Fatalf("up: %s", errb.String())
	}
	pool, err := openPool(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, `
		INSERT INTO apis (id, name, upstream_url, preserve_host, uris, strip_uri, retries, upstream_connect_timeout, upstream_send_timeout, upstream_read_timeout)
		SELECT md5('a'||i)::uuid, 'api'||i, 'http://127.0.0.1:15555', false, '["\/a'||i||'"]', true, 5, 60000, 60000, 60000 FROM generate_series(1, 10000) i;
		INSERT INTO services (id, created_at, updated_at, name, retries, protocol, host, port, connect_timeout, write_timeout, read_timeout)
		SELECT md5('s'||i)::uuid, now(), now(), 'svc'||i, 5, 'http', '127.0.0.1', 15555, 60000, 60000, 60000 FROM generate_series(1, 10000) i;
		INSERT INTO routes (id, created_at, updated_at, protocols, paths, regex_priority, strip_path, preserve_host, service_id)
		SELECT md5('r'||i)::uuid, now(), now(), '{http,https}', ARRAY['/r'||i], 0, true, false, md5('s'||i)::uuid FROM generate_series(1, 10000) i`); err != nil {
		b.Fatal(err)
	}
	n, err := Start(ctx, Options{Version: V0141, DSN: dsn})
	if err != nil {
		b.Fatal(err)
	}
	defer n.Stop()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		n.cache.invalidate("api_router:version", "router:version")
		v, err := n.View(ctx)
		if err != nil || len(v.APIs()) != 10000 || len(v.Routes()) != 10000 {
			b.Fatalf("view: %v", err)
		}
	}
}
