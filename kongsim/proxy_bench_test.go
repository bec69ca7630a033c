package kongsim

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/kongbot/kongbot/internal/pgtest"
)

// benchEcho is a minimal upstream so that the figure measures the proxy.
func benchEcho(b *testing.B) *httptest.Server {
	b.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"echo":true}`))
	}))
	b.Cleanup(srv.Close)
	return srv
}

func runProxyLoad(b *testing.B, url string) {
	b.Helper()
	tr := &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, DisableCompression: true}
	b.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	b.SetParallelism(8)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Get(url)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
}

// BenchmarkProxyStaticView measures the proxy alone: router, plugins
// (key-auth plus rate-limiting on the route) and forwarding, over a fixed
// entity view.
func BenchmarkProxyStaticView(b *testing.B) {
	echo := benchEcho(b)
	v := &staticView{version: V0141, services: map[string]Service{}, consumers: map[string]Consumer{}, keys: map[string]KeyAuthCredential{}}
	tgt, err := parseUpstreamURL(echo.URL)
	if err != nil {
		b.Fatal(err)
	}
	v.services["s"] = Service{ID: "s", Protocol: "http", Host: tgt.host, Port: tgt.port, Retries: 5, ConnectTimeout: 60000, ReadTimeout: 60000}
	for i, p := range []string{"/a", "/b", "/c", "/bench", "/d", `/users/\d+`} {
		v.routes = append(v.routes, Route{ID: "r" + p, Paths: []string{p}, Protocols: []string{"http", "https"}, StripPath: true,
			ServiceID: "s", CreatedAt: time.Unix(int64(i), 0)})
	}
	name := "alice"
	v.consumers["c"] = Consumer{ID: "c", Username: &name}
	v.keys["k"] = KeyAuthCredential{ID: "cred", ConsumerID: "c", Key: "k"}
	v.plugins = []Plugin{
		{ID: "p1", Name: "rate-limiting", Enabled: true, RouteID: "r/bench", Config: map[string]any{"minute": json.Number("100000000")}},
		{ID: "p2", Name: "cors", Enabled: true, Config: map[string]any{}},
	}
	p := newProxy(V0141, func(context.Context) (ProxyView, error) { return v, nil }, nil, nil)
	srv := httptest.NewServer(p)
	b.Cleanup(srv.Close)
	runProxyLoad(b, srv.URL+"/bench/x?y=1")
}

// BenchmarkProxyNode measures requests/s through one kongsim 0.14.1 node on
// Postgres (its cached view, Admin API-created service and route).
func BenchmarkProxyNode(b *testing.B) {
	echo := benchEcho(b)
	dsn := pgtest.New(b)
	ctx := context.Background()
	var out bytes.Buffer
	if code := Migrate(ctx, MigrateOptions{Version: V0141, DSN: dsn}, "up", &out, &out); code != 0 {
		b.Fatalf("migrations up: %d %s", code, out.String())
	}
	n, err := Start(ctx, Options{Version: V0141, DSN: dsn})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(n.Stop)
	for _, req := range []struct{ path, body string }{
		{"/services", `{"name":"bench","url":"` + echo.URL + `/up"}`},
		{"/services/bench/routes", `{"paths":["/bench"]}`},
	} {
		resp, err := http.Post(n.AdminURL()+req.path, "application/json", bytes.NewBufferString(req.body))
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			b.Fatalf("POST %s: %d", req.path, resp.StatusCode)
		}
	}
	runProxyLoad(b, n.ProxyURL()+"/bench/x")
}
