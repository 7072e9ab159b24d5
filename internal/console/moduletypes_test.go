package console

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/console/module"
	"github.com/sightline/sightline/internal/console/module/relay"
	"github.com/sightline/sightline/internal/console/records"
)

// typeRecord is a valid module type record (relay-api.md §6) as a map,
// for tests to change.
func typeRecord() map[string]any {
	return map[string]any{
		"title":             "Abuse Intel",
		"default_name":      "Abuse",
		"short_description": "Reports of abusive IP addresses",
		"configuration_spec": []any{
			map[string]any{"key": "custom_key", "type": "api_key", "label": "API Key", "required": true},
			map[string]any{"key": "custom_CTR_ENTITIES_LIMIT", "type": "integer", "label": "Entities Limit", "default_value": 100},
		},
		"capabilities": []any{
			map[string]any{"id": "health", "description": "Check the API"},
			map[string]any{"id": "observe", "description": "Sightings of an IP"},
		},
		"properties": map[string]any{
			"url":                     "https://relay.example.com",
			"supported-apis":          []any{"health", "observe/observables"},
			"auth-type":               "configuration-token",
			"configuration-token-alg": "RS256",
			"custom_jwks_host":        "console.example.com",
		},
	}
}

func field(m map[string]any, i int) map[string]any {
	return m["configuration_spec"].([]any)[i].(map[string]any)
}

func props(m map[string]any) map[string]any { return m["properties"].(map[string]any) }

func addField(m map[string]any, f map[string]any) {
	m["configuration_spec"] = append(m["configuration_spec"].([]any), f)
}

func TestParseModuleTypeValid(t *testing.T) {
	t.Parallel()
	b, _ := json.Marshal(typeRecord())
	got, err := parseModuleType(b)
	if err != nil {
		t.Fatalf("parseModuleType(valid) = %v", err)
	}
	want := ModuleTypeRecord{Title: "Abuse Intel", DefaultName: "Abuse", ShortDescription: "Reports of abusive IP addresses",
		ConfigurationSpec: []ConfigField{{Key: "custom_key", Type: "api_key", Label: "API Key", Required: true},
			{Key: "custom_CTR_ENTITIES_LIMIT", Type: "integer", Label: "Entities Limit", DefaultValue: int64(100)}},
		Capabilities: []Capability{{"health", "Check the API"}, {"observe", "Sightings of an IP"}},
		Properties: TypeProperties{URL: "https://relay.example.com", SupportedAPIs: []string{"health", "observe/observables"},
			AuthType: "configuration-token", TokenAlg: "RS256", JWKSHost: "console.example.com"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("parseModuleType mismatch (-want +got):\n%s", diff)
	}

	// The record of relay-api.md §6 and one in the shape of the public relays' samples
	// (whose instances set their own URL) are accepted as they are.
	for _, name := range []string{"testdata/moduletype-gateway.json", "testdata/moduletype-instance-url.json"} {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := parseModuleType(b); err != nil {
			t.Errorf("parseModuleType(%s) = %v, want it accepted", name, err)
		}
	}
}

// TestParseModuleTypeErrors checks that every problem of a record is
// refused with a message naming the offending field.
func TestParseModuleTypeErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		edit func(m map[string]any)
		want string
	}{
		{"unknown field", func(m map[string]any) { m["colour"] = "red" }, `colour: unknown field: want one of title,`},
		{"id set", func(m map[string]any) { m["id"] = "x" }, `id: unknown field`},
		{"no title", func(m map[string]any) { delete(m, "title") }, `title: is required`},
		{"blank title", func(m map[string]any) { m["title"] = "  " }, `title: is required`},
		{"title not a string", func(m map[string]any) { m["title"] = 3 }, `title: want a string`},
		{"long title", func(m map[string]any) { m["title"] = strings.Repeat("t", 257) }, `title: is 257 characters long, at most 256 are allowed`},
		{"no default_name", func(m map[string]any) { delete(m, "default_name") }, `default_name: is required`},
		{"long short_description", func(m map[string]any) { m["short_description"] = strings.Repeat("d", 1025) }, `short_description: is 1025 characters long`},
		{"description not a string", func(m map[string]any) { m["description"] = []any{} }, `description: want a string`},
		{"long tips", func(m map[string]any) { m["tips"] = strings.Repeat("x", 16<<10+1) }, `tips: is 16385 characters long`},
		{"logo not an image", func(m map[string]any) { m["logo"] = "https://example.com/logo.png" }, `logo: want a data:image/… URI`},
		{"flags not a list", func(m map[string]any) { m["flags"] = "serverless" }, `flags: want a JSON array`},
		{"empty flag", func(m map[string]any) { m["flags"] = []any{""} }, `flags[0]: is required`},
		{"external_references not a list", func(m map[string]any) { m["external_references"] = map[string]any{} }, `external_references: want a JSON array`},
		{"configuration_spec not a list", func(m map[string]any) { m["configuration_spec"] = map[string]any{} }, `configuration_spec: want a JSON array`},
		{"too many fields", func(m map[string]any) {
			var fs []any
			for range 65 {
				fs = append(fs, map[string]any{})
			}
			m["configuration_spec"] = fs
		}, `configuration_spec: has 65 items, at most 64 are allowed`},
		{"field not an object", func(m map[string]any) { addField(m, map[string]any{}); m["configuration_spec"].([]any)[2] = "x" }, `configuration_spec[2]: want a JSON object`},
		{"unknown field key", func(m map[string]any) { field(m, 0)["secret"] = true }, `configuration_spec[0].secret: unknown field`},
		{"no key", func(m map[string]any) { delete(field(m, 0), "key") }, `configuration_spec[0].key: is required`},
		{"bad key", func(m map[string]any) { field(m, 0)["key"] = "custom key" }, `configuration_spec[0].key: "custom key": want a letter, then letters, digits, _, . or -`},
		{"duplicate key", func(m map[string]any) { field(m, 1)["key"] = "custom_key" }, `configuration_spec[1].key: "custom_key" is already the key of another field`},
		{"no type", func(m map[string]any) { delete(field(m, 0), "type") }, `configuration_spec[0].type: is required`},
		{"unknown type", func(m map[string]any) { field(m, 0)["type"] = "secret" }, `configuration_spec[0].type: "secret" is not a field type: want one of string, password, api_key, integer, boolean, options, file, remote, device`},
		{"no label", func(m map[string]any) { delete(field(m, 1), "label") }, `configuration_spec[1].label: is required`},
		{"required not a boolean", func(m map[string]any) { field(m, 0)["required"] = "yes" }, `configuration_spec[0].required: want true or false`},
		{"long tooltip", func(m map[string]any) { field(m, 0)["tooltip"] = strings.Repeat("t", 1025) }, `configuration_spec[0].tooltip: is 1025 characters long`},
		{"group not a string", func(m map[string]any) { field(m, 0)["group"] = 1 }, `configuration_spec[0].group: want a string`},
		{"options on a string", func(m map[string]any) {
			addField(m, map[string]any{"key": "custom_x", "type": "string", "label": "X", "options": []any{map[string]any{"value": "a", "label": "A"}}})
		}, `configuration_spec[2].options: only fields of type options have options`},
		{"options without options", func(m map[string]any) {
			addField(m, map[string]any{"key": "custom_mode", "type": "options", "label": "Mode"})
		}, `configuration_spec[2].options: a field of type options needs at least one option`},
		{"option not an object", func(m map[string]any) {
			addField(m, map[string]any{"key": "custom_mode", "type": "options", "label": "Mode", "options": []any{"a"}})
		}, `configuration_spec[2].options[0]: want a JSON object`},
		{"option without value", func(m map[string]any) {
			addField(m, map[string]any{"key": "custom_mode", "type": "options", "label": "Mode", "options": []any{map[string]any{"label": "A"}}})
		}, `configuration_spec[2].options[0].value: is required`},
		{"option without label", func(m map[string]any) {
			addField(m, map[string]any{"key": "custom_mode", "type": "options", "label": "Mode", "options": []any{map[string]any{"value": "a"}}})
		}, `configuration_spec[2].options[0].label: is required`},
		{"duplicate option", func(m map[string]any) {
			addField(m, map[string]any{"key": "custom_mode", "type": "options", "label": "Mode",
				"options": []any{map[string]any{"value": "a", "label": "A"}, map[string]any{"value": "a", "label": "B"}}})
		}, `configuration_spec[2].options[1].value: "a" is already the value of another option`},
		{"default of a secret", func(m map[string]any) { field(m, 0)["default_value"] = "k" }, `configuration_spec[0].default_value: a secret field (api_key) has no default value`},
		{"default not an integer", func(m map[string]any) { field(m, 1)["default_value"] = "100" }, `configuration_spec[1].default_value: want a whole number for a field of type integer`},
		{"default not a boolean", func(m map[string]any) {
			addField(m, map[string]any{"key": "custom_b", "type": "boolean", "label": "B", "default_value": "yes"})
		}, `configuration_spec[2].default_value: want true or false for a field of type boolean`},
		{"default not an option", func(m map[string]any) {
			addField(m, map[string]any{"key": "custom_mode", "type": "options", "label": "Mode", "default_value": "z",
				"options": []any{map[string]any{"value": "a", "label": "A"}}})
		}, `configuration_spec[2].default_value: want the value of one of the field's options`},
		{"default not a string", func(m map[string]any) {
			addField(m, map[string]any{"key": "custom_s", "type": "string", "label": "S", "default_value": 3})
		}, `configuration_spec[2].default_value: want a string for a field of type string`},
		{"capabilities not a list", func(m map[string]any) { m["capabilities"] = "health" }, `capabilities: want a JSON array`},
		{"capability without id", func(m map[string]any) { m["capabilities"] = []any{map[string]any{"description": "d"}} }, `capabilities[0].id: is required`},
		{"unknown capability", func(m map[string]any) {
			m["capabilities"] = []any{map[string]any{"id": "teleport", "description": "d"}}
		}, `capabilities[0].id: "teleport" is not a capability: want one of health, observe, deliberate, refer, respond, tiles`},
		{"capability twice", func(m map[string]any) {
			m["capabilities"] = []any{map[string]any{"id": "health", "description": "d"}, map[string]any{"id": "health", "description": "d"}}
		}, `capabilities[1].id: "health" is listed twice`},
		{"capability without description", func(m map[string]any) { m["capabilities"] = []any{map[string]any{"id": "health"}} }, `capabilities[0].description: is required`},
		{"no properties", func(m map[string]any) { delete(m, "properties") }, `properties: is required: url, supported-apis and auth-type at least`},
		{"properties not an object", func(m map[string]any) { m["properties"] = []any{} }, `properties: want a JSON object`},
		{"unknown property", func(m map[string]any) { props(m)["timeout"] = 3 }, `properties.timeout: unknown field`},
		{"url over http", func(m map[string]any) { props(m)["url"] = "http://relay.example.com" }, `properties.url: "http://relay.example.com": http is allowed only to a loopback address; use https`},
		{"url not a URL", func(m map[string]any) { props(m)["url"] = "relay" }, `properties.url: "relay": want https://host[:port][/path]`},
		{"no url at all", func(m map[string]any) { delete(props(m), "url") }, `properties.url: is required, unless configuration_spec has a field url that each instance sets`},
		{"url field optional", func(m map[string]any) {
			addField(m, map[string]any{"key": "url", "type": "string", "label": "URL"})
		}, `configuration_spec[2]: the field url sets each instance's URL: it must be a required field of type string`},
		{"no supported-apis", func(m map[string]any) { delete(props(m), "supported-apis") }, `properties.supported-apis: is required`},
		{"empty supported-apis", func(m map[string]any) { props(m)["supported-apis"] = []any{} }, `properties.supported-apis: is empty`},
		{"unknown route", func(m map[string]any) { props(m)["supported-apis"] = []any{"health", "observe/observables", "enrich"} }, `properties.supported-apis[2]: "enrich" is not a route`},
		{"route twice", func(m map[string]any) { props(m)["supported-apis"] = []any{"health", "health", "observe/observables"} }, `properties.supported-apis[1]: "health" is listed twice`},
		{"no auth-type", func(m map[string]any) { delete(props(m), "auth-type") }, `properties.auth-type: is required`},
		{"unknown auth-type", func(m map[string]any) { props(m)["auth-type"] = "magic" }, `properties.auth-type: "magic": want configuration-token or bearer`},
		{"basic auth", func(m map[string]any) { props(m)["auth-type"] = "basic" }, `properties.auth-type: "basic" is not available yet in this console`},
		{"authorization-header", func(m map[string]any) { props(m)["auth-type"] = "authorization-header" }, `properties.auth-type: "authorization-header" is not available yet`},
		{"unknown alg", func(m map[string]any) { props(m)["configuration-token-alg"] = "ES256" }, `properties.configuration-token-alg: "ES256": want RS256 or HS256`},
		{"HS256 without key", func(m map[string]any) { props(m)["configuration-token-alg"] = "HS256" }, `properties.configuration-token-key: configuration-token-alg HS256 needs a shared secret of at least 32 bytes`},
		{"key with RS256", func(m map[string]any) { props(m)["configuration-token-key"] = strings.Repeat("k", 32) }, `properties.configuration-token-key: is only for configuration-token-alg HS256`},
		{"jwks host with a scheme", func(m map[string]any) { props(m)["custom_jwks_host"] = "https://console.example.com" }, `properties.custom_jwks_host: "https://console.example.com": want host[:port], without scheme or path`},
		{"reserved claim", func(m map[string]any) {
			addField(m, map[string]any{"key": "custom_aud", "type": "string", "label": "Audience"})
		}, `configuration_spec[2].key: "custom_aud" would be sent as the claim "aud", which the console sets itself`},
		{"bearer with token properties", func(m map[string]any) { props(m)["auth-type"] = "bearer" }, `properties.configuration-token-alg: is only for auth-type configuration-token`},
		{"bearer without a token field", func(m map[string]any) {
			props(m)["auth-type"] = "bearer"
			delete(props(m), "configuration-token-alg")
			delete(props(m), "custom_jwks_host")
			field(m, 0)["type"] = "string"
		}, `configuration_spec: auth-type bearer sends one token: the type needs exactly one field of type api_key or password, it has 0`},
		{"bearer token optional", func(m map[string]any) {
			props(m)["auth-type"] = "bearer"
			delete(props(m), "configuration-token-alg")
			delete(props(m), "custom_jwks_host")
			field(m, 0)["required"] = false
		}, `configuration_spec[0].required: the bearer token field must be required`},
		{"capability without its route", func(m map[string]any) {
			m["capabilities"] = append(m["capabilities"].([]any), map[string]any{"id": "tiles", "description": "Dashboards"})
		}, `capabilities[2]: "tiles" needs tiles in properties.supported-apis; capabilities[2]: "tiles" needs tiles/tile-data in properties.supported-apis`},
		{"tile data without tiles", func(m map[string]any) {
			props(m)["supported-apis"] = []any{"health", "observe/observables", "tiles/tile-data"}
		}, `properties.supported-apis: tiles/tile-data needs tiles`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := typeRecord()
			tt.edit(m)
			b, _ := json.Marshal(m)
			_, err := parseModuleType(b)
			if sightline.ErrorKind(err) != sightline.Invalid || !strings.Contains(sightline.ErrorMessage(err), tt.want) {
				t.Errorf("parseModuleType(%s) = %v, want an Invalid error with %q", tt.name, err, tt.want)
			}
		})
	}
	if _, err := parseModuleType([]byte(`[1]`)); !strings.Contains(sightline.ErrorMessage(err), "the body must be a JSON object") {
		t.Errorf("parseModuleType([1]) = %v, want the body refused", err)
	}
	// Several problems are all named in one error.
	m := typeRecord()
	delete(m, "title")
	props(m)["auth-type"] = "magic"
	b, _ := json.Marshal(m)
	_, err := parseModuleType(b)
	if msg := sightline.ErrorMessage(err); !strings.Contains(msg, "title: is required") || !strings.Contains(msg, `properties.auth-type: "magic"`) {
		t.Errorf("parseModuleType(two problems) = %v, want both named", err)
	}
}

// FuzzParseModuleType reads module type records: an accepted record,
// written back as the console stores it, is accepted again unchanged.
func FuzzParseModuleType(f *testing.F) {
	b, _ := json.Marshal(typeRecord())
	f.Add(b)
	for _, name := range []string{"testdata/moduletype-gateway.json", "testdata/moduletype-instance-url.json"} {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"title": 1, "properties": []}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, err := parseModuleType(b)
		if err != nil {
			if sightline.ErrorKind(err) != sightline.Invalid {
				t.Fatalf("parseModuleType(%q) = %v, want Invalid", b, err)
			}
			return
		}
		// Stored records are read back as they are; written for the API,
		// they carry the console's own fields, left out here.
		stored, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]json.RawMessage
		json.Unmarshal(stored, &m)
		delete(m, "built_in")
		delete(m, "available")
		again, _ := json.Marshal(m)
		rec2, err := parseModuleType(again)
		if err != nil {
			t.Fatalf("parseModuleType(%q) accepted, but not as stored (%s): %v", b, again, err)
		}
		if diff := cmp.Diff(rec, rec2); diff != "" {
			t.Fatalf("parseModuleType round trip of %q (-first +second):\n%s", b, diff)
		}
	})
}

// TestTypedRelaySettings makes the relay settings of instances of
// registered types: the type's URL unless the instance sets its own, the
// values as claims or, with auth-type bearer, the one secret as the token.
func TestTypedRelaySettings(t *testing.T) {
	t.Parallel()
	s, err := newSealer(bytes.Repeat([]byte{3}, SecretKeyLen))
	if err != nil {
		t.Fatal(err)
	}
	c := &Console{seal: s, publicURL: "https://console.example.com:8443"}
	inst := func(settings string) records.Instance {
		return records.Instance{Instance: module.Instance{ID: "i1", OrgID: "o1", Kind: module.KindRelay, Name: "r", Settings: json.RawMessage(settings)}}
	}
	key := s.seal("k3y", adInstance("o1", "i1", "custom_key"))
	tests := []struct {
		name     string
		typ      ModuleTypeRecord
		settings string
		want     relay.Settings
		wantErr  bool
	}{
		{"configuration token with the type's URL",
			ModuleTypeRecord{ConfigurationSpec: []ConfigField{{Key: "custom_key", Type: "api_key"}, {Key: "custom_limit", Type: "integer"}, {Key: "custom_on", Type: "boolean"}},
				Properties: TypeProperties{URL: "https://relay.example.com", SupportedAPIs: []string{"health"}, AuthType: "configuration-token",
					TokenAlg: "HS256", TokenKey: strings.Repeat("t", 32), TokenAudience: "aud", JWKSHost: "jwks.example.com"}},
			`{"custom_key": "` + key + `", "custom_limit": 7, "custom_on": false}`,
			relay.Settings{URL: "https://relay.example.com", SupportedAPIs: []string{"health"}, Auth: relay.Auth{Style: relay.StyleConfigToken,
				Alg: "HS256", Key: strings.Repeat("t", 32), Audience: "aud", JWKSHost: "jwks.example.com",
				Claims: map[string]string{"custom_key": "k3y", "custom_limit": "7", "custom_on": "false"}}}, false},
		{"the instance's URL, RS256 by default",
			ModuleTypeRecord{ConfigurationSpec: []ConfigField{{Key: "url", Type: "string"}, {Key: "custom_key", Type: "api_key"}},
				Properties: TypeProperties{URL: "https://default.example.com", SupportedAPIs: []string{"observe/observables"}, AuthType: "configuration-token"}},
			`{"url": "https://mine.example.com", "custom_key": "` + key + `"}`,
			relay.Settings{URL: "https://mine.example.com", SupportedAPIs: []string{"observe/observables"}, Auth: relay.Auth{Style: relay.StyleConfigToken,
				Alg: "RS256", Claims: map[string]string{"custom_key": "k3y"}}}, false},
		{"bearer",
			ModuleTypeRecord{ConfigurationSpec: []ConfigField{{Key: "custom_key", Type: "api_key"}, {Key: "custom_region", Type: "string"}},
				Properties: TypeProperties{URL: "https://relay.example.com", SupportedAPIs: []string{"health"}, AuthType: "bearer"}},
			`{"custom_key": "` + key + `", "custom_region": "eu"}`,
			relay.Settings{URL: "https://relay.example.com", SupportedAPIs: []string{"health"}, Auth: relay.Auth{Style: relay.StyleStatic, Token: "k3y"}}, false},
		{"a secret sealed for another instance",
			ModuleTypeRecord{ConfigurationSpec: []ConfigField{{Key: "custom_key", Type: "api_key"}},
				Properties: TypeProperties{URL: "https://relay.example.com", SupportedAPIs: []string{"health"}, AuthType: "bearer"}},
			`{"custom_key": "` + s.seal("k3y", adInstance("o1", "i2", "custom_key")) + `"}`, relay.Settings{}, true},
	}
	for _, tt := range tests {
		got, err := c.typedRelaySettings(tt.typ, inst(tt.settings))
		if (err != nil) != tt.wantErr {
			t.Errorf("typedRelaySettings(%s) error = %v, want error %v", tt.name, err, tt.wantErr)
			continue
		}
		if diff := cmp.Diff(tt.want, got); err == nil && diff != "" {
			t.Errorf("typedRelaySettings(%s) (-want +got):\n%s", tt.name, diff)
		}
	}
	if h := c.jwksHost(); h != "console.example.com:8443" {
		t.Errorf("jwksHost = %q, want the public URL's host and port", h)
	}
}
