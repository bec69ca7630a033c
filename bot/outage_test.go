package bot_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"github.com/kongbot/kongbot/bot"
	"github.com/kongbot/kongbot/localslack"
	"github.com/kongbot/kongbot/steps"
)

// TestSlackOutageDuringRun: while the run moves on, Slack answers 429 with
// Retry-After and then drops every connection for a while. Afterwards every
// message has arrived, in order, none twice, and each shows the final state.
func TestSlackOutageDuringRun(t *testing.T) {
	eachMode(t, func(t *testing.T, mode string) {
		w := newWorld013()
		h := newHarness(t, mode, w)
		id, parent, appr := h.toApproval(localslack.OnCallID)
		h.delivered(id)
		w.startGen("0.14.1", "0.14.1")
		// Only the deliverer's methods fail, so clicks still reach the bot
		// and their authorization checks still answer.
		for _, f := range []localslack.Fault{
			{Method: "chat.postMessage", Kind: localslack.RateLimited, Count: 2, RetryAfter: 1},
			{Method: "chat.update", Kind: localslack.RateLimited, Count: 1, RetryAfter: 1},
			{Method: "chat.postMessage", Kind: localslack.Down, For: 3 * time.Second},
			{Method: "chat.update", Kind: localslack.Down, For: 3 * time.Second},
			{Method: "files.getUploadURLExternal", Kind: localslack.Down, For: 3 * time.Second},
		} {
			if _, err := h.Slack.Inject(f); err != nil {
				t.Fatal(err)
			}
		}
		h.Click(localslack.Lead1ID, appr, "step_approve")
		h.waitRun(id, "decommission checked and waiting", checkedPending("hop1.decommission-old"))
		w.stopGen("0.13.1")
		// The decommission message may not be in Slack yet: mark it done
		// through the command line's twin, the engine event, as the timer
		// would.
		if _, err := h.rn.Send(h.Ctx, id, steps.Event{Kind: steps.EvMarkDone, Step: "hop1.decommission-old", User: localslack.OnCallID}); err != nil {
			t.Fatal(err)
		}
		h.waitRun(id, "succeeded", func(r steps.Run) bool { return r.Status == steps.RunSucceeded })
		h.delivered(id)

		var faulted int
		for _, c := range append(h.Slack.Calls("chat.postMessage"), h.Slack.Calls("chat.update")...) {
			if c.Fault != "" {
				faulted++
			}
		}
		if faulted < 4 {
			t.Errorf("only %d calls met a fault; the test did not exercise the outage", faulted)
		}
		h.metrics.mu.Lock()
		rl := h.metrics.rateLimited
		h.metrics.mu.Unlock()
		if rl == 0 {
			t.Errorf("no rate limit was reported to Metrics")
		}
		h.Eventually("outbox depth back to 0", func() bool {
			h.metrics.mu.Lock()
			defer h.metrics.mu.Unlock()
			return h.metrics.depth == 0
		})
		h.metrics.mu.Lock()
		if h.metrics.maxDepth < 2 {
			t.Errorf("outbox depth never rose above %d during the outage", h.metrics.maxDepth)
		}
		h.metrics.mu.Unlock()

		// Every post of the run is in Slack exactly once, in outbox order.
		msgs, _ := h.st.Outbox(h.Ctx, id)
		keyed := map[string]bool{}
		wantPosts := 0
		for _, m := range msgs {
			switch {
			case m.Kind == "refresh":
			case m.Key == "":
				wantPosts++
			case !keyed[m.Key]:
				keyed[m.Key] = true
				wantPosts++
			}
		}
		all := []localslack.Message{h.current(parent)}
		files := 0
		for _, m := range h.Slack.Thread(parent) {
			if len(m.Files) > 0 {
				files++ // the migration log, shared into the thread
				continue
			}
			all = append(all, m)
		}
		if files != 1 {
			t.Errorf("%d file messages in the thread, want 1 (the migration log)", files)
		}
		seenKey := map[string]int{}
		seenID := map[string]int{}
		lastID := -1
		for _, m := range all {
			var md struct {
				EventType    string            `json:"event_type"`
				EventPayload map[string]string `json:"event_payload"`
			}
			if err := json.Unmarshal(m.Metadata, &md); err != nil || md.EventType != "kongbot_message" {
				t.Errorf("message %s has no kongbot metadata: %s", m.TS, m.Metadata)
				continue
			}
			if k := md.EventPayload["key"]; k != "" {
				seenKey[k]++
			}
			seenID[md.EventPayload["outbox_id"]]++
			var n int
			if err := json.Unmarshal([]byte(md.EventPayload["outbox_id"]), &n); err != nil {
				t.Fatal(err)
			}
			if n <= lastID {
				t.Errorf("message for outbox %d posted after outbox %d", n, lastID)
			}
			lastID = n
		}
		if len(all) != wantPosts {
			t.Errorf("%d messages in Slack, want %d", len(all), wantPosts)
		}
		for k, n := range seenKey {
			if n != 1 {
				t.Errorf("key %s posted %d times", k, n)
			}
		}
		for id, n := range seenID {
			if n != 1 {
				t.Errorf("outbox message %s posted %d times", id, n)
			}
		}
		// Each step message shows its final state.
		for _, m := range h.Slack.Thread(parent) {
			txt := msgText(m)
			if strings.Contains(txt, "Step ") && strings.Contains(txt, "*Status*") && !strings.Contains(txt, ":white_check_mark: succeeded") && !strings.Contains(txt, "skipped") {
				t.Errorf("step message not in its final state: %s", txt)
			}
		}
	})
}

// lossyTransport performs requests but loses the answers of the first
// `lose` chat.postMessage calls, as a timeout after Slack posted would.
type lossyTransport struct {
	mu   sync.Mutex
	lose int
	lost int
}

func (l *lossyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil || !strings.HasSuffix(r.URL.Path, "/chat.postMessage") {
		return resp, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost < l.lose {
		l.lost++
		resp.Body.Close()
		return nil, errors.New("answer lost: read: connection reset by peer")
	}
	return resp, nil
}

// TestLostAnswersDoNotDuplicate: Slack posted, but the bot never heard
// back (for the parent message and for a thread reply). The retries find
// the posts by their metadata instead of posting them again.
func TestLostAnswersDoNotDuplicate(t *testing.T) {
	lossy := &lossyTransport{lose: 2}
	h := newHarness(t, bot.ModeSocket, newWorld013(), func(o *bot.Options, _ *runnerOptions, ls *localslack.Server) {
		o.API = slack.New(ls.BotToken(), slack.OptionAPIURL(ls.APIURL()), slack.OptionAppLevelToken(ls.AppToken()),
			slack.OptionHTTPClient(&http.Client{Transport: lossy, Timeout: 5 * time.Second}))
	})
	id, parent := h.startRun(localslack.OnCallID, "/kong upgrade start prod to 0.14.1")
	h.waitRun(id, "provision step waiting", at(steps.RunWaitingManual, "hop1.provision-new-nodes"))
	h.delivered(id)
	if lossy.lost != 2 {
		t.Fatalf("lost %d answers, want 2", lossy.lost)
	}
	tops := 0
	for _, m := range h.Slack.Channel(localslack.ChannelName) {
		if strings.Contains(m.Text, "Kong upgrade "+id+" ") {
			tops++
		}
	}
	if tops != 1 {
		t.Errorf("%d parent messages, want 1", tops)
	}
	msgs, _ := h.st.Outbox(h.Ctx, id)
	posts := 0
	seen := map[string]bool{}
	for _, m := range msgs {
		if m.Kind != "refresh" && m.Key != "summary" && (m.Key == "" || !seen[m.Key]) {
			posts++
			seen[m.Key] = true
		}
	}
	if got := len(h.Slack.Thread(parent)); got != posts {
		t.Errorf("%d thread messages, want %d (one per post)", got, posts)
	}
	if n := strings.Count(h.Logs.String(), "found an earlier attempt's post in Slack"); n != 2 {
		t.Errorf("the bot found %d lost posts in Slack, want 2 (the parent, then a thread reply)", n)
	}
}

// TestNotInChannelWaits: until the bot is invited Slack answers
// not_in_channel; the bot says what to do, keeps the messages, and
// delivers them once it can.
func TestNotInChannelWaits(t *testing.T) {
	h := newHarness(t, bot.ModeHTTP, newWorld013())
	if _, err := h.Slack.Inject(localslack.Fault{Method: "chat.postMessage", Kind: localslack.SlackError, Error: "not_in_channel", Count: 3}); err != nil {
		t.Fatal(err)
	}
	id, parent := h.startRun(localslack.OnCallID, "/kong upgrade start prod to 0.14.1")
	h.waitRun(id, "provision step waiting", at(steps.RunWaitingManual, "hop1.provision-new-nodes"))
	h.delivered(id)
	if !strings.Contains(h.Logs.String(), "invite the bot to it") {
		t.Errorf("no hint to invite the bot in the log")
	}
	h.threadMsg(parent, "Provision 0.14.1 nodes", "step_done")
	h.metrics.mu.Lock()
	n := h.metrics.errors["post/not_in_channel"]
	h.metrics.mu.Unlock()
	if n != 3 {
		t.Errorf("Metrics saw %d not_in_channel errors, want 3", n)
	}
}
