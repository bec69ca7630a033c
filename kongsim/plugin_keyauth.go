package kongsim

import (
	"net/http"
	"net/url"
)

// keyAuthAccess is key-auth's access phase (priority 1000): the key from a
// header or the query string (config.key_names, default apikey), 401 without
// one, 403 for an unknown one, the consumer's X-Consumer-* headers upstream.
func keyAuthAccess(c *reqCtx, pl *Plugin) *kongResponse {
	cfg := pl.Config
	if c.in.Method == http.MethodOptions && !cfgBool(cfg, "run_on_preflight", true) {
		return nil
	}
	anonymous, _ := cfgString(cfg, "anonymous")
	if c.credential != "" && anonymous != "" {
		return nil // another auth plugin already identified the client
	}
	names := cfgStrings(cfg, "key_names")
	if len(names) == 0 {
		names = []string{"apikey"}
	}
	hide := cfgBool(cfg, "hide_credentials", false)
	var (
		key   string
		found bool
	)
	query, _ := url.ParseQuery(c.rawQuery)
	for _, name := range names {
		if vals := c.in.Header.Values(name); len(vals) > 0 {
			if len(vals) > 1 {
				return keyAuthFail(c, anonymous, &kongResponse{status: 401, message: "Duplicate API key found"})
			}
			key, found = vals[0], true
			if hide {
				c.upHeader.Del(name)
			}
			break
		}
		if vals, ok := query[name]; ok {
			if len(vals) > 1 {
				return keyAuthFail(c, anonymous, &kongResponse{status: 401, message: "Duplicate API key found"})
			}
			key, found = vals[0], true
			if hide {
				c.editQuery().Del(name)
			}
			break
		}
	}
	if !found || key == "" {
		h := http.Header{}
		h.Set("WWW-Authenticate", `Key realm="kong"`)
		return keyAuthFail(c, anonymous, &kongResponse{status: 401, message: "No API key found in request", header: h})
	}
	cred, consumer, ok := c.view.ConsumerByKey(key)
	if !ok {
		return keyAuthFail(c, anonymous, &kongResponse{status: 403, message: "Invalid authentication credentials"})
	}
	setConsumer(c, &consumer, cred.ID, false)
	return nil
}

// keyAuthFail lets an anonymous consumer through when configured.
func keyAuthFail(c *reqCtx, anonymous string, resp *kongResponse) *kongResponse {
	if anonymous == "" {
		return resp
	}
	consumer, ok := c.view.Consumer(anonymous)
	if !ok {
		c.p.log.Error("key-auth: anonymous consumer not found", "consumer", anonymous)
		return &kongResponse{status: 500, message: "An unexpected error occurred"}
	}
	setConsumer(c, &consumer, "", true)
	return nil
}

// setConsumer records the authenticated consumer and sets the headers every
// 0.x/1.0 auth plugin sends upstream.
func setConsumer(c *reqCtx, consumer *Consumer, credentialID string, anonymous bool) {
	c.consumer = consumer
	c.credential = credentialID
	h := c.upHeader
	h["X-Consumer-ID"] = []string{consumer.ID}
	delete(h, "X-Consumer-Id")
	if consumer.CustomID != nil {
		h["X-Consumer-Custom-ID"] = []string{*consumer.CustomID}
	} else {
		delete(h, "X-Consumer-Custom-ID")
	}
	delete(h, "X-Consumer-Custom-Id")
	if consumer.Username != nil {
		h.Set("X-Consumer-Username", *consumer.Username)
	} else {
		h.Del("X-Consumer-Username")
	}
	if anonymous {
		h.Set("X-Anonymous-Consumer", "true")
	} else {
		h.Del("X-Anonymous-Consumer")
	}
}
