package localslack_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kongbot/kongbot/localslack"
	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"
)

// httpBot verifies requests the way SLACK.md §A.2 prescribes.
type httpBot struct {
	secret string
	mu     sync.Mutex
	cmds   []slack.SlashCommand
	clicks []slack.InteractionCallback
	events []string
	denied []string
}

func (b *httpBot) verify(w http.ResponseWriter, r *http.Request) (*slack.SecretsVerifier, bool) {
	sv, err := slack.NewSecretsVerifier(r.Header, b.secret)
	if err != nil {
		b.deny(w, err)
		return nil, false
	}
	r.Body = io.NopCloser(io.TeeReader(r.Body, &sv))
	return &sv, true
}

func (b *httpBot) deny(w http.ResponseWriter, err error) {
	b.mu.Lock()
	b.denied = append(b.denied, err.Error())
	b.mu.Unlock()
	http.Error(w, "unauthorized", http.StatusUnauthorized)
}

func (b *httpBot) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /slack/commands", func(w http.ResponseWriter, r *http.Request) {
		sv, ok := b.verify(w, r)
		if !ok {
			return
		}
		cmd, err := slack.SlashCommandParse(r)
		if err == nil {
			err = sv.Ensure()
		}
		if err != nil {
			b.deny(w, err)
			return
		}
		b.mu.Lock()
		b.cmds = append(b.cmds, cmd)
		b.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"response_type": "ephemeral", "text": "on it: " + cmd.Text})
	})
	mux.HandleFunc("POST /slack/interactions", func(w http.ResponseWriter, r *http.Request) {
		sv, ok := b.verify(w, r)
		if !ok {
			return
		}
		ic, err := slack.InteractionCallbackParse(r)
		if err == nil {
			err = sv.Ensure()
		}
		if err != nil {
			b.deny(w, err)
			return
		}
		b.mu.Lock()
		b.clicks = append(b.clicks, ic)
		b.mu.Unlock()
	})
	mux.HandleFunc("POST /slack/events", func(w http.ResponseWriter, r *http.Request) {
		sv, ok := b.verify(w, r)
		if !ok {
			return
		}
		body, _ := io.ReadAll(r.Body)
		if err := sv.Ensure(); err != nil {
			b.deny(w, err)
			return
		}
		ev, err := slackevents.ParseEvent(body, slackevents.OptionNoVerifyToken())
		if err != nil {
			b.deny(w, err)
			return
		}
		b.mu.Lock()
		b.events = append(b.events, ev.InnerEvent.Type)
		b.mu.Unlock()
	})
	return mux
}

func startHTTPBot(t *testing.T, ls *localslack.Server) *httpBot {
	b := &httpBot{secret: ls.SigningSecret()}
	srv := httptest.NewServer(b.handler())
	t.Cleanup(srv.Close)
	ls.SetEndpoints(localslack.Endpoints{Commands: srv.URL + "/slack/commands",
		Interactions: srv.URL + "/slack/interactions", Events: srv.URL + "/slack/events"})
	return b
}

func TestHTTPModeSignedDelivery(t *testing.T) {
	ls := newServer(t, localslack.Options{})
	ctx := testCtx(t)
	bot := startHTTPBot(t, ls)

	d, err := ls.SlashCommand(ctx, localslack.OnCallID, localslack.ChannelID, "/kong upgrade start prod 1.0.3")
	if err != nil || !d.Acked || d.Transport != localslack.TransportHTTP || d.Status != 200 {
		t.Fatalf("command: %+v %v", d, err)
	}
	if e := ls.Ephemerals(localslack.OnCallID); len(e) != 1 || e[0].Text != "on it: upgrade start prod 1.0.3" {
		t.Errorf("ack shown as %+v", e)
	}
	ts := mustPost(t, ctx, client(ls))
	if d, err := ls.Click(ctx, localslack.Lead2ID, localslack.ChannelID, ts, "step_reject", ""); err != nil || !d.Acked {
		t.Fatalf("click: %+v %v", d, err)
	}
	if d, err := ls.OpenHome(ctx, localslack.Lead2ID); err != nil || !d.Acked {
		t.Fatalf("home: %+v %v", d, err)
	}
	bot.mu.Lock()
	cmds, clicks, events := bot.cmds, bot.clicks, bot.events
	bot.mu.Unlock()
	if len(cmds) != 1 || cmds[0].UserID != localslack.OnCallID || cmds[0].Text != "upgrade start prod 1.0.3" || cmds[0].ResponseURL == "" {
		t.Errorf("commands = %+v", cmds)
	}
	if len(clicks) != 1 || clicks[0].ActionCallback.BlockActions[0].ActionID != "step_reject" || clicks[0].Container.MessageTs != ts ||
		clicks[0].User.ID != localslack.Lead2ID || clicks[0].Message.Timestamp != ts {
		t.Errorf("clicks = %+v", clicks)
	}
	if len(events) != 1 || events[0] != "app_home_opened" {
		t.Errorf("events = %v", events)
	}

	// Forged, stale, future-dated, tampered and unsigned requests: the bot's
	// verifier refuses them all with 401.
	bad := []struct {
		name string
		opt  localslack.DeliverOption
		why  string
	}{
		{"wrong secret", localslack.SignedWith("not-the-secret"), slack.ErrInvalidSignature.Error()},
		{"stale", localslack.SignedAt(time.Now().Add(-6 * time.Minute)), "timestamp is too old"},
		{"future", localslack.SignedAt(time.Now().Add(6 * time.Minute)), "timestamp is too old"},
		{"tampered", localslack.Tampered(), slack.ErrInvalidSignature.Error()},
		{"unsigned", localslack.Unsigned(), "missing headers"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			bot.mu.Lock()
			bot.denied = nil
			bot.mu.Unlock()
			d, err := ls.SlashCommand(ctx, localslack.OnCallID, localslack.ChannelID, "/kong status", tc.opt)
			if !errors.Is(err, localslack.ErrNotAcked) || d.Status != http.StatusUnauthorized || d.Acked {
				t.Fatalf("delivery %+v, err %v", d, err)
			}
			bot.mu.Lock()
			defer bot.mu.Unlock()
			if len(bot.denied) != 1 || !strings.Contains(bot.denied[0], tc.why) {
				t.Errorf("bot denied for %v, want %q", bot.denied, tc.why)
			}
		})
	}
	bot.mu.Lock()
	if len(bot.cmds) != 1 {
		t.Errorf("a bad request got through: %d commands", len(bot.cmds))
	}
	bot.mu.Unlock()
}

func TestResponseURLSink(t *testing.T) {
	ls := newServer(t, localslack.Options{})
	ctx := testCtx(t)
	startHTTPBot(t, ls)
	api := client(ls)
	d, err := ls.SlashCommand(ctx, localslack.OnCallID, localslack.ChannelID, "/kong status")
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		opts   []slack.MsgOption
		effect string
		fails  bool
	}{
		{[]slack.MsgOption{slack.MsgOptionResponseURL(d.ResponseURL, slack.ResponseTypeEphemeral), slack.MsgOptionText("only you", false)}, "ephemeral", false},
		{[]slack.MsgOption{slack.MsgOptionResponseURL(d.ResponseURL, slack.ResponseTypeInChannel), slack.MsgOptionText("everyone", false)}, "in_channel", false},
		{[]slack.MsgOption{slack.MsgOptionResponseURL(d.ResponseURL, slack.ResponseTypeEphemeral), slack.MsgOptionText("3", false)}, "ephemeral", false},
		{[]slack.MsgOption{slack.MsgOptionResponseURL(d.ResponseURL, slack.ResponseTypeEphemeral), slack.MsgOptionText("4", false)}, "ephemeral", false},
		{[]slack.MsgOption{slack.MsgOptionResponseURL(d.ResponseURL, slack.ResponseTypeEphemeral), slack.MsgOptionText("5", false)}, "ephemeral", false},
		{[]slack.MsgOption{slack.MsgOptionResponseURL(d.ResponseURL, slack.ResponseTypeEphemeral), slack.MsgOptionText("6", false)}, "used_url", true},
	}
	for i, st := range steps {
		_, _, err := api.PostMessageContext(ctx, "", st.opts...)
		if (err != nil) != st.fails {
			t.Errorf("use %d: err %v", i+1, err)
		}
		rs := ls.Responses()
		if len(rs) != i+1 || rs[i].Effect != st.effect {
			t.Errorf("use %d: responses %+v", i+1, rs)
		}
	}
	if ch := ls.Channel(localslack.ChannelID); len(ch) != 1 || ch[0].Text != "everyone" {
		t.Errorf("channel = %+v", ch)
	}
	// "on it: status" from the ack, then four ephemeral responses.
	if e := ls.Ephemerals(localslack.OnCallID); len(e) != 5 || e[1].Text != "only you" || e[1].Source != "response_url" {
		t.Errorf("ephemerals = %+v", e)
	}
}

func TestHTTPModeAckDeadline(t *testing.T) {
	ls := newServer(t, localslack.Options{AckTimeout: 100 * time.Millisecond})
	ctx := testCtx(t)
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select { // a bot doing slow work before acking
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(release)
	ls.SetEndpoints(localslack.Endpoints{Commands: slow.URL})
	d, err := ls.SlashCommand(ctx, localslack.OnCallID, localslack.ChannelID, "/kong status")
	if !errors.Is(err, localslack.ErrNotAcked) || d.Acked || !strings.HasPrefix(d.Err, "operation_timeout") {
		t.Fatalf("delivery %+v, err %v", d, err)
	}
	if e := ls.Ephemerals(localslack.OnCallID); len(e) != 1 || !strings.Contains(e[0].Text, `"operation_timeout"`) {
		t.Errorf("user saw %+v", e)
	}
}
