package schedule

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/kongbot/kongbot/config"
	"github.com/kongbot/kongbot/steps"
)

// cronParser reads the 5-field specs and descriptors config and commands
// accept (same fields as config's check).
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// parseCron parses a spec. robfig/cron v3.0.1 panics on a bare "TZ="
// prefix; that becomes an error.
func parseCron(spec string) (s cron.Schedule, err error) {
	if (strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=")) && !strings.Contains(spec, " ") {
		return nil, fmt.Errorf("time zone %q needs a schedule after it", spec)
	}
	defer func() {
		if r := recover(); r != nil {
			s, err = nil, fmt.Errorf("unparseable cron spec %q (%v)", spec, r)
		}
	}()
	s, err = cronParser.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("cron spec %q: %w", spec, err)
	}
	return s, nil
}

// next is the first time after t that s comes due, in UTC unless the spec
// names a zone (CRON_TZ=). Zero: never.
func next(s cron.Schedule, t time.Time) time.Time {
	n := s.Next(t.UTC())
	if n.IsZero() {
		return n
	}
	return n.UTC()
}

// Windows is the change windows of config as a steps.WindowGate. A nil
// *Windows restricts nothing.
type Windows struct {
	ws []window
}

type window struct {
	name     string
	start    cron.Schedule
	d        time.Duration
	gateways []string
}

var _ steps.WindowGate = (*Windows)(nil)

// NewWindows reads config's change windows; none gives nil.
func NewWindows(cfg []config.ChangeWindow) (*Windows, error) {
	if len(cfg) == 0 {
		return nil, nil
	}
	w := &Windows{}
	for i, c := range cfg {
		s, err := parseCron(c.Start)
		if err != nil {
			return nil, fmt.Errorf("change window %d (%s): %w", i, c.Name, err)
		}
		if c.Duration <= 0 {
			return nil, fmt.Errorf("change window %d (%s): duration must be positive", i, c.Name)
		}
		name := c.Name
		if name == "" {
			name = c.Start
		}
		w.ws = append(w.ws, window{name: name, start: s, d: c.Duration, gateways: slices.Clone(c.Gateways)})
	}
	return w, nil
}

// Window says whether a window is open for gateway at now. A window is
// open from each start (a time its cron spec names) for its duration; the
// first start after now-duration tells both whether one is open and, if
// not, when the next opens.
func (w *Windows) Window(gateway string, now time.Time) steps.WindowState {
	var out steps.WindowState
	if w == nil {
		return out
	}
	for _, win := range w.ws {
		if len(win.gateways) > 0 && !slices.Contains(win.gateways, gateway) {
			continue
		}
		out.Restricted = true
		s := next(win.start, now.Add(-win.d))
		if s.IsZero() {
			continue
		}
		if !s.After(now) {
			closes := s.Add(win.d)
			if !out.Open || closes.After(out.Closes) {
				out.Open, out.Name, out.Closes = true, win.name, closes
			}
			continue
		}
		if !out.Open && (out.Opens.IsZero() || s.Before(out.Opens)) {
			out.Opens, out.Name = s, win.name
		}
	}
	if out.Open {
		out.Opens = time.Time{}
	}
	return out
}
