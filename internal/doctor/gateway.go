package doctor

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/sightline/sightline/internal/exchange/exchangeclient"
	"github.com/sightline/sightline/internal/gateway/connector"
)

// cloudStatus is the gateway's GET /api/v1/cloud.
type cloudStatus struct {
	ThreatResponse  bool `json:"threat_response"` // as the signed-in user sees it, staged changes included
	Server          string
	Regions         []struct{ Label, URL string }
	Pending         bool   // the user has uncommitted changes
	State           string // connector.Disabled …
	DeviceID        string `json:"device_id"`
	Message         string
	TunnelConnected bool   `json:"tunnel_connected"`
	LastError       string `json:"last_error"`
}

// serverURL returns the URL the gateway knows region label by.
func (c *cloudStatus) serverURL(label string) string {
	for _, r := range c.Regions {
		if strings.EqualFold(r.Label, label) {
			return r.URL
		}
	}
	return ""
}

// probeGateway reads the gateway's cloud status; nil when it cannot.
func (d *doctor) probeGateway(ctx context.Context) *cloudStatus {
	if d.t.GatewayURL == "" {
		return nil
	}
	a, ok := d.probe(ctx, "gateway", "Gateway", d.t.GatewayURL, "/api/v1/cloud", true, "sightline serve, or sightline gateway")
	if !ok {
		return nil
	}
	var st cloudStatus
	if !a.ok() {
		d.add("gateway.cloud", "Gateway reports its Cloud Service Settings", StatusFail, a.message(),
			"Check the gateway's log for the cause.")
		return nil
	}
	if err := a.decode(&st); err != nil {
		d.add("gateway.cloud", "Gateway reports its Cloud Service Settings", StatusFail,
			fmt.Sprintf("GET /api/v1/cloud: %v.", err), "Check that the URL is a Sightline gateway's.")
		return nil
	}
	return &st
}

// Titles of the gateway's checks, shared by their skipped form.
const (
	titleTR      = "Threat Response is enabled on the gateway"
	titleChanges = "Gateway has no uncommitted changes"
	titleConn    = "Gateway is registered with the exchange"
	titleTunnel  = "Gateway's tunnel to the exchange is up"
)

const commitFix = `Commit them: sightline gateway commit -m "…", or Commit Changes in the gateway UI's banner.`

// checkGateway explains the gateway's side of the registration.
func (d *doctor) checkGateway(ctx context.Context, st *cloudStatus) {
	if d.t.GatewayURL == "" {
		return
	}
	if st == nil {
		why := "The gateway cannot be asked (see above)."
		for _, c := range []struct{ id, title string }{{"threat_response", titleTR}, {"changes", titleChanges},
			{"connector", titleConn}, {"tunnel", titleTunnel}} {
			d.skip("gateway."+c.id, c.title, why)
		}
		return
	}
	uncommittedTR := st.State == connector.Disabled && st.ThreatResponse && st.Pending
	switch {
	case uncommittedTR:
		d.add("gateway.threat_response", titleTR, StatusFail,
			"Threat Response settings were submitted but not committed, so the gateway does not ask for a token yet.", commitFix)
	case st.State == connector.Disabled:
		d.add("gateway.threat_response", titleTR, StatusFail,
			"Threat Response is disabled on the gateway, so it does not register with an exchange.",
			`sightline gateway cloudserviceconfig enable --server AMERICAS, then sightline gateway commit -m "…"; `+
				"or in the gateway UI: Network > Cloud Service Settings > Edit Settings, tick Enable, choose the Threat Response Server, Submit, then Commit Changes.")
	default:
		d.add("gateway.threat_response", titleTR, StatusOK, "Threat Response Server: "+st.Server+".", "")
	}
	switch {
	case uncommittedTR:
		d.skip("gateway.changes", titleChanges, "Reported above: the uncommitted changes are the Threat Response settings.")
	case st.Pending:
		d.add("gateway.changes", titleChanges, StatusWarn,
			"You have submitted changes that are not committed: they do not apply until committed.", commitFix)
	default:
		d.add("gateway.changes", titleChanges, StatusOK, "", "")
	}
	if st.State == connector.Disabled {
		d.skip("gateway.connector", titleConn, "Threat Response is off on the gateway.")
		d.skip("gateway.tunnel", titleTunnel, "Threat Response is off on the gateway.")
		return
	}
	d.checkConnector(ctx, st)
	switch {
	case st.State != connector.Registered:
		d.skip("gateway.tunnel", titleTunnel, "The gateway is not registered.")
	case st.TunnelConnected:
		d.add("gateway.tunnel", titleTunnel, StatusOK, "", "")
	default:
		detail := fmt.Sprintf("The gateway is registered with %s but its tunnel is down, so the console cannot reach it.", st.Server)
		if st.LastError != "" {
			detail += " Last error: " + st.LastError + "."
		}
		d.add("gateway.tunnel", titleTunnel, StatusFail, detail,
			fmt.Sprintf("Check that the exchange %s (%s) runs and that the gateway reaches it; the gateway redials by itself.",
				st.Server, st.serverURL(st.Server)))
	}
}

// tokenFix is how to get and use a new registration token in region.
func tokenFix(region, url string) string {
	return fmt.Sprintf("Create a token in the exchange of region %s: %s", region, tokenSteps(url))
}

// tokenSteps are the commands that create a token in the exchange at url
// and register the gateway with it.
func tokenSteps(url string) string {
	return fmt.Sprintf("sightline exchange token create --devices 1 --expires 1h --exchange %s "+
		"(or Devices > Manage Devices > + in its UI), then sightline gateway cloudserviceconfig register TOKEN "+
		"(or Network > Cloud Service Settings > Registration Token, Register, in the gateway UI).", url)
}

// checkConnector explains the connector's state.
func (d *doctor) checkConnector(ctx context.Context, st *cloudStatus) {
	url := st.serverURL(st.Server)
	switch st.State {
	case connector.Registered:
		if st.Message != "" {
			d.add("gateway.connector", titleConn, StatusWarn, st.Message,
				"sightline gateway cloudserviceconfig deregister, then register with a token of the newly chosen server.")
			return
		}
		d.add("gateway.connector", titleConn, StatusOK,
			fmt.Sprintf("Registered with %s as device %s.", st.Server, st.DeviceID), "")
	case connector.InProgress:
		d.add("gateway.connector", titleConn, StatusWarn,
			"A registration or deregistration is in progress.", "Wait a few seconds and run sightline doctor again.")
	case connector.Busy:
		switch {
		case st.Message != "": // a wrong region
			d.add("gateway.connector", titleConn, StatusFail, st.Message,
				`Choose the server of the right region: sightline gateway cloudserviceconfig settrs --server REGION, then sightline gateway commit -m "…" `+
					"(or Network > Cloud Service Settings > Edit Settings in the gateway UI); or correct the region's URL with cloudserviceconfig setfqdn.")
		case st.LastError != "":
			d.add("gateway.connector", titleConn, StatusFail,
				fmt.Sprintf("The gateway cannot reach the exchange %s at %s: %s.", st.Server, url, st.LastError),
				fmt.Sprintf("Start the exchange of region %s, or correct its URL in the gateway (cloudserviceconfig setfqdn); the gateway retries by itself.", st.Server))
		default:
			d.add("gateway.connector", titleConn, StatusWarn,
				fmt.Sprintf("The gateway is reaching the exchange %s at %s.", st.Server, url),
				"Wait a few seconds and run sightline doctor again.")
		}
	case connector.Enabled:
		detail := fmt.Sprintf("Threat Response is on with server %s: the appliance awaits a registration token.", st.Server)
		if st.Message != "" {
			detail = st.Message + "."
		}
		d.add("gateway.connector", titleConn, StatusFail, detail, tokenFix(st.Server, url))
	case connector.Failed:
		if st.Message != connector.TextFailed {
			if detail, fix, ok := d.explainVersion(ctx, st.Server); ok {
				d.add("gateway.connector", titleConn, StatusFail, detail, fix)
				return
			}
			d.add("gateway.connector", titleConn, StatusFail, "The registration failed: "+st.Message, d.refusedFix(st))
			return
		}
		if detail, fix, ok := d.explainRefusal(ctx, st.Server); ok {
			d.add("gateway.connector", titleConn, StatusFail, connector.TextFailed+". "+detail, fix)
			return
		}
		d.add("gateway.connector", titleConn, StatusFail,
			connector.TextFailed+". "+d.explainTokens(ctx, st.Server), tokenFix(st.Server, url))
	default:
		d.add("gateway.connector", titleConn, StatusFail, "The gateway reports an unknown state "+st.State+".",
			"Check that doctor and the gateway are the same version.")
	}
}

// refusedFix is the fix for a registration refused for another reason
// than the token: a version below the exchange's minimum, most often.
func (d *doctor) refusedFix(st *cloudStatus) string {
	if x := d.exchangeOf(st.Server); x != nil && x.minVersion != "" {
		return fmt.Sprintf("The exchange of region %s accepts gateways of version %s or later: upgrade the gateway, then register again with a token.",
			st.Server, x.minVersion)
	}
	return "Correct what the message names, then register again: sightline gateway cloudserviceconfig register TOKEN."
}

// explainTokens says which tokens of region's exchange cannot be used, and why.
func (d *doctor) explainTokens(ctx context.Context, region string) string {
	x := d.exchangeOf(region)
	if x == nil || !x.signedIn {
		return fmt.Sprintf("The token was mistyped, expired, used up, revoked, or issued by another region's exchange; "+
			"doctor cannot list the tokens of %s (pass --exchange with its URL).", region)
	}
	var tokens []exchangeclient.Token
	if err := d.getJSON(ctx, x.url, "/api/v1/tokens", &tokens); err != nil {
		return fmt.Sprintf("The tokens of exchange %s cannot be listed: %v.", region, err)
	}
	return describeTokens(region, tokens, d.now())
}

// maxTokensShown bounds the tokens named in an explanation.
const maxTokensShown = 5

// describeTokens explains, from the exchange's token list (newest first),
// why a registration with one of them was refused.
func describeTokens(region string, tokens []exchangeclient.Token, now time.Time) string {
	if len(tokens) == 0 {
		return fmt.Sprintf("The exchange of region %s has issued no token: the token entered was mistyped or issued by another region's exchange.", region)
	}
	var unusable []string
	active := 0
	for i, t := range tokens {
		if t.State == "Active" {
			active++
		}
		if i >= maxTokensShown {
			continue
		}
		switch t.State {
		case "Expired":
			unusable = append(unusable, fmt.Sprintf("token %s expired %s ago (%s)", t.ID,
				now.Sub(t.ExpiresAt).Round(time.Minute), t.ExpiresAt.UTC().Format(time.RFC3339)))
		case "Used up":
			unusable = append(unusable, fmt.Sprintf("token %s is used up (all %d of its devices registered)", t.ID, t.Devices))
		case "Revoked":
			unusable = append(unusable, fmt.Sprintf("token %s was revoked %s", t.ID, t.RevokedAt.UTC().Format(time.RFC3339)))
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Tokens of exchange %s: ", region)
	if len(unusable) > 0 {
		b.WriteString(strings.Join(unusable, "; ") + ". ")
	}
	if active == 0 {
		b.WriteString("No token is active.")
	} else {
		fmt.Fprintf(&b, "%d token(s) are active: if the token entered was one of them it was mistyped; a token of another region's exchange is refused too.", active)
	}
	return b.String()
}
