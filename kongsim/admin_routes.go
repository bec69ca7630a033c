package kongsim

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// serveAdmin routes an Admin API request to its handler.
func (n *Node) serveAdmin(w http.ResponseWriter, r *http.Request) {
	path := strings.Trim(r.URL.Path, "/")
	var seg []string
	if path != "" {
		for _, s := range strings.Split(path, "/") {
			u, err := url.PathUnescape(s)
			if err != nil {
				u = s
			}
			seg = append(seg, u)
		}
	}
	var b body
	if r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch {
		var err error
		b, err = readBody(r)
		if err != nil {
			var um unsupportedMedia
			if errors.As(err, &um) {
				w.Header().Set("Server", "kong/"+string(n.version))
				w.Header().Set("Access-Control-Allow-Origin", "*")
				w.Header().Set("Content-Type", "text/html; charset=UTF-8")
				w.WriteHeader(http.StatusUnsupportedMediaType)
				_, _ = w.Write([]byte(nginx415))
				return
			}
			writeJSON(w, n.version, http.StatusBadRequest, map[string]any{"message": "Cannot parse JSON body"})
			return
		}
	}
	req := &adminReq{n: n, r: r, seg: seg, b: b, q: r.URL.Query()}
	status, out, err := n.dispatch(r.Context(), req)
	if err != nil {
		var ae *apiError
		if errors.As(err, &ae) {
			writeJSON(w, n.version, ae.status, ae.body)
			return
		}
		n.log.Error("admin request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeJSON(w, n.version, http.StatusInternalServerError, map[string]any{"message": n.unexpectedMessage()})
		return
	}
	writeJSON(w, n.version, status, out)
}

type adminReq struct {
	n   *Node
	r   *http.Request
	seg []string
	b   body
	q   url.Values
}

func (q *adminReq) method() string { return q.r.Method }

var errMethod = msgErr(http.StatusMethodNotAllowed, "Method not allowed")

// dispatch returns (status, body, error).
func (n *Node) dispatch(ctx context.Context, q *adminReq) (int, any, error) {
	s := q.seg
	m := q.method()
	if len(s) == 0 {
		if m != http.MethodGet {
			return 0, nil, errMethod
		}
		return n.getRoot(ctx, q)
	}
	switch s[0] {
	case "status":
		if len(s) == 1 {
			if m != http.MethodGet {
				return 0, nil, errMethod
			}
			return n.getStatus(ctx)
		}
	case "apis":
		if n.version.Is10() {
			return 0, nil, errNotFound
		}
		return n.routeAPIs(ctx, q)
	case "services":
		return n.routeServices(ctx, q)
	case "routes":
		return n.routeRoutes(ctx, q)
	case "plugins":
		return n.routePlugins(ctx, q)
	case "consumers":
		return n.routeConsumers(ctx, q)
	}
	return 0, nil, errNotFound
}

func allow(m string, ok ...string) error {
	for _, o := range ok {
		if m == o {
			return nil
		}
	}
	return errMethod
}

func (n *Node) getRoot(ctx context.Context, q *adminReq) (int, any, error) {
	rows, err := n.pool.Query(ctx, `SELECT DISTINCT name FROM plugins`)
	if err != nil {
		n.log.Error("listing plugins for GET /", "err", err)
		return 0, nil, msgErr(http.StatusInternalServerError, n.rootErrorMessage())
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		n.log.Error("listing plugins for GET /", "err", err)
		return 0, nil, msgErr(http.StatusInternalServerError, n.rootErrorMessage())
	}
	if names == nil {
		names = []string{}
	}
	avail := map[string]any{}
	for p := range n.loaded {
		avail[p] = true
	}
	conf := map[string]any{
		"database": "postgres", "admin_listen": []string{n.AdminAddr()}, "proxy_listen": []string{n.proxyLn.Addr().String()},
		"db_update_frequency": int(n.opts.DBUpdateFrequency / time.Second), "db_update_propagation": 0,
		"pg_password": "******", "log_level": "info",
	}
	switch n.version {
	case V0131:
		conf["plugins"] = avail
		conf["custom_plugins"] = map[string]any{}
		conf["db_cache_ttl"] = 3600
	case V0141:
		conf["plugins"] = pluginSettingOrBundled(n.opts.Plugins)
		conf["loaded_plugins"] = avail
		conf["custom_plugins"] = map[string]any{}
		conf["db_cache_ttl"] = 0
		conf["db_resurrect_ttl"] = 30
	default:
		conf["plugins"] = pluginSettingOrBundled(n.opts.Plugins)
		conf["loaded_plugins"] = avail
		conf["db_cache_ttl"] = 0
		conf["db_resurrect_ttl"] = 30
	}
	return http.StatusOK, map[string]any{
		"tagline":       "Welcome to kong",
		"version":       string(n.version),
		"hostname":      n.opts.Name,
		"node_id":       n.nodeID,
		"timers":        map[string]any{"running": 0, "pending": 1},
		"plugins":       map[string]any{"available_on_server": avail, "enabled_in_cluster": names},
		"lua_version":   "LuaJIT 2.1.0-beta3",
		"configuration": conf,
		"prng_seeds":    map[string]any{"pid: 1": 1},
	}, nil
}

func pluginSettingOrBundled(p []string) []string {
	if len(p) == 0 {
		return []string{"bundled"}
	}
	return p
}

func (n *Node) getStatus(ctx context.Context) (int, any, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	reachable := n.pool.Ping(ctx) == nil
	active := n.stats.active.Load()
	return http.StatusOK, map[string]any{
		"server": map[string]any{
			"connections_active": active, "connections_reading": 0, "connections_writing": active,
			"connections_waiting": 0, "connections_accepted": n.stats.accepted.Load(),
			"connections_handled": n.stats.accepted.Load(), "total_requests": n.stats.total.Load(),
		},
		"database": map[string]any{"reachable": reachable},
	}, nil
}
