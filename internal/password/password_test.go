package password

import (
	"strings"
	"testing"
)

func TestHashCheck(t *testing.T) {
	h, err := Hash("s3cret pass")
	if err != nil {
		t.Fatal(err)
	}
	if !Check(h, "s3cret pass") {
		t.Errorf("Check(hash, right) = false, want true")
	}
	if Check(h, "s3cret pasS") {
		t.Errorf("Check(hash, wrong) = true, want false")
	}
	for _, bad := range []string{"", strings.Repeat("x", MaxLen+1)} {
		if _, err := Hash(bad); err == nil {
			t.Errorf("Hash(%d bytes) = nil error, want an error", len(bad))
		}
	}
	a, b := Generate(), Generate()
	if len(a) != 20 || a == b {
		t.Errorf("Generate() = %q, %q: want two different 20-character passwords", a, b)
	}
}
