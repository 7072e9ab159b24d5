package doctor

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/sightline/sightline/internal/exchange/exchangeclient"
)

// The exchange gives every unusable token one answer, "The registration
// failed because of an invalid or expired token"; its audit log
// (GET /api/v1/audit) keeps which it was. The functions here read it to say
// exactly why the gateway's token was refused.

// Audit log vocabulary of the exchange (its registry package).
const (
	actionRegister    = "device.register"
	actionTokenCreate = "token.create"
	actionTokenRevoke = "token.revoke"
	outcomeFailure    = "failure"
)

// audit reads a page of the audit log of the exchange at base.
func (d *doctor) audit(ctx context.Context, base string, q exchangeclient.AuditQuery) (exchangeclient.Audit, error) {
	var a exchangeclient.Audit
	err := d.getJSON(ctx, base, "/api/v1/audit?"+q.Values().Encode(), &a)
	return a, err
}

// gatewayHostname returns the host name the gateway registers with, ""
// when it cannot be read.
func (d *doctor) gatewayHostname(ctx context.Context) string {
	var v struct {
		Config struct {
			Hostname string `json:"hostname"`
		} `json:"config"`
	}
	if d.getJSON(ctx, d.t.GatewayURL, "/api/v1/config", &v) != nil {
		return ""
	}
	return v.Config.Hostname
}

// refusal is an exchange's record of a refused registration.
type refusal struct {
	entry exchangeclient.AuditEntry
	// ownHost reports that the entry names the gateway's host name; when it
	// does not, it is the exchange's newest refusal of any host.
	ownHost bool
}

// lastRefusal returns x's record of the gateway's newest registration
// attempt when it was refused, else its newest refusal of any host; nil
// when the log has none or cannot be read (an older exchange, or a user
// who may not read it).
func (d *doctor) lastRefusal(ctx context.Context, x *exchange) *refusal {
	if host := d.gatewayHostname(ctx); host != "" {
		a, err := d.audit(ctx, x.url, exchangeclient.AuditQuery{Action: actionRegister, Device: host, Limit: 1})
		if err != nil {
			return nil
		}
		if len(a.Entries) == 1 {
			if a.Entries[0].Outcome != outcomeFailure {
				return nil
			}
			return &refusal{entry: a.Entries[0], ownHost: true}
		}
	}
	a, err := d.audit(ctx, x.url, exchangeclient.AuditQuery{Action: actionRegister, Outcome: outcomeFailure, Limit: 1})
	if err != nil || len(a.Entries) == 0 {
		return nil
	}
	return &refusal{entry: a.Entries[0]}
}

// stamp is how doctor writes an instant.
func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// retypeFix begins the fix of a mistyped token.
const retypeFix = "Copy the token exactly as the exchange showed it when it was created (32 hexadecimal characters); it is shown only once, so if it is lost, make another. "

// explainRefusal says, from the audit log of region's exchange, why that
// exchange refused the gateway's token and what to do; ok is false when
// the log cannot say.
func (d *doctor) explainRefusal(ctx context.Context, region string) (detail, fix string, ok bool) {
	x := d.exchangeOf(region)
	if x == nil || !x.signedIn {
		return "", "", false
	}
	r := d.lastRefusal(ctx, x)
	if r == nil {
		return "", "", false
	}
	e := r.entry
	switch e.Reason {
	case exchangeclient.ReasonTokenUnknown:
		if e.TokenFingerprint == "" {
			return "", "", false
		}
		detail, fix = d.explainUnknown(ctx, x, e.TokenFingerprint)
	case exchangeclient.ReasonTokenOtherRegion:
		detail = fmt.Sprintf("The token was generated in region %s, but the gateway registers with the exchange of region %s: "+
			"a token works only in the region whose exchange generated it.", e.TokenRegion, x.region)
		fix = fmt.Sprintf("Generate the token in the device's region, %s, not in %s: %s", x.region, e.TokenRegion, tokenSteps(x.url))
	case exchangeclient.ReasonTokenExpired, exchangeclient.ReasonTokenUsedUp, exchangeclient.ReasonTokenRevoked:
		detail, fix = d.explainToken(ctx, x, e)
	case exchangeclient.ReasonTokenMalformed:
		detail = "The token entered is not 32 hexadecimal characters: it was mistyped."
		fix = retypeFix + tokenFix(x.region, x.url)
	default:
		return "", "", false
	}
	if !r.ownHost {
		detail = fmt.Sprintf("The newest refused registration in %s came from host %s (%s) at %s: ",
			x.region, e.DeviceName, e.Source, stamp(e.Time)) + detail
	}
	return detail, fix, true
}

// explainUnknown looks for the token whose fingerprint x did not know in
// the other regions' exchanges: generated there, or mistyped.
func (d *doctor) explainUnknown(ctx context.Context, x *exchange, fingerprint string) (detail, fix string) {
	var asked, unasked []string
	for _, y := range d.exchanges {
		if y == x || strings.EqualFold(y.region, x.region) {
			continue
		}
		if !y.signedIn {
			unasked = append(unasked, y.region)
			continue
		}
		a, err := d.audit(ctx, y.url, exchangeclient.AuditQuery{Action: actionTokenCreate, Token: fingerprint, Limit: 1})
		if err != nil {
			unasked = append(unasked, y.region)
			continue
		}
		if len(a.Entries) == 1 {
			c := a.Entries[0]
			return fmt.Sprintf("The token was generated in the exchange of region %s (token %s, created %s by %s), "+
					"but the gateway registers with the exchange of region %s, which did not issue it: "+
					"a token works only in the region whose exchange generated it.", y.region, c.TokenID, stamp(c.Time), c.Actor, x.region),
				fmt.Sprintf("Generate the token in the device's region, %s, not in %s: %s", x.region, y.region, tokenSteps(x.url))
		}
		asked = append(asked, y.region)
	}
	detail = "The token entered is unknown to the exchange of region " + x.region
	if len(asked) > 0 {
		detail += " and to that of " + strings.Join(asked, " and ")
	}
	switch {
	case len(unasked) > 0:
		detail += fmt.Sprintf(": it was mistyped, or generated in %s, whose exchange doctor could not ask.", strings.Join(unasked, " or "))
	case len(asked) == 0:
		detail += ": it was mistyped, or generated in another region (pass --exchange with that region's exchange to tell which)."
	default:
		detail += ": it was mistyped."
	}
	return detail, retypeFix + tokenFix(x.region, x.url)
}

// explainToken explains a refusal of a token x issued: expired, used up
// or revoked, with its facts from x's token list.
func (d *doctor) explainToken(ctx context.Context, x *exchange, e exchangeclient.AuditEntry) (detail, fix string) {
	fix = tokenFix(x.region, x.url)
	var tokens []exchangeclient.Token
	var tok *exchangeclient.Token
	if d.getJSON(ctx, x.url, "/api/v1/tokens", &tokens) == nil {
		for i := range tokens {
			if tokens[i].ID == e.TokenID {
				tok = &tokens[i]
			}
		}
	}
	if tok == nil {
		return fmt.Sprintf("The exchange of region %s recorded: %s.", x.region, e.Detail), fix
	}
	name := fmt.Sprintf("Token %s of the exchange of region %s", tok.ID, x.region)
	switch e.Reason {
	case exchangeclient.ReasonTokenExpired:
		detail = fmt.Sprintf("%s expired at %s (%s ago), before the gateway registered with it.",
			name, stamp(tok.ExpiresAt), d.now().Sub(tok.ExpiresAt).Round(time.Minute))
	case exchangeclient.ReasonTokenUsedUp:
		if tok.Devices == 1 {
			detail = name + " is already used up: it was generated for 1 device, which has registered with it."
		} else {
			detail = fmt.Sprintf("%s is already used up: it was generated for %d devices, all of which have registered with it.", name, tok.Devices)
		}
	default:
		by := ""
		a, err := d.audit(ctx, x.url, exchangeclient.AuditQuery{Action: actionTokenRevoke, Token: tok.ID, Limit: 1})
		if err == nil && len(a.Entries) == 1 {
			by = " by " + a.Entries[0].Actor
		}
		detail = fmt.Sprintf("%s was revoked at %s%s.", name, stamp(tok.RevokedAt), by)
	}
	return detail, fix
}

// explainVersion says, from the audit log of region's exchange, which
// version the exchange refused and its minimum; ok is false when the log
// cannot say.
func (d *doctor) explainVersion(ctx context.Context, region string) (detail, fix string, ok bool) {
	x := d.exchangeOf(region)
	if x == nil || !x.signedIn {
		return "", "", false
	}
	r := d.lastRefusal(ctx, x)
	if r == nil || !r.ownHost || r.entry.Reason != exchangeclient.ReasonVersionTooOld {
		return "", "", false
	}
	e := r.entry
	return fmt.Sprintf("The exchange of region %s refused the gateway's version %s: it accepts version %s or later.", x.region, e.DeviceVersion, e.MinVersion),
		fmt.Sprintf("Upgrade the gateway to version %s or later, then register again with a token (sightline gateway cloudserviceconfig register TOKEN); "+
			"or, if that minimum is wrong, restart the exchange of region %s with a lower --min-version.", e.MinVersion, x.region), true
}
