package traffic_test

import (
	"context"
	"testing"
	"time"

	"github.com/kongbot/kongbot/traffic"
)

// BenchmarkHop2ShiftUnderLoad runs a full hop-2 shift (5 → 25 → 50 → 100 %,
// 1.5 s bakes) through real HAProxy while a load generator sends 300
// requests/s, and reports the requests sent, the achieved rate and the
// failed requests per shift. Run it with -benchtime=1x; each shift takes
// several seconds.
func BenchmarkHop2ShiftUnderLoad(b *testing.B) {
	r := newRig(b)
	g := &traffic.Gateway{
		Backend: r.hap,
		Plans:   map[string]traffic.Plan{"hop2": hop2(1500 * time.Millisecond)},
		Gates:   traffic.Gates{MinRequests: 10, Interval: 250 * time.Millisecond},
	}
	tr, err := traffic.New(traffic.Options{Gateways: map[string]*traffic.Gateway{"prod": g}})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var sent, failed int
	var rate float64
	for b.Loop() {
		if err := tr.RollBack(ctx, "prod", nil, nil); err != nil {
			b.Fatal(err)
		}
		stop := load(b, r.proc.FrontURL+"/test", 300)
		c, err := tr.Shift(ctx, "prod", "hop2", newJournal(), nil)
		res := stop()
		if err != nil || !c.OK {
			b.Fatalf("shift: %+v, %v", c, err)
		}
		sent += res.Sent
		failed += res.Failed
		rate += res.Rate()
		b.Logf("load: %s", res)
	}
	b.ReportMetric(float64(sent)/float64(b.N), "requests/shift")
	b.ReportMetric(rate/float64(b.N), "requests/s")
	b.ReportMetric(float64(failed)/float64(b.N), "failed/shift")
}
