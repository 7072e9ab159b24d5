package console

import (
	"encoding/json"
	"maps"
	"net/http"
	"slices"

	"github.com/sightline/sightline/internal/console/module"
)

// writeEnvelope writes env exactly as writeJSON would, but without having
// encoding/json re-scan the modules' data. encoding/json validates and
// compacts every json.RawMessage it writes; for an investigation whose
// module found 50 messages that scan of the sightings cost about a tenth of
// the CPU of the whole path, console to gateway (bench/console). The data of
// a module.CompactJSON module, and data that is already compact
// (isCompact), is copied as it is; any other value is compacted by
// encoding/json as before.
func writeEnvelope(w http.ResponseWriter, status int, env Envelope) {
	results, ok := env.Data.([]ModuleResult)
	if !ok {
		writeJSON(w, status, env)
		return
	}
	b, err := appendEnvelope(nil, results, env.Errors)
	if err != nil {
		writeJSON(w, status, env) // answers the encoding failure as writeJSON does
		return
	}
	writeBody(w, status, b)
}

// appendEnvelope appends the JSON of an observe or deliberate envelope to
// b, byte for byte what json.Marshal(Envelope{results, errs}) writes when
// every module's data is valid JSON (module.Data).
func appendEnvelope(b []byte, results []ModuleResult, errs []ModuleError) ([]byte, error) {
	b = slices.Grow(b, envelopeSize(results))
	b = append(b, `{"data":`...)
	if results == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, r := range results {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = appendResult(b, r); err != nil {
				return nil, err
			}
		}
		b = append(b, ']')
	}
	eb, err := json.Marshal(errs)
	if err != nil {
		return nil, err
	}
	b = append(b, `,"errors":`...)
	b = append(b, eb...)
	return append(b, '}'), nil
}

// envelopeSize estimates the length of an envelope's JSON from its data.
func envelopeSize(results []ModuleResult) int {
	n := 256
	for _, r := range results {
		n += 192
		for k, v := range r.Data {
			n += len(k) + len(v) + 4
		}
	}
	return n
}

// appendResult appends one ModuleResult as encoding/json writes it: the
// ids, then "data" with its keys sorted.
func appendResult(b []byte, r ModuleResult) ([]byte, error) {
	ib, err := json.Marshal(r.ids)
	if err != nil {
		return nil, err
	}
	b = append(b, ib[:len(ib)-1]...) // without its closing brace
	b = append(b, `,"data":`...)
	if b, err = appendData(b, r.Data, r.compact); err != nil {
		return nil, err
	}
	return append(b, '}'), nil
}

// appendData appends d as encoding/json writes a map: keys sorted, each
// value compact. With compact, d's values are known to be compact.
func appendData(b []byte, d module.Data, compact bool) ([]byte, error) {
	if d == nil {
		return append(b, "null"...), nil
	}
	b = append(b, '{')
	for i, k := range slices.Sorted(maps.Keys(d)) {
		if i > 0 {
			b = append(b, ',')
		}
		kb, err := json.Marshal(k)
		if err != nil {
			return nil, err
		}
		b = append(append(b, kb...), ':')
		v := d[k]
		switch {
		case v == nil:
			b = append(b, "null"...)
		case compact || isCompact(v):
			b = append(b, v...)
		default:
			vb, err := json.Marshal(v)
			if err != nil {
				return nil, err
			}
			b = append(b, vb...)
		}
	}
	return append(b, '}'), nil
}

// isCompact reports whether encoding/json would write the valid JSON value
// v unchanged: no white space outside its strings, and none of the
// characters it escapes for HTML (<, >, &, U+2028, U+2029) anywhere. It
// does not check that v is valid JSON; for that it is several times
// cheaper than encoding/json's scan. json.Marshal's own output is always
// compact.
func isCompact(v []byte) bool {
	if len(v) == 0 {
		return false
	}
	inString := false
	for i := 0; i < len(v); i++ {
		// Skip the bytes that need no decision: most of them.
		stops := &valueStops
		if inString {
			stops = &stringStops
		}
		for i < len(v) && !stops[v[i]] {
			i++
		}
		if i == len(v) {
			break
		}
		switch c := v[i]; {
		case c == '<' || c == '>' || c == '&':
			return false
		case c == 0xE2:
			if i+2 < len(v) && v[i+1] == 0x80 && v[i+2]&^1 == 0xA8 {
				return false
			}
		case c == '\\':
			i++ // in a string: the escaped character cannot end it
		case c == '"':
			inString = !inString
		default: // white space outside a string
			return false
		}
	}
	return !inString
}

// The bytes isCompact looks at, outside and inside strings.
var valueStops, stringStops = stopSet("\"<>&\xE2 \t\n\r"), stopSet("\"\\<>&\xE2")

func stopSet(bytes string) (t [256]bool) {
	for i := range len(bytes) {
		t[bytes[i]] = true
	}
	return t
}
