package kongsim

import (
	"net/http"
	"strings"
)

// requestTransformerAccess is request-transformer's access phase (priority
// 801) for headers and the query string, in Kong's order: remove, rename,
// replace, add (only when absent), append. Body edits are not simulated.
func requestTransformerAccess(c *reqCtx, pl *Plugin) *kongResponse {
	cfg := pl.Config
	ops := func(op string) (headers, query []string) {
		rec := cfgRecord(cfg, op)
		if rec == nil {
			return nil, nil
		}
		return cfgStrings(rec, "headers"), cfgStrings(rec, "querystring")
	}
	h := c.upHeader
	rmH, rmQ := ops("remove")
	for _, name := range rmH {
		h.Del(strings.TrimSpace(name))
	}
	if len(rmQ) > 0 {
		q := c.editQuery()
		for _, name := range rmQ {
			q.Del(strings.TrimSpace(name))
		}
	}
	rnH, rnQ := ops("rename")
	for _, e := range rnH {
		if from, to, ok := splitColonPair(e); ok && h.Get(from) != "" {
			h[http.CanonicalHeaderKey(to)] = h.Values(from)
			h.Del(from)
		}
	}
	if len(rnQ) > 0 {
		q := c.editQuery()
		for _, e := range rnQ {
			if from, to, ok := splitColonPair(e); ok && q.Has(from) {
				q[to] = q[from]
				q.Del(from)
			}
		}
	}
	rpH, rpQ := ops("replace")
	for _, e := range rpH {
		if name, val, ok := splitColonPair(e); ok && h.Get(name) != "" {
			h.Set(name, val)
		}
	}
	if len(rpQ) > 0 {
		q := c.editQuery()
		for _, e := range rpQ {
			if name, val, ok := splitColonPair(e); ok && q.Has(name) {
				q.Set(name, val)
			}
		}
	}
	adH, adQ := ops("add")
	for _, e := range adH {
		if name, val, ok := splitColonPair(e); ok && h.Get(name) == "" {
			h.Set(name, val)
		}
	}
	if len(adQ) > 0 {
		q := c.editQuery()
		for _, e := range adQ {
			if name, val, ok := splitColonPair(e); ok && !q.Has(name) {
				q.Set(name, val)
			}
		}
	}
	apH, apQ := ops("append")
	for _, e := range apH {
		if name, val, ok := splitColonPair(e); ok {
			h.Add(name, val)
		}
	}
	if len(apQ) > 0 {
		q := c.editQuery()
		for _, e := range apQ {
			if name, val, ok := splitColonPair(e); ok {
				q.Add(name, val)
			}
		}
	}
	return nil
}

// responseTransformerHeaders is response-transformer's header filter
// (priority 800) for headers: remove, replace (when present), add (when
// absent), append. JSON body edits are not simulated.
func responseTransformerHeaders(_ *reqCtx, pl *Plugin, h http.Header) {
	cfg := pl.Config
	headers := func(op string) []string {
		if rec := cfgRecord(cfg, op); rec != nil {
			return cfgStrings(rec, "headers")
		}
		return nil
	}
	for _, name := range headers("remove") {
		h.Del(strings.TrimSpace(name))
	}
	for _, e := range headers("replace") {
		if name, val, ok := splitColonPair(e); ok && h.Get(name) != "" {
			h.Set(name, val)
		}
	}
	for _, e := range headers("add") {
		if name, val, ok := splitColonPair(e); ok && h.Get(name) == "" {
			h.Set(name, val)
		}
	}
	for _, e := range headers("append") {
		if name, val, ok := splitColonPair(e); ok {
			h.Add(name, val)
		}
	}
}
