package kongsim

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

func startTestOkta(t *testing.T) *Okta {
	t.Helper()
	o, err := StartOkta(OktaOptions{ClientID: "cid-1", ClientSecret: "s3cret"})
	if err != nil {
		t.Fatalf("start okta: %v", err)
	}
	t.Cleanup(func() { _ = o.Close() })
	return o
}

func postForm(t *testing.T, u string, form url.Values, user, pass string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("decode %s: %v", u, err)
	}
	return resp.StatusCode, out
}

func TestOktaIntrospect(t *testing.T) {
	o := startTestOkta(t)
	intro := o.AuthorizationServer() + "/v1/introspect"
	good := o.Mint("alice@example.com", time.Hour)
	expired := o.Mint("alice@example.com", -time.Minute)
	tests := []struct {
		name       string
		token      string
		user, pass string
		status     int
		active     any
	}{
		{"minted token", good, "cid-1", "s3cret", 200, true},
		{"expired token", expired, "cid-1", "s3cret", 200, false},
		{"garbage token", "token", "cid-1", "s3cret", 200, false},
		{"wrong secret", good, "cid-1", "nope", 401, nil},
		{"no client auth", good, "", "", 401, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body := postForm(t, intro, url.Values{"token": {tc.token}, "token_type_hint": {"access_token"}}, tc.user, tc.pass)
			if status != tc.status {
				t.Fatalf("status %d, want %d (%v)", status, tc.status, body)
			}
			if tc.active != nil && body["active"] != tc.active {
				t.Fatalf("active %v, want %v", body["active"], tc.active)
			}
			if tc.active == true && body["sub"] != "alice@example.com" {
				t.Fatalf("sub %v", body["sub"])
			}
		})
	}
}

func TestOktaKeysTokenAndMint(t *testing.T) {
	o := startTestOkta(t)
	resp, err := http.Get(o.AuthorizationServer() + "/v1/keys")
	if err != nil {
		t.Fatal(err)
	}
	var jwks struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&jwks); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(jwks.Keys) != 1 || jwks.Keys[0]["kty"] != "RSA" || jwks.Keys[0]["alg"] != "RS256" || jwks.Keys[0]["kid"] == "" {
		t.Fatalf("jwks %v", jwks)
	}
	if _, ok := jwks.Keys[0]["d"]; ok {
		t.Fatal("JWKS leaks the private exponent")
	}

	status, tok := postForm(t, o.AuthorizationServer()+"/v1/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"api"}}, "cid-1", "s3cret")
	if status != 200 || tok["access_token"] == "" || tok["token_type"] != "Bearer" {
		t.Fatalf("token endpoint %d %v", status, tok)
	}
	status, _ = postForm(t, o.AuthorizationServer()+"/v1/token", url.Values{"grant_type": {"password"}}, "cid-1", "s3cret")
	if status != 400 {
		t.Fatalf("unsupported grant: %d", status)
	}

	mresp, err := http.Post(o.URL()+"/__mint", "application/json", bytes.NewBufferString(`{"sub":"bob","ttl":60}`))
	if err != nil {
		t.Fatal(err)
	}
	var minted map[string]any
	_ = json.NewDecoder(mresp.Body).Decode(&minted)
	mresp.Body.Close()
	if mresp.StatusCode != 200 || minted["expires_in"] != float64(60) {
		t.Fatalf("mint %d %v", mresp.StatusCode, minted)
	}
	c, err := o.verify(minted["access_token"].(string), "default")
	if err != nil || c.Subject != "bob" {
		t.Fatalf("minted token does not verify: %v %v", err, c)
	}
	bad, err := http.Post(o.URL()+"/__mint", "application/x-www-form-urlencoded", strings.NewReader("ttl=soon"))
	if err != nil {
		t.Fatal(err)
	}
	bad.Body.Close()
	if bad.StatusCode != 400 {
		t.Fatalf("bad ttl: %d", bad.StatusCode)
	}
}

func TestCheckOktaAuthServer(t *testing.T) {
	o := startTestOkta(t)
	base := map[string]any{"client_id": "cid-1", "client_secret": "s3cret", "authorization_server": o.AuthorizationServer(), "api_version": "v1"}
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for kk, vv := range base {
			m[kk] = vv
		}
		m[k] = v
		return m
	}
	tests := []struct {
		name string
		cfg  map[string]any
		ok   bool
	}{
		{"valid", base, true},
		{"wrong secret", with("client_secret", "x"), false},
		{"unreachable", with("authorization_server", "http://127.0.0.1:1/oauth2/default"), false},
		{"unreachable but check off", with("authorization_server", "http://127.0.0.1:1/oauth2/default"), true},
	}
	tests[3].cfg["check_auth_server"] = false
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckOktaAuthServer(context.Background(), tc.cfg)
			if (err == nil) != tc.ok {
				t.Fatalf("err %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "Could not access authorization server (") {
				t.Fatalf("message %q", err)
			}
		})
	}
}

func TestRunOktaServesUntilStopped(t *testing.T) {
	var out, errb syncBuffer
	stop := make(chan struct{})
	done := make(chan int)
	go func() { done <- runOkta([]string{"--client-id", "x", "--client-secret", "y"}, &out, &errb, stop) }()
	var as string
	deadline := time.Now().Add(10 * time.Second)
	for as == "" && time.Now().Before(deadline) {
		for _, l := range strings.Split(out.String(), "\n") {
			if v, ok := strings.CutPrefix(l, "authorization_server="); ok {
				as = v
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	if as == "" {
		t.Fatalf("no authorization_server line; stderr %s", errb.String())
	}
	resp, err := http.Get(as + "/v1/keys")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("keys %d", resp.StatusCode)
	}
	close(stop)
	if code := <-done; code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if code := runOkta([]string{"extra"}, io.Discard, io.Discard, nil); code != 2 {
		t.Fatalf("bad args exit %d", code)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
