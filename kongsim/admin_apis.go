package kongsim

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
)

var (
	nameRe   = regexp.MustCompile(`^[A-Za-z0-9._~-]+$`)
	methodRe = regexp.MustCompile(`^[A-Z]+$`)
)

func (n *Node) routeAPIs(ctx context.Context, q *adminReq) (int, any, error) {
	s, m := q.seg, q.method()
	switch len(s) {
	case 1:
		switch m {
		case http.MethodGet:
			return n.listAPIs(ctx, q)
		case http.MethodPost:
			return n.createAPI(ctx, q.b, "")
		case http.MethodPut:
			if id, ok := q.b.m["id"].(string); ok && id != "" {
				return n.updateAPI(ctx, id, q.b, true)
			}
			return n.createAPI(ctx, q.b, "")
		}
		return 0, nil, errMethod
	case 2:
		switch m {
		case http.MethodGet:
			a, err := n.findAPI(ctx, s[1])
			if err != nil {
				return 0, nil, err
			}
			return http.StatusOK, renderAPI(a), nil
		case http.MethodPatch:
			return n.updateAPI(ctx, s[1], q.b, false)
		case http.MethodDelete:
			return n.deleteAPI(ctx, s[1])
		}
		return 0, nil, errMethod
	default:
		if s[2] != "plugins" || len(s) > 4 {
			return 0, nil, errNotFound
		}
		a, err := n.findAPI(ctx, s[1])
		if err != nil {
			return 0, nil, err
		}
		return n.routeScopedPlugins(ctx, q, scope{api: a.ID}, s[3:])
	}
}

func (n *Node) findAPI(ctx context.Context, idOrName string) (API, error) {
	col := "name"
	if isUUID(idOrName) {
		col = "id"
	}
	as, err := selectAPIs(ctx, n.pool, "WHERE "+col+" = $1", []any{idOrName})
	if err != nil {
		return API{}, err
	}
	if len(as) == 0 {
		return API{}, errNotFound
	}
	return as[0], nil
}

var apiFilters = map[string]string{"id": "id::uuid", "name": "name", "upstream_url": "upstream_url",
	"retries": "retries::text", "strip_uri": "strip_uri::text", "preserve_host": "preserve_host::text",
	"https_only": "https_only::text", "http_if_terminated": "http_if_terminated::text", "created_at": "created_at::text",
	"hosts": "hosts", "uris": "uris", "methods": "methods", "upstream_connect_timeout": "upstream_connect_timeout::text",
	"upstream_send_timeout": "upstream_send_timeout::text", "upstream_read_timeout": "upstream_read_timeout::text"}

func (n *Node) listAPIs(ctx context.Context, q *adminReq) (int, any, error) {
	return n.oldDAOList(ctx, q, listSpec{from: "apis", filters: apiFilters}, func(where string, args []any) ([]map[string]any, error) {
		as, err := selectAPIs(ctx, n.pool, where, args)
		var out []map[string]any
		for _, a := range as {
			out = append(out, renderAPI(a))
		}
		return out, err
	})
}

// apiInput validates an API body (old DAO). partial is PATCH.
func applyAPI(a *API, b body, partial bool) map[string]any {
	errs := map[string]any{}
	in := b.m
	known := map[string]bool{"id": true, "created_at": true, "name": true, "hosts": true, "uris": true, "methods": true,
		"upstream_url": true, "strip_uri": true, "preserve_host": true, "retries": true, "upstream_connect_timeout": true,
		"upstream_send_timeout": true, "upstream_read_timeout": true, "https_only": true, "http_if_terminated": true}
	for k := range in {
		if !known[k] {
			errs[k] = k + " is an unknown field"
		}
	}
	if v, ok := in["name"]; ok {
		s, isStr := v.(string)
		switch {
		case !isStr:
			errs["name"] = "name is not a string"
		case !nameRe.MatchString(s):
			errs["name"] = "name must only contain alphanumeric and '., -, _, ~' characters"
		default:
			a.Name = s
		}
	} else if !partial {
		errs["name"] = "name is required"
	}
	if v, ok := in["upstream_url"]; ok {
		s, _ := v.(string)
		u, err := url.Parse(s)
		switch {
		case err != nil || u.Scheme == "" || u.Host == "" || strings.ContainsAny(s, " "):
			errs["upstream_url"] = "upstream_url is not a url"
		case u.Scheme != "http" && u.Scheme != "https":
			errs["upstream_url"] = "Supported protocols are HTTP and HTTPS"
		default:
			a.UpstreamURL = s
		}
	} else if !partial {
		errs["upstream_url"] = "upstream_url is required"
	}
	arrField := func(k string, dst *[]string, check func(string) (string, string)) {
		v, ok := in[k]
		if !ok {
			return
		}
		var items []string
		switch t := v.(type) {
		case string:
			items = splitList(t)
		case []any:
			for _, e := range t {
				s, ok := e.(string)
				if !ok {
					errs[k] = k + " is not an array"
					return
				}
				items = append(items, s)
			}
		case nil:
		case map[string]any:
			if len(t) != 0 {
				errs[k] = k + " is not an array"
				return
			}
		default:
			errs[k] = k + " is not an array"
			return
		}
		var out []string
		for _, it := range items {
			norm, msg := check(it)
			if msg != "" {
				errs[k] = msg
				return
			}
			out = append(out, norm)
		}
		*dst = out
	}
	arrField("hosts", &a.Hosts, func(h string) (string, string) {
		if strings.Contains(h, ":") || strings.Contains(h, "/") || strings.Count(h, "*") > 1 {
			return "", fmt.Sprintf("host with value '%s' is invalid", h)
		}
		return strings.ToLower(h), ""
	})
	arrField("uris", &a.URIs, func(u string) (string, string) {
		if !strings.HasPrefix(u, "/") {
			return "", fmt.Sprintf("uri with value '%s' is invalid: must be prefixed with slash", u)
		}
		if strings.Contains(u, "//") {
			return "", fmt.Sprintf("uri with value '%s' is invalid: must not have empty segments", u)
		}
		if len(u) > 1 && strings.HasSuffix(u, "/") {
			u = strings.TrimSuffix(u, "/")
		}
		return u, ""
	})
	arrField("methods", &a.Methods, func(m string) (string, string) {
		if !methodRe.MatchString(m) {
			return "", fmt.Sprintf("method with value '%s' is invalid", m)
		}
		return m, ""
	})
	boolField := func(k string, dst *bool) {
		v, ok := in[k]
		if !ok {
			return
		}
		switch t := v.(type) {
		case bool:
			*dst = t
		case string:
			if b.form && (t == "true" || t == "false") {
				*dst = t == "true"
				return
			}
			errs[k] = k + " is not a boolean"
		default:
			errs[k] = k + " is not a boolean"
		}
	}
	boolField("strip_uri", &a.StripURI)
	boolField("preserve_host", &a.PreserveHost)
	boolField("https_only", &a.HTTPSOnly)
	boolField("http_if_terminated", &a.HTTPIfTerminated)
	intField := func(k string, dst *int, lo, hi float64, rangeMsg string) {
		v, ok := in[k]
		if !ok {
			return
		}
		f, ok := toFloat(v)
		if _, isStr := v.(string); isStr && !b.form {
			ok = false
		}
		if !ok {
			errs[k] = k + " is not a number"
			return
		}
		if f < lo || f > hi || f != float64(int64(f)) {
			errs[k] = rangeMsg
			return
		}
		*dst = int(f)
	}
	intField("retries", &a.Retries, 0, 32767, "retries must be an integer between 0 and 32767")
	for _, k := range []string{"upstream_connect_timeout", "upstream_send_timeout", "upstream_read_timeout"} {
		dst := map[string]*int{"upstream_connect_timeout": &a.UpstreamConnectTimeout,
			"upstream_send_timeout": &a.UpstreamSendTimeout, "upstream_read_timeout": &a.UpstreamReadTimeout}[k]
		intField(k, dst, 1, 2147483647, k+" must be an integer between 1 and 2147483647")
	}
	if len(errs) == 0 && !partial && len(a.Hosts) == 0 && len(a.URIs) == 0 && len(a.Methods) == 0 {
		errs["message"] = "at least one of 'hosts', 'uris' or 'methods' must be specified"
	}
	return errs
}

func jsonText(a []string) any {
	if len(a) == 0 {
		return nil
	}
	b, _ := json.Marshal(a)
	return strings.ReplaceAll(string(b), "/", `\/`)
}

func (n *Node) createAPI(ctx context.Context, b body, _ string) (int, any, error) {
	a := API{ID: newUUID(), StripURI: true, Retries: 5, UpstreamConnectTimeout: 60000,
		UpstreamSendTimeout: 60000, UpstreamReadTimeout: 60000, CreatedAt: time.Now().UTC().Truncate(time.Millisecond)}
	if errs := applyAPI(&a, b, false); len(errs) > 0 {
		return 0, nil, &apiError{http.StatusBadRequest, errs}
	}
	_, err := n.pool.Exec(ctx, `INSERT INTO apis (id, name, upstream_url, preserve_host, created_at, retries, https_only,
		http_if_terminated, hosts, uris, methods, strip_uri, upstream_connect_timeout, upstream_send_timeout, upstream_read_timeout)
		VALUES ($1,$2,$3,$4,to_timestamp($5::float8/1000),$6,$7,$8,$9,$10,$11,$12,$13,$14,$15)`,
		a.ID, a.Name, a.UpstreamURL, a.PreserveHost, a.CreatedAt.UnixMilli(), a.Retries, a.HTTPSOnly, a.HTTPIfTerminated,
		jsonText(a.Hosts), jsonText(a.URIs), jsonText(a.Methods), a.StripURI, a.UpstreamConnectTimeout,
		a.UpstreamSendTimeout, a.UpstreamReadTimeout)
	if code, _ := pgCode(err); code == "23505" {
		return 0, nil, &apiError{http.StatusConflict, map[string]any{"name": "already exists with value '" + a.Name + "'"}}
	}
	if err != nil {
		return 0, nil, fmt.Errorf("inserting api: %w", err)
	}
	n.broadcast(ctx, "api_router:version")
	return http.StatusCreated, renderAPI(a), nil
}

func (n *Node) updateAPI(ctx context.Context, idOrName string, b body, full bool) (int, any, error) {
	if len(b.m) == 0 {
		return 0, nil, msgErr(http.StatusBadRequest, "empty body")
	}
	a, err := n.findAPI(ctx, idOrName)
	if err != nil {
		return 0, nil, err
	}
	if full {
		a = API{ID: a.ID, CreatedAt: a.CreatedAt, StripURI: true, Retries: 5, UpstreamConnectTimeout: 60000,
			UpstreamSendTimeout: 60000, UpstreamReadTimeout: 60000}
	}
	if errs := applyAPI(&a, b, !full); len(errs) > 0 {
		return 0, nil, &apiError{http.StatusBadRequest, errs}
	}
	_, err = n.pool.Exec(ctx, `UPDATE apis SET name=$2, upstream_url=$3, preserve_host=$4, retries=$5, https_only=$6,
		http_if_terminated=$7, hosts=$8, uris=$9, methods=$10, strip_uri=$11, upstream_connect_timeout=$12,
		upstream_send_timeout=$13, upstream_read_timeout=$14 WHERE id=$1`,
		a.ID, a.Name, a.UpstreamURL, a.PreserveHost, a.Retries, a.HTTPSOnly, a.HTTPIfTerminated,
		jsonText(a.Hosts), jsonText(a.URIs), jsonText(a.Methods), a.StripURI, a.UpstreamConnectTimeout,
		a.UpstreamSendTimeout, a.UpstreamReadTimeout)
	if code, _ := pgCode(err); code == "23505" {
		return 0, nil, &apiError{http.StatusConflict, map[string]any{"name": "already exists with value '" + a.Name + "'"}}
	}
	if err != nil {
		return 0, nil, fmt.Errorf("updating api: %w", err)
	}
	n.broadcast(ctx, "api_router:version")
	return http.StatusOK, renderAPI(a), nil
}

func (n *Node) deleteAPI(ctx context.Context, idOrName string) (int, any, error) {
	a, err := n.findAPI(ctx, idOrName)
	if err != nil {
		return 0, nil, err
	}
	// One statement: the CTE reads the plugins the FK cascade removes, for
	// their invalidations.
	rows, err := n.pool.Query(ctx, `WITH p AS (SELECT name, route_id::text, service_id::text, consumer_id::text
			FROM plugins WHERE api_id = $1), d AS (DELETE FROM apis WHERE id = $1)
		SELECT name, COALESCE(route_id, ''), COALESCE(service_id, ''), COALESCE(consumer_id, '') FROM p`, a.ID)
	if err != nil {
		return 0, nil, fmt.Errorf("deleting api: %w", err)
	}
	keys := []string{"api_router:version"}
	for rows.Next() {
		p := Plugin{APIID: a.ID}
		if err := rows.Scan(&p.Name, &p.RouteID, &p.ServiceID, &p.ConsumerID); err != nil {
			rows.Close()
			return 0, nil, fmt.Errorf("deleting api: %w", err)
		}
		keys = append(keys, pluginCacheKey(p))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, nil, fmt.Errorf("deleting api: %w", err)
	}
	n.broadcast(ctx, keys...)
	return http.StatusNoContent, nil, nil
}

// pluginCacheKey is Kong's plugins:<name>:<route>:<service>:<consumer>:<api>.
func pluginCacheKey(p Plugin) string {
	return "plugins:" + p.Name + ":" + p.RouteID + ":" + p.ServiceID + ":" + p.ConsumerID + ":" + p.APIID
}
