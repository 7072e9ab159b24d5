package console

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/console/module"
	"github.com/sightline/sightline/internal/console/module/relay"
	"github.com/sightline/sightline/internal/console/records"
)

// Module types (console-api.md §9, relay-api.md §6). The console has
// built-in types — the Email Security Appliance, the Security Management
// Appliance, the Relay Module whose instances carry their own URL and
// authentication, and Private Intelligence — and the third-party relay
// types an organisation's administrators register by posting their §6
// record. An instance of a registered type takes its URL, authentication
// and supported APIs from the type, and its settings are the values of the
// type's configuration_spec; the console calls no route the type does not
// list. Registered types belong to one organisation and cannot change:
// register another, move the instances, delete the old one.

// TypeIDRelay is the module type id of the built-in Relay Module. Each of
// its instances gets a module type id of its own, since its URL and
// authentication are its own.
const TypeIDRelay = "cc85df82-c842-4c8c-9689-2f9dc868d720"

// Field types of configuration_spec (relay-api.md §6).
const (
	fieldString   = "string"
	fieldPassword = "password"
	fieldAPIKey   = "api_key"
	fieldInteger  = "integer"
	fieldBoolean  = "boolean"
	fieldOptions  = "options"
	fieldFile     = "file"
	fieldRemote   = "remote"
	fieldDevice   = "device"
)

var fieldTypes = []string{fieldString, fieldPassword, fieldAPIKey, fieldInteger, fieldBoolean, fieldOptions,
	fieldFile, fieldRemote, fieldDevice}

// isSecretField reports whether values of a field type are secrets: write
// only, and sealed at rest.
func isSecretField(typ string) bool { return typ == fieldPassword || typ == fieldAPIKey }

// capabilityRoutes are the capabilities a module type may declare
// (console-api.md §9), each with the supported-apis it needs.
var capabilityRoutes = map[string][]string{
	"health":     {module.RouteHealth},
	"observe":    {module.RouteObserve},
	"deliberate": {module.RouteDeliberate},
	"refer":      {module.RouteRefer},
	"respond":    {module.RouteRespondObservables},
	"tiles":      {module.RouteTiles, module.RouteTileData},
}

var capabilityIDs = []string{"health", "observe", "deliberate", "refer", "respond", "tiles"}

// Values of properties.auth-type (relay-api.md §5). The console implements
// the first two; authorization-header and basic are refused as not yet
// available.
const (
	authConfigToken = "configuration-token"
	authBearer      = "bearer"
)

// reservedClaims are the claims of a configuration token the console sets
// itself: no configuration value may take their name.
var reservedClaims = []string{"jwks_host", "aud", "iat", "exp", "jti", "nbf", "iss", "sub"}

// ModuleTypeRecord is a module type as the admin API shows and accepts it:
// the record of relay-api.md §6, with the console's own fields (id, kind,
// built_in, available, created_*) on output only.
type ModuleTypeRecord struct {
	ID        string `json:"id,omitempty"`
	Kind      string `json:"kind,omitempty"` // module.KindESA, KindSMA, KindRelay or "private-intel"
	BuiltIn   bool   `json:"built_in"`
	Available bool   `json:"available"` // instances can be added
	// Unavailable says why instances cannot be added.
	Unavailable string `json:"unavailable,omitempty"`

	Title              string          `json:"title"`
	DefaultName        string          `json:"default_name"`
	ShortDescription   string          `json:"short_description,omitempty"`
	Description        string          `json:"description,omitempty"`
	Tips               string          `json:"tips,omitempty"`
	ConfigurationSpec  []ConfigField   `json:"configuration_spec"`
	Capabilities       []Capability    `json:"capabilities"`
	Properties         TypeProperties  `json:"properties"`
	ExternalReferences json.RawMessage `json:"external_references,omitempty"`
	Flags              []string        `json:"flags,omitempty"`
	Logo               string          `json:"logo,omitempty"`

	CreatedAt *time.Time `json:"created_at,omitempty"`
	CreatedBy string     `json:"created_by,omitempty"`
}

// ConfigField is one field of a configuration_spec: a setting of every
// instance of the type.
type ConfigField struct {
	Key          string        `json:"key"`
	Type         string        `json:"type"` // one of fieldTypes
	Label        string        `json:"label"`
	Required     bool          `json:"required,omitempty"`
	Tooltip      string        `json:"tooltip,omitempty"`
	Options      []FieldOption `json:"options,omitempty"` // type options
	DefaultValue any           `json:"default_value,omitempty"`
	Group        string        `json:"group,omitempty"`
}

// FieldOption is one choice of an options field.
type FieldOption struct {
	Value string `json:"value"`
	Label string `json:"label"`
}

// Capability is what a module type declares it does.
type Capability struct {
	ID          string `json:"id"`
	Description string `json:"description"`
}

// TypeProperties say how the console reaches a type's instances.
type TypeProperties struct {
	URL           string   `json:"url,omitempty"`
	SupportedAPIs []string `json:"supported-apis"`
	AuthType      string   `json:"auth-type,omitempty"`
	TokenAlg      string   `json:"configuration-token-alg,omitempty"`
	// TokenKey is the HS256 secret: write-only, sealed at rest, never
	// shown.
	TokenKey      string `json:"configuration-token-key,omitempty"`
	TokenAudience string `json:"configuration-token-audience,omitempty"`
	JWKSHost      string `json:"custom_jwks_host,omitempty"`
}

// Limits of a module type record.
const (
	maxTitle       = 256
	maxShortText   = 1024
	maxLongText    = 16 << 10
	maxFields      = 64
	maxOptions     = 100
	maxKey         = 128
	maxLogo        = 256 << 10
	maxFlags       = 32
	maxExternalRef = 64 << 10
)

var fieldKeyRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.-]*$`)

// checker collects the problems of a record, each naming its field.
type checker struct{ problems []string }

func (ck *checker) bad(path, format string, args ...any) {
	ck.problems = append(ck.problems, path+": "+fmt.Sprintf(format, args...))
}

func (ck *checker) err(what string) error {
	if len(ck.problems) == 0 {
		return nil
	}
	return sightline.Errorf(sightline.Invalid, "%s: %s", what, strings.Join(ck.problems, "; "))
}

// object decodes raw as a JSON object whose keys are among known; others
// are reported. It returns nil when raw is not an object.
func (ck *checker) object(path string, raw json.RawMessage, known ...string) map[string]json.RawMessage {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil || m == nil {
		ck.bad(path, "want a JSON object")
		return nil
	}
	var unknown []string
	for k := range m {
		if !slices.Contains(known, k) {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	for _, k := range unknown {
		ck.bad(join(path, k), "unknown field: want one of %s", strings.Join(known, ", "))
	}
	return m
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// text decodes a string of at most max runes; required refuses "".
func (ck *checker) text(path string, raw json.RawMessage, required bool, max int) string {
	var s string
	if raw == nil {
		if required {
			ck.bad(path, "is required")
		}
		return ""
	}
	if json.Unmarshal(raw, &s) != nil {
		ck.bad(path, "want a string")
		return ""
	}
	switch n := utf8.RuneCountInString(s); {
	case required && strings.TrimSpace(s) == "":
		ck.bad(path, "is required")
	case n > max:
		ck.bad(path, "is %d characters long, at most %d are allowed", n, max)
	}
	return s
}

// list decodes a JSON array of at most max items.
func (ck *checker) list(path string, raw json.RawMessage, max int) []json.RawMessage {
	var items []json.RawMessage
	if json.Unmarshal(raw, &items) != nil || items == nil {
		ck.bad(path, "want a JSON array")
		return nil
	}
	if len(items) > max {
		ck.bad(path, "has %d items, at most %d are allowed", len(items), max)
		return nil
	}
	return items
}

// parseModuleType reads and checks a module type record (relay-api.md §6).
// Every problem is reported, each naming its field, in one Invalid error.
func parseModuleType(b []byte) (ModuleTypeRecord, error) {
	var t ModuleTypeRecord
	ck := &checker{}
	top := ck.object("", b, "title", "default_name", "short_description", "description", "tips",
		"configuration_spec", "capabilities", "properties", "external_references", "flags", "logo")
	if top == nil {
		return t, sightline.Errorf(sightline.Invalid, "module type: the body must be a JSON object: the module type record of relay-api.md §6")
	}
	t.Title = strings.TrimSpace(ck.text("title", top["title"], true, maxTitle))
	t.DefaultName = strings.TrimSpace(ck.text("default_name", top["default_name"], true, maxTitle))
	t.ShortDescription = ck.text("short_description", top["short_description"], false, maxShortText)
	t.Description = ck.text("description", top["description"], false, maxLongText)
	t.Tips = ck.text("tips", top["tips"], false, maxLongText)
	if raw, ok := top["logo"]; ok {
		t.Logo = ck.text("logo", raw, false, maxLogo)
		if t.Logo != "" && !strings.HasPrefix(t.Logo, "data:image/") {
			ck.bad("logo", "want a data:image/… URI")
		}
	}
	if raw, ok := top["flags"]; ok {
		for i, item := range ck.list("flags", raw, maxFlags) {
			t.Flags = append(t.Flags, ck.text(fmt.Sprintf("flags[%d]", i), item, true, 64))
		}
	}
	if raw, ok := top["external_references"]; ok {
		if len(raw) > maxExternalRef {
			ck.bad("external_references", "is larger than %d bytes", maxExternalRef)
		} else if ck.list("external_references", raw, 100) != nil {
			t.ExternalReferences = append(json.RawMessage(nil), raw...)
		}
	}
	t.ConfigurationSpec = parseConfigSpec(ck, top["configuration_spec"])
	t.Capabilities = parseCapabilities(ck, top["capabilities"])
	t.Properties = parseProperties(ck, top["properties"])
	checkTypeConsistency(ck, &t)
	return t, ck.err("module type")
}

func parseConfigSpec(ck *checker, raw json.RawMessage) []ConfigField {
	out := []ConfigField{}
	if raw == nil {
		return out
	}
	seen := map[string]bool{}
	for i, item := range ck.list("configuration_spec", raw, maxFields) {
		path := fmt.Sprintf("configuration_spec[%d]", i)
		m := ck.object(path, item, "key", "type", "label", "required", "tooltip", "options", "default_value", "group")
		if m == nil {
			continue
		}
		f := ConfigField{
			Key:     ck.text(join(path, "key"), m["key"], true, maxKey),
			Type:    ck.text(join(path, "type"), m["type"], true, 32),
			Label:   strings.TrimSpace(ck.text(join(path, "label"), m["label"], true, maxTitle)),
			Tooltip: ck.text(join(path, "tooltip"), m["tooltip"], false, maxShortText),
			Group:   ck.text(join(path, "group"), m["group"], false, maxKey),
		}
		if f.Key != "" && !fieldKeyRE.MatchString(f.Key) {
			ck.bad(join(path, "key"), "%q: want a letter, then letters, digits, _, . or -", f.Key)
		}
		if seen[f.Key] && f.Key != "" {
			ck.bad(join(path, "key"), "%q is already the key of another field", f.Key)
		}
		seen[f.Key] = true
		if f.Type != "" && !slices.Contains(fieldTypes, f.Type) {
			ck.bad(join(path, "type"), "%q is not a field type: want one of %s", f.Type, strings.Join(fieldTypes, ", "))
		}
		if r, ok := m["required"]; ok && json.Unmarshal(r, &f.Required) != nil {
			ck.bad(join(path, "required"), "want true or false")
		}
		if r, ok := m["options"]; ok {
			if f.Type != fieldOptions {
				ck.bad(join(path, "options"), "only fields of type options have options")
			}
			values := map[string]bool{}
			for j, o := range ck.list(join(path, "options"), r, maxOptions) {
				op := fmt.Sprintf("%s.options[%d]", path, j)
				om := ck.object(op, o, "value", "label")
				if om == nil {
					continue
				}
				opt := FieldOption{Value: ck.text(join(op, "value"), om["value"], true, maxShortText),
					Label: ck.text(join(op, "label"), om["label"], true, maxTitle)}
				if values[opt.Value] {
					ck.bad(join(op, "value"), "%q is already the value of another option", opt.Value)
				}
				values[opt.Value] = true
				f.Options = append(f.Options, opt)
			}
		}
		if f.Type == fieldOptions && len(f.Options) == 0 {
			ck.bad(join(path, "options"), "a field of type options needs at least one option {\"value\", \"label\"}")
		}
		if r, ok := m["default_value"]; ok {
			f.DefaultValue = checkDefault(ck, join(path, "default_value"), f, r)
		}
		out = append(out, f)
	}
	return out
}

// checkDefault checks a field's default value against its type.
func checkDefault(ck *checker, path string, f ConfigField, raw json.RawMessage) any {
	switch f.Type {
	case fieldPassword, fieldAPIKey:
		ck.bad(path, "a secret field (%s) has no default value", f.Type)
	case fieldInteger:
		var n int64
		if json.Unmarshal(raw, &n) != nil {
			ck.bad(path, "want a whole number for a field of type integer")
			return nil
		}
		return n
	case fieldBoolean:
		var v bool
		if json.Unmarshal(raw, &v) != nil {
			ck.bad(path, "want true or false for a field of type boolean")
			return nil
		}
		return v
	case fieldOptions:
		var s string
		if json.Unmarshal(raw, &s) != nil || !slices.ContainsFunc(f.Options, func(o FieldOption) bool { return o.Value == s }) {
			ck.bad(path, "want the value of one of the field's options")
			return nil
		}
		return s
	default:
		var s string
		if json.Unmarshal(raw, &s) != nil {
			ck.bad(path, "want a string for a field of type %s", cmpOr(f.Type, "string"))
			return nil
		}
		return s
	}
	return nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func parseCapabilities(ck *checker, raw json.RawMessage) []Capability {
	out := []Capability{}
	if raw == nil {
		return out
	}
	seen := map[string]bool{}
	for i, item := range ck.list("capabilities", raw, len(capabilityIDs)*2) {
		path := fmt.Sprintf("capabilities[%d]", i)
		m := ck.object(path, item, "id", "description")
		if m == nil {
			continue
		}
		c := Capability{ID: ck.text(join(path, "id"), m["id"], true, 64),
			Description: ck.text(join(path, "description"), m["description"], true, maxShortText)}
		switch {
		case c.ID == "":
		case !slices.Contains(capabilityIDs, c.ID):
			ck.bad(join(path, "id"), "%q is not a capability: want one of %s", c.ID, strings.Join(capabilityIDs, ", "))
		case seen[c.ID]:
			ck.bad(join(path, "id"), "%q is listed twice", c.ID)
		}
		seen[c.ID] = true
		out = append(out, c)
	}
	return out
}

func parseProperties(ck *checker, raw json.RawMessage) TypeProperties {
	var p TypeProperties
	if raw == nil {
		ck.bad("properties", "is required: url, supported-apis and auth-type at least")
		return p
	}
	m := ck.object("properties", raw, "url", "supported-apis", "auth-type", "configuration-token-alg",
		"configuration-token-key", "configuration-token-audience", "custom_jwks_host")
	if m == nil {
		return p
	}
	p.URL = ck.text("properties.url", m["url"], false, 2048)
	if p.URL != "" {
		if err := relay.CheckURL(p.URL); err != nil {
			ck.bad("properties.url", "%s", err)
		}
	}
	if r, ok := m["supported-apis"]; !ok {
		ck.bad("properties.supported-apis", "is required: the routes the module serves, some of %s", strings.Join(module.Routes, ", "))
	} else {
		items := ck.list("properties.supported-apis", r, len(module.Routes))
		if items != nil && len(items) == 0 {
			ck.bad("properties.supported-apis", "is empty: list the routes the module serves")
		}
		for i, item := range items {
			path := fmt.Sprintf("properties.supported-apis[%d]", i)
			route := ck.text(path, item, true, 64)
			switch {
			case route == "":
			case !slices.Contains(module.Routes, route):
				ck.bad(path, "%q is not a route: want one of %s", route, strings.Join(module.Routes, ", "))
			case slices.Contains(p.SupportedAPIs, route):
				ck.bad(path, "%q is listed twice", route)
			default:
				p.SupportedAPIs = append(p.SupportedAPIs, route)
			}
		}
	}
	p.AuthType = ck.text("properties.auth-type", m["auth-type"], true, 64)
	p.TokenAlg = ck.text("properties.configuration-token-alg", m["configuration-token-alg"], false, 16)
	p.TokenKey = ck.text("properties.configuration-token-key", m["configuration-token-key"], false, 4096)
	p.TokenAudience = ck.text("properties.configuration-token-audience", m["configuration-token-audience"], false, 2048)
	p.JWKSHost = ck.text("properties.custom_jwks_host", m["custom_jwks_host"], false, 256)
	switch p.AuthType {
	case "":
	case authConfigToken:
		switch p.TokenAlg {
		case "", "RS256":
			if p.TokenKey != "" {
				ck.bad("properties.configuration-token-key", "is only for configuration-token-alg HS256")
			}
		case "HS256":
			if len(p.TokenKey) < 32 {
				ck.bad("properties.configuration-token-key", "configuration-token-alg HS256 needs a shared secret of at least 32 bytes")
			}
		default:
			ck.bad("properties.configuration-token-alg", "%q: want RS256 or HS256", p.TokenAlg)
		}
		if p.JWKSHost != "" {
			if u, err := url.Parse("//" + p.JWKSHost); err != nil || u.Host != p.JWKSHost || u.Hostname() == "" {
				ck.bad("properties.custom_jwks_host", "%q: want host[:port], without scheme or path", p.JWKSHost)
			}
		}
	case authBearer:
		for _, f := range []struct{ name, v string }{{"configuration-token-alg", p.TokenAlg}, {"configuration-token-key", p.TokenKey},
			{"configuration-token-audience", p.TokenAudience}, {"custom_jwks_host", p.JWKSHost}} {
			if f.v != "" {
				ck.bad("properties."+f.name, "is only for auth-type configuration-token")
			}
		}
	case "authorization-header", "basic":
		ck.bad("properties.auth-type", "%q is not available yet in this console: use %s or %s", p.AuthType, authConfigToken, authBearer)
	default:
		ck.bad("properties.auth-type", "%q: want %s or %s", p.AuthType, authConfigToken, authBearer)
	}
	return p
}

// checkTypeConsistency checks what no single field shows: the URL, the
// bearer's field, the claims' names, the capabilities' routes.
func checkTypeConsistency(ck *checker, t *ModuleTypeRecord) {
	urlField := slices.IndexFunc(t.ConfigurationSpec, func(f ConfigField) bool { return f.Key == "url" })
	switch {
	case urlField >= 0 && (t.ConfigurationSpec[urlField].Type != fieldString || !t.ConfigurationSpec[urlField].Required):
		ck.bad(fmt.Sprintf("configuration_spec[%d]", urlField), "the field url sets each instance's URL: it must be a required field of type string")
	case urlField < 0 && t.Properties.URL == "":
		ck.bad("properties.url", "is required, unless configuration_spec has a field url that each instance sets")
	}
	var secrets []int
	for i, f := range t.ConfigurationSpec {
		if isSecretField(f.Type) {
			secrets = append(secrets, i)
		}
		if t.Properties.AuthType == authConfigToken && f.Key != "url" &&
			slices.Contains(reservedClaims, strings.TrimPrefix(f.Key, "custom_")) {
			ck.bad(fmt.Sprintf("configuration_spec[%d].key", i), "%q would be sent as the claim %q, which the console sets itself",
				f.Key, strings.TrimPrefix(f.Key, "custom_"))
		}
	}
	if t.Properties.AuthType == authBearer {
		switch {
		case len(secrets) != 1:
			ck.bad("configuration_spec", "auth-type bearer sends one token: the type needs exactly one field of type api_key or password, it has %d", len(secrets))
		case !t.ConfigurationSpec[secrets[0]].Required:
			ck.bad(fmt.Sprintf("configuration_spec[%d].required", secrets[0]), "the bearer token field must be required")
		}
	}
	for i, c := range t.Capabilities {
		for _, route := range capabilityRoutes[c.ID] {
			if !slices.Contains(t.Properties.SupportedAPIs, route) {
				ck.bad(fmt.Sprintf("capabilities[%d]", i), "%q needs %s in properties.supported-apis", c.ID, route)
			}
		}
	}
	for _, route := range []string{module.RouteTile, module.RouteTileData} {
		if slices.Contains(t.Properties.SupportedAPIs, route) && !slices.Contains(t.Properties.SupportedAPIs, module.RouteTiles) {
			ck.bad("properties.supported-apis", "%s needs tiles, which lists the tiles", route)
		}
	}
}

// Built-in types.

// Why built-in kinds may not be available.
const (
	unavailableESA = "This console has no Email Security Appliance module: start it paired with an exchange."
	unavailableSMA = "Not available yet: Sightline has no manager role (Security Management Appliance) for this module to reach."
)

func (c *Console) builtinTypes() []ModuleTypeRecord {
	avail := func(t ModuleTypeRecord, why string) ModuleTypeRecord {
		t.BuiltIn, t.Available = true, c.hasKind(t.Kind)
		if !t.Available {
			t.Unavailable = why
		}
		return t
	}
	deviceSpec := func(devType string) []ConfigField {
		return []ConfigField{
			{Key: "device_id", Type: fieldDevice, Label: "Registered Device", Required: true,
				Tooltip: "A " + devType + " registered in the organisation's exchange."},
			{Key: "timeframe_days", Type: fieldInteger, Label: "Request Timeframe (days)", DefaultValue: int64(30),
				Tooltip: "How far back the module searches message tracking (1 to 365 days)."},
		}
	}
	deviceAPIs := []string{module.RouteHealth, module.RouteObserve, module.RouteRefer, module.RouteRespondObservables, module.RouteRespondTrigger}
	deviceCaps := []Capability{{"health", "Check that the appliance answers through the exchange"},
		{"observe", "Find the messages an observable appears in"}, {"refer", "Open Message Tracking"},
		{"respond", "Response actions on messages"}}
	pi := ModuleTypeRecord{ID: TypeIDPrivateIntel, Kind: "private-intel", BuiltIn: true, Title: PrivateIntelName, DefaultName: PrivateIntelName,
		Unavailable:       "Built into every organisation: it answers from the organisation's own judgements and sightings.",
		ShortDescription:  "Verdicts, judgements and sightings from the organisation's own intelligence.",
		ConfigurationSpec: []ConfigField{},
		Capabilities:      []Capability{{"health", "Always healthy"}, {"observe", "Stored judgements and sightings"}, {"deliberate", "Verdicts of the active judgements"}},
		Properties:        TypeProperties{SupportedAPIs: []string{module.RouteHealth, module.RouteObserve, module.RouteDeliberate}}}
	return []ModuleTypeRecord{
		avail(ModuleTypeRecord{ID: TypeIDESA, Kind: module.KindESA, Title: nativeTypes[module.KindESA].name, DefaultName: nativeTypes[module.KindESA].name,
			ShortDescription:  "Sightings of the messages one Email Security Appliance (a Sightline gateway) tracked, reached through the exchange.",
			ConfigurationSpec: deviceSpec("ESA"), Capabilities: deviceCaps,
			Properties: TypeProperties{SupportedAPIs: deviceAPIs}}, unavailableESA),
		avail(ModuleTypeRecord{ID: TypeIDSMA, Kind: module.KindSMA, Title: nativeTypes[module.KindSMA].name, DefaultName: nativeTypes[module.KindSMA].name,
			ShortDescription:  "Centralised message tracking of every gateway that reports to a Security Management Appliance, reached through the exchange.",
			ConfigurationSpec: deviceSpec("SMA"), Capabilities: deviceCaps,
			Properties: TypeProperties{SupportedAPIs: deviceAPIs}}, unavailableSMA),
		avail(ModuleTypeRecord{ID: TypeIDRelay, Kind: module.KindRelay, Title: relayTypeName, DefaultName: relayTypeName,
			ShortDescription: "Any third-party module that speaks the Threat Response relay API, configured by hand: its URL, authentication and routes.",
			Description: `Each instance carries its own settings: {"url": "https://…", "auth": {"style": "static", "token": "…"} ` +
				`or {"style": "config_token", "alg": "RS256"|"HS256", "key": "…"}, "supported_apis": […], "timeout_seconds": 30}. ` +
				`Register a module type instead to let every instance share the module's URL and authentication.`,
			ConfigurationSpec: []ConfigField{}, Capabilities: []Capability{},
			Properties: TypeProperties{SupportedAPIs: module.Routes}}, "This console has no relay modules."),
		pi,
	}
}

// builtinType returns the built-in type id.
func (c *Console) builtinType(id string) (ModuleTypeRecord, bool) {
	for _, t := range c.builtinTypes() {
		if t.ID == id {
			return t, true
		}
	}
	return ModuleTypeRecord{}, false
}

// Registered types.

// typeView is a registered type as the admin API shows it: without its
// secret.
func (c *Console) typeView(rt records.ModuleType) (ModuleTypeRecord, error) {
	var t ModuleTypeRecord
	if err := json.Unmarshal(rt.Record, &t); err != nil {
		return t, fmt.Errorf("stored module type %s: %w", rt.ID, err)
	}
	created := rt.CreatedAt
	t.ID, t.Kind, t.Available, t.CreatedAt, t.CreatedBy = rt.ID, module.KindRelay, c.hasKind(module.KindRelay), &created, rt.CreatedBy
	if !t.Available {
		t.Unavailable = "This console has no relay modules."
	}
	t.Properties.TokenKey = ""
	return t, nil
}

// registeredType returns the organisation's registered type id with its
// secret opened; ok is false when there is none.
func (c *Console) registeredType(ctx context.Context, orgID, id string) (ModuleTypeRecord, bool, error) {
	rt, err := c.store.ModuleType(ctx, orgID, id)
	if sightline.ErrorKind(err) == sightline.NotFound {
		return ModuleTypeRecord{}, false, nil
	}
	if err != nil {
		return ModuleTypeRecord{}, false, sightline.Wrap(sightline.Unavailable, err, "the console cannot read its module types right now")
	}
	var t ModuleTypeRecord
	if err := json.Unmarshal(rt.Record, &t); err != nil {
		return t, false, fmt.Errorf("stored module type %s: %w", id, err)
	}
	t.ID, t.Kind = rt.ID, module.KindRelay
	if t.Properties.TokenKey, err = c.seal.open(t.Properties.TokenKey, adModuleType(orgID, id)); err != nil {
		return t, false, err
	}
	return t, true, nil
}

// moduleTypes lists the built-in types, then the organisation's.
func (c *Console) moduleTypes(ctx context.Context, orgID string) ([]ModuleTypeRecord, error) {
	out := c.builtinTypes()
	list, err := c.store.ModuleTypes(ctx, orgID)
	if err != nil {
		return nil, fmt.Errorf("list module types: %w", err)
	}
	for _, rt := range list {
		t, err := c.typeView(rt)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// moduleType returns a built-in type or one of the organisation's.
func (c *Console) moduleType(ctx context.Context, orgID, id string) (ModuleTypeRecord, error) {
	if t, ok := c.builtinType(id); ok {
		return t, nil
	}
	rt, err := c.store.ModuleType(ctx, orgID, id)
	if sightline.ErrorKind(err) == sightline.NotFound {
		return ModuleTypeRecord{}, errNoModuleType(id)
	}
	if err != nil {
		return ModuleTypeRecord{}, fmt.Errorf("module type %s: %w", id, err)
	}
	return c.typeView(rt)
}

func errNoModuleType(id string) error {
	return sightline.Errorf(sightline.NotFound, "There is no module type %s in this organisation.", id)
}

// registerModuleType checks a module type record and stores it for the
// organisation.
func (c *Console) registerModuleType(ctx context.Context, orgID, by string, body []byte) (ModuleTypeRecord, error) {
	t, err := parseModuleType(body)
	if err != nil {
		return t, err
	}
	for _, b := range c.builtinTypes() {
		if strings.EqualFold(b.Title, t.Title) {
			return t, sightline.Errorf(sightline.Conflict, "title: %q is the title of a built-in module type: choose another", t.Title)
		}
	}
	id := uuid.NewString()
	stored := t
	stored.Properties.TokenKey = c.seal.seal(t.Properties.TokenKey, adModuleType(orgID, id))
	rec, err := json.Marshal(stored)
	if err != nil {
		return t, fmt.Errorf("encode module type: %w", err)
	}
	rt := records.ModuleType{ID: id, OrgID: orgID, Title: t.Title, Record: rec, CreatedAt: c.now(), CreatedBy: by}
	if err := c.store.CreateModuleType(ctx, rt); sightline.ErrorKind(err) == sightline.Conflict {
		return t, sightline.Errorf(sightline.Conflict, "title: this organisation already has a module type titled %q", t.Title)
	} else if err != nil {
		return t, fmt.Errorf("create module type: %w", err)
	}
	c.log.Info("module type registered", "module_type_id", id, "title", t.Title, "by", by)
	return c.typeView(rt)
}

// deleteModuleType removes one of the organisation's registered types,
// unless an instance uses it.
func (c *Console) deleteModuleType(ctx context.Context, orgID, id string) error {
	if t, ok := c.builtinType(id); ok {
		return sightline.Errorf(sightline.Invalid, "%s is built into the console: it cannot be deleted", t.Title)
	}
	switch err := c.store.DeleteModuleType(ctx, orgID, id); sightline.ErrorKind(err) {
	case "":
		return nil
	case sightline.NotFound:
		return errNoModuleType(id)
	case sightline.Conflict:
		return sightline.Errorf(sightline.Conflict, "module type %s is the type of module instances of this organisation: delete them first", id)
	default:
		return fmt.Errorf("delete module type: %w", err)
	}
}

// The admin API of module types.

func (c *Console) apiModuleTypes(w http.ResponseWriter, r *http.Request, p principal) error {
	list, err := c.moduleTypes(r.Context(), p.orgID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list)
	return nil
}

func (c *Console) apiModuleType(w http.ResponseWriter, r *http.Request, p principal) error {
	t, err := c.moduleType(r.Context(), p.orgID, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

func (c *Console) apiCreateModuleType(w http.ResponseWriter, r *http.Request, p principal) error {
	b, err := readBody(w, r, maxJSON)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return sightline.Errorf(sightline.Invalid, "the request body is empty: want the module type record of relay-api.md §6")
	}
	t, err := c.registerModuleType(r.Context(), p.orgID, p.name, b)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, t)
	return nil
}

func (c *Console) apiDeleteModuleType(w http.ResponseWriter, r *http.Request, p principal) error {
	if err := c.deleteModuleType(r.Context(), p.orgID, r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
