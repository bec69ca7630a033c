package localslack_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/kongbot/kongbot/localslack"
	"github.com/slack-go/slack"
)

func newServer(t *testing.T, opts localslack.Options) *localslack.Server {
	t.Helper()
	ls := localslack.New(opts)
	ctx, cancel := context.WithCancel(context.Background())
	if err := ls.Start(ctx); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		if err := ls.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return ls
}

func client(ls *localslack.Server, opts ...slack.Option) *slack.Client {
	return slack.New(ls.BotToken(), append([]slack.Option{slack.OptionAPIURL(ls.APIURL()),
		slack.OptionAppLevelToken(ls.AppToken())}, opts...)...)
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func plain(s string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.PlainTextType, s, false, false)
}

func md(s string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.MarkdownType, s, false, false)
}

func approvalBlocks(val string) []slack.Block {
	approve := slack.NewButtonBlockElement("step_approve", val, plain("Approve")).WithStyle(slack.StylePrimary).
		WithConfirm(slack.NewConfirmationBlockObject(plain("Approve step?"), md("Run *r42* step 3"), plain("Approve"), plain("Cancel")))
	reject := slack.NewButtonBlockElement("step_reject", val, plain("Reject")).WithStyle(slack.StyleDanger)
	return []slack.Block{
		slack.NewHeaderBlock(plain("Kong upgrade r42 – step 3")),
		slack.NewSectionBlock(md("*kong migrations up* against <@"+localslack.Lead1ID+">"), nil, nil),
		slack.NewActionBlock("", approve, reject),
	}
}

func TestAuthAndTokens(t *testing.T) {
	ls := newServer(t, localslack.Options{})
	ctx := testCtx(t)
	res, err := client(ls).AuthTestContext(ctx)
	if err != nil {
		t.Fatalf("auth.test: %v", err)
	}
	if res.UserID != localslack.BotUserID || res.BotID != localslack.BotID || res.TeamID != localslack.TeamID {
		t.Errorf("auth.test = %+v", res)
	}
	tests := []struct {
		name, token, want string
	}{
		{"wrong bot token", "xoxb-wrong", "invalid_auth"},
		{"app token on a web method", ls.AppToken(), "not_allowed_token_type"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := slack.New(tc.token, slack.OptionAPIURL(ls.APIURL())).AuthTestContext(ctx)
			var se slack.SlackErrorResponse
			if !errors.As(err, &se) || se.Err != tc.want {
				t.Fatalf("err = %v, want %s", err, tc.want)
			}
		})
	}
	// apps.connections.open takes the app token only.
	if _, _, err := slack.New(ls.BotToken(), slack.OptionAPIURL(ls.APIURL()), slack.OptionAppLevelToken(ls.BotToken())).StartSocketModeContext(ctx); err == nil || !strings.Contains(err.Error(), "not_allowed_token_type") {
		t.Errorf("connections.open with a bot token: %v", err)
	}
	if _, url, err := client(ls).StartSocketModeContext(ctx); err != nil || !strings.HasPrefix(url, "ws://") {
		t.Errorf("connections.open = %q, %v", url, err)
	}
}

func TestPostUpdateThreadEphemeralDelete(t *testing.T) {
	ls := newServer(t, localslack.Options{})
	ctx := testCtx(t)
	api := client(ls)

	ch, ts, err := api.PostMessageContext(ctx, localslack.ChannelID, slack.MsgOptionText("run r42", false),
		slack.MsgOptionBlocks(approvalBlocks("r42:3:ab12")...))
	if err != nil || ch != localslack.ChannelID {
		t.Fatalf("post: %q %v", ch, err)
	}
	// Posting by channel name works as in Slack; timestamps are unique and increasing.
	var prev = ts
	for i := range 20 {
		_, ts2, err := api.PostMessageContext(ctx, "#"+localslack.ChannelName, slack.MsgOptionText("step", false), slack.MsgOptionTS(ts))
		if err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
		if ts2 <= prev || len(ts2) != len("1700000000.000100") {
			t.Fatalf("ts %q not after %q", ts2, prev)
		}
		prev = ts2
	}
	if got := len(ls.Thread(ts)); got != 20 {
		t.Errorf("thread has %d replies, want 20", got)
	}
	if got := len(ls.Channel(localslack.ChannelName)); got != 1 {
		t.Errorf("channel shows %d messages, want 1 (replies stay in the thread)", got)
	}
	msg, _ := ls.Message(ts)
	btn, ok := msg.Button("step_approve", "")
	if !ok || btn.Style != "primary" || btn.Value != "r42:3:ab12" || len(btn.Confirm) == 0 || btn.BlockID == "" {
		t.Errorf("approve button = %+v, %v", btn, ok)
	}

	// A broadcast reply shows in the channel too.
	if _, _, err := api.PostMessageContext(ctx, localslack.ChannelID, slack.MsgOptionText("run r42 done", false), slack.MsgOptionTS(ts), slack.MsgOptionBroadcast()); err != nil {
		t.Fatal(err)
	}
	if got := len(ls.Channel(localslack.ChannelID)); got != 2 {
		t.Errorf("channel shows %d messages after broadcast, want 2", got)
	}

	// chat.update replaces blocks and text.
	_, _, _, err = api.UpdateMessageContext(ctx, localslack.ChannelID, ts, slack.MsgOptionText("approved", false),
		slack.MsgOptionBlocks(slack.NewContextBlock("", md("Approved by <@"+localslack.Lead1ID+">"))))
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	msg, _ = ls.Message(ts)
	if msg.Text != "approved" || len(msg.Buttons()) != 0 || !strings.Contains(msg.BlockText(), "Approved by") || msg.Edits != 1 {
		t.Errorf("after update: %+v", msg)
	}

	// Replies read back through conversations.replies, parent first.
	replies, _, _, err := api.GetConversationRepliesContext(ctx, &slack.GetConversationRepliesParameters{ChannelID: localslack.ChannelID, Timestamp: ts})
	if err != nil || len(replies) != 22 || replies[0].Timestamp != ts || replies[0].ReplyCount != 21 {
		t.Errorf("replies: %d %v", len(replies), err)
	}
	link, err := api.GetPermalinkContext(ctx, &slack.PermalinkParameters{Channel: localslack.ChannelID, Ts: replies[3].Timestamp})
	if err != nil || !strings.Contains(link, "/archives/"+localslack.ChannelID+"/p") || !strings.Contains(link, "thread_ts="+ts) {
		t.Errorf("permalink %q %v", link, err)
	}

	// Ephemeral messages are per user.
	if _, err := api.PostEphemeralContext(ctx, localslack.ChannelID, localslack.GuestID, slack.MsgOptionText("guests cannot approve", false)); err != nil {
		t.Fatalf("ephemeral: %v", err)
	}
	if e := ls.Ephemerals(localslack.GuestID); len(e) != 1 || e[0].Text != "guests cannot approve" || e[0].Source != "chat.postEphemeral" {
		t.Errorf("guest ephemerals %+v", e)
	}
	if e := ls.Ephemerals(localslack.Lead1ID); len(e) != 0 {
		t.Errorf("lead sees another user's ephemeral: %+v", e)
	}

	// Errors as Slack reports them.
	errCases := []struct {
		name string
		call func() error
		want string
	}{
		{"update unknown ts", func() error {
			_, _, _, err := api.UpdateMessageContext(ctx, localslack.ChannelID, "1.000001", slack.MsgOptionText("x", false))
			return err
		}, "message_not_found"},
		{"post to unknown channel", func() error {
			_, _, err := api.PostMessageContext(ctx, "C0NOPE", slack.MsgOptionText("x", false))
			return err
		}, "channel_not_found"},
		{"post without text", func() error {
			_, _, err := api.PostMessageContext(ctx, localslack.ChannelID)
			return err
		}, "no_text"},
		{"reply to unknown thread", func() error {
			_, _, err := api.PostMessageContext(ctx, localslack.ChannelID, slack.MsgOptionText("x", false), slack.MsgOptionTS("2.000000"))
			return err
		}, "thread_not_found"},
	}
	for _, tc := range errCases {
		t.Run(tc.name, func(t *testing.T) {
			var se slack.SlackErrorResponse
			if err := tc.call(); !errors.As(err, &se) || se.Err != tc.want {
				t.Errorf("err = %v, want %s", err, tc.want)
			}
		})
	}

	// chat.delete removes the message; a reply to it then lands in the channel.
	_, delTS, _ := api.PostMessageContext(ctx, localslack.ChannelID, slack.MsgOptionText("to delete", false))
	if _, _, err := api.DeleteMessageContext(ctx, localslack.ChannelID, delTS); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, ok := ls.Message(delTS); ok {
		t.Error("deleted message still there")
	}
	_, _, m, err := api.PostMessageWithResponseContext(ctx, localslack.ChannelID, slack.MsgOptionText("orphan", false), slack.MsgOptionTS(delTS))
	if err != nil || m.ThreadTimestamp != "" {
		t.Errorf("reply to deleted parent: thread_ts %q, %v", m.ThreadTimestamp, err)
	}
}

func TestUsersAndGroups(t *testing.T) {
	ls := newServer(t, localslack.Options{})
	ctx := testCtx(t)
	api := client(ls)
	tests := []struct {
		id                      string
		bot, restricted, delete bool
	}{
		{localslack.OnCallID, false, false, false},
		{localslack.Lead1ID, false, false, false},
		{localslack.GuestID, false, true, false},
		{localslack.DeletedID, false, false, true},
		{localslack.BotUserID, true, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.id, func(t *testing.T) {
			u, err := api.GetUserInfoContext(ctx, tc.id)
			if err != nil {
				t.Fatal(err)
			}
			if u.ID != tc.id || u.IsBot != tc.bot || u.IsRestricted != tc.restricted || u.Deleted != tc.delete || u.Name == "" || u.Profile.RealName == "" {
				t.Errorf("user = %+v", u)
			}
		})
	}
	var se slack.SlackErrorResponse
	if _, err := api.GetUserInfoContext(ctx, "U0NOBODY1"); !errors.As(err, &se) || se.Err != "user_not_found" {
		t.Errorf("unknown user: %v", err)
	}
	groups, err := api.GetUserGroupsContext(ctx, slack.GetUserGroupsOptionIncludeUsers(true))
	if err != nil || len(groups) != 1 || groups[0].Handle != localslack.LeadsHandle || len(groups[0].Users) != 2 {
		t.Fatalf("usergroups.list = %+v, %v", groups, err)
	}
	members, err := api.GetUserGroupMembersContext(ctx, groups[0].ID)
	if err != nil || strings.Join(members, ",") != localslack.Lead1ID+","+localslack.Lead2ID {
		t.Errorf("members = %v, %v", members, err)
	}
	if err := ls.SetGroupMembers("@kong-leads", []string{localslack.Lead2ID}); err != nil {
		t.Fatal(err)
	}
	if members, _ = api.GetUserGroupMembersContext(ctx, groups[0].ID); len(members) != 1 {
		t.Errorf("after change members = %v", members)
	}
	if _, err := api.GetUserGroupMembersContext(ctx, "S0NOPE"); !errors.As(err, &se) || se.Err != "no_such_subteam" {
		t.Errorf("unknown group: %v", err)
	}
}

func TestFileUploadLandsInThread(t *testing.T) {
	ls := newServer(t, localslack.Options{})
	ctx := testCtx(t)
	api := client(ls)
	_, parent, err := api.PostMessageContext(ctx, localslack.ChannelID, slack.MsgOptionText("run r42", false))
	if err != nil {
		t.Fatal(err)
	}
	log := strings.Repeat("migrating core done\n", 500)
	f, err := api.UploadFileContext(ctx, slack.UploadFileParameters{Filename: "r42-step3.log", Title: "step 3 output",
		Content: log, FileSize: len(log), Channel: localslack.ChannelID, ThreadTimestamp: parent, InitialComment: "migration log"})
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	files := ls.Files()
	if len(files) != 1 || files[0].ID != f.ID || string(files[0].Content) != log || files[0].Title != "step 3 output" || files[0].ThreadTS != parent {
		t.Fatalf("files = %+v", files)
	}
	th := ls.Thread(parent)
	if len(th) != 1 || len(th[0].Files) != 1 || th[0].Text != "migration log" {
		t.Errorf("thread = %+v", th)
	}
	// Completing an upload whose bytes never arrived fails like Slack.
	u, err := api.GetUploadURLExternalContext(ctx, slack.GetUploadURLExternalParameters{FileName: "x.log", FileSize: 3})
	if err != nil || !strings.HasPrefix(u.UploadURL, strings.TrimSuffix(ls.APIURL(), "/api/")) {
		t.Fatalf("upload url %+v %v", u, err)
	}
	_, err = api.CompleteUploadExternalContext(ctx, slack.CompleteUploadExternalParameters{Files: []slack.FileSummary{{ID: u.FileID}}, Channel: localslack.ChannelID})
	var se slack.SlackErrorResponse
	if !errors.As(err, &se) || se.Err != "file_upload_not_complete" {
		t.Errorf("complete without upload: %v", err)
	}
}

func TestViewsPublish(t *testing.T) {
	ls := newServer(t, localslack.Options{})
	ctx := testCtx(t)
	api := client(ls)
	view := slack.HomeTabViewRequest{Type: slack.VTHomeTab, Blocks: slack.Blocks{BlockSet: []slack.Block{
		slack.NewHeaderBlock(plain("Pending approvals")),
		slack.NewSectionBlock(md("Run *r42* step 3"), nil, slack.NewAccessory(slack.NewButtonBlockElement("home_open", "r42", plain("Open")))),
	}}}
	resp, err := api.PublishViewContext(ctx, slack.PublishViewContextRequest{UserID: localslack.Lead1ID, View: view})
	if err != nil || resp.ID == "" || resp.Hash == "" || resp.Type != slack.VTHomeTab || len(resp.Blocks.BlockSet) != 2 {
		t.Fatalf("publish: %+v %v", resp, err)
	}
	h, ok := ls.Home(localslack.Lead1ID)
	if !ok || h.Publishes != 1 || !strings.Contains(string(h.View), "Pending approvals") {
		t.Errorf("home = %+v", h)
	}
	stale := "1.stale"
	_, err = api.PublishViewContext(ctx, slack.PublishViewContextRequest{UserID: localslack.Lead1ID, View: view, Hash: &stale})
	var se slack.SlackErrorResponse
	if !errors.As(err, &se) || se.Err != "hash_conflict" {
		t.Errorf("stale hash: %v", err)
	}
	if _, ok := ls.Home(localslack.Lead2ID); ok {
		t.Error("lead2 has a home view nobody published")
	}
}

func TestSeedValidation(t *testing.T) {
	good := localslack.DefaultSeed()
	if err := good.Validate(); err != nil {
		t.Fatalf("default seed: %v", err)
	}
	tests := []struct {
		name   string
		change func(*localslack.Seed)
		want   string
	}{
		{"bad user id", func(s *localslack.Seed) { s.Users[0].ID = "x1" }, "must look like U0123ABCD"},
		{"unknown member", func(s *localslack.Seed) { s.UserGroups[0].Users = append(s.UserGroups[0].Users, "U0GHOST01") }, "not a seeded user"},
		{"bot not a bot", func(s *localslack.Seed) { s.Bot.UserID = localslack.OnCallID }, "is_bot"},
		{"duplicate name", func(s *localslack.Seed) { s.Users[1].Name = s.Users[0].Name }, "duplicate name"},
		{"no channel", func(s *localslack.Seed) { s.Channels = nil }, "at least one channel"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := localslack.DefaultSeed()
			tc.change(&s)
			if err := s.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
	// A seed round-trips through JSON (the seed file format).
	b, _ := json.Marshal(good)
	var back localslack.Seed
	if err := json.Unmarshal(b, &back); err != nil || back.Validate() != nil || len(back.Users) != len(good.Users) {
		t.Errorf("round trip: %v", err)
	}
}

func TestLoadSeed(t *testing.T) {
	seed, err := localslack.LoadSeed("testdata/seed.json")
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	ls := newServer(t, localslack.Options{Seed: &seed})
	ctx := testCtx(t)
	api := client(ls)
	u, err := api.GetUserInfoContext(ctx, "U0GUEST002")
	if err != nil || !u.IsUltraRestricted {
		t.Errorf("guest = %+v, %v", u, err)
	}
	if _, _, err := api.PostMessageContext(ctx, "#upgrades", slack.MsgOptionText("hi", false)); err != nil {
		t.Errorf("post to seeded channel: %v", err)
	}
	if res, err := api.AuthTestContext(ctx); err != nil || res.UserID != "U0ACMEBOT1" || res.TeamID != "T0ACME0001" {
		t.Errorf("auth.test = %+v, %v", res, err)
	}

	for _, tc := range []struct{ path, want string }{
		{"testdata/seed-bad.json", `unknown field "colour"`},
		{"testdata/missing.json", "no such file"},
	} {
		if _, err := localslack.LoadSeed(tc.path); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("LoadSeed(%s) = %v, want %q", tc.path, err, tc.want)
		}
	}
}

// TestBadInputChangesNothing: malformed requests get Slack's specific error
// and leave the workspace as it was.
func TestBadInputChangesNothing(t *testing.T) {
	ls := newServer(t, localslack.Options{})
	ctx := testCtx(t)
	_, ts, err := client(ls).PostMessageContext(ctx, localslack.ChannelID, slack.MsgOptionText("keep me", false))
	if err != nil {
		t.Fatal(err)
	}
	form := func(kv ...string) url.Values {
		v := url.Values{"token": {ls.BotToken()}}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	tests := []struct {
		name, method, ctype, body, want string
	}{
		{"blocks not JSON", "chat.postMessage", "application/x-www-form-urlencoded", form("channel", localslack.ChannelID, "blocks", "[{").Encode(), "invalid_blocks"},
		{"block without type", "chat.update", "application/x-www-form-urlencoded", form("channel", localslack.ChannelID, "ts", ts, "blocks", `[{"text":"x"}]`).Encode(), "invalid_blocks"},
		{"update clears everything", "chat.update", "application/x-www-form-urlencoded", form("channel", localslack.ChannelID, "ts", ts, "text", "", "blocks", "[]").Encode(), "no_text"},
		{"JSON body broken", "views.publish", "application/json", `{"user_id":`, "invalid_json"},
		{"view not home", "views.publish", "application/json", `{"user_id":"` + localslack.Lead1ID + `","view":{"type":"modal"}}`, "invalid_arguments"},
		{"upload without length", "files.getUploadURLExternal", "application/x-www-form-urlencoded", form("filename", "x.log").Encode(), "invalid_arguments"},
		{"complete unknown file", "files.completeUploadExternal", "application/x-www-form-urlencoded", form("files", `[{"id":"F0NOPE"}]`).Encode(), "file_not_found"},
		{"post with empty blocks only", "chat.postMessage", "application/x-www-form-urlencoded", form("channel", localslack.ChannelID, "blocks", "[]").Encode(), "no_text"},
		{"unknown method", "chat.frobnicate", "application/x-www-form-urlencoded", form().Encode(), "unknown_method"},
		{"no token", "auth.test", "application/x-www-form-urlencoded", "", "not_authed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ls.APIURL()+tc.method, strings.NewReader(tc.body))
			req.Header.Set("Content-Type", tc.ctype)
			if tc.ctype == "application/json" {
				req.Header.Set("Authorization", "Bearer "+ls.BotToken())
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var out struct {
				OK    bool   `json:"ok"`
				Error string `json:"error"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.OK || out.Error != tc.want {
				t.Errorf("got %+v (%v), want error %s", out, err, tc.want)
			}
		})
	}
	if m, _ := ls.Message(ts); m.Text != "keep me" || m.Edits != 0 {
		t.Errorf("message changed: %+v", m)
	}
	if len(ls.Files()) != 0 {
		t.Error("a file appeared")
	}
	if _, ok := ls.Home(localslack.Lead1ID); ok {
		t.Error("a home view appeared")
	}
	// Only the calls themselves were recorded.
	if n := len(ls.Calls("")); n != 1+len(tests) {
		t.Errorf("%d calls recorded, want %d", n, 1+len(tests))
	}
}
