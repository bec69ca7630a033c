package kongsim

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// serverStats are the counters GET /status reports.
type serverStats struct {
	active   atomic.Int64
	accepted atomic.Int64
	total    atomic.Int64
}

// kongJSON encodes like lua-cjson: `/` escaped as `\/`, no HTML escaping;
// 0.x bodies end with a newline, 1.0 ones do not.
func kongJSON(v Version, body any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(body); err != nil {
		return []byte(`{"message":"An unexpected error occurred"}`)
	}
	b := bytes.ReplaceAll(buf.Bytes(), []byte("/"), []byte(`\/`))
	if v.Is10() {
		b = bytes.TrimRight(b, "\n")
	}
	return b
}

func writeJSON(w http.ResponseWriter, v Version, status int, body any) {
	h := w.Header()
	h.Set("Server", "kong/"+string(v))
	h.Set("Access-Control-Allow-Origin", "*")
	if status == http.StatusNoContent || body == nil {
		w.WriteHeader(status)
		return
	}
	b := kongJSON(v, body)
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func (n *Node) adminHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.stats.active.Add(1)
		n.stats.accepted.Add(1)
		n.stats.total.Add(1)
		defer n.stats.active.Add(-1)
		if r.URL.Path == "/__kongsim/fault" {
			n.serveFaultControl(w, r)
			return
		}
		f := n.Fault()
		if f.AdminDelay > 0 {
			select {
			case <-time.After(f.AdminDelay):
			case <-r.Context().Done():
				return
			}
		}
		if f.AdminStatus != 0 {
			writeJSON(w, n.version, f.AdminStatus, map[string]any{"message": n.unexpectedMessage()})
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 60*time.Second)
		defer cancel()
		n.serveAdmin(w, r.WithContext(ctx))
	})
}

// unexpectedMessage is the body message of a 500 (1.0's GET / has its own,
// rootErrorMessage).
func (n *Node) unexpectedMessage() string { return "An unexpected error occurred" }

func (n *Node) rootErrorMessage() string {
	if n.version.Is10() {
		return "An unexpected error happened"
	}
	return "An unexpected error occurred"
}
