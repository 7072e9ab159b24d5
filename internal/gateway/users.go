package gateway

import (
	"context"
	"time"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/password"
	"github.com/sightline/sightline/internal/store/sqlite"
)

// Roles of gateway users (gateway-api.md §12).
const (
	RoleAdministrator    = "Administrator"
	RoleOperator         = "Operator"
	RoleReadOnlyOperator = "ReadOnlyOperator"
	RoleGuest            = "Guest"
	RoleTechnician       = "Technician"
	RoleHelpDeskUser     = "HelpDeskUser"
)

// AdminUser is the built-in administrator every role starts with.
const AdminUser = "admin"

// ensureAdmin creates the admin user on first start with the password that
// adminPassword returns; it is not called when admin already exists.
func ensureAdmin(ctx context.Context, st *sqlite.GatewayStore, adminPassword func() (string, error)) error {
	if _, err := st.User(ctx, AdminUser); err == nil {
		return nil
	} else if sightline.ErrorKind(err) != sightline.NotFound {
		return err
	}
	pw, err := adminPassword()
	if err != nil {
		return err
	}
	hash, err := password.Hash(pw)
	if err != nil {
		return sightline.Wrap(sightline.Invalid, err, "admin password: "+err.Error())
	}
	return st.CreateUser(ctx, sqlite.User{Name: AdminUser, PasswordHash: hash, Role: RoleAdministrator, CreatedAt: time.Now()})
}

// credentials checks user names and passwords against the gateway's users,
// remembering recent successes (API clients send Basic credentials on every
// request). It serves the API, SMTP AUTH and the UI alike.
type credentials struct {
	store   *sqlite.GatewayStore
	checker password.Checker
}

// authenticate checks a user name and password and returns the user.
func (c *credentials) authenticate(ctx context.Context, name, pw string) (*sqlite.User, error) {
	u, err := c.store.User(ctx, name)
	if err != nil {
		if sightline.ErrorKind(err) == sightline.NotFound {
			password.Check(dummyHash, pw) // spend the same time as for a real user
			return nil, errBadCredentials
		}
		return nil, err
	}
	if !c.checker.Check(u.PasswordHash, pw) {
		return nil, errBadCredentials
	}
	return u, nil
}

var errBadCredentials = sightline.Errorf(sightline.Unauthorized, "Invalid username or passphrase.")

// dummyHash is a bcrypt hash of a random string, compared against when the
// user does not exist so that timing does not reveal user names.
var dummyHash = func() string {
	h, _ := password.Hash(password.Generate())
	return h
}()
