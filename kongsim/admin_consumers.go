package kongsim

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"time"
)

func (n *Node) routeConsumers(ctx context.Context, q *adminReq) (int, any, error) {
	s, m := q.seg, q.method()
	old := n.version == V0131
	switch len(s) {
	case 1:
		switch m {
		case http.MethodGet:
			if old {
				l := listSpec{from: "consumers", filters: map[string]string{"id": "id::uuid", "username": "username", "custom_id": "custom_id"}}
				return n.oldDAOList(ctx, q, l, func(where string, args []any) ([]map[string]any, error) {
					cs, err := selectConsumers(ctx, n.pool, where, args)
					var out []map[string]any
					for _, c := range cs {
						out = append(out, n.renderConsumer(c))
					}
					return out, err
				})
			}
			return n.newDAOList(ctx, q, listSpec{from: "consumers", path: "/consumers"}, func(where string, args []any) ([]map[string]any, []string, error) {
				cs, err := selectConsumers(ctx, n.pool, where, args)
				var out []map[string]any
				var ids []string
				for _, c := range cs {
					out = append(out, n.renderConsumer(c))
					ids = append(ids, c.ID)
				}
				return out, ids, err
			})
		case http.MethodPost:
			return n.upsertConsumer(ctx, q.b, "", false, false)
		case http.MethodPut:
			if old {
				if id, ok := q.b.m["id"].(string); ok && id != "" {
					return n.upsertConsumer(ctx, q.b, id, false, true)
				}
				return n.upsertConsumer(ctx, q.b, "", false, false)
			}
		}
		return 0, nil, errMethod
	case 2:
		switch m {
		case http.MethodGet:
			c, err := n.findConsumer(ctx, s[1])
			if err != nil {
				return 0, nil, err
			}
			return http.StatusOK, n.renderConsumer(c), nil
		case http.MethodPatch:
			return n.upsertConsumer(ctx, q.b, s[1], true, false)
		case http.MethodPut:
			if old {
				return 0, nil, errMethod
			}
			return n.upsertConsumer(ctx, q.b, s[1], false, true)
		case http.MethodDelete:
			c, err := n.findConsumer(ctx, s[1])
			if err == errNotFound && !old {
				return http.StatusNoContent, nil, nil
			}
			if err != nil {
				return 0, nil, err
			}
			keys, _ := selectKeyAuth(ctx, n.pool, "WHERE consumer_id = $1", []any{c.ID})
			ps, _ := selectPlugins(ctx, n.pool, n.version, "WHERE consumer_id = $1", []any{c.ID})
			if _, err := n.pool.Exec(ctx, `DELETE FROM consumers WHERE id = $1`, c.ID); err != nil {
				return 0, nil, fmt.Errorf("deleting consumer: %w", err)
			}
			inv := []string{"consumers:" + c.ID}
			for _, k := range keys {
				inv = append(inv, "keyauth_credentials:"+k.Key)
			}
			for _, p := range ps {
				inv = append(inv, pluginCacheKey(p))
			}
			n.broadcast(ctx, inv...)
			return http.StatusNoContent, nil, nil
		}
		return 0, nil, errMethod
	}
	c, err := n.findConsumer(ctx, s[1])
	if err != nil {
		return 0, nil, err
	}
	switch s[2] {
	case "plugins":
		return n.routeScopedPlugins(ctx, q, scope{consumer: c.ID}, s[3:])
	case "key-auth":
		if !n.loaded["key-auth"] {
			return 0, nil, errNotFound
		}
		return n.routeKeyAuth(ctx, q, c, s[3:])
	}
	return 0, nil, errNotFound
}

func (n *Node) findConsumer(ctx context.Context, key string) (Consumer, error) {
	where := "WHERE username = $1"
	if isUUID(key) {
		where = "WHERE id = $1"
	}
	cs, err := selectConsumers(ctx, n.pool, where, []any{key})
	if err != nil {
		return Consumer{}, err
	}
	if len(cs) == 0 {
		return Consumer{}, errNotFound
	}
	return cs[0], nil
}

func (n *Node) upsertConsumer(ctx context.Context, b body, key string, partial, put bool) (int, any, error) {
	old := n.version == V0131
	c := Consumer{ID: newUUID(), CreatedAt: time.Now().UTC().Truncate(time.Second)}
	// 0.13's old DAO keeps an id supplied in the body; the new DAO ignores it
	// (GOKONG.md note 6).
	if id, ok := b.m["id"].(string); ok && isUUID(id) && old && key == "" {
		c.ID = id
	}
	exists := false
	if key != "" {
		prev, err := n.findConsumer(ctx, key)
		switch {
		case err == nil:
			exists = true
			if partial {
				c = prev
			} else {
				c = Consumer{ID: prev.ID, CreatedAt: prev.CreatedAt}
			}
		case err != errNotFound:
			return 0, nil, err
		case partial && old:
			return 0, nil, errNotFound
		case partial:
			return 0, nil, n.notFoundByKey(key, "username")
		default:
			if isUUID(key) {
				c.ID = key
			} else {
				k := key
				c.Username = &k
			}
		}
	}
	errs := map[string]any{}
	for k, v := range b.m {
		switch k {
		case "id", "created_at":
		case "username", "custom_id":
			var dst **string = &c.Username
			if k == "custom_id" {
				dst = &c.CustomID
			}
			if v == nil {
				*dst = nil
				continue
			}
			s, ok := v.(string)
			if !ok {
				if old {
					errs[k] = k + " is not a string"
				} else {
					errs[k] = "expected a string"
				}
				continue
			}
			*dst = &s
		default:
			if old {
				errs[k] = k + " is an unknown field"
			} else {
				errs[k] = "unknown field"
			}
		}
	}
	if put && !isUUID(key) && key != "" {
		k := key
		c.Username = &k
	}
	if len(errs) == 0 && c.Username == nil && c.CustomID == nil {
		if old {
			errs["message"] = "At least a 'custom_id' or a 'username' must be specified"
		} else {
			errs["@entity"] = "at least one of these fields must be non-empty: 'custom_id', 'username'"
		}
	}
	if len(errs) > 0 {
		if old {
			return 0, nil, &apiError{http.StatusBadRequest, errs}
		}
		return 0, nil, n.schemaViolation(errs)
	}
	var err error
	if exists {
		_, err = n.pool.Exec(ctx, `UPDATE consumers SET username=$2, custom_id=$3 WHERE id=$1`, c.ID, c.Username, c.CustomID)
	} else {
		_, err = n.pool.Exec(ctx, `INSERT INTO consumers (id, username, custom_id, created_at) VALUES ($1,$2,$3,to_timestamp($4))`,
			c.ID, c.Username, c.CustomID, c.CreatedAt.Unix())
	}
	if code, constraint := pgCode(err); code == "23505" {
		field, val := "username", deref(c.Username)
		switch constraint {
		case "consumers_custom_id_key":
			field, val = "custom_id", deref(c.CustomID)
		case "consumers_pkey":
			field, val = "id", c.ID
		}
		if old {
			return 0, nil, &apiError{http.StatusConflict, map[string]any{field: "already exists with value '" + val + "'"}}
		}
		return 0, nil, n.uniqueViolation(map[string]any{field: val})
	}
	if err != nil {
		return 0, nil, fmt.Errorf("writing consumer: %w", err)
	}
	n.broadcast(ctx, "consumers:"+c.ID)
	status := http.StatusCreated
	if key != "" {
		status = http.StatusOK
	}
	return status, n.renderConsumer(c), nil
}

func (n *Node) routeKeyAuth(ctx context.Context, q *adminReq, c Consumer, rest []string) (int, any, error) {
	m := q.method()
	if len(rest) == 0 {
		switch m {
		case http.MethodGet:
			l := listSpec{from: "keyauth_credentials", path: q.r.URL.Path}
			l.where = append(l.where, "consumer_id = "+l.arg(c.ID))
			if n.version.Is10() {
				return n.newDAOList(ctx, q, l, func(where string, args []any) ([]map[string]any, []string, error) {
					ks, err := selectKeyAuth(ctx, n.pool, where, args)
					var out []map[string]any
					var ids []string
					for _, k := range ks {
						out = append(out, n.renderKey(k))
						ids = append(ids, k.ID)
					}
					return out, ids, err
				})
			}
			l.filters = map[string]string{"id": "id::text", "key": "key", "consumer_id": "consumer_id::text"}
			return n.oldDAOList(ctx, q, l, func(where string, args []any) ([]map[string]any, error) {
				ks, err := selectKeyAuth(ctx, n.pool, where, args)
				var out []map[string]any
				for _, k := range ks {
					out = append(out, n.renderKey(k))
				}
				return out, err
			})
		case http.MethodPost, http.MethodPut:
			k := KeyAuthCredential{ID: newUUID(), ConsumerID: c.ID, CreatedAt: time.Now().UTC().Truncate(time.Second)}
			for f, v := range q.b.m {
				switch f {
				case "key":
					s, ok := v.(string)
					if !ok {
						return 0, nil, &apiError{http.StatusBadRequest, map[string]any{"key": "key is not a string"}}
					}
					k.Key = s
				case "id", "created_at", "consumer_id", "consumer":
				default:
					if n.version.Is10() {
						return 0, nil, n.schemaViolation(map[string]any{f: "unknown field"})
					}
					return 0, nil, &apiError{http.StatusBadRequest, map[string]any{f: f + " is an unknown field"}}
				}
			}
			if k.Key == "" {
				var b [16]byte
				_, _ = rand.Read(b[:])
				k.Key = hex.EncodeToString(b[:])
			}
			_, err := n.pool.Exec(ctx, `INSERT INTO keyauth_credentials (id, consumer_id, key, created_at) VALUES ($1,$2,$3,to_timestamp($4))`,
				k.ID, k.ConsumerID, k.Key, k.CreatedAt.Unix())
			if code, _ := pgCode(err); code == "23505" {
				if n.version.Is10() {
					return 0, nil, n.uniqueViolation(map[string]any{"key": k.Key})
				}
				return 0, nil, &apiError{http.StatusConflict, map[string]any{"key": "already exists with value '" + k.Key + "'"}}
			}
			if err != nil {
				return 0, nil, fmt.Errorf("writing key-auth credential: %w", err)
			}
			n.broadcast(ctx, "keyauth_credentials:"+k.Key)
			return http.StatusCreated, n.renderKey(k), nil
		}
		return 0, nil, errMethod
	}
	if len(rest) != 1 {
		return 0, nil, errNotFound
	}
	ks, err := selectKeyAuth(ctx, n.pool, "WHERE consumer_id = $1 AND (id::text = $2 OR key = $2)", []any{c.ID, rest[0]})
	if err != nil {
		return 0, nil, err
	}
	if len(ks) == 0 {
		if m == http.MethodDelete && n.version.Is10() {
			return http.StatusNoContent, nil, nil
		}
		return 0, nil, errNotFound
	}
	k := ks[0]
	switch m {
	case http.MethodGet:
		return http.StatusOK, n.renderKey(k), nil
	case http.MethodPatch:
		if v, ok := q.b.m["key"].(string); ok {
			if _, err := n.pool.Exec(ctx, `UPDATE keyauth_credentials SET key = $2 WHERE id = $1`, k.ID, v); err != nil {
				if code, _ := pgCode(err); code == "23505" {
					return 0, nil, &apiError{http.StatusConflict, map[string]any{"key": "already exists with value '" + v + "'"}}
				}
				return 0, nil, err
			}
			n.broadcast(ctx, "keyauth_credentials:"+k.Key, "keyauth_credentials:"+v)
			k.Key = v
		}
		return http.StatusOK, n.renderKey(k), nil
	case http.MethodDelete:
		if _, err := n.pool.Exec(ctx, `DELETE FROM keyauth_credentials WHERE id = $1`, k.ID); err != nil {
			return 0, nil, err
		}
		n.broadcast(ctx, "keyauth_credentials:"+k.Key)
		return http.StatusNoContent, nil, nil
	}
	return 0, nil, errMethod
}
