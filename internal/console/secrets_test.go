package console

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/console/module"
	"github.com/sightline/sightline/internal/console/records"
	"github.com/sightline/sightline/internal/store/sqlite"
)

func TestSealer(t *testing.T) {
	t.Parallel()
	s, err := newSealer(bytes.Repeat([]byte{7}, SecretKeyLen))
	if err != nil {
		t.Fatal(err)
	}
	sealed := s.seal("the key", adExchangeKey("org-a"))
	if !isSealed(sealed) || strings.Contains(sealed, "the key") {
		t.Fatalf("seal = %q, want a sealed value", sealed)
	}
	if again := s.seal("the key", adExchangeKey("org-a")); again == sealed {
		t.Errorf("two seals of one value are equal: the nonce must differ")
	}
	tests := []struct {
		name, v, ad string
		want        string
		wantErr     bool
	}{
		{"opens for its record", sealed, adExchangeKey("org-a"), "the key", false},
		{"not for another organisation", sealed, adExchangeKey("org-b"), "", true},
		{"not for another kind of secret", sealed, adInstance("org-a", "i", "token"), "", true},
		{"tampered", sealed[:len(sealed)-2] + "AA", adExchangeKey("org-a"), "", true},
		{"not base64", sealedPrefix + "!!", adExchangeKey("org-a"), "", true},
		{"stored before sealing", "plain", adExchangeKey("org-a"), "plain", false},
		{"empty", "", adExchangeKey("org-a"), "", false},
	}
	for _, tt := range tests {
		got, err := s.open(tt.v, tt.ad)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("open(%s) = %q, %v; want %q, error %v", tt.name, got, err, tt.want, tt.wantErr)
		}
		if err != nil && sightline.ErrorKind(err) != sightline.Internal {
			t.Errorf("open(%s) error kind = %s, want Internal", tt.name, sightline.ErrorKind(err))
		}
	}
	if got := s.reseal(sealed, adExchangeKey("org-a")); got != sealed {
		t.Errorf("reseal of a sealed value changed it")
	}
	if got, _ := s.open(s.reseal("plain", adExchangeKey("org-a")), adExchangeKey("org-a")); got != "plain" {
		t.Errorf("reseal of a plain value = %q after open, want plain", got)
	}
	if s.seal("", "x") != "" {
		t.Errorf("seal of nothing is not nothing")
	}
	if _, err := newSealer([]byte("short")); sightline.ErrorKind(err) != sightline.Invalid {
		t.Errorf("newSealer(short key) = %v, want Invalid", err)
	}
}

func TestSecretKeyFile(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "console")
	k1, err := loadSecretKey(Options{DataDir: dir})
	if err != nil || len(k1) != SecretKeyLen {
		t.Fatalf("loadSecretKey = %d bytes, %v", len(k1), err)
	}
	fi, err := os.Stat(filepath.Join(dir, SecretKeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file = %v, %v; want mode 0600", fi, err)
	}
	k2, err := loadSecretKey(Options{DataDir: dir})
	if err != nil || !bytes.Equal(k1, k2) {
		t.Errorf("second loadSecretKey = %x, %v; want the first key %x", k2, err, k1)
	}
	given := bytes.Repeat([]byte{1}, SecretKeyLen)
	if k, _ := loadSecretKey(Options{DataDir: dir, SecretKey: given}); !bytes.Equal(k, given) {
		t.Errorf("loadSecretKey with SecretKey = %x, want it", k)
	}
	if _, err := loadSecretKey(Options{}); sightline.ErrorKind(err) != sightline.Invalid {
		t.Errorf("loadSecretKey without DataDir or key = %v, want Invalid", err)
	}
	bad := t.TempDir()
	os.WriteFile(filepath.Join(bad, SecretKeyFile), []byte("c2hvcnQ=\n"), 0o600)
	if _, err := loadSecretKey(Options{DataDir: bad}); sightline.ErrorKind(err) != sightline.Invalid {
		t.Errorf("loadSecretKey with a short key file = %v, want Invalid", err)
	}
}

// TestSealLegacy opens a console on a store written before secrets were
// sealed: the exchange keys and relay tokens in it are sealed at start,
// and still work.
func TestSealLegacy(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.OpenConsole(ctx, filepath.Join(dir, "console.db"))
	if err != nil {
		t.Fatal(err)
	}
	org := records.Organisation{ID: uuid.NewString(), Name: "Default", ExchangeKey: "legacy-key", CreatedAt: time.Now()}
	in := records.Instance{Instance: module.Instance{ID: uuid.NewString(), TypeID: uuid.NewString(), Kind: module.KindRelay, Name: "old relay",
		OrgID: org.ID, Enabled: true, Settings: json.RawMessage(`{"url":"https://relay.example.com","auth":{"style":"static","token":"legacy-token"},"supported_apis":["health"]}`)},
		CreatedAt: time.Now(), UpdatedAt: time.Now()}
	if err := st.CreateOrganisation(ctx, org); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateInstance(ctx, in); err != nil {
		t.Fatal(err)
	}
	st.Close()

	tc := startConsole(t, func(o *Options) { o.DataDir = dir })
	got, err := tc.store.Organisation(ctx, org.ID)
	if err != nil || !isSealed(got.ExchangeKey) {
		t.Fatalf("exchange key after start = %q, %v; want it sealed", got.ExchangeKey, err)
	}
	if key, err := tc.seal.open(got.ExchangeKey, adExchangeKey(org.ID)); key != "legacy-key" || err != nil {
		t.Errorf("the sealed exchange key opens to %q, %v; want legacy-key", key, err)
	}
	inst, err := tc.store.Instance(ctx, org.ID, in.ID)
	if err != nil || strings.Contains(string(inst.Settings), "legacy-token") {
		t.Fatalf("relay settings after start = %s, %v; want the token sealed", inst.Settings, err)
	}
	s, err := tc.genericRelaySettings(inst)
	if err != nil || s.Auth.Token != "legacy-token" || s.URL != "https://relay.example.com" {
		t.Errorf("relay settings as the factory reads them = %+v, %v; want the token opened", s, err)
	}
}

// TestLostSecretKey starts the console on secrets sealed under a key it does
// not have: they are kept as they are (never sealed again as if they were
// plain text), their use fails, and the start says so.
func TestLostSecretKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.OpenConsole(ctx, filepath.Join(dir, "console.db"))
	if err != nil {
		t.Fatal(err)
	}
	lost, err := newSealer(bytes.Repeat([]byte{9}, SecretKeyLen))
	if err != nil {
		t.Fatal(err)
	}
	orgID, inID := uuid.NewString(), uuid.NewString()
	key := lost.seal("old-key", adExchangeKey(orgID))
	token := lost.seal("old-token", adInstance(orgID, inID, "auth.token"))
	org := records.Organisation{ID: orgID, Name: "Default", ExchangeKey: key, CreatedAt: time.Now()}
	settings, _ := json.Marshal(map[string]any{"url": "https://relay.example.com", "supported_apis": []string{"health"},
		"auth": map[string]string{"style": "static", "token": token}})
	in := records.Instance{Instance: module.Instance{ID: inID, TypeID: uuid.NewString(), Kind: module.KindRelay, Name: "relay",
		OrgID: orgID, Enabled: true, Settings: settings}, CreatedAt: time.Now(), UpdatedAt: time.Now()}
	if err := st.CreateOrganisation(ctx, org); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateInstance(ctx, in); err != nil {
		t.Fatal(err)
	}
	st.Close()

	var logs bytes.Buffer
	var mu sync.Mutex
	tc := startConsole(t, func(o *Options) {
		o.DataDir = dir
		o.Logger = slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil))
	})
	got, err := tc.store.Organisation(ctx, orgID)
	if err != nil || got.ExchangeKey != key {
		t.Errorf("exchange key after start = %q, %v; want the stored sealed value unchanged", got.ExchangeKey, err)
	}
	inst, err := tc.store.Instance(ctx, orgID, inID)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(inst.Settings), token) {
		t.Errorf("relay settings after start = %s, want the sealed token unchanged", inst.Settings)
	}
	if s, err := tc.genericRelaySettings(inst); err == nil || sightline.ErrorKind(err) != sightline.Internal {
		t.Errorf("genericRelaySettings with a lost key = %+v, %v; want an Internal error", s, err)
	}
	mu.Lock()
	out := logs.String()
	mu.Unlock()
	if !strings.Contains(out, "stored secrets do not open") || !strings.Contains(out, "secrets=2") {
		t.Errorf("start log does not report the 2 secrets that do not open:\n%s", out)
	}
}

// lockedWriter serialises writes to w.
type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
