package localslack_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/kongbot/kongbot/localslack"
	"github.com/slack-go/slack"
)

type uiState struct {
	Acting   string `json:"acting"`
	Sockets  int    `json:"sockets"`
	Channels []struct {
		Name     string                      `json:"name"`
		Messages []map[string]any            `json:"messages"`
		Threads  map[string][]map[string]any `json:"threads"`
	} `json:"channels"`
	Home json.RawMessage `json:"home"`
}

func getState(t *testing.T, ls *localslack.Server, user string) uiState {
	t.Helper()
	resp, err := http.Get(ls.URL() + "ui/state?user=" + user)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st uiState
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

func postUI(t *testing.T, ls *localslack.Server, path string, body any) map[string]any {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := http.Post(ls.URL()+path, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestPageStateIsPerUser(t *testing.T) {
	ls := newServer(t, localslack.Options{})
	ctx := testCtx(t)
	startSMBot(t, ctx, ls)
	api := client(ls)
	_, parent, _ := api.PostMessageContext(ctx, localslack.ChannelID, slack.MsgOptionText("run", false))
	_, _, _ = api.PostMessageContext(ctx, localslack.ChannelID, slack.MsgOptionText("step", false), slack.MsgOptionTS(parent))
	if _, err := api.PostEphemeralContext(ctx, localslack.ChannelID, localslack.GuestID, slack.MsgOptionText("guests cannot approve", false)); err != nil {
		t.Fatal(err)
	}
	if r := postUI(t, ls, "ui/command", map[string]string{"user": localslack.OnCallID, "channel": localslack.ChannelID, "text": "/kong status"}); r["ok"] != true {
		t.Fatalf("command from the page: %v", r)
	}
	if r := postUI(t, ls, "ui/message", map[string]string{"user": localslack.Lead2ID, "channel": localslack.ChannelID, "text": "looks good", "thread_ts": parent}); r["ok"] != true {
		t.Fatalf("message from the page: %v", r)
	}
	tests := []struct {
		user       string
		ephemerals int
	}{
		{localslack.GuestID, 1},  // the bot's refusal
		{localslack.OnCallID, 1}, // the command's ack
		{localslack.Lead1ID, 0},
	}
	for _, tc := range tests {
		st := getState(t, ls, tc.user)
		if st.Acting != tc.user || st.Sockets != 1 || len(st.Channels) != 1 {
			t.Fatalf("%s: state %+v", tc.user, st)
		}
		n := 0
		for _, m := range st.Channels[0].Messages {
			if m["ephemeral"] == true {
				n++
			}
		}
		if n != tc.ephemerals {
			t.Errorf("%s sees %d ephemerals, want %d", tc.user, n, tc.ephemerals)
		}
		if got := len(st.Channels[0].Threads[parent]); got != 2 {
			t.Errorf("%s: thread has %d replies, want 2", tc.user, got)
		}
	}
	if r := postUI(t, ls, "ui/click", map[string]string{"user": localslack.Lead1ID, "channel": localslack.ChannelID, "ts": parent, "action_id": "nope"}); r["ok"] != false {
		t.Errorf("click on a missing button: %v", r)
	}
}

func TestPageServesAssetsAndEvents(t *testing.T) {
	ls := newServer(t, localslack.Options{})
	for _, path := range []string{"", "archives/C0KONGUPG1/p1700000000000100", "static/app.js", "static/style.css", "avatar/" + localslack.Lead1ID + ".svg"} {
		resp, err := http.Get(ls.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || len(body) == 0 {
			t.Errorf("GET /%s: %d", path, resp.StatusCode)
		}
	}
	resp, err := http.Get(ls.URL() + "ui/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	r := bufio.NewReader(resp.Body)
	next := func() string {
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("reading events: %v", err)
			}
			if strings.HasPrefix(line, "data: ") {
				return strings.TrimSpace(strings.TrimPrefix(line, "data: "))
			}
		}
	}
	first := next()
	if _, err := ls.PostMessage("olivia", "kong-upgrades", "", "hello", nil); err != nil {
		t.Fatal(err)
	}
	if second := next(); second == first {
		t.Errorf("no new version after a change: %s then %s", first, second)
	}
}

func TestDirectMessages(t *testing.T) {
	ls := newServer(t, localslack.Options{})
	ctx := testCtx(t)
	api := client(ls)
	ch, _, _, err := api.OpenConversationContext(ctx, &slack.OpenConversationParameters{Users: []string{localslack.Lead1ID}})
	if err != nil || !strings.HasPrefix(ch.ID, "D") {
		t.Fatalf("conversations.open = %+v, %v", ch, err)
	}
	if _, _, err := api.PostMessageContext(ctx, ch.ID, slack.MsgOptionText("reminder: r42 step 3 awaits you", false)); err != nil {
		t.Fatal(err)
	}
	// Posting to a user ID lands in the same DM, as in Slack.
	if _, _, err := api.PostMessageContext(ctx, localslack.Lead1ID, slack.MsgOptionText("second reminder", false)); err != nil {
		t.Fatal(err)
	}
	if msgs := ls.Channel(ch.ID); len(msgs) != 2 || msgs[1].Text != "second reminder" {
		t.Errorf("DM = %+v", msgs)
	}
	if len(ls.Channel(localslack.ChannelID)) != 0 {
		t.Error("DM leaked into the channel")
	}
	var se slack.SlackErrorResponse
	if _, _, _, err := api.OpenConversationContext(ctx, &slack.OpenConversationParameters{Users: []string{localslack.DeletedID}}); !errors.As(err, &se) || se.Err != "user_disabled" {
		t.Errorf("DM to a deactivated user: %v", err)
	}
	// Only liam's page shows the DM.
	for user, want := range map[string]int{localslack.Lead1ID: 2, localslack.Lead2ID: 1} {
		if got := len(getState(t, ls, user).Channels); got != want {
			t.Errorf("%s sees %d conversations, want %d", user, got, want)
		}
	}
	users, err := api.GetUsersContext(ctx)
	if err != nil || len(users) != len(localslack.DefaultSeed().Users) {
		t.Errorf("users.list = %d users, %v", len(users), err)
	}
}
