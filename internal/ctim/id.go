package ctim

import (
	"net"
	"net/url"
	"strings"

	"github.com/google/uuid"

	"github.com/sightline/sightline"
)

// IDKind tells the three forms of CTIM id apart (ctim.md §2).
type IDKind int

const (
	// LongID: http(s)://host[:port][/prefix]/ctia/<type>/<type>-<uuid>, assigned by a store.
	LongID IDKind = iota + 1
	// ShortID: <type>-<uuid>, the last path segment of a long id.
	ShortID
	// TransientID: "transient:" and anything, emitted by modules.
	TransientID
)

// MaxIDLength is the longest id CTIM allows, in bytes.
const MaxIDLength = 2048

// ID is a parsed CTIM id.
type ID struct {
	Kind IDKind
	// Base is what precedes "/ctia/" in a long id, e.g.
	// "https://console.example.com:443"; empty otherwise.
	Base string
	// Type is the entity type, e.g. "sighting"; empty for a transient id
	// not of the form transient:<type>-<uuid>.
	Type string
	// Short is <type>-<uuid> for long and short ids, and what follows
	// "transient:" for transient ids.
	Short string
}

// String returns the id in its original form.
func (id ID) String() string {
	switch id.Kind {
	case LongID:
		return id.Base + "/ctia/" + id.Type + "/" + id.Short
	case TransientID:
		return "transient:" + id.Short
	}
	return id.Short
}

// NewShortID returns a fresh "<type>-<uuid v4>".
func NewShortID(entityType string) string { return entityType + "-" + uuid.NewString() }

// NewTransientID returns a fresh "transient:<type>-<uuid v4>", the form our
// modules emit.
func NewTransientID(entityType string) string { return "transient:" + NewShortID(entityType) }

// NewLongID returns the long id of short, which must be a short id, under
// base, the public base URL of the store ("https://console.example.com"). As
// CTIA does, the port is always written: https://console.example.com:443/ctia/….
func NewLongID(base, short string) (string, error) {
	typ, ok := parseShort(short)
	if !ok {
		return "", sightline.Errorf(sightline.Invalid, "invalid short id %q: want <type>-<uuid>", short)
	}
	b, err := canonicalBase(base)
	if err != nil {
		return "", err
	}
	return b + "/ctia/" + typ + "/" + short, nil
}

// canonicalBase returns scheme://host:port[/prefix] for an http(s) base URL.
func canonicalBase(base string) (string, error) {
	u, err := url.Parse(strings.TrimSuffix(base, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return "", sightline.Errorf(sightline.Invalid, "invalid base URL %q: want http(s)://host[:port][/prefix]", base)
	}
	port := u.Port()
	if port == "" {
		port = "443"
		if u.Scheme == "http" {
			port = "80"
		}
	}
	return u.Scheme + "://" + net.JoinHostPort(u.Hostname(), port) + u.EscapedPath(), nil
}

// ParseID parses a long, short or transient id.
func ParseID(s string) (ID, error) {
	bad := func(why string) (ID, error) {
		return ID{}, sightline.Errorf(sightline.Invalid, "invalid id %s: %s", quoteID(s), why)
	}
	if len(s) > MaxIDLength {
		return bad("longer than 2048 bytes")
	}
	if rest, ok := strings.CutPrefix(s, "transient:"); ok {
		if rest == "" {
			return bad("nothing after transient:")
		}
		typ, _ := parseShort(rest)
		return ID{Kind: TransientID, Type: typ, Short: rest}, nil
	}
	if strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://") {
		i := strings.LastIndex(s, "/ctia/")
		if i < 0 {
			return bad("a URL without /ctia/<type>/<type>-<uuid>")
		}
		typ, short, ok := strings.Cut(s[i+len("/ctia/"):], "/")
		if st, okShort := parseShort(short); !ok || !okShort || st != typ {
			return bad("want http(s)://host[:port][/prefix]/ctia/<type>/<type>-<uuid>")
		}
		if u, err := url.Parse(s[:i]); err != nil || u.Host == "" {
			return bad("the URL has no host")
		}
		return ID{Kind: LongID, Base: s[:i], Type: typ, Short: short}, nil
	}
	typ, ok := parseShort(s)
	if !ok {
		return bad("want <type>-<uuid>, transient:… or a long id")
	}
	return ID{Kind: ShortID, Type: typ, Short: s}, nil
}

// parseShort checks ^[a-z][-a-z]+-<lowercase uuid>$ and returns the type.
func parseShort(s string) (typ string, ok bool) {
	const uuidLen = 36
	if len(s) < 3+uuidLen || s[len(s)-uuidLen-1] != '-' {
		return "", false
	}
	typ, u := s[:len(s)-uuidLen-1], s[len(s)-uuidLen:]
	for i := 0; i < len(typ); i++ {
		if c := typ[i]; !(c >= 'a' && c <= 'z' || c == '-' && i > 0) {
			return "", false
		}
	}
	for i := 0; i < len(u); i++ {
		c := u[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return "", false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return "", false
			}
		}
	}
	return typ, true
}

func quoteID(s string) string {
	if len(s) > 100 {
		s = s[:100] + "…"
	}
	return `"` + s + `"`
}
