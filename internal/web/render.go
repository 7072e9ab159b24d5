package web

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/sightline/sightline"
)

//go:embed assets
var assets embed.FS

// Config is what a role gives NewRenderer.
type Config struct {
	// Product is the name in the top bar; "" means "Sightline".
	Product string
	// Role names the role after the product, e.g. "Email Gateway".
	Role string
	// Nav is the role's navigation.
	Nav Nav
	// Pages holds the role's page templates: every *.html file at its root
	// is a page named by its file name, and defines "content". Names may not
	// clash with the shell's own pages (login.html, error.html).
	Pages fs.FS
	// Funcs are extra template functions for the pages; they may not replace
	// the shell's (see NewRenderer).
	Funcs template.FuncMap
	// Sessions is required.
	Sessions *Sessions
	// Pending, when set, reports whether the request's user has staged
	// configuration changes; true shows the uncommitted-changes banner.
	Pending func(*http.Request) bool
	// CommitPath is the banner's Commit Changes link (a page that asks for
	// a comment); "" means "/commit". ClearPath receives the Clear Changes
	// form post; "" means "/clear". LogoutPath receives Sign out; "" means
	// "/logout".
	CommitPath, ClearPath, LogoutPath string
	// Location is the time zone times are shown in; nil means UTC.
	Location *time.Location
	// Logger receives template and handler errors; nil discards them.
	Logger *slog.Logger
}

// Renderer renders pages inside the shared layout. Templates are parsed once
// by NewRenderer; a Renderer is safe for concurrent use.
type Renderer struct {
	cfg    Config
	pages  map[string]*template.Template
	hashes map[string]string // asset name → short content hash, for cache busting
	log    *slog.Logger
	origin *http.CrossOriginProtection
}

// NewRenderer parses the layout, the shell's pages and cfg.Pages.
//
// Besides cfg.Funcs, templates can call: asset (versioned URL of an embedded
// static file), time (a time.Time in the AsyncOS form "02 Jan 2006 15:04:05
// (GMT -07:00)" in cfg.Location), size (bytes as "39.3 KB"), and add.
func NewRenderer(cfg Config) (*Renderer, error) {
	if cfg.Sessions == nil {
		return nil, errors.New("web: renderer without sessions")
	}
	if err := cfg.Nav.check(); err != nil {
		return nil, err
	}
	if cfg.Product == "" {
		cfg.Product = "Sightline"
	}
	if cfg.Location == nil {
		cfg.Location = time.UTC
	}
	for p, def := range map[*string]string{&cfg.CommitPath: "/commit", &cfg.ClearPath: "/clear", &cfg.LogoutPath: "/logout"} {
		if *p == "" {
			*p = def
		}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rd := &Renderer{cfg: cfg, pages: map[string]*template.Template{}, hashes: map[string]string{},
		log: log.With("component", "web"), origin: http.NewCrossOriginProtection()}

	static, err := fs.ReadDir(assets, "assets/static")
	if err != nil {
		return nil, fmt.Errorf("web: read assets: %w", err)
	}
	for _, e := range static {
		b, err := fs.ReadFile(assets, "assets/static/"+e.Name())
		if err != nil {
			return nil, fmt.Errorf("web: read asset %s: %w", e.Name(), err)
		}
		sum := sha256.Sum256(b)
		rd.hashes[e.Name()] = hex.EncodeToString(sum[:6])
	}

	funcs := template.FuncMap{}
	for k, v := range cfg.Funcs {
		funcs[k] = v
	}
	for k, v := range rd.funcs() {
		if _, dup := cfg.Funcs[k]; dup {
			return nil, fmt.Errorf("web: template function %q is reserved by the shell", k)
		}
		funcs[k] = v
	}
	base, err := template.New("layout.html").Funcs(funcs).ParseFS(assets, "assets/layout.html")
	if err != nil {
		return nil, fmt.Errorf("web: parse layout: %w", err)
	}
	add := func(fsys fs.FS, dir string) error {
		names, err := fs.Glob(fsys, path.Join(dir, "*.html"))
		if err != nil {
			return err
		}
		for _, n := range names {
			name := path.Base(n)
			if name == "layout.html" {
				continue
			}
			if _, dup := rd.pages[name]; dup {
				return fmt.Errorf("page %s defined twice", name)
			}
			t := template.Must(base.Clone())
			if _, err := t.ParseFS(fsys, n); err != nil {
				return err
			}
			if t.Lookup("content") == nil {
				return fmt.Errorf("page %s does not define \"content\"", name)
			}
			rd.pages[name] = t
		}
		return nil
	}
	if err := add(assets, "assets"); err != nil {
		return nil, fmt.Errorf("web: parse shell pages: %w", err)
	}
	if cfg.Pages != nil {
		if err := add(cfg.Pages, "."); err != nil {
			return nil, fmt.Errorf("web: parse pages: %w", err)
		}
	}
	return rd, nil
}

func (rd *Renderer) funcs() template.FuncMap {
	return template.FuncMap{
		"asset": func(name string) string { return "/static/" + name + "?v=" + rd.hashes[name] },
		"time":  rd.FormatTime,
		"size":  FormatSize,
		"add":   func(a, b int) int { return a + b },
		"dict":  dict,
	}
}

// dict builds a map from alternating keys and values, so that a page can
// pass several values to a sub-template: {{template "x" (dict "A" 1 "B" 2)}}.
func dict(kv ...any) (map[string]any, error) {
	if len(kv)%2 != 0 {
		return nil, errors.New("dict: odd number of arguments")
	}
	m := make(map[string]any, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		k, ok := kv[i].(string)
		if !ok {
			return nil, fmt.Errorf("dict: key %v is not a string", kv[i])
		}
		m[k] = kv[i+1]
	}
	return m, nil
}

// Sessions returns the Renderer's sessions.
func (rd *Renderer) Sessions() *Sessions { return rd.cfg.Sessions }

// FormatTime prints t as AsyncOS does, "14 May 2020 13:23:57 (GMT +00:00)",
// in the Renderer's time zone; the zero time prints as "".
func (rd *Renderer) FormatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.In(rd.cfg.Location).Format("02 Jan 2006 15:04:05 (GMT -07:00)")
}

// FormatSize prints a byte count for people: "812 B", "39.3 KB", "1.5 MB".
func FormatSize(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	v, i := float64(n)/unit, 0
	for v >= unit && i < 3 {
		v /= unit
		i++
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + " " + [...]string{"KB", "MB", "GB", "TB"}[i]
}

// view is what the layout executes on: the page's data plus the shell's.
type view struct {
	PageData
	Page          string // page name without ".html", for per-page styling
	Product, Role string
	Menu          []menuSection
	Section       string // title of the active section, for the breadcrumb
	CommitPath    string
	ClearPath     string
	LogoutPath    string
}

// menuSection is a Section as the layout shows it. Active marks the section
// of the page shown; Current marks a link (a section's or an item's) that
// opens the page shown, for aria-current.
type menuSection struct {
	Title, Path, Icon string
	Active, Current   bool
	Items             []menuItem
}

type menuItem struct {
	Label, Path string
	Current     bool
}

// menu returns nav as the layout shows it for the page at path, and the
// breadcrumb: the title of the active drop-down or icon menu, else of the
// active link.
func menu(nav Nav, path string) ([]menuSection, string) {
	cur := nav.current(path)
	out := make([]menuSection, 0, len(nav))
	var crumb, linkCrumb string
	for _, sec := range nav {
		m := menuSection{Title: sec.Title, Path: sec.Path, Icon: sec.Icon, Current: cur != "" && sec.Path == cur}
		m.Active = m.Current
		for _, it := range sec.Items {
			c := cur != "" && it.Path == cur
			m.Items = append(m.Items, menuItem{Label: it.Label, Path: it.Path, Current: c})
			m.Active = m.Active || c
		}
		switch {
		case !m.Active:
		case sec.Path == "" && crumb == "":
			crumb = sec.Title
		case sec.Path != "" && linkCrumb == "":
			linkCrumb = sec.Title
		}
		out = append(out, m)
	}
	if crumb == "" {
		crumb = linkCrumb
	}
	return out, crumb
}

// Render writes page inside the layout with the given status. Unset parts of
// data are filled from the request: the user, the flash messages, the form
// token, the pending-changes banner. The page is rendered to a buffer first,
// so a template error gives a clean 500 page, and is logged.
func (rd *Renderer) Render(w http.ResponseWriter, r *http.Request, status int, page string, data PageData) {
	t, ok := rd.pages[page]
	if !ok {
		rd.log.Error("render unknown page", "page", page)
		rd.Error(w, r, sightline.Errorf(sightline.Internal, "internal error"))
		return
	}
	s := rd.cfg.Sessions
	if data.User == nil {
		if sess, ok := s.Get(r); ok {
			data.User = &sess.User
		}
	}
	if data.Flash == nil {
		data.Flash = s.Flashes(w, r)
	}
	data.CSRF = s.token(w, r)
	if !data.Pending && rd.cfg.Pending != nil && data.User != nil {
		data.Pending = rd.cfg.Pending(r)
	}
	if data.Nav == nil {
		data.Nav = rd.cfg.Nav
	}
	v := view{PageData: data, Page: strings.TrimSuffix(page, ".html"), Product: rd.cfg.Product, Role: rd.cfg.Role,
		CommitPath: rd.cfg.CommitPath, ClearPath: rd.cfg.ClearPath, LogoutPath: rd.cfg.LogoutPath}
	if data.User != nil {
		v.Menu, v.Section = menu(data.Nav, r.URL.Path)
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout.html", v); err != nil {
		rd.log.Error("render page", "page", page, "err", err)
		if page != "error.html" {
			rd.Error(w, r, sightline.Wrap(sightline.Internal, err, "internal error"))
		} else {
			http.Error(w, "internal error", http.StatusInternalServerError)
		}
		return
	}
	setHeaders(w.Header())
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		w.Write(buf.Bytes())
	}
}

// setHeaders sets the security headers of every page the shell serves.
func setHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
}

// statusOf maps an error kind to the HTTP status of the page that shows it.
var statusOf = map[sightline.Kind]int{
	sightline.Invalid:      http.StatusBadRequest,
	sightline.NotFound:     http.StatusNotFound,
	sightline.Conflict:     http.StatusConflict,
	sightline.Unauthorized: http.StatusUnauthorized,
	sightline.Forbidden:    http.StatusForbidden,
	sightline.Unavailable:  http.StatusServiceUnavailable,
	sightline.Internal:     http.StatusInternalServerError,
}

// HTTPStatus returns the status a page answers for err's kind: 400 Invalid,
// 404 NotFound, 409 Conflict, 401 Unauthorized, 403 Forbidden,
// 503 Unavailable, 500 Internal or unknown.
func HTTPStatus(err error) int {
	if s, ok := statusOf[sightline.ErrorKind(err)]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// errorPage is the data of error.html.
type errorPage struct {
	Status  int
	Message string
}

// Error renders an error page for err: its status from HTTPStatus, its
// user-safe message from sightline.ErrorMessage. Internal and Unavailable
// errors are logged with their cause.
func (rd *Renderer) Error(w http.ResponseWriter, r *http.Request, err error) {
	status := HTTPStatus(err)
	if status >= 500 {
		rd.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	rd.Render(w, r, status, "error.html", PageData{
		Title: http.StatusText(status),
		Data:  errorPage{Status: status, Message: sightline.ErrorMessage(err)},
	})
}

// NotFound renders the 404 page; use it as the role mux's fallback.
func (rd *Renderer) NotFound(w http.ResponseWriter, r *http.Request) {
	rd.Error(w, r, sightline.Errorf(sightline.NotFound, "There is no page at %s.", r.URL.Path))
}

// MaxFormBytes bounds the body of a form post checked by CSRF.
const MaxFormBytes = 1 << 20

// CSRF refuses, with a 403 page, every request other than GET, HEAD and
// OPTIONS whose form field "csrf_token" (or header X-CSRF-Token) does not
// match the browser's token, or that a browser marks as cross-origin. It
// also limits form bodies to MaxFormBytes.
func (rd *Renderer) CSRF(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
			next.ServeHTTP(w, r)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxFormBytes)
		want := rd.cfg.Sessions.expected(r)
		got := r.Header.Get("X-CSRF-Token")
		if got == "" {
			got = r.PostFormValue("csrf_token")
		}
		if err := rd.origin.Check(r); err != nil || want == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
			rd.log.Warn("form refused", "method", r.Method, "path", r.URL.Path, "remote_addr", r.RemoteAddr, "cross_origin", err != nil)
			rd.Error(w, r, sightline.Errorf(sightline.Forbidden,
				"This form has expired or did not come from this page. Go back, reload the page and try again."))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Static serves the shell's embedded CSS, JavaScript and images; mount it
// at "GET /static/". A request carrying the current version (?v=, as the
// asset template function writes it) may be cached for a year.
func (rd *Renderer) Static() http.Handler {
	sub, err := fs.Sub(assets, "assets/static")
	if err != nil {
		panic(err) // the embedded tree always has it
	}
	files := http.StripPrefix("/static/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/static/")
		h, ok := rd.hashes[name]
		if !ok {
			rd.NotFound(w, r)
			return
		}
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if r.URL.Query().Get("v") == h {
			w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			w.Header().Set("Cache-Control", "no-cache")
		}
		files.ServeHTTP(w, r)
	})
}
