package exchange

import (
	"context"
	"encoding/hex"
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"crypto/rand"
	"github.com/google/uuid"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/exchange/exchangeclient"
	"github.com/sightline/sightline/internal/exchange/registry"
)

// MsgInvalidToken is the one answer to a registration with a token that
// cannot be used, whatever the reason; the audit log keeps the reason.
const MsgInvalidToken = "The registration failed because of an invalid or expired token"

// maxFact bounds every device fact but the host name.
const maxFact = 128

// checkRegistration validates and normalises the device facts.
func checkRegistration(reg *exchangeclient.Registration) error {
	reg.Hostname = strings.TrimSpace(reg.Hostname)
	reg.Type = strings.ToUpper(strings.TrimSpace(reg.Type))
	if reg.Hostname == "" || len(reg.Hostname) > 253 || !printable(reg.Hostname) {
		return sightline.Errorf(sightline.Invalid, "hostname: give the device's host name (at most 253 printable characters)")
	}
	if reg.Type != registry.TypeESA && reg.Type != registry.TypeSMA {
		return sightline.Errorf(sightline.Invalid, "type %q: want %s or %s", reg.Type, registry.TypeESA, registry.TypeSMA)
	}
	for _, f := range []struct{ name, v string }{{"version", reg.Version}, {"serial", reg.Serial}, {"connector_version", reg.ConnectorVersion}} {
		if len(f.v) > maxFact || !printable(f.v) {
			return sightline.Errorf(sightline.Invalid, "%s: at most %d printable characters", f.name, maxFact)
		}
	}
	if strings.TrimSpace(reg.Version) == "" {
		return sightline.Errorf(sightline.Invalid, "version: give the device's software version")
	}
	return nil
}

func printable(s string) bool {
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// register handles one registration attempt from source (an IP address):
// it checks the device version and the token, takes one use of the token
// and creates the device. Every attempt is audited with its precise
// outcome, as a reason code and in words, and with what it says of the
// token and the device; every unusable token gets the same answer,
// MsgInvalidToken.
func (e *Exchange) register(ctx context.Context, source string, reg exchangeclient.Registration) (exchangeclient.Registered, error) {
	entry := registry.AuditEntry{Actor: "device " + reg.Hostname, Source: source, Action: registry.ActionRegister,
		Target: reg.Hostname, Outcome: registry.OutcomeFailure, DeviceName: clip(reg.Hostname, maxDeviceName)}
	fail := func(err error, reason, detail string) (exchangeclient.Registered, error) {
		entry.Reason, entry.Detail = reason, detail
		e.audit(ctx, entry)
		e.log.Info("registration refused", "source", source, "hostname", reg.Hostname, "reason", reason, "detail", detail)
		return exchangeclient.Registered{}, err
	}
	if err := checkRegistration(&reg); err != nil {
		entry.Actor = "anonymous"
		return fail(err, exchangeclient.ReasonBadRequest, sightline.ErrorMessage(err))
	}
	secret := strings.ToLower(strings.TrimSpace(reg.Token))
	wellFormed := len(secret) == tokenLen && isHex(secret)
	if wellFormed {
		entry.TokenFingerprint = tokenFingerprint(registry.Hash(secret))
	}
	tok, tokErr := e.store.TokenByHash(ctx, registry.Hash(secret))
	if tokErr == nil {
		entry.OrgID, entry.TokenID = tok.OrgID, tok.ID
	} else if sightline.ErrorKind(tokErr) != sightline.NotFound {
		return exchangeclient.Registered{}, sightline.Wrap(sightline.Unavailable, tokErr, "the exchange cannot check tokens right now; try again")
	}
	if e.opts.MinVersion != "" && !versionAtLeast(reg.Version, e.opts.MinVersion) {
		entry.DeviceVersion, entry.MinVersion = reg.Version, e.opts.MinVersion
		return fail(sightline.Errorf(sightline.Forbidden,
			"The device version %s is older than the minimum this exchange accepts, %s: upgrade the device and register again",
			reg.Version, e.opts.MinVersion), exchangeclient.ReasonVersionTooOld,
			fmt.Sprintf("version %s below the minimum %s", reg.Version, e.opts.MinVersion))
	}
	invalid := sightline.Errorf(sightline.Unauthorized, MsgInvalidToken)
	if !wellFormed {
		return fail(invalid, exchangeclient.ReasonTokenMalformed, "malformed token (not 32 hexadecimal characters)")
	}
	now := e.now()
	if tokErr != nil {
		return fail(invalid, exchangeclient.ReasonTokenUnknown, fmt.Sprintf("unknown token %s (not issued by this exchange, region %s: mistyped, or from another region)",
			entry.TokenFingerprint, e.opts.Region))
	}
	if reason, detail := e.unusable(tok, now); reason != "" {
		if reason == exchangeclient.ReasonTokenOtherRegion {
			entry.TokenRegion = tok.Region
		}
		return fail(invalid, reason, detail)
	}
	cred := rand.Text() + rand.Text()
	d := registry.Device{ID: uuid.NewString(), OrgID: tok.OrgID, Name: reg.Hostname, Type: reg.Type, Version: reg.Version,
		Serial: reg.Serial, ConnectorVersion: reg.ConnectorVersion, Status: registry.StatusRegistered, IP: source,
		CredentialHash: registry.Hash(cred), TokenID: tok.ID, CreatedAt: now}
	if err := e.store.RegisterDevice(ctx, tok.ID, now, d); err != nil {
		if sightline.ErrorKind(err) != sightline.Conflict {
			return exchangeclient.Registered{}, sightline.Wrap(sightline.Unavailable, err, "the exchange cannot register devices right now; try again")
		}
		// Another registration took the last use, or the token changed meanwhile.
		reason, detail := exchangeclient.ReasonTokenUsedUp, "token used up (by a concurrent registration)"
		if again, err := e.store.TokenByHash(ctx, tok.Hash); err == nil {
			if r, d := e.unusable(again, now); r != "" {
				reason, detail = r, d
			}
		}
		return fail(invalid, reason, detail)
	}
	entry.Outcome, entry.Target = registry.OutcomeSuccess, d.ID+" "+d.Name
	entry.DeviceID, entry.DeviceName, entry.DeviceVersion = d.ID, d.Name, d.Version
	entry.Detail = fmt.Sprintf("registered %s %s version %s serial %q connector %q with token %s",
		d.Type, d.Name, d.Version, d.Serial, d.ConnectorVersion, tok.ID)
	e.audit(ctx, entry)
	e.log.Info("device registered", "device_id", d.ID, "hostname", d.Name, "type", d.Type, "source", source)
	return exchangeclient.Registered{DeviceID: d.ID, Credential: cred, TunnelURL: e.tunnelURL(), Region: e.opts.Region}, nil
}

// unusable returns why tok cannot register a device at now, as an
// exchangeclient.Reason… code and in words; "" if it can.
func (e *Exchange) unusable(tok registry.Token, now time.Time) (reason, detail string) {
	switch {
	case tok.Region != e.opts.Region:
		return exchangeclient.ReasonTokenOtherRegion, fmt.Sprintf("token from another region: issued by %s, presented to %s", tok.Region, e.opts.Region)
	case !tok.RevokedAt.IsZero():
		return exchangeclient.ReasonTokenRevoked, fmt.Sprintf("revoked token %s (revoked %s)", tok.ID, tok.RevokedAt.Format(time.RFC3339))
	case !now.Before(tok.ExpiresAt):
		return exchangeclient.ReasonTokenExpired, fmt.Sprintf("expired token %s (expired %s)", tok.ID, tok.ExpiresAt.Format(time.RFC3339))
	case tok.Remaining <= 0:
		return exchangeclient.ReasonTokenUsedUp, fmt.Sprintf("token %s used up (all %s registered)", tok.ID, plural(tok.Devices, "device"))
	}
	return "", ""
}

// clip returns s cut to at most n bytes, at a character boundary: what
// an audit entry indexes of a value the caller did not bound.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil
}

// tunnelURL is the WebSocket URL of the tunnel endpoint as devices reach it.
func (e *Exchange) tunnelURL() string {
	u := e.publicURL + "/api/v1/tunnel"
	if rest, ok := strings.CutPrefix(u, "https://"); ok {
		return "wss://" + rest
	}
	if rest, ok := strings.CutPrefix(u, "http://"); ok {
		return "ws://" + rest
	}
	return u
}

// deregister removes the device holding credential and ends its tunnel.
func (e *Exchange) deregister(ctx context.Context, source, credential string) error {
	d, err := e.store.DeviceByCredential(ctx, registry.Hash(credential))
	if sightline.ErrorKind(err) == sightline.NotFound {
		return sightline.Errorf(sightline.Unauthorized, "unknown device credential: the device is not registered with this exchange")
	}
	if err != nil {
		return sightline.Wrap(sightline.Unavailable, err, "the exchange cannot deregister devices right now; try again")
	}
	if err := e.store.DeleteDevice(ctx, d.OrgID, d.ID); err != nil && sightline.ErrorKind(err) != sightline.NotFound {
		return fmt.Errorf("deregister device %s: %w", d.ID, err)
	}
	e.hub.Disconnect(d.ID, "deregistered")
	e.audit(ctx, registry.AuditEntry{OrgID: d.OrgID, Actor: "device " + d.Name, Source: source,
		Action: registry.ActionDeregister, Target: d.ID + " " + d.Name, Outcome: registry.OutcomeSuccess,
		Detail: "the device deregistered itself", DeviceID: d.ID, DeviceName: d.Name})
	return nil
}

// Versions.

// parseVersion returns the leading numeric parts of a version such as
// "15.0.1-104" or "0.1.0-dev" ([15 0 1 104], [0 1 0]): the parts separated
// by '.', '-', '_' or '+' up to the first that is not a number. A version
// that does not start with a number is an error.
func parseVersion(v string) ([]int, error) {
	fields := strings.FieldsFunc(strings.TrimPrefix(strings.TrimSpace(v), "v"), func(r rune) bool {
		return r == '.' || r == '-' || r == '_' || r == '+'
	})
	var out []int
	for _, f := range fields {
		n, err := strconv.Atoi(f)
		if err != nil || n < 0 {
			break
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("version %q does not start with a number", v)
	}
	return out, nil
}

// versionAtLeast reports whether v is min or newer; an unparseable v is not.
func versionAtLeast(v, min string) bool {
	a, err := parseVersion(v)
	if err != nil {
		return false
	}
	b, err := parseVersion(min)
	if err != nil {
		return true
	}
	for i := range max(len(a), len(b)) {
		x, y := at(a, i), at(b, i)
		if x != y {
			return x > y
		}
	}
	return true
}

func at(s []int, i int) int {
	if i < len(s) {
		return s[i]
	}
	return 0
}

// Rate limiting.

// limiter is a token bucket per source address: burst attempts, refilled
// one per every. It forgets full buckets when it holds too many.
type limiter struct {
	mu      sync.Mutex
	burst   float64
	every   time.Duration
	now     func() time.Time
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

// maxBuckets bounds the sources the limiter tracks; past it, full buckets
// are dropped, and if none is, new sources are refused until some refill.
const maxBuckets = 100_000

func newLimiter(burst int, every time.Duration, now func() time.Time) *limiter {
	return &limiter{burst: float64(burst), every: every, now: now, buckets: map[string]*bucket{}}
}

// allow takes one attempt from source's bucket; when empty it returns false
// and how long until the next attempt is allowed.
func (l *limiter) allow(source string) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b := l.buckets[source]
	if b == nil {
		if len(l.buckets) >= maxBuckets {
			l.sweep(now)
			if len(l.buckets) >= maxBuckets {
				return false, l.every
			}
		}
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[source] = b
	}
	b.refill(now, l.burst, l.every)
	if b.tokens < 1 {
		wait := time.Duration(math.Ceil((1 - b.tokens) * float64(l.every)))
		return false, wait
	}
	b.tokens--
	return true, 0
}

func (b *bucket) refill(now time.Time, burst float64, every time.Duration) {
	if d := now.Sub(b.at); d > 0 {
		b.tokens = min(burst, b.tokens+float64(d)/float64(every))
		b.at = now
	}
}

// sweep drops the buckets that have refilled completely.
func (l *limiter) sweep(now time.Time) {
	for k, b := range l.buckets {
		b.refill(now, l.burst, l.every)
		if b.tokens >= l.burst {
			delete(l.buckets, k)
		}
	}
}

// sourceIP is the IP address of a request's peer.
func sourceIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
