package bot_test

import (
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kongbot/kongbot/bot"
	"github.com/kongbot/kongbot/localslack"
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
