package localslack

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// FaultKind is how an injected fault answers.
type FaultKind string

// Fault kinds.
const (
	// RateLimited answers HTTP 429 with a Retry-After header.
	RateLimited FaultKind = "rate_limited"
	// ServerError answers an HTTP 5xx (Status, default 503).
	ServerError FaultKind = "server_error"
	// SlackError answers HTTP 200 with ok:false and Error.
	SlackError FaultKind = "slack_error"
	// Slow delays the answer by Delay, then serves the call normally.
	Slow FaultKind = "slow"
	// Down closes the connection without an answer, as a crashed or
	// unreachable Slack edge would; the client sees EOF or a reset.
	Down FaultKind = "down"
)

// Fault is a rule that answers matching Web API calls abnormally.
type Fault struct {
	// Method is the Web API method ("chat.update"); "" matches every method
	// (the web page and Socket Mode are never affected).
	Method string
	Kind   FaultKind
	// Count is how many calls the fault answers; 0 means no limit.
	Count int
	// For limits the fault to a period from injection; 0 means no limit.
	// With Count and For both zero the fault lasts until cleared.
	For time.Duration
	// RetryAfter is the Retry-After value for RateLimited, in whole seconds
	// as Slack sends it (0 is sent as "0").
	RetryAfter int
	// Status is the HTTP status for ServerError (default 503).
	Status int
	// Error is the ok:false error for SlackError (default "internal_error").
	Error string
	// Delay is the delay for Slow.
	Delay time.Duration
}

type faultRule struct {
	f     Fault
	id    int
	until time.Time
	left  int
	hits  int
}

func (r *faultRule) name() string {
	return fmt.Sprintf("%s#%d", r.f.Kind, r.id)
}

// Inject adds a fault rule and returns a function that removes it. Rules are
// checked in injection order; the first live match answers the call.
func (s *Server) Inject(f Fault) (remove func(), err error) {
	switch f.Kind {
	case RateLimited, Slow, Down:
	case ServerError:
		if f.Status == 0 {
			f.Status = http.StatusServiceUnavailable
		}
		if f.Status < 500 || f.Status > 599 {
			return nil, fmt.Errorf("localslack: fault status %d is not a 5xx", f.Status)
		}
	case SlackError:
		if f.Error == "" {
			f.Error = "internal_error"
		}
	default:
		return nil, fmt.Errorf("localslack: unknown fault kind %q", f.Kind)
	}
	if f.Count < 0 || f.For < 0 || f.RetryAfter < 0 || f.Delay < 0 {
		return nil, fmt.Errorf("localslack: fault %s: negative count, period, retry-after or delay", f.Kind)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.faultSeq++
	r := &faultRule{f: f, id: s.st.faultSeq, left: f.Count}
	if f.For > 0 {
		r.until = s.now().Add(f.For)
	}
	s.st.faults = append(s.st.faults, r)
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for i, x := range s.st.faults {
			if x == r {
				s.st.faults = append(s.st.faults[:i], s.st.faults[i+1:]...)
				return
			}
		}
	}, nil
}

// ClearFaults removes every fault rule.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.faults = nil
}

// matchFaultLocked consumes one use of the first live rule for method.
func (s *Server) matchFaultLocked(method string) *faultRule {
	now := s.now()
	live := s.st.faults[:0]
	var hit *faultRule
	for _, r := range s.st.faults {
		expired := (!r.until.IsZero() && !now.Before(r.until)) || (r.f.Count > 0 && r.left <= 0)
		if expired {
			continue
		}
		live = append(live, r)
		if hit == nil && (r.f.Method == "" || r.f.Method == method) {
			hit = r
		}
	}
	s.st.faults = live
	if hit != nil {
		hit.hits++
		if hit.f.Count > 0 {
			hit.left--
		}
	}
	return hit
}

// applyFault answers the call if the fault ends it; it returns true when the
// response has been written (or the connection dropped).
func (s *Server) applyFault(ctx context.Context, w http.ResponseWriter, r *faultRule) bool {
	switch r.f.Kind {
	case Slow:
		t := time.NewTimer(r.f.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return true
		}
		return false
	case RateLimited:
		w.Header().Set("Retry-After", strconv.Itoa(r.f.RetryAfter))
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = w.Write([]byte(`{"ok":false,"error":"ratelimited"}`))
	case ServerError:
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(r.f.Status)
		_, _ = w.Write([]byte("<html><body>Slack is having trouble</body></html>"))
	case SlackError:
		writeJSON(w, map[string]any{"ok": false, "error": r.f.Error})
	case Down:
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				return true
			}
		}
		// Without hijacking, abort the handler: net/http drops the connection.
		panic(http.ErrAbortHandler)
	}
	return true
}
