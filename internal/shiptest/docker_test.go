package shiptest

import (
	"bufio"
	"context"
	"debug/buildinfo"
	"debug/elf"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// repoRoot is the module root: tests run in internal/shiptest.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found from the test directory: %v", err)
	}
	return root
}

// instruction is one Dockerfile instruction with continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, COPY, ...
	args string
}

// stage is the instructions from one FROM to the next.
type stage struct {
	from string // FROM's arguments, e.g. "golang:1.26 AS build"
	ins  []instruction
}

func (s stage) all(cmd string) []string {
	var out []string
	for _, in := range s.ins {
		if in.cmd == cmd {
			out = append(out, in.args)
		}
	}
	return out
}

// parseDockerfile reads the small subset of Dockerfile syntax the repo's
// Dockerfile uses: comments, parser directives, backslash continuations.
func parseDockerfile(t *testing.T, path string) []stage {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var stages []stage
	var cur strings.Builder
	flush := func() {
		line := strings.TrimSpace(cur.String())
		cur.Reset()
		if line == "" {
			return
		}
		cmd, args, _ := strings.Cut(line, " ")
		in := instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)}
		if in.cmd == "FROM" {
			stages = append(stages, stage{from: in.args})
			return
		}
		if len(stages) == 0 {
			t.Fatalf("%s: %s before the first FROM", path, in.cmd)
		}
		stages[len(stages)-1].ins = append(stages[len(stages)-1].ins, in)
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") {
			continue
		}
		if strings.HasSuffix(trimmed, `\`) {
			cur.WriteString(strings.TrimSuffix(trimmed, `\`) + " ")
			continue
		}
		cur.WriteString(trimmed)
		flush()
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	flush()
	return stages
}

func jsonArray(t *testing.T, what, s string) []string {
	t.Helper()
	var out []string
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		t.Fatalf("%s %s is not in exec (JSON array) form, which needs no shell: %v", what, s, err)
	}
	return out
}

// image is what the chart relies on from the Dockerfile.
type image struct {
	user       string
	volume     string
	port       string
	entrypoint []string
	cmd        []string
}

func readImage(t *testing.T) image {
	t.Helper()
	stages := parseDockerfile(t, filepath.Join(repoRoot(t), "Dockerfile"))
	if len(stages) < 2 {
		t.Fatalf("Dockerfile has %d stage(s), want a builder and a runtime stage", len(stages))
	}
	final := stages[len(stages)-1]
	one := func(cmd string) string {
		got := final.all(cmd)
		if len(got) != 1 {
			t.Fatalf("runtime stage has %d %s instructions, want 1: %q", len(got), cmd, got)
		}
		return got[0]
	}
	vol := jsonArray(t, "VOLUME", one("VOLUME"))
	if len(vol) != 1 {
		t.Fatalf("VOLUME %q: want exactly the store directory", vol)
	}
	return image{
		user:       one("USER"),
		volume:     vol[0],
		port:       one("EXPOSE"),
		entrypoint: jsonArray(t, "ENTRYPOINT", one("ENTRYPOINT")),
		cmd:        jsonArray(t, "CMD", one("CMD")),
	}
}

func TestDockerfile(t *testing.T) {
	root := repoRoot(t)
	stages := parseDockerfile(t, filepath.Join(root, "Dockerfile"))
	if len(stages) != 2 {
		t.Fatalf("Dockerfile has %d stages, want 2 (builder, runtime)", len(stages))
	}
	build, final := stages[0], stages[1]
	if build.from != "golang:1.26 AS build" {
		t.Errorf("builder stage FROM %q, want golang:1.26 AS build", build.from)
	}
	if final.from != "gcr.io/distroless/static-debian12:nonroot" {
		t.Errorf("runtime stage FROM %q, want gcr.io/distroless/static-debian12:nonroot (no shell, no libc)", final.from)
	}
	var buildRuns []string
	for _, r := range build.all("RUN") {
		if strings.Contains(r, "scripts/build-static.sh") {
			buildRuns = append(buildRuns, r)
		}
		if strings.Contains(r, "go build") {
			t.Errorf("builder runs go build itself (%q): the build command belongs in scripts/build-static.sh, which CI exercises", r)
		}
	}
	if len(buildRuns) != 1 || !strings.HasSuffix(buildRuns[0], "scripts/build-static.sh /out/kongbot") {
		t.Errorf("builder RUN lines calling scripts/build-static.sh: %q, want one ending in `scripts/build-static.sh /out/kongbot`", buildRuns)
	}
	if runs := final.all("RUN"); len(runs) > 0 {
		t.Errorf("runtime stage has RUN %q: distroless has no shell to run it", runs)
	}
	if !slices.Contains(final.all("COPY"), "--from=build /out/kongbot /kongbot") {
		t.Errorf("runtime stage COPY lines %q do not copy the built binary (/out/kongbot) to /kongbot", final.all("COPY"))
	}

	img := readImage(t)
	for _, c := range []struct{ what, got, want string }{
		{"USER", img.user, "65532:65532"},
		{"VOLUME", img.volume, "/var/lib/kongbot"},
		{"EXPOSE", img.port, "8080"},
		{"ENTRYPOINT", strings.Join(img.entrypoint, " "), "/kongbot"},
		{"CMD", strings.Join(img.cmd, " "), "serve --config /etc/kongbot/config.yaml"},
	} {
		if c.got != c.want {
			t.Errorf("runtime %s = %q, want %q", c.what, c.got, c.want)
		}
	}
	// The store directory must be created owned by the runtime user, or a
	// fresh named volume is root-owned and the bot cannot write its store.
	if !slices.ContainsFunc(final.all("COPY"), func(s string) bool {
		return strings.Contains(s, "--chown=65532:65532") && strings.HasSuffix(s, " /var/lib/kongbot")
	}) {
		t.Errorf("runtime stage does not create /var/lib/kongbot owned by 65532: %q", final.all("COPY"))
	}
}

func TestDockerignoreKeepsBuildInputs(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot(t), ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			patterns = append(patterns, strings.TrimPrefix(l, "/"))
		}
	}
	if !slices.Contains(patterns, ".git") {
		t.Errorf(".dockerignore does not exclude .git (patterns %q)", patterns)
	}
	// What the builder stage needs must stay in the build context.
	for _, need := range []string{"go.mod", "go.sum", "scripts/build-static.sh", "cmd/kongbot/main.go", "config/config.go"} {
		for _, p := range patterns {
			for prefix := need; prefix != "."; prefix = filepath.Dir(prefix) {
				if ok, _ := filepath.Match(p, prefix); ok || p == "*" || p == "**" {
					t.Errorf(".dockerignore pattern %q excludes %s, which the build needs", p, need)
				}
			}
		}
	}
}

// TestDockerBuildCheck runs the Dockerfile's build command the way CI can
// without Docker (scripts/docker-build-check.sh), on whatever ./cmd/kongbot
// is now, and checks the binary could run on distroless/static.
func TestDockerBuildCheck(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds the whole kongbot binary")
	}
	root := repoRoot(t)
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(root, "scripts", "docker-build-check.sh"), out)
	cmd.Dir = root
	logs, err := cmd.CombinedOutput()
	t.Logf("scripts/docker-build-check.sh:\n%s", logs)
	if err != nil {
		t.Fatalf("scripts/docker-build-check.sh: %v", err)
	}
	bin := filepath.Join(out, "kongbot")
	if err := CheckStaticELF(bin); err != nil {
		t.Fatalf("the image's binary: %v", err)
	}
	// The build flags the Dockerfile promises, as recorded by the Go linker.
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatalf("reading build info: %v", err)
	}
	if info.Path != "github.com/kongbot/kongbot/cmd/kongbot" {
		t.Errorf("binary's main package is %q, want github.com/kongbot/kongbot/cmd/kongbot", info.Path)
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	// -ldflags is not recorded when -trimpath is set (it may hold paths), so
	// "-s -w" is checked by its effect below.
	for k, want := range map[string]string{"CGO_ENABLED": "0", "-trimpath": "true"} {
		if got := settings[k]; got != want {
			t.Errorf("build setting %s = %q, want %q (all: %v)", k, got, want, settings)
		}
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, sec := range f.Sections {
		if sec.Name == ".symtab" || strings.HasPrefix(sec.Name, ".debug") || strings.HasPrefix(sec.Name, ".zdebug") {
			t.Errorf("binary has section %s: -ldflags \"-s -w\" did not strip it", sec.Name)
		}
	}
	if strings.Contains(string(mustRead(t, bin)), root) {
		t.Errorf("binary contains the build directory %s: -trimpath did not apply", root)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCheckStaticELFRejects(t *testing.T) {
	// A dynamically linked system binary: Debian and Ubuntu build these
	// against glibc with an interpreter.
	var dynamic string
	for _, p := range []string{"/bin/ls", "/usr/bin/ls", "/bin/sh", "/usr/bin/env"} {
		if err := CheckStaticELF(p); errors.Is(err, ErrNotStatic) {
			dynamic = p
			break
		}
	}
	notELF := filepath.Join(t.TempDir(), "script.sh")
	if err := os.WriteFile(notELF, []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		path       string
		wantStatic bool // the error is ErrNotStatic, not a read error
	}{
		{"dynamic system binary", dynamic, true},
		{"shell script", notELF, false},
		{"missing file", filepath.Join(t.TempDir(), "nope"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.path == "" {
				t.Fatal("no dynamically linked binary found among /bin/ls, /usr/bin/ls, /bin/sh, /usr/bin/env")
			}
			err := CheckStaticELF(tt.path)
			if err == nil {
				t.Fatalf("CheckStaticELF(%s) = nil, want an error", tt.path)
			}
			if got := errors.Is(err, ErrNotStatic); got != tt.wantStatic {
				t.Errorf("CheckStaticELF(%s) = %v; errors.Is(ErrNotStatic) = %v, want %v", tt.path, err, got, tt.wantStatic)
			}
		})
	}
}
