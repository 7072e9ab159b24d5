package web

import (
	"context"
	"net/http"
	"strings"

	"github.com/sightline/sightline"
)

// Authenticate checks a user name and passphrase. It returns an error of
// kind sightline.Unauthorized for wrong credentials; any other error is
// shown by its user-safe message.
type Authenticate func(ctx context.Context, user, pass string) (User, error)

// loginPage is the data of login.html.
type loginPage struct {
	Next     string
	Username string
	Error    string
}

// maxCredential bounds the user name and the passphrase of a sign-in form.
const maxCredential = 256

// LoginHandler serves the sign-in page at GET and checks it at POST: on
// success it starts a session and redirects (303) to the form's "next" path
// (a local path only; "/" otherwise), on failure it shows the form again
// with "Invalid username or passphrase." and status 401. Wrap it in CSRF.
func LoginHandler(authenticate Authenticate, rd *Renderer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := rd.Sessions()
		if r.Method != http.MethodPost {
			if _, ok := s.Get(r); ok {
				http.Redirect(w, r, localPath(r.URL.Query().Get("next")), http.StatusSeeOther)
				return
			}
			rd.Render(w, r, http.StatusOK, "login.html", PageData{Title: "Sign in",
				Data: loginPage{Next: localPath(r.URL.Query().Get("next"))}})
			return
		}
		next := localPath(r.PostFormValue("next"))
		name := strings.TrimSpace(r.PostFormValue("username"))
		pass := r.PostFormValue("passphrase")
		page := loginPage{Next: next, Username: name}
		var u User
		var err error
		if name == "" || pass == "" || len(name) > maxCredential || len(pass) > maxCredential {
			err = sightline.Errorf(sightline.Unauthorized, "Invalid username or passphrase.")
		} else {
			u, err = authenticate(r.Context(), name, pass)
		}
		if err == nil {
			if _, err = s.Login(w, r, u); err == nil {
				http.Redirect(w, r, next, http.StatusSeeOther)
				return
			}
		}
		status := HTTPStatus(err)
		switch sightline.ErrorKind(err) {
		case sightline.Unauthorized, sightline.Forbidden:
			page.Error = "Invalid username or passphrase."
			rd.log.Info("sign-in refused", "user", name, "remote_addr", r.RemoteAddr)
		default:
			page.Error = sightline.ErrorMessage(err)
			rd.log.Error("sign-in failed", "user", name, "err", err)
		}
		rd.Render(w, r, status, "login.html", PageData{Title: "Sign in", Data: page})
	})
}

// LogoutHandler ends the session at POST and redirects to the login page
// with "You have signed out." Wrap it in CSRF.
func LogoutHandler(rd *Renderer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := rd.Sessions()
		s.Logout(w, r)
		s.AddFlash(w, r, Flash{Kind: FlashSuccess, Message: "You have signed out."})
		http.Redirect(w, r, s.loginPath(), http.StatusSeeOther)
	})
}

// localPath returns p when it is a path on this host, "/" otherwise, so a
// "next" parameter cannot send a user to another site.
func localPath(p string) string {
	if p == "" || p[0] != '/' || strings.HasPrefix(p, "//") || strings.ContainsAny(p, "\\\r\n\t") {
		return "/"
	}
	return p
}
