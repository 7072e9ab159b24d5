package gateway

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/gateway/config"
	"github.com/sightline/sightline/internal/gateway/connector"
	"github.com/sightline/sightline/internal/tracking"
)

// The gateway's own administration API under /api/v1/, used by the CLI's
// commit, clear and cloudserviceconfig: the same staged changes as the UI,
// per user, with the AsyncOS error envelope.

// adminStatus maps error kinds to HTTP statuses for /api/v1/.
var adminStatus = map[sightline.Kind]int{
	sightline.Invalid:      http.StatusBadRequest,
	sightline.NotFound:     http.StatusNotFound,
	sightline.Conflict:     http.StatusConflict,
	sightline.Unauthorized: http.StatusUnauthorized,
	sightline.Forbidden:    http.StatusForbidden,
	sightline.Unavailable:  http.StatusServiceUnavailable,
	sightline.Internal:     http.StatusInternalServerError,
}

func (g *Gateway) adminError(w http.ResponseWriter, err error) {
	status, ok := adminStatus[sightline.ErrorKind(err)]
	if !ok {
		status = http.StatusInternalServerError
	}
	msg := sightline.ErrorMessage(err)
	if status == http.StatusInternalServerError {
		g.logger.Error("admin API", "err", err)
		msg = ""
	}
	tracking.WriteError(w, status, msg)
}

// canEdit reports whether the request's user may change the configuration.
func canEdit(r *http.Request) error {
	switch u := apiUser(r.Context()); {
	case u == nil:
		return sightline.Errorf(sightline.Unauthorized, "Unauthorized.")
	case u.Role != RoleAdministrator && u.Role != RoleOperator:
		return sightline.Errorf(sightline.Forbidden, "role %s cannot change the configuration", u.Role)
	}
	return nil
}

func decode(r *http.Request, v any) error {
	if err := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 64<<10)).Decode(v); err != nil {
		return sightline.Errorf(sightline.Invalid, "request body is not the expected JSON: %v", err)
	}
	return nil
}

// CommitResult answers POST /api/v1/config/commit.
type CommitResult struct {
	ID          int64     `json:"id"`
	CommittedAt time.Time `json:"committed_at"`
	Comment     string    `json:"comment"`
}

func (g *Gateway) commit(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Comment string `json:"comment"`
	}
	if err := canEdit(r); err != nil {
		g.adminError(w, err)
		return
	}
	if err := decode(r, &in); err != nil {
		g.adminError(w, err)
		return
	}
	c, err := g.config.Commit(r.Context(), apiUser(r.Context()).Name, in.Comment)
	if err != nil {
		g.adminError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, CommitResult{ID: c.ID, CommittedAt: c.CommittedAt, Comment: c.Comment})
}

func (g *Gateway) clear(w http.ResponseWriter, r *http.Request) {
	if err := canEdit(r); err != nil {
		g.adminError(w, err)
		return
	}
	cleared, err := g.config.Clear(r.Context(), apiUser(r.Context()).Name)
	if err != nil {
		g.adminError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"cleared": cleared})
}

// CloudStatus answers GET /api/v1/cloud: the user's view of Cloud Service
// Settings (with staged changes) and the connector's state.
type CloudStatus struct {
	ThreatResponse  bool            `json:"threat_response"`
	Server          string          `json:"server"`
	Regions         []config.Region `json:"regions"`
	Pending         bool            `json:"pending"`
	State           string          `json:"state"`
	DeviceID        string          `json:"device_id,omitempty"`
	Message         string          `json:"message,omitempty"`
	TunnelConnected bool            `json:"tunnel_connected"`
	LastError       string          `json:"last_error,omitempty"`
}

func (g *Gateway) cloudStatus(w http.ResponseWriter, r *http.Request) {
	g.writeCloud(w, r, http.StatusOK)
}

func (g *Gateway) writeCloud(w http.ResponseWriter, r *http.Request, status int) {
	cfg, pending, err := g.config.View(r.Context(), apiUser(r.Context()).Name)
	if err != nil {
		g.adminError(w, err)
		return
	}
	st := g.cloud.Status(r.Context())
	writeJSON(w, status, CloudStatus{
		ThreatResponse: cfg.Cloud.ThreatResponse, Server: cfg.Cloud.Chosen().Label, Regions: cfg.Cloud.Regions,
		Pending: pending, State: st.State, DeviceID: st.DeviceID, Message: st.Message,
		TunnelConnected: st.TunnelConnected, LastError: st.LastError,
	})
}

// cloudSettings stages Threat Response on or off and the server, as Edit
// Settings does; nothing applies until a commit.
func (g *Gateway) cloudSettings(w http.ResponseWriter, r *http.Request) {
	var in struct {
		ThreatResponse *bool  `json:"threat_response"`
		Server         string `json:"server"`
	}
	if err := canEdit(r); err != nil {
		g.adminError(w, err)
		return
	}
	if err := decode(r, &in); err != nil {
		g.adminError(w, err)
		return
	}
	if in.ThreatResponse != nil && !*in.ThreatResponse && g.cloud.Status(r.Context()).State == connector.Registered {
		g.adminError(w, sightline.Errorf(sightline.Conflict, "the appliance is registered: deregister it before disabling Threat Response"))
		return
	}
	err := g.config.Edit(r.Context(), apiUser(r.Context()).Name, func(c *config.Config) error {
		if in.ThreatResponse != nil {
			c.Cloud.ThreatResponse = *in.ThreatResponse
		}
		if in.Server != "" {
			c.Cloud.Server = in.Server
		}
		if c.Cloud.Server == "" {
			c.Cloud.Server = c.Cloud.Chosen().Label
		}
		return nil
	})
	if err != nil {
		g.adminError(w, err)
		return
	}
	g.writeCloud(w, r, http.StatusOK)
}

func (g *Gateway) cloudRegister(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Token string `json:"token"`
	}
	if err := canEdit(r); err != nil {
		g.adminError(w, err)
		return
	}
	if err := decode(r, &in); err != nil {
		g.adminError(w, err)
		return
	}
	if err := g.cloud.Register(r.Context(), in.Token); err != nil {
		g.adminError(w, err)
		return
	}
	g.writeCloud(w, r, http.StatusAccepted)
}

func (g *Gateway) cloudDeregister(w http.ResponseWriter, r *http.Request) {
	if err := canEdit(r); err != nil {
		g.adminError(w, err)
		return
	}
	if err := g.cloud.Deregister(r.Context()); err != nil {
		g.adminError(w, err)
		return
	}
	g.writeCloud(w, r, http.StatusAccepted)
}
