package kongsim

import (
	"fmt"
	"sort"
	"strings"
)

// Bundled plugin lists of kong/constants.lua (reference §5.1).
var (
	bundled0131 = []string{"jwt", "acl", "correlation-id", "cors", "oauth2", "tcp-log", "udp-log",
		"file-log", "http-log", "key-auth", "hmac-auth", "basic-auth", "ip-restriction",
		"request-transformer", "response-transformer", "request-size-limiting", "rate-limiting",
		"response-ratelimiting", "syslog", "loggly", "datadog", "runscope", "ldap-auth", "statsd",
		"bot-detection", "aws-lambda", "request-termination"}
	bundled0141 = []string{"jwt", "acl", "correlation-id", "cors", "oauth2", "tcp-log", "udp-log",
		"file-log", "http-log", "key-auth", "hmac-auth", "basic-auth", "ip-restriction",
		"request-transformer", "response-transformer", "request-size-limiting", "rate-limiting",
		"response-ratelimiting", "syslog", "loggly", "datadog", "ldap-auth", "statsd",
		"bot-detection", "aws-lambda", "request-termination", "azure-functions", "zipkin",
		"pre-function", "post-function", "prometheus"}
)

// knownPlugins are the plugins kongsim can load beyond the bundled ones.
var knownCustomPlugins = map[string]bool{"okta-auth": true, "galileo": true}

// BundledPlugins returns the bundled plugin names of a version.
func BundledPlugins(v Version) []string {
	if v == V0131 {
		return append([]string(nil), bundled0131...)
	}
	return append([]string(nil), bundled0141...)
}

// loadedPlugins resolves a `plugins` setting ("bundled", names) to the set a
// node of version v loads. 0.13.1 has no `plugins` setting: it loads all
// bundled plugins plus the named extras (its custom_plugins).
func loadedPlugins(v Version, setting []string) (map[string]bool, error) {
	if len(setting) == 0 {
		setting = []string{"bundled"}
	}
	out := map[string]bool{}
	if v == V0131 {
		for _, p := range bundled0131 {
			out[p] = true
		}
	}
	bundled := map[string]bool{}
	for _, p := range BundledPlugins(v) {
		bundled[p] = true
	}
	for _, s := range setting {
		s = strings.TrimSpace(s)
		switch {
		case s == "":
		case s == "bundled":
			for p := range bundled {
				out[p] = true
			}
		case s == "off" && v != V0131:
		case bundled[s] || knownCustomPlugins[s]:
			if s == "galileo" && v == V103 {
				return nil, fmt.Errorf("galileo plugin is enabled but not installed")
			}
			out[s] = true
		default:
			return nil, fmt.Errorf("%s plugin is enabled but not installed", s)
		}
	}
	return out, nil
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
