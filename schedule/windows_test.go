package schedule

import (
	"strings"
	"testing"
	"time"

	"github.com/kongbot/kongbot/config"
)

func TestWindows(t *testing.T) {
	w, err := NewWindows([]config.ChangeWindow{
		{Name: "saturday-night", Start: "0 2 * * 6", Duration: 2 * time.Hour, Gateways: []string{"prod"}},
		{Name: "daily", Start: "0 12 * * *", Duration: 30 * time.Minute, Gateways: []string{"edge"}},
		{Name: "edge-long", Start: "15 12 * * *", Duration: time.Hour, Gateways: []string{"edge"}},
		{Name: "paris", Start: "CRON_TZ=Europe/Paris 0 3 * * 6", Duration: time.Hour, Gateways: []string{"eu"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	sat := time.Date(2026, 12, 5, 2, 0, 0, 0, time.UTC)
	cases := []struct {
		name       string
		gw         string
		at         time.Time
		restricted bool
		open       bool
		closes     time.Time
		opens      time.Time
		window     string
	}{
		{"a minute before", "prod", sat.Add(-time.Minute), true, false, time.Time{}, sat, "saturday-night"},
		{"at the start", "prod", sat, true, true, sat.Add(2 * time.Hour), time.Time{}, "saturday-night"},
		{"a second before the end", "prod", sat.Add(2*time.Hour - time.Second), true, true, sat.Add(2 * time.Hour), time.Time{}, "saturday-night"},
		{"at the end: next week", "prod", sat.Add(2 * time.Hour), true, false, time.Time{}, sat.AddDate(0, 0, 7), "saturday-night"},
		{"a gateway no window names", "staging", sat.Add(-time.Hour), false, false, time.Time{}, time.Time{}, ""},
		{"overlapping windows: the one that closes last", "edge", time.Date(2026, 12, 5, 12, 20, 0, 0, time.UTC), true, true,
			time.Date(2026, 12, 5, 13, 15, 0, 0, time.UTC), time.Time{}, "edge-long"},
		{"between windows: the sooner opening", "edge", time.Date(2026, 12, 5, 13, 30, 0, 0, time.UTC), true, false, time.Time{},
			time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC), "daily"},
		{"a window in its own zone (03:00 Paris is 02:00 UTC in December)", "eu", sat.Add(-time.Minute), true, false, time.Time{}, sat, "paris"},
		{"a non-UTC now", "prod", sat.In(time.FixedZone("X", 5*3600)).Add(time.Minute), true, true, sat.Add(2 * time.Hour), time.Time{}, "saturday-night"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := w.Window(c.gw, c.at)
			if s.Restricted != c.restricted || s.Open != c.open || !s.Closes.Equal(c.closes) || !s.Opens.Equal(c.opens) || s.Name != c.window {
				t.Errorf("got %+v", s)
			}
		})
	}
	if got := w.Window("prod", sat.Add(3*time.Hour)).WindowText(); got != "waiting for the window saturday-night that opens Sat 12 Dec 02:00 UTC" {
		t.Errorf("text %q", got)
	}
	var none *Windows
	if s := none.Window("prod", sat); s.Restricted {
		t.Errorf("nil windows restrict: %+v", s)
	}
}

func TestNewWindowsRefusesBadConfig(t *testing.T) {
	for _, c := range []struct {
		name string
		w    config.ChangeWindow
		want string
	}{
		{"bad spec", config.ChangeWindow{Name: "x", Start: "0 25 * * *", Duration: time.Hour}, "cron spec"},
		{"bare zone (panics in robfig/cron)", config.ChangeWindow{Name: "x", Start: "TZ=", Duration: time.Hour}, "needs a schedule"},
		{"no duration", config.ChangeWindow{Name: "x", Start: "0 2 * * 6"}, "duration must be positive"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := NewWindows([]config.ChangeWindow{c.w}); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err %v, want %q", err, c.want)
			}
		})
	}
	if w, err := NewWindows(nil); w != nil || err != nil {
		t.Errorf("no windows: %v %v", w, err)
	}
}
