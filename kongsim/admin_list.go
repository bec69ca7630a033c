package kongsim

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// listSpec describes one list endpoint.
type listSpec struct {
	from    string // table
	where   []string
	args    []any
	filters map[string]string // old DAO: query arg -> SQL expression compared as text
	path    string            // for new-DAO next links
}

func (l *listSpec) arg(v any) string {
	l.args = append(l.args, v)
	return "$" + strconv.Itoa(len(l.args))
}

func (l *listSpec) whereSQL() string {
	if len(l.where) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(l.where, " AND ")
}

// oldDAOList implements the 0.x crud_helpers pagination: page numbers in
// base64, total, an absolute next URL.
func (n *Node) oldDAOList(ctx context.Context, q *adminReq, l listSpec, fetch func(where string, args []any) ([]map[string]any, error)) (int, any, error) {
	keys := make([]string, 0, len(q.q))
	for k := range q.q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k == "size" || k == "offset" {
			continue
		}
		expr, ok := l.filters[k]
		if !ok {
			return 0, nil, &apiError{http.StatusBadRequest, map[string]any{k: "unknown field"}}
		}
		val := q.q.Get(k)
		if strings.HasSuffix(expr, "::uuid") {
			// Compared as uuid so the column's index serves the filter.
			if !isUUID(val) {
				return 0, nil, &apiError{http.StatusBadRequest, map[string]any{k: val + " is not a valid uuid"}}
			}
			l.where = append(l.where, strings.TrimSuffix(expr, "::uuid")+" = "+l.arg(val)+"::uuid")
			continue
		}
		l.where = append(l.where, expr+" = "+l.arg(val))
	}
	p, aerr := n.parsePage(q.q, true)
	if aerr != nil {
		return 0, nil, aerr
	}
	pageNo := 1
	if p.offset != "" {
		b, err := base64.StdEncoding.DecodeString(p.offset)
		if err != nil {
			return 0, nil, &apiError{http.StatusBadRequest, map[string]any{"message": "offset is not a valid offset"}}
		}
		if pageNo, err = strconv.Atoi(string(b)); err != nil || pageNo < 1 {
			return 0, nil, &apiError{http.StatusBadRequest, map[string]any{"message": "offset is not a valid offset"}}
		}
	}
	where := l.whereSQL() + fmt.Sprintf(" ORDER BY id LIMIT %d OFFSET %d", p.size, (pageNo-1)*p.size)
	data, err := fetch(where, l.args)
	if err != nil {
		return 0, nil, err
	}
	if data == nil {
		data = []map[string]any{}
	}
	// A first page that is not full is the whole set: no count needed.
	total := len(data)
	if pageNo > 1 || len(data) == p.size {
		if err := n.pool.QueryRow(ctx, `SELECT count(*) FROM `+l.from+l.whereSQL(), l.args...).Scan(&total); err != nil {
			return 0, nil, fmt.Errorf("counting %s: %w", l.from, err)
		}
	}
	out := map[string]any{"data": data, "total": total}
	if pageNo*p.size < total {
		off := base64.StdEncoding.EncodeToString([]byte(strconv.Itoa(pageNo + 1)))
		out["offset"] = off
		out["next"] = fmt.Sprintf("http://%s%s?size=%d&offset=%s", q.r.Host, q.r.URL.Path, p.size, url.QueryEscape(off))
	}
	return http.StatusOK, out, nil
}

// newDAOList implements endpoints.lua pagination: ordered by primary key,
// offset = base64 of the last id, relative next, no total.
func (n *Node) newDAOList(ctx context.Context, q *adminReq, l listSpec, fetch func(where string, args []any) ([]map[string]any, []string, error)) (int, any, error) {
	p, aerr := n.parsePage(q.q, false)
	if aerr != nil {
		return 0, nil, aerr
	}
	if p.offset != "" {
		id, ok := decodeOffset(p.offset)
		if !ok {
			return 0, nil, n.invalidOffset(p.offset)
		}
		l.where = append(l.where, "id > "+l.arg(id))
	}
	data, ids, err := fetch(l.whereSQL()+fmt.Sprintf(" ORDER BY id LIMIT %d", p.size+1), l.args)
	if err != nil {
		return 0, nil, err
	}
	if data == nil {
		data = []map[string]any{}
	}
	out := map[string]any{"next": nil}
	if len(data) > p.size {
		data = data[:p.size]
		off := encodeOffset(ids[p.size-1])
		out["offset"] = off
		out["next"] = l.path + "?offset=" + url.QueryEscape(off)
	}
	out["data"] = data
	return http.StatusOK, out, nil
}
