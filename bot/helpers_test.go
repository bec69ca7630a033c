package bot_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"github.com/kongbot/kongbot/bot"
	"github.com/kongbot/kongbot/config"
	"github.com/kongbot/kongbot/internal/testenv"
	"github.com/kongbot/kongbot/localslack"
	"github.com/kongbot/kongbot/runner"
	"github.com/kongbot/kongbot/steps"
	"github.com/kongbot/kongbot/store"
)

// world is a fake gateway: the runbook's ports (steps.Kong, steps.Traffic)
// and the bot's Planner over one in-memory state. The real adapters and
// kongsim meet in the demo rehearsal; here the bot is what is tested.
type world struct {
	mu          sync.Mutex
	nodes       []steps.Node
	schema      steps.SchemaState
	apis        int
	termination bool
	newPct      int
	failMigrate int // fail this many `migrations up` runs
	migrateLog  int // lines of output per migration
	inspects    int
	pauseShift  bool // the gradual shift pauses after its first stage
}

var bundled = []string{"key-auth", "acl", "request-termination", "rate-limiting"}

// newWorld013 is a 0.13.1 gateway whose 0.14.1 node is provisioned but not
// started.
func newWorld013() *world {
	return &world{
		nodes: []steps.Node{
			{Name: "kong-old-1", Generation: "0.13.1", AdminURL: "http://old-1:8001", ProxyURL: "http://old-1:8000", Reachable: true, Version: "0.13.1", DatabaseOK: true, Available: bundled},
			{Name: "kong-014-1", Generation: "0.14.1", AdminURL: "http://new-1:8001", ProxyURL: "http://new-1:8000"},
		},
		schema: steps.Schema013, migrateLog: 40,
	}
}

// newWorld0141 is a 0.14.1 gateway with a 1.0.3 node configured.
func newWorld0141() *world {
	return &world{
		nodes: []steps.Node{
			{Name: "kong-014-1", Generation: "0.14.1", AdminURL: "http://n1:8001", ProxyURL: "http://n1:8000", Reachable: true, Version: "0.14.1", DatabaseOK: true, Available: bundled},
			{Name: "kong-10-1", Generation: "1.0.3", AdminURL: "http://n2:8001", ProxyURL: "http://n2:8000"},
		},
		schema: steps.Schema014, migrateLog: 40,
	}
}

func (w *world) set(f func(w *world)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	f(w)
}

// startGen makes every node of gen answer as version.
func (w *world) startGen(gen, version string) {
	w.set(func(w *world) {
		for i := range w.nodes {
			if string(w.nodes[i].Generation) == gen {
				w.nodes[i].Reachable, w.nodes[i].Version, w.nodes[i].DatabaseOK, w.nodes[i].Available = true, version, true, bundled
			}
		}
	})
}

func (w *world) stopGen(gen string) {
	w.set(func(w *world) {
		for i := range w.nodes {
			if string(w.nodes[i].Generation) == gen {
				w.nodes[i].Reachable = false
			}
		}
	})
}

// Planner.

func (w *world) Gateways() []string { return []string{"prod"} }
func (w *world) Labels(gw string) steps.Labels {
	return steps.Labels{Gateway: gw, Datastore: "kong@db-1"}
}

func (w *world) Plan(ctx context.Context, gw, target string) (steps.Plan, steps.Inventory, error) {
	inv, err := w.Inspect(ctx, gw)
	if err != nil {
		return steps.Plan{}, inv, err
	}
	from := ""
	for _, n := range inv.Nodes {
		if n.Reachable && (from == "" || n.Version < from) {
			from = n.Version
		}
	}
	p, err := steps.PlanPath(from, target)
	return p, inv, err
}

// steps.Kong.

func (w *world) Inspect(_ context.Context, gw string) (steps.Inventory, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.inspects++
	return steps.Inventory{Gateway: gw, Nodes: slices.Clone(w.nodes), Schema: w.schema,
		Counts: steps.Counts{APIs: w.apis, Services: 3, Routes: 3, Plugins: map[string]int{"key-auth": 2}}}, nil
}

func (w *world) Migrate(_ context.Context, _, target string, verb steps.MigrationVerb, out steps.Sink) (steps.MigrationResult, error) {
	w.mu.Lock()
	fail := w.failMigrate > 0
	if fail {
		w.failMigrate--
	}
	lines := w.migrateLog
	w.mu.Unlock()
	for i := 1; i <= lines; i++ {
		out.Line("stdout", fmt.Sprintf("migrating core on kong@db-1: %03d_%s_step done", i, target))
	}
	if fail {
		out.Line("stderr", "Error: [postgres error] could not acquire the migrations lock")
		return steps.MigrationResult{ExitCode: 1, LogLines: lines + 1}, nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case target == "0.14.1":
		w.schema = steps.Schema014
	case verb == steps.MigrateUp:
		w.schema = steps.Schema10Pending
	case verb == steps.MigrateFinish:
		w.schema = steps.Schema10
	}
	return steps.MigrationResult{Schema: w.schema, LogLines: lines}, nil
}

func (w *world) EnableTermination(context.Context, string, steps.Journal) (string, error) {
	w.set(func(w *world) { w.termination = true })
	return "plugin-1", nil
}

func (w *world) DisableTermination(context.Context, string, steps.Journal) error {
	w.set(func(w *world) { w.termination = false })
	return nil
}

func (w *world) VerifyTermination(_ context.Context, _ string, want bool) (steps.Check, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.termination != want {
		return steps.Check{Missing: []string{fmt.Sprintf("request-termination is %v, want %v", w.termination, want)}}, nil
	}
	return steps.Check{OK: true}, nil
}

func (w *world) PlanConversion(context.Context, string) (steps.ConversionPlan, error) {
	return steps.ConversionPlan{}, nil
}

func (w *world) Convert(context.Context, string, steps.Journal, steps.Sink) (steps.Check, error) {
	return steps.Check{OK: true}, nil
}

func (w *world) VerifyConversion(context.Context, string, steps.Journal) (steps.Check, error) {
	return steps.Check{OK: true}, nil
}

func (w *world) DeleteAPIs(context.Context, string, steps.Journal, steps.Sink) error { return nil }

func (w *world) Smoke(context.Context, string, steps.Generation) (steps.Check, error) {
	return steps.Check{OK: true, Facts: []steps.Fact{{Name: "GET /test", Value: "401 as expected"}}}, nil
}

func (w *world) Snapshot(context.Context, string, string) (string, error) {
	return "/var/lib/kongbot/snapshots/prod.dump", nil
}

func (w *world) VerifySnapshot(_ context.Context, _, archive string) (steps.SnapshotSummary, error) {
	if archive != "/var/lib/kongbot/snapshots/prod.dump" {
		return steps.SnapshotSummary{}, fmt.Errorf("snapshot archive %s does not exist", archive)
	}
	return steps.SnapshotSummary{Archive: archive, Tables: map[string]int64{"apis": 1, "schema_migrations": 17}, Rows: 18, Bytes: 2048}, nil
}

// steps.Traffic.

func (w *world) Shift(_ context.Context, _, _ string, j steps.Journal, _ steps.Sink) (steps.Check, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if v, _ := j.Get("shift/stage-5"); w.pauseShift && v != string(steps.ChoiceApprove) {
		w.newPct = 5
		return steps.Check{Facts: []steps.Fact{{Name: "5% stage", Value: "812 requests, 0 5xx, p95 41ms"}},
			Pause: &steps.Pause{Kind: steps.PauseApproval, Key: "shift/stage-5",
				Message: "5% of traffic ran on 1.0.3 for its bake time with healthy gates. Go on to 25%?",
				Choices: []steps.Choice{steps.ChoiceApprove, steps.ChoiceRollBack, steps.ChoiceAbort}}}, nil
	}
	w.newPct = 100
	return steps.Check{OK: true}, nil
}

func (w *world) RollBack(context.Context, string, steps.Journal, steps.Sink) error {
	w.set(func(w *world) { w.newPct = 0 })
	return nil
}

func (w *world) VerifyWeights(_ context.Context, _ string, want int) (steps.Check, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.newPct != want {
		return steps.Check{Missing: []string{fmt.Sprintf("new generation has %d%%, want %d%%", w.newPct, want)}}, nil
	}
	return steps.Check{OK: true}, nil
}

func (w *world) VerifyDecommissioned(context.Context, string) (steps.Check, error) {
	return steps.Check{OK: true}, nil
}

var _ steps.Kong = (*world)(nil)
var _ steps.Traffic = (*world)(nil)
var _ bot.Planner = (*world)(nil)

// countMetrics records what the bot reported.
type countMetrics struct {
	mu          sync.Mutex
	errors      map[string]int
	rateLimited int
	depth       int
	maxDepth    int
	acks        []time.Duration
}

func (m *countMetrics) APIError(op, reason string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.errors == nil {
		m.errors = map[string]int{}
	}
	m.errors[op+"/"+reason]++
}

func (m *countMetrics) RateLimited(string, time.Duration) {
	m.mu.Lock()
	m.rateLimited++
	m.mu.Unlock()
}

func (m *countMetrics) OutboxDepth(n int) {
	m.mu.Lock()
	m.depth = n
	m.maxDepth = max(m.maxDepth, n)
	m.mu.Unlock()
}

func (m *countMetrics) Acked(_, _ string, d time.Duration) {
	m.mu.Lock()
	m.acks = append(m.acks, d)
	m.mu.Unlock()
}

// harness is one bot on a real store file and the real runner, talking to
// localslack over the chosen transport.
type harness struct {
	*testenv.Env
	rn      *runner.Runner
	st      *store.Store
	bot     *bot.Bot
	w       *world
	mode    string
	metrics *countMetrics
	srvURL  string
	stop    func()
}

type harnessOpt func(*bot.Options, *runnerOptions, *localslack.Server)

type runnerOptions = runner.Options

var modes = []string{bot.ModeSocket, bot.ModeHTTP}

var testRules = steps.ApprovalRules{
	Normal: steps.Rule{Approvers: 1, AllowRequester: true}, High: steps.Rule{Approvers: 1},
	Irreversible: steps.Rule{Approvers: 2}, RemindAfter: time.Hour, PollManual: time.Hour,
}

func newHarness(t testing.TB, mode string, w *world, opts ...harnessOpt) *harness {
	t.Helper()
	env := testenv.New(t, testenv.Options{Timeout: 90 * time.Second, Wait: 30 * time.Second, Poll: 15 * time.Millisecond,
		LogName: "bot log", LogTail: 30000})
	h := &harness{Env: env, w: w, mode: mode, metrics: &countMetrics{}}
	h.open(filepath.Join(t.TempDir(), "kongbot.db"), opts...)
	t.Cleanup(func() { h.stop() })
	return h
}

// open starts a bot (and its runner) on the store file at path.
func (h *harness) open(path string, opts ...harnessOpt) {
	t := h.T
	st, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatalf("store: %v", err)
	}
	logger := slog.New(slog.NewTextHandler(h.Logs.Writer(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	ro := runner.Options{Store: st, Kong: h.w, Traffic: h.w, Rules: testRules, Logger: logger}
	api := slack.New(h.Slack.BotToken(), slack.OptionAPIURL(h.Slack.APIURL()), slack.OptionAppLevelToken(h.Slack.AppToken()))
	bo := bot.Options{
		API: api, Mode: h.mode, SigningSecret: h.Slack.SigningSecret(), Store: st, Rules: testRules, Planner: h.w,
		Approvers: config.Who{UserGroups: []string{"@" + localslack.LeadsHandle}},
		Starters:  config.Who{UserGroups: []string{localslack.LeadsGroupID}, Users: []string{localslack.OnCallID, localslack.GuestID}},
		Channels:  []string{localslack.ChannelID},
		Metrics:   h.metrics, Logger: logger,
		PollInterval: 20 * time.Millisecond, RetryBase: 100 * time.Millisecond, RetryMax: time.Second,
		CallTimeout: 5 * time.Second, HomeRefresh: 100 * time.Millisecond,
	}
	for _, o := range opts {
		o(&bo, &ro, h.Slack)
	}
	rn, err := runner.New(ro)
	if err != nil {
		t.Fatalf("runner: %v", err)
	}
	bo.Runner = rn
	b, err := bot.New(bo)
	if err != nil {
		t.Fatalf("bot.New: %v", err)
	}
	var srv *httptest.Server
	if h.mode == bot.ModeHTTP {
		srv = httptest.NewServer(b.Handler())
		h.srvURL = srv.URL
		h.RouteHTTP(srv.URL)
	}
	// Not h.Ctx: a test's bot lives until the test stops it.
	stopRun := testenv.Go(context.Background(), 30*time.Second, b.Run)
	h.st, h.rn, h.bot = st, rn, b
	h.stop = func() {
		if err := stopRun(); err != nil {
			t.Errorf("bot.Run: %v", err)
		}
		rn.Close()
		if srv != nil {
			srv.Close()
		}
		if err := st.Close(); err != nil {
			t.Errorf("closing store: %v", err)
		}
	}
	h.Eventually("bot ready", func() bool { return b.Ready() == nil })
	if h.mode == bot.ModeSocket {
		h.Eventually("socket open", func() bool { return h.Slack.Sockets().Open == 1 })
	}
}

// restart stops the bot and runner and starts new ones on the same file,
// as a redeploy would; the runner resumes unfinished runs.
func (h *harness) restart(opts ...harnessOpt) {
	path := h.st.Path()
	h.stop()
	h.open(path, opts...)
	if _, err := h.rn.Resume(h.Ctx); err != nil {
		h.T.Fatalf("resume: %v", err)
	}
}

func (h *harness) runState(id string) steps.Run {
	h.T.Helper()
	run, _, err := h.rn.Load(h.Ctx, id)
	if err != nil {
		h.T.Fatalf("loading run %s: %v", id, err)
	}
	return run
}

func (h *harness) waitRun(id, what string, cond func(steps.Run) bool) steps.Run {
	h.T.Helper()
	return h.WaitRun(h.rn, id, what, cond)
}

// checkedPending: the run waits at a manual step whose check said "not yet".
func checkedPending(step string) func(steps.Run) bool {
	return func(r steps.Run) bool {
		st, ok := r.Step(step)
		return ok && r.Current == step && st.Status == steps.StepWaitingManual && st.Check != nil && !st.Check.OK
	}
}

var at = testenv.At

// startRun has user start an upgrade and returns the run ID and the ts of
// its parent message.
func (h *harness) startRun(user, text string) (string, string) {
	h.T.Helper()
	before, _ := h.st.Runs(h.Ctx, store.RunFilter{})
	h.Command(user, text)
	var id string
	h.Eventually("the run to be stored", func() bool {
		runs, _ := h.st.Runs(h.Ctx, store.RunFilter{})
		if len(runs) > len(before) {
			id = runs[0].ID
			return true
		}
		return false
	})
	parent := h.parent(id)
	return id, parent
}

// parent waits for the run's parent message.
func (h *harness) parent(id string) string {
	h.T.Helper()
	var ts string
	h.Eventually("parent message of "+id, func() bool {
		for _, m := range h.Slack.Channel(localslack.ChannelName) {
			if m.ThreadTS != m.TS && m.ThreadTS != "" {
				continue
			}
			if strings.Contains(m.Text, "Kong upgrade "+id+" ") {
				ts = m.TS
				return true
			}
		}
		return false
	})
	return ts
}

// msgText is a message's text and blocks as one searchable string (JSON's
// \u003c escapes undone).
func msgText(m localslack.Message) string {
	return m.Text + "\n" + unescapeJSON(string(m.Blocks))
}

func unescapeJSON(s string) string {
	return strings.NewReplacer(`\u003c`, "<", `\u003e`, ">", `\u0026`, "&", `\n`, "\n").Replace(s)
}

// threadMsg waits for a thread reply containing all of subs and returns it.
func (h *harness) threadMsg(parent string, subs ...string) localslack.Message {
	h.T.Helper()
	var out localslack.Message
	h.Eventually(fmt.Sprintf("a thread message with %q", subs), func() bool {
		for _, m := range h.Slack.Thread(parent) {
			txt := msgText(m)
			ok := true
			for _, s := range subs {
				if !strings.Contains(txt, s) {
					ok = false
				}
			}
			if ok {
				out = m
				return true
			}
		}
		return false
	})
	return out
}

// current re-reads a message.
func (h *harness) current(ts string) localslack.Message {
	m, ok := h.Slack.Message(ts)
	if !ok {
		h.T.Fatalf("message %s is gone", ts)
	}
	return m
}

var buttonValue = testenv.ButtonValue

func hasButtons(m localslack.Message) bool { return strings.Contains(string(m.Blocks), `"action_id"`) }

// ephemeral waits for an ephemeral message to user containing sub.
func (h *harness) ephemeral(user, sub string) localslack.Ephemeral {
	h.T.Helper()
	var out localslack.Ephemeral
	h.Eventually(fmt.Sprintf("an ephemeral to %s with %q", user, sub), func() bool {
		for _, e := range h.Slack.Ephemerals(user) {
			if strings.Contains(e.Text+unescapeJSON(string(e.Blocks)), sub) {
				out = e
				return true
			}
		}
		return false
	})
	return out
}

// audits counts the run's audit entries of a kind.
func (h *harness) audits(id, kind string) int {
	es, err := h.st.Audit(h.Ctx, id)
	if err != nil {
		h.T.Fatal(err)
	}
	n := 0
	for _, e := range es {
		if e.Kind == kind {
			n++
		}
	}
	return n
}

// delivered waits until the run's whole outbox is delivered.
func (h *harness) delivered(id string) {
	h.T.Helper()
	h.Delivered(h.st, id, 0)
}

// eachMode runs a subtest per transport.
func eachMode(t *testing.T, f func(t *testing.T, mode string)) {
	for _, m := range modes {
		t.Run(m, func(t *testing.T) { f(t, m) })
	}
}
