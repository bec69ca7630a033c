package kongsim

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

func (n *Node) routeServices(ctx context.Context, q *adminReq) (int, any, error) {
	s, m := q.seg, q.method()
	switch len(s) {
	case 1:
		switch m {
		case http.MethodGet:
			return n.newDAOList(ctx, q, listSpec{from: "services", path: "/services"}, func(where string, args []any) ([]map[string]any, []string, error) {
				svcs, err := selectServices(ctx, n.pool, where, args)
				var out []map[string]any
				var ids []string
				for _, sv := range svcs {
					out = append(out, renderService(sv))
					ids = append(ids, sv.ID)
				}
				return out, ids, err
			})
		case http.MethodPost:
			return n.upsertService(ctx, q.b, "", false, false)
		}
		return 0, nil, errMethod
	case 2:
		switch m {
		case http.MethodGet:
			sv, err := n.findService(ctx, s[1])
			if err != nil {
				return 0, nil, err
			}
			return http.StatusOK, renderService(sv), nil
		case http.MethodPatch:
			return n.upsertService(ctx, q.b, s[1], true, false)
		case http.MethodPut:
			if n.version == V0131 {
				return 0, nil, errMethod
			}
			return n.upsertService(ctx, q.b, s[1], false, true)
		case http.MethodDelete:
			return n.deleteService(ctx, s[1])
		}
		return 0, nil, errMethod
	}
	if len(s) == 3 && s[2] == "routes" && m == http.MethodPost && isUUID(s[1]) {
		return n.createNestedRoute(ctx, q, strings.ToLower(s[1]))
	}
	sv, err := n.findService(ctx, s[1])
	if err != nil {
		return 0, nil, err
	}
	switch s[2] {
	case "routes":
		if len(s) != 3 {
			return 0, nil, errNotFound
		}
		switch m {
		case http.MethodGet:
			if _, sized := q.q["size"]; sized && n.version == V0141 {
				// 0.14.1's nested collection hands the size string to a DAO
				// that wants a number (GOKONG.md note 4).
				n.log.Error("kong/api/endpoints.lua:122: size must be a number")
				return 0, nil, msgErr(http.StatusInternalServerError, n.unexpectedMessage())
			}
			l := listSpec{from: "routes", path: "/services/" + sv.ID + "/routes"}
			l.where = append(l.where, "service_id = "+l.arg(sv.ID))
			return n.newDAOList(ctx, q, l, func(where string, args []any) ([]map[string]any, []string, error) {
				rs, err := selectRoutes(ctx, n.pool, n.version, where, args)
				var out []map[string]any
				var ids []string
				for _, r := range rs {
					out = append(out, n.renderRoute(r, n.version == V0141))
					ids = append(ids, r.ID)
				}
				return out, ids, err
			})
		case http.MethodPost:
			q.b.m["service"] = map[string]any{"id": sv.ID}
			return n.upsertRoute(ctx, q.b, "", false, false)
		}
		return 0, nil, errMethod
	case "plugins":
		return n.routeScopedPlugins(ctx, q, scope{service: sv.ID}, s[3:])
	}
	return 0, nil, errNotFound
}

// createNestedRoute is POST /services/{id}/routes without reading the
// Service first: the INSERT's foreign key says whether it exists, and the
// lookup runs only when the creation fails, to answer as Kong does (404
// for an unknown Service before any complaint about the body). A
// conversion creates thousands of Routes this way.
func (n *Node) createNestedRoute(ctx context.Context, q *adminReq, serviceID string) (int, any, error) {
	q.b.m["service"] = map[string]any{"id": serviceID}
	status, out, err := n.upsertRoute(ctx, q.b, "", false, false)
	if err == nil {
		return status, out, nil
	}
	if _, ferr := n.findService(ctx, serviceID); ferr != nil {
		return 0, nil, ferr
	}
	return 0, nil, err
}

func (n *Node) findService(ctx context.Context, idOrName string) (Service, error) {
	col := "name"
	if isUUID(idOrName) {
		col = "id"
	}
	svcs, err := selectServices(ctx, n.pool, "WHERE "+col+" = $1", []any{idOrName})
	if err != nil {
		return Service{}, err
	}
	if len(svcs) == 0 {
		return Service{}, errNotFound
	}
	return svcs[0], nil
}

// applyService validates a service body into sv, returning field errors.
func (n *Node) applyService(sv *Service, b body) map[string]any {
	errs := map[string]any{}
	in := b.m
	known := map[string]bool{"id": true, "created_at": true, "updated_at": true, "name": true, "retries": true,
		"protocol": true, "host": true, "port": true, "path": true, "connect_timeout": true, "write_timeout": true,
		"read_timeout": true, "url": true}
	for k := range in {
		if !known[k] {
			errs[k] = "unknown field"
		}
	}
	if u, ok := in["url"]; ok {
		s, _ := u.(string)
		pu, err := url.Parse(s)
		if err != nil || pu.Scheme == "" || pu.Host == "" {
			errs["url"] = "missing host in url"
		} else {
			sv.Protocol = pu.Scheme
			sv.Host = pu.Hostname()
			if p := pu.Port(); p != "" {
				sv.Port, _ = strconv.Atoi(p)
			} else if pu.Scheme == "https" {
				sv.Port = 443
			} else {
				sv.Port = 80
			}
			if pu.Path != "" {
				p := pu.Path
				sv.Path = &p
			} else {
				sv.Path = nil
			}
		}
	}
	str := func(k string, dst **string) {
		v, ok := in[k]
		if !ok {
			return
		}
		if v == nil {
			*dst = nil
			return
		}
		s, isStr := v.(string)
		if !isStr {
			errs[k] = "expected a string"
			return
		}
		*dst = &s
	}
	str("name", &sv.Name)
	if sv.Name != nil && !nameRe.MatchString(*sv.Name) {
		errs["name"] = "invalid value: " + *sv.Name
	}
	var proto, host *string
	str("protocol", &proto)
	if proto != nil {
		sv.Protocol = *proto
	}
	str("host", &host)
	if host != nil {
		sv.Host = *host
	}
	if _, ok := in["path"]; ok {
		str("path", &sv.Path)
	}
	intF := func(k string, dst *int, lo, hi int) {
		v, ok := in[k]
		if !ok {
			return
		}
		f, ok := toFloat(v)
		if _, isStr := v.(string); isStr && !b.form {
			ok = false
		}
		if !ok || f != float64(int64(f)) {
			errs[k] = "expected an integer"
			return
		}
		if int(f) < lo || int(f) > hi {
			errs[k] = fmt.Sprintf("value should be between %d and %d", lo, hi)
			return
		}
		*dst = int(f)
	}
	intF("retries", &sv.Retries, 0, 32767)
	intF("port", &sv.Port, 0, 65535)
	intF("connect_timeout", &sv.ConnectTimeout, 0, 2147483646)
	intF("write_timeout", &sv.WriteTimeout, 0, 2147483646)
	intF("read_timeout", &sv.ReadTimeout, 0, 2147483646)
	protos := []string{"http", "https"}
	if n.version.Is10() {
		protos = append(protos, "tcp", "tls")
	}
	if _, bad := errs["protocol"]; !bad && !contains(protos, sv.Protocol) {
		errs["protocol"] = "expected one of: " + strings.Join(protos, ", ")
	}
	if sv.Host == "" {
		if _, bad := errs["host"]; !bad {
			errs["host"] = "required field missing"
		}
	}
	if sv.Path != nil {
		p := *sv.Path
		switch {
		case !strings.HasPrefix(p, "/"):
			errs["path"] = "should start with: /"
		case strings.Contains(p, "//"):
			errs["path"] = "must not have empty segments"
		}
	}
	return errs
}

func defaultService() Service {
	return Service{Retries: 5, Protocol: "http", Port: 80, ConnectTimeout: 60000, WriteTimeout: 60000, ReadTimeout: 60000}
}

// upsertService implements POST (key ""), PATCH (partial) and PUT (replace).
func (n *Node) upsertService(ctx context.Context, b body, key string, partial, put bool) (int, any, error) {
	now := time.Now().UTC().Truncate(time.Second)
	sv := defaultService()
	exists := false
	if key != "" {
		old, err := n.findService(ctx, key)
		switch {
		case err == nil:
			exists = true
			if partial {
				sv = old
			} else {
				sv.ID, sv.CreatedAt, sv.Name = old.ID, old.CreatedAt, old.Name
			}
		case err != errNotFound:
			return 0, nil, err
		case partial:
			return 0, nil, n.notFoundByKey(key, "name")
		}
		if !exists {
			sv.ID, sv.CreatedAt = newUUID(), now
			if isUUID(key) {
				sv.ID = key
			} else {
				k := key
				sv.Name = &k
			}
		}
	} else {
		sv.ID, sv.CreatedAt = newUUID(), now
	}
	sv.UpdatedAt = now
	if errs := n.applyService(&sv, b); len(errs) > 0 {
		return 0, nil, n.schemaViolation(errs)
	}
	if put && !isUUID(key) {
		k := key
		sv.Name = &k
	}
	var err error
	if exists {
		_, err = n.pool.Exec(ctx, `UPDATE services SET name=$2, retries=$3, protocol=$4, host=$5, port=$6, path=$7,
			connect_timeout=$8, write_timeout=$9, read_timeout=$10, updated_at=to_timestamp($11) WHERE id=$1`,
			sv.ID, sv.Name, sv.Retries, sv.Protocol, sv.Host, sv.Port, sv.Path, sv.ConnectTimeout, sv.WriteTimeout,
			sv.ReadTimeout, sv.UpdatedAt.Unix())
	} else {
		_, err = n.pool.Exec(ctx, `INSERT INTO services (id, created_at, updated_at, name, retries, protocol, host, port,
			path, connect_timeout, write_timeout, read_timeout) VALUES ($1,to_timestamp($2),to_timestamp($3),$4,$5,$6,$7,$8,$9,$10,$11,$12)`,
			sv.ID, sv.CreatedAt.Unix(), sv.UpdatedAt.Unix(), sv.Name, sv.Retries, sv.Protocol, sv.Host, sv.Port, sv.Path,
			sv.ConnectTimeout, sv.WriteTimeout, sv.ReadTimeout)
	}
	if code, _ := pgCode(err); code == "23505" {
		return 0, nil, n.uniqueViolation(map[string]any{"name": deref(sv.Name)})
	}
	if err != nil {
		return 0, nil, fmt.Errorf("writing service: %w", err)
	}
	n.broadcast(ctx, "router:version")
	status := http.StatusCreated
	if key != "" {
		status = http.StatusOK
	}
	return status, renderService(sv), nil
}

func (n *Node) deleteService(ctx context.Context, key string) (int, any, error) {
	sv, err := n.findService(ctx, key)
	if err == errNotFound {
		return http.StatusNoContent, nil, nil
	}
	if err != nil {
		return 0, nil, err
	}
	keys, err := n.deleteWithPlugins(ctx, "services", "service_id", sv.ID)
	if code, _ := pgCode(err); code == "23503" {
		return 0, nil, n.newDAOError(http.StatusBadRequest, 4, "foreign key violation",
			"an existing 'routes' entity references this 'services' entity", map[string]any{"@referenced_by": "routes"})
	}
	if err != nil {
		return 0, nil, fmt.Errorf("deleting service: %w", err)
	}
	n.broadcast(ctx, append(keys, "router:version")...)
	return http.StatusNoContent, nil, nil
}

// deleteWithPlugins deletes one row and returns the cache keys of the
// plugins the foreign-key cascade removed with it, for their invalidation.
func (n *Node) deleteWithPlugins(ctx context.Context, table, fkCol, id string) ([]string, error) {
	rows, err := n.pool.Query(ctx, `WITH p AS (SELECT name, coalesce(route_id::text, '') AS r, coalesce(service_id::text, '') AS s,
			coalesce(consumer_id::text, '') AS c, coalesce(api_id::text, '') AS a FROM plugins WHERE `+fkCol+` = $1),
		d AS (DELETE FROM `+table+` WHERE id = $1)
		SELECT name, r, s, c, a FROM p`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var keys []string
	for rows.Next() {
		var p Plugin
		if err := rows.Scan(&p.Name, &p.RouteID, &p.ServiceID, &p.ConsumerID, &p.APIID); err != nil {
			return nil, err
		}
		keys = append(keys, pluginCacheKey(p))
	}
	if len(keys) > 0 && n.version.Is10() {
		keys = append(keys, "plugins_map:version")
	}
	return keys, rows.Err()
}

// ---- routes ----

func (n *Node) routeRoutes(ctx context.Context, q *adminReq) (int, any, error) {
	s, m := q.seg, q.method()
	switch len(s) {
	case 1:
		switch m {
		case http.MethodGet:
			return n.newDAOList(ctx, q, listSpec{from: "routes", path: "/routes"}, func(where string, args []any) ([]map[string]any, []string, error) {
				rs, err := selectRoutes(ctx, n.pool, n.version, where, args)
				var out []map[string]any
				var ids []string
				for _, r := range rs {
					out = append(out, n.renderRoute(r, false))
					ids = append(ids, r.ID)
				}
				return out, ids, err
			})
		case http.MethodPost:
			return n.upsertRoute(ctx, q.b, "", false, false)
		}
		return 0, nil, errMethod
	case 2:
		switch m {
		case http.MethodGet:
			r, err := n.findRoute(ctx, s[1])
			if err != nil {
				return 0, nil, err
			}
			return http.StatusOK, n.renderRoute(r, false), nil
		case http.MethodPatch:
			return n.upsertRoute(ctx, q.b, s[1], true, false)
		case http.MethodPut:
			if n.version == V0131 {
				return 0, nil, errMethod
			}
			return n.upsertRoute(ctx, q.b, s[1], false, true)
		case http.MethodDelete:
			r, err := n.findRoute(ctx, s[1])
			if err == errNotFound {
				return http.StatusNoContent, nil, nil
			}
			if err != nil {
				return 0, nil, err
			}
			keys, err := n.deleteWithPlugins(ctx, "routes", "route_id", r.ID)
			if err != nil {
				return 0, nil, fmt.Errorf("deleting route: %w", err)
			}
			n.broadcast(ctx, append(keys, "router:version")...)
			return http.StatusNoContent, nil, nil
		}
		return 0, nil, errMethod
	}
	r, err := n.findRoute(ctx, s[1])
	if err != nil {
		return 0, nil, err
	}
	switch s[2] {
	case "service":
		if len(s) != 3 {
			return 0, nil, errNotFound
		}
		switch m {
		case http.MethodGet:
			sv, err := n.findService(ctx, r.ServiceID)
			if err != nil {
				return 0, nil, err
			}
			return http.StatusOK, renderService(sv), nil
		case http.MethodPatch:
			return n.upsertService(ctx, q.b, r.ServiceID, true, false)
		case http.MethodPut:
			if n.version == V0131 {
				return 0, nil, errMethod
			}
			return n.upsertService(ctx, q.b, r.ServiceID, false, true)
		}
		return 0, nil, errMethod
	case "plugins":
		return n.routeScopedPlugins(ctx, q, scope{route: r.ID}, s[3:])
	}
	return 0, nil, errNotFound
}

func (n *Node) findRoute(ctx context.Context, key string) (Route, error) {
	var where string
	switch {
	case isUUID(key):
		where = "WHERE id = $1"
	case n.version.Is10():
		where = "WHERE name = $1"
	default:
		return Route{}, errNotFound
	}
	rs, err := selectRoutes(ctx, n.pool, n.version, where, []any{key})
	if err != nil {
		return Route{}, err
	}
	if len(rs) == 0 {
		return Route{}, errNotFound
	}
	return rs[0], nil
}

func (n *Node) applyRoute(r *Route, b body) map[string]any {
	errs := map[string]any{}
	in := b.m
	known := map[string]bool{"id": true, "created_at": true, "updated_at": true, "protocols": true, "methods": true,
		"hosts": true, "paths": true, "regex_priority": true, "strip_path": true, "preserve_host": true, "service": true}
	if n.version.Is10() {
		for _, k := range []string{"name", "snis", "sources", "destinations"} {
			known[k] = true
		}
	}
	for k := range in {
		if !known[k] {
			errs[k] = "unknown field"
		}
	}
	arrF := func(k string, dst *[]string, check func(string) string) {
		v, ok := in[k]
		if !ok {
			return
		}
		var items []string
		switch t := v.(type) {
		case nil:
			*dst = nil
			return
		case string:
			items = []string{t}
		case []any:
			for _, e := range t {
				s, ok := e.(string)
				if !ok {
					errs[k] = "expected a string"
					return
				}
				items = append(items, s)
			}
		case map[string]any:
			if len(t) > 0 {
				errs[k] = "expected a set"
				return
			}
		default:
			errs[k] = "expected a set"
			return
		}
		for _, it := range items {
			if msg := check(it); msg != "" {
				errs[k] = msg
				return
			}
		}
		if items == nil {
			items = []string{}
		}
		*dst = items
	}
	protos := []string{"http", "https"}
	if n.version.Is10() {
		protos = append(protos, "tcp", "tls")
	}
	arrF("protocols", &r.Protocols, func(p string) string {
		if !contains(protos, p) {
			return "expected one of: " + strings.Join(protos, ", ")
		}
		return ""
	})
	arrF("methods", &r.Methods, func(m string) string {
		if !methodRe.MatchString(m) {
			return "invalid value: " + m
		}
		return ""
	})
	arrF("hosts", &r.Hosts, func(h string) string {
		if strings.Contains(h, "/") || strings.Count(h, "*") > 1 {
			return "invalid value: " + h
		}
		return ""
	})
	arrF("paths", &r.Paths, func(p string) string {
		switch {
		case !strings.HasPrefix(p, "/"):
			return "should start with: /"
		case strings.Contains(p, "//"):
			return "must not have empty segments"
		case !n.version.Is10() && len(p) > 1 && strings.HasSuffix(p, "/"):
			return "must not have a trailing slash"
		}
		return ""
	})
	if n.version.Is10() {
		arrF("snis", &r.SNIs, func(string) string { return "" })
		if v, ok := in["name"]; ok {
			if v == nil {
				r.Name = nil
			} else if s, isStr := v.(string); !isStr || !nameRe.MatchString(s) {
				errs["name"] = "invalid value: " + fmt.Sprint(v)
			} else {
				r.Name = &s
			}
		}
	}
	if v, ok := in["regex_priority"]; ok {
		f, ok := toFloat(v)
		if _, isStr := v.(string); isStr && !b.form {
			ok = false
		}
		if !ok || f != float64(int64(f)) {
			errs["regex_priority"] = "expected an integer"
		} else {
			r.RegexPriority = int(f)
		}
	}
	boolF := func(k string, dst *bool) {
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
			errs[k] = "expected a boolean"
		default:
			errs[k] = "expected a boolean"
		}
	}
	boolF("strip_path", &r.StripPath)
	boolF("preserve_host", &r.PreserveHost)
	if v, ok := in["service"]; ok {
		sm, isMap := v.(map[string]any)
		id, _ := sm["id"].(string)
		switch {
		case v == nil:
			r.ServiceID = ""
		case !isMap || !isUUID(id):
			errs["service"] = map[string]any{"id": "expected a valid UUID"}
		default:
			r.ServiceID = id
		}
	}
	if r.ServiceID == "" {
		if _, bad := errs["service"]; !bad {
			errs["service"] = "required field missing"
		}
	}
	if len(errs) == 0 && len(r.Methods) == 0 && len(r.Hosts) == 0 && len(r.Paths) == 0 {
		errs["@entity"] = "at least one of these fields must be non-empty: 'methods', 'hosts', 'paths'"
	}
	return errs
}

func (n *Node) upsertRoute(ctx context.Context, b body, key string, partial, put bool) (int, any, error) {
	if key != "" && !isUUID(key) && !n.version.Is10() {
		// 0.x routes have no name to address them by.
		return 0, nil, errNotFound
	}
	now := time.Now().UTC().Truncate(time.Second)
	r := Route{Protocols: []string{"http", "https"}, StripPath: true}
	exists := false
	if key != "" {
		old, err := n.findRoute(ctx, key)
		switch {
		case err == nil:
			exists = true
			if partial {
				r = old
			} else {
				r.ID, r.CreatedAt, r.Name = old.ID, old.CreatedAt, old.Name
			}
		case err != errNotFound:
			return 0, nil, err
		case partial:
			return 0, nil, n.notFoundByKey(key, "name")
		}
		if !exists {
			r.ID, r.CreatedAt = newUUID(), now
			if isUUID(key) {
				r.ID = key
			} else {
				k := key
				r.Name = &k
			}
		}
	} else {
		r.ID, r.CreatedAt = newUUID(), now
	}
	r.UpdatedAt = now
	if errs := n.applyRoute(&r, b); len(errs) > 0 {
		return 0, nil, n.schemaViolation(errs)
	}
	if put && !isUUID(key) {
		k := key
		r.Name = &k
	}
	// An unknown service surfaces as the routes_service_id_fkey violation.
	cols := `id, created_at, updated_at, protocols, methods, hosts, paths, regex_priority, strip_path, preserve_host, service_id`
	vals := `$1, to_timestamp($2), to_timestamp($3), $4, $5, $6, $7, $8, $9, $10, $11`
	args := []any{r.ID, r.CreatedAt.Unix(), r.UpdatedAt.Unix(), r.Protocols, r.Methods, r.Hosts, r.Paths,
		r.RegexPriority, r.StripPath, r.PreserveHost, r.ServiceID}
	if n.version.Is10() {
		cols += `, name, snis`
		vals += `, $12, $13`
		args = append(args, r.Name, r.SNIs)
	}
	var err error
	if exists {
		set := []string{}
		for i, c := range strings.Split(cols, ", ") {
			if c == "id" || c == "created_at" {
				continue
			}
			set = append(set, fmt.Sprintf("%s = %s", c, strings.Split(vals, ", ")[i]))
		}
		_, err = n.pool.Exec(ctx, `UPDATE routes SET `+strings.Join(set, ", ")+` WHERE id = $1 AND $2::float8 IS NOT NULL`, args...)
	} else {
		_, err = n.pool.Exec(ctx, `INSERT INTO routes (`+cols+`) VALUES (`+vals+`)`, args...)
	}
	if code, _ := pgCode(err); code == "23505" {
		return 0, nil, n.uniqueViolation(map[string]any{"name": deref(r.Name)})
	}
	if code, _ := pgCode(err); code == "23503" {
		return 0, nil, n.fkViolation(r.ServiceID)
	}
	if err != nil {
		return 0, nil, fmt.Errorf("writing route: %w", err)
	}
	n.broadcast(ctx, "router:version")
	status := http.StatusCreated
	if key != "" {
		status = http.StatusOK
	}
	return status, n.renderRoute(r, false), nil
}

var _ = pgx.ErrNoRows
