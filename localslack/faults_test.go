package localslack_test

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/kongbot/kongbot/localslack"
	"github.com/slack-go/slack"
)

func TestFaults(t *testing.T) {
	post := func(ctx context.Context, api *slack.Client) error {
		_, _, err := api.PostMessageContext(ctx, localslack.ChannelID, slack.MsgOptionText("x", false))
		return err
	}
	tests := []struct {
		name  string
		fault localslack.Fault
		check func(t *testing.T, err error)
	}{
		{"429 with Retry-After", localslack.Fault{Method: "chat.postMessage", Kind: localslack.RateLimited, RetryAfter: 7, Count: 1},
			func(t *testing.T, err error) {
				var rl *slack.RateLimitedError
				if !errors.As(err, &rl) || rl.RetryAfter != 7*time.Second {
					t.Errorf("err = %v, want *slack.RateLimitedError 7s", err)
				}
			}},
		{"5xx", localslack.Fault{Kind: localslack.ServerError, Status: 502, Count: 1},
			func(t *testing.T, err error) {
				var sc slack.StatusCodeError
				if !errors.As(err, &sc) || sc.Code != 502 || !sc.Retryable() {
					t.Errorf("err = %v, want StatusCodeError 502", err)
				}
			}},
		{"ok:false", localslack.Fault{Method: "chat.postMessage", Kind: localslack.SlackError, Error: "not_in_channel", Count: 1},
			func(t *testing.T, err error) {
				var se slack.SlackErrorResponse
				if !errors.As(err, &se) || se.Err != "not_in_channel" {
					t.Errorf("err = %v, want not_in_channel", err)
				}
			}},
		{"down", localslack.Fault{Kind: localslack.Down, Count: 1},
			func(t *testing.T, err error) {
				var se slack.SlackErrorResponse
				var sc slack.StatusCodeError
				if err == nil || errors.As(err, &se) || errors.As(err, &sc) {
					t.Errorf("err = %v, want a connection error", err)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ls := newServer(t, localslack.Options{})
			ctx := testCtx(t)
			api := client(ls)
			if _, err := ls.Inject(tc.fault); err != nil {
				t.Fatal(err)
			}
			tc.check(t, post(ctx, api))
			// Count 1: the next call is served normally and stored once.
			if err := post(ctx, api); err != nil {
				t.Errorf("second call: %v", err)
			}
			if n := len(ls.Channel(localslack.ChannelID)); n != 1 {
				t.Errorf("channel has %d messages, want 1", n)
			}
			calls := ls.Calls("chat.postMessage")
			if len(calls) != 2 || calls[0].Fault == "" || calls[1].Fault != "" {
				t.Errorf("calls = %+v", calls)
			}
		})
	}
}

func TestFaultScopeAndPeriod(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	clock := &now
	ls := newServer(t, localslack.Options{Now: func() time.Time { return *clock }})
	ctx := testCtx(t)
	api := client(ls)
	remove, err := ls.Inject(localslack.Fault{Method: "chat.update", Kind: localslack.SlackError, Error: "ratelimited", For: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	// Other methods are untouched.
	_, ts, err := api.PostMessageContext(ctx, localslack.ChannelID, slack.MsgOptionText("x", false))
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, _, _, err := api.UpdateMessageContext(ctx, localslack.ChannelID, ts, slack.MsgOptionText("y", false)); err == nil {
			t.Fatal("update succeeded during the fault period")
		}
	}
	*clock = now.Add(61 * time.Second)
	if _, _, _, err := api.UpdateMessageContext(ctx, localslack.ChannelID, ts, slack.MsgOptionText("y", false)); err != nil {
		t.Errorf("update after the period: %v", err)
	}
	remove()

	if _, err := ls.Inject(localslack.Fault{Kind: "explode"}); err == nil {
		t.Error("unknown kind accepted")
	}
	if _, err := ls.Inject(localslack.Fault{Kind: localslack.ServerError, Status: 404}); err == nil {
		t.Error("non-5xx server error accepted")
	}
}

func TestSlowFaultHonoursClientDeadline(t *testing.T) {
	ls := newServer(t, localslack.Options{})
	api := client(ls)
	if _, err := ls.Inject(localslack.Fault{Method: "users.info", Kind: localslack.Slow, Delay: 5 * time.Second}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := api.GetUserInfoContext(ctx, localslack.Lead1ID); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want deadline exceeded", err)
	}
	ls.ClearFaults()
	if _, err := api.GetUserInfoContext(testCtx(t), localslack.Lead1ID); err != nil {
		t.Errorf("after clear: %v", err)
	}
}

// TestRateLimitedRetriesKeepOrder: slack-go's OptionRetry honours
// Retry-After; every message arrives once, in order.
func TestRateLimitedRetriesKeepOrder(t *testing.T) {
	ls := newServer(t, localslack.Options{})
	ctx := testCtx(t)
	api := client(ls, slack.OptionRetry(3))
	if _, err := ls.Inject(localslack.Fault{Method: "chat.postMessage", Kind: localslack.RateLimited, RetryAfter: 0, Count: 2}); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if _, _, err := api.PostMessageContext(ctx, localslack.ChannelID, slack.MsgOptionText(fmt.Sprint("step ", i), false)); err != nil {
			t.Fatalf("post %d: %v", i, err)
		}
	}
	msgs := ls.Channel(localslack.ChannelID)
	if len(msgs) != 4 {
		t.Fatalf("%d messages, want 4", len(msgs))
	}
	for i, m := range msgs {
		if m.Text != fmt.Sprint("step ", i) {
			t.Errorf("message %d = %q", i, m.Text)
		}
	}
	if n := len(ls.Calls("chat.postMessage")); n != 6 {
		t.Errorf("%d calls, want 6 (2 refused, 4 served)", n)
	}
}

func TestOutageRefusesThenRecovers(t *testing.T) {
	ls := newServer(t, localslack.Options{})
	ctx := testCtx(t)
	bot := startSMBot(t, ctx, ls)
	post := func(api *slack.Client, text string) error {
		_, _, err := api.PostMessageContext(ctx, localslack.ChannelID, slack.MsgOptionText(text, false))
		return err
	}
	if err := post(bot.api, "before"); err != nil {
		t.Fatal(err)
	}
	if err := ls.Outage(time.Second); err != nil {
		t.Fatal(err)
	}
	if err := ls.Outage(time.Second); err == nil {
		t.Error("a second outage started during the first")
	}
	// A pooled connection is dropped; a new one is refused.
	var se slack.SlackErrorResponse
	if err := post(bot.api, "lost 1"); err == nil || errors.As(err, &se) {
		t.Errorf("pooled connection during outage: %v", err)
	}
	if err := post(client(ls), "lost 2"); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("new connection during outage: %v, want connection refused", err)
	}
	if err := ls.WaitFor(ctx, func() bool { return !ls.Down() }); err != nil {
		t.Fatal(err)
	}
	if err := post(bot.api, "after"); err != nil {
		t.Errorf("after the outage: %v", err)
	}
	msgs := ls.Channel(localslack.ChannelID)
	if len(msgs) != 2 || msgs[0].Text != "before" || msgs[1].Text != "after" {
		t.Errorf("messages = %+v", msgs)
	}
	// slack-go's socketmode client reconnects once localslack is back.
	if err := ls.WaitFor(ctx, func() bool { s := ls.Sockets(); return s.Open == 1 && s.Opened >= 2 }); err != nil {
		t.Fatalf("socket did not come back: %+v: %v", ls.Sockets(), err)
	}
}
