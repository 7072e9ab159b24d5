package console

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/console/module"
	"github.com/sightline/sightline/internal/console/module/relay"
	"github.com/sightline/sightline/internal/console/records"
	"github.com/sightline/sightline/internal/console/ui"
	"github.com/sightline/sightline/internal/ctim"
	"github.com/sightline/sightline/internal/observable"
	"github.com/sightline/sightline/internal/password"
	"github.com/sightline/sightline/internal/web"
)

// The web UI (package ui) reads and changes the console's records through
// uiData, which adapts the core to every data interface of ui: users,
// investigations, snapshots (CTIA casebooks), incidents and judgements
// (CTIA), module instances, the exchange's devices and API clients.

// SessionCookie is the name of the console UI's session cookie.
const SessionCookie = "sightline_console"

// newUI builds the web UI with its session key from the store.
func (c *Console) newUI(ctx context.Context) (*ui.UI, error) {
	key, err := c.sessionKey(ctx)
	if err != nil {
		return nil, err
	}
	sessions, err := web.NewSessions(SessionCookie, key)
	if err != nil {
		return nil, fmt.Errorf("console ui: %w", err)
	}
	sessions.Secure = strings.HasPrefix(c.publicURL, "https://")
	d := uiData{c}
	u, err := ui.New(ui.Config{
		Sessions: sessions, Authenticate: c.uiAuthenticate, Accounts: d,
		Investigator: d, Snapshots: d, Incidents: d, Judgements: d, Modules: d, Devices: d, APIClients: d,
		ModuleTypes: d, ExchangeKeys: d, Dashboards: d,
		ExchangeURL: c.opts.ExchangeURL, Scopes: ScopeNames(), Now: c.now, Logger: c.opts.Logger, // the UI names its own component
	})
	if err != nil {
		return nil, fmt.Errorf("console ui: %w", err)
	}
	return u, nil
}

// sessionKeyLen is the size of the key that signs UI sessions.
const sessionKeyLen = 32

// sessionKey returns the key that signs UI sessions, creating it on the
// first start; every replica sharing the store reads the same key.
func (c *Console) sessionKey(ctx context.Context) ([]byte, error) {
	key, err := c.store.Secret(ctx, "ui-session-key", []byte(rand.Text()+rand.Text()))
	if err != nil {
		return nil, fmt.Errorf("console session key: %w", err)
	}
	if len(key) < sessionKeyLen {
		return nil, fmt.Errorf("console session key: the stored key is shorter than %d bytes", sessionKeyLen)
	}
	return key, nil
}

// uiAuthenticate checks the sign-in form; the top bar shows the user's
// organisation.
func (c *Console) uiAuthenticate(ctx context.Context, name, pass string) (web.User, error) {
	p, err := c.signIn(ctx, name, pass)
	if err != nil {
		return web.User{}, err
	}
	org, err := c.store.Organisation(ctx, p.orgID)
	if err != nil {
		return web.User{}, sightline.Wrap(sightline.Unavailable, err, "the console cannot read your organisation right now")
	}
	return web.User{Name: p.name, Role: org.Name}, nil
}

// uiData implements the data interfaces of package ui.
type uiData struct{ c *Console }

// Accounts.

func accountOf(u records.User) ui.Account {
	return ui.Account{Name: u.Name, Org: u.OrgID, Role: u.Role, Created: u.CreatedAt}
}

func (d uiData) Account(ctx context.Context, name string) (ui.Account, error) {
	u, err := d.c.store.User(ctx, name)
	if sightline.ErrorKind(err) == sightline.NotFound {
		return ui.Account{}, sightline.Errorf(sightline.NotFound, "There is no user %s.", name)
	}
	if err != nil {
		return ui.Account{}, fmt.Errorf("user %s: %w", name, err)
	}
	return accountOf(u), nil
}

func (d uiData) Accounts(ctx context.Context, org string) ([]ui.Account, error) {
	list, err := d.c.store.Users(ctx, org)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	out := make([]ui.Account, len(list))
	for i, u := range list {
		out[i] = accountOf(u)
	}
	return out, nil
}

func (d uiData) CreateAccount(ctx context.Context, a ui.Account, password string) error {
	_, err := d.c.createUser(ctx, a.Org, a.Name, a.Role, password)
	return err
}

func (d uiData) DeleteAccount(ctx context.Context, org, name string) error {
	return d.c.deleteUser(ctx, org, name)
}

// SetPassword replaces the password of a user of the organisation.
func (d uiData) SetPassword(ctx context.Context, org, name, pass string) error {
	hash, err := password.Hash(pass)
	if err != nil {
		return sightline.Wrap(sightline.Invalid, err, "Password: "+err.Error())
	}
	err = d.c.store.SetUserPassword(ctx, org, name, hash)
	if sightline.ErrorKind(err) == sightline.NotFound {
		return sightline.Errorf(sightline.NotFound, "There is no user %s in this organisation.", name)
	}
	return err
}

// Investigate.

// Investigate runs observe and deliberate in parallel on the query's
// observables (at most maxObservables) for the organisation's modules and
// merges both answers of each module instance into one ModuleResult.
func (d uiData) Investigate(ctx context.Context, org string, q observable.Query) (ui.Investigation, error) {
	inv, err := d.c.investigate(ctx, org, q)
	if err != nil {
		return ui.Investigation{}, err
	}
	mods := mergeEnvelopes(inv.Observe, inv.Deliberate)
	d.typeNames(ctx, org, mods)
	return ui.Investigation{Observables: inv.Observables, Modules: mods, Time: d.c.now()}, nil
}

// typeNames names the registered module types of results that typeName
// does not know; a type that cannot be read stays unnamed.
func (d uiData) typeNames(ctx context.Context, org string, mods []ui.ModuleResult) {
	var types map[string]ModuleTypeRecord
	for i, m := range mods {
		if m.TypeName != "" {
			continue
		}
		if types == nil {
			var err error
			if types, err = d.registeredTypes(ctx, org); err != nil {
				return
			}
		}
		mods[i].TypeName = types[m.TypeID].Title
	}
}

// mergeEnvelopes turns observe and deliberate envelopes into one result
// per module instance, in order of first appearance: the data of all
// envelopes merged, and the errors without repeats (a module that refuses
// its credentials says so to both calls).
func mergeEnvelopes(envs ...Envelope) []ui.ModuleResult {
	out := []ui.ModuleResult{}
	index := map[string]int{}
	entry := func(id ids) *ui.ModuleResult {
		i, ok := index[id.InstanceID]
		if !ok {
			i = len(out)
			index[id.InstanceID] = i
			out = append(out, ui.ModuleResult{Module: id.Module, TypeName: typeName(id.TypeID),
				InstanceID: id.InstanceID, TypeID: id.TypeID})
		}
		return &out[i]
	}
	for _, env := range envs {
		results, _ := env.Data.([]ModuleResult)
		for _, r := range results {
			m := entry(r.ids)
			m.Data = mergeData(m.Data, r.Data)
		}
		for _, e := range env.Errors {
			m := entry(e.ids)
			me := module.Error{Code: e.Code, Message: e.Message, Type: e.Type}
			if !slices.Contains(m.Errors, me) {
				m.Errors = append(m.Errors, me)
			}
		}
	}
	return out
}

// mergeData adds the CTIM plurals of b to a (nil: a new map, so that the
// modules' own maps are never changed): a plural in both has its
// counts summed and its documents concatenated. A plural that is not
// {"count", "docs"} in both is kept from a, where the UI reports it as
// unreadable.
func mergeData(a, b module.Data) module.Data {
	if a == nil {
		a = module.Data{}
	}
	for k, v := range b {
		cur, ok := a[k]
		if !ok {
			a[k] = v
			continue
		}
		var x, y struct {
			Count int               `json:"count"`
			Docs  []json.RawMessage `json:"docs"`
		}
		if json.Unmarshal(cur, &x) != nil || json.Unmarshal(v, &y) != nil {
			continue
		}
		merged, _ := json.Marshal(map[string]any{"count": x.Count + y.Count, "docs": append(x.Docs, y.Docs...)})
		a[k] = merged
	}
	return a
}

// typeName is the display name of a module type; "" for a type the
// console does not know by name (relay modules).
func typeName(typeID string) string {
	switch typeID {
	case TypeIDPrivateIntel:
		return PrivateIntelName
	case TypeIDESA:
		return nativeTypes[module.KindESA].name
	case TypeIDSMA:
		return nativeTypes[module.KindSMA].name
	}
	return ""
}

// CTIA entities created from the UI.

// entities returns the organisation's entities of type typ, newest first,
// decoded into T.
func entities[T any](ctx context.Context, c *Console, orgID, typ string) ([]T, []records.Entity, error) {
	es, err := c.store.Entities(ctx, orgID, typ, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("list %s: %w", typ, err)
	}
	slices.Reverse(es)
	out := make([]T, len(es))
	for i, e := range es {
		if err := json.Unmarshal(e.Doc, &out[i]); err != nil {
			return nil, nil, fmt.Errorf("stored %s %s: %w", typ, e.ID, err)
		}
	}
	return out, es, nil
}

// entity returns one entity of the organisation decoded into T, or
// notFound.
func entity[T any](ctx context.Context, c *Console, orgID, typ, id string, notFound error) (T, error) {
	var v T
	e, err := c.store.Entity(ctx, orgID, typ, id)
	if sightline.ErrorKind(err) == sightline.NotFound {
		return v, notFound
	}
	if err != nil {
		return v, fmt.Errorf("%s %s: %w", typ, id, err)
	}
	if err := json.Unmarshal(e.Doc, &v); err != nil {
		return v, fmt.Errorf("stored %s %s: %w", typ, id, err)
	}
	return v, nil
}

// Snapshots are casebooks with snapshotSource as their source, the query in
// a text of type textQuery and the ui.Investigation as JSON in a text of
// type textInvestigation; the investigated observables are the casebook's.
const (
	snapshotSource    = "Sightline Investigate snapshot"
	textQuery         = "investigate_query"
	textInvestigation = "investigation_json"
)

// isSnapshot reports whether cb is a snapshot and returns its query and
// investigation JSON.
func isSnapshot(cb ctim.Casebook) (query, inv string, ok bool) {
	if cb.Source != snapshotSource {
		return "", "", false
	}
	for _, t := range cb.Texts {
		switch t.Type {
		case textQuery:
			query = t.Text
		case textInvestigation:
			inv = t.Text
		}
	}
	return query, inv, query != "" && inv != ""
}

func snapshotOf(short string, cb ctim.Casebook, query string) ui.Snapshot {
	return ui.Snapshot{ID: short, Name: cb.Title, Query: query, Author: cb.Owner, Created: cb.Created.Time}
}

func errNoSnapshot(id string) error {
	return sightline.Errorf(sightline.NotFound, "There is no snapshot %s in this organisation.", id)
}

func (d uiData) SaveSnapshot(ctx context.Context, org string, s ui.Snapshot) (string, error) {
	if strings.TrimSpace(s.Query) == "" {
		return "", sightline.Errorf(sightline.Invalid, "A snapshot needs the query it saves.")
	}
	inv, err := json.Marshal(s.Investigation)
	if err != nil {
		return "", fmt.Errorf("encode snapshot: %w", err)
	}
	if len(inv)+len(s.Query) > maxEntity {
		return "", sightline.Errorf(sightline.Invalid, "This investigation is too large to save (%d bytes, at most %d): narrow the query.",
			len(inv)+len(s.Query), maxEntity)
	}
	cb := &ctim.Casebook{
		Describable: ctim.Describable{Title: s.Name, Description: clip("Snapshot of the investigation "+s.Query, ctim.LongLen)},
		Sourcable:   ctim.Sourcable{Source: snapshotSource},
		Observables: s.Investigation.Observables,
		Texts:       []ctim.CasebookText{{Type: textQuery, Text: s.Query}, {Type: textInvestigation, Text: string(inv)}},
	}
	id, _, err := d.c.createEntity(ctx, org, s.Author, "", ctim.TypeCasebook, cb)
	return id, err
}

func (d uiData) Snapshots(ctx context.Context, org string) ([]ui.Snapshot, error) {
	cbs, es, err := entities[ctim.Casebook](ctx, d.c, org, ctim.TypeCasebook)
	if err != nil {
		return nil, err
	}
	out := []ui.Snapshot{}
	for i, cb := range cbs {
		if query, _, ok := isSnapshot(cb); ok {
			out = append(out, snapshotOf(es[i].ID, cb, query))
		}
	}
	return out, nil
}

func (d uiData) Snapshot(ctx context.Context, org, id string) (ui.Snapshot, error) {
	cb, err := entity[ctim.Casebook](ctx, d.c, org, ctim.TypeCasebook, id, errNoSnapshot(id))
	if err != nil {
		return ui.Snapshot{}, err
	}
	query, inv, ok := isSnapshot(cb)
	if !ok {
		return ui.Snapshot{}, errNoSnapshot(id)
	}
	s := snapshotOf(id, cb, query)
	if err := json.Unmarshal([]byte(inv), &s.Investigation); err != nil {
		return ui.Snapshot{}, fmt.Errorf("snapshot %s: %w", id, err)
	}
	return s, nil
}

func (d uiData) DeleteSnapshot(ctx context.Context, org, id string) error {
	if _, err := d.Snapshot(ctx, org, id); err != nil {
		return err
	}
	if err := d.c.store.DeleteEntity(ctx, org, ctim.TypeCasebook, id); sightline.ErrorKind(err) == sightline.NotFound {
		return errNoSnapshot(id)
	} else if err != nil {
		return fmt.Errorf("delete snapshot %s: %w", id, err)
	}
	return nil
}

// Incidents keep the investigation they came from in their meta (whose
// values CTIM restricts to scalars): the query, and the observables and
// sightings as JSON arrays.
const (
	metaQuery       = "investigation_query"
	metaObservables = "investigation_observables"
	metaSightings   = "investigation_sightings"
)

func errNoIncident(id string) error {
	return sightline.Errorf(sightline.NotFound, "There is no incident %s in this organisation.", id)
}

func incidentOf(short string, in ctim.Incident, withSightings bool) ui.Incident {
	out := ui.Incident{ID: short, Title: in.Title, Description: in.Description, Status: in.Status, Severity: in.Severity,
		Confidence: in.Confidence, Opened: in.IncidentTime.Opened.Time, Modified: in.Modified.Time, Author: in.Owner}
	out.Query, _ = in.Meta[metaQuery].(string)
	if s, ok := in.Meta[metaObservables].(string); ok {
		json.Unmarshal([]byte(s), &out.Observables)
	}
	if s, ok := in.Meta[metaSightings].(string); ok && withSightings {
		json.Unmarshal([]byte(s), &out.Sightings)
	}
	return out
}

func (d uiData) Incidents(ctx context.Context, org string) ([]ui.Incident, error) {
	list, es, err := entities[ctim.Incident](ctx, d.c, org, ctim.TypeIncident)
	if err != nil {
		return nil, err
	}
	out := make([]ui.Incident, len(list))
	for i, in := range list {
		out[i] = incidentOf(es[i].ID, in, false)
	}
	return out, nil
}

func (d uiData) Incident(ctx context.Context, org, id string) (ui.Incident, error) {
	in, err := entity[ctim.Incident](ctx, d.c, org, ctim.TypeIncident, id, errNoIncident(id))
	if err != nil {
		return ui.Incident{}, err
	}
	return incidentOf(id, in, true), nil
}

func (d uiData) CreateIncident(ctx context.Context, org string, in ui.Incident) (string, error) {
	obs, err := json.Marshal(in.Observables)
	if err != nil {
		return "", fmt.Errorf("encode incident observables: %w", err)
	}
	sightings, err := json.Marshal(in.Sightings)
	if err != nil {
		return "", fmt.Errorf("encode incident sightings: %w", err)
	}
	if n := len(obs) + len(sightings) + len(in.Query); n > maxEntity {
		return "", sightline.Errorf(sightline.Invalid, "This investigation is too large for an incident (%d bytes, at most %d): narrow the query.", n, maxEntity)
	}
	v := &ctim.Incident{
		Describable: ctim.Describable{Title: in.Title, Description: clip(in.Description, ctim.LongLen)},
		Status:      in.Status, Severity: in.Severity, Confidence: in.Confidence,
		Meta: map[string]any{metaQuery: in.Query, metaObservables: string(obs), metaSightings: string(sightings)},
	}
	if !in.Opened.IsZero() {
		v.IncidentTime.Opened = ctim.NewTime(in.Opened)
	}
	id, _, err := d.c.createEntity(ctx, org, in.Author, "", ctim.TypeIncident, v)
	return id, err
}

func (d uiData) SetIncidentStatus(ctx context.Context, org, id string, status ctim.IncidentStatus) error {
	if !status.Valid() {
		return sightline.Errorf(sightline.Invalid, "%q is not an incident status", status)
	}
	_, err := d.c.modify(ctx, org, ctim.TypeIncident, id, func(v any) error {
		v.(*ctim.Incident).Status = status
		return nil
	})
	if sightline.ErrorKind(err) == sightline.NotFound {
		return errNoIncident(id)
	}
	return err
}

// Judgements.

func errNoJudgement(id string) error {
	return sightline.Errorf(sightline.NotFound, "There is no judgement %s in this organisation.", id)
}

func (d uiData) Judgements(ctx context.Context, org string) ([]ctim.Judgement, error) {
	list, _, err := entities[ctim.Judgement](ctx, d.c, org, ctim.TypeJudgement)
	return list, err
}

// CreateJudgement stores j with the signed-in user as its owner.
func (d uiData) CreateJudgement(ctx context.Context, org string, j ctim.Judgement) (ctim.Judgement, error) {
	var owner string
	if sess, ok := web.SessionFrom(ctx); ok {
		owner = sess.User.Name
	}
	_, doc, err := d.c.createEntity(ctx, org, owner, "", ctim.TypeJudgement, &j)
	if err != nil {
		return ctim.Judgement{}, err
	}
	var out ctim.Judgement
	if err := json.Unmarshal(doc, &out); err != nil {
		return ctim.Judgement{}, fmt.Errorf("stored judgement: %w", err)
	}
	return out, nil
}

// ExpireJudgement ends the judgement's valid time at at, as POST
// /ctia/judgement/{id}/expire does at now.
func (d uiData) ExpireJudgement(ctx context.Context, org, id string, at time.Time) error {
	end := ctim.NewTime(at)
	_, err := d.c.modify(ctx, org, ctim.TypeJudgement, id, func(v any) error {
		j := v.(*ctim.Judgement)
		if j.ValidTime.StartTime.After(end.Time) {
			j.ValidTime.StartTime = end
		}
		j.ValidTime.EndTime = end
		return nil
	})
	if sightline.ErrorKind(err) == sightline.NotFound {
		return errNoJudgement(id)
	}
	return err
}

func (d uiData) DeleteJudgement(ctx context.Context, org, id string) error {
	if err := d.c.store.DeleteEntity(ctx, org, ctim.TypeJudgement, id); sightline.ErrorKind(err) == sightline.NotFound {
		return errNoJudgement(id)
	} else if err != nil {
		return fmt.Errorf("delete judgement %s: %w", id, err)
	}
	return nil
}

// Modules.

// relayTypeName is the type name of relay module instances.
const relayTypeName = "Relay Module"

// moduleOf shows an instance as the Modules pages edit it; a relay
// module's secret is never shown, only whether one is stored.
func moduleOf(in records.Instance) ui.Module {
	m := ui.Module{ID: in.ID, Kind: in.Kind, TypeID: in.TypeID, TypeName: typeName(in.TypeID), Name: in.Name, Enabled: in.Enabled}
	switch in.Kind {
	case module.KindESA, module.KindSMA:
		var s DeviceSettings
		json.Unmarshal(in.Settings, &s)
		m.DeviceID, m.TimeframeDays = s.DeviceID, s.TimeframeDays
	case module.KindRelay:
		var s relay.Settings
		json.Unmarshal(in.Settings, &s)
		m.TypeName, m.URL, m.AuthStyle, m.SupportedAPIs = relayTypeName, s.URL, s.Auth.Style, s.SupportedAPIs
		m.HasSecret = relaySecret(s.Auth) != ""
		m.TimeoutSeconds = s.TimeoutSeconds
		if m.TimeoutSeconds == 0 {
			m.TimeoutSeconds = int(relay.DefaultTimeout / time.Second)
		}
	default:
		m.TypeName = in.Kind
	}
	return m
}

// relaySecret is the secret of a relay module's authentication: the static
// token, or the HS256 key of configuration tokens.
func relaySecret(a relay.Auth) string {
	if a.Style == relay.StyleStatic {
		return a.Token
	}
	return a.Key
}

// moduleRequest turns the module form into the request of the admin API.
// A relay module keeps the settings the form does not show (audience,
// claims, CA certificates) from prev, and its stored secret when m.Secret
// is empty and the authentication style has not changed. A configuration
// token with a secret is HS256 with it as key, without one RS256.
func moduleRequest(m ui.Module, prev json.RawMessage) (ModuleRequest, error) {
	req := ModuleRequest{Kind: m.Kind, TypeID: m.TypeID, Name: m.Name, Enabled: &m.Enabled}
	var settings any
	switch m.Kind {
	case module.KindESA, module.KindSMA:
		settings = DeviceSettings{DeviceID: m.DeviceID, TimeframeDays: m.TimeframeDays}
	case module.KindRelay:
		var s relay.Settings
		if prev != nil {
			json.Unmarshal(prev, &s)
		}
		secret := m.Secret
		if secret == "" && s.Auth.Style == m.AuthStyle {
			secret = relaySecret(s.Auth)
		}
		s.URL, s.SupportedAPIs, s.TimeoutSeconds = m.URL, m.SupportedAPIs, m.TimeoutSeconds
		s.Auth.Style, s.Auth.Token, s.Auth.Key, s.Auth.Alg = m.AuthStyle, "", "", ""
		switch {
		case m.AuthStyle == relay.StyleStatic:
			s.Auth.Token = secret
		case secret != "":
			s.Auth.Alg, s.Auth.Key = "HS256", secret
		}
		settings = s
	default:
		return req, sightline.Errorf(sightline.Invalid, "Modules of kind %s are configured with the admin API (PUT /api/v1/modules/{id}), not here.", m.Kind)
	}
	b, err := json.Marshal(settings)
	if err != nil {
		return req, fmt.Errorf("encode module settings: %w", err)
	}
	req.Settings = b
	return req, nil
}

// typedModuleOf shows an instance of the registered type t: its values as
// the form shows them, without its secrets.
func typedModuleOf(in records.Instance, t ModuleTypeRecord) ui.Module {
	m := ui.Module{ID: in.ID, Kind: in.Kind, TypeID: in.TypeID, TypeName: t.Title, Name: in.Name, Enabled: in.Enabled,
		Typed: true, Values: map[string]string{}, URL: t.Properties.URL, SupportedAPIs: t.Properties.SupportedAPIs}
	var values map[string]json.RawMessage
	json.Unmarshal(in.Settings, &values)
	for _, f := range t.ConfigurationSpec {
		raw, ok := values[f.Key]
		if !ok {
			continue
		}
		if isSecretField(f.Type) {
			m.SecretsSet = append(m.SecretsSet, f.Key)
			continue
		}
		var v string
		if json.Unmarshal(raw, &v) != nil {
			v = string(raw)
		}
		m.Values[f.Key] = v
		if f.Key == "url" {
			m.URL = v
		}
	}
	return m
}

// typedModuleRequest turns the form of a registered type's instance into
// the request of the admin API: its values, without the secrets left
// empty (which keep their stored value).
func typedModuleRequest(m ui.Module) (ModuleRequest, error) {
	req := ModuleRequest{Kind: module.KindRelay, TypeID: m.TypeID, Name: m.Name, Enabled: &m.Enabled}
	values := map[string]string{}
	for k, v := range m.Values {
		if v != "" {
			values[k] = v
		}
	}
	b, err := json.Marshal(values)
	if err != nil {
		return req, fmt.Errorf("encode module settings: %w", err)
	}
	req.Settings = b
	return req, nil
}

// moduleView shows an instance as the Modules pages edit it, looking its
// type up in types (the organisation's registered types) when it has one.
func moduleView(in records.Instance, types map[string]ModuleTypeRecord) ui.Module {
	if t, ok := types[in.TypeID]; ok && in.Kind == module.KindRelay {
		return typedModuleOf(in, t)
	}
	return moduleOf(in)
}

// registeredTypes returns the organisation's registered types by id.
func (d uiData) registeredTypes(ctx context.Context, org string) (map[string]ModuleTypeRecord, error) {
	list, err := d.c.store.ModuleTypes(ctx, org)
	if err != nil {
		return nil, fmt.Errorf("list module types: %w", err)
	}
	out := map[string]ModuleTypeRecord{}
	for _, rt := range list {
		t, err := d.c.typeView(rt)
		if err != nil {
			return nil, err
		}
		out[t.ID] = t
	}
	return out, nil
}

func (d uiData) Modules(ctx context.Context, org string) ([]ui.Module, error) {
	list, err := d.c.store.Instances(ctx, org)
	if err != nil {
		return nil, fmt.Errorf("list module instances: %w", err)
	}
	types, err := d.registeredTypes(ctx, org)
	if err != nil {
		return nil, err
	}
	out := make([]ui.Module, len(list))
	for i, in := range list {
		out[i] = moduleView(in, types)
	}
	return out, nil
}

func (d uiData) Module(ctx context.Context, org, id string) (ui.Module, error) {
	in, err := d.c.instance(ctx, org, id)
	if err != nil {
		return ui.Module{}, err
	}
	types, err := d.registeredTypes(ctx, org)
	if err != nil {
		return ui.Module{}, err
	}
	return moduleView(in, types), nil
}

// request turns the module form into the request of the admin API.
func (d uiData) request(m ui.Module, prev json.RawMessage) (ModuleRequest, error) {
	if m.Typed {
		return typedModuleRequest(m)
	}
	return moduleRequest(m, prev)
}

func (d uiData) CreateModule(ctx context.Context, org string, m ui.Module) (ui.Module, error) {
	req, err := d.request(m, nil)
	if err != nil {
		return ui.Module{}, err
	}
	in, err := d.c.createModule(ctx, org, req)
	if err != nil {
		return ui.Module{}, err
	}
	return d.Module(ctx, org, in.ID)
}

func (d uiData) UpdateModule(ctx context.Context, org string, m ui.Module) error {
	in, err := d.c.instance(ctx, org, m.ID)
	if err != nil {
		return err
	}
	req, err := d.request(m, in.Settings)
	if err != nil {
		return err
	}
	_, err = d.c.updateModule(ctx, org, m.ID, req)
	return err
}

func (d uiData) DeleteModule(ctx context.Context, org, id string) error {
	return d.c.deleteModule(ctx, org, id)
}

func (d uiData) CheckModule(ctx context.Context, org, id string) (ui.Health, error) {
	h, err := d.c.moduleHealth(ctx, org, id)
	if err != nil {
		return ui.Health{}, err
	}
	out := ui.Health{OK: h.Status == "ok"}
	for _, e := range h.Errors {
		out.Errors = append(out.Errors, module.Error{Code: e.Code, Message: e.Message, Type: e.Type})
	}
	return out, nil
}

// Devices.

func (d uiData) Devices(ctx context.Context, org string) (ui.DeviceList, error) {
	devs, err := d.c.exchangeDevices(ctx, org)
	if err != nil {
		return ui.DeviceList{}, err
	}
	out := ui.DeviceList{Organisation: devs.Organisation, ThreatResponse: devs.ThreatResponse}
	for _, dev := range devs.Devices {
		out.Devices = append(out.Devices, ui.Device{ID: dev.ID, Name: dev.Name, Type: dev.Type, IP: dev.IP,
			Version: dev.Version, Status: dev.Status, Connected: dev.Connected})
	}
	return out, nil
}

// Module types.

func uiType(t ModuleTypeRecord) ui.ModuleType {
	out := ui.ModuleType{ID: t.ID, Kind: t.Kind, Title: t.Title, DefaultName: t.DefaultName, ShortDescription: t.ShortDescription,
		Description: t.Description, BuiltIn: t.BuiltIn, Available: t.Available, Unavailable: t.Unavailable,
		URL: t.Properties.URL, SupportedAPIs: t.Properties.SupportedAPIs, AuthType: t.Properties.AuthType, CreatedBy: t.CreatedBy}
	if t.CreatedAt != nil {
		out.Created = *t.CreatedAt
	}
	for _, c := range t.Capabilities {
		out.Capabilities = append(out.Capabilities, c.ID)
	}
	for _, f := range t.ConfigurationSpec {
		tf := ui.TypeField{Key: f.Key, Type: f.Type, Label: f.Label, Tooltip: f.Tooltip, Group: f.Group, Required: f.Required}
		if f.DefaultValue != nil {
			tf.Default = fmt.Sprint(f.DefaultValue)
		}
		for _, o := range f.Options {
			tf.Options = append(tf.Options, ui.FieldOption{Value: o.Value, Label: o.Label})
		}
		out.Fields = append(out.Fields, tf)
	}
	return out
}

func (d uiData) ModuleTypes(ctx context.Context, org string) ([]ui.ModuleType, error) {
	list, err := d.c.moduleTypes(ctx, org)
	if err != nil {
		return nil, err
	}
	out := make([]ui.ModuleType, len(list))
	for i, t := range list {
		out[i] = uiType(t)
	}
	return out, nil
}

func (d uiData) ModuleType(ctx context.Context, org, id string) (ui.ModuleType, error) {
	t, err := d.c.moduleType(ctx, org, id)
	if err != nil {
		return ui.ModuleType{}, err
	}
	return uiType(t), nil
}

func (d uiData) RegisterModuleType(ctx context.Context, org, by string, record []byte) (ui.ModuleType, error) {
	t, err := d.c.registerModuleType(ctx, org, by, record)
	if err != nil {
		return ui.ModuleType{}, err
	}
	return uiType(t), nil
}

func (d uiData) DeleteModuleType(ctx context.Context, org, id string) error {
	return d.c.deleteModuleType(ctx, org, id)
}

// The exchange key.

func (d uiData) ExchangeStatus(ctx context.Context, org string) (ui.ExchangeStatus, error) {
	st, err := d.c.exchangeStatus(ctx, org)
	if err != nil {
		return ui.ExchangeStatus{}, err
	}
	return ui.ExchangeStatus{URL: st.URL, KeySet: st.KeyIsSet, Reachable: st.Reachable, ThreatResponse: st.ThreatResponse,
		Problem: st.Problem}, nil
}

func (d uiData) SetExchangeKey(ctx context.Context, org, key string) error {
	return d.c.setExchangeKey(ctx, org, key)
}

// Dashboards.

func (d uiData) Dashboard(ctx context.Context, org, period string) (ui.Dashboard, error) {
	return d.c.dashboard(ctx, org, period)
}

func (d uiData) Tile(ctx context.Context, org, instanceID, tileID, period string) (ui.DashboardModule, error) {
	return d.c.tile(ctx, org, instanceID, tileID, period)
}

// API clients.

func clientOf(cl APIClient) ui.APIClient {
	return ui.APIClient{ID: cl.ID, Name: cl.Name, Scopes: cl.Scopes, Created: cl.CreatedAt, CreatedBy: cl.CreatedBy, Secret: cl.Secret}
}

func (d uiData) Clients(ctx context.Context, org string) ([]ui.APIClient, error) {
	list, err := d.c.store.Clients(ctx, org)
	if err != nil {
		return nil, fmt.Errorf("list api clients: %w", err)
	}
	out := make([]ui.APIClient, len(list))
	for i, cl := range list {
		out[i] = clientOf(clientView(cl))
	}
	return out, nil
}

func (d uiData) CreateClient(ctx context.Context, org, name, by string, scopes []string) (ui.APIClient, error) {
	cl, err := d.c.CreateClient(ctx, org, name, by, scopes)
	if err != nil {
		return ui.APIClient{}, err
	}
	return clientOf(cl), nil
}

func (d uiData) RevokeClient(ctx context.Context, org, id string) error {
	return d.c.revokeClient(ctx, org, id)
}

// clip shortens s to at most n runes.
func clip(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
