package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/exchange/exchangeclient"
	"github.com/sightline/sightline/internal/gateway"
	"github.com/sightline/sightline/internal/gateway/config"
	"github.com/sightline/sightline/internal/gateway/connector"
)

// ModuleName is the name of the console module the demo adds.
const ModuleName = "Email Security Appliance"

// journey does the seed's steps 1–8, each only when its state says it is
// not done yet, and returns the gateway's device ID and the name of its
// console module.
func (d *demo) journey(ctx context.Context) (deviceID, module string, err error) {
	// Steps 1–4: Threat Response enabled on the gateway, and committed.
	err = d.commit(ctx, "demo: enable Threat Response, server "+d.Region, func(c *config.Config) {
		c.Cloud.ThreatResponse, c.Cloud.Server = true, d.Region
	})
	if err != nil {
		return "", "", fmt.Errorf("enable Threat Response on the gateway: %w", err)
	}

	// Steps 5–6: a token from the exchange, the gateway registered with it.
	admin := exchangeclient.NewAdmin(d.ExchangeURL, d.HTTPClient, d.User, d.Password)
	st, err := d.waitCloud(ctx, connector.Enabled, connector.Failed, connector.Registered)
	if err != nil {
		return "", "", err
	}
	if st.State != connector.Registered {
		tok, err := admin.TokenCreate(ctx, 1, "1h")
		if err != nil {
			return "", "", fmt.Errorf("create a registration token in the exchange: %w", signInHint(err))
		}
		if err := d.gatewayAPI(ctx, http.MethodPost, "/api/v1/cloud/register", map[string]string{"token": tok.Token}, nil); err != nil {
			return "", "", fmt.Errorf("register the gateway: %w", err)
		}
		if st, err = d.waitCloud(ctx, connector.Registered, connector.Failed); err != nil {
			return "", "", err
		}
		if st.State != connector.Registered {
			return "", "", fmt.Errorf("register the gateway: %s", st.Message)
		}
	}

	// Step 7 and the console's prerequisite: Threat Response enabled for
	// the organisation in the exchange.
	ds, err := admin.Devices(ctx)
	if err != nil {
		return "", "", fmt.Errorf("list the exchange's devices: %w", signInHint(err))
	}
	if !ds.ThreatResponse {
		if err := admin.SetCloudServices(ctx, exchangeclient.CloudServices{ThreatResponse: true}); err != nil {
			return "", "", fmt.Errorf("enable Threat Response in the exchange: %w", err)
		}
	}

	// Step 8: the console's module for the gateway.
	module, err = d.ensureModule(ctx, st.DeviceID)
	if err != nil {
		return "", "", err
	}
	return st.DeviceID, module, nil
}

// waitCloud polls the gateway's cloud status until its state is one of
// states, for at most stepTimeout.
func (d *demo) waitCloud(ctx context.Context, states ...string) (gateway.CloudStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	for {
		var st gateway.CloudStatus
		if err := d.gatewayAPI(ctx, http.MethodGet, "/api/v1/cloud", nil, &st); err != nil {
			return st, fmt.Errorf("gateway cloud status: %w", err)
		}
		for _, s := range states {
			if st.State == s {
				return st, nil
			}
		}
		select {
		case <-ctx.Done():
			return st, fmt.Errorf("gateway cloud service still %s after %s, want %s: %s",
				st.State, stepTimeout, strings.Join(states, " or "), st.LastError)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// ensureModule adds the Email Security Appliance module for deviceID to the
// console unless one exists, and returns its name.
func (d *demo) ensureModule(ctx context.Context, deviceID string) (string, error) {
	var list []struct {
		Name     string `json:"name"`
		Kind     string `json:"kind"`
		Settings struct {
			DeviceID string `json:"device_id"`
		} `json:"settings"`
	}
	if err := d.call(ctx, d.ConsoleURL, http.MethodGet, "/api/v1/modules", nil, &list); err != nil {
		return "", fmt.Errorf("list the console's modules: %w", signInHint(err))
	}
	for _, m := range list {
		if m.Kind == "esa" && m.Settings.DeviceID == deviceID {
			return m.Name, nil
		}
	}
	err := d.call(ctx, d.ConsoleURL, http.MethodPost, "/api/v1/modules", map[string]any{
		"kind": "esa", "name": ModuleName, "enabled": true,
		"settings": map[string]any{"device_id": deviceID, "timeframe_days": 30},
	}, nil)
	if err != nil {
		return "", fmt.Errorf("add the console module: %w", err)
	}
	return ModuleName, nil
}

func (d *demo) gatewayAPI(ctx context.Context, method, path string, in, out any) error {
	return signInHint(d.call(ctx, d.GatewayURL, method, path, in, out))
}

// maxAnswer bounds the body of an API answer.
const maxAnswer = 4 << 20

// call sends a JSON request to a role's API as the administrator (Basic
// authentication) and decodes a 2xx answer into out, if not nil. An error
// answer becomes a *sightline.Error of the status's kind with the role's
// message.
func (d *demo) call(ctx context.Context, base, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(base, "/")+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.SetBasicAuth(d.User, d.Password)
	resp, err := d.HTTPClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return sightline.Errorf(statusKind(resp.StatusCode), "%s", answerMessage(resp.StatusCode, b))
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: answer: %w", method, path, err)
	}
	return nil
}

// statusKinds maps the HTTP statuses of error answers to error kinds.
var statusKinds = map[int]sightline.Kind{
	http.StatusBadRequest:          sightline.Invalid,
	http.StatusUnauthorized:        sightline.Unauthorized,
	http.StatusForbidden:           sightline.Forbidden,
	http.StatusNotFound:            sightline.NotFound,
	http.StatusConflict:            sightline.Conflict,
	http.StatusUnprocessableEntity: sightline.Invalid,
	http.StatusTooManyRequests:     sightline.Unavailable,
	http.StatusServiceUnavailable:  sightline.Unavailable,
}

func statusKind(status int) sightline.Kind {
	if k, ok := statusKinds[status]; ok {
		return k
	}
	return sightline.Internal
}

// answerMessage is the message of an error answer: the gateway's AsyncOS
// envelope {"error": {"message": …}}, the console's {"error": "…"}, or the
// status text.
func answerMessage(status int, body []byte) string {
	var e struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error != nil {
		var obj struct{ Message string }
		if json.Unmarshal(e.Error, &obj) == nil && obj.Message != "" {
			return obj.Message
		}
		var s string
		if json.Unmarshal(e.Error, &s) == nil && s != "" {
			return s
		}
	}
	return http.StatusText(status)
}
