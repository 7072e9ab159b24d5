package web

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/sightline/sightline"
	"golang.org/x/net/html"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

var testNav = Nav{
	{Title: "Monitor", Items: []Item{{"Message Tracking", "/monitor/tracking"}, {"Quarantine", "/monitor/quarantine"}}},
	{Title: "Network", Items: []Item{{"Cloud Service Settings", "/network/cloud"}}},
}

// shell is a small role built on the package, served over real HTTP.
type shell struct {
	srv      *httptest.Server
	rd       *Renderer
	sessions *Sessions
	now      time.Time
	pending  bool
}

func newShell(t *testing.T) *shell {
	t.Helper()
	return newShellNav(t, testNav)
}

// newShellNav is newShell with another navigation; every path of nav that
// the shell does not serve otherwise renders the home page.
func newShellNav(t *testing.T, nav Nav) *shell {
	t.Helper()
	sh := &shell{now: time.Date(2026, 1, 10, 8, 0, 0, 0, time.UTC)}
	s, err := NewSessions("sl_test", testKey)
	if err != nil {
		t.Fatal(err)
	}
	s.now = func() time.Time { return sh.now }
	sh.sessions = s
	rd, err := NewRenderer(Config{
		Role: "Email Gateway", Nav: nav, Pages: os.DirFS("testdata/pages"), Sessions: s,
		Pending: func(*http.Request) bool { return sh.pending },
	})
	if err != nil {
		t.Fatal(err)
	}
	sh.rd = rd
	auth := func(ctx context.Context, user, pass string) (User, error) {
		if user == "admin" && pass == "ironport" {
			return User{Name: "admin", Role: "Administrator"}, nil
		}
		if user == "down" {
			return User{}, sightline.Errorf(sightline.Unavailable, "The user directory is unavailable.")
		}
		return User{}, sightline.Errorf(sightline.Unauthorized, "bad credentials")
	}
	mux := http.NewServeMux()
	mux.Handle("GET /static/", rd.Static())
	mux.Handle("/login", LoginHandler(auth, rd))
	mux.Handle("POST /logout", LogoutHandler(rd))
	app := http.NewServeMux()
	app.HandleFunc("GET /monitor/tracking", func(w http.ResponseWriter, r *http.Request) {
		rd.Render(w, r, http.StatusOK, "home.html", PageData{Title: "Message Tracking", Data: "tracker"})
	})
	app.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) {
		sess, _ := SessionFrom(r.Context())
		s.AddFlash(w, r, Flash{Kind: FlashSuccess, Message: "Your changes have been committed."})
		fmt.Fprintf(w, "ok %s", sess.User.Name)
	})
	home := func(w http.ResponseWriter, r *http.Request) {
		rd.Render(w, r, http.StatusOK, "home.html", PageData{Title: "Home", Data: r.URL.Path})
	}
	served := map[string]bool{"": true, "/monitor/tracking": true}
	for _, sec := range nav {
		for _, p := range append([]string{sec.Path}, itemPaths(sec.Items)...) {
			if !served[p] {
				app.HandleFunc("GET "+p, home)
				served[p] = true
			}
		}
	}
	app.HandleFunc("/", rd.NotFound)
	mux.Handle("/", s.RequireUser(app))
	sh.srv = httptest.NewServer(rd.CSRF(mux))
	t.Cleanup(sh.srv.Close)
	return sh
}

// client returns an HTTP client with a cookie jar that does not follow redirects.
func (sh *shell) client(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

type response struct {
	status   int
	location string
	body     string
	doc      *html.Node
}

func do(t *testing.T, c *http.Client, req *http.Request) response {
	t.Helper()
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := html.Parse(strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return response{status: res.StatusCode, location: res.Header.Get("Location"), body: string(b), doc: doc}
}

func (sh *shell) get(t *testing.T, c *http.Client, path string) response {
	t.Helper()
	req, err := http.NewRequest("GET", sh.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return do(t, c, req)
}

func (sh *shell) post(t *testing.T, c *http.Client, path string, form url.Values) response {
	t.Helper()
	req, err := http.NewRequest("POST", sh.srv.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return do(t, c, req)
}

// find returns every element for which match is true, in document order.
func find(n *html.Node, match func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	for d := range n.Descendants() {
		if d.Type == html.ElementNode && match(d) {
			out = append(out, d)
		}
	}
	return out
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func text(n *html.Node) string {
	var b strings.Builder
	for d := range n.Descendants() {
		if d.Type == html.TextNode {
			b.WriteString(d.Data + " ")
		}
	}
	return strings.Join(strings.Fields(b.String()), " ")
}

func hasClass(n *html.Node, class string) bool {
	return n.Type == html.ElementNode && strings.Contains(" "+attr(n, "class")+" ", " "+class+" ")
}

// token returns the value of the first csrf_token field of the page.
func token(t *testing.T, r response) string {
	t.Helper()
	in := find(r.doc, func(n *html.Node) bool { return n.Data == "input" && attr(n, "name") == "csrf_token" })
	if len(in) == 0 || attr(in[0], "value") == "" {
		t.Fatalf("page has no csrf_token field:\n%s", r.body)
	}
	return attr(in[0], "value")
}

// signIn logs c in as admin and returns the session's form token.
func (sh *shell) signIn(t *testing.T, c *http.Client) string {
	t.Helper()
	login := sh.get(t, c, "/login")
	res := sh.post(t, c, "/login", url.Values{"csrf_token": {token(t, login)}, "username": {"admin"}, "passphrase": {"ironport"}, "next": {"/monitor/tracking"}})
	if res.status != http.StatusSeeOther {
		t.Fatalf("POST /login = %d, want 303:\n%s", res.status, res.body)
	}
	return token(t, sh.get(t, c, "/monitor/tracking"))
}

func TestLoginFlow(t *testing.T) {
	sh := newShell(t)
	c := sh.client(t)

	res := sh.get(t, c, "/monitor/tracking?search=1")
	if res.status != http.StatusSeeOther || res.location != "/login?next=%2Fmonitor%2Ftracking%3Fsearch%3D1" {
		t.Fatalf("GET protected page = %d to %q, want 303 to the login page with next", res.status, res.location)
	}
	login := sh.get(t, c, res.location)
	if login.status != http.StatusOK {
		t.Fatalf("GET %s = %d, want 200", res.location, login.status)
	}
	next := find(login.doc, func(n *html.Node) bool { return attr(n, "name") == "next" })
	if len(next) != 1 || attr(next[0], "value") != "/monitor/tracking?search=1" {
		t.Fatalf("login form has no next field for the requested page:\n%s", login.body)
	}
	if nav := find(login.doc, func(n *html.Node) bool { return n.Data == "nav" }); len(nav) != 0 {
		t.Errorf("login page shows the navigation to an anonymous user")
	}
	tok := token(t, login)

	tests := []struct {
		name, user, pass string
		status           int
		message          string
	}{
		{"wrong passphrase", "admin", "nope", http.StatusUnauthorized, "Invalid username or passphrase."},
		{"unknown user", "mallory", "x", http.StatusUnauthorized, "Invalid username or passphrase."},
		{"empty passphrase", "admin", "", http.StatusUnauthorized, "Invalid username or passphrase."},
		{"directory down", "down", "x", http.StatusServiceUnavailable, "The user directory is unavailable."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := sh.post(t, c, "/login", url.Values{"csrf_token": {tok}, "username": {tt.user}, "passphrase": {tt.pass}, "next": {"/monitor/tracking?search=1"}})
			if res.status != tt.status {
				t.Fatalf("POST /login(%q) = %d, want %d", tt.user, res.status, tt.status)
			}
			banners := find(res.doc, func(n *html.Node) bool { return hasClass(n, "banner-error") })
			if len(banners) != 1 || text(banners[0]) != "Error — "+tt.message {
				t.Errorf("POST /login(%q) shows %q, want one banner %q", tt.user, res.body, tt.message)
			}
		})
	}

	res = sh.post(t, c, "/login", url.Values{"csrf_token": {tok}, "username": {"admin"}, "passphrase": {"ironport"}, "next": {"/monitor/tracking?search=1"}})
	if res.status != http.StatusSeeOther || res.location != "/monitor/tracking?search=1" {
		t.Fatalf("POST /login = %d to %q, want 303 to the requested page", res.status, res.location)
	}
	page := sh.get(t, c, "/monitor/tracking?search=1")
	if page.status != http.StatusOK {
		t.Fatalf("GET after login = %d, want 200", page.status)
	}
	names := find(page.doc, func(n *html.Node) bool { return hasClass(n, "user-name") })
	if len(names) != 1 || text(names[0]) != "admin Administrator" {
		t.Errorf("top bar user = %v, want admin Administrator", names)
	}
	if got := sh.get(t, c, "/login"); got.status != http.StatusSeeOther || got.location != "/" {
		t.Errorf("GET /login when signed in = %d to %q, want 303 to /", got.status, got.location)
	}

	// Sign out: the session ends and the login page says so.
	res = sh.post(t, c, "/logout", url.Values{"csrf_token": {token(t, page)}})
	if res.status != http.StatusSeeOther || res.location != "/login" {
		t.Fatalf("POST /logout = %d to %q, want 303 to /login", res.status, res.location)
	}
	if !strings.Contains(text(sh.get(t, c, "/login").doc), "Success — You have signed out.") {
		t.Errorf("login page after sign-out lacks the signed-out banner")
	}
	if res := sh.get(t, c, "/monitor/tracking"); res.status != http.StatusSeeOther {
		t.Errorf("GET protected page after sign-out = %d, want 303", res.status)
	}
}

func TestCSRF(t *testing.T) {
	sh := newShell(t)
	c := sh.client(t)
	tok := sh.signIn(t, c)

	other := sh.client(t)
	otherTok := sh.signIn(t, other)

	tests := []struct {
		name   string
		form   url.Values
		header map[string]string
		status int
	}{
		{"valid token", url.Values{"csrf_token": {tok}}, nil, http.StatusOK},
		{"valid token in header", nil, map[string]string{"X-CSRF-Token": tok}, http.StatusOK},
		{"no token", url.Values{"x": {"1"}}, nil, http.StatusForbidden},
		{"wrong token", url.Values{"csrf_token": {tok + "x"}}, nil, http.StatusForbidden},
		{"another session's token", url.Values{"csrf_token": {otherTok}}, nil, http.StatusForbidden},
		{"cross-site browser request", url.Values{"csrf_token": {tok}}, map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"foreign origin", url.Values{"csrf_token": {tok}}, map[string]string{"Origin": "https://evil.example"}, http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest("POST", sh.srv.URL+"/echo", strings.NewReader(tt.form.Encode()))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			res := do(t, c, req)
			if res.status != tt.status {
				t.Fatalf("POST /echo = %d, want %d:\n%s", res.status, tt.status, res.body)
			}
			switch tt.status {
			case http.StatusOK:
				if res.body != "ok admin" {
					t.Errorf("POST /echo body = %q, want %q", res.body, "ok admin")
				}
			case http.StatusForbidden:
				if !strings.Contains(text(res.doc), "This form has expired or did not come from this page.") {
					t.Errorf("403 page does not explain the refusal:\n%s", res.body)
				}
			}
		})
	}

	t.Run("oversize form", func(t *testing.T) {
		res := sh.post(t, c, "/echo", url.Values{"csrf_token": {tok}, "pad": {strings.Repeat("a", MaxFormBytes)}})
		if res.status != http.StatusForbidden {
			t.Errorf("POST of %d bytes = %d, want 403", MaxFormBytes, res.status)
		}
	})
	t.Run("login without token", func(t *testing.T) {
		res := sh.post(t, sh.client(t), "/login", url.Values{"username": {"admin"}, "passphrase": {"ironport"}})
		if res.status != http.StatusForbidden {
			t.Errorf("POST /login without a token = %d, want 403", res.status)
		}
	})
}

func TestSessionExpiryAndRefresh(t *testing.T) {
	sh := newShell(t)
	c := sh.client(t)
	sh.signIn(t, c)
	start := sh.now

	// Past half the lifetime, a request extends the session.
	sh.now = start.Add(20 * time.Minute)
	if res := sh.get(t, c, "/monitor/tracking"); res.status != http.StatusOK {
		t.Fatalf("GET at +20m = %d, want 200", res.status)
	}
	sh.now = start.Add(45 * time.Minute)
	if res := sh.get(t, c, "/monitor/tracking"); res.status != http.StatusOK {
		t.Fatalf("GET at +45m after a refresh at +20m = %d, want 200", res.status)
	}
	// Idle past MaxAge: the session is over.
	sh.now = start.Add(80 * time.Minute)
	res := sh.get(t, c, "/monitor/tracking")
	if res.status != http.StatusSeeOther || !strings.HasPrefix(res.location, "/login?next=") {
		t.Fatalf("GET after expiry = %d to %q, want 303 to login", res.status, res.location)
	}
	if !strings.Contains(text(sh.get(t, c, res.location).doc), "Error — Your session has expired. Sign in again.") {
		t.Errorf("login page after expiry lacks the expiry banner")
	}
}

func TestSessionsGet(t *testing.T) {
	now := time.Date(2026, 1, 10, 8, 0, 0, 0, time.UTC)
	s, err := NewSessions("sl", testKey)
	if err != nil {
		t.Fatal(err)
	}
	s.now = func() time.Time { return now }
	rec := httptest.NewRecorder()
	want, err := s.Login(rec, httptest.NewRequest("GET", "/", nil), User{Name: "admin", Role: "Administrator"})
	if err != nil {
		t.Fatal(err)
	}
	cookie := rec.Result().Cookies()[0]
	if !cookie.HttpOnly || cookie.SameSite != http.SameSiteLaxMode || cookie.Secure || cookie.Path != "/" {
		t.Errorf("session cookie = %+v, want HttpOnly, SameSite=Lax, not Secure on plain HTTP, Path=/", cookie)
	}
	payload, sig, _ := strings.Cut(cookie.Value, ".")
	otherKey, err := NewSessions("sl", []byte("another key of thirty-two bytes!!"))
	if err != nil {
		t.Fatal(err)
	}
	otherKey.now = s.now
	otherName, err := NewSessions("sl2", testKey)
	if err != nil {
		t.Fatal(err)
	}
	otherName.now = s.now

	tests := []struct {
		name  string
		s     *Sessions
		value string
		at    time.Time
		ok    bool
	}{
		{"valid", s, cookie.Value, now, true},
		{"last second", s, cookie.Value, now.Add(30*time.Minute - time.Second), true},
		{"expired", s, cookie.Value, now.Add(30 * time.Minute), false},
		{"tampered payload", s, "x" + payload + "." + sig, now, false},
		{"tampered signature", s, payload + "." + sig[:len(sig)-2] + "AA", now, false},
		{"no signature", s, payload, now, false},
		{"other key", otherKey, cookie.Value, now, false},
		{"other cookie name", otherName, cookie.Value, now, false},
		{"garbage", s, "%%%.%%%", now, false},
		{"oversize", s, strings.Repeat("a", maxCookie+1), now, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.s.now = func() time.Time { return tt.at }
			req := httptest.NewRequest("GET", "/", nil)
			req.AddCookie(&http.Cookie{Name: tt.s.name, Value: tt.value})
			got, ok := tt.s.Get(req)
			if ok != tt.ok {
				t.Fatalf("Get(%q) ok = %v, want %v", tt.value, ok, tt.ok)
			}
			if ok && !cmp.Equal(got, want) {
				t.Errorf("Get = %+v, want %+v", got, want)
			}
		})
	}

	t.Run("secure on TLS", func(t *testing.T) {
		rec := httptest.NewRecorder()
		if _, err := s.Login(rec, httptest.NewRequest("GET", "https://gw.example/", nil), User{Name: "admin"}); err != nil {
			t.Fatal(err)
		}
		if c := rec.Result().Cookies()[0]; !c.Secure {
			t.Errorf("session cookie on a TLS request = %+v, want Secure", c)
		}
	})
}

func TestNewSessions(t *testing.T) {
	tests := []struct {
		name string
		key  []byte
		ok   bool
	}{
		{"sl_gateway", testKey, true},
		{"sl_gateway", testKey[:31], false},
		{"", testKey, false},
		{"a;b", testKey, false},
	}
	for _, tt := range tests {
		if _, err := NewSessions(tt.name, tt.key); (err == nil) != tt.ok {
			t.Errorf("NewSessions(%q, %d bytes) error = %v, want ok %v", tt.name, len(tt.key), err, tt.ok)
		}
	}
}

func TestRenderNavAndBanners(t *testing.T) {
	sh := newShell(t)
	c := sh.client(t)
	tok := sh.signIn(t, c)

	page := sh.get(t, c, "/monitor/tracking")
	var sections []string
	for _, b := range find(page.doc, func(n *html.Node) bool { return hasClass(n, "nav-title") }) {
		sections = append(sections, text(b))
	}
	if diff := cmp.Diff([]string{"Monitor", "Network"}, sections); diff != "" {
		t.Errorf("nav sections (-want +got):\n%s", diff)
	}
	var links []string
	for _, a := range find(page.doc, func(n *html.Node) bool {
		return n.Data == "a" && n.Parent != nil && n.Parent.Parent != nil && hasClass(n.Parent.Parent, "nav-items")
	}) {
		links = append(links, text(a)+" "+attr(a, "href"))
	}
	wantLinks := []string{"Message Tracking /monitor/tracking", "Quarantine /monitor/quarantine", "Cloud Service Settings /network/cloud"}
	if diff := cmp.Diff(wantLinks, links); diff != "" {
		t.Errorf("nav links (-want +got):\n%s", diff)
	}
	current := find(page.doc, func(n *html.Node) bool { return attr(n, "aria-current") == "page" })
	if len(current) != 1 || text(current[0]) != "Message Tracking" {
		t.Errorf("current nav item = %v, want Message Tracking", current)
	}
	if got := find(page.doc, func(n *html.Node) bool { return hasClass(n, "crumb") }); len(got) != 1 || text(got[0]) != "Monitor" {
		t.Errorf("breadcrumb = %v, want Monitor", got)
	}
	if got := find(page.doc, func(n *html.Node) bool { return hasClass(n, "pending") }); len(got) != 0 {
		t.Errorf("pending banner shown without pending changes")
	}

	// A flash set before a redirect shows once, with the pending banner.
	sh.post(t, c, "/echo", url.Values{"csrf_token": {tok}})
	sh.pending = true
	page = sh.get(t, c, "/monitor/tracking")
	success := find(page.doc, func(n *html.Node) bool { return hasClass(n, "banner-success") })
	if len(success) != 1 || text(success[0]) != "Success — Your changes have been committed." {
		t.Errorf("success banners = %d %q, want one with the commit message", len(success), page.body)
	}
	pending := find(page.doc, func(n *html.Node) bool { return hasClass(n, "pending") })
	if len(pending) != 1 || text(pending[0]) != "You have uncommitted changes. Commit Changes Clear Changes" {
		t.Fatalf("pending banner = %v, want the uncommitted-changes banner", pending)
	}
	forms := find(pending[0], func(n *html.Node) bool { return n.Data == "form" })
	if len(forms) != 1 || attr(forms[0], "action") != "/clear" || attr(forms[0], "method") != "post" || token(t, response{doc: forms[0]}) != tok {
		t.Errorf("Clear Changes is not a CSRF-protected POST to /clear")
	}
	again := sh.get(t, c, "/monitor/tracking")
	if got := find(again.doc, func(n *html.Node) bool { return hasClass(n, "banner-success") }); len(got) != 0 {
		t.Errorf("flash shown twice")
	}
}

func TestNotFoundAndStatic(t *testing.T) {
	sh := newShell(t)
	c := sh.client(t)
	sh.signIn(t, c)
	if res := sh.get(t, c, "/nowhere"); res.status != http.StatusNotFound || !strings.Contains(text(res.doc), "There is no page at /nowhere.") {
		t.Errorf("GET /nowhere = %d %q, want 404 naming the path", res.status, text(res.doc))
	}

	tests := []struct {
		path, cache string
		status      int
	}{
		{"/static/style.css?v=" + sh.rd.hashes["style.css"], "public, max-age=31536000, immutable", http.StatusOK},
		{"/static/app.js", "no-cache", http.StatusOK},
		{"/static/layout.html", "", http.StatusNotFound},
		{"/static/", "", http.StatusNotFound},
	}
	for _, tt := range tests {
		res, err := c.Get(sh.srv.URL + tt.path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != tt.status || (tt.cache != "" && res.Header.Get("Cache-Control") != tt.cache) {
			t.Errorf("GET %s = %d, Cache-Control %q; want %d, %q", tt.path, res.StatusCode, res.Header.Get("Cache-Control"), tt.status, tt.cache)
		}
	}
}

func TestNewRendererErrors(t *testing.T) {
	s, err := NewSessions("sl", testKey)
	if err != nil {
		t.Fatal(err)
	}
	content := &fstest.MapFile{Data: []byte(`{{define "content"}}x{{end}}`)}
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no sessions", Config{}, "without sessions"},
		{"clash with shell page", Config{Sessions: s, Pages: fstest.MapFS{"login.html": content}}, "login.html defined twice"},
		{"no content", Config{Sessions: s, Pages: fstest.MapFS{"a.html": {Data: []byte(`hello`)}}}, `a.html does not define "content"`},
		{"bad template", Config{Sessions: s, Pages: fstest.MapFS{"a.html": {Data: []byte(`{{define "content"}}{{.X`)}}}, "unclosed action"},
		{"reserved func", Config{Sessions: s, Funcs: map[string]any{"time": fmt.Sprint}}, `"time" is reserved`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewRenderer(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NewRenderer() error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestHTTPStatus(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{sightline.Errorf(sightline.Invalid, "x"), 400},
		{sightline.Errorf(sightline.Unauthorized, "x"), 401},
		{sightline.Errorf(sightline.Forbidden, "x"), 403},
		{sightline.Errorf(sightline.NotFound, "x"), 404},
		{sightline.Errorf(sightline.Conflict, "x"), 409},
		{sightline.Errorf(sightline.Internal, "x"), 500},
		{sightline.Errorf(sightline.Unavailable, "x"), 503},
		{fmt.Errorf("wrapped: %w", sightline.Errorf(sightline.NotFound, "x")), 404},
		{errors.New("plain"), 500},
		{&sightline.Error{Kind: "made-up"}, 500},
	}
	for _, tt := range tests {
		if got := HTTPStatus(tt.err); got != tt.want {
			t.Errorf("HTTPStatus(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
	for _, k := range []sightline.Kind{sightline.Invalid, sightline.NotFound, sightline.Conflict, sightline.Unauthorized, sightline.Forbidden, sightline.Unavailable, sightline.Internal} {
		if _, ok := statusOf[k]; !ok {
			t.Errorf("statusOf has no entry for %q", k)
		}
	}
}

func TestLocalPath(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/monitor/tracking?x=1", "/monitor/tracking?x=1"},
		{"", "/"},
		{"https://evil.example/", "/"},
		{"//evil.example/", "/"},
		{"/\\evil.example", "/"},
		{"monitor", "/"},
		{"/a\r\nSet-Cookie: x", "/"},
	}
	for _, tt := range tests {
		if got := localPath(tt.in); got != tt.want {
			t.Errorf("localPath(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestFormat(t *testing.T) {
	sizes := []struct {
		n    int64
		want string
	}{{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KB"}, {40192, "39.2 KB"}, {1 << 20, "1.0 MB"}, {5 << 30, "5.0 GB"}}
	for _, tt := range sizes {
		if got := FormatSize(tt.n); got != tt.want {
			t.Errorf("FormatSize(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Skip("no time zone database:", err)
	}
	rd := &Renderer{cfg: Config{Location: paris}}
	at := time.Date(2020, 5, 14, 13, 23, 57, 0, time.UTC)
	if got, want := rd.FormatTime(at), "14 May 2020 15:23:57 (GMT +02:00)"; got != want {
		t.Errorf("FormatTime(%v) = %q, want %q", at, got, want)
	}
	if got := rd.FormatTime(time.Time{}); got != "" {
		t.Errorf("FormatTime(zero) = %q, want empty", got)
	}
}

func FuzzSessionsGet(f *testing.F) {
	s, err := NewSessions("sl", testKey)
	if err != nil {
		f.Fatal(err)
	}
	rec := httptest.NewRecorder()
	if _, err := s.Login(rec, httptest.NewRequest("GET", "/", nil), User{Name: "admin"}); err != nil {
		f.Fatal(err)
	}
	f.Add(rec.Result().Cookies()[0].Value)
	f.Add("e30.AAAA")
	f.Add("")
	f.Fuzz(func(t *testing.T, v string) {
		req := httptest.NewRequest("GET", "/", nil)
		req.Header.Set("Cookie", "sl="+v)
		if sess, ok := s.Get(req); ok && (sess.User.Name == "" || sess.CSRF == "") {
			t.Errorf("Get(%q) = %+v, accepted without a user or token", v, sess)
		}
	})
}
