package console

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/console/records"
)

// Token lifetimes and key publication.
const (
	// TokenLifetime is the lifetime of an access token (CTR's value).
	TokenLifetime = 600 * time.Second
	// ModuleTokenLifetime is the lifetime of a module configuration token.
	ModuleTokenLifetime = 300 * time.Second
	// keyGrace is how long a replaced key stays published: the longest
	// token lifetime plus a minute of clock skew.
	keyGrace = TokenLifetime + time.Minute
	keyBits  = 2048
)

// The namespaced claims of CTR's access tokens.
const (
	claimNS       = "https://schemas.cisco.com/iroh/identity/claims/"
	claimKind     = claimNS + "oauth/kind"
	claimGrant    = claimNS + "oauth/grant"
	claimClientID = claimNS + "oauth/client/id"
	claimOrgID    = claimNS + "org/id"
	claimScopes   = claimNS + "scopes"
	kindAccess    = "access-token"
)

// signingKey is a loaded signing key.
type signingKey struct {
	id      string
	priv    *rsa.PrivateKey
	created time.Time
}

// keyring holds the signing keys: the newest signs, the published ones
// verify. Replicas sharing a store see each other's rotations when they
// reload, which happens on an unknown kid and on every rotation check.
type keyring struct {
	store    records.Store
	now      func() time.Time
	rotation time.Duration
	log      *slog.Logger

	mu        sync.RWMutex
	published []signingKey // newest first
}

// load reads the keys, creating the first one when there is none.
func (k *keyring) load(ctx context.Context) error {
	if err := k.reload(ctx); err != nil {
		return err
	}
	k.mu.RLock()
	empty := len(k.published) == 0
	k.mu.RUnlock()
	if empty {
		return k.rotate(ctx)
	}
	return nil
}

// reload reads the published keys from the store: the newest, and each
// older one until keyGrace after its successor was created.
func (k *keyring) reload(ctx context.Context) error {
	stored, err := k.store.SigningKeys(ctx, time.Time{})
	if err != nil {
		return fmt.Errorf("load signing keys: %w", err)
	}
	now := k.now()
	var keys []signingKey
	for i, sk := range stored {
		if i > 0 && !now.Before(stored[i-1].CreatedAt.Add(keyGrace)) {
			break
		}
		priv, err := x509.ParsePKCS8PrivateKey(sk.Private)
		rk, ok := priv.(*rsa.PrivateKey)
		if err != nil || !ok {
			return fmt.Errorf("signing key %s: not an RSA PKCS #8 key: %v", sk.ID, err)
		}
		keys = append(keys, signingKey{id: sk.ID, priv: rk, created: sk.CreatedAt})
	}
	k.mu.Lock()
	k.published = keys
	k.mu.Unlock()
	return nil
}

// rotate creates a new key, makes it the signing one and drops the keys no
// longer published from the store.
func (k *keyring) rotate(ctx context.Context) error {
	priv, err := rsa.GenerateKey(rand.Reader, keyBits)
	if err != nil {
		return fmt.Errorf("generate signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return fmt.Errorf("encode signing key: %w", err)
	}
	now := k.now()
	id := "console-" + now.Format("20060102-150405") + "-" + uuid.NewString()[:8]
	if err := k.store.AddSigningKey(ctx, records.SigningKey{ID: id, Private: der, CreatedAt: now}); err != nil {
		return fmt.Errorf("store signing key: %w", err)
	}
	if err := k.reload(ctx); err != nil {
		return err
	}
	k.mu.RLock()
	oldest := k.published[len(k.published)-1].created
	k.mu.RUnlock()
	if err := k.store.DeleteSigningKeys(ctx, oldest); err != nil {
		k.log.Warn("delete expired signing keys", "err", err)
	}
	k.log.Info("signing key rotated", "kid", id)
	return nil
}

// maybeRotate rotates when the signing key is older than the rotation
// period, and otherwise reloads to see other replicas' rotations.
func (k *keyring) maybeRotate(ctx context.Context) error {
	if err := k.reload(ctx); err != nil {
		return err
	}
	cur, err := k.current()
	if err != nil || !k.now().Before(cur.created.Add(k.rotation)) {
		return k.rotate(ctx)
	}
	return nil
}

func (k *keyring) current() (signingKey, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if len(k.published) == 0 {
		return signingKey{}, sightline.Errorf(sightline.Unavailable, "the console has no signing key")
	}
	return k.published[0], nil
}

// key returns the published public key kid, reloading once when it is
// unknown (another replica may have rotated).
func (k *keyring) key(ctx context.Context, kid string) (*rsa.PublicKey, bool) {
	if pk := k.lookup(kid); pk != nil {
		return pk, true
	}
	if err := k.reload(ctx); err != nil {
		k.log.Warn("reload signing keys", "err", err)
		return nil, false
	}
	pk := k.lookup(kid)
	return pk, pk != nil
}

// lookup returns the published public key kid as this replica last read
// them, nil when it is not published.
func (k *keyring) lookup(kid string) *rsa.PublicKey {
	k.mu.RLock()
	defer k.mu.RUnlock()
	for _, sk := range k.published {
		if sk.id == kid {
			return &sk.priv.PublicKey
		}
	}
	return nil
}

// sign signs claims with the current key, with its kid in the header.
func (k *keyring) sign(claims jwt.MapClaims) (string, error) {
	cur, err := k.current()
	if err != nil {
		return "", err
	}
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	t.Header["kid"] = cur.id
	s, err := t.SignedString(cur.priv)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return s, nil
}

// JWK is one public key of the JWKS document.
type JWK struct {
	Kty string `json:"kty"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	Kid string `json:"kid"`
	N   string `json:"n"`
	E   string `json:"e"`
}

// JWKS is the document at /.well-known/jwks.
type JWKS struct {
	Keys []JWK `json:"keys"`
}

func (k *keyring) jwks() JWKS {
	k.mu.RLock()
	defer k.mu.RUnlock()
	out := JWKS{Keys: []JWK{}}
	for _, sk := range k.published {
		pub := sk.priv.PublicKey
		out.Keys = append(out.Keys, JWK{Kty: "RSA", Alg: "RS256", Use: "sig", Kid: sk.id,
			N: base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
			E: base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes())})
	}
	return out
}

// Sign signs claims (a module configuration token, relay-api.md §5.2) with
// the console's current key; iat, exp (ModuleTokenLifetime) and jti are set
// when absent. The token carries no oauth/kind claim, so it is never
// accepted as an access token.
func (c *Console) Sign(claims map[string]any) (string, error) {
	mc := jwt.MapClaims{}
	for k, v := range claims {
		mc[k] = v
	}
	delete(mc, claimKind)
	now := c.now()
	if _, ok := mc["iat"]; !ok {
		mc["iat"] = now.Unix()
	}
	if _, ok := mc["exp"]; !ok {
		mc["exp"] = now.Add(ModuleTokenLifetime).Unix()
	}
	if _, ok := mc["jti"]; !ok {
		mc["jti"] = uuid.NewString()
	}
	return c.keys.sign(mc)
}

// Scopes.

// Scope names of API clients (as the admin API and UI offer them) and the CTR
// scope strings each grants (console-api.md §2).
var scopeNames = []struct {
	name   string
	scopes []string
}{
	{"inspect", []string{"inspect:read"}},
	{"enrich", []string{"enrich:read", "integration/health:read"}},
	{"response", []string{"response"}},
	{"casebook", []string{"casebook"}},
	{"private-intel", []string{"private-intel"}},
	{"admin", []string{"admin"}},
}

// ScopeNames returns the scope names a client may be given.
func ScopeNames() []string {
	out := make([]string, len(scopeNames))
	for i, s := range scopeNames {
		out[i] = s.name
	}
	return out
}

// parseScopes maps scope names (or the CTR scope strings they grant) to
// the sorted, unique CTR scope strings.
func parseScopes(names []string) ([]string, error) {
	if len(names) == 0 {
		return nil, sightline.Errorf(sightline.Invalid, "a client needs at least one scope: %s", strings.Join(ScopeNames(), ", "))
	}
	seen := map[string]bool{}
	var out []string
	for _, n := range names {
		found := false
		for _, s := range scopeNames {
			if n == s.name || contains(s.scopes, n) {
				found = true
				for _, sc := range s.scopes {
					if !seen[sc] {
						seen[sc] = true
						out = append(out, sc)
					}
				}
			}
		}
		if !found {
			return nil, sightline.Errorf(sightline.Invalid, "unknown scope %q: want one of %s", n, strings.Join(ScopeNames(), ", "))
		}
	}
	return out, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// scopeSatisfies reports whether a granted scope P[:m] satisfies a
// required R[:n]: P is a /-segment prefix of R, and m is absent or m == n.
func scopeSatisfies(granted, required string) bool {
	gp, gm, _ := strings.Cut(granted, ":")
	rp, rm, _ := strings.Cut(required, ":")
	if gm != "" && gm != rm {
		return false
	}
	return gp != "" && (rp == gp || strings.HasPrefix(rp, gp+"/"))
}

// hasScope reports whether any granted scope satisfies any of required.
func hasScope(granted []string, required ...string) bool {
	for _, g := range granted {
		for _, r := range required {
			if scopeSatisfies(g, r) {
				return true
			}
		}
	}
	return false
}

// Access tokens.

// issueToken mints an access token for cl.
func (c *Console) issueToken(cl records.Client) (string, error) {
	now := c.now()
	return c.keys.sign(jwt.MapClaims{
		"iss": c.publicURL, "sub": cl.ID, "aud": cl.ID,
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(TokenLifetime).Unix(),
		"jti":         "token-" + uuid.NewString(),
		claimKind:     kindAccess,
		claimGrant:    "client-creds",
		claimClientID: cl.ID,
		claimOrgID:    cl.OrgID,
		claimScopes:   cl.Scopes,
	})
}

// tokenClaims is what the console reads from an access token.
type tokenClaims struct {
	jwt.RegisteredClaims
	Kind   string   `json:"https://schemas.cisco.com/iroh/identity/claims/oauth/kind"`
	OrgID  string   `json:"https://schemas.cisco.com/iroh/identity/claims/org/id"`
	Scopes []string `json:"https://schemas.cisco.com/iroh/identity/claims/scopes"`
}

// errInvalidToken is an Unauthorized error with the given description.
func errInvalidToken(desc string) error {
	return &sightline.Error{Kind: sightline.Unauthorized, Message: desc, Err: errBadToken}
}

var errBadToken = errors.New("invalid_token")

// verifyToken checks an access token's signature (a published key named by
// kid), times, issuer and kind, and returns its claims. A token it verified
// before is taken from c.verified while its key is published and its times
// allow it.
func (c *Console) verifyToken(ctx context.Context, raw string) (tokenClaims, error) {
	if cl, ok := c.verified.get(raw, c.now(), c.keys); ok {
		return cl, nil
	}
	var cl tokenClaims
	var kid string
	_, err := jwt.ParseWithClaims(raw, &cl, func(t *jwt.Token) (any, error) {
		kid, _ = t.Header["kid"].(string)
		pk, ok := c.keys.key(ctx, kid)
		if !ok {
			return nil, fmt.Errorf("unknown kid %q", kid)
		}
		return pk, nil
	}, jwt.WithValidMethods([]string{"RS256"}), jwt.WithTimeFunc(c.now),
		jwt.WithExpirationRequired(), jwt.WithLeeway(0))
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return cl, errInvalidToken("JWT expired")
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return cl, errInvalidToken("JWT not valid yet")
	case errors.Is(err, jwt.ErrTokenMalformed):
		return cl, errInvalidToken("JWT is malformed")
	case err != nil:
		return cl, errInvalidToken("JWT signature cannot be verified")
	case cl.Kind != kindAccess:
		return cl, errInvalidToken("JWT is not an access token")
	case cl.Issuer != c.publicURL:
		return cl, errInvalidToken("JWT was not issued by this console")
	case cl.Subject == "" || cl.OrgID == "":
		return cl, errInvalidToken("JWT lacks its client or organisation")
	}
	c.verified.put(raw, kid, cl, c.now())
	return cl, nil
}

// verifiedTokens remembers the access tokens whose signature and claims
// verifyToken checked, by their whole text: a client sends the same token
// with every call of its ten minutes, and a remembered one costs a map
// lookup instead of an RSA verification. A token is taken from here only
// while the key that signed it is published and nbf <= now < exp, as
// verifyToken would find; otherwise it is verified again, which gives the
// exact error. At most maxVerifiedTokens are kept.
type verifiedTokens struct {
	mu sync.Mutex
	m  map[string]verifiedToken
}

type verifiedToken struct {
	kid    string
	claims tokenClaims
}

const maxVerifiedTokens = 4096

// get returns the claims of raw when it was verified and is still valid at
// now and keys still publish the key that signed it.
func (v *verifiedTokens) get(raw string, now time.Time, keys *keyring) (tokenClaims, bool) {
	v.mu.Lock()
	t, ok := v.m[raw]
	v.mu.Unlock()
	if !ok || !t.validAt(now) || keys.lookup(t.kid) == nil {
		return tokenClaims{}, false
	}
	return t.claims, true
}

// put remembers raw, verified with the key kid. When full, it forgets the
// expired tokens, or all of them if none has expired.
func (v *verifiedTokens) put(raw, kid string, cl tokenClaims, now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.m) >= maxVerifiedTokens {
		for k, t := range v.m {
			if !t.validAt(now) {
				delete(v.m, k)
			}
		}
		if len(v.m) >= maxVerifiedTokens {
			clear(v.m)
		}
	}
	if v.m == nil {
		v.m = make(map[string]verifiedToken)
	}
	v.m[raw] = verifiedToken{kid: kid, claims: cl}
}

// validAt reports whether now is within the token's nbf and exp.
func (t verifiedToken) validAt(now time.Time) bool {
	exp, nbf := t.claims.ExpiresAt, t.claims.NotBefore
	return exp != nil && now.Before(exp.Time) && (nbf == nil || !now.Before(nbf.Time))
}
