package kong

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kongbot/kongbot/internal/pgtest"
	"github.com/kongbot/kongbot/kongsim"
	"github.com/kongbot/kongbot/runner"
	"github.com/kongbot/kongbot/store"
)

// BenchmarkConvert converts and verifies n APIs with one key-auth plugin
// each on a kongsim 0.14.1 node (real PostgreSQL), with the default
// concurrency and one at a time. Each iteration builds its datastore
// outside the timer. The journal is the runner's, on a bbolt store file
// (every durable write fsynced), as in a real run.
//
//	go test -run '^$' -bench BenchmarkConvert -benchtime 1x ./kong/
func BenchmarkConvert(b *testing.B) {
	// delay models a remote gateway: kongsim holds every Admin API and
	// proxy request that long (its fault control), as a network hop would.
	cases := []struct {
		apis, concurrency int
		delay             time.Duration
	}{{10000, 16, 0}, {1000, 1, 0}, {2000, 16, 5 * time.Millisecond}, {300, 1, 5 * time.Millisecond}}
	// KONG_BENCH_APIS=n:c[:delay] runs one other case, e.g. 10000:16:5ms.
	if v := os.Getenv("KONG_BENCH_APIS"); v != "" {
		parts := strings.Split(v, ":")
		var n, k int
		var d time.Duration
		_, err := fmt.Sscanf(strings.Join(parts[:min(2, len(parts))], ":"), "%d:%d", &n, &k)
		if err == nil && len(parts) == 3 {
			d, err = time.ParseDuration(parts[2])
		}
		if err != nil || len(parts) > 3 {
			b.Fatalf("KONG_BENCH_APIS=%q: want n:concurrency[:delay]", v)
		}
		cases = cases[:1]
		cases[0].apis, cases[0].concurrency, cases[0].delay = n, k, d
	}
	for _, bc := range cases {
		b.Run(fmt.Sprintf("apis=%d/concurrency=%d/delay=%s", bc.apis, bc.concurrency, bc.delay), func(b *testing.B) {
			var total time.Duration
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				dsn := pgtest.New(b)
				simMigrate(b, dsn, "0.14.1", "up")
				fill014(b, dsn, bc.apis)
				node := simNode(b, dsn, "0.14.1")
				node.SetFault(kongsim.Fault{AdminDelay: bc.delay, ProxyDelay: bc.delay})
				c := newClient(b, Gateway{DatastoreDSN: dsn,
					Generations: []GenerationNodes{{Version: "0.14.1", Nodes: []NodeOptions{simNodeOpts("a", node)}}},
					Conversion:  ConversionOptions{Concurrency: bc.concurrency}})
				st, err := store.Open(filepath.Join(b.TempDir(), "kongbot.db"), store.Options{})
				if err != nil {
					b.Fatal(err)
				}
				j, err := runner.OpenJournal(context.Background(), st, "bench")
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				start := time.Now()
				chk, err := c.Convert(context.Background(), "gw", j, nil)
				total += time.Since(start)
				b.StopTimer()
				if err != nil || !chk.OK {
					b.Fatalf("convert: %v %q", err, chk.Missing[:min(3, len(chk.Missing))])
				}
				if n := countSQL(b, dsn, "SELECT count(*) FROM plugins WHERE route_id IS NOT NULL"); n != bc.apis {
					b.Fatalf("%d route plugins, want %d", n, bc.apis)
				}
				if got := len(convertedAPIs(j)); got != bc.apis {
					b.Fatalf("%d verified, want %d", got, bc.apis)
				}
				node.Stop()
				st.Close()
			}
			per := total / time.Duration(b.N*bc.apis)
			b.ReportMetric(float64(per.Microseconds())/1000, "ms/api")
			b.ReportMetric(total.Seconds()/float64(b.N), "s/run")
		})
	}
}
