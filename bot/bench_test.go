package bot_test

import (
	"math"
	"os"
	"runtime/metrics"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/kongbot/kongbot/bot"
	"github.com/kongbot/kongbot/localslack"
)

// BenchmarkHTTPAck measures how long Slack waits for the bot's
// acknowledgement of signed slash commands and button clicks in HTTP mode,
// with 50 senders at once, while the work each one starts (store reads, an
// audited refusal, the reply through response_url) runs behind the ack.
// Slack's limit is 3 s; the goal is p99 <= 50 ms.
//
// click-replayed sends one captured, validly signed click again and again:
// the same payload, signature check, parsing and ack as a click, but the bot
// recognises the trigger and starts no work. Next to click it separates the
// ack path from the work queued behind it.
//
//	go test -run '^$' -bench BenchmarkHTTPAck -benchtime 2000x ./bot/
func BenchmarkHTTPAck(b *testing.B) {
	for _, kind := range []string{"command", "click", "click-replayed"} {
		b.Run(kind, func(b *testing.B) {
			h := newHarness(b, bot.ModeHTTP, newWorld013(), func(o *bot.Options, _ *runnerOptions, _ *localslack.Server) {
				if n, err := strconv.Atoi(os.Getenv("KONGBOT_BENCH_WORKERS")); err == nil {
					o.Workers = n
				}
			})
			_, _, appr := h.toApproval(localslack.OnCallID)
			val, _ := buttonValue(appr, "step_approve")
			var replay func() (time.Duration, error)
			if kind == "click-replayed" {
				replay = h.replayer(h.Click(localslack.OnCallID, appr, "step_approve", localslack.ViaHTTP()))
			}
			const senders = 50
			lat := make([]time.Duration, 0, b.N)
			var mu sync.Mutex
			var wg sync.WaitGroup
			next := make(chan struct{})
			h.metrics.mu.Lock()
			h.metrics.acks = nil
			h.metrics.mu.Unlock()
			schedBefore := schedLatencies()
			b.ResetTimer()
			for range senders {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range next {
						var d localslack.Delivery
						var err error
						switch kind {
						case "command":
							d, err = h.Slack.SlashCommand(h.Ctx, localslack.OnCallID, localslack.ChannelID, "/kong upgrade status", localslack.ViaHTTP())
						case "click":
							// The requester is not a lead: an audited refusal.
							d, err = h.Slack.Click(h.Ctx, localslack.OnCallID, localslack.ChannelID, appr.TS, "step_approve", val, localslack.ViaHTTP())
						default:
							d.AckLatency, err = replay()
						}
						if err != nil {
							b.Errorf("%s: %v", kind, err)
							continue
						}
						mu.Lock()
						lat = append(lat, d.AckLatency)
						mu.Unlock()
					}
				}()
			}
			for range b.N {
				next <- struct{}{}
			}
			close(next)
			wg.Wait()
			b.StopTimer()
			// As Slack sees it: from sending the request to the answer.
			b.ReportMetric(pct(lat, 0.50), "p50-ms")
			b.ReportMetric(pct(lat, 0.99), "p99-ms")
			// Inside the bot's handler: verify, parse, decide the ack.
			h.metrics.mu.Lock()
			in := slices.Clone(h.metrics.acks)
			h.metrics.mu.Unlock()
			b.ReportMetric(pct(in, 0.99), "handler-p99-ms")
			// How long runnable goroutines (handlers, senders, the work
			// behind the acks) waited for a CPU during the run.
			b.ReportMetric(schedP99(schedBefore, schedLatencies()), "sched-p99-ms")
		})
	}
}

func pct(d []time.Duration, p float64) float64 {
	if len(d) == 0 {
		return 0
	}
	d = slices.Clone(d)
	slices.Sort(d)
	return float64(d[min(len(d)-1, int(p*float64(len(d))))]) / float64(time.Millisecond)
}

// schedLatencies is the runtime's histogram of how long goroutines waited
// between becoming runnable and running.
func schedLatencies() *metrics.Float64Histogram {
	s := []metrics.Sample{{Name: "/sched/latencies:seconds"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindFloat64Histogram {
		return nil
	}
	return s[0].Value.Float64Histogram()
}

// schedP99 is the 99th percentile, in ms, of the waits between two readings
// (the upper bound of its bucket: the runtime's buckets are coarse).
func schedP99(before, after *metrics.Float64Histogram) float64 {
	if before == nil || after == nil || len(before.Counts) != len(after.Counts) {
		return 0
	}
	delta := make([]uint64, len(after.Counts))
	var total uint64
	for i := range after.Counts {
		delta[i] = after.Counts[i] - before.Counts[i]
		total += delta[i]
	}
	if total == 0 {
		return 0
	}
	want := uint64(math.Ceil(0.99 * float64(total)))
	var seen uint64
	for i, n := range delta {
		seen += n
		if seen >= want {
			return after.Buckets[i+1] * 1000
		}
	}
	return 0
}
