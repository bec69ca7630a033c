package kong

import (
	"net/url"
	"strings"
)

// dsnPassword extracts the password of a URL or key=value DSN.
func dsnPassword(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		if p, ok := u.User.Password(); ok {
			return p
		}
	}
	for _, f := range strings.Fields(dsn) {
		if v, ok := strings.CutPrefix(f, "password="); ok {
			return strings.Trim(v, "'")
		}
	}
	return ""
}

// redactSecrets replaces every given secret (and the password of every DSN
// among them) in s.
func redactSecrets(s string, secrets ...string) string {
	for _, sec := range secrets {
		if p := dsnPassword(sec); len(p) >= 3 {
			s = strings.ReplaceAll(s, p, "xxxxx")
			s = strings.ReplaceAll(s, url.QueryEscape(p), "xxxxx")
		}
		if len(sec) >= 3 {
			s = strings.ReplaceAll(s, sec, "[redacted]")
		}
	}
	return s
}
