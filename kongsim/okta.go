package kongsim

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// OktaOptions configure the Okta-like authorization server.
type OktaOptions struct {
	// Addr is the listen address; "" means 127.0.0.1:0.
	Addr string
	// ClientID and ClientSecret are the credentials the introspection
	// endpoint (and okta-auth's config check) must present.
	ClientID     string
	ClientSecret string
	// Server is the authorization server id of Mint's tokens; default
	// "default", as Okta's default custom authorization server.
	Server string
	Logger *slog.Logger
}

// Okta is a small Okta-like authorization server for okta-auth: per
// authorization server `/oauth2/{server}/v1/keys` (RS256 JWKS),
// `/v1/introspect` (client-authenticated, RFC 7662) and `/v1/token`
// (client_credentials), plus POST /__mint to mint a token for any subject.
type Okta struct {
	opts   OktaOptions
	key    *rsa.PrivateKey
	kid    string
	signer jose.Signer
	log    *slog.Logger
	ln     net.Listener
	srv    *http.Server
	done   chan struct{}
}

// DefaultOktaClientID and DefaultOktaClientSecret are used when none are
// given, so the demo can configure okta-auth without extra flags.
const (
	DefaultOktaClientID     = "kongsim-client"
	DefaultOktaClientSecret = "kongsim-secret"
)

// NewOkta creates the server with a fresh RSA key; it does not listen yet.
func NewOkta(opts OktaOptions) (*Okta, error) {
	if opts.Server == "" {
		opts.Server = "default"
	}
	if opts.ClientID == "" {
		opts.ClientID = DefaultOktaClientID
	}
	if opts.ClientSecret == "" {
		opts.ClientSecret = DefaultOktaClientSecret
	}
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("okta: generate key: %w", err)
	}
	var kb [8]byte
	if _, err := rand.Read(kb[:]); err != nil {
		return nil, fmt.Errorf("okta: key id: %w", err)
	}
	kid := hex.EncodeToString(kb[:])
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader(jose.HeaderKey("kid"), kid))
	if err != nil {
		return nil, fmt.Errorf("okta: signer: %w", err)
	}
	return &Okta{opts: opts, key: key, kid: kid, signer: signer, log: log.With("component", "okta"), done: make(chan struct{})}, nil
}

// StartOkta creates and starts the server.
func StartOkta(opts OktaOptions) (*Okta, error) {
	o, err := NewOkta(opts)
	if err != nil {
		return nil, err
	}
	if err := o.Start(); err != nil {
		return nil, err
	}
	return o, nil
}

// Start listens on the configured address and serves in the background.
func (o *Okta) Start() error {
	ln, err := net.Listen("tcp", o.opts.Addr)
	if err != nil {
		return fmt.Errorf("okta: listen %s: %w", o.opts.Addr, err)
	}
	o.ln = ln
	o.srv = &http.Server{Handler: o.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(o.done)
		if err := o.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			o.log.Error("okta server stopped", "err", err)
		}
	}()
	o.log.Info("okta server started", "authorization_server", o.AuthorizationServer())
	return nil
}

// Close stops the server.
func (o *Okta) Close() error {
	if o.srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := o.srv.Shutdown(ctx)
	<-o.done
	return err
}

// URL is the server's base URL, e.g. http://127.0.0.1:9000.
func (o *Okta) URL() string { return "http://" + o.ln.Addr().String() }

// AuthorizationServer is okta-auth's `authorization_server` value for the
// default server, e.g. http://127.0.0.1:9000/oauth2/default.
func (o *Okta) AuthorizationServer() string { return o.URL() + "/oauth2/" + o.opts.Server }

// ClientID and ClientSecret are the client credentials it accepts.
func (o *Okta) ClientID() string     { return o.opts.ClientID }
func (o *Okta) ClientSecret() string { return o.opts.ClientSecret }

// oktaClaims are the claims of an Okta access token.
type oktaClaims struct {
	jwt.Claims
	ClientID string   `json:"cid,omitempty"`
	UID      string   `json:"uid,omitempty"`
	Scopes   []string `json:"scp,omitempty"`
}

// Mint returns a signed access token for sub, valid for ttl, from the
// default authorization server. It panics only if signing fails, which
// cannot happen with the key it generated itself.
func (o *Okta) Mint(sub string, ttl time.Duration) string {
	tok, err := o.mint(o.opts.Server, sub, ttl, []string{"openid"})
	if err != nil {
		panic(fmt.Sprintf("okta: mint: %v", err))
	}
	return tok
}

func (o *Okta) issuer(server string) string {
	if o.ln == nil {
		return "/oauth2/" + server
	}
	return o.URL() + "/oauth2/" + server
}

func (o *Okta) mint(server, sub string, ttl time.Duration, scopes []string) (string, error) {
	now := time.Now()
	var jb [12]byte
	if _, err := rand.Read(jb[:]); err != nil {
		return "", fmt.Errorf("jti: %w", err)
	}
	c := oktaClaims{
		Claims: jwt.Claims{
			ID:        "AT." + hex.EncodeToString(jb[:]),
			Issuer:    o.issuer(server),
			Subject:   sub,
			Audience:  jwt.Audience{"api://" + server},
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now.Add(-time.Second)),
			Expiry:    jwt.NewNumericDate(now.Add(ttl)),
		},
		ClientID: o.opts.ClientID,
		Scopes:   scopes,
	}
	return jwt.Signed(o.signer).Claims(c).Serialize()
}

// Handler serves the authorization server endpoints.
func (o *Okta) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /oauth2/{server}/v1/keys", o.serveKeys)
	mux.HandleFunc("POST /oauth2/{server}/v1/introspect", o.serveIntrospect)
	mux.HandleFunc("POST /oauth2/{server}/v1/token", o.serveToken)
	mux.HandleFunc("POST /__mint", o.serveMint)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		oktaError(w, http.StatusNotFound, "E0000022", "The endpoint does not support the provided HTTP method")
	})
	return mux
}

func writeOktaJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache, no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func oktaError(w http.ResponseWriter, status int, code, summary string) {
	writeOktaJSON(w, status, map[string]any{"errorCode": code, "errorSummary": summary})
}

func (o *Okta) serveKeys(w http.ResponseWriter, r *http.Request) {
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{
		Key: &o.key.PublicKey, KeyID: o.kid, Algorithm: string(jose.RS256), Use: "sig",
	}}}
	writeOktaJSON(w, http.StatusOK, set)
}

// clientAuth checks HTTP Basic client credentials, or client_id and
// client_secret in the form, as Okta accepts both.
func (o *Okta) clientAuth(r *http.Request) bool {
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostFormValue("client_id"), r.PostFormValue("client_secret")
	}
	return subtle.ConstantTimeCompare([]byte(id), []byte(o.opts.ClientID)) == 1 &&
		subtle.ConstantTimeCompare([]byte(secret), []byte(o.opts.ClientSecret)) == 1
}

func (o *Okta) serveIntrospect(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 1<<16)
	if err := r.ParseForm(); err != nil {
		writeOktaJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_request", "error_description": "bad form body"})
		return
	}
	if !o.clientAuth(r) {
		writeOktaJSON(w, http.StatusUnauthorized, map[string]any{"error": "invalid_client", "error_description": "Invalid value for 'client_id' parameter."})
		return
	}
	token := r.PostFormValue("token")
	if token == "" {
		writeOktaJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_request", "error_description": "The token parameter is required."})
		return
	}
	server := r.PathValue("server")
	c, err := o.verify(token, server)
	if err != nil {
		writeOktaJSON(w, http.StatusOK, map[string]any{"active": false})
		return
	}
	out := map[string]any{
		"active": true, "token_type": "Bearer", "scope": strings.Join(c.Scopes, " "),
		"client_id": c.ClientID, "username": c.Subject, "sub": c.Subject, "iss": c.Issuer, "jti": c.ID,
	}
	if c.Expiry != nil {
		out["exp"] = c.Expiry.Time().Unix()
	}
	if c.IssuedAt != nil {
		out["iat"] = c.IssuedAt.Time().Unix()
	}
	writeOktaJSON(w, http.StatusOK, out)
}

// verify checks a token this server minted for the given server id.
func (o *Okta) verify(token, server string) (*oktaClaims, error) {
	tok, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		return nil, err
	}
	var c oktaClaims
	if err := tok.Claims(&o.key.PublicKey, &c); err != nil {
		return nil, err
	}
	if err := c.ValidateWithLeeway(jwt.Expected{Issuer: o.issuer(server), Time: time.Now()}, 0); err != nil {
		return nil, err
	}
	return &c, nil
}

func (o *Okta) serveToken(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 1<<16)
	if err := r.ParseForm(); err != nil {
		writeOktaJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_request", "error_description": "bad form body"})
		return
	}
	if !o.clientAuth(r) {
		writeOktaJSON(w, http.StatusUnauthorized, map[string]any{"error": "invalid_client", "error_description": "Invalid value for 'client_id' parameter."})
		return
	}
	if gt := r.PostFormValue("grant_type"); gt != "client_credentials" {
		writeOktaJSON(w, http.StatusBadRequest, map[string]any{"error": "unsupported_grant_type", "error_description": "The authorization grant type is not supported by the authorization server."})
		return
	}
	scopes := strings.Fields(r.PostFormValue("scope"))
	ttl := time.Hour
	tok, err := o.mint(r.PathValue("server"), o.opts.ClientID, ttl, scopes)
	if err != nil {
		o.log.Error("mint failed", "err", err)
		writeOktaJSON(w, http.StatusInternalServerError, map[string]any{"error": "server_error"})
		return
	}
	writeOktaJSON(w, http.StatusOK, map[string]any{
		"token_type": "Bearer", "expires_in": int(ttl.Seconds()), "access_token": tok, "scope": strings.Join(scopes, " "),
	})
}

// serveMint is the test/demo shortcut: POST /__mint with sub, ttl (seconds,
// default 3600) and optionally server, as a form or JSON.
func (o *Okta) serveMint(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 1<<16)
	var in struct {
		Sub    string `json:"sub"`
		TTL    int    `json:"ttl"`
		Server string `json:"server"`
	}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		b, err := io.ReadAll(r.Body)
		if err == nil && len(b) > 0 {
			err = json.Unmarshal(b, &in)
		}
		if err != nil {
			writeOktaJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_request", "error_description": "bad JSON body: " + err.Error()})
			return
		}
	} else {
		if err := r.ParseForm(); err != nil {
			writeOktaJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_request", "error_description": "bad form body"})
			return
		}
		in.Sub, in.Server = r.PostFormValue("sub"), r.PostFormValue("server")
		if s := r.PostFormValue("ttl"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil {
				writeOktaJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_request", "error_description": "ttl must be a number of seconds"})
				return
			}
			in.TTL = n
		}
	}
	if in.Sub == "" {
		in.Sub = "demo@example.com"
	}
	if in.TTL == 0 {
		in.TTL = 3600
	}
	if in.Server == "" {
		in.Server = o.opts.Server
	}
	tok, err := o.mint(in.Server, in.Sub, time.Duration(in.TTL)*time.Second, []string{"openid"})
	if err != nil {
		o.log.Error("mint failed", "err", err)
		writeOktaJSON(w, http.StatusInternalServerError, map[string]any{"error": "server_error"})
		return
	}
	writeOktaJSON(w, http.StatusOK, map[string]any{"token_type": "Bearer", "expires_in": in.TTL, "access_token": tok})
}

// RunOkta is `kongsim okta`: it serves until SIGINT/SIGTERM and prints the
// authorization_server URL on stdout for scripts. It returns the exit code.
func RunOkta(args []string) int {
	return runOkta(args, os.Stdout, os.Stderr, nil)
}

func runOkta(args []string, stdout, stderr io.Writer, stop <-chan struct{}) int {
	fs := flag.NewFlagSet("kongsim okta", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:0", "listen address")
	clientID := fs.String("client-id", DefaultOktaClientID, "client id accepted by /v1/introspect and /v1/token")
	clientSecret := fs.String("client-secret", DefaultOktaClientSecret, "client secret (or env KONGSIM_OKTA_CLIENT_SECRET)")
	server := fs.String("server", "default", "authorization server id of minted tokens")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "kongsim okta: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if s := os.Getenv("KONGSIM_OKTA_CLIENT_SECRET"); s != "" && *clientSecret == DefaultOktaClientSecret {
		*clientSecret = s
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	o, err := StartOkta(OktaOptions{Addr: *listen, ClientID: *clientID, ClientSecret: *clientSecret, Server: *server, Logger: log})
	if err != nil {
		fmt.Fprintf(stderr, "kongsim okta: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "authorization_server=%s\nclient_id=%s\nmint=POST %s/__mint sub=<subject> ttl=<seconds>\n",
		o.AuthorizationServer(), *clientID, o.URL())
	if stop == nil {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
		defer signal.Stop(sig)
		ch := make(chan struct{})
		go func() { <-sig; close(ch) }()
		stop = ch
	}
	<-stop
	if err := o.Close(); err != nil {
		fmt.Fprintf(stderr, "kongsim okta: shutdown: %v\n", err)
		return 1
	}
	return 0
}
