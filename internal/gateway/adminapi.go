package gateway

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/gateway/config"
	"github.com/sightline/sightline/internal/gateway/connector"
	"github.com/sightline/sightline/internal/gateway/pipeline"
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

func decode(r *http.Request, v any) error { return decodeLimit(r, v, 64<<10) }

// decodeLimit reads a JSON body of at most limit bytes, refusing unknown
// fields so that a misspelt setting is an error, not silently ignored.
func decodeLimit(r *http.Request, v any, limit int64) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
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
	Version         string          `json:"version"` // the gateway's version, which the exchange checks at registration
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
		TunnelConnected: st.TunnelConnected, LastError: st.LastError, Version: g.opts.Version,
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

// ConfigView answers GET and PUT /api/v1/config: the user's view of the
// configuration (their staged copy when they have one).
type ConfigView struct {
	Pending bool           `json:"pending"`
	Config  *config.Config `json:"config"`
}

func (g *Gateway) writeConfig(w http.ResponseWriter, r *http.Request) {
	cfg, pending, err := g.config.View(r.Context(), apiUser(r.Context()).Name)
	if err != nil {
		g.adminError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ConfigView{Pending: pending, Config: cfg})
}

// putConfig stages a whole configuration; nothing applies until a commit.
func (g *Gateway) putConfig(w http.ResponseWriter, r *http.Request) {
	var in config.Config
	if err := canEdit(r); err != nil {
		g.adminError(w, err)
		return
	}
	if err := decodeLimit(r, &in, 4<<20); err != nil {
		g.adminError(w, err)
		return
	}
	err := g.config.Edit(r.Context(), apiUser(r.Context()).Name, func(c *config.Config) error {
		*c = in
		return nil
	})
	if err != nil {
		g.adminError(w, err)
		return
	}
	g.writeConfig(w, r)
}

func (g *Gateway) getLists(w http.ResponseWriter, r *http.Request) {
	cfg, pending, err := g.config.View(r.Context(), apiUser(r.Context()).Name)
	if err != nil {
		g.adminError(w, err)
		return
	}
	lists := cfg.Screening.Lists
	if lists == nil {
		lists = []pipeline.List{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"pending": pending, "lists": lists})
}

// putList stages a reputation list, created or replaced by name.
func (g *Gateway) putList(w http.ResponseWriter, r *http.Request) {
	var in pipeline.List
	if err := canEdit(r); err != nil {
		g.adminError(w, err)
		return
	}
	if err := decodeLimit(r, &in, 4<<20); err != nil {
		g.adminError(w, err)
		return
	}
	in.Name = r.PathValue("name")
	err := g.config.Edit(r.Context(), apiUser(r.Context()).Name, func(c *config.Config) error {
		for i := range c.Screening.Lists {
			if c.Screening.Lists[i].Name == in.Name {
				c.Screening.Lists[i] = in
				return nil
			}
		}
		c.Screening.Lists = append(c.Screening.Lists, in)
		return nil
	})
	if err != nil {
		g.adminError(w, err)
		return
	}
	g.getLists(w, r)
}

// deleteList stages the removal of a reputation list.
func (g *Gateway) deleteList(w http.ResponseWriter, r *http.Request) {
	if err := canEdit(r); err != nil {
		g.adminError(w, err)
		return
	}
	name := r.PathValue("name")
	err := g.config.Edit(r.Context(), apiUser(r.Context()).Name, func(c *config.Config) error {
		for i := range c.Screening.Lists {
			if c.Screening.Lists[i].Name == name {
				c.Screening.Lists = append(c.Screening.Lists[:i], c.Screening.Lists[i+1:]...)
				return nil
			}
		}
		return sightline.Errorf(sightline.NotFound, "no reputation list %q", name)
	})
	if err != nil {
		g.adminError(w, err)
		return
	}
	g.getLists(w, r)
}
