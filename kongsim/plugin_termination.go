package kongsim

// requestTerminationAccess is request-termination's access phase (priority
// 2) as each version runs it (reference §5.2, §8.2).
func requestTerminationAccess(c *reqCtx, pl *Plugin) *kongResponse {
	cfg := pl.Config
	v := c.p.version
	status := cfgInt(cfg, "status_code", 503)
	bodyV, bodyKey := cfg["body"]
	if v.Is10() {
		if body, ok := bodyV.(string); ok && body != "" {
			ct, _ := cfgString(cfg, "content_type")
			return &kongResponse{status: status, body: []byte(body), contentType: ct}
		}
		return terminationMessage(c, cfg, status)
	}
	if bodyKey {
		body, isString := bodyV.(string)
		ctV, ctKey := cfg["content_type"]
		_, ctString := ctV.(string)
		if !isString || (ctKey && !ctString) {
			// A config written through 1.0 holds JSON nulls, which 0.x's
			// handler sees as a truthy cjson.null and fails on
			// (`attempt to get length of local 'content' (a userdata
			// value)`): nginx answers with its 500 error page.
			c.p.log.Error("request-termination/handler.lua:43: attempt to get length of local 'content' (a userdata value)",
				"plugin_id", pl.ID)
			return &kongResponse{status: 500, errorPage: true, close: true}
		}
		ct, _ := cfgString(cfg, "content_type")
		if ct == "" {
			ct = "application/json; charset=utf-8"
		}
		if v == V0131 {
			body += "\n" // ngx.say
		}
		return &kongResponse{status: status, body: []byte(body), contentType: ct}
	}
	return terminationMessage(c, cfg, status)
}

func terminationMessage(c *reqCtx, cfg map[string]any, status int) *kongResponse {
	msg, ok := cfgString(cfg, "message")
	if !ok {
		if m, has := defaultMessage(c.p.version, status); has {
			msg = m
		}
	}
	if msg == "" {
		return &kongResponse{status: status, noBody: true}
	}
	return &kongResponse{status: status, message: msg}
}
