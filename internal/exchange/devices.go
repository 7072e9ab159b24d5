package exchange

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"

	"github.com/google/uuid"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/exchange/exchangeclient"
	"github.com/sightline/sightline/internal/exchange/registry"
)

// actor is who acts on an organisation: a signed-in user or an API key,
// from a source address.
type actor struct {
	org    registry.Organisation
	name   string // user name, or "api key <name>"
	source string // IP address
	// gen is the store's generation read when an API key was checked, for
	// the lookups of the rest of the request; genRead says it was read.
	gen     int64
	genRead bool
}

// entry starts an audit entry for what the actor did.
func (a actor) entry(action, target, outcome, detail string) registry.AuditEntry {
	return registry.AuditEntry{OrgID: a.org.ID, Actor: a.name, Source: a.source, Action: action,
		Target: target, Outcome: outcome, Detail: detail}
}

// deviceView is a device with its tunnel state.
func (e *Exchange) deviceView(d registry.Device) exchangeclient.Device {
	_, _, connected := e.hub.Connected(d.ID)
	return exchangeclient.Device{ID: d.ID, Type: d.Type, Name: d.Name, Description: d.Description, Version: d.Version,
		Serial: d.Serial, ConnectorVersion: d.ConnectorVersion, Status: d.Status, IP: d.IP, Connected: connected,
		CreatedAt: d.CreatedAt, LastSeen: d.LastSeen}
}

// devices lists the organisation's devices whose name, description, ID,
// IP, type or version contains query (case-insensitive); "" lists all.
func (e *Exchange) devices(ctx context.Context, org registry.Organisation, query string) ([]exchangeclient.Device, error) {
	list, err := e.store.Devices(ctx, org.ID)
	if err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	q := strings.ToLower(strings.TrimSpace(query))
	out := []exchangeclient.Device{}
	for _, d := range list {
		hay := strings.ToLower(strings.Join([]string{d.Name, d.Description, d.ID, d.IP, d.Type, d.Version, d.Serial}, "\x00"))
		if q == "" || strings.Contains(hay, q) {
			out = append(out, e.deviceView(d))
		}
	}
	return out, nil
}

// device returns a device of the actor's organisation; another
// organisation's device is NotFound, as one that does not exist.
func (e *Exchange) device(ctx context.Context, who actor, id string) (registry.Device, error) {
	d, err := e.store.Device(ctx, who.org.ID, id)
	if sightline.ErrorKind(err) == sightline.NotFound {
		return d, sightline.Errorf(sightline.NotFound, "There is no device %s in organisation %s.", id, who.org.Name)
	}
	if err != nil {
		return d, fmt.Errorf("read device %s: %w", id, err)
	}
	return d, nil
}

// proxyDevice is device for the proxy path: for an actor that carries the
// store's generation, what it reads is kept in e.lookups until the
// generation moves.
func (e *Exchange) proxyDevice(ctx context.Context, who actor, id string) (registry.Device, error) {
	if !who.genRead {
		return e.device(ctx, who, id)
	}
	if d, ok := e.lookups.device(who.gen, who.org.ID, id); ok {
		return d, nil
	}
	d, err := e.device(ctx, who, id)
	if err == nil {
		e.lookups.putDevice(who.gen, d)
	}
	return d, err
}

// Limits of the editable device fields.
const (
	maxDeviceName        = 253
	maxDeviceDescription = 1000
)

// editDevice sets a device's name and description.
func (e *Exchange) editDevice(ctx context.Context, who actor, id, name, description string) error {
	name, description = strings.TrimSpace(name), strings.TrimSpace(description)
	if name == "" || len(name) > maxDeviceName || !printable(name) {
		return sightline.Errorf(sightline.Invalid, "Name: give a name of at most %d printable characters.", maxDeviceName)
	}
	if len(description) > maxDeviceDescription {
		return sightline.Errorf(sightline.Invalid, "Description: at most %d characters.", maxDeviceDescription)
	}
	d, err := e.device(ctx, who, id)
	if err != nil {
		return err
	}
	if err := e.store.UpdateDevice(ctx, who.org.ID, id, name, description); err != nil {
		return fmt.Errorf("edit device %s: %w", id, err)
	}
	entry := who.entry(registry.ActionDeviceEdit, id+" "+name, registry.OutcomeSuccess,
		fmt.Sprintf("name %q → %q, description %q → %q", d.Name, name, d.Description, description))
	entry.DeviceID, entry.DeviceName = id, name
	e.audit(ctx, entry)
	return nil
}

// deleteDevice deregisters a device of the organisation: it removes the
// record (its credential stops working) and tells the device through its
// tunnel, whose Dialer then stops for good.
func (e *Exchange) deleteDevice(ctx context.Context, who actor, id string) error {
	d, err := e.device(ctx, who, id)
	if err != nil {
		return err
	}
	if err := e.store.DeleteDevice(ctx, who.org.ID, id); err != nil {
		return fmt.Errorf("delete device %s: %w", id, err)
	}
	e.hub.Disconnect(id, "deregistered")
	entry := who.entry(registry.ActionDeviceDelete, id+" "+d.Name, registry.OutcomeSuccess,
		fmt.Sprintf("deleted %s %s (%s, registered from %s)", d.Type, d.Name, d.Version, d.IP))
	entry.DeviceID, entry.DeviceName = id, d.Name
	e.audit(ctx, entry)
	return nil
}

// setThreatResponse turns the organisation's Threat Response switch on or off.
func (e *Exchange) setThreatResponse(ctx context.Context, who actor, on bool) error {
	if err := e.store.SetThreatResponse(ctx, who.org.ID, on); err != nil {
		return fmt.Errorf("set threat response: %w", err)
	}
	state := "disabled"
	if on {
		state = "enabled"
	}
	e.audit(ctx, who.entry(registry.ActionCloudServices, "Threat Response", registry.OutcomeSuccess, "Threat Response "+state))
	return nil
}

// maxKeyName bounds an API key's name.
const maxKeyName = 100

// createAPIKey makes an organisation API key; the key is returned once.
func (e *Exchange) createAPIKey(ctx context.Context, who actor, name string) (exchangeclient.APIKey, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > maxKeyName || !printable(name) {
		return exchangeclient.APIKey{}, sightline.Errorf(sightline.Invalid, "Name: say what the key is for, in at most %d characters.", maxKeyName)
	}
	secret := "sle_" + rand.Text() + rand.Text()
	k := registry.APIKey{ID: uuid.NewString(), OrgID: who.org.ID, Name: name, Hash: registry.Hash(secret),
		CreatedAt: e.now(), CreatedBy: who.name}
	if err := e.store.CreateAPIKey(ctx, k); err != nil {
		return exchangeclient.APIKey{}, fmt.Errorf("create api key: %w", err)
	}
	e.audit(ctx, who.entry(registry.ActionAPIKeyCreate, k.ID+" "+name, registry.OutcomeSuccess, "API key created"))
	return exchangeclient.APIKey{ID: k.ID, Name: k.Name, Key: secret, CreatedAt: k.CreatedAt, CreatedBy: k.CreatedBy}, nil
}

// revokeAPIKey deletes an API key of the organisation.
func (e *Exchange) revokeAPIKey(ctx context.Context, who actor, id string) error {
	if err := e.store.DeleteAPIKey(ctx, who.org.ID, id); err != nil {
		if sightline.ErrorKind(err) == sightline.NotFound {
			return sightline.Errorf(sightline.NotFound, "There is no API key %s.", id)
		}
		return fmt.Errorf("revoke api key: %w", err)
	}
	e.audit(ctx, who.entry(registry.ActionAPIKeyRevoke, id, registry.OutcomeSuccess, "API key revoked"))
	return nil
}

// CreateAPIKey creates an API key of the named organisation for a program
// such as the console, as the user admin would; serve uses it to wire the
// console to its exchange. The key is returned once; the store keeps its hash.
func (e *Exchange) CreateAPIKey(ctx context.Context, organisation, name string) (string, error) {
	org, err := e.store.OrganisationByName(ctx, organisation)
	if err != nil {
		return "", fmt.Errorf("create api key for organisation %q: %w", organisation, err)
	}
	k, err := e.createAPIKey(ctx, actor{org: org, name: AdminUser, source: "local"}, name)
	return k.Key, err
}

// tokenView is a token as the API and UI show it.
func (e *Exchange) tokenView(t registry.Token) exchangeclient.Token {
	return exchangeclient.Token{ID: t.ID, Region: t.Region, Devices: t.Devices, Remaining: t.Remaining,
		State: TokenState(t, e.now()), CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt, RevokedAt: t.RevokedAt, CreatedBy: t.CreatedBy}
}
