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
