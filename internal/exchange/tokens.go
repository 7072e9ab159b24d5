package exchange

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/exchange/registry"
)

// Expiry is one choice of a token's lifetime, as the UI offers it.
type Expiry struct {
	Value string // the form and API value: "1h" … "12h", "1d" … "5d"
	Label string // "1 hour", "2 days"
	D     time.Duration
}

// Expiries are the token lifetimes offered, the default (1 hour) first.
var Expiries = func() []Expiry {
	var out []Expiry
	for _, h := range []int{1, 2, 4, 6, 8, 12} {
		out = append(out, Expiry{fmt.Sprintf("%dh", h), plural(h, "hour"), time.Duration(h) * time.Hour})
	}
	for d := 1; d <= 5; d++ {
		out = append(out, Expiry{fmt.Sprintf("%dd", d), plural(d, "day"), time.Duration(d) * 24 * time.Hour})
	}
	return out
}()

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

// Token count limits.
const (
	MinTokenDevices = 1
	MaxTokenDevices = 100
)

// ParseExpiry returns the lifetime named by s ("1h", "2d", also "" for the
// default 1h); any other value is an Invalid error listing the choices.
func ParseExpiry(s string) (time.Duration, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" {
		return Expiries[0].D, nil
	}
	var vals []string
	for _, x := range Expiries {
		if x.Value == s {
			return x.D, nil
		}
		vals = append(vals, x.Value)
	}
	return 0, sightline.Errorf(sightline.Invalid, "token expiry %q: choose one of %s", s, strings.Join(vals, ", "))
}

// tokenLen is the length of a registration token: 32 hexadecimal
// characters, 128 random bits, as AsyncOS expects.
const tokenLen = 32

// NewToken is a token just created: the secret is in Token, shown once.
type NewToken struct {
	registry.Token
	Secret string
}

// createToken mints a registration token of the actor's organisation for
// devices devices (1–100), valid for expiry.
func (e *Exchange) createToken(ctx context.Context, who actor, devices int, expiry time.Duration) (NewToken, error) {
	if devices < MinTokenDevices || devices > MaxTokenDevices {
		return NewToken{}, sightline.Errorf(sightline.Invalid, "number of devices %d: choose from %d to %d", devices, MinTokenDevices, MaxTokenDevices)
	}
	b := make([]byte, tokenLen/2)
	rand.Read(b)
	secret := hex.EncodeToString(b)
	now := e.now()
	t := registry.Token{ID: uuid.NewString(), OrgID: who.org.ID, Region: e.opts.Region, Hash: registry.Hash(secret),
		Devices: devices, Remaining: devices, CreatedAt: now, ExpiresAt: now.Add(expiry), CreatedBy: who.name}
	if err := e.store.CreateToken(ctx, t); err != nil {
		return NewToken{}, fmt.Errorf("create token: %w", err)
	}
	entry := who.entry(registry.ActionTokenCreate, t.ID, registry.OutcomeSuccess,
		fmt.Sprintf("token for %s, expires %s", plural(devices, "device"), t.ExpiresAt.Format(time.RFC3339)))
	entry.TokenID, entry.TokenFingerprint = t.ID, tokenFingerprint(t.Hash)
	e.audit(ctx, entry)
	return NewToken{Token: t, Secret: secret}, nil
}

// revokeToken revokes a token of the actor's organisation.
func (e *Exchange) revokeToken(ctx context.Context, who actor, id string) error {
	if err := e.store.RevokeToken(ctx, who.org.ID, id, e.now()); err != nil {
		if sightline.ErrorKind(err) == sightline.NotFound {
			return sightline.Errorf(sightline.NotFound, "There is no token %s.", id)
		}
		return fmt.Errorf("revoke token: %w", err)
	}
	entry := who.entry(registry.ActionTokenRevoke, id, registry.OutcomeSuccess, "token revoked")
	entry.TokenID = id
	// The store revokes by ID; the fingerprint is in the token's hash.
	if list, err := e.store.Tokens(ctx, who.org.ID); err != nil {
		e.log.Warn("revoked token's fingerprint not audited", "token_id", id, "err", err)
	} else if i := slices.IndexFunc(list, func(t registry.Token) bool { return t.ID == id }); i >= 0 {
		entry.TokenFingerprint = tokenFingerprint(list[i].Hash)
	}
	e.audit(ctx, entry)
	return nil
}

// fingerprintLen is the length of a token fingerprint: 16 hexadecimal
// characters, never 32, so that it cannot be taken for a token.
const fingerprintLen = 16

// tokenFingerprint names a token by the start of its hash (registry.Hash),
// so that a token presented to one exchange can be found in another
// region's without either keeping the secret.
func tokenFingerprint(hash string) string {
	if len(hash) < fingerprintLen {
		return ""
	}
	return hash[:fingerprintLen]
}

// TokenState is how a token stands at an instant: "Active", "Expired",
// "Revoked" or "Used up".
func TokenState(t registry.Token, now time.Time) string {
	switch {
	case !t.RevokedAt.IsZero():
		return "Revoked"
	case !now.Before(t.ExpiresAt):
		return "Expired"
	case t.Remaining <= 0:
		return "Used up"
	}
	return "Active"
}
