package gateway

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/store/sqlite"
	"github.com/sightline/sightline/internal/tracking"
	"github.com/sightline/sightline/internal/tunnel"
)

// apiAuth authenticates the AsyncOS-compatible API (gateway-api.md §2): HTTP
// Basic on every request, or a JWT from POST login sent back in the jwtToken
// header.
type apiAuth struct {
	store    *sqlite.GatewayStore
	creds    *credentials
	secret   []byte        // HS256 key, per gateway
	lifetime time.Duration // the GUI inactivity timeout
	now      func() time.Time
}

// refreshWithin is how close to expiry a token is answered with a fresh one
// in the jwtToken response header.
const refreshWithin = 5 * time.Minute

type apiClaims struct {
	Role string `json:"role"`
	jwt.RegisteredClaims
}

// privileges are what every role but Technician may do with the tracking API.
var privileges = []string{
	"e_message_tracking_messages",
	"e_message_tracking_detail",
	"e_message_tracking_amp_details",
	"e_message_tracking_connection_details",
}

type userKey struct{}

// apiUser returns the user that require put in the request context.
func apiUser(ctx context.Context) *sqlite.User {
	u, _ := ctx.Value(userKey{}).(*sqlite.User)
	return u
}

// login answers POST /esa/api/v2.0/login.
func (a *apiAuth) login(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Data struct {
			UserName   string `json:"userName"`
			Passphrase string `json:"passphrase"`
		} `json:"data"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&body); err != nil {
		tracking.WriteError(w, http.StatusBadRequest, `Invalid request body: want {"data": {"userName": …, "passphrase": …}}.`)
		return
	}
	name, errName := base64.StdEncoding.DecodeString(body.Data.UserName)
	pass, errPass := base64.StdEncoding.DecodeString(body.Data.Passphrase)
	if errName != nil || errPass != nil || len(name) == 0 {
		tracking.WriteError(w, http.StatusUnauthorized, "Invalid username or passphrase.")
		return
	}
	u, err := a.creds.authenticate(r.Context(), string(name), string(pass))
	if err != nil {
		a.fail(w, err)
		return
	}
	if u.Role == RoleTechnician {
		tracking.WriteError(w, http.StatusForbidden, "Forbidden.")
		return
	}
	tok, err := a.issue(u)
	if err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": map[string]string{
		"userName":                  u.Name,
		"is2FactorRedirectRequired": "false",
		"role":                      u.Role,
		"jwtToken":                  tok,
	}})
}

// privileges answers GET /esa/api/v2.0/login/privileges.
func (a *apiAuth) privileges(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"data": privileges})
}

func (a *apiAuth) issue(u *sqlite.User) (string, error) {
	now := a.now()
	claims := apiClaims{Role: u.Role, RegisteredClaims: jwt.RegisteredClaims{
		Subject:   u.Name,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(a.lifetime)),
	}}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(a.secret)
}

// require authenticates the request by jwtToken or Basic, refusing
// Technicians (no tracking privilege), and refreshes a token near expiry.
func (a *apiAuth) require(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, err := a.identify(r)
		if err != nil {
			a.fail(w, err)
			return
		}
		if u.Role == RoleTechnician {
			tracking.WriteError(w, http.StatusForbidden, "Forbidden.")
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), userKey{}, u))
		a.refresh(w, r)
		next.ServeHTTP(w, r)
	})
}

// ExchangeUser is the identity of requests that reach the API through the
// device tunnel: the exchange authenticated the organisation, and this
// gateway registered with that exchange. It may read tracking, no more.
var ExchangeUser = sqlite.User{Name: "exchange", Role: RoleHelpDeskUser}

func (a *apiAuth) identify(r *http.Request) (*sqlite.User, error) {
	if tunnel.ViaTunnel(r) {
		u := ExchangeUser
		return &u, nil
	}
	if tok := r.Header.Get("jwtToken"); tok != "" {
		return a.verify(r, tok)
	}
	if name, pass, ok := r.BasicAuth(); ok {
		return a.creds.authenticate(r.Context(), name, pass)
	}
	return nil, sightline.Errorf(sightline.Unauthorized, "Unauthorized.")
}

func (a *apiAuth) verify(r *http.Request, tok string) (*sqlite.User, error) {
	var claims apiClaims
	_, err := jwt.ParseWithClaims(tok, &claims, func(*jwt.Token) (any, error) { return a.secret, nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithTimeFunc(a.now), jwt.WithExpirationRequired())
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, sightline.Errorf(sightline.Unauthorized, "ExpiredSignatureError.")
	case err != nil:
		return nil, sightline.Errorf(sightline.Unauthorized, "InvalidTokenError.")
	}
	// The user may have been deleted or demoted since the token was issued.
	u, err := a.store.User(r.Context(), claims.Subject)
	if err != nil {
		if sightline.ErrorKind(err) == sightline.NotFound {
			return nil, sightline.Errorf(sightline.Unauthorized, "InvalidTokenError.")
		}
		return nil, err
	}
	return u, nil
}

// refresh sets a fresh jwtToken response header when the request's token
// expires within refreshWithin. It runs before the handler writes.
func (a *apiAuth) refresh(w http.ResponseWriter, r *http.Request) {
	tok := r.Header.Get("jwtToken")
	if tok == "" {
		return
	}
	var claims apiClaims
	if _, err := jwt.ParseWithClaims(tok, &claims, func(*jwt.Token) (any, error) { return a.secret, nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithTimeFunc(a.now)); err != nil || claims.ExpiresAt == nil {
		return
	}
	if claims.ExpiresAt.Sub(a.now()) > refreshWithin {
		return
	}
	if u := apiUser(r.Context()); u != nil {
		if fresh, err := a.issue(u); err == nil {
			w.Header().Set("jwtToken", fresh)
		}
	}
}

// fail answers an authentication error with the AsyncOS error body.
func (a *apiAuth) fail(w http.ResponseWriter, err error) {
	switch sightline.ErrorKind(err) {
	case sightline.Unauthorized:
		tracking.WriteError(w, http.StatusUnauthorized, sightline.ErrorMessage(err))
	case sightline.Forbidden:
		tracking.WriteError(w, http.StatusForbidden, "Forbidden.")
	default:
		tracking.WriteError(w, http.StatusInternalServerError, "Internal Server Error.")
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
