package web

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// maxCookie bounds a cookie value we are willing to verify; browsers keep
// cookies under 4096 bytes anyway.
const maxCookie = 4096

// Session is a signed-in browser session.
type Session struct {
	User    User
	CSRF    string    // the session's form token
	Expires time.Time // the session ends at this instant unless refreshed
}

// Sessions issues and verifies signed cookie sessions: the cookie holds the
// user, the form token and the expiry, authenticated with HMAC-SHA256, so no
// server state is needed. Cookies are HttpOnly, SameSite=Lax and Secure on
// TLS requests. Signing out clears the cookie in the browser; a copy taken
// before then stays valid until it expires.
//
// Set the exported fields before first use.
type Sessions struct {
	// MaxAge is the inactivity timeout: RequireUser extends a session once
	// less than half of it is left. Zero means 30 minutes.
	MaxAge time.Duration
	// Secure marks cookies Secure even on plain-HTTP requests, for a role
	// behind a TLS-terminating proxy. TLS requests always get Secure cookies.
	Secure bool
	// LoginPath is where RequireUser sends anonymous requests. "" means "/login".
	LoginPath string

	name string
	key  []byte
	now  func() time.Time // time.Now unless a test sets it
}

// NewSessions returns sessions stored in the cookie called name (each role
// needs its own name: cookies are shared across ports of a host) and signed
// with key, which must hold at least 32 bytes of secret randomness.
func NewSessions(name string, key []byte) (*Sessions, error) {
	if name == "" || strings.ContainsAny(name, "=;, \t\r\n") {
		return nil, fmt.Errorf("web: invalid session cookie name %q", name)
	}
	if len(key) < 32 {
		return nil, fmt.Errorf("web: session key has %d bytes, want at least 32", len(key))
	}
	return &Sessions{name: name, key: append([]byte(nil), key...), now: time.Now}, nil
}

func (s *Sessions) maxAge() time.Duration {
	if s.MaxAge > 0 {
		return s.MaxAge
	}
	return 30 * time.Minute
}

func (s *Sessions) loginPath() string {
	if s.LoginPath != "" {
		return s.LoginPath
	}
	return "/login"
}

// Cookie purposes; each has its own cookie name and MAC domain.
const (
	purposeSession = "session"
	purposeFlash   = "flash"
	purposeCSRF    = "csrf"
)

func (s *Sessions) cookieName(purpose string) string {
	if purpose == purposeSession {
		return s.name
	}
	return s.name + "_" + purpose
}

func (s *Sessions) mac(purpose, payload string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(s.name + "\x00" + purpose + "\x00" + payload))
	return m.Sum(nil)
}

// encode signs v as base64url(JSON) "." base64url(MAC).
func (s *Sessions) encode(purpose string, v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encode %s cookie: %w", purpose, err)
	}
	p := base64.RawURLEncoding.EncodeToString(b)
	return p + "." + base64.RawURLEncoding.EncodeToString(s.mac(purpose, p)), nil
}

// decode verifies and unpacks a value made by encode.
func (s *Sessions) decode(purpose, value string, v any) bool {
	if len(value) > maxCookie {
		return false
	}
	p, sig, ok := strings.Cut(value, ".")
	if !ok {
		return false
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, s.mac(purpose, p)) {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(p)
	if err != nil {
		return false
	}
	return json.Unmarshal(b, v) == nil
}

func (s *Sessions) read(r *http.Request, purpose string, v any) bool {
	c, err := r.Cookie(s.cookieName(purpose))
	if err != nil {
		return false
	}
	return s.decode(purpose, c.Value, v)
}

func (s *Sessions) set(w http.ResponseWriter, r *http.Request, purpose, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name:     s.cookieName(purpose),
		Value:    value,
		Path:     "/",
		MaxAge:   maxAge,
		HttpOnly: true,
		Secure:   s.Secure || r.TLS != nil,
		SameSite: http.SameSiteLaxMode,
	})
}

func (s *Sessions) clear(w http.ResponseWriter, r *http.Request, purpose string) {
	s.set(w, r, purpose, "", -1)
}

// sessionCookie is the signed content of the session cookie.
type sessionCookie struct {
	User    string `json:"u"`
	Role    string `json:"r,omitempty"`
	CSRF    string `json:"c"`
	Expires int64  `json:"e"` // Unix seconds
}

// Get returns the request's session; ok is false when there is none, or it
// is forged, malformed or expired.
func (s *Sessions) Get(r *http.Request) (sess Session, ok bool) {
	var c sessionCookie
	if !s.read(r, purposeSession, &c) || c.User == "" || c.CSRF == "" {
		return Session{}, false
	}
	exp := time.Unix(c.Expires, 0)
	if !s.now().Before(exp) {
		return Session{}, false
	}
	return Session{User: User{Name: c.User, Role: c.Role}, CSRF: c.CSRF, Expires: exp}, true
}

// Login starts a session for u with a fresh form token and sets its cookie.
func (s *Sessions) Login(w http.ResponseWriter, r *http.Request, u User) (Session, error) {
	if u.Name == "" {
		return Session{}, fmt.Errorf("web: login without a user name")
	}
	sess := Session{User: u, CSRF: rand.Text()}
	return s.issue(w, r, sess)
}

// issue (re)sets the session cookie with a full MaxAge from now and
// returns the session with its new expiry.
func (s *Sessions) issue(w http.ResponseWriter, r *http.Request, sess Session) (Session, error) {
	sess.Expires = time.Unix(s.now().Add(s.maxAge()).Unix(), 0)
	v, err := s.encode(purposeSession, sessionCookie{User: sess.User.Name, Role: sess.User.Role, CSRF: sess.CSRF, Expires: sess.Expires.Unix()})
	if err != nil {
		return Session{}, err
	}
	if len(v) > maxCookie {
		return Session{}, fmt.Errorf("web: session cookie of %d bytes is too large", len(v))
	}
	s.set(w, r, purposeSession, v, 0) // a browser-session cookie; the signed expiry rules
	return sess, nil
}

// Logout ends the session in the browser by clearing its cookie.
func (s *Sessions) Logout(w http.ResponseWriter, r *http.Request) {
	s.clear(w, r, purposeSession)
}

// maxFlashes and maxFlashLen keep the flash cookie well under browser limits.
const (
	maxFlashes  = 4
	maxFlashLen = 400
)

// AddFlash queues f to be shown on the next page rendered for this browser,
// typically after a redirect.
func (s *Sessions) AddFlash(w http.ResponseWriter, r *http.Request, f Flash) {
	var fs []Flash
	if !s.pendingFlashes(w, &fs) {
		s.read(r, purposeFlash, &fs)
	}
	if len(f.Message) > maxFlashLen {
		f.Message = strings.ToValidUTF8(f.Message[:maxFlashLen], "") + "…"
	}
	fs = append(fs, f)
	if len(fs) > maxFlashes {
		fs = fs[len(fs)-maxFlashes:]
	}
	v, err := s.encode(purposeFlash, fs)
	if err != nil {
		return // a slice of strings always encodes
	}
	s.set(w, r, purposeFlash, v, 300)
}

// pendingFlashes reads into fs the flash cookie already set on w by an
// earlier AddFlash of this response, and removes it from w so that the
// cookie is set once.
func (s *Sessions) pendingFlashes(w http.ResponseWriter, fs *[]Flash) bool {
	h := w.Header()
	name := s.cookieName(purposeFlash)
	found := false
	kept := h["Set-Cookie"][:0]
	for _, line := range h["Set-Cookie"] {
		if c, err := http.ParseSetCookie(line); err == nil && c.Name == name {
			found = s.decode(purposeFlash, c.Value, fs)
			continue
		}
		kept = append(kept, line)
	}
	if len(kept) == 0 {
		h.Del("Set-Cookie")
	} else {
		h["Set-Cookie"] = kept
	}
	return found
}

// Flashes returns the queued flash messages and clears them.
func (s *Sessions) Flashes(w http.ResponseWriter, r *http.Request) []Flash {
	var fs []Flash
	if !s.read(r, purposeFlash, &fs) {
		return nil
	}
	s.clear(w, r, purposeFlash)
	return fs
}

// token returns the form token for the request: the session's, or for an
// anonymous browser (the sign-in form) one bound to a signed cookie, which
// it sets when missing.
func (s *Sessions) token(w http.ResponseWriter, r *http.Request) string {
	if sess, ok := s.Get(r); ok {
		return sess.CSRF
	}
	var t string
	if s.read(r, purposeCSRF, &t) && t != "" {
		return t
	}
	t = rand.Text()
	if v, err := s.encode(purposeCSRF, t); err == nil {
		s.set(w, r, purposeCSRF, v, 12*60*60)
	}
	return t
}

// expected returns the token a form post must carry, "" when the browser
// has none.
func (s *Sessions) expected(r *http.Request) string {
	if sess, ok := s.Get(r); ok {
		return sess.CSRF
	}
	var t string
	s.read(r, purposeCSRF, &t)
	return t
}

type sessionKey struct{}

// SessionFrom returns the session RequireUser placed in ctx.
func SessionFrom(ctx context.Context) (Session, bool) {
	sess, ok := ctx.Value(sessionKey{}).(Session)
	return sess, ok
}

// RequireUser lets requests with a valid session through, with the session
// in their context (SessionFrom), extending it once half its time is used.
// Other GET and HEAD requests are redirected to the login page with the
// requested URL in "next"; any other method is redirected without it. An
// expired session leaves a flash saying so.
func (s *Sessions) RequireUser(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sess, ok := s.Get(r)
		if !ok {
			if _, err := r.Cookie(s.name); err == nil {
				s.Logout(w, r)
				s.AddFlash(w, r, Flash{Kind: FlashError, Message: "Your session has expired. Sign in again."})
			}
			target := s.loginPath()
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				target += "?next=" + url.QueryEscape(r.URL.RequestURI())
			}
			http.Redirect(w, r, target, http.StatusSeeOther)
			return
		}
		if sess.Expires.Sub(s.now()) < s.maxAge()/2 {
			if renewed, err := s.issue(w, r, sess); err == nil {
				sess = renewed
			}
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, sess)))
	})
}
