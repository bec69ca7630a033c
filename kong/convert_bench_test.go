package kong

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kongbot/kongbot/internal/pgtest"
	"github.com/kongbot/kongbot/kongsim"
	"github.com/kongbot/kongbot/runner"
	"github.com/kongbot/kongbot/steps"
	"github.com/kongbot/kongbot/store"
)

// BenchmarkConvert converts and verifies n APIs with one key-auth plugin
// each on a kongsim 0.14.1 node, with the default concurrency and one at a
// time. Each iteration builds its datastore outside the timer. The journal
// is the runner's, on a bbolt store file (every durable write fsynced), as
// in a real run.
//
// The headline datastore is durable (fsync and synchronous_commit on, as a
// production Kong datastore runs): every Admin API write then waits for
// its WAL flush, which one-at-a-time conversion pays in series and
// concurrent conversion shares (group commit). "nosync" is the test
// suite's PostgreSQL (fsync off): only CPU is left to overlap there.
//
//	go test -run '^$' -bench BenchmarkConvert -benchtime 1x ./kong/
//
// Besides the time, each case reports the CPU the benchmark process (bot
// and kongsim) and the PostgreSQL server (when it runs on this machine)
// spent in the timed part, the datastore's commit latency (one-row INSERTs
// one after another, before and after the timed part) and the 1-minute
// load average before and after: on a shared machine both move the
// figures. The PostgreSQL figure is the whole server's, so it means
// something only when the benchmark has the server to itself (not with a
// suite-wide $KONGBOT_TEST_PG).
func BenchmarkConvert(b *testing.B) {
	type benchCase struct {
		datastore         string // "durable" or "nosync"
		apis, concurrency int
		delay             time.Duration // kongsim holds every request this long
		perAPI            bool          // one API at a time, each completely
	}
	cases := []benchCase{
		{"durable", 10000, 16, 0, false}, {"durable", 2000, 16, 0, false},
		{"durable", 2000, 1, 0, false}, {"durable", 2000, 1, 0, true},
		{"nosync", 10000, 16, 0, false}, {"nosync", 2000, 1, 0, false},
	}
	// KONG_BENCH_APIS=n:c[:delay] runs one other case, e.g. 10000:16:5ms;
	// KONG_BENCH_DATASTORE=nosync runs it on the fsync-off server.
	if v := os.Getenv("KONG_BENCH_APIS"); v != "" {
		parts := strings.Split(v, ":")
		var n, k int
		var d time.Duration
		_, err := fmt.Sscanf(strings.Join(parts[:min(2, len(parts))], ":"), "%d:%d", &n, &k)
		if err == nil && len(parts) == 3 {
			d, err = time.ParseDuration(parts[2])
		}
		if err != nil || len(parts) > 3 || n <= 0 || k <= 0 {
			b.Fatalf("KONG_BENCH_APIS=%q: want n:concurrency[:delay]", v)
		}
		ds := os.Getenv("KONG_BENCH_DATASTORE")
		if ds == "" {
			ds = "durable"
		}
		if ds != "durable" && ds != "nosync" {
			b.Fatalf("KONG_BENCH_DATASTORE=%q: want durable or nosync", ds)
		}
		// KONG_BENCH_MODE=per-api converts one API at a time, each
		// completely (concurrency must be 1).
		perAPI := os.Getenv("KONG_BENCH_MODE") == "per-api"
		if perAPI && k != 1 {
			b.Fatalf("KONG_BENCH_MODE=per-api needs concurrency 1, got %d", k)
		}
		cases = []benchCase{{ds, n, k, d, perAPI}}
	}
	for _, bc := range cases {
		mode := "batched"
		if bc.perAPI {
			mode = "per-api"
		}
		name := fmt.Sprintf("datastore=%s/mode=%s/apis=%d/concurrency=%d/delay=%s", bc.datastore, mode, bc.apis, bc.concurrency, bc.delay)
		b.Run(name, func(b *testing.B) {
			var total, cpu, pgCPU, commit time.Duration
			pgKnown := true
			load0 := loadAvg1()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				var dsn string
				if bc.datastore == "durable" {
					dsn = pgtest.NewDurable(b)
				} else {
					dsn = pgtest.New(b)
				}
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
				commit += commitLatency(b, dsn)
				pg := newPGCPU(b, dsn)
				pg0, pgOK0 := pg.read()
				cpu0 := processCPU()
				b.StartTimer()
				start := time.Now()
				var chk steps.Check
				if bc.perAPI {
					err = convertPerAPI(context.Background(), c, "gw", j)
					chk.OK = err == nil
				} else {
					chk, err = c.Convert(context.Background(), "gw", j, nil)
				}
				total += time.Since(start)
				b.StopTimer()
				cpu += processCPU() - cpu0
				pg1, pgOK1 := pg.read()
				pgKnown = pgKnown && pgOK0 && pgOK1
				pgCPU += pg1 - pg0
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
				commit += commitLatency(b, dsn)
			}
			apis := float64(b.N * bc.apis)
			b.ReportMetric(float64(total.Microseconds())/1000/apis, "ms/api")
			b.ReportMetric(total.Seconds()/float64(b.N), "s/run")
			b.ReportMetric(float64(cpu.Microseconds())/1000/apis, "proc-cpu-ms/api")
			if pgKnown {
				b.ReportMetric(float64(pgCPU.Microseconds())/1000/apis, "pg-cpu-ms/api")
			}
			b.ReportMetric(float64(commit.Microseconds())/1000/float64(2*b.N), "commit-ms")
			b.ReportMetric(load0, "load-before")
			b.ReportMetric(loadAvg1(), "load-after")
		})
	}
}

// convertPerAPI is the one-at-a-time baseline: each API converted
// completely (probe the API, write its Service, its closed Route and its
// plugin, open the Route, probe the Route) before the next one starts, in
// the plan's order, through Convert's own code path (convertLevel with a
// level of one API) and journal. What Convert adds is running each level's
// APIs together phase by phase, so that the probes after the writes come
// after all of the level's writes: a node rebuilds its router (reading
// every Route and Service, and every plugin after a plugin write) on the
// first request after a change (§8.1), once per phase instead of once per
// API.
func convertPerAPI(ctx context.Context, c *Client, gateway string, j steps.Journal) error {
	g, err := c.gateway(gateway)
	if err != nil {
		return err
	}
	w, err := g.convWriter(ctx)
	if err != nil {
		return err
	}
	p, err := g.loadPlan(ctx, w, j)
	if err != nil {
		return err
	}
	for _, it := range sortedItems(p.Items) {
		if it.Skip != "" {
			continue
		}
		if _, _, failures := g.convertLevel(ctx, w, j, []*planItem{it}); len(failures) > 0 {
			return fmt.Errorf("API %s: %s", it.API.Name, strings.Join(failures, "; "))
		}
	}
	return nil
}

// commitLatency is the mean time of 200 one-row INSERTs committed one
// after another: what each Admin API write waits for on the datastore.
func commitLatency(tb testing.TB, dsn string) time.Duration {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS bench_commit (x int)"); err != nil {
		tb.Fatal(err)
	}
	const n = 200
	start := time.Now()
	for i := 0; i < n; i++ {
		if _, err := conn.Exec(ctx, "INSERT INTO bench_commit VALUES ($1)", i); err != nil {
			tb.Fatal(err)
		}
	}
	d := time.Since(start) / n
	if _, err := conn.Exec(ctx, "DROP TABLE bench_commit"); err != nil {
		tb.Fatal(err)
	}
	return d
}
