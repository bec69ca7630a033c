package kongsim

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"
)

// scope is a plugin's parent taken from the URL.
type scope struct{ api, service, route, consumer string }

func (n *Node) routePlugins(ctx context.Context, q *adminReq) (int, any, error) {
	s, m := q.seg, q.method()
	if len(s) >= 2 {
		switch s[1] {
		case "enabled":
			if len(s) != 2 {
				return 0, nil, errNotFound
			}
			if m != http.MethodGet {
				return 0, nil, errMethod
			}
			names := sortedKeys(n.loaded)
			return http.StatusOK, map[string]any{"enabled_plugins": names}, nil
		case "schema":
			if len(s) != 3 {
				return 0, nil, errNotFound
			}
			if m != http.MethodGet {
				return 0, nil, errMethod
			}
			sc, ok := pluginSchemas(n.version)[s[2]]
			if !ok || !n.loaded[s[2]] {
				if n.loaded[s[2]] {
					return http.StatusOK, map[string]any{"fields": map[string]any{}}, nil
				}
				return 0, nil, msgErr(http.StatusNotFound, "No plugin named '"+s[2]+"'")
			}
			return http.StatusOK, schemaJSON(n.version, sc), nil
		}
	}
	if len(s) == 1 && m == http.MethodPut && !n.version.Is10() {
		if id, ok := q.b.m["id"].(string); ok && id != "" {
			return n.updatePlugin(ctx, id, q.b, true, scope{})
		}
		return n.createPlugin(ctx, q.b, scope{})
	}
	return n.routeScopedPlugins(ctx, q, scope{}, s[1:])
}

// routeScopedPlugins serves /plugins, /apis/{x}/plugins, /services/{x}/plugins,
// /routes/{x}/plugins and /consumers/{x}/plugins; rest is what follows.
func (n *Node) routeScopedPlugins(ctx context.Context, q *adminReq, sc scope, rest []string) (int, any, error) {
	m := q.method()
	switch len(rest) {
	case 0:
		switch m {
		case http.MethodGet:
			return n.listPlugins(ctx, q, sc)
		case http.MethodPost:
			return n.createPlugin(ctx, q.b, sc)
		case http.MethodPut:
			if n.version.Is10() {
				return 0, nil, errMethod
			}
			if id, ok := q.b.m["id"].(string); ok && id != "" {
				return n.updatePlugin(ctx, id, q.b, true, sc)
			}
			return n.createPlugin(ctx, q.b, sc)
		}
		return 0, nil, errMethod
	case 1:
		id := rest[0]
		if !n.version.Is10() && (sc.route != "" || sc.service != "") {
			// 0.x has /apis/{x}/plugins/{id} and /consumers/{x}/plugins/{id},
			// not the service and route ones.
			return 0, nil, errNotFound
		}
		switch m {
		case http.MethodGet:
			p, err := n.findPlugin(ctx, id, sc)
			if err != nil {
				return 0, nil, err
			}
			return http.StatusOK, n.renderPlugin(p), nil
		case http.MethodPatch:
			return n.updatePlugin(ctx, id, q.b, false, sc)
		case http.MethodPut:
			if !n.version.Is10() {
				return 0, nil, errMethod
			}
			return n.putPlugin10(ctx, id, q.b, sc)
		case http.MethodDelete:
			p, err := n.findPlugin(ctx, id, sc)
			if err == errNotFound && n.version.Is10() {
				return http.StatusNoContent, nil, nil
			}
			if err != nil {
				return 0, nil, err
			}
			if _, err := n.pool.Exec(ctx, `DELETE FROM plugins WHERE id = $1`, p.ID); err != nil {
				return 0, nil, fmt.Errorf("deleting plugin: %w", err)
			}
			n.pluginWritten(ctx, p)
			return http.StatusNoContent, nil, nil
		}
		return 0, nil, errMethod
	}
	return 0, nil, errNotFound
}

func (n *Node) pluginWritten(ctx context.Context, ps ...Plugin) {
	var keys []string
	for _, p := range ps {
		keys = append(keys, pluginCacheKey(p))
	}
	if n.version.Is10() {
		keys = append(keys, "plugins_map:version")
	}
	n.broadcast(ctx, keys...)
}

func (n *Node) findPlugin(ctx context.Context, id string, sc scope) (Plugin, error) {
	if !isUUID(id) {
		return Plugin{}, errNotFound
	}
	ps, err := selectPlugins(ctx, n.pool, n.version, "WHERE id = $1", []any{id})
	if err != nil {
		return Plugin{}, err
	}
	if len(ps) == 0 {
		return Plugin{}, errNotFound
	}
	p := ps[0]
	if (sc.api != "" && p.APIID != sc.api) || (sc.route != "" && p.RouteID != sc.route) ||
		(sc.service != "" && p.ServiceID != sc.service) || (sc.consumer != "" && p.ConsumerID != sc.consumer) {
		return Plugin{}, errNotFound
	}
	return p, nil
}

func scopeWhere(l *listSpec, sc scope) {
	for col, v := range map[string]string{"api_id": sc.api, "route_id": sc.route, "service_id": sc.service, "consumer_id": sc.consumer} {
		if v != "" {
			l.where = append(l.where, col+" = "+l.arg(v))
		}
	}
}

func (n *Node) listPlugins(ctx context.Context, q *adminReq, sc scope) (int, any, error) {
	l := listSpec{from: "plugins"}
	scopeWhere(&l, sc)
	if n.version.Is10() {
		l.path = q.r.URL.Path
		return n.newDAOList(ctx, q, l, func(where string, args []any) ([]map[string]any, []string, error) {
			ps, err := selectPlugins(ctx, n.pool, n.version, where, args)
			var out []map[string]any
			var ids []string
			for _, p := range ps {
				out = append(out, n.renderPlugin(p))
				ids = append(ids, p.ID)
			}
			return out, ids, err
		})
	}
	l.filters = map[string]string{"id": "id::uuid", "name": "name", "api_id": "api_id::uuid", "route_id": "route_id::uuid",
		"service_id": "service_id::uuid", "consumer_id": "consumer_id::uuid", "enabled": "enabled::text"}
	return n.oldDAOList(ctx, q, l, func(where string, args []any) ([]map[string]any, error) {
		ps, err := selectPlugins(ctx, n.pool, n.version, where, args)
		var out []map[string]any
		for _, p := range ps {
			out = append(out, n.renderPlugin(p))
		}
		return out, err
	})
}

// pluginInput validates a plugin body against version rules and returns the
// plugin to store, or an error response.
func (n *Node) pluginInput(ctx context.Context, b body, p Plugin, partial bool) (Plugin, error) {
	in := b.m
	if n.version.Is10() {
		errs := map[string]any{}
		known := map[string]bool{"id": true, "created_at": true, "name": true, "config": true, "enabled": true,
			"run_on": true, "route": true, "service": true, "consumer": true}
		for k := range in {
			if !known[k] {
				errs[k] = "unknown field"
			}
		}
		for _, k := range []string{"route", "service", "consumer"} {
			v, ok := in[k]
			if !ok {
				continue
			}
			id := ""
			if v != nil {
				mm, isMap := v.(map[string]any)
				s, _ := mm["id"].(string)
				if !isMap || !isUUID(s) {
					errs[k] = map[string]any{"id": "expected a valid UUID"}
					continue
				}
				id = s
			}
			switch k {
			case "route":
				p.RouteID = id
			case "service":
				p.ServiceID = id
			case "consumer":
				p.ConsumerID = id
			}
		}
		if v, ok := in["name"]; ok {
			s, _ := v.(string)
			p.Name = s
		}
		if v, ok := in["enabled"]; ok {
			bv, isBool := v.(bool)
			if s, isStr := v.(string); isStr && b.form {
				bv, isBool = s == "true", s == "true" || s == "false"
			}
			if !isBool {
				errs["enabled"] = "expected a boolean"
			}
			p.Enabled = bv
		}
		if v, ok := in["run_on"]; ok {
			s, _ := v.(string)
			if !contains([]string{"first", "second", "all"}, s) {
				errs["run_on"] = "expected one of: first, second, all"
			}
			p.RunOn = s
		}
		if p.Name == "" {
			errs["name"] = "required field missing"
		} else if !n.loaded[p.Name] {
			errs["name"] = "plugin '" + p.Name + "' not enabled; add it to the 'plugins' configuration property"
		}
		if len(errs) > 0 {
			return p, n.schemaViolation(errs)
		}
		cfg, cerr := n.pluginConfig(ctx, p, in, b.form, partial)
		if cerr != nil {
			return p, cerr
		}
		p.Config = cfg
		if p.RunOn == "" {
			p.RunOn = "first"
		}
		return p, nil
	}
	errs := map[string]any{}
	known := map[string]bool{"id": true, "created_at": true, "name": true, "config": true, "enabled": true,
		"api_id": true, "route_id": true, "service_id": true, "consumer_id": true}
	for k := range in {
		if !known[k] {
			errs[k] = k + " is an unknown field"
		}
	}
	for k, dst := range map[string]*string{"api_id": &p.APIID, "route_id": &p.RouteID, "service_id": &p.ServiceID, "consumer_id": &p.ConsumerID} {
		if v, ok := in[k]; ok {
			s, _ := v.(string)
			if v != nil && !isUUID(s) {
				errs[k] = s + " is not a valid uuid"
				continue
			}
			*dst = s
		}
	}
	if v, ok := in["name"]; ok {
		s, _ := v.(string)
		if partial && p.Name != "" && s != p.Name {
			errs["name"] = "cannot update the plugin name"
		}
		p.Name = s
	}
	if v, ok := in["enabled"]; ok {
		bv, isBool := v.(bool)
		if s, isStr := v.(string); isStr && b.form {
			bv, isBool = s == "true", s == "true" || s == "false"
		}
		if !isBool {
			errs["enabled"] = "enabled is not a boolean"
		}
		p.Enabled = bv
	}
	if p.Name == "" {
		errs["name"] = "name is required"
	}
	if len(errs) > 0 {
		return p, &apiError{http.StatusBadRequest, errs}
	}
	if !n.loaded[p.Name] {
		prop := "plugins"
		if n.version == V0131 {
			prop = "custom_plugins"
		}
		return p, &apiError{http.StatusBadRequest, map[string]any{"config": "plugin '" + p.Name + "' not enabled; add it to the '" + prop + "' configuration property"}}
	}
	if p.APIID != "" && (p.RouteID != "" || p.ServiceID != "") {
		return p, msgErr(http.StatusBadRequest, "cannot configure plugin with api_id and one of route_id or service_id")
	}
	cfg, cerr := n.pluginConfig(ctx, p, in, b.form, partial)
	if cerr != nil {
		return p, cerr
	}
	p.Config = cfg
	return p, nil
}

// pluginConfig validates the config part (merged over the stored one on
// PATCH) and runs registered outside checks.
func (n *Node) pluginConfig(ctx context.Context, p Plugin, in map[string]any, form, partial bool) (map[string]any, error) {
	raw := map[string]any{}
	if partial && p.Config != nil {
		for k, v := range p.Config {
			raw[k] = v
		}
	}
	if v, ok := in["config"]; ok && v != nil {
		cm, isMap := v.(map[string]any)
		if !isMap {
			if n.version.Is10() {
				return nil, n.schemaViolation(map[string]any{"config": "expected a record"})
			}
			return nil, &apiError{http.StatusBadRequest, map[string]any{"config": "config is not a table"}}
		}
		for k, v := range cm {
			raw[k] = v
		}
	}
	sc, ok := pluginSchemas(n.version)[p.Name]
	if !ok {
		return raw, nil
	}
	if n.version.Is10() {
		// A stored 1.0 config carries nulls for unset fields; drop them so
		// that defaults apply and "unknown field" is not raised for them.
		for k, v := range raw {
			if v == nil {
				delete(raw, k)
			}
		}
	}
	cfg, errs := validateConfig(n.version, sc, raw, form, nil)
	if len(errs) > 0 {
		if n.version.Is10() {
			nested := map[string]any{}
			for k, m := range errs {
				if k == "" {
					return nil, n.schemaViolation(map[string]any{"config": m})
				}
				nested[k] = m
			}
			return nil, n.schemaViolation(map[string]any{"config": nested})
		}
		flat := map[string]any{}
		for k, m := range errs {
			if k == "" {
				flat["config"] = m
			} else {
				flat["config."+k] = m
			}
		}
		return nil, &apiError{http.StatusBadRequest, flat}
	}
	selfChecksMu.RLock()
	check := selfChecks[p.Name]
	selfChecksMu.RUnlock()
	if check != nil {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		msg := check(cctx, n.version, cfg)
		cancel()
		if msg != "" {
			if n.version.Is10() {
				return nil, n.schemaViolation(map[string]any{"config": msg})
			}
			return nil, &apiError{http.StatusBadRequest, map[string]any{"config": msg}}
		}
	}
	return cfg, nil
}

func nullID(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (n *Node) createPlugin(ctx context.Context, b body, sc scope) (int, any, error) {
	p := Plugin{ID: newUUID(), Enabled: true, CreatedAt: time.Now().UTC().Truncate(time.Second),
		APIID: sc.api, RouteID: sc.route, ServiceID: sc.service, ConsumerID: sc.consumer}
	// The old DAO keeps an id supplied in the body (GOKONG.md note 6).
	if id, ok := b.m["id"].(string); ok && isUUID(id) && !n.version.Is10() {
		p.ID = id
	}
	p, err := n.pluginInput(ctx, b, p, false)
	if err != nil {
		return 0, nil, err
	}
	if sc.api != "" {
		p.APIID = sc.api
	}
	if err := n.writePlugin(ctx, p, false); err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, n.renderPlugin(p), nil
}

func (n *Node) updatePlugin(ctx context.Context, id string, b body, full bool, sc scope) (int, any, error) {
	if len(b.m) == 0 && !n.version.Is10() {
		return 0, nil, msgErr(http.StatusBadRequest, "empty body")
	}
	old, err := n.findPlugin(ctx, id, sc)
	if err != nil {
		if err == errNotFound && n.version.Is10() {
			return 0, nil, n.newDAOError(http.StatusNotFound, 6, "not found",
				fmt.Sprintf("could not find the entity with primary key '{id=\"%s\"}'", id), map[string]any{"id": id})
		}
		return 0, nil, err
	}
	p := old
	if full {
		p = Plugin{ID: old.ID, CreatedAt: old.CreatedAt, Enabled: true}
	}
	p, err = n.pluginInput(ctx, b, p, !full)
	if err != nil {
		return 0, nil, err
	}
	if err := n.writePlugin(ctx, p, true); err != nil {
		return 0, nil, err
	}
	n.pluginWritten(ctx, old)
	return http.StatusOK, n.renderPlugin(p), nil
}

func (n *Node) putPlugin10(ctx context.Context, id string, b body, sc scope) (int, any, error) {
	if !isUUID(id) {
		return 0, nil, n.newDAOError(http.StatusBadRequest, 1, "invalid primary key", "invalid primary key: '{id=\""+id+"\"}'", map[string]any{"id": "expected a valid UUID"})
	}
	old, err := n.findPlugin(ctx, id, scope{})
	exists := err == nil
	if err != nil && err != errNotFound {
		return 0, nil, err
	}
	p := Plugin{ID: id, Enabled: true, CreatedAt: time.Now().UTC().Truncate(time.Second),
		RouteID: sc.route, ServiceID: sc.service, ConsumerID: sc.consumer}
	if exists {
		p.CreatedAt = old.CreatedAt
	}
	p, err = n.pluginInput(ctx, b, p, false)
	if err != nil {
		return 0, nil, err
	}
	if err := n.writePlugin(ctx, p, exists); err != nil {
		return 0, nil, err
	}
	if exists {
		n.pluginWritten(ctx, old)
	}
	return http.StatusOK, n.renderPlugin(p), nil
}

// writePlugin inserts or updates a plugin row, enforcing uniqueness and
// foreign keys the way each DAO reports them.
func (n *Node) writePlugin(ctx context.Context, p Plugin, update bool) error {
	cfg, err := json.Marshal(p.Config)
	if err != nil {
		return fmt.Errorf("encoding plugin config: %w", err)
	}
	if !n.version.Is10() && !update {
		// The common case in one statement: insert when every referenced
		// entity exists and no same plugin does. When nothing is inserted,
		// the checks below say why.
		ok, err := n.insertPlugin0x(ctx, p, cfg)
		if code, _ := pgCode(err); code == "23505" {
			return &apiError{http.StatusConflict, map[string]any{"id": "already exists with value '" + p.ID + "'"}}
		}
		if code, _ := pgCode(err); err != nil && code != "23503" {
			return fmt.Errorf("writing plugin: %w", err)
		}
		if ok {
			n.pluginWritten(ctx, p)
			return nil
		}
	}
	if !n.version.Is10() {
		// One round trip: whether each referenced entity exists, then
		// whether the same plugin exists. "= $n" or "IS NULL" per column
		// rather than IS NOT DISTINCT FROM, which no index serves: every
		// plugin of that name would be read, and a gateway has thousands
		// of key-auth plugins. When some reference is given, its absent
		// ones are tested on col::text, which no index serves either: a
		// table not yet analyzed (a freshly filled datastore) makes
		// "service_id IS NULL" look selective, and the planner then ANDs
		// that index, which holds every route plugin, with route_id's.
		refs := []struct{ col, table, id string }{{"api_id", "apis", p.APIID}, {"route_id", "routes", p.RouteID},
			{"service_id", "services", p.ServiceID}, {"consumer_id", "consumers", p.ConsumerID}}
		where := []string{"name = $1", "id <> $2"}
		args := []any{p.Name, p.ID}
		anyRef := p.APIID != "" || p.RouteID != "" || p.ServiceID != "" || p.ConsumerID != ""
		var sel []string
		var present []int
		for i, r := range refs {
			if r.id == "" {
				if anyRef {
					where = append(where, r.col+"::text IS NULL")
				} else {
					where = append(where, r.col+" IS NULL")
				}
				continue
			}
			args = append(args, r.id)
			where = append(where, fmt.Sprintf("%s = $%d::uuid", r.col, len(args)))
			sel = append(sel, fmt.Sprintf("EXISTS (SELECT 1 FROM %s WHERE id = $%d::uuid)", r.table, len(args)))
			present = append(present, i)
		}
		sel = append(sel, `EXISTS (SELECT 1 FROM plugins WHERE `+strings.Join(where, " AND ")+`)`)
		found := make([]bool, len(sel))
		dest := make([]any, len(sel))
		for i := range found {
			dest[i] = &found[i]
		}
		if err := n.pool.QueryRow(ctx, `SELECT `+strings.Join(sel, ", "), args...).Scan(dest...); err != nil {
			return err
		}
		for k, i := range present {
			if !found[k] {
				return &apiError{http.StatusNotFound, map[string]any{refs[i].col: "does not exist with value '" + refs[i].id + "'"}}
			}
		}
		dup := found[len(found)-1]
		if dup {
			return &apiError{http.StatusConflict, map[string]any{"name": "already exists with value '" + p.Name + "'"}}
		}
		if update {
			_, err = n.pool.Exec(ctx, `UPDATE plugins SET name=$2, config=$3, enabled=$4, api_id=$5, route_id=$6,
				service_id=$7, consumer_id=$8 WHERE id=$1`, p.ID, p.Name, string(cfg), p.Enabled,
				nullID(p.APIID), nullID(p.RouteID), nullID(p.ServiceID), nullID(p.ConsumerID))
		} else {
			_, err = n.pool.Exec(ctx, `INSERT INTO plugins (id, name, config, enabled, api_id, route_id, service_id,
				consumer_id, created_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,to_timestamp($9))`, p.ID, p.Name, string(cfg),
				p.Enabled, nullID(p.APIID), nullID(p.RouteID), nullID(p.ServiceID), nullID(p.ConsumerID), p.CreatedAt.Unix())
		}
		if code, _ := pgCode(err); code == "23505" {
			return &apiError{http.StatusConflict, map[string]any{"id": "already exists with value '" + p.ID + "'"}}
		}
		if err != nil {
			return fmt.Errorf("writing plugin: %w", err)
		}
		n.pluginWritten(ctx, p)
		return nil
	}
	for col, id := range map[string]string{"route": p.RouteID, "service": p.ServiceID, "consumer": p.ConsumerID} {
		if id == "" {
			continue
		}
		table := col + "s"
		var ok bool
		if err := n.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+table+` WHERE id = $1)`, id).Scan(&ok); err != nil {
			return err
		}
		if !ok {
			return n.newDAOError(http.StatusBadRequest, 4, "foreign key violation",
				fmt.Sprintf("the foreign key '{id=\"%s\"}' does not reference an existing '%s' entity.", id, table),
				map[string]any{col: map[string]any{"id": id}})
		}
	}
	cacheKey := pluginCacheKey(Plugin{Name: p.Name, RouteID: p.RouteID, ServiceID: p.ServiceID, ConsumerID: p.ConsumerID})
	if update {
		_, err = n.pool.Exec(ctx, `UPDATE plugins SET name=$2, config=$3, enabled=$4, route_id=$5, service_id=$6,
			consumer_id=$7, run_on=$8, cache_key=$9 WHERE id=$1`, p.ID, p.Name, string(cfg), p.Enabled,
			nullID(p.RouteID), nullID(p.ServiceID), nullID(p.ConsumerID), p.RunOn, cacheKey)
	} else {
		_, err = n.pool.Exec(ctx, `INSERT INTO plugins (id, name, config, enabled, route_id, service_id, consumer_id,
			run_on, cache_key, created_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,to_timestamp($10))`, p.ID, p.Name,
			string(cfg), p.Enabled, nullID(p.RouteID), nullID(p.ServiceID), nullID(p.ConsumerID), p.RunOn, cacheKey,
			p.CreatedAt.Unix())
	}
	if code, _ := pgCode(err); code == "23505" {
		return n.uniqueViolation(map[string]any{"name": p.Name, "route": fk(p.RouteID), "service": fk(p.ServiceID), "consumer": fk(p.ConsumerID)})
	}
	if err != nil {
		return fmt.Errorf("writing plugin: %w", err)
	}
	n.pluginWritten(ctx, p)
	return nil
}

// insertPlugin0x inserts a new 0.x plugin if every entity it references
// exists and no plugin with the same name and references does, reporting
// whether it did. The absent references are tested on col::text for the
// reason writePlugin gives.
func (n *Node) insertPlugin0x(ctx context.Context, p Plugin, cfg []byte) (bool, error) {
	refs := []struct{ col, table, id string }{{"api_id", "apis", p.APIID}, {"route_id", "routes", p.RouteID},
		{"service_id", "services", p.ServiceID}, {"consumer_id", "consumers", p.ConsumerID}}
	args := []any{p.ID, p.Name, string(cfg), p.Enabled, nullID(p.APIID), nullID(p.RouteID), nullID(p.ServiceID),
		nullID(p.ConsumerID), p.CreatedAt.Unix()}
	anyRef := p.APIID != "" || p.RouteID != "" || p.ServiceID != "" || p.ConsumerID != ""
	var cond []string
	same := []string{"name = $2", "id <> $1::uuid"}
	for i, r := range refs {
		arg := fmt.Sprintf("$%d::uuid", i+5)
		switch {
		case r.id != "":
			cond = append(cond, "EXISTS (SELECT 1 FROM "+r.table+" WHERE id = "+arg+")")
			same = append(same, r.col+" = "+arg)
		case anyRef:
			same = append(same, r.col+"::text IS NULL")
		default:
			same = append(same, r.col+" IS NULL")
		}
	}
	cond = append(cond, "NOT EXISTS (SELECT 1 FROM plugins WHERE "+strings.Join(same, " AND ")+")")
	tag, err := n.pool.Exec(ctx, `INSERT INTO plugins (id, name, config, enabled, api_id, route_id, service_id,
		consumer_id, created_at) SELECT $1::uuid, $2::text, $3::json, $4::boolean, $5::uuid, $6::uuid, $7::uuid, $8::uuid,
		to_timestamp($9::float8) WHERE `+strings.Join(cond, " AND "), args...)
	if err != nil {
		return false, err
	}
	return tag.RowsAffected() == 1, nil
}

var _ = sort.Strings
