package kongsim

import "net/http"

func (n *Node) serveAdmin(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, n.version, http.StatusNotFound, map[string]any{"message": "Not found"})
}
