package exchange

import (
	"encoding/json"
	"testing"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/exchange/exchangeclient"
)

func FuzzParseVersion(f *testing.F) {
	for _, s := range []string{"15.0.1-104", "0.1.0-dev", "v1", "", "1..2", "99999999999999999999"} {
		f.Add(s, "14.0")
	}
	f.Fuzz(func(t *testing.T, v, min string) {
		parts, err := parseVersion(v)
		if err == nil && len(parts) == 0 {
			t.Errorf("parseVersion(%q) = no parts and no error", v)
		}
		if err == nil && !versionAtLeast(v, v) {
			t.Errorf("versionAtLeast(%q, itself) = false", v)
		}
		versionAtLeast(v, min)
	})
}

// FuzzRegistration feeds the registration body through the decoder and the
// checks: it must never panic, and what passes must be clean.
func FuzzRegistration(f *testing.F) {
	f.Add([]byte(`{"token":"a389f98df0e77c5411148e96e239e05d","hostname":"esa1","type":"esa","version":"15.0","serial":"x","connector_version":"1"}`))
	f.Add([]byte(`{"hostname":"\u0000","type":"SMA"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var reg exchangeclient.Registration
		if json.Unmarshal(body, &reg) != nil {
			return
		}
		err := checkRegistration(&reg)
		if err != nil {
			if sightline.ErrorKind(err) != sightline.Invalid {
				t.Errorf("checkRegistration(%q) = %v, want Invalid", body, err)
			}
			return
		}
		if reg.Hostname == "" || !printable(reg.Hostname) || (reg.Type != "ESA" && reg.Type != "SMA") {
			t.Errorf("checkRegistration(%q) accepted %+v", body, reg)
		}
	})
}
