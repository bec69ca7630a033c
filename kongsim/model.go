// Package kongsim provides a simulated Kong node (0.13.1, 0.14.1, 1.0.3) on a
// real PostgreSQL datastore: the Admin API of each version, the proxy, the
// `kong migrations` CLI and the node cache fed by cluster_events. It is the
// test and demo double for Kong; the bot's production path never uses it.
//
// Contract for the proxy side (proxy*.go, router*.go, plugin_*.go):
//
//   - The node calls newProxyHandler(n) once in Start and mounts the result on
//     the proxy listener. The handler reads entities only through n.View(ctx),
//     which returns the node's cached ProxyView: it is rebuilt from Postgres
//     lazily after an invalidation (own Admin API writes at once, other nodes'
//     writes when cluster_events polling sees them, every DBUpdateFrequency).
//     When a rebuild fails (schema moved, DB down) the old view keeps serving,
//     as Kong's cache does.
//   - Everything a ProxyView returns is immutable; callers must not modify
//     slices or maps they receive. Cache one view per request, not longer.
//   - Plugins() already applies what the node would run: only plugins this
//     node loads (Options.Plugins), and on 1.0.3 only names present in the
//     node's plugins_map (see §8.2 of kong-reference.md). Disabled plugins are
//     included with Enabled=false; the runtime skips them.
//   - Config values are exactly what the datastore holds (JSON decoded with
//     UseNumber, so numbers are json.Number). A config written through 1.0.3
//     holds explicit nils ("body": nil) that 0.14.1's runtime must treat as
//     Lua's cjson.null (it fails with 500), so check for presence with
//     `v, ok := cfg["body"]` and nil-ness separately.
//   - n.Fault() reports the admin/proxy fault settings (faults*.go).
package kongsim

import (
	"encoding/json"
	"fmt"
	"time"
)

// Version is a simulated Kong release.
type Version string

// The simulated releases.
const (
	V0131 Version = "0.13.1"
	V0141 Version = "0.14.1"
	V103  Version = "1.0.3"
)

// ParseVersion accepts exactly the three simulated releases.
func ParseVersion(s string) (Version, error) {
	switch Version(s) {
	case V0131, V0141, V103:
		return Version(s), nil
	}
	return "", fmt.Errorf("unsupported Kong version %q (want 0.13.1, 0.14.1 or 1.0.3)", s)
}

// Is10 reports whether v is a 1.x release (new DAO for plugins, no APIs).
func (v Version) Is10() bool { return v == V103 }

// API is a 0.13/0.14 API entity (table apis).
type API struct {
	ID                     string
	Name                   string
	CreatedAt              time.Time // ms precision
	Hosts                  []string
	URIs                   []string
	Methods                []string
	UpstreamURL            string
	StripURI               bool
	PreserveHost           bool
	Retries                int
	UpstreamConnectTimeout int
	UpstreamSendTimeout    int
	UpstreamReadTimeout    int
	HTTPSOnly              bool
	HTTPIfTerminated       bool
}

// Service is a service entity (all versions).
type Service struct {
	ID             string
	Name           *string
	CreatedAt      time.Time
	UpdatedAt      time.Time
	Retries        int
	Protocol       string
	Host           string
	Port           int
	Path           *string
	ConnectTimeout int
	WriteTimeout   int
	ReadTimeout    int
}

// Route is a route entity. Name, SNIs, Sources and Destinations exist on
// 1.0.3 only (nil elsewhere).
type Route struct {
	ID            string
	Name          *string
	CreatedAt     time.Time
	UpdatedAt     time.Time
	Protocols     []string
	Methods       []string
	Hosts         []string
	Paths         []string
	RegexPriority int
	StripPath     bool
	PreserveHost  bool
	ServiceID     string
	SNIs          []string
	Sources       []json.RawMessage
	Destinations  []json.RawMessage
}

// Plugin is a plugin row. Scope ids are "" when unset. RunOn is "" when the
// column is NULL (rows written by 0.x; 1.0.3 reports them as "first").
type Plugin struct {
	ID         string
	Name       string
	CreatedAt  time.Time
	Config     map[string]any
	Enabled    bool
	APIID      string
	ServiceID  string
	RouteID    string
	ConsumerID string
	RunOn      string
}

// Global reports whether the plugin has no api/service/route/consumer scope.
func (p Plugin) Global() bool {
	return p.APIID == "" && p.ServiceID == "" && p.RouteID == "" && p.ConsumerID == ""
}

// Consumer is a consumer entity.
type Consumer struct {
	ID        string
	Username  *string
	CustomID  *string
	CreatedAt time.Time
}

// KeyAuthCredential is a row of keyauth_credentials.
type KeyAuthCredential struct {
	ID         string
	ConsumerID string
	Key        string
	CreatedAt  time.Time
}

// ProxyView is the node's cached view of the entities the proxy needs. See
// the package comment for the contract.
type ProxyView interface {
	// Version is the simulated release of the node.
	Version() Version
	// APIs returns the APIs ordered by created_at (empty on 1.0.3).
	APIs() []API
	// Routes returns every route, ordered by regex_priority desc then
	// created_at.
	Routes() []Route
	// Service looks a service up by id.
	Service(id string) (Service, bool)
	// Plugins returns the plugins this node would run (see package doc).
	Plugins() []Plugin
	// Consumer looks a consumer up by id.
	Consumer(id string) (Consumer, bool)
	// ConsumerByKey resolves a key-auth key to its credential and consumer.
	ConsumerByKey(key string) (KeyAuthCredential, Consumer, bool)
	// PluginLoaded reports whether this node loads the named plugin.
	PluginLoaded(name string) bool
}
