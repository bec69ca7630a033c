package demo

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strconv"
	"sync"
	"time"
)

// front stands in for the load balancer when HAProxy is not installed: a
// reverse proxy that splits requests between generations by percent, moved
// by hand (the provisioner plays the person who follows the bot's manual
// traffic instructions).
type front struct {
	env *Env
	srv *http.Server
	url string

	mu      sync.Mutex
	weights map[string]int // percent by version
	next    int
}

func startFront(e *Env) (*front, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("demo: front listener: %w", err)
	}
	f := &front{env: e, weights: map[string]int{V013: 100}, url: "http://" + l.Addr().String()}
	f.srv = &http.Server{Handler: f, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = f.srv.Serve(l) }()
	return f, nil
}

// Set gives old and new their shares of traffic (percent, adding to 100);
// every other generation gets none.
func (f *front) Set(oldV string, oldPct int, newV string, newPct int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.weights = map[string]int{oldV: oldPct, newV: newPct}
}

// Weights returns the current split.
func (f *front) Weights() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]int{}
	for k, v := range f.weights {
		out[k] = v
	}
	return out
}

func (f *front) pick() *Node {
	f.mu.Lock()
	defer f.mu.Unlock()
	total := 0
	for _, w := range f.weights {
		total += w
	}
	if total == 0 {
		return nil
	}
	r := rand.IntN(total)
	for _, v := range Versions {
		w := f.weights[v]
		if r >= w {
			r -= w
			continue
		}
		var up []*Node
		for _, n := range f.env.Nodes(v) {
			if n.Running() {
				up = append(up, n)
			}
		}
		if len(up) == 0 {
			return nil
		}
		f.next++
		return up[f.next%len(up)]
	}
	return nil
}

func (f *front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := f.pick()
	if n == nil {
		http.Error(w, "no server available", http.StatusBadGateway)
		return
	}
	target := &url.URL{Scheme: "http", Host: n.ProxyAddr}
	httputil.NewSingleHostReverseProxy(target).ServeHTTP(w, r)
}

func (f *front) Close() error { return f.srv.Close() }

// The manual traffic backend's instructions (package traffic, manual.go),
// with the cluster names internal/app gives them.
var (
	reManualSplit = regexp.MustCompile(`send (\d+) % to the (\S+) cluster and (\d+) % to the (\S+) cluster`)
	reManualDrain = regexp.MustCompile(`Drain the (\S+) cluster`)
)

// FollowManual carries out a manual traffic instruction on the front; it
// reports whether the text was one.
func (f *front) FollowManual(text string) bool {
	if m := reManualSplit.FindStringSubmatch(text); m != nil {
		oldPct, _ := strconv.Atoi(m[1])
		newPct, _ := strconv.Atoi(m[3])
		f.Set(m[2], oldPct, m[4], newPct)
		return true
	}
	if m := reManualDrain.FindStringSubmatch(text); m != nil {
		f.mu.Lock()
		delete(f.weights, m[1])
		f.mu.Unlock()
		return true
	}
	return false
}
