package kongsim

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

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

// TestPluginWritesReloadTheirKeys: a plugin write makes a node re-read only
// the plugins of the cache keys it invalidated (as Kong evicts one key),
// and the result must equal a full read of the plugins table, on the
// writing node at once and on another node after its poll, through
// creates, a PATCH that moves a plugin to another route, disabling and
// deleting, in both DAO generations.
func TestPluginWritesReloadTheirKeys(t *testing.T) {
	for _, v := range []Version{V0141, V103} {
		t.Run(string(v), func(t *testing.T) {
			e := newStoryEnv(t)
			cmd := "up"
			if v.Is10() {
				cmd = "bootstrap"
			}
			if code, out := e.migrate(v, cmd); code != 0 {
				t.Fatalf("%s: %s", cmd, out)
			}
			a, err := e.start(v)
			if err != nil {
				t.Fatal(err)
			}
			b, err := e.start(v)
			if err != nil {
				t.Fatal(err)
			}
			e.admin(a, "POST", "/services", map[string]any{"name": "s", "url": e.echo}, 201)
			var routes []string
			for i := 0; i < 3; i++ {
				r := e.admin(a, "POST", "/services/s/routes", map[string]any{"paths": []string{fmt.Sprintf("/r%d", i)}}, 201)
				routes = append(routes, r["id"].(string))
			}
			c := e.admin(a, "POST", "/consumers", map[string]any{"username": "alice"}, 201)
			// Every node reads its plugins once, fully.
			for _, n := range []*Node{a, b} {
				if _, err := n.View(e.ctx); err != nil {
					t.Fatal(err)
				}
			}
			same := func(n *Node) error {
				v, err := n.View(e.ctx)
				if err != nil {
					return err
				}
				all, err := selectPlugins(e.ctx, n.pool, n.version, "", nil)
				if err != nil {
					return err
				}
				key := func(p Plugin) string {
					return fmt.Sprintf("%s %s %s %s %s %s %v", p.ID, p.Name, p.RouteID, p.ServiceID, p.ConsumerID, p.APIID, p.Enabled)
				}
				var got, want []string
				for _, p := range v.(*snapshot).plugins {
					got = append(got, key(p))
				}
				for _, p := range all {
					want = append(want, key(p))
				}
				sort.Strings(got)
				sort.Strings(want)
				if strings.Join(got, "\n") != strings.Join(want, "\n") {
					return fmt.Errorf("cached plugins:\n%s\nin the datastore:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
				}
				return nil
			}
			check := func(step string) {
				t.Helper()
				if err := same(a); err != nil {
					t.Fatalf("%s, writing node: %v", step, err)
				}
				deadline := time.Now().Add(10 * e.freq)
				for {
					err := same(b)
					if err == nil {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("%s, other node after its polls: %v", step, err)
					}
					time.Sleep(e.freq / 4)
				}
			}
			p0 := e.admin(a, "POST", "/routes/"+routes[0]+"/plugins", map[string]any{"name": "key-auth"}, 201)
			check("route plugin created")
			e.admin(a, "POST", "/plugins", map[string]any{"name": "rate-limiting", "config": map[string]any{"minute": 10}}, 201)
			check("global plugin created")
			scoped := map[string]any{"name": "rate-limiting", "config": map[string]any{"minute": 5}}
			if v.Is10() {
				scoped["consumer"] = map[string]any{"id": c["id"]}
				scoped["route"] = map[string]any{"id": routes[1]}
			} else {
				scoped["consumer_id"], scoped["route_id"] = c["id"], routes[1]
			}
			e.admin(a, "POST", "/plugins", scoped, 201)
			check("consumer-scoped plugin created")
			move := map[string]any{"route_id": routes[2]}
			if v.Is10() {
				move = map[string]any{"route": map[string]any{"id": routes[2]}}
			}
			e.admin(a, "PATCH", "/plugins/"+p0["id"].(string), move, 200)
			check("plugin moved to another route")
			e.admin(a, "PATCH", "/plugins/"+p0["id"].(string), map[string]any{"enabled": false}, 200)
			check("plugin disabled")
			e.admin(a, "DELETE", "/plugins/"+p0["id"].(string), nil, 204)
			check("plugin deleted")
		})
	}
}
