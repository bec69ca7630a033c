package kongsim

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// ProxyFault is what the proxy listener is told to do wrong, for the
// cutover gate tests: fail a share of requests, add latency, or stop
// listening altogether (connections are then refused).
type ProxyFault struct {
	// FailShare in [0,1] is the share of requests answered with FailStatus
	// (default 502) through Kong's error page, without reaching the upstream.
	FailShare  float64
	FailStatus int
	// Delay is added before every request is handled.
	Delay time.Duration
	// Down closes the proxy listener and its connections; false reopens it
	// on the same address.
	Down bool
}

// SetProxyFault applies f to the node's proxy; the zero ProxyFault clears
// every proxy fault. Admin-side fault settings are kept.
func (n *Node) SetProxyFault(f ProxyFault) error {
	if f.FailShare < 0 || f.FailShare > 1 {
		return fmt.Errorf("proxy fault: fail share %v outside [0,1]", f.FailShare)
	}
	if f.FailStatus != 0 && (f.FailStatus < 100 || f.FailStatus > 599) {
		return fmt.Errorf("proxy fault: fail status %d outside 100..599", f.FailStatus)
	}
	if f.Delay < 0 {
		return fmt.Errorf("proxy fault: negative delay %v", f.Delay)
	}
	if err := n.SetProxyDown(f.Down); err != nil {
		return err
	}
	cur := n.Fault()
	cur.ProxyFailShare, cur.ProxyFailStatus, cur.ProxyDelay = f.FailShare, f.FailStatus, f.Delay
	n.SetFault(cur)
	return nil
}

// proxyToggles remembers, per node, the listener reopened after a Down; it
// lives here rather than in Node so the proxy fault stays in this file.
var proxyToggles sync.Map // *Node → *proxyToggle

type proxyToggle struct {
	mu   sync.Mutex
	down bool
	ln   net.Listener // the listener serving now, when reopened
}

// SetProxyDown stops (true) or restarts (false) the proxy listener. While
// down, new connections are refused and kept-alive ones are closed.
func (n *Node) SetProxyDown(down bool) error {
	v, _ := proxyToggles.LoadOrStore(n, &proxyToggle{})
	t := v.(*proxyToggle)
	t.mu.Lock()
	defer t.mu.Unlock()
	if n.Stopped() {
		proxyToggles.Delete(n)
		if down {
			return nil
		}
		return errors.New("proxy fault: node is stopped")
	}
	if down == t.down {
		return nil
	}
	if down {
		// Refuse keep-alive reuse first, then close the listener; the
		// server stays usable so that Serve can run again.
		n.proxySrv.SetKeepAlivesEnabled(false)
		ln := t.ln
		if ln == nil {
			ln = n.proxyLn
		}
		if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			return fmt.Errorf("proxy fault: close listener: %w", err)
		}
		t.down, t.ln = true, nil
		n.log.Info("proxy listener stopped by fault")
		return nil
	}
	ln, err := net.Listen("tcp", n.proxyLn.Addr().String())
	if err != nil {
		return fmt.Errorf("proxy fault: reopen %s: %w", n.proxyLn.Addr(), err)
	}
	n.proxySrv.SetKeepAlivesEnabled(true)
	t.down, t.ln = false, ln
	go func() {
		if err := n.proxySrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			n.log.Error("proxy listener stopped", "err", err)
		}
	}()
	n.log.Info("proxy listener reopened after fault")
	return nil
}

// ProxyDown reports whether the proxy listener is stopped by a fault.
func (n *Node) ProxyDown() bool {
	v, ok := proxyToggles.Load(n)
	if !ok {
		return false
	}
	t := v.(*proxyToggle)
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.down
}
