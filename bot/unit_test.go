package bot

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	b := &Bot{opts: Options{RetryBase: time.Second, RetryMax: time.Minute}}
	cases := []struct {
		attempts int
		lo, hi   time.Duration
	}{
		{0, 800 * time.Millisecond, 1200 * time.Millisecond},
		{1, 1600 * time.Millisecond, 2400 * time.Millisecond},
		{5, 25600 * time.Millisecond, 38400 * time.Millisecond},
		{6, 48 * time.Second, 72 * time.Second}, // capped at RetryMax, with jitter
		{60, 48 * time.Second, 72 * time.Second},
	}
	for _, c := range cases {
		for range 50 {
			if d := b.backoff(c.attempts); d < c.lo || d > c.hi {
				t.Fatalf("backoff(%d) = %s, want %s..%s", c.attempts, d, c.lo, c.hi)
			}
		}
	}
}

func TestDedup(t *testing.T) {
	d := newDedup(time.Minute)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		id   string
		at   time.Duration
		want bool
	}{
		{"env-1", 0, true},
		{"env-1", time.Second, false},    // a redelivery
		{"env-2", time.Second, true},     // another request
		{"", time.Second, true},          // no ID: cannot tell, do it
		{"", time.Second, true},          //
		{"env-1", 2 * time.Minute, true}, // forgotten after the TTL
	}
	for i, c := range cases {
		if got := d.first(c.id, t0.Add(c.at)); got != c.want {
			t.Errorf("%d: first(%q) = %v, want %v", i, c.id, got, c.want)
		}
	}
}

func TestClipAndEscape(t *testing.T) {
	if got := clip("kong migrations up ✓✓✓", 20); got != "kong migrations up …" {
		t.Errorf("clip = %q", got)
	}
	if got := esc("<!channel> & <@U1>"); got != "&lt;!channel&gt; &amp; &lt;@U1&gt;" {
		t.Errorf("esc = %q", got)
	}
	if got := redactURLs(`Post "https://hooks.slack.com/actions/T1/123/abc": EOF`); got != `Post "<url>": EOF` {
		t.Errorf("redactURLs = %q", got)
	}
}
