package console

import (
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// testRelay is a third-party relay module on 127.0.0.1:0, in the manner of
// the public relays (relay-api.md): it checks the bearer of every call —
// a configuration token (RS256 with the key it fetches from the token's
// jwks_host, or HS256 with hsKey) or a static token — and answers health,
// observe, deliberate and the tile routes. It records every call.
type testRelay struct {
	t      *testing.T
	srv    *httptest.Server
	hsKey  string // the HS256 secret of configuration tokens
	static string // the static bearer, when set
	// tileData answers POST /tiles/tile-data by tile id (the data object);
	// a tile id missing from it gets an error.
	tiles    []map[string]any
	tileData map[string]string
	// fail answers every route with this HTTP status (0: none).
	fail int

	mu    sync.Mutex
	calls []relayCall
}

type relayCall struct {
	Path   string
	Body   string
	Claims jwt.MapClaims // the configuration token's claims
	Bearer string
	Length string // the Content-Length header
}

func startTestRelay(t *testing.T) *testRelay {
	t.Helper()
	r := &testRelay{t: t, tileData: map[string]string{}}
	r.srv = httptest.NewServer(r)
	t.Cleanup(r.srv.Close)
	return r
}

func (r *testRelay) URL() string { return r.srv.URL }

// callsTo returns the calls of one route.
func (r *testRelay) callsTo(path string) []relayCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []relayCall
	for _, c := range r.calls {
		if c.Path == path {
			out = append(out, c)
		}
	}
	return out
}

func (r *testRelay) paths() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, c := range r.calls {
		out = append(out, c.Path)
	}
	return out
}

func relayJSON(w http.ResponseWriter, body string) {
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, body)
}

func (r *testRelay) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	call := relayCall{Path: strings.TrimPrefix(req.URL.Path, "/"), Body: string(body), Length: req.Header.Get("Content-Length")}
	call.Bearer, _ = strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
	claims, problem := r.authorize(call.Bearer)
	call.Claims = claims
	r.mu.Lock()
	r.calls = append(r.calls, call)
	r.mu.Unlock()
	if r.fail != 0 {
		http.Error(w, `{"code": 500, "message": "boom"}`, r.fail)
		return
	}
	if problem != "" {
		relayJSON(w, fmt.Sprintf(`{"errors": [{"type": "fatal", "code": "authorization error", "message": "Authorization failed: %s"}], "data": {}}`, problem))
		return
	}
	switch call.Path {
	case "health":
		relayJSON(w, `{"data": {"status": "ok"}}`)
	case "observe/observables":
		var obs []map[string]string
		json.Unmarshal(body, &obs)
		var docs []string
		for _, o := range obs {
			docs = append(docs, fmt.Sprintf(`{"id": "transient:sighting-1", "type": "sighting", "schema_version": "1.3.29", "source": "Test Relay",
				"confidence": "High", "count": 1, "observed_time": {"start_time": "2026-01-10T07:00:00.000Z"},
				"observables": [{"type": %q, "value": %q}], "title": "Seen by the test relay"}`, o["type"], o["value"]))
		}
		relayJSON(w, fmt.Sprintf(`{"data": {"sightings": {"count": %d, "docs": [%s]}}}`, len(docs), strings.Join(docs, ",")))
	case "deliberate/observables":
		relayJSON(w, `{"data": {}}`)
	case "tiles":
		b, _ := json.Marshal(map[string]any{"data": r.tiles})
		relayJSON(w, string(b))
	case "tiles/tile":
		var q struct {
			ID string `json:"tile_id"`
		}
		json.Unmarshal(body, &q)
		for _, tile := range r.tiles {
			if tile["id"] == q.ID {
				b, _ := json.Marshal(map[string]any{"data": tile})
				relayJSON(w, string(b))
				return
			}
		}
		relayJSON(w, `{"errors": [{"type": "fatal", "code": "not found", "message": "no such tile"}]}`)
	case "tiles/tile-data":
		var q struct {
			ID     string `json:"tile_id"`
			Period string `json:"period"`
		}
		if json.Unmarshal(body, &q) != nil || q.ID == "" || q.Period == "" {
			relayJSON(w, `{"errors": [{"type": "fatal", "code": "invalid argument", "message": "{\"tile_id\": [\"Missing data for required field.\"]}"}]}`)
			return
		}
		d, ok := r.tileData[q.ID]
		if !ok {
			relayJSON(w, `{"errors": [{"type": "fatal", "code": "internal error", "message": "upstream failed for `+q.ID+`"}]}`)
			return
		}
		relayJSON(w, fmt.Sprintf(`{"data": {"valid_time": {"start_time": "2026-01-09T08:00:00.000Z", "end_time": "2026-01-10T08:00:00.000Z"},
			"cache_scope": "org", "period": %q, %s}}`, q.Period, d))
	default:
		http.Error(w, `{"code": 404, "message": "not found", "reason": "werkzeug.exceptions.NotFound"}`, http.StatusNotFound)
	}
}

// authorize checks the bearer as a public relay does and returns the
// token's claims, or the problem of relay-api.md §5.
func (r *testRelay) authorize(bearer string) (jwt.MapClaims, string) {
	if bearer == "" {
		return nil, "Authorization header is missing"
	}
	if r.static != "" {
		if bearer != r.static {
			return nil, "Wrong JWT structure"
		}
		return nil, ""
	}
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(bearer, claims, func(tok *jwt.Token) (any, error) {
		switch tok.Method.Alg() {
		case "HS256":
			if r.hsKey == "" {
				return nil, errors.New("no HS256 key")
			}
			return []byte(r.hsKey), nil
		case "RS256":
			host, _ := tok.Claims.(jwt.MapClaims)["jwks_host"].(string)
			kid, _ := tok.Header["kid"].(string)
			return fetchJWK(host, kid)
		}
		return nil, errors.New("unexpected alg")
	}, jwt.WithAudience(r.srv.URL), jwt.WithExpirationRequired())
	if err != nil {
		return nil, "Failed to decode JWT with provided key: " + err.Error()
	}
	return claims, ""
}

// fetchJWK fetches the console's JWKS from jwks_host (over http: the test
// console has no TLS) and returns the key kid.
func fetchJWK(host, kid string) (*rsa.PublicKey, error) {
	if host == "" {
		return nil, errors.New("jwks_host is missing in JWT payload")
	}
	resp, err := http.Get("http://" + host + "/.well-known/jwks")
	if err != nil {
		return nil, fmt.Errorf("wrong jwks_host in JWT payload: %w", err)
	}
	defer resp.Body.Close()
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
			N   string `json:"n"`
			E   string `json:"e"`
		} `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		return nil, err
	}
	for _, k := range set.Keys {
		if k.Kid != kid {
			continue
		}
		n, err1 := base64.RawURLEncoding.DecodeString(k.N)
		e, err2 := base64.RawURLEncoding.DecodeString(k.E)
		if err1 != nil || err2 != nil {
			return nil, errors.New("bad JWK")
		}
		return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}, nil
	}
	return nil, errors.New("kid from JWT header not found in API response")
}
