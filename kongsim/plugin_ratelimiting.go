package kongsim

import (
	"strconv"
	"sync"
	"time"
)

// rateLimiter holds rate-limiting counters in the node's memory. Every
// policy is counted per node, like Kong's `local` policy (the recording
// used policy=local; cluster and redis are not simulated).
type rateLimiter struct {
	mu     sync.Mutex
	counts map[rlKey]int64
	swept  time.Time
}

type rlKey struct {
	scope, identifier, period string
	start                     int64
}

func newRateLimiter() *rateLimiter { return &rateLimiter{counts: map[rlKey]int64{}} }

var rlPeriods = []struct {
	name string
	secs int64
}{
	{"second", 1}, {"minute", 60}, {"hour", 3600}, {"day", 86400}, {"month", 30 * 86400}, {"year", 365 * 86400},
}

// periodStart aligns t to the start of its window as Kong's timestamp
// helpers do (UTC calendar for month and year).
func periodStart(t time.Time, name string, secs int64) int64 {
	t = t.UTC()
	switch name {
	case "month":
		return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC).Unix()
	case "year":
		return time.Date(t.Year(), 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	}
	return t.Unix() / secs * secs
}

// rateLimitingAccess is rate-limiting's access phase (priority 901): it sets
// X-RateLimit-Limit-<period> and X-RateLimit-Remaining-<period> on whatever
// the client gets and answers 429 once a limit is used up.
func rateLimitingAccess(c *reqCtx, pl *Plugin) *kongResponse {
	cfg := pl.Config
	identifier := c.clientIP
	switch s, _ := cfgString(cfg, "limit_by"); s {
	case "credential":
		if c.credential != "" {
			identifier = c.credential
		}
	case "ip":
	default:
		if c.consumer != nil {
			identifier = c.consumer.ID
		} else if c.credential != "" {
			identifier = c.credential
		}
	}
	scope := c.apiID()
	if scope == "" {
		scope = c.routeID() + ":" + c.serviceID()
	}
	now := time.Now()
	rl := c.p.rateLimit
	rl.mu.Lock()
	defer rl.mu.Unlock()
	rl.sweep(now)
	type usage struct {
		name      string
		limit     int64
		remaining int64
		key       rlKey
	}
	var usages []usage
	stop := false
	for _, per := range rlPeriods {
		lim, ok := cfgNumber(cfg, per.name)
		if !ok {
			continue
		}
		k := rlKey{scope, identifier, per.name, periodStart(now, per.name, per.secs)}
		u := usage{name: per.name, limit: int64(lim), key: k}
		u.remaining = u.limit - rl.counts[k]
		if u.remaining <= 0 {
			stop = true
		}
		usages = append(usages, u)
	}
	if !cfgBool(cfg, "hide_client_headers", false) {
		for _, u := range usages {
			rem := u.remaining
			if !stop {
				rem--
			}
			if rem < 0 {
				rem = 0
			}
			c.respHeader["X-RateLimit-Limit-"+u.name] = []string{strconv.FormatInt(u.limit, 10)}
			c.respHeader["X-RateLimit-Remaining-"+u.name] = []string{strconv.FormatInt(rem, 10)}
		}
	}
	if stop {
		return &kongResponse{status: 429, message: "API rate limit exceeded"}
	}
	for _, u := range usages {
		rl.counts[u.key]++
	}
	return nil
}

// sweep drops counters of windows that have ended, at most once a minute.
func (rl *rateLimiter) sweep(now time.Time) {
	if now.Sub(rl.swept) < time.Minute {
		return
	}
	rl.swept = now
	for k := range rl.counts {
		for _, per := range rlPeriods {
			if per.name == k.period && k.start+per.secs < now.Unix() && per.name != "month" && per.name != "year" {
				delete(rl.counts, k)
			}
		}
	}
}
