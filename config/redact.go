package config

import (
	"errors"
	"net/url"
	"regexp"
	"strings"
)

var kvPassword = regexp.MustCompile(`(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)

// Redact returns a DSN fit for logs and messages: the password (URL or
// key=value form) is replaced by xxxxx. Everything else is kept so the
// reader can still tell which database is meant.
func Redact(dsn string) string {
	if strings.Contains(dsn, "://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "[unparseable DSN redacted]"
		}
		if u.User != nil {
			if _, ok := u.User.Password(); ok {
				u.User = url.UserPassword(u.User.Username(), "xxxxx")
			}
		}
		q := u.Query()
		if q.Has("password") {
			q.Set("password", "xxxxx")
			u.RawQuery = q.Encode()
		}
		return u.String()
	}
	return kvPassword.ReplaceAllString(dsn, "${1}xxxxx")
}

// checkDSN says whether a DSN is something pgx could use: a postgres URL or
// key=value pairs naming a host or a database.
func checkDSN(dsn string) error {
	if strings.Contains(dsn, "://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return errors.New("not a URL") // err would echo the password
		}
		if u.Scheme != "postgres" && u.Scheme != "postgresql" {
			return errors.New("scheme must be postgres:// or postgresql://")
		}
		return nil
	}
	for _, f := range strings.Fields(dsn) {
		if k, _, ok := strings.Cut(f, "="); ok && (k == "host" || k == "dbname") {
			return nil
		}
	}
	return errors.New("neither a postgres:// URL nor key=value pairs with host or dbname")
}
