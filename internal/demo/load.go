package demo

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// Load is the demo's steady client: a few requests per second with a valid
// token through the front, each answer counted by status in one-second
// buckets, so the outage and the cutover show up second by second.
// loadgen bounds a run and reports at its end; the demo needs live counts.
type Load struct {
	url, token string
	rate       float64
	client     *http.Client

	mu      sync.Mutex
	buckets map[int64]*Second // by unix second of the request's start
}

// Second counts the answers of requests sent within one second.
type Second struct {
	At       time.Time
	ByStatus map[int]int // 0: no answer (connection error, timeout)
}

// OK counts answers below 500.
func (s Second) OK() int {
	n := 0
	for st, c := range s.ByStatus {
		if st > 0 && st < 500 {
			n += c
		}
	}
	return n
}

// Failed counts 5xx answers and requests without an answer.
func (s Second) Failed() int {
	n := 0
	for st, c := range s.ByStatus {
		if st == 0 || st >= 500 {
			n += c
		}
	}
	return n
}

func newLoad(url, token string, rate float64) *Load {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 16
	return &Load{url: url, token: token, rate: rate, buckets: map[int64]*Second{},
		client: &http.Client{Transport: tr, Timeout: 5 * time.Second}}
}

func (l *Load) run(ctx context.Context) {
	t := time.NewTicker(time.Duration(float64(time.Second) / l.rate))
	defer t.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			wg.Add(1)
			go func() { defer wg.Done(); l.one(ctx, now) }()
		}
	}
}

func (l *Load) one(ctx context.Context, at time.Time) {
	status := 0
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.url, nil)
	if err == nil {
		req.Header.Set("Authorization", "Bearer "+l.token)
		var resp *http.Response
		if resp, err = l.client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			status = resp.StatusCode
		}
	}
	if ctx.Err() != nil {
		return // shutting down: not the gateway's failure
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	sec := at.Unix()
	b := l.buckets[sec]
	if b == nil {
		b = &Second{At: time.Unix(sec, 0), ByStatus: map[int]int{}}
		l.buckets[sec] = b
	}
	b.ByStatus[status]++
}

// Between returns the seconds whose requests started in [from, to], oldest
// first.
func (l *Load) Between(from, to time.Time) []Second {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Second
	for sec, b := range l.buckets {
		if sec >= from.Unix() && sec <= to.Unix() {
			c := Second{At: b.At, ByStatus: map[int]int{}}
			for k, v := range b.ByStatus {
				c.ByStatus[k] = v
			}
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out
}

// Totals sums seconds: requests, OK, failed.
func Totals(ss []Second) (sent, ok, failed int) {
	for _, s := range ss {
		ok += s.OK()
		failed += s.Failed()
	}
	return ok + failed, ok, failed
}

// LastSecond is the last complete second's counts, for the status line.
func (l *Load) LastSecond() Second {
	at := time.Now().Add(-2 * time.Second)
	ss := l.Between(at, at)
	if len(ss) == 0 {
		return Second{At: at}
	}
	return ss[len(ss)-1]
}

// String shows a second as "200×5 503×1".
func (s Second) String() string {
	if len(s.ByStatus) == 0 {
		return "no requests"
	}
	keys := make([]int, 0, len(s.ByStatus))
	for k := range s.ByStatus {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		name := fmt.Sprint(k)
		if k == 0 {
			name = "err"
		}
		fmt.Fprintf(&b, "%s×%d", name, s.ByStatus[k])
	}
	return b.String()
}
