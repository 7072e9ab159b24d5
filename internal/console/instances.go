package console

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/console/module"
	"github.com/sightline/sightline/internal/console/module/relay"
	"github.com/sightline/sightline/internal/console/records"
	"github.com/sightline/sightline/internal/exchange/exchangeclient"
)

// Module instances as their kinds' factories read them. The store keeps an
// instance's secrets sealed; a relay instance of a registered module type
// keeps only the values of the type's configuration_spec. newModule opens
// the secrets and, for a registered type, makes the relay settings from
// the type (URL, authentication, supported APIs) and the values (claims,
// the bearer token, the URL when the type lets instances set it).

// newModule builds the module of a stored instance with its kind's factory.
func (c *Console) newModule(ctx context.Context, in records.Instance) (module.Module, error) {
	inst, err := c.factoryInstance(ctx, in)
	if err != nil {
		return nil, err
	}
	if f, ok := c.opts.ExchangeModules[in.Kind]; ok {
		return f(inst, c.OrgExchange(in.OrgID))
	}
	if f, ok := c.opts.Modules[in.Kind]; ok {
		return f(inst)
	}
	return nil, sightline.Errorf(sightline.Invalid, "module kind %q is not available in this console", in.Kind)
}

// factoryInstance returns the instance as its factory reads it.
func (c *Console) factoryInstance(ctx context.Context, in records.Instance) (module.Instance, error) {
	inst := in.Instance
	if in.Kind != module.KindRelay {
		return inst, nil
	}
	t, typed, err := c.registeredType(ctx, in.OrgID, in.TypeID)
	if err != nil {
		return inst, err
	}
	var s relay.Settings
	if typed {
		s, err = c.typedRelaySettings(t, in)
	} else {
		s, err = c.genericRelaySettings(in)
	}
	if err != nil {
		return inst, err
	}
	if s.Auth.Style == relay.StyleConfigToken && s.Auth.JWKSHost == "" {
		s.Auth.JWKSHost = c.jwksHost()
	}
	if inst.Settings, err = json.Marshal(s); err != nil {
		return inst, fmt.Errorf("encode relay settings: %w", err)
	}
	return inst, nil
}

// jwksHost is the console's public host[:port], where relays fetch its
// JWKS: the default jwks_host claim of configuration tokens.
func (c *Console) jwksHost() string {
	u, err := url.Parse(c.publicURL)
	if err != nil {
		return ""
	}
	return u.Host
}

// genericRelaySettings reads the settings of a Relay Module instance with
// its token and key opened.
func (c *Console) genericRelaySettings(in records.Instance) (relay.Settings, error) {
	var s relay.Settings
	dec := json.NewDecoder(bytes.NewReader(in.Settings))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return s, sightline.Wrap(sightline.Invalid, err, "relay module settings are not valid JSON: "+err.Error())
	}
	var err error
	if s.Auth.Token, err = c.seal.open(s.Auth.Token, adInstance(in.OrgID, in.ID, "auth.token")); err != nil {
		return s, err
	}
	if s.Auth.Key, err = c.seal.open(s.Auth.Key, adInstance(in.OrgID, in.ID, "auth.key")); err != nil {
		return s, err
	}
	return s, nil
}

// genericSecrets are the secret fields of a Relay Module's auth settings.
var genericSecrets = []string{"token", "key"}

// sealGenericRelay seals the token and key of a Relay Module's settings
// that are not sealed yet; changed is false when there were none.
func (c *Console) sealGenericRelay(orgID, instanceID string, settings json.RawMessage) (json.RawMessage, bool) {
	var top map[string]json.RawMessage
	var auth map[string]json.RawMessage
	if json.Unmarshal(settings, &top) != nil || json.Unmarshal(top["auth"], &auth) != nil || auth == nil {
		return settings, false
	}
	changed := false
	for _, k := range genericSecrets {
		var v string
		if json.Unmarshal(auth[k], &v) != nil || v == "" {
			continue
		}
		if sealed := c.seal.reseal(v, adInstance(orgID, instanceID, "auth."+k)); sealed != v {
			auth[k], _ = json.Marshal(sealed)
			changed = true
		}
	}
	if !changed {
		return settings, false
	}
	top["auth"], _ = json.Marshal(auth)
	out, _ := json.Marshal(top)
	return out, true
}

// checkGenericRelay prepares the settings of a Relay Module instance for
// the store: a token or key left empty keeps the stored one (prev) when
// the authentication style has not changed, and both are sealed.
func (c *Console) checkGenericRelay(in *records.Instance, prev json.RawMessage) error {
	var top map[string]json.RawMessage
	if json.Unmarshal(in.Settings, &top) != nil {
		return sightline.Errorf(sightline.Invalid, "settings must be a JSON object")
	}
	var auth, old map[string]json.RawMessage
	if a, ok := top["auth"]; ok && json.Unmarshal(a, &auth) != nil {
		return sightline.Errorf(sightline.Invalid, "relay module settings: auth must be a JSON object")
	}
	var prevTop map[string]json.RawMessage
	if json.Unmarshal(prev, &prevTop) == nil && json.Unmarshal(prevTop["auth"], &old) == nil && auth != nil &&
		bytes.Equal(auth["style"], old["style"]) {
		for _, k := range genericSecrets {
			var v string
			json.Unmarshal(auth[k], &v)
			if v == "" && old[k] != nil {
				auth[k] = old[k]
			}
		}
		top["auth"], _ = json.Marshal(auth)
		in.Settings, _ = json.Marshal(top)
	}
	in.Settings, _ = c.sealGenericRelay(in.OrgID, in.ID, in.Settings)
	return nil
}

// Instances of registered types.

// Limits of an instance's values.
const (
	maxValue     = 4096
	maxFileValue = 64 << 10
)

// checkTypedSettings checks the settings of an instance of the registered
// type t: a JSON object with one value per configuration_spec field, keyed
// by the field's key. It stores them in in.Settings with defaults filled
// in, integers as numbers, booleans as booleans and secrets sealed. A
// secret left out or empty keeps its stored value (prev). Every problem is
// reported, naming its field.
func (c *Console) checkTypedSettings(ctx context.Context, in *records.Instance, t ModuleTypeRecord, prev json.RawMessage) error {
	var values, old map[string]json.RawMessage
	if json.Unmarshal(in.Settings, &values) != nil || values == nil {
		return sightline.Errorf(sightline.Invalid, "settings must be a JSON object of the values of the module type's configuration_spec")
	}
	json.Unmarshal(prev, &old)
	ck := &checker{}
	var unknown []string
	for k := range values {
		if !slices.ContainsFunc(t.ConfigurationSpec, func(f ConfigField) bool { return f.Key == k }) {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	for _, k := range unknown {
		ck.bad("settings."+k, "the module type %s has no such field", t.Title)
	}
	var devices *exchangeclient.Devices
	out := map[string]any{}
	for _, f := range t.ConfigurationSpec {
		path := fmt.Sprintf("settings.%s (%s)", f.Key, f.Label)
		raw, present := values[f.Key]
		if present && (string(raw) == "null" || string(raw) == `""`) {
			present = false
		}
		if !present {
			switch {
			case isSecretField(f.Type) && old[f.Key] != nil:
				var v string
				json.Unmarshal(old[f.Key], &v)
				out[f.Key] = c.seal.reseal(v, adInstance(in.OrgID, in.ID, f.Key))
			case f.DefaultValue != nil:
				out[f.Key] = f.DefaultValue
			case f.Required:
				ck.bad(path, "is required")
			}
			continue
		}
		v, ok := typedValue(ck, path, f, raw)
		if !ok {
			continue
		}
		switch {
		case isSecretField(f.Type):
			v = c.seal.seal(v.(string), adInstance(in.OrgID, in.ID, f.Key))
		case f.Key == "url":
			if err := relay.CheckURL(v.(string)); err != nil {
				ck.bad(path, "%s", err)
			}
		case f.Type == fieldDevice:
			if devices == nil {
				devs, err := c.exchangeDevices(ctx, in.OrgID)
				if err != nil {
					return err
				}
				devices = &devs
			}
			if !slices.ContainsFunc(devices.Devices, func(d exchangeclient.Device) bool { return d.ID == v.(string) }) {
				ck.bad(path, "device %s is not registered in this organisation's exchange", v)
			}
		}
		out[f.Key] = v
	}
	if err := ck.err("module settings"); err != nil {
		return err
	}
	b, err := json.Marshal(out)
	if err != nil {
		return fmt.Errorf("encode module settings: %w", err)
	}
	in.Settings = b
	return nil
}

// typedValue reads one value of field f. Form posts send every value as a
// string: integers and booleans are accepted as strings too.
func typedValue(ck *checker, path string, f ConfigField, raw json.RawMessage) (any, bool) {
	var s string
	isString := json.Unmarshal(raw, &s) == nil
	switch f.Type {
	case fieldInteger:
		var n int64
		if json.Unmarshal(raw, &n) == nil {
			return n, true
		}
		if isString {
			if n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64); err == nil {
				return n, true
			}
		}
		ck.bad(path, "want a whole number")
		return nil, false
	case fieldBoolean:
		var b bool
		if json.Unmarshal(raw, &b) == nil {
			return b, true
		}
		if isString {
			if b, err := strconv.ParseBool(s); err == nil {
				return b, true
			}
		}
		ck.bad(path, "want true or false")
		return nil, false
	}
	if !isString {
		ck.bad(path, "want a string")
		return nil, false
	}
	limit := maxValue
	if f.Type == fieldFile {
		limit = maxFileValue
	}
	if n := utf8.RuneCountInString(s); n > limit {
		ck.bad(path, "is %d characters long, at most %d are allowed", n, limit)
		return nil, false
	}
	if f.Type == fieldOptions && !slices.ContainsFunc(f.Options, func(o FieldOption) bool { return o.Value == s }) {
		var vals []string
		for _, o := range f.Options {
			vals = append(vals, o.Value)
		}
		ck.bad(path, "%q is not one of its options: want one of %s", s, strings.Join(vals, ", "))
		return nil, false
	}
	return s, true
}

// typedRelaySettings makes the relay settings of an instance of the
// registered type t: the type's URL (or the instance's url value), its
// supported APIs and authentication, and the instance's values as the
// claims of configuration tokens (custom_key is the claim key) or, with
// auth-type bearer, its one secret as the token.
func (c *Console) typedRelaySettings(t ModuleTypeRecord, in records.Instance) (relay.Settings, error) {
	s := relay.Settings{URL: t.Properties.URL, SupportedAPIs: t.Properties.SupportedAPIs}
	values := map[string]json.RawMessage{}
	if err := json.Unmarshal(in.Settings, &values); err != nil {
		return s, sightline.Errorf(sightline.Invalid, "module %s: its settings are not a JSON object", in.Name)
	}
	claims := map[string]string{}
	for _, f := range t.ConfigurationSpec {
		raw, ok := values[f.Key]
		if !ok {
			continue
		}
		var v string
		if json.Unmarshal(raw, &v) != nil {
			v = string(raw) // a number or a boolean, as JSON writes it
		}
		if isSecretField(f.Type) {
			var err error
			if v, err = c.seal.open(v, adInstance(in.OrgID, in.ID, f.Key)); err != nil {
				return s, err
			}
		}
		switch {
		case f.Key == "url":
			s.URL = v
		case t.Properties.AuthType == authBearer && isSecretField(f.Type):
			s.Auth.Token = v
		default:
			claims[f.Key] = v
		}
	}
	switch t.Properties.AuthType {
	case authBearer:
		s.Auth.Style = relay.StyleStatic
	default:
		s.Auth = relay.Auth{Style: relay.StyleConfigToken, Alg: cmpOr(t.Properties.TokenAlg, "RS256"), Key: t.Properties.TokenKey,
			Audience: t.Properties.TokenAudience, JWKSHost: t.Properties.JWKSHost, Claims: claims}
	}
	return s, nil
}

// Settings as the admin API shows them.

// redactSettings removes the sealed values from settings (at the top
// level, and in a Relay Module's auth) and returns their keys: secrets are
// write-only.
func redactSettings(settings json.RawMessage) (json.RawMessage, []string) {
	var top map[string]json.RawMessage
	if json.Unmarshal(settings, &top) != nil || top == nil {
		return settings, nil
	}
	var set []string
	sealed := func(raw json.RawMessage) bool {
		var v string
		return json.Unmarshal(raw, &v) == nil && isSealed(v)
	}
	for k, v := range top {
		if sealed(v) {
			delete(top, k)
			set = append(set, k)
		}
	}
	var auth map[string]json.RawMessage
	if json.Unmarshal(top["auth"], &auth) == nil && auth != nil {
		for k, v := range auth {
			if sealed(v) {
				delete(auth, k)
				set = append(set, "auth."+k)
			}
		}
		top["auth"], _ = json.Marshal(auth)
	}
	if len(set) == 0 {
		return settings, nil
	}
	sort.Strings(set)
	out, _ := json.Marshal(top)
	return out, set
}
