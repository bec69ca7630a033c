package bot_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kongbot/kongbot/bot"
	"github.com/kongbot/kongbot/localslack"
	"github.com/kongbot/kongbot/steps"
	"github.com/kongbot/kongbot/store"
)

// TestHTTPSignatures: forged, stale, future-dated, tampered and unsigned
// requests get 401 with a logged reason and change nothing.
func TestHTTPSignatures(t *testing.T) {
	h := newHarness(t, bot.ModeHTTP, newWorld013())
	cases := []struct {
		name   string
		opt    localslack.DeliverOption
		reason string
	}{
		{"forged", localslack.SignedWith("not-the-secret"), "signature does not match"},
		{"stale", localslack.SignedAt(time.Now().Add(-6 * time.Minute)), "old, over the 5 minute window"},
		{"future", localslack.SignedAt(time.Now().Add(6 * time.Minute)), "in the future"},
		{"tampered", localslack.Tampered(), "signature does not match"},
		{"unsigned", localslack.Unsigned(), "missing X-Slack-Request-Timestamp"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := strings.Count(h.Logs.String(), c.reason)
			d, err := h.Slack.SlashCommand(h.Ctx, localslack.OnCallID, localslack.ChannelID, "/kong upgrade start prod to 0.14.1", c.opt)
			if err == nil || d.Status != http.StatusUnauthorized {
				t.Fatalf("status %d, err %v; want 401", d.Status, err)
			}
			if strings.Count(h.Logs.String(), c.reason) <= before {
				t.Errorf("no logged reason %q", c.reason)
			}
		})
	}
	if runs, _ := h.st.Runs(h.Ctx, store.RunFilter{}); len(runs) != 0 {
		t.Fatalf("a rejected request started %d runs", len(runs))
	}
	// A click forged in a lead's name is refused the same way.
	id, _, appr := h.toApproval(localslack.OnCallID)
	val, _ := buttonValue(appr, "step_approve")
	d, err := h.Slack.Click(h.Ctx, localslack.OnCallID, localslack.ChannelID, appr.TS, "step_approve", val, localslack.Tampered())
	if err == nil || d.Status != http.StatusUnauthorized {
		t.Fatalf("tampered click: status %d, err %v", d.Status, err)
	}
	if n := h.audits(id, "approve") + h.audits(id, "refused-approve"); n != 0 {
		t.Errorf("tampered click reached the engine (%d audit entries)", n)
	}
}

// TestHTTPReplay: a captured, validly signed request sent again within the
// five minutes is acknowledged and does nothing more.
func TestHTTPReplay(t *testing.T) {
	h := newHarness(t, bot.ModeHTTP, newWorld013())
	form := url.Values{"command": {"/kong"}, "text": {"upgrade start prod to 0.14.1"}, "user_id": {localslack.OnCallID},
		"user_name": {"olivia"}, "channel_id": {localslack.ChannelID}, "channel_name": {localslack.ChannelName},
		"team_id": {localslack.TeamID}, "trigger_id": {"1.2.replayed"}, "response_url": {h.Slack.URL() + "resp/none"}}
	body := form.Encode()
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	sig := localslack.Sign(h.Slack.SigningSecret(), ts, []byte(body))
	for i := range 3 {
		req, _ := http.NewRequestWithContext(h.Ctx, http.MethodPost, h.srvURL+"/slack/commands", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Slack-Request-Timestamp", ts)
		req.Header.Set("X-Slack-Signature", sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("send %d: %d %s", i, resp.StatusCode, b)
		}
	}
	h.parent("r1")
	time.Sleep(200 * time.Millisecond) // give a wrongly accepted replay the time to show
	if runs, _ := h.st.Runs(h.Ctx, store.RunFilter{}); len(runs) != 1 {
		t.Fatalf("replays started %d runs, want 1", len(runs))
	}
}

// TestReplayedClickActsOnce: Slack does not redeliver an acknowledged
// click, but a captured one can be sent again, and a user's client can
// repeat one. While the bot runs, the repeat is dropped before the ack (its
// trigger was seen); after a restart, which forgets the triggers, the engine
// refuses it as stale from the stored state. Either way the approval counts
// once.
func TestReplayedClickActsOnce(t *testing.T) {
	h := newHarness(t, bot.ModeHTTP, newWorld013())
	id, _, appr := h.toApproval(localslack.OnCallID)
	replay := h.replayer(h.Click(localslack.Lead1ID, appr, "step_approve", localslack.ViaHTTP()))
	approved := h.waitRun(id, "the approval to take effect", func(r steps.Run) bool { return r.Status != steps.RunAwaitingApproval })
	h.delivered(id)
	if n := h.audits(id, "approve"); n != 1 {
		t.Fatalf("%d approve audit entries after one click, want 1", n)
	}
	check := func(when string) {
		t.Helper()
		run := h.runState(id)
		if got, want := len(run.Approvals["hop1.termination-on"]), len(approved.Approvals["hop1.termination-on"]); got != want {
			t.Errorf("%s: %d approvals of the outage group, want %d", when, got, want)
		}
		if n := h.audits(id, "approve"); n != 1 {
			t.Errorf("%s: %d approve audit entries, want 1", when, n)
		}
	}

	handled := func() int {
		return strings.Count(h.Logs.String(), "click refused") + strings.Count(h.Logs.String(), "click accepted")
	}
	before, clicks := len(h.Slack.Ephemerals(localslack.Lead1ID)), handled()
	if _, err := replay(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // give wrongly started work the time to show
	check("replayed while running")
	if n := handled() - clicks; n != 0 {
		t.Errorf("the replay was handled (%d more clicks in the log)", n)
	}
	if got := len(h.Slack.Ephemerals(localslack.Lead1ID)); got != before {
		t.Errorf("the replay told the lead %d things", got-before)
	}

	h.restart()
	if _, err := replay(); err != nil {
		t.Fatal(err)
	}
	h.ephemeral(localslack.Lead1ID, "was already approved by <@"+localslack.Lead1ID+">")
	check("replayed after a restart")
}

// replayer returns a sender of the click d carried, signed afresh each time
// (as a retry is) and timed as localslack times a delivery; it follows the
// bot across restarts.
func (h *harness) replayer(d localslack.Delivery) func() (time.Duration, error) {
	var body string
	if err := json.Unmarshal(d.Payload, &body); err != nil || !strings.HasPrefix(body, "payload=") {
		h.T.Fatalf("click delivery has no form body: %v %.80s", err, d.Payload)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 256, 128
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	h.T.Cleanup(client.CloseIdleConnections)
	return func() (time.Duration, error) {
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		req, err := http.NewRequestWithContext(h.Ctx, http.MethodPost, h.srvURL+"/slack/interactions", strings.NewReader(body))
		if err != nil {
			return 0, err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Slack-Request-Timestamp", ts)
		req.Header.Set("X-Slack-Signature", localslack.Sign(h.Slack.SigningSecret(), ts, []byte(body)))
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		took := time.Since(start)
		if resp.StatusCode != http.StatusOK {
			return took, fmt.Errorf("replayed click: HTTP %d", resp.StatusCode)
		}
		return took, nil
	}
}

// TestURLVerification answers Slack's Events API handshake.
func TestURLVerification(t *testing.T) {
	h := newHarness(t, bot.ModeHTTP, newWorld013())
	body := `{"token":"x","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}`
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	req, _ := http.NewRequestWithContext(h.Ctx, http.MethodPost, h.srvURL+"/slack/events", strings.NewReader(body))
	req.Header.Set("X-Slack-Request-Timestamp", ts)
	req.Header.Set("X-Slack-Signature", localslack.Sign(h.Slack.SigningSecret(), ts, []byte(body)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(b) != "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P" {
		t.Fatalf("got %d %q", resp.StatusCode, b)
	}
}
