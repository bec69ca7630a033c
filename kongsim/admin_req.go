package kongsim

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// body is a decoded request body.
type body struct {
	m    map[string]any
	form bool // form-encoded: values are strings, arrays may be CSV
}

const nginx415 = "<html>\r\n<head><title>415 Unsupported Media Type</title></head>\r\n<body>\r\n<center><h1>415 Unsupported Media Type</h1></center>\r\n<hr><center>nginx/1.22.1</center>\r\n</body>\r\n</html>\r\n"

var errBadJSON = errors.New("Cannot parse JSON body")

type unsupportedMedia struct{}

func (unsupportedMedia) Error() string { return "unsupported media type" }

// readBody decodes JSON, form and multipart bodies like Kong's Admin API.
func readBody(r *http.Request) (body, error) {
	raw, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	if err != nil {
		return body{}, fmt.Errorf("reading body: %w", err)
	}
	ct := r.Header.Get("Content-Type")
	mt, params, _ := mime.ParseMediaType(ct)
	if len(bytes.TrimSpace(raw)) == 0 && (mt == "" || mt == "application/json") {
		return body{m: map[string]any{}}, nil
	}
	switch {
	case mt == "application/json" || (mt == "" && len(raw) > 0 && raw[0] == '{'):
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return body{}, errBadJSON
		}
		m, ok := v.(map[string]any)
		if !ok {
			return body{}, errBadJSON
		}
		return body{m: m}, nil
	case mt == "application/x-www-form-urlencoded" || mt == "":
		vals, err := url.ParseQuery(string(raw))
		if err != nil {
			return body{}, errBadJSON
		}
		return body{m: formToMap(vals), form: true}, nil
	case mt == "multipart/form-data":
		r.Body = io.NopCloser(bytes.NewReader(raw))
		r.Header.Set("Content-Type", mime.FormatMediaType(mt, params))
		if err := r.ParseMultipartForm(8 << 20); err != nil {
			return body{}, errBadJSON
		}
		return body{m: formToMap(r.MultipartForm.Value), form: true}, nil
	}
	return body{}, unsupportedMedia{}
}

// formToMap turns `a.b=1`, `a[]=x&a[]=y` and repeated keys into nested
// values.
func formToMap(vals map[string][]string) map[string]any {
	out := map[string]any{}
	keys := make([]string, 0, len(vals))
	for k := range vals {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		vs := vals[k]
		isArr := strings.HasSuffix(k, "[]")
		k = strings.TrimSuffix(k, "[]")
		var v any
		if isArr || len(vs) > 1 {
			arr := make([]any, len(vs))
			for i, s := range vs {
				arr[i] = s
			}
			v = arr
		} else {
			v = vs[0]
		}
		parts := strings.Split(k, ".")
		m := out
		for _, p := range parts[:len(parts)-1] {
			sub, ok := m[p].(map[string]any)
			if !ok {
				sub = map[string]any{}
				m[p] = sub
			}
			m = sub
		}
		m[parts[len(parts)-1]] = v
	}
	return out
}

// apiError is what a handler answers instead of an entity.
type apiError struct {
	status int
	body   any
}

func (e *apiError) Error() string { return fmt.Sprintf("admin error %d", e.status) }

func msgErr(status int, msg string) *apiError {
	return &apiError{status, map[string]any{"message": msg}}
}

var errNotFound = msgErr(http.StatusNotFound, "Not found")

// newDAOError builds the new-DAO error object; 0.14.1 adds the strategy.
func (n *Node) newDAOError(status, code int, name, message string, fields any) *apiError {
	b := map[string]any{"code": code, "name": name, "message": message}
	if fields != nil {
		b["fields"] = fields
	}
	if n.version == V0141 {
		b["strategy"] = "postgres"
	}
	return &apiError{status, b}
}

// schemaViolation formats Kong's schema violation: one field → "(f: m)",
// several → "N schema violations (a: x; b: y)".
func (n *Node) schemaViolation(fields map[string]any) *apiError {
	flat := flattenErrors("", fields)
	sort.Strings(flat)
	msg := ""
	if len(flat) == 1 {
		msg = "schema violation (" + flat[0] + ")"
	} else {
		msg = fmt.Sprintf("%d schema violations (%s)", len(flat), strings.Join(flat, "; "))
	}
	return n.newDAOError(http.StatusBadRequest, 2, "schema violation", msg, fields)
}

func flattenErrors(prefix string, fields map[string]any) []string {
	var out []string
	for k, v := range fields {
		key := k
		if prefix != "" {
			key = prefix + "." + k
		}
		switch t := v.(type) {
		case map[string]any:
			out = append(out, flattenErrors(key, t)...)
		case string:
			if k == "@entity" {
				out = append(out, t)
			} else {
				out = append(out, key+": "+t)
			}
		}
	}
	return out
}

func (n *Node) notFoundByKey(idOrName string, nameField string) *apiError {
	if isUUID(idOrName) {
		return n.newDAOError(http.StatusNotFound, 6, "not found",
			fmt.Sprintf("could not find the entity with primary key '{id=\"%s\"}'", idOrName), map[string]any{"id": idOrName})
	}
	return n.newDAOError(http.StatusNotFound, 6, "not found",
		fmt.Sprintf("could not find the entity with '{%s=\"%s\"}'", nameField, idOrName), map[string]any{nameField: idOrName})
}

func (n *Node) uniqueViolation(fields map[string]any) *apiError {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, k+"="+luaRepr(fields[k]))
	}
	return n.newDAOError(http.StatusConflict, 5, "unique constraint violation",
		"UNIQUE violation detected on '{"+strings.Join(parts, ",")+"}'", fields)
}

func luaRepr(v any) string {
	switch t := v.(type) {
	case nil:
		return "null"
	case string:
		return strconv.Quote(t)
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var parts []string
		for _, k := range keys {
			parts = append(parts, k+"="+luaRepr(t[k]))
		}
		return "{" + strings.Join(parts, ",") + "}"
	}
	return fmt.Sprint(v)
}

func (n *Node) fkViolation(service string) *apiError {
	return n.newDAOError(http.StatusBadRequest, 4, "foreign key violation",
		fmt.Sprintf("the foreign key '{id=\"%s\"}' does not reference an existing 'services' entity.", service),
		map[string]any{"service": map[string]any{"id": service}})
}

func pgCode(err error) (string, string) {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code, pe.ConstraintName
	}
	return "", ""
}

// page describes a list request.
type page struct {
	size   int
	offset string
}

// parsePage reads size/offset per DAO generation.
func (n *Node) parsePage(q url.Values, oldDAO bool) (page, *apiError) {
	p := page{size: 100, offset: q.Get("offset")}
	if s, ok := q["size"]; ok {
		v, err := strconv.Atoi(s[0])
		if n.version.Is10() && !oldDAO {
			if err != nil {
				return p, n.newDAOError(http.StatusBadRequest, 9, "invalid size", "size must be a number", nil)
			}
			if v < 1 || v > 1000 {
				return p, n.newDAOError(http.StatusBadRequest, 9, "invalid size", "size must be an integer between 1 and 1000", nil)
			}
		} else if err != nil {
			return p, msgErr(http.StatusInternalServerError, n.unexpectedMessage())
		}
		if v > 1000 {
			v = 1000
		}
		if v < 1 {
			v = 1
		}
		p.size = v
	}
	return p, nil
}

func encodeOffset(id string) string {
	b, _ := json.Marshal([]string{id})
	return base64.RawStdEncoding.EncodeToString(b)
}

func decodeOffset(s string) (string, bool) {
	s = strings.TrimRight(s, "=")
	b, err := base64.RawStdEncoding.DecodeString(s)
	if err != nil {
		return "", false
	}
	var ids []string
	if err := json.Unmarshal(b, &ids); err != nil || len(ids) != 1 || !isUUID(ids[0]) {
		return "", false
	}
	return ids[0], true
}

func (n *Node) invalidOffset(s string) *apiError {
	return n.newDAOError(http.StatusBadRequest, 7, "invalid offset", "'"+s+"' is not a valid offset", nil)
}
