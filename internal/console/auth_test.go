package console

import (
	"context"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
)

func TestToken(t *testing.T) {
	tc := startConsole(t, nil)
	id, secret := tc.client(t, tc.org.ID, "enrich", "inspect")
	tests := []struct {
		name       string
		id, secret string
		basic      bool
		grant      string
		wantStatus int
		wantError  string
	}{
		{"basic", id, secret, true, "client_credentials", 200, ""},
		{"form", id, secret, false, "client_credentials", 200, ""},
		{"bad secret", id, secret + "x", true, "client_credentials", 401, "invalid_client"},
		{"unknown client", "client-nope", secret, false, "client_credentials", 401, "invalid_client"},
		{"no credentials", "", "", false, "client_credentials", 401, "invalid_client"},
		{"wrong grant", id, secret, true, "password", 400, "unsupported_grant_type"},
		{"no grant", id, secret, true, "", 400, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body, hdr := tc.tokenRequest(t, tt.id, tt.secret, tt.basic, tt.grant)
			if status != tt.wantStatus {
				t.Fatalf("token = %d %s, want %d", status, body, tt.wantStatus)
			}
			if ct := hdr.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", ct)
			}
			if tt.wantError != "" {
				if got := decode[oauthError](t, body); got.Error != tt.wantError {
					t.Errorf("error = %q, want %q (%s)", got.Error, tt.wantError, body)
				}
				return
			}
			tr := decode[TokenResponse](t, body)
			want := TokenResponse{AccessToken: tr.AccessToken, TokenType: "bearer", ExpiresIn: 600,
				Scope: "enrich:read integration/health:read inspect:read"}
			if diff := cmp.Diff(want, tr); diff != "" || tr.AccessToken == "" {
				t.Errorf("token response mismatch (-want +got):\n%s", diff)
			}
		})
	}
	if status, body, _ := tc.tokenRequest(t, id, secret+"x", true, "client_credentials"); !strings.Contains(string(body), "Invalid client credentials") {
		t.Errorf("bad secret = %d %s, want the description Invalid client credentials", status, body)
	}
}

// jwksKeys fetches the published keys.
func (tc *testConsole) jwksKeys(t *testing.T) map[string]*rsa.PublicKey {
	t.Helper()
	status, body, _ := tc.call(t, http.MethodGet, "/.well-known/jwks", "", nil)
	if status != 200 {
		t.Fatalf("GET /.well-known/jwks = %d %s", status, body)
	}
	out := map[string]*rsa.PublicKey{}
	for _, k := range decode[JWKS](t, body).Keys {
		if k.Kty != "RSA" || k.Alg != "RS256" || k.Use != "sig" {
			t.Errorf("JWK %+v: want RSA RS256 sig", k)
		}
		n, _ := base64.RawURLEncoding.DecodeString(k.N)
		e, _ := base64.RawURLEncoding.DecodeString(k.E)
		out[k.Kid] = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
	}
	return out
}

// verifyWithJWKS verifies tok with the published keys, as a relay would.
func verifyWithJWKS(t *testing.T, keys map[string]*rsa.PublicKey, tok string, now time.Time) jwt.MapClaims {
	t.Helper()
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(tok, claims, func(tk *jwt.Token) (any, error) {
		return keys[tk.Header["kid"].(string)], nil
	}, jwt.WithValidMethods([]string{"RS256"}), jwt.WithTimeFunc(func() time.Time { return now }))
	if err != nil {
		t.Fatalf("verify token with the JWKS: %v", err)
	}
	return claims
}

func TestTokenVerifiesWithJWKS(t *testing.T) {
	tc := startConsole(t, nil)
	tok := tc.token(t, tc.org.ID, "enrich", "private-intel")
	claims := verifyWithJWKS(t, tc.jwksKeys(t), tok, tc.clock.Now())
	sub, _ := claims["sub"].(string)
	if !strings.HasPrefix(sub, "client-") || claims["aud"] != sub || claims["iss"] != tc.url ||
		claims[claimKind] != "access-token" || claims[claimGrant] != "client-creds" || claims[claimOrgID] != tc.org.ID ||
		claims[claimClientID] != sub || !strings.HasPrefix(claims["jti"].(string), "token-") {
		t.Errorf("claims = %v: want the CTR access-token claims", claims)
	}
	if exp, iat := claims["exp"].(float64), claims["iat"].(float64); exp-iat != 600 {
		t.Errorf("exp - iat = %v, want 600", exp-iat)
	}
	status, body, _ := tc.call(t, http.MethodGet, "/.well-known/oauth-authorization-server", "", nil)
	d := decode[Discovery](t, body)
	if status != 200 || d.Issuer != tc.url || d.JWKSURI != tc.url+"/.well-known/jwks" || d.TokenEndpoint != tc.url+"/iroh/oauth2/token" {
		t.Errorf("discovery = %d %s", status, body)
	}
	if status, _, _ := tc.call(t, http.MethodGet, "/.well-known/jwks.json", "", nil); status != 404 {
		t.Errorf("GET /.well-known/jwks.json = %d, want 404", status)
	}
}

func TestBearerErrors(t *testing.T) {
	tc := startConsole(t, nil)
	tok := tc.token(t, tc.org.ID, "inspect")
	// A module JWT signed by the same key is not an access token.
	moduleJWT, err := tc.Sign(map[string]any{"jwks_host": "console.example", "aud": "https://relay.example"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		auth       string
		path       string
		wantStatus int
		wantError  string
		wantDesc   string
	}{
		{"no header", "", "/iroh/iroh-enrich/settings", 401, "invalid_request", "No JWT found in HTTP Authorization header"},
		{"basic", "Basic eDp5", "/iroh/iroh-enrich/settings", 401, "invalid_request", "No JWT found in HTTP Authorization header"},
		{"garbage", "Bearer abc.def.ghi", "/iroh/iroh-enrich/settings", 401, "invalid_token", "JWT is malformed"},
		{"module jwt", "Bearer " + moduleJWT, "/iroh/iroh-enrich/settings", 401, "invalid_token", "JWT is not an access token"},
		{"tampered", "Bearer " + tok[:len(tok)-4] + "AAAA", "/iroh/iroh-enrich/settings", 401, "invalid_token", "JWT signature cannot be verified"},
		{"valid", "Bearer " + tok, "/iroh/iroh-enrich/settings", 200, "", ""},
		{"missing scope", "Bearer " + tok, "/iroh/iroh-enrich/deliberate/observables", 403, "missing_scope",
			"You do not have the required credentials to access this route."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, tc.url+tt.path, strings.NewReader(`[]`))
			if strings.HasSuffix(tt.path, "settings") {
				req, _ = http.NewRequest(http.MethodGet, tc.url+tt.path, nil)
			}
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			status, body, hdr := do(t, req)
			if status != tt.wantStatus {
				t.Fatalf("%s = %d %s, want %d", tt.path, status, body, tt.wantStatus)
			}
			if tt.wantError == "" {
				return
			}
			m := decode[map[string]any](t, body)
			if m["error"] != tt.wantError || m["error_description"] != tt.wantDesc || m["trace_id"] != hdr.Get("X-Trace-Id") || m["trace_id"] == "" {
				t.Errorf("body = %s, want error %q %q with the X-Trace-Id", body, tt.wantError, tt.wantDesc)
			}
			if status == 403 {
				want := map[string]any{"missing-scopes": []any{"enrich/observables/deliberate:read"},
					"required-scopes": []any{"enrich/observables/deliberate:read"}, "scopes": []any{"inspect:read"}, "org-id": tc.org.ID}
				for k, v := range want {
					if !cmp.Equal(m[k], v) {
						t.Errorf("403 %s = %v, want %v", k, m[k], v)
					}
				}
			}
		})
	}
}

func TestTokenExpiry(t *testing.T) {
	tc := startConsole(t, nil)
	tok := tc.token(t, tc.org.ID, "inspect")
	tc.clock.Add(599 * time.Second)
	if status, body, _ := tc.call(t, http.MethodGet, "/iroh/iroh-enrich/settings", tok, nil); status != 200 {
		t.Fatalf("settings at 599s = %d %s, want 200", status, body)
	}
	tc.clock.Add(time.Second)
	status, body, _ := tc.call(t, http.MethodGet, "/iroh/iroh-enrich/settings", tok, nil)
	if m := decode[map[string]any](t, body); status != 401 || m["error_description"] != "JWT expired" {
		t.Errorf("settings at 600s = %d %s, want 401 JWT expired", status, body)
	}
}

// A verified token is remembered, and taken from memory only while it is
// valid and its key published; a changed token is verified anew.
func TestVerifiedTokens(t *testing.T) {
	tc := startConsole(t, nil)
	tok := tc.token(t, tc.org.ID, "inspect")
	settings := func(tok string) (int, string) {
		status, body, _ := tc.call(t, http.MethodGet, "/iroh/iroh-enrich/settings", tok, nil)
		desc, _ := decode[map[string]any](t, body)["error_description"].(string)
		return status, desc
	}
	if status, _ := settings(tok); status != 200 {
		t.Fatalf("settings = %d, want 200", status)
	}
	now := tc.clock.Now()
	cl, ok := tc.verified.get(tok, now, tc.keys)
	if !ok || cl.Subject == "" {
		t.Fatalf("the verified token is not remembered: %v %+v", ok, cl)
	}
	if _, ok := tc.verified.get(tok, now, &keyring{}); ok {
		t.Error("a remembered token is taken although its key is no longer published")
	}
	if _, ok := tc.verified.get(tok, now.Add(TokenLifetime), tc.keys); ok {
		t.Error("a remembered token is taken at its expiry")
	}
	if _, ok := tc.verified.get(tok, now.Add(-time.Second), tc.keys); ok {
		t.Error("a remembered token is taken before its nbf")
	}
	head, rest, _ := strings.Cut(tok, ".")
	if status, desc := settings(head + ".eyJz" + rest[4:]); status != 401 || desc == "" {
		t.Errorf("settings with a changed payload = %d %q, want 401", status, desc)
	}
	if status, desc := settings(tok[:len(tok)-2] + "AA"); status != 401 || desc != "JWT signature cannot be verified" {
		t.Errorf("settings with a changed signature = %d %q, want 401 JWT signature cannot be verified", status, desc)
	}

	var v verifiedTokens
	for i := range maxVerifiedTokens + 1 {
		v.put(strconv.Itoa(i), "k", cl, now)
	}
	if n := len(v.m); n > maxVerifiedTokens || n == 0 {
		t.Errorf("%d tokens remembered after %d, want at most %d", n, maxVerifiedTokens+1, maxVerifiedTokens)
	}
	if _, ok := v.m[strconv.Itoa(maxVerifiedTokens)]; !ok {
		t.Error("the token put last is not remembered")
	}
}

func TestKeyRotation(t *testing.T) {
	tc := startConsole(t, nil)
	old := tc.token(t, tc.org.ID, "inspect")
	oldKeys := tc.jwksKeys(t)
	if len(oldKeys) != 1 {
		t.Fatalf("JWKS before rotation has %d keys, want 1", len(oldKeys))
	}
	tc.clock.Add(time.Minute)
	if err := tc.RotateKeys(context.Background()); err != nil {
		t.Fatalf("RotateKeys: %v", err)
	}
	keys := tc.jwksKeys(t)
	if len(keys) != 2 {
		t.Fatalf("JWKS after rotation has %d keys, want 2 (the old one until its tokens expire)", len(keys))
	}
	fresh := tc.token(t, tc.org.ID, "inspect")
	kidOf := func(tok string) string {
		p, _, _ := jwt.NewParser().ParseUnverified(tok, jwt.MapClaims{})
		return p.Header["kid"].(string)
	}
	if _, ok := oldKeys[kidOf(fresh)]; ok {
		t.Errorf("a token after rotation is signed with the old key %s", kidOf(fresh))
	}
	for name, tok := range map[string]string{"old": old, "fresh": fresh} {
		verifyWithJWKS(t, keys, tok, tc.clock.Now())
		if status, body, _ := tc.call(t, http.MethodGet, "/iroh/iroh-enrich/settings", tok, nil); status != 200 {
			t.Errorf("settings with the %s token after rotation = %d %s, want 200", name, status, body)
		}
	}
	// Once every token of the old key has expired, the key is withdrawn.
	tc.clock.Add(keyGrace)
	if err := tc.keys.maybeRotate(context.Background()); err != nil {
		t.Fatal(err)
	}
	if keys := tc.jwksKeys(t); len(keys) != 1 || keys[kidOf(fresh)] == nil {
		t.Errorf("JWKS after the grace period = %v, want only the new key", keys)
	}
}

func TestRevokedClient(t *testing.T) {
	tc := startConsole(t, nil)
	id, secret := tc.client(t, tc.org.ID, "inspect")
	status, body, _ := tc.tokenRequest(t, id, secret, true, "client_credentials")
	tok := decode[TokenResponse](t, body).AccessToken
	if status, body := tc.admin(t, http.MethodDelete, "/api/v1/clients/"+id, nil); status != 204 {
		t.Fatalf("revoke = %d %s", status, body)
	}
	status, body, _ = tc.call(t, http.MethodGet, "/iroh/iroh-enrich/settings", tok, nil)
	if status != 401 {
		t.Errorf("settings with a revoked client's token = %d %s, want 401", status, body)
	}
	if status, _, _ := tc.tokenRequest(t, id, secret, true, "client_credentials"); status != 401 {
		t.Errorf("token for a revoked client = %d, want 401", status)
	}
}

func TestClientsAPI(t *testing.T) {
	tc := startConsole(t, nil)
	status, body := tc.admin(t, http.MethodPost, "/api/v1/clients", ClientRequest{Name: "soar", Scopes: []string{"enrich", "response", "casebook"}})
	if status != 201 {
		t.Fatalf("create client = %d %s", status, body)
	}
	cl := decode[APIClient](t, body)
	raw, err := base64.RawURLEncoding.DecodeString(cl.Secret)
	if !strings.HasPrefix(cl.ID, "client-") || err != nil || len(raw) < 32 {
		t.Errorf("client = %+v: want client-<uuid> and a base64url secret of 32+ bytes", cl)
	}
	status, body = tc.admin(t, http.MethodGet, "/api/v1/clients", nil)
	list := decode[[]APIClient](t, body)
	if status != 200 || len(list) != 1 || list[0].Secret != "" {
		t.Errorf("list clients = %d %s, want one client without its secret", status, body)
	}
	if status, body := tc.admin(t, http.MethodPost, "/api/v1/clients", ClientRequest{Name: "x", Scopes: []string{"everything"}}); status != 400 ||
		!strings.Contains(string(body), `unknown scope \"everything\"`) {
		t.Errorf("create client with a bad scope = %d %s, want 400 naming it", status, body)
	}
	// An analyst may not manage clients; a bad password is 401.
	if status, body := tc.admin(t, http.MethodPost, "/api/v1/users", APIUser{Name: "ana", Role: "analyst", Password: adminPass}); status != 201 {
		t.Fatalf("create user = %d %s", status, body)
	}
	if status, _ := tc.adminAs(t, "ana", adminPass, http.MethodGet, "/api/v1/clients", nil); status != 403 {
		t.Errorf("analyst lists clients = %d, want 403", status)
	}
	if status, _ := tc.adminAs(t, "ana", adminPass, http.MethodGet, "/api/v1/modules", nil); status != 200 {
		t.Errorf("analyst lists modules = %d, want 200", status)
	}
	if status, _ := tc.adminAs(t, "ana", "wrong", http.MethodGet, "/api/v1/modules", nil); status != 401 {
		t.Errorf("bad password = %d, want 401", status)
	}
	// A token with the admin scope manages; one without is refused.
	for scope, want := range map[string]int{"admin": 200, "inspect": 403} {
		tok := tc.token(t, tc.org.ID, scope)
		if status, body, _ := tc.call(t, http.MethodGet, "/api/v1/clients", tok, nil); status != want {
			t.Errorf("GET /api/v1/clients with scope %s = %d %s, want %d", scope, status, body, want)
		}
	}
	var e APIError
	_, body = tc.admin(t, http.MethodGet, "/api/v1/nothing", nil)
	if json.Unmarshal(body, &e); e.Error == "" {
		t.Errorf("unknown API route body = %s, want {\"error\": …}", body)
	}
}
