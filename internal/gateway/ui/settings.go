package ui

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/gateway/config"
	"github.com/sightline/sightline/internal/web"
)

// Settings is the gateway configuration with its commit model, as the
// configuration pages use it; *config.Manager implements it.
//
// Edit stages a change in the user's pending copy; its validation errors are
// *sightline.Error of kind Invalid whose message names the setting, and are
// shown on the form. Nothing applies until Commit.
type Settings interface {
	View(ctx context.Context, user string) (cfg *config.Config, pending bool, err error)
	Edit(ctx context.Context, user string, edit func(*config.Config) error) error
	HasPending(ctx context.Context, user string) (bool, error)
	Commit(ctx context.Context, user, comment string) (*config.Commit, error)
	Clear(ctx context.Context, user string) (bool, error)
	History(ctx context.Context) ([]config.Commit, error)
	Rollback(ctx context.Context, user string, id int64) (*config.Commit, error)
	// Running returns a copy of the running configuration.
	Running() *config.Config
}

// Roles of gateway users (gateway-api.md §12), as web.User.Role carries
// them. Administrators and Operators change the configuration; only
// Administrators manage users; every other role only views.
const (
	RoleAdministrator    = "Administrator"
	RoleOperator         = "Operator"
	RoleReadOnlyOperator = "ReadOnlyOperator"
	RoleGuest            = "Guest"
	RoleTechnician       = "Technician"
	RoleHelpDeskUser     = "HelpDeskUser"
)

// roles are the roles offered when adding a user, with their labels.
var roles = []option{
	{RoleAdministrator, "Administrator"},
	{RoleOperator, "Operator"},
	{RoleReadOnlyOperator, "Read-Only Operator"},
	{RoleGuest, "Guest"},
	{RoleTechnician, "Technician"},
	{RoleHelpDeskUser, "Help Desk User"},
}

func roleLabel(role string) string {
	for _, r := range roles {
		if r.Value == role {
			return r.Label
		}
	}
	if role == "" {
		return "no role"
	}
	return role
}

// canEdit reports whether a role may stage and commit configuration changes.
func canEdit(role string) bool { return role == RoleAdministrator || role == RoleOperator }

// sessionUser returns the signed-in user that RequireUser put in ctx.
func sessionUser(r *http.Request) web.User {
	s, _ := web.SessionFrom(r.Context())
	return s.User
}

// editor wraps the handlers that change the configuration: other roles get
// a 403 page saying why.
func (u *UI) editor(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if user := sessionUser(r); !canEdit(user.Role) {
			u.log.Info("configuration change refused", "user", user.Name, "role", user.Role, "path", r.URL.Path)
			u.rd.Error(w, r, sightline.Errorf(sightline.Forbidden,
				"Your role (%s) can view the configuration but not change it. Ask an administrator or an operator to make this change.", roleLabel(user.Role)))
			return
		}
		h(w, r)
	}
}

// settingsData is the part every configuration page shares.
type settingsData struct {
	CanEdit bool
	Errors  []string        // problems with the submitted form
	Invalid map[string]bool // form fields to mark invalid
}

// fail records a problem with a form field.
func (d *settingsData) fail(field, format string, args ...any) {
	d.Errors = append(d.Errors, fmt.Sprintf(format, args...))
	if d.Invalid == nil {
		d.Invalid = map[string]bool{}
	}
	if field != "" {
		d.Invalid[field] = true
	}
}

// view loads the configuration the signed-in user sees (their pending copy
// if any); on error it renders the error page and returns nil.
func (u *UI) view(w http.ResponseWriter, r *http.Request) *config.Config {
	if u.cfg.Settings == nil {
		u.unavailable(w, r, "The configuration")
		return nil
	}
	cfg, _, err := u.cfg.Settings.View(r.Context(), sessionUser(r).Name)
	if err != nil {
		u.rd.Error(w, r, err)
		return nil
	}
	return cfg
}

// stage stages edit as the signed-in user's change. It reports whether it
// wrote the response: a redirect to back on success, the error page for an
// error other than Invalid. An Invalid error's problems are added to d and
// stage returns false, for the caller to show the form again.
func (u *UI) stage(w http.ResponseWriter, r *http.Request, d *settingsData, back string, edit func(*config.Config) error) (handled bool) {
	if u.cfg.Settings == nil {
		u.unavailable(w, r, "The configuration")
		return true
	}
	user := sessionUser(r)
	err := u.cfg.Settings.Edit(r.Context(), user.Name, edit)
	switch {
	case err == nil:
		u.log.Info("configuration change staged", "user", user.Name, "path", r.URL.Path)
		http.Redirect(w, r, back, http.StatusSeeOther)
		return true
	case errors.Is(err, errFormProblems):
		return false
	case sightline.ErrorKind(err) == sightline.Invalid:
		for _, p := range strings.Split(sightline.ErrorMessage(err), "; ") {
			d.fail("", "%s", p)
		}
		return false
	default:
		u.rd.Error(w, r, err)
		return true
	}
}

// parseForm reads a posted form; on error it renders the error page.
func (u *UI) parseForm(w http.ResponseWriter, r *http.Request) bool {
	if err := r.ParseForm(); err != nil {
		u.rd.Error(w, r, sightline.Wrap(sightline.Invalid, err, "The form could not be read."))
		return false
	}
	return true
}

// maxLines bounds the lines of a multi-line field (sources, entries, hosts).
const maxLines = 10000

// lines splits a textarea into its non-blank trimmed lines.
func lines(s string) []string {
	var out []string
	for l := range strings.Lines(s) {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// field returns a trimmed form value.
func field(r *http.Request, name string) string { return strings.TrimSpace(r.PostFormValue(name)) }

// checked reports whether a checkbox was ticked.
func checked(r *http.Request, name string) bool { return r.PostFormValue(name) != "" }

// indexOf returns the index of the first item key matches, or -1.
func indexOf[T any](items []T, match func(T) bool) int {
	for i, it := range items {
		if match(it) {
			return i
		}
	}
	return -1
}

// moveItem moves item i of s one place up or down, as dir says; moving
// past either end does nothing.
func moveItem[T any](s []T, i int, dir string) error {
	j := i - 1
	switch dir {
	case "up":
	case "down":
		j = i + 1
	default:
		return sightline.Errorf(sightline.Invalid, "Move %q: want up or down.", clip(dir))
	}
	if j >= 0 && j < len(s) {
		s[i], s[j] = s[j], s[i]
	}
	return nil
}

func notFound(what, name string) error {
	return sightline.Errorf(sightline.NotFound, "There is no %s named %q.", what, clip(name))
}

// commitPage is the data of commit.html.
type commitPage struct {
	settingsData
	Pending bool
	Changed []string // labels of the configuration areas the pending copy changes
	Next    string
	Comment string
}

// maxComment bounds a commit comment.
const maxComment = 1024

// commitForm serves Commit Changes: the areas changed, a comment box,
// Commit Changes and Abandon Changes.
func (u *UI) commitForm(w http.ResponseWriter, r *http.Request) {
	u.renderCommit(w, r, http.StatusOK, commitPage{Next: backTo(r, r.URL.Query().Get("next"))})
}

func (u *UI) renderCommit(w http.ResponseWriter, r *http.Request, status int, d commitPage) {
	if u.cfg.Settings == nil {
		u.unavailable(w, r, "The configuration")
		return
	}
	user := sessionUser(r)
	cfg, pending, err := u.cfg.Settings.View(r.Context(), user.Name)
	if err != nil {
		u.rd.Error(w, r, err)
		return
	}
	d.CanEdit, d.Pending = canEdit(user.Role), pending
	if pending {
		d.Changed = changedAreas(u.cfg.Settings.Running(), cfg)
	}
	u.rd.Render(w, r, status, "commit.html", web.PageData{Title: "Uncommitted Changes", Data: d})
}

// commit applies the user's pending changes with the comment and returns to
// the page the user came from.
func (u *UI) commit(w http.ResponseWriter, r *http.Request) {
	if u.cfg.Settings == nil {
		u.unavailable(w, r, "The configuration")
		return
	}
	if !u.parseForm(w, r) {
		return
	}
	d := commitPage{Next: backTo(r, r.PostFormValue("next")), Comment: field(r, "comment")}
	if len(d.Comment) > maxComment {
		d.fail("comment", "Comment: at most %d characters.", maxComment)
		u.renderCommit(w, r, http.StatusBadRequest, d)
		return
	}
	user := sessionUser(r)
	c, err := u.cfg.Settings.Commit(r.Context(), user.Name, d.Comment)
	s := u.rd.Sessions()
	switch {
	case err == nil:
		u.log.Info("configuration committed", "user", user.Name, "commit", c.ID)
		s.AddFlash(w, r, web.Flash{Kind: web.FlashSuccess, Message: "Your changes have been committed."})
		http.Redirect(w, r, d.Next, http.StatusSeeOther)
	case sightline.ErrorKind(err) == sightline.Conflict:
		s.AddFlash(w, r, web.Flash{Kind: web.FlashError, Message: sightline.ErrorMessage(err)})
		http.Redirect(w, r, d.Next, http.StatusSeeOther)
	case sightline.ErrorKind(err) == sightline.Invalid:
		d.fail("", "%s", sightline.ErrorMessage(err))
		u.renderCommit(w, r, http.StatusBadRequest, d)
	default:
		u.rd.Error(w, r, err)
	}
}

// clear drops the user's pending changes (Clear Changes, Abandon Changes).
func (u *UI) clear(w http.ResponseWriter, r *http.Request) {
	if u.cfg.Settings == nil {
		u.unavailable(w, r, "The configuration")
		return
	}
	if !u.parseForm(w, r) {
		return
	}
	user := sessionUser(r)
	had, err := u.cfg.Settings.Clear(r.Context(), user.Name)
	if err != nil {
		u.rd.Error(w, r, err)
		return
	}
	f := web.Flash{Kind: web.FlashError, Message: "No changes have been made"}
	if had {
		u.log.Info("configuration changes cleared", "user", user.Name)
		f = web.Flash{Kind: web.FlashSuccess, Message: "Your changes have been cleared."}
	}
	u.rd.Sessions().AddFlash(w, r, f)
	next := backTo(r, r.PostFormValue("next"))
	if strings.HasPrefix(next, "/commit") {
		next = "/"
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// backTo returns where to go after a commit or clear: next when it is a
// local path, else the path of the page that linked here (same host only),
// else "/".
func backTo(r *http.Request, next string) string {
	if isLocalPath(next) {
		return next
	}
	if ref, err := url.Parse(r.Referer()); err == nil && ref.Host == r.Host && isLocalPath(ref.Path) && !strings.HasPrefix(ref.Path, "/commit") {
		if ref.RawQuery != "" {
			return ref.Path + "?" + ref.RawQuery
		}
		return ref.Path
	}
	return "/"
}

func isLocalPath(p string) bool {
	return p != "" && p[0] == '/' && !strings.HasPrefix(p, "//") && !strings.ContainsAny(p, "\\\r\n\t") && len(p) <= 2048
}

// areas are the parts of the configuration, as Commit Changes lists them.
var areas = []struct {
	label string
	part  func(*config.Config) any
}{
	{"Host Access Table and mail flow policies", func(c *config.Config) any {
		if c.SMTP == nil {
			return nil
		}
		return [2]any{c.SMTP.SenderGroups, c.SMTP.FlowPolicies}
	}},
	{"Recipient Access Table", func(c *config.Config) any {
		if c.SMTP == nil {
			return nil
		}
		return c.SMTP.RAT
	}},
	{"Content Filters", screening(func(c *config.Config) any { return c.Screening.ContentFilters })},
	{"Anti-Virus", func(c *config.Config) any {
		if c.Screening == nil {
			return c.AntiVirus
		}
		return [2]any{c.AntiVirus, c.Screening.AntiVirus}
	}},
	{"SPF/DKIM/DMARC", screening(func(c *config.Config) any { return c.Screening.DMARC })},
	{"Reputation Lists", screening(func(c *config.Config) any { return c.Screening.Lists })},
	{"SMTP Routes", func(c *config.Config) any { return c.Routes }},
	{"Cloud Service Settings", func(c *config.Config) any { return c.Cloud }},
	{"Hostname", func(c *config.Config) any { return c.Hostname }},
}

func screening(f func(*config.Config) any) func(*config.Config) any {
	return func(c *config.Config) any {
		if c.Screening == nil {
			return nil
		}
		return f(c)
	}
}

// changedAreas lists the areas in which b differs from a.
func changedAreas(a, b *config.Config) []string {
	var out []string
	for _, ar := range areas {
		x, _ := json.Marshal(ar.part(a))
		y, _ := json.Marshal(ar.part(b))
		if string(x) != string(y) {
			out = append(out, ar.label)
		}
	}
	return out
}

// historyPage is the data of history.html.
type historyPage struct {
	settingsData
	Commits []config.Commit // newest first; the first is running
}

// history serves System Administration > Configuration History.
func (u *UI) history(w http.ResponseWriter, r *http.Request) {
	if u.cfg.Settings == nil {
		u.unavailable(w, r, "The configuration")
		return
	}
	cs, err := u.cfg.Settings.History(r.Context())
	if err != nil {
		u.rd.Error(w, r, err)
		return
	}
	d := historyPage{Commits: cs}
	d.CanEdit = canEdit(sessionUser(r).Role)
	u.rd.Render(w, r, http.StatusOK, "history.html", web.PageData{Title: "Configuration History", Data: d})
}

// rollback makes an earlier configuration running again, as a new commit.
func (u *UI) rollback(w http.ResponseWriter, r *http.Request) {
	if u.cfg.Settings == nil {
		u.unavailable(w, r, "The configuration")
		return
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		u.rd.Error(w, r, sightline.Errorf(sightline.NotFound, "There is no configuration %q.", clip(r.PathValue("id"))))
		return
	}
	user := sessionUser(r)
	c, err := u.cfg.Settings.Rollback(r.Context(), user.Name, id)
	if err != nil {
		if sightline.ErrorKind(err) == sightline.NotFound {
			err = sightline.Wrap(sightline.NotFound, err, fmt.Sprintf("Configuration %d is no longer kept for rollback.", id))
		}
		u.rd.Error(w, r, err)
		return
	}
	u.log.Info("configuration rolled back", "user", user.Name, "to", id, "commit", c.ID)
	u.rd.Sessions().AddFlash(w, r, web.Flash{Kind: web.FlashSuccess,
		Message: fmt.Sprintf("Configuration %d is running again, committed as configuration %d.", id, c.ID)})
	http.Redirect(w, r, "/system/config-history", http.StatusSeeOther)
}
