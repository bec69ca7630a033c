package kongsim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// okta-auth as of its v1.1+ releases (reference §7): a Bearer JWT from the
// Authorization header, verified against the JWKS of the configured
// authorization server (signature, exp, nbf; no iss/aud check), else 401
// {"message":"Unauthorized"}.

var bearerJWT = regexp.MustCompile(`^[Bb]earer ([A-Za-z0-9\-_]+\.[A-Za-z0-9\-_]+\.[A-Za-z0-9\-_]+)$`)

// oktaClaimHeaders are the claims the plugin copies upstream as OKTA-<claim>.
var oktaClaimHeaders = []string{"cid", "sub", "scp", "groups"}

const jwksFetchTimeout = 5 * time.Second

func oktaAuthAccess(c *reqCtx, pl *Plugin) *kongResponse {
	unauthorized := &kongResponse{status: 401, message: "Unauthorized"}
	m := bearerJWT.FindStringSubmatch(c.in.Header.Get("Authorization"))
	if m == nil {
		return unauthorized
	}
	server, _ := cfgString(pl.Config, "authorization_server")
	apiVersion, ok := cfgString(pl.Config, "api_version")
	if !ok || apiVersion == "" {
		apiVersion = "v1"
	}
	claims, err := c.p.jwks.verify(c.in.Context(), strings.TrimRight(server, "/")+"/"+apiVersion+"/keys", m[1])
	if err != nil {
		c.p.log.Info("okta-auth: token rejected", "err", err)
		return unauthorized
	}
	h := c.upHeader
	for k := range h {
		if strings.HasPrefix(strings.ToLower(k), "okta-") {
			delete(h, k)
		}
	}
	delete(h, "Authorization")
	for _, name := range oktaClaimHeaders {
		v, ok := claims[name]
		if !ok || v == nil {
			continue
		}
		h["OKTA-"+name] = []string{claimString(v)}
	}
	return nil
}

func claimString(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case []any:
		parts := make([]string, 0, len(t))
		for _, e := range t {
			parts = append(parts, fmt.Sprint(e))
		}
		return strings.Join(parts, ",")
	}
	return fmt.Sprint(v)
}

// jwksCache keeps each authorization server's key set. The plugin caches
// the key until restart; kongsim refetches when a token names a key id it
// has not seen, so key rotation in tests does not need a node restart.
type jwksCache struct {
	mu     sync.Mutex
	sets   map[string]*jose.JSONWebKeySet
	client *http.Client
}

func newJWKSCache() *jwksCache {
	return &jwksCache{sets: map[string]*jose.JSONWebKeySet{}, client: &http.Client{Timeout: jwksFetchTimeout}}
}

var errUnknownKey = errors.New("no key for the token's kid")

func (j *jwksCache) verify(ctx context.Context, keysURL, token string) (map[string]any, error) {
	tok, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512})
	if err != nil {
		return nil, fmt.Errorf("parse token: %w", err)
	}
	kid := ""
	if len(tok.Headers) > 0 {
		kid = tok.Headers[0].KeyID
	}
	key, err := j.key(ctx, keysURL, kid, false)
	if errors.Is(err, errUnknownKey) {
		key, err = j.key(ctx, keysURL, kid, true)
	}
	if err != nil {
		return nil, err
	}
	var std jwt.Claims
	all := map[string]any{}
	if err := tok.Claims(key.Key, &std, &all); err != nil {
		return nil, fmt.Errorf("verify token: %w", err)
	}
	now := time.Now()
	if std.Expiry != nil && now.After(std.Expiry.Time()) {
		return nil, jwt.ErrExpired
	}
	if std.NotBefore != nil && now.Before(std.NotBefore.Time()) {
		return nil, jwt.ErrNotValidYet
	}
	return all, nil
}

func (j *jwksCache) key(ctx context.Context, keysURL, kid string, refresh bool) (*jose.JSONWebKey, error) {
	j.mu.Lock()
	set := j.sets[keysURL]
	j.mu.Unlock()
	if set == nil || refresh {
		fetched, err := j.fetch(ctx, keysURL)
		if err != nil {
			return nil, err
		}
		j.mu.Lock()
		j.sets[keysURL] = fetched
		j.mu.Unlock()
		set = fetched
	}
	for i := range set.Keys {
		k := &set.Keys[i]
		if kid == "" || k.KeyID == kid {
			return k, nil
		}
	}
	return nil, errUnknownKey
}

func (j *jwksCache) fetch(ctx context.Context, keysURL string) (*jose.JSONWebKeySet, error) {
	ctx, cancel := context.WithTimeout(ctx, jwksFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, keysURL, nil)
	if err != nil {
		return nil, fmt.Errorf("jwks url %q: %w", keysURL, err)
	}
	resp, err := j.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch jwks: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch jwks: %s answered %d", keysURL, resp.StatusCode)
	}
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&set); err != nil {
		return nil, fmt.Errorf("decode jwks: %w", err)
	}
	return &set, nil
}

func init() {
	// The Admin API runs the check when an okta-auth plugin is written.
	RegisterConfigCheck("okta-auth", func(ctx context.Context, _ Version, cfg map[string]any) string {
		if err := CheckOktaAuthServer(ctx, cfg); err != nil {
			return err.Error()
		}
		return ""
	})
}

// CheckOktaAuthServer is okta-auth's schema self_check, for the Admin API
// to call when an okta-auth plugin is created or updated: unless
// check_auth_server is false, it POSTs a dummy token to
// <authorization_server>/<api_version>/introspect with the client's Basic
// credentials and fails unless the server answers 200. The error text is the
// plugin's message.
func CheckOktaAuthServer(ctx context.Context, cfg map[string]any) error {
	if !cfgBool(cfg, "check_auth_server", true) {
		return nil
	}
	server, _ := cfgString(cfg, "authorization_server")
	apiVersion, ok := cfgString(cfg, "api_version")
	if !ok || apiVersion == "" {
		apiVersion = "v1"
	}
	id, _ := cfgString(cfg, "client_id")
	secret, _ := cfgString(cfg, "client_secret")
	fail := fmt.Errorf("Could not access authorization server (%s) with the specified configuration", server) //nolint:staticcheck // Kong's message, capitalised
	ctx, cancel := context.WithTimeout(ctx, jwksFetchTimeout)
	defer cancel()
	form := url.Values{"token": {"token"}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(server, "/")+"/"+apiVersion+"/introspect",
		strings.NewReader(form.Encode()))
	if err != nil {
		return fail
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fail
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return fail
	}
	return nil
}
