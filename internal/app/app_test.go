package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/kongbot/kongbot/admin"
	"github.com/kongbot/kongbot/bot"
	"github.com/kongbot/kongbot/config"
	"github.com/kongbot/kongbot/internal/app"
	"github.com/kongbot/kongbot/internal/pgtest"
	"github.com/kongbot/kongbot/internal/testenv"
	"github.com/kongbot/kongbot/kongsim"
	"github.com/kongbot/kongbot/localslack"
	"github.com/kongbot/kongbot/steps"
	"github.com/kongbot/kongbot/store"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// Known secret values: the secrets test searches every output for them.
const (
	secretPGPassword = "pgPassw0rd-Xq7ZuN3v"
	secretBotToken   = "xoxb-4242-secretbottoken-Qm9vYmFy"
	secretAppToken   = "xapp-1-A0SECRET-secretapptoken-ZmFrZQ"
	secretSigning    = "signing-secret-8c1f0e7d2b9a"
	secretAdminToken = "admin-token-Zk9LmP2qR7"
)

// scenario is one kongbot built by app.New from a config file, against a
// kongsim 0.13.1 gateway on a real Postgres and a localslack workspace.
type scenario struct {
	*testenv.Env
	app   *app.App
	build func() *app.App // a new App from the same config (a restart)
	dir   string
	store string
	stop  func() error
}

func deadURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

func adminPost(t *testing.T, url string, body any) {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := http.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		out, _ := io.ReadAll(resp.Body)
		t.Fatalf("POST %s: %d %s", url, resp.StatusCode, out)
	}
}

const configTemplate = `
store: {path: %[1]q}
admin: {listen: "127.0.0.1:0"}
http: {listen: "127.0.0.1:0"}
log: {level: debug}
slack:
  mode: %[2]s
  bot_token_env: TEST_KONGBOT_BOT_TOKEN
  app_token_env: TEST_KONGBOT_APP_TOKEN
  signing_secret_env: TEST_KONGBOT_SIGNING_SECRET
  listen: %[3]q
  api_url: %[4]q
channels: {runs: %[5]s}
starters: {users: [%[6]s]}
approvers: {user_groups: ["@%[7]s"]}
timers: {approval_reminder: 1h, approval_expiry: 2h, manual_reminder: 1h}
gateways:
  - name: prod
    datastore: {dsn_env: TEST_KONGBOT_PG_DSN}
    admin_token_env: TEST_KONGBOT_ADMIN_TOKEN
    generations:
      "0.13.1":
        nodes: [{name: kong-old-1, admin_url: %[8]q, proxy_url: %[9]q}]
      "0.14.1":
        nodes: [{name: kong-014-1, admin_url: %[10]q, proxy_url: %[11]q}]
    migrations:
      # Prints the DSN it is given: kong must keep it out of the step output.
      "0.14.1": {argv: [/bin/echo, "kong migrations {{.Verb}} --pg {{.DSN}}"], timeout: 1m}
    request_termination:
      probes: [{name: test api, path: /test}]
    smoke_probes:
      - {name: test api, path: /test, expect_status: 200}
    snapshot_dir: %[12]q
    traffic:
      backend: manual
      front: {url: %[13]q}
`

func newScenario(t *testing.T, mode string) *scenario {
	t.Helper()
	return newScenarioWith(t, mode, "")
}

// newScenarioWith appends extra (top-level YAML) to the config.
func newScenarioWith(t *testing.T, mode, extra string) *scenario {
	t.Helper()
	env := testenv.New(t, testenv.Options{Timeout: 3 * time.Minute, Wait: 60 * time.Second, Poll: 20 * time.Millisecond,
		Slack:   localslack.Options{BotToken: secretBotToken, AppToken: secretAppToken, SigningSecret: secretSigning},
		LogName: "app log (tail)", LogTail: 8000})
	ctx, ls := env.Ctx, env.Slack
	dir := t.TempDir()

	dsn := pgtest.New(t)
	var out, errb bytes.Buffer
	if code := kongsim.Migrate(ctx, kongsim.MigrateOptions{Version: "0.13.1", DSN: dsn}, "up", &out, &errb); code != 0 {
		t.Fatalf("kongsim migrations up: %d %s%s", code, out.String(), errb.String())
	}
	node, err := kongsim.Start(ctx, kongsim.Options{Version: "0.13.1", DSN: dsn, Name: "kong-old-1", DBUpdateFrequency: 300 * time.Millisecond})
	if err != nil {
		t.Fatalf("kongsim: %v", err)
	}
	t.Cleanup(node.Stop)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintln(w, `{"echo": true}`)
	}))
	t.Cleanup(upstream.Close)
	adminPost(t, node.AdminURL()+"/apis", map[string]any{"name": "test", "uris": []string{"/test"}, "upstream_url": upstream.URL})

	// trust auth ignores the password, but the bot must still treat it as one.
	pgDSN := strings.Replace(dsn, "postgres://postgres@", "postgres://postgres:"+secretPGPassword+"@", 1)
	if pgDSN == dsn {
		t.Fatalf("unexpected DSN shape %s", config.Redact(dsn))
	}
	t.Setenv("TEST_KONGBOT_PG_DSN", pgDSN)
	t.Setenv("TEST_KONGBOT_BOT_TOKEN", secretBotToken)
	t.Setenv("TEST_KONGBOT_APP_TOKEN", secretAppToken)
	t.Setenv("TEST_KONGBOT_SIGNING_SECRET", secretSigning)
	t.Setenv("TEST_KONGBOT_ADMIN_TOKEN", secretAdminToken)

	slackListen := ""
	if mode == bot.ModeHTTP {
		slackListen = "127.0.0.1:0" // the same address as http.listen: one listener
	}
	storePath := filepath.Join(dir, "kongbot.db")
	cfgPath := filepath.Join(dir, "kongbot.yaml")
	doc := fmt.Sprintf(configTemplate, storePath, mode, slackListen, ls.APIURL(), localslack.ChannelID, localslack.OnCallID,
		localslack.LeadsHandle, node.AdminURL(), node.ProxyURL(), deadURL(t), deadURL(t), filepath.Join(dir, "snapshots"), deadURL(t)+"/test") + extra
	if err := os.WriteFile(cfgPath, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if ps := cfg.Check(); len(ps) > 0 {
		t.Fatalf("config: %v", ps)
	}
	log := app.NewLogger(env.Logs.Writer(), slog.LevelDebug, app.NewRedactor(cfg))
	build := func() *app.App {
		a, err := app.New(cfg, app.WithLogger(log), app.WithBotOptions(func(o *bot.Options) {
			o.PollInterval, o.RetryBase, o.RetryMax = 20*time.Millisecond, 50*time.Millisecond, 500*time.Millisecond
			o.CallTimeout, o.HomeRefresh = 5*time.Second, 100*time.Millisecond
		}))
		if err != nil {
			t.Fatalf("app.New: %v", err)
		}
		if mode == bot.ModeHTTP {
			env.RouteHTTP("http://" + a.HTTPAddr())
		}
		return a
	}
	return &scenario{Env: env, app: build(), build: build, dir: dir, store: storePath}
}

// start runs the app until s.stop stops it.
func (s *scenario) start() {
	s.stop = testenv.Go(s.Ctx, 60*time.Second, s.app.Run)
	s.T.Cleanup(func() { _ = s.stop() })
}

func (s *scenario) get(path string) (int, string) {
	s.T.Helper()
	resp, err := http.Get("http://" + s.app.HTTPAddr() + path)
	if err != nil {
		s.T.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (s *scenario) waitRun(id, what string, cond func(steps.Run) bool) steps.Run {
	s.T.Helper()
	return s.WaitRun(s.app.Runner(), id, what, cond)
}

var at = testenv.At

// click waits for a message of the run's thread that has the button (and
// mentions step, when given) and clicks it as user.
func (s *scenario) click(user, actionID, step string) {
	s.T.Helper()
	var msg localslack.Message
	s.Eventually("a "+actionID+" button for "+step, func() bool {
		for _, m := range s.Slack.Messages() {
			if v, ok := testenv.ButtonValue(m, actionID); ok && strings.Contains(v, step) {
				msg = m
				return true
			}
		}
		return false
	})
	s.Click(user, msg, actionID)
}

// startRun has the on-call engineer start an upgrade to 0.14.1 and waits
// for its first manual step.
func (s *scenario) startRun() string {
	s.Command(localslack.OnCallID, "/kong upgrade start prod to 0.14.1")
	var id string
	s.Eventually("the run to be stored", func() bool {
		runs, _ := s.app.Store().Runs(s.Ctx, store.RunFilter{})
		if len(runs) == 1 {
			id = runs[0].ID
			return true
		}
		return false
	})
	s.waitRun(id, "the provisioning step", at(steps.RunWaitingManual, "hop1.provision-new-nodes"))
	return id
}

// upgradeUntilAborted drives one run through the bot: the preflights, a
// manual step marked done, the snapshot, the hop 1 outage group approved by
// a lead, request-termination on, a migration that does not change the
// schema (so the step fails), then abort with the request-termination
// rollback. It returns the run ID.
func (s *scenario) upgradeUntilAborted() string {
	t := s.T
	id := s.startRun()
	s.click(localslack.OnCallID, "step_done", "hop1.provision-new-nodes")
	run := s.waitRun(id, "the outage approval", func(r steps.Run) bool {
		return r.Status == steps.RunAwaitingApproval || r.Status == steps.RunFailed
	})
	if run.Current != "hop1.termination-on" {
		st, _ := run.Step(run.Current)
		t.Fatalf("run stopped at %s (%s): %s", run.Current, run.Status, st.Error)
	}
	s.click(localslack.Lead1ID, "step_approve", "hop1.termination-on")
	run = s.waitRun(id, "the migration to fail", at(steps.RunFailed, "hop1.migrations-up"))
	if st, _ := run.Step("hop1.termination-on"); st.Status != steps.StepSucceeded {
		t.Fatalf("termination-on is %s: %s", st.Status, st.Error)
	}
	s.Command(localslack.OnCallID, "/kong upgrade abort "+id+" the migration did nothing")
	s.click(localslack.Lead1ID, "rollback_"+string(steps.RollbackRemoveTermination), id)
	s.waitRun(id, "the run to be aborted", func(r steps.Run) bool { return r.Status == steps.RunAborted })
	s.Delivered(s.app.Store(), id, 1)
	return id
}

func scrape(t *testing.T, body string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parsing /metrics: %v\n%s", err, body)
	}
	return mfs
}

// value sums the samples of family name whose labels include want (a
// histogram's sample count).
func value(mfs map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	mf, ok := mfs[name]
	if !ok {
		return 0, false
	}
	sum, found := 0.0, false
	for _, m := range mf.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range want {
			if labels[k] != v {
				match = false
			}
		}
		if !match {
			continue
		}
		found = true
		switch {
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Histogram != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum, found
}

func TestRunMovesMetricsAndProbesReportReadiness(t *testing.T) {
	s := newScenario(t, bot.ModeSocket)
	// Slack refuses auth.test until the fault is removed: not ready.
	removeFault, err := s.Slack.Inject(localslack.Fault{Method: "auth.test", Kind: localslack.ServerError})
	if err != nil {
		t.Fatal(err)
	}
	s.start()
	s.Eventually("healthz", func() bool { code, _ := s.get("/healthz"); return code == http.StatusOK })
	if code, body := s.get("/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "slack") {
		t.Fatalf("readyz before Slack answers: %d %q, want 503 naming slack", code, body)
	}
	removeFault()
	s.Eventually("readyz 200", func() bool { code, _ := s.get("/readyz"); return code == http.StatusOK })
	// One rate limit on the first post: the bot waits and delivers anyway.
	if _, err := s.Slack.Inject(localslack.Fault{Method: "chat.postMessage", Kind: localslack.RateLimited, RetryAfter: 1, Count: 1}); err != nil {
		t.Fatal(err)
	}

	code, body := s.get("/metrics")
	if code != http.StatusOK {
		t.Fatalf("metrics: %d", code)
	}
	before := scrape(t, body)
	if n, ok := value(before, "kongbot_runs", map[string]string{"state": "aborted"}); !ok || n != 0 {
		t.Fatalf("runs aborted before the run = %v (present %v), want 0", n, ok)
	}

	id := s.upgradeUntilAborted()

	// The bot reports the outbox depth about once a second.
	var mfs map[string]*dto.MetricFamily
	s.Eventually("outbox depth 0 in /metrics", func() bool {
		_, body = s.get("/metrics")
		mfs = scrape(t, body)
		n, ok := value(mfs, "kongbot_outbox_depth", nil)
		return ok && n == 0
	})
	tests := []struct {
		name   string
		labels map[string]string
		min    float64
		max    float64
	}{
		{"kongbot_runs", map[string]string{"state": "aborted"}, 1, 1},
		{"kongbot_runs", map[string]string{"state": "running"}, 0, 0},
		{"kongbot_step_duration_seconds", map[string]string{"step": "hop1.preflight-current", "effect": "execute", "outcome": "succeeded"}, 1, 1},
		{"kongbot_step_duration_seconds", map[string]string{"step": "hop1.termination-on", "effect": "execute", "outcome": "succeeded"}, 1, 1},
		{"kongbot_step_duration_seconds", map[string]string{"step": "hop1.migrations-up", "effect": "execute", "outcome": "failed"}, 1, 1},
		{"kongbot_approval_wait_seconds", map[string]string{"outcome": "approved"}, 1, 1},
		{"kongbot_run_transitions_total", map[string]string{"event": "abort"}, 1, 1},
		{"kongbot_kong_requests_total", map[string]string{"api": "admin", "code": "2xx"}, 5, 1e9},
		{"kongbot_kong_requests_total", map[string]string{"api": "proxy", "code": "5xx"}, 1, 1e9},
		// The 0.14.1 node is configured but not running: every read fails.
		{"kongbot_kong_call_errors_total", map[string]string{"api": "admin", "reason": "network"}, 1, 1e9},
		{"kongbot_slack_rate_limited_total", map[string]string{"op": "post"}, 1, 1e9},
		{"kongbot_slack_api_errors_total", map[string]string{"reason": "rate_limited"}, 1, 1e9},
		{"kongbot_outbox_depth", nil, 0, 0},
		{"kongbot_slack_ack_seconds", map[string]string{"transport": "socket"}, 3, 1e9},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s%v", tc.name, tc.labels), func(t *testing.T) {
			got, ok := value(mfs, tc.name, tc.labels)
			if !ok || got < tc.min || got > tc.max {
				t.Errorf("%s%v = %v (present %v), want %v..%v", tc.name, tc.labels, got, ok, tc.min, tc.max)
			}
		})
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", body)
	}

	// Logs are JSON with run and step fields.
	sawStep := false
	for _, line := range strings.Split(strings.TrimSpace(s.Logs.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if rec["run_id"] == id && rec["step"] == "hop1.migrations-up" {
			sawStep = true
		}
	}
	if !sawStep {
		t.Errorf("no log line carries run_id %s and step hop1.migrations-up", id)
	}

	if err := s.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := s.app.Ready(); err == nil || !strings.Contains(err.Error(), "store is closed") {
		t.Fatalf("Ready after stop = %v, want store is closed", err)
	}
	// The store was closed: another process can open it now.
	st, err := store.Open(s.store, store.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatalf("store still held after Run returned: %v", err)
	}
	defer st.Close()
	if v, err := st.VerifyAudit(s.Ctx); err != nil || !v.OK() {
		t.Fatalf("audit chain: %+v, %v", v, err)
	}
}

func TestNoSecretInLogsMessagesOrStore(t *testing.T) {
	s := newScenario(t, bot.ModeHTTP)
	s.start()
	s.Eventually("readyz 200", func() bool { code, _ := s.get("/readyz"); return code == http.StatusOK })
	id := s.upgradeUntilAborted()
	// The DSN reached the migration command: its output line is in the
	// thread, with the password redacted.
	s.Eventually("the migration output with the DSN redacted", func() bool {
		for _, m := range s.Slack.Messages() {
			if strings.Contains(m.Text+string(m.Blocks), "kong migrations up --pg postgres://postgres:") {
				return true
			}
		}
		for _, f := range s.Slack.Files() {
			if strings.Contains(string(f.Content), "kong migrations up --pg") {
				return true
			}
		}
		return false
	})
	if err := s.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	storeBytes, err := os.ReadFile(s.store)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(storeBytes, []byte(id)) {
		t.Fatalf("store file does not hold run %s: not the file the app wrote", id)
	}
	var slackText strings.Builder
	for _, m := range s.Slack.Messages() {
		slackText.WriteString(m.Text)
		slackText.Write(m.Blocks)
	}
	for _, u := range []string{localslack.OnCallID, localslack.Lead1ID, localslack.Lead2ID} {
		for _, e := range s.Slack.Ephemerals(u) {
			slackText.WriteString(e.Text)
			slackText.Write(e.Blocks)
		}
	}
	for _, f := range s.Slack.Files() {
		slackText.Write(f.Content)
	}
	for _, r := range s.Slack.Responses() {
		b, _ := json.Marshal(r)
		slackText.Write(b)
	}
	logs := s.Logs.String()
	if !strings.Contains(logs, `"run_id":"`+id+`"`) {
		t.Fatalf("the captured logs do not cover the run")
	}
	outputs := map[string][]byte{"logs": []byte(logs), "slack messages": []byte(slackText.String()), "store file": storeBytes}
	for _, secret := range []string{secretPGPassword, secretBotToken, secretAppToken, secretSigning, secretAdminToken} {
		for where, b := range outputs {
			if bytes.Contains(b, []byte(secret)) {
				i := bytes.Index(b, []byte(secret))
				t.Errorf("%s holds secret %q…: %q", where, secret[:6], b[max(0, i-200):min(len(b), i+len(secret)+50)])
			}
		}
	}
}

// TestRestartResumesTheRun stops the app in the middle of a run and builds
// a new one from the same config: the store was released, the run resumes,
// its state shows in /metrics at once, and the admin endpoint serves it.
func TestRestartResumesTheRun(t *testing.T) {
	s := newScenario(t, bot.ModeSocket)
	s.start()
	s.Eventually("readyz 200", func() bool { code, _ := s.get("/readyz"); return code == http.StatusOK })
	id := s.startRun()
	if err := s.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	s.app = s.build()
	s.start()
	s.Eventually("readyz 200 after the restart", func() bool { code, _ := s.get("/readyz"); return code == http.StatusOK })
	_, body := s.get("/metrics")
	if n, _ := value(scrape(t, body), "kongbot_runs", map[string]string{"state": string(steps.RunWaitingManual)}); n != 1 {
		t.Fatalf("kongbot_runs{state=waiting-manual} = %v after the restart, want 1", n)
	}
	runs, err := admin.NewClient(s.app.AdminAddr()).Runs(s.Ctx, store.RunFilter{ActiveOnly: true})
	if err != nil || len(runs) != 1 || runs[0].ID != id {
		t.Fatalf("admin endpoint runs = %+v, %v; want run %s", runs, err, id)
	}
	s.click(localslack.OnCallID, "step_done", "hop1.provision-new-nodes")
	s.waitRun(id, "the outage approval after the restart", at(steps.RunAwaitingApproval, "hop1.termination-on"))
	if !strings.Contains(s.Logs.String(), `"msg":"resuming run","component":"runner","run_id":"`+id+`"`) {
		t.Errorf("no resume logged for %s", id)
	}
}

// TestChangeWindowHoldsTheOutage: a config's change windows reach the
// engine through app.New. Outside the window, the hop-1 outage group's
// first step (high risk) waits once approved, saying when the window opens,
// instead of switching request-termination on.
func TestChangeWindowHoldsTheOutage(t *testing.T) {
	// A daily window that opens twelve hours from now: closed for the test.
	opens := time.Now().UTC().Add(12 * time.Hour).Truncate(time.Hour)
	s := newScenarioWith(t, bot.ModeSocket, fmt.Sprintf(`
change_windows:
  - {name: test-window, start: "0 %d * * *", duration: 1h, gateways: [prod]}
`, opens.Hour()))
	s.start()
	s.Eventually("readyz 200", func() bool { code, _ := s.get("/readyz"); return code == http.StatusOK })
	id := s.startRun()
	s.click(localslack.OnCallID, "step_done", "hop1.provision-new-nodes")
	s.waitRun(id, "the outage approval", at(steps.RunAwaitingApproval, "hop1.termination-on"))
	s.click(localslack.Lead1ID, "step_approve", "hop1.termination-on")
	run := s.waitRun(id, "the window wait", at(steps.RunPaused, "hop1.termination-on"))
	st, _ := run.Step("hop1.termination-on")
	if st.Status != steps.StepPaused || st.Check == nil || st.Check.Pause == nil || st.Check.Pause.Kind != steps.PauseWindow {
		t.Fatalf("termination-on is %s with check %+v, want paused for its window", st.Status, st.Check)
	}
	if want := "waiting for the window test-window that opens " + opens.Format("Mon 2 Jan 15:04 MST"); !strings.Contains(st.Check.Pause.Message, want) {
		t.Fatalf("pause says %q, want %q", st.Check.Pause.Message, want)
	}
	if st.Attempts != 0 {
		t.Fatalf("termination-on ran %d times outside its window", st.Attempts)
	}
}

// TestHTTPModeListeners: in HTTP mode Slack's requests are served on
// slack.listen and the probes on http.listen; when both name the same
// address there is one listener serving both.
func TestHTTPModeListeners(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ls := testenv.StartSlack(t, ctx, localslack.Options{})
	t.Setenv("TEST_KONGBOT_BOT_TOKEN", ls.BotToken())
	t.Setenv("TEST_KONGBOT_SIGNING_SECRET", ls.SigningSecret())
	t.Setenv("TEST_KONGBOT_PG_DSN", "postgres://kong:pw-unused@127.0.0.1:1/kong")
	free := func() string { return strings.TrimPrefix(deadURL(t), "http://") }
	post := func(addr, path string) int {
		resp, err := http.Post("http://"+addr+path, "application/x-www-form-urlencoded", strings.NewReader("command=/kong&text=help"))
		if err != nil {
			t.Fatalf("POST %s%s: %v", addr, path, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	getCode := func(addr, path string) int {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatalf("GET %s%s: %v", addr, path, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	same := free()
	tests := []struct {
		name        string
		httpListen  string
		slackListen string
		separate    bool
	}{
		{"one listener for both", same, same, false},
		{"separate listeners", free(), free(), true},
		{"probes on the Slack listener when http.listen is empty", "", free(), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			doc := fmt.Sprintf(`
store: {path: %q}
admin: {listen: "127.0.0.1:0"}
http: {listen: %q}
slack: {mode: http, bot_token_env: TEST_KONGBOT_BOT_TOKEN, signing_secret_env: TEST_KONGBOT_SIGNING_SECRET, listen: %q, api_url: %q}
channels: {runs: C0KONGUPG1}
approvers: {users: [U0LEAD0001, U0LEAD0002]}
gateways:
  - name: prod
    datastore: {dsn_env: TEST_KONGBOT_PG_DSN}
    generations:
      "0.13.1": {nodes: [{name: a, admin_url: "http://127.0.0.1:1", proxy_url: "http://127.0.0.1:2"}]}
      "0.14.1": {nodes: [{name: b, admin_url: "http://127.0.0.1:3", proxy_url: "http://127.0.0.1:4"}]}
    migrations: {"0.14.1": {argv: [kong, migrations, "{{.Verb}}"]}}
    traffic: {front: {url: "http://127.0.0.1:5/"}}
`, filepath.Join(dir, "k.db"), tc.httpListen, tc.slackListen, ls.APIURL())
			cfg, err := config.Parse([]byte(doc))
			if err != nil {
				t.Fatal(err)
			}
			if ps := cfg.Check(); len(ps) > 0 {
				t.Fatal(ps)
			}
			a, err := app.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			stop := testenv.Go(ctx, 30*time.Second, a.Run)
			defer func() {
				if err := stop(); err != nil {
					t.Errorf("Run: %v", err)
				}
			}()
			if got := a.SlackAddr() != ""; got != tc.separate {
				t.Fatalf("separate Slack listener = %v, want %v", got, tc.separate)
			}
			slackAddr := a.HTTPAddr()
			if tc.separate {
				slackAddr = a.SlackAddr()
				if code := getCode(slackAddr, "/healthz"); code != http.StatusNotFound {
					t.Errorf("healthz on the Slack listener: %d, want 404", code)
				}
				if code := post(a.HTTPAddr(), "/slack/commands"); code != http.StatusNotFound && code != http.StatusMethodNotAllowed {
					t.Errorf("slack commands on the probes listener: %d, want 404", code)
				}
			}
			deadline := time.Now().Add(30 * time.Second)
			for getCode(a.HTTPAddr(), "/readyz") != http.StatusOK {
				if time.Now().After(deadline) {
					t.Fatal("never ready")
				}
				time.Sleep(20 * time.Millisecond)
			}
			// Unsigned: refused by the bot's signature check, so it reached the bot.
			if code := post(slackAddr, "/slack/commands"); code != http.StatusUnauthorized {
				t.Errorf("unsigned command: %d, want 401", code)
			}
		})
	}
}

// TestRunFailsWhenSlackRefusesTheToken: a bad token is not retried forever;
// Run returns the reason (serve exits 1) and releases the store.
func TestRunFailsWhenSlackRefusesTheToken(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ls := testenv.StartSlack(t, ctx, localslack.Options{})
	t.Setenv("TEST_KONGBOT_BOT_TOKEN", "xoxb-not-the-workspace-token")
	t.Setenv("TEST_KONGBOT_APP_TOKEN", ls.AppToken())
	t.Setenv("TEST_KONGBOT_PG_DSN", "postgres://kong:pw-unused@127.0.0.1:1/kong")
	dir := t.TempDir()
	cfg, err := config.Parse(fmt.Appendf(nil, `
store: {path: %q}
admin: {listen: "127.0.0.1:0"}
http: {listen: "127.0.0.1:0"}
slack: {bot_token_env: TEST_KONGBOT_BOT_TOKEN, app_token_env: TEST_KONGBOT_APP_TOKEN, api_url: %q}
channels: {runs: C0KONGUPG1}
approvers: {users: [U0LEAD0001]}
gateways:
  - name: prod
    datastore: {dsn_env: TEST_KONGBOT_PG_DSN}
    generations:
      "0.13.1": {nodes: [{name: a, admin_url: "http://127.0.0.1:1", proxy_url: "http://127.0.0.1:2"}]}
      "0.14.1": {nodes: [{name: b, admin_url: "http://127.0.0.1:3", proxy_url: "http://127.0.0.1:4"}]}
    migrations: {"0.14.1": {argv: [kong, migrations, "{{.Verb}}"]}}
    traffic: {front: {url: "http://127.0.0.1:5/"}}
`, filepath.Join(dir, "k.db"), ls.APIURL()))
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "invalid_auth") {
			t.Fatalf("Run = %v, want Slack's invalid_auth", err)
		}
		if strings.Contains(err.Error(), "xoxb-not-the-workspace-token") {
			t.Fatalf("the error holds the token: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("Run kept going with a refused token")
	}
	st, err := store.Open(filepath.Join(dir, "k.db"), store.Options{Timeout: time.Second})
	if err != nil {
		t.Fatalf("store not released: %v", err)
	}
	st.Close()
}
