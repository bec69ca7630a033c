package kong

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/kongbot/kongbot/steps"
)

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func execSQL(t testing.TB, dsn, sql string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatal(err)
	}
}

// memJournal is an in-memory steps.Journal.
type memJournal struct {
	mu sync.Mutex
	m  map[string]string
}

func newJournal() *memJournal { return &memJournal{m: map[string]string{}} }

func (j *memJournal) Get(k string) (string, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	v, ok := j.m[k]
	return v, ok
}

func (j *memJournal) Put(k, v string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.m[k] = v
	return nil
}

func (j *memJournal) PutMany(kv map[string]string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	for k, v := range kv {
		j.m[k] = v
	}
	return nil
}

func (j *memJournal) Keys(prefix string) []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []string
	for k := range j.m {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	return out
}

// lineSink collects Sink lines.
type lineSink struct {
	mu    sync.Mutex
	lines []string
}

func (s *lineSink) Line(stream, text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines = append(s.lines, stream+": "+text)
}

func (s *lineSink) all() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.lines...)
}

// writeParts writes an archive from its parts (for tampering tests).
func writeParts(t testing.TB, path string, p archiveParts) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	add := func(name string, b []byte) {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: int64(len(b))})
		tw.Write(b)
	}
	add(arPre, p.pre)
	add(arPost, p.post)
	for name, b := range p.data {
		add(arData+name+".copy", b)
	}
	mj, _ := json.Marshal(p.manifest)
	add(arManifest, mj)
	tw.Close()
	gz.Close()
}

// buildKongsim builds `kongsim` (cmd/kongsim) into a temporary directory.
func buildKongsim(t testing.TB) string {
	t.Helper()
	pkg := "../cmd/kongsim"
	bin := filepath.Join(t.TempDir(), "kongsim")
	out, err := osexec.Command("go", "build", "-o", bin, pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

func stepsGen(s string) steps.Generation { return steps.Generation(s) }
