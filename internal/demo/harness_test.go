package demo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kongbot/kongbot/admin"
	"github.com/kongbot/kongbot/localslack"
	"github.com/kongbot/kongbot/steps"
	"github.com/kongbot/kongbot/store"
)

// kongbotBin is the kongbot binary built once for the tests that need the
// bot as a separate process (to kill it) or the demo command itself.
var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	binDir    string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

func kongbotBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "kongbot-demo-bin-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "kongbot")
		cmd := exec.Command("go", "build", "-o", binPath, "github.com/kongbot/kongbot/cmd/kongbot")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v: %s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// botProc is `kongbot serve --config` as a child process, restartable.
type botProc struct {
	t   *testing.T
	bin string
	bc  BotConfig
	// extraEnv is added to the bot's environment (test hooks).
	extraEnv []string
	cmd      *exec.Cmd
	done     chan struct{}
	logs     *bytes.Buffer
	mu       sync.Mutex
}

func startBot(t *testing.T, bin string, bc BotConfig, extraEnv ...string) *botProc {
	b := &botProc{t: t, bin: bin, bc: bc, logs: &bytes.Buffer{}, extraEnv: extraEnv}
	b.start()
	t.Cleanup(func() { b.stop(syscall.SIGTERM) })
	return b
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (b *botProc) start() {
	b.t.Helper()
	cmd := exec.Command(b.bin, "serve", "--config", b.bc.Path, "--log-level", "info")
	cmd.Env = append(append(os.Environ(), b.bc.Env...), b.extraEnv...)
	w := lockedWriter{&b.mu, b.logs}
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		b.t.Fatalf("start kongbot serve: %v", err)
	}
	b.cmd, b.done = cmd, make(chan struct{})
	done := b.done
	go func() { _ = cmd.Wait(); close(done) }()
}

// stop signals the bot's process group and waits for it.
func (b *botProc) stop(sig syscall.Signal) {
	if b.cmd == nil {
		return
	}
	select {
	case <-b.done:
		return
	default:
	}
	_ = syscall.Kill(-b.cmd.Process.Pid, sig)
	select {
	case <-b.done:
	case <-time.After(15 * time.Second):
		_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
		<-b.done
	}
}

// kill is SIGKILL to the bot alone: its migration child, if any, runs on,
// as it would when the bot's host process dies.
func (b *botProc) kill() {
	_ = b.cmd.Process.Signal(syscall.SIGKILL)
	<-b.done
}

func (b *botProc) Logs() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.logs.String()
}

// waitReady waits for /readyz (the store open and Slack connected).
func (b *botProc) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+b.bc.HTTPAddr+"/readyz", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-b.done:
			return fmt.Errorf("kongbot exited: %s", b.Logs())
		case <-ctx.Done():
			return fmt.Errorf("kongbot not ready: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// world is the rehearsal's setting: the environment, the bot's config, the
// provisioner and the driver that clicks as people would.
type world struct {
	t      *testing.T
	ctx    context.Context
	env    *Env
	bc     BotConfig
	bot    *botProc
	client *admin.Client
	prov   *Provisioner

	migLog, killFile string
	dbMu             sync.Mutex
	maxTermination   int // most request-termination plugins seen at once
	maxServices      int
	maxRoutes        int

	// retries counts Retry clicks (only the crash test expects any).
	retries   int
	retriesOf map[string]int
	// finishKills counts kills inside migrations-finish.
	finishKills int
	allowRetry  bool
	clicks      []string
}

func newWorld(t *testing.T, ctx context.Context, rate float64, bake time.Duration, noHAProxy bool) *world {
	t.Helper()
	if _, err := exec.LookPath("haproxy"); err != nil && !noHAProxy {
		t.Skip("haproxy not installed (scripts/test.sh installs it)")
	}
	if _, err := exec.LookPath("pg_dump"); err != nil {
		if _, err := os.Stat("/usr/lib/postgresql"); err != nil {
			t.Skip("postgresql not installed (scripts/test.sh installs it)")
		}
	}
	bin := kongbotBinary(t)
	env, err := StartEnv(ctx, EnvOptions{Rate: rate, DBUpdateFrequency: 500 * time.Millisecond, NoHAProxy: noHAProxy})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(env.Close)
	dir := filepath.Join(env.Dir, "bot")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	// The bot re-checks manual steps by itself rarely here: the driver
	// marks them done, as people would.
	bc, err := env.WriteConfig(dir, BotOptions{Migrations: []string{bin, "demo", "kongsim-migrations"}, Bake: bake, ManualReminder: 15 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, ctx: ctx, env: env, bc: bc, client: admin.NewClient(bc.AdminAddr),
		retriesOf: map[string]int{}, migLog: filepath.Join(env.Dir, "migrations.log"), killFile: filepath.Join(env.Dir, "kill-in-migration")}
	w.bot = startBot(t, bin, bc, "KONGBOT_DEMO_MIGRATION_LOG="+w.migLog, "KONGBOT_DEMO_KILL_PARENT="+w.killFile)
	w.watchDB()
	if err := w.bot.waitReady(ctx); err != nil {
		t.Fatal(err)
	}
	w.prov = NewProvisioner(env, bc.AdminAddr, nil)
	pctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = w.prov.Run(pctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kongbot logs (tail):\n%s", tail(w.bot.Logs(), 60))
			for _, m := range env.Slack.Messages() {
				t.Logf("slack %s thread=%s: %s", m.TS, m.ThreadTS, oneLine(m.BlockText()))
			}
		}
	})
	return w
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ⏎ ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// command types a slash command as user and returns the ack.
func (w *world) command(user, text string) localslack.Delivery {
	w.t.Helper()
	d, err := w.env.Slack.SlashCommand(w.ctx, user, localslack.ChannelID, text)
	if err != nil {
		w.t.Fatalf("%s: %v", text, err)
	}
	return d
}

// run reads a run through the bot's admin endpoint; ok false when the bot
// is down.
func (w *world) run(id string) (steps.Run, store.Run, bool) {
	ctx, cancel := context.WithTimeout(w.ctx, 5*time.Second)
	defer cancel()
	var sr store.Run
	var err error
	if id == "" {
		var list []store.Run
		list, err = w.client.Runs(ctx, store.RunFilter{Gateway: Gateway, Limit: 1})
		if err != nil || len(list) == 0 {
			return steps.Run{}, sr, false
		}
		id = list[0].ID
	}
	sr, err = w.client.Run(ctx, id)
	if err != nil {
		return steps.Run{}, sr, false
	}
	r, err := ReadRun(sr)
	if err != nil {
		w.t.Fatal(err)
	}
	return r, sr, true
}

// button finds the newest message holding a kongbot button actionID for
// run and step.
func (w *world) button(runID, step, actionID string) (localslack.Message, bool) {
	msgs := w.env.Slack.Messages()
	for i := len(msgs) - 1; i >= 0; i-- {
		for _, b := range msgs[i].Buttons() {
			if b.ActionID != actionID {
				continue
			}
			if v, ok := ButtonRun(b); ok && v.Run == runID && (step == "" || v.Step == step) {
				return msgs[i], true
			}
		}
	}
	return localslack.Message{}, false
}

// click presses a button as user; false when the button is not (yet) shown
// or the bot is down (a click then fails as in Slack, and the person
// clicks again later).
func (w *world) click(user, runID, step, actionID string) bool {
	m, ok := w.button(runID, step, actionID)
	if !ok {
		return false
	}
	b, _ := m.Button(actionID, "")
	for _, bb := range m.Buttons() {
		if v, ok := ButtonRun(bb); bb.ActionID == actionID && ok && v.Run == runID && (step == "" || v.Step == step) {
			b = bb
		}
	}
	ctx, cancel := context.WithTimeout(w.ctx, 10*time.Second)
	defer cancel()
	if _, err := w.env.Slack.Click(ctx, user, localslack.ChannelID, m.TS, actionID, b.Value); err != nil {
		return false
	}
	w.clicks = append(w.clicks, fmt.Sprintf("%s %s %s", user, actionID, step))
	return true
}

// drive plays the people until the run ends or ctx does: leads approve and
// answer pauses, the on-call engineer marks manual steps done. onTick sees
// every state read, ok false when the bot did not answer (the crash test
// kills and restarts the bot from there).
func (w *world) drive(id string, onTick func(r steps.Run, ok bool) bool) steps.Run {
	w.t.Helper()
	lastClick := map[string]time.Time{}
	throttle := func(key string, every time.Duration) bool {
		if time.Since(lastClick[key]) < every {
			return false
		}
		lastClick[key] = time.Now()
		return true
	}
	for {
		if err := w.ctx.Err(); err != nil {
			r, _, _ := w.run(id)
			w.t.Fatalf("run %s did not finish: %s at %s (%v)", id, r.Status, r.Current, err)
		}
		r, _, ok := w.run(id)
		if onTick != nil && onTick(r, ok) {
			continue
		}
		if !ok {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if r.Status.Terminal() {
			return r
		}
		st := stepState(r, r.Current)
		key := string(r.Status) + "/" + r.Current
		switch r.Status {
		case steps.RunAwaitingApproval:
			if throttle(key, 1500*time.Millisecond) {
				approved := r.Approvals[r.Current]
				for _, lead := range []string{localslack.Lead1ID, localslack.Lead2ID} {
					if !slices.ContainsFunc(approved, func(a steps.Approval) bool { return a.User == lead }) {
						w.click(lead, id, r.Current, "step_approve")
						break
					}
				}
			}
		case steps.RunWaitingManual:
			// A careful engineer marks new nodes done once the load
			// balancer's health checks see them too.
			if gen := map[string]string{"hop1.start-new-cluster": V014, "hop2.provision-new-nodes": V10}[r.Current]; gen != "" && !w.upInHAProxy(gen) {
				break
			}
			if throttle(key, 2*time.Second) {
				w.click(localslack.OnCallID, id, r.Current, "step_done")
			}
		case steps.RunPaused:
			if throttle(key, 1500*time.Millisecond) {
				// A manual traffic move is marked done once the demo's
				// provisioner has made it (it says so in the thread).
				if p := st.Check; p != nil && p.Pause != nil && p.Pause.Kind == steps.PauseManual {
					if !w.prov.did(r, "move/"+p.Pause.Key) {
						break
					}
					w.click(localslack.Lead1ID, id, r.Current, "pause_done")
					break
				}
				if !w.click(localslack.Lead1ID, id, r.Current, "pause_approve") {
					w.click(localslack.Lead1ID, id, r.Current, "pause_resume")
				}
			}
		case steps.RunFailed:
			if !w.allowRetry {
				w.t.Fatalf("step %s failed: %s", r.Current, st.Error)
			}
			if w.retriesOf[r.Current] >= 3 {
				w.t.Fatalf("step %s still fails after %d retries: %s", r.Current, w.retriesOf[r.Current], st.Error)
			}
			if throttle(key, 2*time.Second) && w.click(localslack.Lead1ID, id, r.Current, "step_retry") {
				w.retriesOf[r.Current]++
				w.retries++
				w.t.Logf("retry %s after: %s", r.Current, st.Error)
			}
		}
		time.Sleep(150 * time.Millisecond)
	}
}

var errNoRun = errors.New("no run")

// startRun types the demo path's commands and returns the run's ID.
func (w *world) startRun() string {
	w.t.Helper()
	w.command(localslack.OnCallID, "/kong check demo")
	w.command(localslack.OnCallID, "/kong upgrade start demo to 1.0.3")
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if r, _, ok := w.run(""); ok {
			return r.ID
		}
		time.Sleep(100 * time.Millisecond)
	}
	w.t.Fatalf("%v after /kong upgrade start: ephemerals %+v", errNoRun, w.env.Slack.Ephemerals(localslack.OnCallID))
	return ""
}

// watchDB samples the Kong datastore while the run goes, to tell a side
// effect that happened twice even if it was later undone.
func (w *world) watchDB() {
	ctx, cancel := context.WithCancel(w.ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	w.t.Cleanup(func() { cancel(); wg.Wait() })
	go func() {
		defer wg.Done()
		conn, err := pgx.Connect(ctx, w.env.DSN)
		if err != nil {
			return
		}
		defer conn.Close(context.Background())
		count := func(q string) int {
			var n int
			if err := conn.QueryRow(ctx, q).Scan(&n); err != nil {
				return -1
			}
			return n
		}
		for ctx.Err() == nil {
			term := count("SELECT count(*) FROM plugins WHERE name = 'request-termination'")
			svc := count("SELECT count(*) FROM services")
			rt := count("SELECT count(*) FROM routes")
			w.dbMu.Lock()
			w.maxTermination = max(w.maxTermination, term)
			w.maxServices = max(w.maxServices, svc)
			w.maxRoutes = max(w.maxRoutes, rt)
			w.dbMu.Unlock()
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
}

// migrationsRunning lists `kongbot demo kongsim-migrations` processes of
// this test's binary (a migration the killed bot left running).
func migrationsRunning() []string {
	if binPath == "" {
		return nil
	}
	var out []string
	for _, p := range processesMentioning(binPath) {
		if strings.Contains(p, "kongsim-migrations") {
			out = append(out, p)
		}
	}
	return out
}

// upInHAProxy reports whether every node of a generation is running and,
// with HAProxy, marked UP by its health checks.
func (w *world) upInHAProxy(version string) bool {
	for _, n := range w.env.Nodes(version) {
		if !n.Running() {
			return false
		}
	}
	st, err := w.env.Weights(w.ctx)
	if err != nil {
		return false
	}
	if st == nil {
		return true
	}
	for _, n := range w.env.Nodes(version) {
		if !strings.HasPrefix(st[n.Name].Status, "UP") {
			return false
		}
	}
	return true
}
