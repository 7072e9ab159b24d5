package console

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/console/module"
	"github.com/sightline/sightline/internal/console/records"
	"github.com/sightline/sightline/internal/exchange/exchangeclient"
	"github.com/sightline/sightline/internal/password"
)

// Module instances.

// ModuleInstance is a module instance as the admin API shows it.
type ModuleInstance struct {
	ID      string `json:"id"`
	TypeID  string `json:"type_id"`
	Kind    string `json:"kind"`
	Name    string `json:"name"`
	Enabled bool   `json:"enabled"`
	// Settings are the instance's settings without its secrets, which
	// are write-only: SecretsSet names those that are stored.
	Settings   json.RawMessage `json:"settings"`
	SecretsSet []string        `json:"secrets_set,omitempty"`
	CreatedAt  time.Time       `json:"created_at"`
	UpdatedAt  time.Time       `json:"updated_at"`
}

// ModuleRequest is the body of POST and PUT /api/v1/modules: on PUT,
// omitted fields keep their value, and kind and type_id cannot change. A
// secret left out of the settings (or empty) keeps its stored value.
type ModuleRequest struct {
	// Kind may be left out when TypeID names the type.
	Kind string `json:"kind"`
	// TypeID is the module type: fixed for the native kinds; for relay
	// modules a registered type of the organisation, or TypeIDRelay (or
	// nothing) for a Relay Module configured by hand.
	TypeID   string          `json:"type_id,omitempty"`
	Name     string          `json:"name,omitempty"`
	Enabled  *bool           `json:"enabled,omitempty"` // default true
	Settings json.RawMessage `json:"settings,omitempty"`
}

// nativeTypes are the module types built into the console, by kind.
var nativeTypes = map[string]struct{ id, name string }{
	module.KindESA: {TypeIDESA, "Email Security Appliance"},
	module.KindSMA: {TypeIDSMA, "Security Management Appliance"},
}

func instanceView(in records.Instance) ModuleInstance {
	settings, set := redactSettings(in.Settings)
	return ModuleInstance{ID: in.ID, TypeID: in.TypeID, Kind: in.Kind, Name: in.Name, Enabled: in.Enabled,
		Settings: settings, SecretsSet: set, CreatedAt: in.CreatedAt, UpdatedAt: in.UpdatedAt}
}

func (c *Console) apiModules(w http.ResponseWriter, r *http.Request, p principal) error {
	list, err := c.store.Instances(r.Context(), p.orgID)
	if err != nil {
		return fmt.Errorf("list module instances: %w", err)
	}
	out := []ModuleInstance{}
	for _, in := range list {
		out = append(out, instanceView(in))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (c *Console) apiModule(w http.ResponseWriter, r *http.Request, p principal) error {
	in, err := c.instance(r.Context(), p.orgID, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, instanceView(in))
	return nil
}

// instance returns an instance of the organisation or a NotFound error
// naming it.
func (c *Console) instance(ctx context.Context, orgID, id string) (records.Instance, error) {
	in, err := c.store.Instance(ctx, orgID, id)
	if sightline.ErrorKind(err) == sightline.NotFound {
		return in, sightline.Errorf(sightline.NotFound, "There is no module instance %s in this organisation.", id)
	}
	return in, err
}

func (c *Console) apiCreateModule(w http.ResponseWriter, r *http.Request, p principal) error {
	var req ModuleRequest
	if err := decodeJSON(w, r, maxJSON, &req); err != nil {
		return err
	}
	in, err := c.createModule(r.Context(), p.orgID, req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, instanceView(in))
	return nil
}

// createModule checks req (see applyModuleRequest) and stores a new
// instance of the organisation. Native kinds get their fixed type id and
// default name; a relay module takes the type and default name of a
// registered type, or is a Relay Module with a type id of its own; other
// kinds need the type_id of their module type.
func (c *Console) createModule(ctx context.Context, orgID string, req ModuleRequest) (records.Instance, error) {
	if req.Kind == "" {
		req.Kind = c.kindOfType(ctx, orgID, req.TypeID)
	}
	if !c.hasKind(req.Kind) {
		for _, t := range c.builtinTypes() {
			if t.Kind == req.Kind && !t.Available {
				return records.Instance{}, sightline.Errorf(sightline.Invalid, "%s modules cannot be added: %s", t.Title, t.Unavailable)
			}
		}
		return records.Instance{}, sightline.Errorf(sightline.Invalid, "unknown module kind %q: this console offers %s", req.Kind, strings.Join(c.kinds(), ", "))
	}
	now := c.now()
	in := records.Instance{Instance: module.Instance{ID: uuid.NewString(), Kind: req.Kind, OrgID: orgID, Enabled: true},
		CreatedAt: now, UpdatedAt: now}
	nt, native := nativeTypes[req.Kind]
	switch {
	case native:
		if req.TypeID != "" && req.TypeID != nt.id {
			return records.Instance{}, sightline.Errorf(sightline.Invalid, "type_id of a %s module is always %s", req.Kind, nt.id)
		}
		in.TypeID, in.Name = nt.id, nt.name
	case req.Kind == module.KindRelay && (req.TypeID == "" || req.TypeID == TypeIDRelay):
		in.TypeID, in.Name = uuid.NewString(), relayTypeName
	case req.Kind == module.KindRelay:
		t, ok, err := c.registeredType(ctx, orgID, req.TypeID)
		if err != nil {
			return records.Instance{}, err
		}
		if !ok {
			return records.Instance{}, sightline.Errorf(sightline.Invalid,
				"type_id %s is not a module type of this organisation: see GET /api/v1/module-types", req.TypeID)
		}
		in.TypeID, in.Name = t.ID, t.DefaultName
	default:
		if _, err := uuid.Parse(req.TypeID); err != nil {
			return records.Instance{}, sightline.Errorf(sightline.Invalid, "a %s module needs the type_id (a UUID) of its module type", req.Kind)
		}
		in.TypeID = req.TypeID
	}
	if err := c.applyModuleRequest(ctx, &in, req); err != nil {
		return records.Instance{}, err
	}
	if err := c.uniqueName(ctx, &in, req.Name != ""); err != nil {
		return records.Instance{}, err
	}
	if err := c.store.CreateInstance(ctx, in); err != nil {
		return records.Instance{}, fmt.Errorf("create module instance: %w", err)
	}
	return in, nil
}

// kindOfType is the module kind of a type id: a built-in type's, relay for
// a registered type, "" when it is neither.
func (c *Console) kindOfType(ctx context.Context, orgID, typeID string) string {
	if t, ok := c.builtinType(typeID); ok {
		return t.Kind
	}
	if _, ok, _ := c.registeredType(ctx, orgID, typeID); ok {
		return module.KindRelay
	}
	return ""
}

func (c *Console) apiUpdateModule(w http.ResponseWriter, r *http.Request, p principal) error {
	var req ModuleRequest
	if err := decodeJSON(w, r, maxJSON, &req); err != nil {
		return err
	}
	in, err := c.updateModule(r.Context(), p.orgID, r.PathValue("id"), req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, instanceView(in))
	return nil
}

// updateModule applies req to the organisation's instance id (omitted
// fields keep their value; kind and type cannot change) and stores it.
func (c *Console) updateModule(ctx context.Context, orgID, id string, req ModuleRequest) (records.Instance, error) {
	in, err := c.instance(ctx, orgID, id)
	if err != nil {
		return in, err
	}
	if req.Kind != "" && req.Kind != in.Kind || req.TypeID != "" && req.TypeID != in.TypeID {
		return in, sightline.Errorf(sightline.Invalid, "the kind and type of a module instance cannot change: create another instance")
	}
	if err := c.applyModuleRequest(ctx, &in, req); err != nil {
		return in, err
	}
	if req.Name != "" {
		if err := c.uniqueName(ctx, &in, true); err != nil {
			return in, err
		}
	}
	in.UpdatedAt = c.now()
	if err := c.store.UpdateInstance(ctx, in); err != nil {
		return in, fmt.Errorf("update module instance: %w", err)
	}
	c.forget(in.ID)
	return in, nil
}

// uniqueName keeps the names of an organisation's module instances apart
// (ignoring case), since the analyst tells results apart by them: a name
// the request chose that another instance has is a Conflict; a default name
// that is taken gets the first free suffix " 2", " 3"….
func (c *Console) uniqueName(ctx context.Context, in *records.Instance, chosen bool) error {
	list, err := c.store.Instances(ctx, in.OrgID)
	if err != nil {
		return fmt.Errorf("list module instances: %w", err)
	}
	var names []string
	for _, other := range list {
		if other.ID != in.ID {
			names = append(names, other.Name)
		}
	}
	switch {
	case !module.NameTaken(in.Name, names):
		return nil
	case chosen:
		return sightline.Errorf(sightline.Conflict, "a module named %q already exists in this organisation: choose another name", in.Name)
	}
	in.Name = module.FreeName(in.Name, names)
	return nil
}

// applyModuleRequest sets the name, enabled and settings of in from req,
// checks the settings (native kinds and device fields: against the
// exchange; registered types: against their configuration_spec), seals
// their secrets, and checks that the kind's factory accepts them.
func (c *Console) applyModuleRequest(ctx context.Context, in *records.Instance, req ModuleRequest) error {
	if req.Name != "" {
		in.Name = strings.TrimSpace(req.Name)
	}
	if in.Name == "" || utf8.RuneCountInString(in.Name) > 256 {
		return sightline.Errorf(sightline.Invalid, "a module instance needs a name of 1 to 256 characters")
	}
	if req.Enabled != nil {
		in.Enabled = *req.Enabled
	}
	prev := in.Settings
	if req.Settings != nil {
		in.Settings = req.Settings
	}
	if len(in.Settings) == 0 {
		in.Settings = json.RawMessage("{}")
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(in.Settings, &obj) != nil || obj == nil {
		return sightline.Errorf(sightline.Invalid, "settings must be a JSON object")
	}
	if _, native := nativeTypes[in.Kind]; native {
		s, err := c.checkDeviceSettings(ctx, in.OrgID, in.Kind, in.Settings)
		if err != nil {
			return err
		}
		in.Settings = s
	}
	if in.Kind == module.KindRelay {
		t, typed, err := c.registeredType(ctx, in.OrgID, in.TypeID)
		switch {
		case err != nil:
			return err
		case typed:
			err = c.checkTypedSettings(ctx, in, t, prev)
		default:
			err = c.checkGenericRelay(in, prev)
		}
		if err != nil {
			return err
		}
	}
	if _, err := c.newModule(ctx, *in); err != nil {
		return sightline.Wrap(sightline.Invalid, err, "module settings: "+sightline.ErrorMessage(err))
	}
	return nil
}

// DeviceSettings are the settings of an ESA or SMA module instance.
type DeviceSettings struct {
	DeviceID      string `json:"device_id"`
	TimeframeDays int    `json:"timeframe_days"` // 1–365; 0 on input means 30
}

// checkDeviceSettings checks native module settings against the exchange:
// the organisation has Threat Response on and the device is registered in
// it, of the right type. It returns the settings with defaults filled in.
func (c *Console) checkDeviceSettings(ctx context.Context, orgID, kind string, raw json.RawMessage) (json.RawMessage, error) {
	var s DeviceSettings
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, sightline.Errorf(sightline.Invalid, "settings of a %s module: want {\"device_id\": …, \"timeframe_days\": …}: %v", kind, err)
	}
	if s.DeviceID == "" {
		return nil, sightline.Errorf(sightline.Invalid, "settings: device_id is required: pick one of GET /api/v1/devices")
	}
	if s.TimeframeDays == 0 {
		s.TimeframeDays = 30
	}
	if s.TimeframeDays < 1 || s.TimeframeDays > 365 {
		return nil, sightline.Errorf(sightline.Invalid, "settings: timeframe_days %d is outside 1-365", s.TimeframeDays)
	}
	devs, err := c.exchangeDevices(ctx, orgID)
	if err != nil {
		return nil, err
	}
	if !devs.ThreatResponse {
		return nil, errThreatResponseOff(devs.Organisation)
	}
	i := slices.IndexFunc(devs.Devices, func(d exchangeclient.Device) bool { return d.ID == s.DeviceID })
	if i < 0 {
		return nil, sightline.Errorf(sightline.Invalid, "device %s is not registered in this organisation's exchange", s.DeviceID)
	}
	if want := strings.ToUpper(kind); devs.Devices[i].Type != want {
		return nil, sightline.Errorf(sightline.Invalid, "device %s (%s) is an %s, not an %s: pick a module of its kind",
			s.DeviceID, devs.Devices[i].Name, devs.Devices[i].Type, want)
	}
	b, _ := json.Marshal(s)
	return b, nil
}

func errThreatResponseOff(org string) error {
	return sightline.Errorf(sightline.Invalid,
		"Threat Response is not enabled for organisation %s in the exchange: turn it on under Cloud Services", org)
}

// exchangeDevices lists the organisation's devices in the paired exchange
// with the organisation's API key.
func (c *Console) exchangeDevices(ctx context.Context, orgID string) (exchangeclient.Devices, error) {
	var none exchangeclient.Devices
	cl, err := c.exchangeClient(ctx, orgID)
	if err != nil {
		return none, err
	}
	devs, err := cl.client.Devices(ctx)
	switch sightline.ErrorKind(err) {
	case "":
		return devs, nil
	case sightline.Unauthorized, sightline.Forbidden:
		return none, sightline.Wrap(sightline.Invalid, err, fmt.Sprintf("the exchange at %s refused organisation %s's API key (%s): set a valid key under Settings > Devices (or with PUT /api/v1/exchange)",
			c.opts.ExchangeURL, cl.org, sightline.ErrorMessage(err)))
	case sightline.Unavailable:
		return none, err
	}
	return none, sightline.Wrap(sightline.Unavailable, err, fmt.Sprintf("the exchange at %s failed: %s", c.opts.ExchangeURL, sightline.ErrorMessage(err)))
}

// kinds lists the module kinds this console can build.
func (c *Console) kinds() []string {
	var out []string
	for k := range c.opts.Modules {
		out = append(out, k)
	}
	for k := range c.opts.ExchangeModules {
		if _, dup := c.opts.Modules[k]; !dup {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// hasKind reports whether the console can build modules of kind.
func (c *Console) hasKind(kind string) bool {
	_, a := c.opts.Modules[kind]
	_, b := c.opts.ExchangeModules[kind]
	return a || b
}

func (c *Console) apiDeleteModule(w http.ResponseWriter, r *http.Request, p principal) error {
	if err := c.deleteModule(r.Context(), p.orgID, r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// deleteModule removes the organisation's instance id.
func (c *Console) deleteModule(ctx context.Context, orgID, id string) error {
	if err := c.store.DeleteInstance(ctx, orgID, id); sightline.ErrorKind(err) == sightline.NotFound {
		return sightline.Errorf(sightline.NotFound, "There is no module instance %s in this organisation.", id)
	} else if err != nil {
		return fmt.Errorf("delete module instance: %w", err)
	}
	c.forget(id)
	return nil
}

// ModuleHealth is the answer of GET /api/v1/modules/{id}/health.
type ModuleHealth struct {
	Status string        `json:"status"` // ok or error
	Errors []ModuleError `json:"errors"`
}

func (c *Console) apiModuleHealth(w http.ResponseWriter, r *http.Request, p principal) error {
	h, err := c.moduleHealth(r.Context(), p.orgID, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, h)
	return nil
}

// moduleHealth calls the health route of the organisation's instance id
// (enabled or not); a module that fails is a ModuleHealth with errors.
func (c *Console) moduleHealth(ctx context.Context, orgID, id string) (ModuleHealth, error) {
	t, err := c.target(ctx, orgID, id)
	if err != nil {
		return ModuleHealth{}, err
	}
	items, errs := c.health(ctx, []target{t})
	return ModuleHealth{Status: items[0].Data.Status, Errors: errs}, nil
}

// Devices and the exchange.

func (c *Console) apiDevices(w http.ResponseWriter, r *http.Request, p principal) error {
	devs, err := c.exchangeDevices(r.Context(), p.orgID)
	if err != nil {
		return err
	}
	if devs.Devices == nil {
		devs.Devices = []exchangeclient.Device{}
	}
	writeJSON(w, http.StatusOK, devs)
	return nil
}

// ExchangeKey is the body of PUT /api/v1/exchange.
type ExchangeKey struct {
	APIKey string `json:"api_key"`
}

func (c *Console) apiSetExchange(w http.ResponseWriter, r *http.Request, p principal) error {
	var req ExchangeKey
	if err := decodeJSON(w, r, maxJSON, &req); err != nil {
		return err
	}
	if err := c.setExchangeKey(r.Context(), p.orgID, req.APIKey); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// API clients.

// APIClient is an API client as the admin API shows it; Secret is set only
// in the answer to its creation.
type APIClient struct {
	ID        string    `json:"client_id"`
	Secret    string    `json:"client_secret,omitempty"`
	Name      string    `json:"name"`
	Scopes    []string  `json:"scopes"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by"`
}

// ClientRequest is the body of POST /api/v1/clients; Scopes are scope
// names (inspect, enrich, response, casebook, private-intel, admin).
type ClientRequest struct {
	Name   string   `json:"name"`
	Scopes []string `json:"scopes"`
}

func clientView(cl records.Client) APIClient {
	return APIClient{ID: cl.ID, Name: cl.Name, Scopes: cl.Scopes, CreatedAt: cl.CreatedAt, CreatedBy: cl.CreatedBy}
}

// CreateClient creates an API client of an organisation and returns it with
// its secret, which is not kept.
func (c *Console) CreateClient(ctx context.Context, orgID, name, by string, scopeNames []string) (APIClient, error) {
	name = strings.TrimSpace(name)
	if name == "" || utf8.RuneCountInString(name) > 256 {
		return APIClient{}, sightline.Errorf(sightline.Invalid, "an API client needs a name of 1 to 256 characters")
	}
	scopes, err := parseScopes(scopeNames)
	if err != nil {
		return APIClient{}, err
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	cl := records.Client{ID: "client-" + uuid.NewString(), OrgID: orgID, Name: name, Scopes: scopes, CreatedAt: c.now(), CreatedBy: by}
	s := base64.RawURLEncoding.EncodeToString(secret)
	cl.SecretHash = records.Hash(s)
	if err := c.store.CreateClient(ctx, cl); err != nil {
		return APIClient{}, fmt.Errorf("create api client: %w", err)
	}
	out := clientView(cl)
	out.Secret = s
	return out, nil
}

func (c *Console) apiCreateClient(w http.ResponseWriter, r *http.Request, p principal) error {
	var req ClientRequest
	if err := decodeJSON(w, r, maxJSON, &req); err != nil {
		return err
	}
	out, err := c.CreateClient(r.Context(), p.orgID, req.Name, p.name, req.Scopes)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, out)
	return nil
}

func (c *Console) apiClients(w http.ResponseWriter, r *http.Request, p principal) error {
	list, err := c.store.Clients(r.Context(), p.orgID)
	if err != nil {
		return fmt.Errorf("list api clients: %w", err)
	}
	out := []APIClient{}
	for _, cl := range list {
		out = append(out, clientView(cl))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (c *Console) apiRevokeClient(w http.ResponseWriter, r *http.Request, p principal) error {
	if err := c.revokeClient(r.Context(), p.orgID, r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// revokeClient deletes the organisation's API client id; its tokens stop
// working at once.
func (c *Console) revokeClient(ctx context.Context, orgID, id string) error {
	if err := c.store.DeleteClient(ctx, orgID, id); sightline.ErrorKind(err) == sightline.NotFound {
		return sightline.Errorf(sightline.NotFound, "There is no API client %s in this organisation.", id)
	} else if err != nil {
		return fmt.Errorf("revoke api client: %w", err)
	}
	return nil
}

// Users.

// APIUser is a console user as the admin API shows it.
type APIUser struct {
	Name      string    `json:"name"`
	Role      string    `json:"role"`
	Password  string    `json:"password,omitempty"` // on creation only, never shown
	CreatedAt time.Time `json:"created_at"`
}

func (c *Console) apiUsers(w http.ResponseWriter, r *http.Request, p principal) error {
	list, err := c.store.Users(r.Context(), p.orgID)
	if err != nil {
		return fmt.Errorf("list users: %w", err)
	}
	out := []APIUser{}
	for _, u := range list {
		out = append(out, APIUser{Name: u.Name, Role: u.Role, CreatedAt: u.CreatedAt})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (c *Console) apiCreateUser(w http.ResponseWriter, r *http.Request, p principal) error {
	var req APIUser
	if err := decodeJSON(w, r, maxJSON, &req); err != nil {
		return err
	}
	u, err := c.createUser(r.Context(), p.orgID, req.Name, req.Role, req.Password)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, APIUser{Name: u.Name, Role: u.Role, CreatedAt: u.CreatedAt})
	return nil
}

// createUser checks and adds a user of the organisation; a taken name is
// a Conflict.
func (c *Console) createUser(ctx context.Context, orgID, name, role, pass string) (records.User, error) {
	if name == "" || len(name) > 256 || strings.ContainsAny(name, ":\r\n") {
		return records.User{}, sightline.Errorf(sightline.Invalid, "a user needs a name of 1 to 256 bytes without a colon")
	}
	if !slices.Contains(records.Roles, role) {
		return records.User{}, sightline.Errorf(sightline.Invalid, "role %q: want one of %s", role, strings.Join(records.Roles, ", "))
	}
	hash, err := password.Hash(pass)
	if err != nil {
		return records.User{}, sightline.Wrap(sightline.Invalid, err, "password: "+err.Error())
	}
	u := records.User{Name: name, OrgID: orgID, Role: role, PasswordHash: hash, CreatedAt: c.now()}
	if err := c.store.CreateUser(ctx, u); sightline.ErrorKind(err) == sightline.Conflict {
		return records.User{}, sightline.Errorf(sightline.Conflict, "user %s already exists", name)
	} else if err != nil {
		return records.User{}, fmt.Errorf("create user: %w", err)
	}
	return u, nil
}

func (c *Console) apiDeleteUser(w http.ResponseWriter, r *http.Request, p principal) error {
	name := r.PathValue("name")
	if name == p.name && !p.client {
		return sightline.Errorf(sightline.Conflict, "you cannot delete yourself")
	}
	if err := c.deleteUser(r.Context(), p.orgID, name); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// deleteUser removes a user of the organisation.
func (c *Console) deleteUser(ctx context.Context, orgID, name string) error {
	if err := c.store.DeleteUser(ctx, orgID, name); sightline.ErrorKind(err) == sightline.NotFound {
		return sightline.Errorf(sightline.NotFound, "There is no user %s in this organisation.", name)
	} else if err != nil {
		return fmt.Errorf("delete user: %w", err)
	}
	return nil
}

// Keys.

func (c *Console) apiRotateKeys(w http.ResponseWriter, r *http.Request, p principal) error {
	if err := c.RotateKeys(r.Context()); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, c.keys.jwks())
	return nil
}
