package store

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// BenchmarkCommit measures Commit alone: a 4 KiB run document (about the
// size of a two-hop run), one audit entry and one outbox message, in one
// fsynced bbolt transaction (NoSync=false).
func BenchmarkCommit(b *testing.B) {
	ctx := context.Background()
	s, err := Open(filepath.Join(b.TempDir(), "kongbot.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	doc, _ := json.Marshal(map[string]string{"pad": strings.Repeat("x", 4096)})
	run := &Run{ID: "r1", Gateway: "prod", Status: "running", Data: doc}
	lat := make([]time.Duration, 0, b.N)
	start := time.Now()
	i := 0
	for b.Loop() {
		i++
		t0 := time.Now()
		c, err := s.Commit(ctx, Change{
			Run:    run,
			Audit:  []AuditEntry{{Kind: "approve", Actor: "U1", Step: "hop1.migrations-up", Text: fmt.Sprintf("transition %d", i)}},
			Outbox: []Message{{Key: "step/hop1.migrations-up", Kind: "update-message", Payload: json.RawMessage(`{"kind":"update-message"}`)}},
		})
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
		run = c.Run
	}
	elapsed := time.Since(start)
	slices.Sort(lat)
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "commits/s")
	b.ReportMetric(float64(lat[len(lat)*50/100].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[min(len(lat)-1, len(lat)*99/100)].Microseconds())/1000, "p99-ms")
}
