package console

import (
	"testing"

	"github.com/sightline/sightline"
)

func FuzzParseObservables(f *testing.F) {
	for _, s := range []string{`[{"type":"ip","value":"1.2.3.4"}]`, `[]`, `{}`, `[{"type":"foo"}]`, `[1,2]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		obs, err := parseObservables(b)
		if err != nil && sightline.ErrorKind(err) != sightline.Invalid {
			t.Fatalf("parseObservables(%q) = %v, want an Invalid error", b, err)
		}
		if len(obs) > MaxObservables {
			t.Fatalf("parseObservables(%q) = %d observables, over the cap", b, len(obs))
		}
	})
}

func FuzzParseLucene(f *testing.F) {
	for _, s := range []string{`phish title:"a b" source:gw`, `a OR b`, `title:"open`, `:x`, `x:`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		terms, err := parseLucene(s)
		if err != nil && sightline.ErrorKind(err) != sightline.Invalid {
			t.Fatalf("parseLucene(%q) = %v, want an Invalid error", s, err)
		}
		for _, tm := range terms {
			if tm.field == "" && tm.value == "" {
				t.Fatalf("parseLucene(%q) has an empty term", s)
			}
		}
	})
}
