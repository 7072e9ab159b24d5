package relay

import (
	"testing"

	"github.com/sightline/sightline"
)

// FuzzDecode feeds arbitrary module answers to decode: it must not panic,
// a failure must be the "module returned HTTP 200" text, and every error
// it passes on must be complete.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"data": {"sightings": {"count": 0, "docs": []}}, "errors": [{"type": "x"}]}`))
	f.Add([]byte(`{"errors": [{"type": "fatal", "code": "authorization error", "message": "Authorization failed: Wrong JWT structure"}], "data": {}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := decode("observe/observables", b)
		if err != nil {
			if msg := sightline.ErrorMessage(err); msg != "module returned HTTP 200" {
				t.Errorf("decode(%q) error %q, want module returned HTTP 200", b, msg)
			}
			return
		}
		for _, e := range env.Errors {
			if e.Code == "" || e.Message == "" || (e.Type != "fatal" && e.Type != "error" && e.Type != "warning") {
				t.Errorf("decode(%q) passed on incomplete error %+v", b, e)
			}
		}
	})
}
