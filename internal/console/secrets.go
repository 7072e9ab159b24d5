package console

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/console/module"
	"github.com/sightline/sightline/internal/console/records"
)

// Secrets at rest. The console seals every secret it keeps in its store
// (organisations' exchange API keys, module instances' tokens, keys and
// password fields, module types' HS256 keys) with AES-256-GCM under a key
// the store never holds: Options.SecretKey, or the file secrets.key in the
// data directory. A sealed value names what it belongs to in its
// additional data, so a value copied to another record (another
// organisation's row, another field) does not open there.

// SecretKeyFile is the name of the key file in Options.DataDir.
const SecretKeyFile = "secrets.key"

// SecretKeyLen is the length of Options.SecretKey: an AES-256 key.
const SecretKeyLen = 32

// sealedPrefix starts every sealed value; what follows is
// base64url(nonce ‖ ciphertext).
const sealedPrefix = "sealed:v1:"

type sealer struct{ aead cipher.AEAD }

func newSealer(key []byte) (*sealer, error) {
	if len(key) != SecretKeyLen {
		return nil, sightline.Errorf(sightline.Invalid, "console: the secret key has %d bytes, want %d", len(key), SecretKeyLen)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("console secret key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("console secret key: %w", err)
	}
	return &sealer{aead: aead}, nil
}

// isSealed reports whether v is a sealed value.
func isSealed(v string) bool { return strings.HasPrefix(v, sealedPrefix) }

// seal returns plain sealed for the record named by ad; "" stays "".
func (s *sealer) seal(plain, ad string) string {
	if plain == "" {
		return ""
	}
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	rand.Read(nonce)
	out := s.aead.Seal(nonce, nonce, []byte(plain), []byte(ad))
	return sealedPrefix + base64.RawURLEncoding.EncodeToString(out)
}

// open returns the plain text of a value sealed for ad. A value that is
// not sealed is returned as it is: it was stored before secrets were
// sealed, and is sealed at the next start.
func (s *sealer) open(v, ad string) (string, error) {
	enc, ok := strings.CutPrefix(v, sealedPrefix)
	if !ok {
		return v, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil || len(b) < s.aead.NonceSize() {
		return "", errUnsealable(ad)
	}
	plain, err := s.aead.Open(nil, b[:s.aead.NonceSize()], b[s.aead.NonceSize():], []byte(ad))
	if err != nil {
		return "", errUnsealable(ad)
	}
	return string(plain), nil
}

// reseal returns v sealed for ad. A sealed value is kept as it is, even one
// that does not open (sealed under a lost key, or for another record): its
// use then fails with errUnsealable rather than sending the sealed text.
func (s *sealer) reseal(v, ad string) string {
	if isSealed(v) {
		return v
	}
	return s.seal(v, ad)
}

func errUnsealable(ad string) error {
	return sightline.Errorf(sightline.Internal, "a stored secret (%s) does not open with the console's secret key: was %s replaced?",
		strings.ReplaceAll(ad, "\x00", " "), SecretKeyFile)
}

// Additional data of each kind of secret.
func adExchangeKey(orgID string) string { return "exchange-key\x00" + orgID }
func adInstance(orgID, instanceID, field string) string {
	return "instance\x00" + orgID + "\x00" + instanceID + "\x00" + field
}
func adModuleType(orgID, typeID string) string { return "module-type\x00" + orgID + "\x00" + typeID }

// loadSecretKey returns opts.SecretKey, or the key in DataDir/secrets.key,
// creating that file (mode 0600) on the first start.
func loadSecretKey(opts Options) ([]byte, error) {
	if opts.SecretKey != nil {
		return opts.SecretKey, nil
	}
	if opts.DataDir == "" {
		return nil, sightline.Errorf(sightline.Invalid, "console: a Store without a DataDir needs a SecretKey")
	}
	file := filepath.Join(opts.DataDir, SecretKeyFile)
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		key := make([]byte, SecretKeyLen)
		rand.Read(key)
		if err := os.MkdirAll(opts.DataDir, 0o750); err != nil {
			return nil, fmt.Errorf("console secret key: %w", err)
		}
		f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("console secret key: %w", err)
		}
		_, err = f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n")
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("console secret key: %w", err)
		}
		return key, nil
	}
	if err != nil {
		return nil, fmt.Errorf("console secret key: %w", err)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) != SecretKeyLen {
		return nil, sightline.Errorf(sightline.Invalid, "console secret key %s: want %d bytes, base64-encoded", file, SecretKeyLen)
	}
	return key, nil
}

// sealLegacy seals the secrets stored before the console sealed them: the
// organisations' exchange keys and the relay instances' credentials.
func (c *Console) sealLegacy(ctx context.Context) error {
	orgs, err := c.store.Organisations(ctx)
	if err != nil {
		return fmt.Errorf("console: seal stored secrets: %w", err)
	}
	unopened := 0
	for _, org := range orgs {
		if isSealed(org.ExchangeKey) {
			if _, err := c.seal.open(org.ExchangeKey, adExchangeKey(org.ID)); err != nil {
				unopened++
			}
		}
		if org.ExchangeKey != "" && !isSealed(org.ExchangeKey) {
			if err := c.store.SetExchangeKey(ctx, org.ID, c.seal.seal(org.ExchangeKey, adExchangeKey(org.ID))); err != nil {
				return fmt.Errorf("console: seal the exchange key of %s: %w", org.Name, err)
			}
		}
		list, err := c.store.Instances(ctx, org.ID)
		if err != nil {
			return fmt.Errorf("console: seal stored secrets: %w", err)
		}
		for _, in := range list {
			unopened += c.unopenedSecrets(&in)
			if in.Kind != module.KindRelay {
				continue
			}
			s, ok := c.sealGenericRelay(in.OrgID, in.ID, in.Settings)
			if !ok {
				continue
			}
			in.Settings = s
			if err := c.store.UpdateInstance(ctx, in); err != nil {
				return fmt.Errorf("console: seal the secrets of module %s: %w", in.Name, err)
			}
		}
	}
	if unopened > 0 {
		c.log.Error("stored secrets do not open with the console's secret key: was it replaced or lost? Enter them again (exchange API keys in Settings > Devices, module credentials in Modules)",
			"secrets", unopened, "key_file", SecretKeyFile)
	}
	return nil
}

// unopenedSecrets counts the sealed settings of in (top-level fields, and
// the Relay Module's "auth" fields) that do not open under the current key.
func (c *Console) unopenedSecrets(in *records.Instance) int {
	n := 0
	count := func(fields map[string]json.RawMessage, prefix string) {
		for k, raw := range fields {
			var v string
			if json.Unmarshal(raw, &v) != nil || !isSealed(v) {
				continue
			}
			if _, err := c.seal.open(v, adInstance(in.OrgID, in.ID, prefix+k)); err != nil {
				n++
			}
		}
	}
	var top, auth map[string]json.RawMessage
	if json.Unmarshal(in.Settings, &top) != nil {
		return 0
	}
	count(top, "")
	if json.Unmarshal(top["auth"], &auth) == nil {
		count(auth, "auth.")
	}
	return n
}
