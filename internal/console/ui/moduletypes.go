package ui

import (
	"net/http"
	"strings"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/web"
)

// Available Module Types: the built-in types and those the organisation
// registered, each with Add New Module when instances can be added, and a
// form to register a module type from its record (relay-api.md §6). An
// instance of a registered type is added with a form drawn from the type's
// configuration_spec.

func (u *UI) typeRoutes(mux *http.ServeMux, admin func(handler) http.Handler) {
	mux.Handle("GET /settings/modules/new/type/{id}", admin(u.newTypedModule))
	mux.Handle("POST /settings/module-types", admin(u.registerType))
	mux.Handle("POST /settings/module-types/{id}/delete", admin(u.deleteType))
	mux.Handle("POST /settings/devices/exchange-key", admin(u.setExchangeKey))
}

// maxRecordLen bounds a module type record pasted into the form.
const maxRecordLen = 1 << 20

type typeCard struct {
	ModuleType
	AddPath string // Add New Module; "" when instances cannot be added
}

type moduleTypesPage struct {
	settingsBase
	Types       []typeCard
	CanRegister bool
	Record      string // the record posted, shown again beside its problem
}

// addPath is where an instance of t is added.
func addPath(t ModuleType) string {
	switch {
	case !t.Available:
		return ""
	case !t.BuiltIn:
		return "/settings/modules/new/type/" + t.ID
	case t.Kind == KindESA || t.Kind == KindSMA || t.Kind == KindRelay:
		return "/settings/modules/new/" + t.Kind
	}
	return ""
}

func (u *UI) moduleTypes(w http.ResponseWriter, r *http.Request, me Account) {
	u.renderModuleTypes(w, r, me, http.StatusOK, "", "")
}

func (u *UI) renderModuleTypes(w http.ResponseWriter, r *http.Request, me Account, status int, record, problem string) {
	d := moduleTypesPage{settingsBase: newSettings(me, "/settings/modules"), CanRegister: u.cfg.ModuleTypes != nil, Record: record}
	if u.cfg.ModuleTypes == nil {
		for _, k := range moduleKinds {
			t := ModuleType{ID: k.Kind, Kind: k.Kind, Title: k.Name, ShortDescription: k.Description, BuiltIn: true, Available: true}
			d.Types = append(d.Types, typeCard{ModuleType: t, AddPath: addPath(t)})
		}
	} else {
		list, err := u.cfg.ModuleTypes.ModuleTypes(r.Context(), me.Org)
		if err != nil {
			u.rd.Error(w, r, err)
			return
		}
		for _, t := range list {
			d.Types = append(d.Types, typeCard{ModuleType: t, AddPath: addPath(t)})
		}
	}
	const title = "Available Module Types"
	if problem != "" {
		u.rd.Render(w, r, status, "moduletypes.html", pageWithError(title, problem, d))
		return
	}
	u.render(w, r, status, "moduletypes.html", title, d)
}

// registerType registers a module type from the record in the form.
func (u *UI) registerType(w http.ResponseWriter, r *http.Request, me Account) {
	if u.cfg.ModuleTypes == nil {
		u.unavailable(w, r, "Module type registration")
		return
	}
	record := r.PostFormValue("record")
	var err error
	switch {
	case strings.TrimSpace(record) == "":
		err = sightline.Errorf(sightline.Invalid, "Module Type Record: paste the module type's JSON record.")
	case len(record) > maxRecordLen:
		err = sightline.Errorf(sightline.Invalid, "Module Type Record: at most %d bytes.", maxRecordLen)
	}
	var t ModuleType
	if err == nil {
		t, err = u.cfg.ModuleTypes.RegisterModuleType(r.Context(), me.Org, me.Name, []byte(record))
	}
	switch sightline.ErrorKind(err) {
	case "":
		u.log.Info("module type registered", "user", me.Name, "module_type", t.ID, "title", t.Title)
		u.done(w, r, "/settings/modules/new", "Module type "+t.Title+" has been registered.")
	case sightline.Invalid, sightline.Conflict:
		u.renderModuleTypes(w, r, me, web.HTTPStatus(err), record, sightline.ErrorMessage(err))
	default:
		u.rd.Error(w, r, err)
	}
}

func (u *UI) deleteType(w http.ResponseWriter, r *http.Request, me Account) {
	if u.cfg.ModuleTypes == nil {
		u.unavailable(w, r, "Module type registration")
		return
	}
	id := r.PathValue("id")
	if err := u.cfg.ModuleTypes.DeleteModuleType(r.Context(), me.Org, id); err != nil {
		u.failed(w, r, "/settings/modules/new", err)
		return
	}
	u.log.Info("module type deleted", "user", me.Name, "module_type", id)
	u.done(w, r, "/settings/modules/new", "The module type has been deleted.")
}

// newTypedModule shows the form of a new instance of a registered type.
func (u *UI) newTypedModule(w http.ResponseWriter, r *http.Request, me Account) {
	if u.cfg.ModuleTypes == nil {
		u.rd.NotFound(w, r)
		return
	}
	t, err := u.cfg.ModuleTypes.ModuleType(r.Context(), me.Org, r.PathValue("id"))
	if err != nil {
		u.rd.Error(w, r, err)
		return
	}
	if t.BuiltIn || !t.Available {
		u.rd.Error(w, r, sightline.Errorf(sightline.Invalid, "Instances of %s cannot be added here. %s", t.Title, t.Unavailable))
		return
	}
	m := Module{Kind: KindRelay, TypeID: t.ID, TypeName: t.Title, Name: t.DefaultName, Enabled: true, Typed: true,
		Values: map[string]string{}}
	for _, f := range t.Fields {
		if f.Default != "" {
			m.Values[f.Key] = f.Default
		}
	}
	u.renderModuleForm(w, r, me, http.StatusOK, true, m, "")
}

// typedField is one field of a registered type's form.
type typedField struct {
	TypeField
	Name      string // the form field's name
	Value     string // non-secret fields
	Checked   bool   // boolean fields
	SecretSet bool   // a secret is stored
	Multiline bool   // file fields
}

// settingName is the form name of a field of a registered type.
func settingName(key string) string { return "setting_" + key }

func typedFields(t ModuleType, m Module) []typedField {
	var out []typedField
	for _, f := range t.Fields {
		tf := typedField{TypeField: f, Name: settingName(f.Key), Value: m.Values[f.Key], Multiline: f.Type == "file"}
		switch f.Type {
		case "password", "api_key":
			tf.Value, tf.SecretSet = "", contains(m.SecretsSet, f.Key)
		case "boolean":
			tf.Checked = m.Values[f.Key] == "true"
		}
		out = append(out, tf)
	}
	return out
}

// parseTyped reads the values of a registered type's fields into m. A
// secret left empty keeps the stored one; a required field must have a
// value (a secret: on a new module, or when none is stored).
func parseTyped(r *http.Request, t ModuleType, m *Module, isNew bool) error {
	m.Values = map[string]string{}
	for _, f := range t.Fields {
		name := settingName(f.Key)
		v := r.PostFormValue(name)
		switch f.Type {
		case "boolean":
			v = "false"
			if r.PostFormValue(name) == "on" || r.PostFormValue(name) == "true" {
				v = "true"
			}
		case "password", "api_key":
			if v == "" && f.Required && (isNew || !contains(m.SecretsSet, f.Key)) {
				return sightline.Errorf(sightline.Invalid, "%s: required.", f.Label)
			}
		case "file":
		default:
			v = strings.TrimSpace(v)
		}
		if len(v) > maxFileField {
			return sightline.Errorf(sightline.Invalid, "%s: at most %d characters.", f.Label, maxFileField)
		}
		if v == "" && f.Required && f.Type != "password" && f.Type != "api_key" {
			return sightline.Errorf(sightline.Invalid, "%s: required.", f.Label)
		}
		if v != "" {
			m.Values[f.Key] = v
		}
	}
	return nil
}

// maxFileField bounds one field of a registered type's form.
const maxFileField = 64 << 10

// moduleType returns the registered type of a typed module.
func (u *UI) moduleType(r *http.Request, me Account, m Module) (ModuleType, error) {
	if u.cfg.ModuleTypes == nil {
		return ModuleType{}, sightline.Errorf(sightline.Unavailable, "Module types are not available on this console.")
	}
	return u.cfg.ModuleTypes.ModuleType(r.Context(), me.Org, m.TypeID)
}

// Exchange API key.

// setExchangeKey stores the organisation's exchange API key.
func (u *UI) setExchangeKey(w http.ResponseWriter, r *http.Request, me Account) {
	const back = "/settings/devices"
	if u.cfg.ExchangeKeys == nil {
		u.unavailable(w, r, "Exchange key management")
		return
	}
	key := strings.TrimSpace(r.PostFormValue("api_key"))
	var err error
	if key == "" || len(key) > 1024 {
		err = sightline.Errorf(sightline.Invalid, "Exchange API Key: paste the organisation API key the exchange created (1 to 1024 characters).")
	} else {
		err = u.cfg.ExchangeKeys.SetExchangeKey(r.Context(), me.Org, key)
	}
	if err != nil {
		u.failed(w, r, back, err)
		return
	}
	u.log.Info("exchange api key set", "user", me.Name)
	u.done(w, r, back, "The exchange API key has been saved: this organisation's modules use it from now on.")
}
