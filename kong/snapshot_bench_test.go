package kong

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/kongbot/kongbot/internal/pgtest"
)

// BenchmarkSnapshot measures the snapshot of a 0.14.1 datastore with 10,000
// APIs (one key-auth plugin each), the archive check the step's Verify and
// restore run, and a restore into an empty database. The check's B/op is
// what reading the archive costs in memory; it does not grow with the
// tables, which only stream.
//
//	go test -run '^$' -bench BenchmarkSnapshot -benchtime 5x ./kong/
func BenchmarkSnapshot(b *testing.B) {
	if _, err := findPGBin("pg_dump"); err != nil {
		b.Skip(err)
	}
	ctx := context.Background()
	src := pgtest.New(b)
	loadFixture(b, src, "0.14")
	fill014(b, src, 10000)
	dir := b.TempDir()
	archive := filepath.Join(dir, "10k.tar.gz")
	m, err := SnapshotTo(ctx, src, archive, Manifest{Gateway: "gw"})
	if err != nil {
		b.Fatal(err)
	}
	var rows int64
	for _, t := range m.Tables {
		rows += t.Rows
	}
	fi, err := os.Stat(archive)
	if err != nil {
		b.Fatal(err)
	}

	b.Run("snapshot", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if _, err := SnapshotTo(ctx, src, filepath.Join(dir, "again.tar.gz"), Manifest{}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(rows), "rows")
		b.ReportMetric(float64(fi.Size()), "archive-bytes")
	})
	b.Run("verify", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(fi.Size())
		for b.Loop() {
			if _, err := VerifySnapshot(ctx, archive); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("restore", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			dst := pgtest.New(b)
			b.StartTimer()
			if _, err := Restore(ctx, archive, dst, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}
