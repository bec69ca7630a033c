package kong

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fileJournal is a durable steps.Journal for crash tests: every Put is
// appended to a file and fsynced before it returns, as the store does, and
// a PutMany is one appended line.
type fileJournal struct {
	*memJournal
	mu sync.Mutex // orders file lines and map updates alike
	f  *os.File
}

func openFileJournal(path string) (*fileJournal, error) {
	j := &fileJournal{memJournal: newJournal()}
	if f, err := os.Open(path); err == nil {
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for sc.Scan() {
			// One line per write (a PutMany is one line, so all or
			// none of it); a torn last line (killed mid-write) is ignored.
			var kv map[string]string
			if json.Unmarshal(sc.Bytes(), &kv) == nil {
				_ = j.memJournal.PutMany(kv)
			}
		}
		f.Close()
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	j.f = f
	return j, nil
}

func (j *fileJournal) Put(k, v string) error { return j.PutMany(map[string]string{k: v}) }

func (j *fileJournal) PutMany(kv map[string]string) error {
	b, err := json.Marshal(kv)
	if err != nil {
		return err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, err := j.f.Write(append(b, '\n')); err != nil {
		return err
	}
	if err := j.f.Sync(); err != nil {
		return err
	}
	return j.memJournal.PutMany(kv)
}

const childEnv = "KONG_TEST_CONVERT_CHILD"

// convertChild runs Convert in a child process (re-executed test binary)
// until its parent kills it.
func convertChild() int {
	var cfg struct {
		DSN, Admin, Proxy, Journal string
	}
	if err := json.Unmarshal([]byte(os.Getenv(childEnv)), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	j, err := openFileJournal(cfg.Journal)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	c, err := New(Options{Gateways: map[string]Gateway{"gw": {DatastoreDSN: cfg.DSN,
		Generations: []GenerationNodes{{Version: "0.14.1", Nodes: []NodeOptions{{Name: "a", AdminURL: cfg.Admin, ProxyURL: cfg.Proxy}}}},
		Conversion:  ConversionOptions{Concurrency: 8}}}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	chk, err := c.Convert(context.Background(), "gw", j, nil)
	fmt.Fprintln(os.Stderr, "child finished", chk.OK, err, chk.Missing)
	return 0
}

// killChildWhen re-executes the test binary as a child (env=val selects
// what it runs, in TestMain), waits up to 30 s for ready, then SIGKILLs it
// and checks that it had not finished by itself.
func killChildWhen(t *testing.T, env, val string, ready func() bool) {
	t.Helper()
	cmd := osexec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env+"="+val)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); !ready(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("child made no progress: %s", stderr.String())
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if strings.Contains(stderr.String(), "child finished") {
		t.Fatal("the child finished before it was killed")
	}
}

// TestConvertSurvivesSIGKILL kills a process in the middle of a conversion
// (requests in flight, journal writes pending) and resumes from its
// journal file in another process.
func TestConvertSurvivesSIGKILL(t *testing.T) {
	c, node, dsn, plugins, _ := convEnv(t, 200)
	const apis = 202
	jpath := filepath.Join(t.TempDir(), "journal")
	cfg, _ := json.Marshal(map[string]string{"DSN": dsn, "Admin": node.AdminURL(), "Proxy": node.ProxyURL(), "Journal": jpath})
	killChildWhen(t, childEnv, string(cfg), func() bool {
		b, _ := os.ReadFile(jpath)
		return strings.Count(string(b), `/done"`) >= 70
	})
	j, err := openFileJournal(jpath)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("killed after %d of %d APIs were done", len(convertedAPIs(j)), apis)
	chk, err := c.Convert(context.Background(), "gw", j, nil)
	if err != nil || !chk.OK {
		t.Fatalf("resumed: %v %q", err, chk.Missing)
	}
	for q, want := range map[string]int{
		"SELECT count(*) FROM services":                           apis,
		"SELECT count(*) FROM routes":                             apis,
		"SELECT count(*) FROM plugins WHERE route_id IS NOT NULL": plugins,
	} {
		if n := countSQL(t, dsn, q); n != want {
			t.Errorf("%s = %d, want %d", q, n, want)
		}
	}
	if v, err := c.VerifyConversion(context.Background(), "gw", j); err != nil || !v.OK {
		t.Fatalf("verify: %v %q", err, v.Missing)
	}
}
