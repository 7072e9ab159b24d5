package ui

import (
	"context"
	"net/http"
	"regexp"
	"time"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/web"
)

// Account is a gateway user as System Administration > Users shows it.
type Account struct {
	Name    string
	Role    string // a Role constant
	Created time.Time
}

// Accounts manages the gateway's users; the adapter hashes passwords. Errors
// are *sightline.Error: Conflict when a name is taken, NotFound for an
// unknown user, Invalid for a password the store refuses.
type Accounts interface {
	// Accounts lists the users by name.
	Accounts(ctx context.Context) ([]Account, error)
	CreateAccount(ctx context.Context, a Account, password string) error
	SetPassword(ctx context.Context, name, password string) error
	DeleteAccount(ctx context.Context, name string) error
}

// BuiltinAdmin is the built-in administrator, which cannot be deleted.
const BuiltinAdmin = "admin"

// Password length limits: bcrypt reads at most 72 bytes.
const (
	minPassword = 8
	maxPassword = 72
)

var userNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$`)

// administrator wraps the handlers that manage users.
func (u *UI) administrator(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if user := sessionUser(r); user.Role != RoleAdministrator {
			u.log.Info("user management refused", "user", user.Name, "role", user.Role, "path", r.URL.Path)
			u.rd.Error(w, r, sightline.Errorf(sightline.Forbidden,
				"Your role (%s) cannot manage users. Ask an administrator.", roleLabel(user.Role)))
			return
		}
		h(w, r)
	}
}

// usersPage is the data of users.html.
type usersPage struct {
	settingsData
	Accounts []Account
	Me       string
}

// users serves System Administration > Users.
func (u *UI) users(w http.ResponseWriter, r *http.Request) {
	if u.cfg.Accounts == nil {
		u.unavailable(w, r, "User management")
		return
	}
	as, err := u.cfg.Accounts.Accounts(r.Context())
	if err != nil {
		u.rd.Error(w, r, err)
		return
	}
	me := sessionUser(r)
	d := usersPage{Accounts: as, Me: me.Name}
	d.CanEdit = me.Role == RoleAdministrator
	u.rd.Render(w, r, http.StatusOK, "users.html", web.PageData{Title: "Users", Data: d})
}

// userPage is the data of user.html: adding a user, or changing a password.
type userPage struct {
	settingsData
	New     bool
	Name    string
	Role    string
	Roles   []option
	Current bool // ask for the current password (a user changing their own)
}

func (u *UI) renderUser(w http.ResponseWriter, r *http.Request, status int, d userPage) {
	d.CanEdit, d.Roles = true, roles
	title := "Add User"
	if !d.New {
		title = "Change Password: " + d.Name
	}
	u.rd.Render(w, r, status, "user.html", web.PageData{Title: title, Data: d})
}

// newUser serves the Add User form.
func (u *UI) newUser(w http.ResponseWriter, r *http.Request) {
	if u.cfg.Accounts == nil {
		u.unavailable(w, r, "User management")
		return
	}
	u.renderUser(w, r, http.StatusOK, userPage{New: true, Role: RoleOperator})
}

// readPassword checks the password and its confirmation.
func readPassword(r *http.Request, d *settingsData) string {
	pw := r.PostFormValue("password")
	switch {
	case len(pw) < minPassword || len(pw) > maxPassword:
		d.fail("password", "Password: %d to %d characters.", minPassword, maxPassword)
	case pw != r.PostFormValue("confirm"):
		d.fail("confirm", "Confirm Password: the two passwords differ.")
	}
	return pw
}

// createUser adds a user. Users are not part of the staged configuration:
// the change applies at once.
func (u *UI) createUser(w http.ResponseWriter, r *http.Request) {
	if u.cfg.Accounts == nil {
		u.unavailable(w, r, "User management")
		return
	}
	if !u.parseForm(w, r) {
		return
	}
	d := userPage{New: true, Name: field(r, "name"), Role: field(r, "role")}
	if !userNameRE.MatchString(d.Name) {
		d.fail("name", "User Name: 1 to 32 letters, digits, dots, dashes or underscores, starting with a letter or digit.")
	}
	if indexOf(roles, func(o option) bool { return o.Value == d.Role }) < 0 {
		d.fail("role", "User Role: choose one of the roles listed.")
	}
	pw := readPassword(r, &d.settingsData)
	if len(d.Errors) == 0 {
		err := u.cfg.Accounts.CreateAccount(r.Context(), Account{Name: d.Name, Role: d.Role, Created: u.cfg.Now()}, pw)
		switch k := sightline.ErrorKind(err); {
		case err == nil:
			u.log.Info("user created", "user", sessionUser(r).Name, "new_user", d.Name, "role", d.Role)
			u.rd.Sessions().AddFlash(w, r, web.Flash{Kind: web.FlashSuccess, Message: "User " + d.Name + " has been added."})
			http.Redirect(w, r, "/system/users", http.StatusSeeOther)
			return
		case k == sightline.Conflict:
			d.fail("name", "User Name: a user named %q already exists.", d.Name)
		case k == sightline.Invalid:
			d.fail("password", "%s", sightline.ErrorMessage(err))
		default:
			u.rd.Error(w, r, err)
			return
		}
	}
	u.renderUser(w, r, http.StatusBadRequest, d)
}

// mayChangePassword reports whether the signed-in user may set name's
// password: an administrator any, everyone their own.
func mayChangePassword(me web.User, name string) bool {
	return me.Role == RoleAdministrator || me.Name == name
}

// passwordForm serves Change Password.
func (u *UI) passwordForm(w http.ResponseWriter, r *http.Request) {
	if u.cfg.Accounts == nil {
		u.unavailable(w, r, "User management")
		return
	}
	me, name := sessionUser(r), r.PathValue("name")
	if !mayChangePassword(me, name) {
		u.rd.Error(w, r, sightline.Errorf(sightline.Forbidden, "Your role (%s) can change only your own password.", roleLabel(me.Role)))
		return
	}
	u.renderUser(w, r, http.StatusOK, userPage{Name: name, Current: me.Name == name})
}

// setPassword changes a password; a user changing their own gives the
// current one first.
func (u *UI) setPassword(w http.ResponseWriter, r *http.Request) {
	if u.cfg.Accounts == nil {
		u.unavailable(w, r, "User management")
		return
	}
	if !u.parseForm(w, r) {
		return
	}
	me, name := sessionUser(r), r.PathValue("name")
	if !mayChangePassword(me, name) {
		u.rd.Error(w, r, sightline.Errorf(sightline.Forbidden, "Your role (%s) can change only your own password.", roleLabel(me.Role)))
		return
	}
	d := userPage{Name: name, Current: me.Name == name}
	if d.Current {
		cur := r.PostFormValue("current")
		if cur == "" || len(cur) > maxPassword {
			d.fail("current", "Current Password: enter your current password.")
		} else if _, err := u.cfg.Authenticate(r.Context(), me.Name, cur); err != nil {
			if k := sightline.ErrorKind(err); k != sightline.Unauthorized && k != sightline.Forbidden {
				u.rd.Error(w, r, err)
				return
			}
			d.fail("current", "Current Password: this is not your current password.")
		}
	}
	pw := readPassword(r, &d.settingsData)
	if len(d.Errors) == 0 {
		err := u.cfg.Accounts.SetPassword(r.Context(), name, pw)
		switch {
		case err == nil:
			u.log.Info("password changed", "user", me.Name, "of", name)
			u.rd.Sessions().AddFlash(w, r, web.Flash{Kind: web.FlashSuccess, Message: "The password of " + name + " has been changed."})
			http.Redirect(w, r, "/system/users", http.StatusSeeOther)
			return
		case sightline.ErrorKind(err) == sightline.Invalid:
			d.fail("password", "%s", sightline.ErrorMessage(err))
		default:
			u.rd.Error(w, r, err)
			return
		}
	}
	u.renderUser(w, r, http.StatusBadRequest, d)
}

// deleteUser removes a user other than admin and oneself.
func (u *UI) deleteUser(w http.ResponseWriter, r *http.Request) {
	if u.cfg.Accounts == nil {
		u.unavailable(w, r, "User management")
		return
	}
	me, name := sessionUser(r), r.PathValue("name")
	s := u.rd.Sessions()
	var err error
	switch name {
	case me.Name:
		err = sightline.Errorf(sightline.Forbidden, "You cannot delete yourself")
	case BuiltinAdmin:
		err = sightline.Errorf(sightline.Forbidden, "The built-in admin user cannot be deleted.")
	default:
		err = u.cfg.Accounts.DeleteAccount(r.Context(), name)
	}
	switch k := sightline.ErrorKind(err); {
	case err == nil:
		u.log.Info("user deleted", "user", me.Name, "deleted", name)
		s.AddFlash(w, r, web.Flash{Kind: web.FlashSuccess, Message: "User " + name + " has been deleted."})
	case k == sightline.Forbidden || k == sightline.NotFound || k == sightline.Invalid:
		s.AddFlash(w, r, web.Flash{Kind: web.FlashError, Message: sightline.ErrorMessage(err)})
	default:
		u.rd.Error(w, r, err)
		return
	}
	http.Redirect(w, r, "/system/users", http.StatusSeeOther)
}
