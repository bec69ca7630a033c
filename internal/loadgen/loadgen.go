// Package loadgen sends HTTP requests at a fixed rate, up to a bound, and
// counts what came back by status. Tests and the demo use it to show that a
// traffic shift loses no request.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// Options configure a run.
type Options struct {
	URL    string
	Header http.Header
	// Rate is requests per second; Total bounds the run. The run also ends
	// when its context is cancelled (requests in flight still finish).
	Rate  float64
	Total int
	// Concurrency bounds requests in flight; default 128. When every slot is
	// busy the generator waits, and the achieved rate falls below Rate.
	Concurrency int
	// Timeout per request; default 10s.
	Timeout time.Duration
	Client  *http.Client
}

// Result counts a run.
type Result struct {
	Sent     int
	OK       int // status below 500
	Failed   int // status 500 or above, or no answer
	ByStatus map[int]int
	Errors   map[string]int // transport errors, by message (at most 20 kinds)
	Elapsed  time.Duration
}

// Rate is the achieved request rate.
func (r Result) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Sent) / r.Elapsed.Seconds()
}

func (r Result) String() string {
	var st []string
	codes := make([]int, 0, len(r.ByStatus))
	for c := range r.ByStatus {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	for _, c := range codes {
		st = append(st, fmt.Sprintf("%d×%d", r.ByStatus[c], c))
	}
	s := fmt.Sprintf("%d requests in %s (%.0f/s): %d ok, %d failed [%s]", r.Sent, r.Elapsed.Round(time.Millisecond), r.Rate(), r.OK, r.Failed, strings.Join(st, " "))
	for e, n := range r.Errors {
		s += fmt.Sprintf("; %d× %s", n, e)
	}
	return s
}

// Run sends requests until Total are sent or ctx is cancelled, waits for
// those in flight, and returns the counts.
func Run(ctx context.Context, o Options) (Result, error) {
	if o.URL == "" || o.Rate <= 0 || o.Total <= 0 {
		return Result{}, errors.New("loadgen: need a URL, a positive rate and a positive total")
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 128
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	client := o.Client
	if client == nil {
		client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: o.Concurrency, MaxIdleConns: o.Concurrency}}
		defer client.CloseIdleConnections()
	}
	var (
		mu  sync.Mutex
		res = Result{ByStatus: map[int]int{}, Errors: map[string]int{}}
		wg  sync.WaitGroup
		sem = make(chan struct{}, o.Concurrency)
	)
	// Requests outlive a cancelled run: stopping the generator must not
	// turn requests in flight into failures.
	reqCtx := context.WithoutCancel(ctx)
	interval := time.Duration(float64(time.Second) / o.Rate)
	start := time.Now()
	tm := time.NewTimer(0)
	defer tm.Stop()
loop:
	for i := range o.Total {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			tm.Reset(d)
			select {
			case <-ctx.Done():
				break loop
			case <-tm.C:
			}
		} else if ctx.Err() != nil {
			break loop
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			break loop
		}
		res.Sent++
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			status, err := do(reqCtx, client, o)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				res.Failed++
				if _, ok := res.Errors[err.Error()]; ok || len(res.Errors) < 20 {
					res.Errors[err.Error()]++
				}
			case status >= 500:
				res.Failed++
				res.ByStatus[status]++
			default:
				res.OK++
				res.ByStatus[status]++
			}
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	return res, nil
}

func do(ctx context.Context, c *http.Client, o Options) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.URL, nil)
	if err != nil {
		return 0, err
	}
	for k, vs := range o.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return 0, fmt.Errorf("read body: %w", err)
	}
	return resp.StatusCode, nil
}
