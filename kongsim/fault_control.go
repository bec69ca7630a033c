package kongsim

import (
	"encoding/json"
	"net/http"
	"time"
)

// Fault is what a node has been told to do wrong, for other packages' tests.
// The Admin API part is applied by the admin handler; the Proxy* fields are
// read by the proxy handler (faults*.go) through Node.Fault.
type Fault struct {
	// AdminStatus, when non-zero, makes every Admin API request (except the
	// control endpoint) answer this status with Kong's 500 body shape.
	AdminStatus int `json:"admin_status,omitempty"`
	// AdminDelay delays every Admin API request.
	AdminDelay time.Duration `json:"-"`
	// ProxyFailShare in [0,1] is the share of proxy requests answered with
	// ProxyFailStatus (default 502 when zero).
	ProxyFailShare  float64 `json:"proxy_fail_share,omitempty"`
	ProxyFailStatus int     `json:"proxy_fail_status,omitempty"`
	// ProxyDelay delays every proxy request.
	ProxyDelay time.Duration `json:"-"`
}

// faultJSON is Fault on the wire: durations in milliseconds, and a stop flag.
type faultJSON struct {
	AdminStatus     int     `json:"admin_status"`
	AdminDelayMS    int64   `json:"admin_delay_ms"`
	ProxyFailShare  float64 `json:"proxy_fail_share"`
	ProxyFailStatus int     `json:"proxy_fail_status"`
	ProxyDelayMS    int64   `json:"proxy_delay_ms"`
	Stop            bool    `json:"stop,omitempty"`
}

// SetFault replaces the node's fault settings; the zero Fault clears them.
func (n *Node) SetFault(f Fault) {
	n.faultMu.Lock()
	n.fault = f
	n.faultMu.Unlock()
	n.log.Info("fault set", "admin_status", f.AdminStatus, "admin_delay", f.AdminDelay,
		"proxy_fail_share", f.ProxyFailShare, "proxy_delay", f.ProxyDelay)
}

// Fault returns the node's current fault settings.
func (n *Node) Fault() Fault {
	n.faultMu.RLock()
	defer n.faultMu.RUnlock()
	return n.fault
}

// serveFaultControl implements GET/PUT/POST /__kongsim/fault on the admin
// listener. {"stop":true} stops the whole node, like a killed process.
func (n *Node) serveFaultControl(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
	case http.MethodPut, http.MethodPost:
		var in faultJSON
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil {
			writeJSON(w, n.version, http.StatusBadRequest, map[string]any{"message": "bad fault body: " + err.Error()})
			return
		}
		if in.ProxyFailShare < 0 || in.ProxyFailShare > 1 || in.AdminDelayMS < 0 || in.ProxyDelayMS < 0 ||
			(in.AdminStatus != 0 && (in.AdminStatus < 100 || in.AdminStatus > 599)) ||
			(in.ProxyFailStatus != 0 && (in.ProxyFailStatus < 100 || in.ProxyFailStatus > 599)) {
			writeJSON(w, n.version, http.StatusBadRequest, map[string]any{"message": "fault values out of range"})
			return
		}
		n.SetFault(Fault{
			AdminStatus: in.AdminStatus, AdminDelay: time.Duration(in.AdminDelayMS) * time.Millisecond,
			ProxyFailShare: in.ProxyFailShare, ProxyFailStatus: in.ProxyFailStatus,
			ProxyDelay: time.Duration(in.ProxyDelayMS) * time.Millisecond,
		})
		if in.Stop {
			writeJSON(w, n.version, http.StatusOK, map[string]any{"stopping": true})
			go n.Stop()
			return
		}
	default:
		writeJSON(w, n.version, http.StatusMethodNotAllowed, map[string]any{"message": "Method not allowed"})
		return
	}
	f := n.Fault()
	writeJSON(w, n.version, http.StatusOK, faultJSON{
		AdminStatus: f.AdminStatus, AdminDelayMS: f.AdminDelay.Milliseconds(),
		ProxyFailShare: f.ProxyFailShare, ProxyFailStatus: f.ProxyFailStatus,
		ProxyDelayMS: f.ProxyDelay.Milliseconds(),
	})
}
