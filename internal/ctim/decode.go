package ctim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/sightline/sightline"
)

// Decode unmarshals one CTIM entity from data into v (a pointer to a type of
// this package) with CTIM's closed schemas: a key the type does not know,
// at any depth, is reported as DisallowedKey, and a value of the wrong JSON
// type as a problem of its field, both in a *ValidationError. Decode does
// not call Validate. Objects kept as raw JSON (relation_info, meta,
// context, bundle sets Sightline does not model) are not checked.
func Decode(data []byte, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("ctim: Decode needs a non-nil pointer, got %T", v)
	}
	entity := strings.ToLower(rv.Elem().Type().Name())
	c := &checker{entity: entity}
	var raw any
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	if err := d.Decode(&raw); err != nil {
		return sightline.Errorf(sightline.Invalid, "invalid %s: malformed JSON: %v", entity, err)
	}
	if d.More() {
		return sightline.Errorf(sightline.Invalid, "invalid %s: data after the JSON value", entity)
	}
	checkKeys(c, "", raw, rv.Elem().Type())
	if err := c.err(); err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			c.add(te.Field, "must be %s, not %s", jsonKind(te.Type), te.Value)
			return c.err()
		}
		return sightline.Errorf(sightline.Invalid, "invalid %s: %s", entity, sightline.ErrorMessage(err))
	}
	return nil
}

// checkKeys walks a decoded JSON value alongside the Go type it will be
// unmarshalled into and reports object keys that have no field.
func checkKeys(c *checker, path string, v any, t reflect.Type) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch v := v.(type) {
	case map[string]any:
		if t.Kind() != reflect.Struct || t == reflect.TypeFor[Time]() {
			return // a map, raw JSON or any: free-form
		}
		fields := structFields(t)
		for _, k := range slices.Sorted(maps.Keys(v)) {
			ft, ok := fields[k]
			if !ok {
				c.add(join2(path, k), DisallowedKey)
				continue
			}
			checkKeys(c, join2(path, k), v[k], ft)
		}
	case []any:
		if t.Kind() != reflect.Slice || t == reflect.TypeFor[json.RawMessage]() {
			return
		}
		for i, sub := range v {
			checkKeys(c, fmt.Sprintf("%s[%d]", path, i), sub, t.Elem())
		}
	}
}

func join2(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

var fieldCache sync.Map // reflect.Type → map[string]reflect.Type

// structFields returns the JSON keys of a struct type, with embedded
// structs flattened, and the type of each.
func structFields(t reflect.Type) map[string]reflect.Type {
	if m, ok := fieldCache.Load(t); ok {
		return m.(map[string]reflect.Type)
	}
	m := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct && f.Tag.Get("json") == "" {
			for k, ft := range structFields(f.Type) {
				m[k] = ft
			}
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		m[name] = f.Type
	}
	fieldCache.Store(t, m)
	return m
}

func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "an integer"
	case reflect.Float64, reflect.Float32:
		return "a number"
	case reflect.Bool:
		return "a boolean"
	case reflect.Slice:
		return "an array"
	}
	return "an object"
}
