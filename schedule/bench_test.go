package schedule

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkTick measures one Tick with nothing due: 20 active runs waiting
// for approval (each a stored run to decode, twice: timers and health),
// 50 schedules and the digest, on a real store file.
func BenchmarkTick(b *testing.B) {
	ctx := context.Background()
	e := newEnv(b, fri, func(o *Options) { o.Digest = "0 9 * * *"; o.HealthInterval = 24 * time.Hour })
	for i := range 20 {
		e.runOn(fmt.Sprintf("gw%d", i), fmt.Sprintf("r%d", i+1), "hop2.migrations-up", fri)
	}
	for i := range 50 {
		if _, err := e.sched.Schedule(ctx, "UOPS", "C1", at(fri.Add(time.Duration(i+1)*24*time.Hour))); err != nil {
			b.Fatal(err)
		}
	}
	e.tick() // baseline health reads and the digest's first due time
	b.ResetTimer()
	for b.Loop() {
		if err := e.sched.Tick(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
