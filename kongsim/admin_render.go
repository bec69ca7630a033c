package kongsim

import (
	"encoding/json"
)

func ms(t interface{ UnixMilli() int64 }) int64 { return t.UnixMilli() }

func renderAPI(a API) map[string]any {
	m := map[string]any{
		"id": a.ID, "name": a.Name, "created_at": a.CreatedAt.UnixMilli(), "upstream_url": a.UpstreamURL,
		"strip_uri": a.StripURI, "preserve_host": a.PreserveHost, "retries": a.Retries,
		"upstream_connect_timeout": a.UpstreamConnectTimeout, "upstream_send_timeout": a.UpstreamSendTimeout,
		"upstream_read_timeout": a.UpstreamReadTimeout, "https_only": a.HTTPSOnly, "http_if_terminated": a.HTTPIfTerminated,
	}
	if len(a.Hosts) > 0 {
		m["hosts"] = a.Hosts
	}
	if len(a.URIs) > 0 {
		m["uris"] = a.URIs
	}
	if len(a.Methods) > 0 {
		m["methods"] = a.Methods
	}
	return m
}

func nullStr(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}

func nullArr(a []string) any {
	if a == nil {
		return nil
	}
	return a
}

func renderService(s Service) map[string]any {
	return map[string]any{
		"id": s.ID, "name": nullStr(s.Name), "created_at": s.CreatedAt.Unix(), "updated_at": s.UpdatedAt.Unix(),
		"retries": s.Retries, "protocol": s.Protocol, "host": s.Host, "port": s.Port, "path": nullStr(s.Path),
		"connect_timeout": s.ConnectTimeout, "write_timeout": s.WriteTimeout, "read_timeout": s.ReadTimeout,
	}
}

// renderRoute renders a route; omitNull reproduces 0.14.1's nested
// /services/{x}/routes, which leaves null fields out.
func (n *Node) renderRoute(r Route, omitNull bool) map[string]any {
	m := map[string]any{
		"id": r.ID, "created_at": r.CreatedAt.Unix(), "updated_at": r.UpdatedAt.Unix(),
		"protocols": nullArr(r.Protocols), "methods": nullArr(r.Methods), "hosts": nullArr(r.Hosts),
		"paths": nullArr(r.Paths), "regex_priority": r.RegexPriority, "strip_path": r.StripPath,
		"preserve_host": r.PreserveHost, "service": map[string]any{"id": r.ServiceID},
	}
	if n.version.Is10() {
		m["name"] = nullStr(r.Name)
		m["snis"] = nullArr(r.SNIs)
		m["sources"] = rawArr(r.Sources)
		m["destinations"] = rawArr(r.Destinations)
	}
	if omitNull {
		for k, v := range m {
			if v == nil {
				delete(m, k)
			}
		}
	}
	return m
}

func rawArr(a []json.RawMessage) any {
	if a == nil {
		return nil
	}
	out := make([]any, len(a))
	for i, r := range a {
		v, _ := decodeAny(r)
		out[i] = v
	}
	return out
}

func fk(id string) any {
	if id == "" {
		return nil
	}
	return map[string]any{"id": id}
}

func (n *Node) renderPlugin(p Plugin) map[string]any {
	if n.version.Is10() {
		cfg := p.Config
		if s, ok := pluginSchemas(n.version)[p.Name]; ok {
			cfg = fillNulls(s.fields, cfg)
		}
		runOn := p.RunOn
		if runOn == "" {
			runOn = "first"
		}
		return map[string]any{
			"id": p.ID, "name": p.Name, "created_at": p.CreatedAt.Unix(), "config": cfg, "enabled": p.Enabled,
			"run_on": runOn, "route": fk(p.RouteID), "service": fk(p.ServiceID), "consumer": fk(p.ConsumerID),
		}
	}
	m := map[string]any{
		"id": p.ID, "name": p.Name, "created_at": p.CreatedAt.Unix() * 1000, "config": legacyConfigJSON(p.Config),
		"enabled": p.Enabled,
	}
	for k, v := range map[string]string{"api_id": p.APIID, "route_id": p.RouteID, "service_id": p.ServiceID, "consumer_id": p.ConsumerID} {
		if v != "" {
			m[k] = v
		}
	}
	return m
}

func (n *Node) renderConsumer(c Consumer) map[string]any {
	if n.version == V0131 {
		m := map[string]any{"id": c.ID, "created_at": c.CreatedAt.Unix() * 1000}
		if c.Username != nil {
			m["username"] = *c.Username
		}
		if c.CustomID != nil {
			m["custom_id"] = *c.CustomID
		}
		return m
	}
	return map[string]any{"id": c.ID, "created_at": c.CreatedAt.Unix(), "username": nullStr(c.Username), "custom_id": nullStr(c.CustomID)}
}

func (n *Node) renderKey(k KeyAuthCredential) map[string]any {
	if n.version.Is10() {
		return map[string]any{"id": k.ID, "created_at": k.CreatedAt.Unix(), "consumer": fk(k.ConsumerID), "key": k.Key}
	}
	return map[string]any{"id": k.ID, "created_at": k.CreatedAt.Unix() * 1000, "consumer_id": k.ConsumerID, "key": k.Key}
}
