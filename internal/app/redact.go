package app

import (
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"sort"
	"strings"

	"github.com/kongbot/kongbot/config"
)

// Redactor keeps secrets out of log lines. It knows every secret value the
// config names (read from the environment once), and the password of every
// DSN among them, and replaces them wherever they appear in a record: the
// message, string attributes, errors and other values once formatted. Keys
// that name a secret (token, secret, password, dsn) are redacted whatever
// their value; a DSN keeps everything but its password.
type Redactor struct {
	secrets []string // longest first, so a DSN goes before its password
}

// minSecret is the shortest value treated as a secret: shorter ones would
// blank out ordinary words.
const minSecret = 6

// NewRedactor collects the secrets cfg names from the environment.
func NewRedactor(cfg *config.Config) *Redactor {
	var vals []string
	add := func(env string) {
		if env == "" {
			return
		}
		if v := os.Getenv(env); v != "" {
			vals = append(vals, v)
		}
	}
	add(cfg.Slack.BotTokenEnv)
	add(cfg.Slack.AppTokenEnv)
	add(cfg.Slack.SigningSecretEnv)
	for _, g := range cfg.Gateways {
		add(g.Datastore.DSNEnv)
		add(g.AdminTokenEnv)
	}
	return NewRedactorFor(vals...)
}

// NewRedactorFor redacts the given values (and the passwords of DSNs among them).
func NewRedactorFor(values ...string) *Redactor {
	seen := map[string]bool{}
	r := &Redactor{}
	add := func(s string) {
		if len(s) >= minSecret && !seen[s] {
			seen[s] = true
			r.secrets = append(r.secrets, s)
		}
	}
	for _, v := range values {
		add(v)
		if p := dsnPassword(v); p != "" {
			add(p)
			add(url.QueryEscape(p))
			add(url.PathEscape(p))
		}
	}
	sort.Slice(r.secrets, func(i, j int) bool { return len(r.secrets[i]) > len(r.secrets[j]) })
	return r
}

func dsnPassword(dsn string) string {
	if strings.Contains(dsn, "://") {
		if u, err := url.Parse(dsn); err == nil && u.User != nil {
			if p, ok := u.User.Password(); ok {
				return p
			}
		}
		if u, err := url.Parse(dsn); err == nil {
			return u.Query().Get("password")
		}
		return ""
	}
	for _, f := range strings.Fields(dsn) {
		if v, ok := strings.CutPrefix(f, "password="); ok {
			return strings.Trim(v, "'")
		}
	}
	return ""
}

// Scrub replaces every known secret in s.
func (r *Redactor) Scrub(s string) string {
	for _, sec := range r.secrets {
		if strings.Contains(s, sec) {
			s = strings.ReplaceAll(s, sec, "[redacted]")
		}
	}
	return s
}

// Secrets returns the values the redactor hides (for tests).
func (r *Redactor) Secrets() []string { return append([]string(nil), r.secrets...) }

var secretKeys = []string{"token", "secret", "password", "passwd", "dsn", "authorization"}

func secretKey(k string) bool {
	k = strings.ToLower(k)
	for _, s := range secretKeys {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}

// ReplaceAttr is a slog.HandlerOptions.ReplaceAttr that redacts.
func (r *Redactor) ReplaceAttr(_ []string, a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		s := r.Scrub(v.String())
		if secretKey(a.Key) {
			s = redactNamed(a.Key, s)
		}
		return slog.String(a.Key, s)
	case slog.KindAny:
		var s string
		switch x := v.Any().(type) {
		case error:
			s = x.Error()
		case fmt.Stringer:
			s = x.String()
		case []byte:
			s = string(x)
		default:
			if secretKey(a.Key) {
				return slog.String(a.Key, "[redacted]")
			}
			s = fmt.Sprint(x)
			if r.Scrub(s) == s {
				return a // keep structured values that hold no secret
			}
		}
		s = r.Scrub(s)
		if secretKey(a.Key) {
			s = redactNamed(a.Key, s)
		}
		return slog.String(a.Key, s)
	}
	return a
}

// redactNamed redacts a value whose key names a secret: a DSN keeps all but
// its password so the reader can still tell which database is meant.
func redactNamed(key, s string) string {
	if strings.Contains(strings.ToLower(key), "dsn") && (strings.Contains(s, "://") || strings.Contains(s, "=")) {
		return config.Redact(s)
	}
	if s == "" || s == "[redacted]" {
		return s
	}
	return "[redacted]"
}

// NewLogger returns a JSON logger to w at level that redacts with r.
func NewLogger(w io.Writer, level slog.Leveler, r *Redactor) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: r.ReplaceAttr}))
}
