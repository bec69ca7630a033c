package kongsim

import "net/http"

// newProxyHandler is a placeholder until helper B's proxy.go replaces this
// file: every request gets 404 with 0.x/1.0 no-match text.
func newProxyHandler(n *Node) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		msg := "no route and no API found with those values"
		if n.Version().Is10() {
			msg = "no Route matched with those values"
		}
		writeJSON(w, n.Version(), http.StatusNotFound, map[string]any{"message": msg})
	})
}
