// Package mailauth authenticates the sender of an incoming message: SPF for
// the envelope, DKIM signatures, and DMARC alignment of both with the From
// header, as the gateway's mail pipeline needs before it decides.
package mailauth

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"blitiri.com.ar/go/spf"
	"github.com/emersion/go-msgauth/dkim"
	"github.com/sightline/sightline/internal/dnsresolver"
)

// DefaultTimeout bounds a whole Check when Checker.Timeout is zero.
const DefaultTimeout = 15 * time.Second

// maxSignatures bounds how many DKIM signatures of one message are verified;
// the rest are ignored.
const maxSignatures = 8

// Result values shared by SPF, DKIM and DMARC (RFC 8601).
const (
	Pass      = "pass"
	Fail      = "fail"
	SoftFail  = "softfail" // SPF only
	Neutral   = "neutral"  // SPF only
	None      = "none"
	TempError = "temperror"
	PermError = "permerror"
)

// Resolver is the DNS a Checker needs; *dnsresolver.Resolver has it. Errors
// must be *net.DNSError, unwrapped, as net.Resolver returns them.
type Resolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
	LookupAddr(ctx context.Context, addr string) ([]string, error)
}

// Checker runs SPF, DKIM and DMARC checks. Its zero value is ready to use;
// fields must not change after the first Check. It is safe for concurrent use.
type Checker struct {
	// Resolver answers every DNS question. Nil means a dnsresolver.Resolver
	// with its defaults (the servers of /etc/resolv.conf), shared by the
	// Checker's checks.
	Resolver Resolver

	// Timeout bounds one Check, all its DNS lookups included; checks not done
	// in time end in temperror. Zero means DefaultTimeout.
	Timeout time.Duration

	// Logger receives one debug record per Check. Nil means discard.
	Logger *slog.Logger

	once     sync.Once
	resolver Resolver
	log      *slog.Logger
}

// Result is the outcome of Check.
type Result struct {
	SPF   SPF
	DKIM  []DKIM // one per signature, in header order; one "none" entry without signatures
	DMARC DMARC
}

// SPF is the result of the SPF check (RFC 7208) of the envelope sender, or
// of the HELO name for a null sender.
type SPF struct {
	Result      string // pass fail softfail neutral none temperror permerror
	Identity    string // "mailfrom" or "helo"
	Domain      string // the domain checked, lowercase
	Explanation string // why, for logs and headers
}

// DKIM is the result of verifying one DKIM-Signature field (RFC 6376).
type DKIM struct {
	Result     string // pass fail none temperror permerror
	Domain     string // d= tag, the signing domain
	Selector   string // s= tag
	Identifier string // i= tag, the agent or user identifier
	Reason     string // why it did not pass, empty on pass
}

// DMARC is the DMARC evaluation (RFC 7489) of the From domain.
type DMARC struct {
	Result  string // pass fail none temperror permerror
	Policy  string // none quarantine reject: the p= (or sp= for a subdomain) to apply on fail; empty without a record
	Domain  string // the RFC5322.From domain
	Aligned bool   // an SPF or DKIM pass is aligned with Domain
	Reason  string // why
}

func (c *Checker) init() {
	c.once.Do(func() {
		c.log = c.Logger
		if c.log == nil {
			c.log = slog.New(slog.DiscardHandler)
		}
		c.log = c.log.With("component", "mailauth")
		c.resolver = c.Resolver
		if c.resolver == nil {
			c.resolver = &dnsresolver.Resolver{Logger: c.Logger}
		}
	})
}

// Check authenticates a message received from clientIP, which greeted with
// helo and gave mailFrom as envelope sender ("" or "<>" for the null
// sender); message is the whole message as received (header and body, CRLF
// or LF line ends). Check never fails: every problem — hostile input, DNS
// errors, the deadline of ctx or of Timeout — is reported in the Result.
// SPF, DKIM and the DMARC record lookup run concurrently.
func (c *Checker) Check(ctx context.Context, clientIP net.IP, helo, mailFrom string, message []byte) Result {
	c.init()
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	fields, headerErr := parseHeader(message)
	from, fromErr := "", headerErr
	if fromErr == nil {
		from, fromErr = fromDomain(fields)
	}

	var res Result
	var pol policy
	var wg sync.WaitGroup
	wg.Go(func() { res.SPF = c.checkSPF(ctx, clientIP, helo, mailFrom) })
	wg.Go(func() { res.DKIM = c.checkDKIM(ctx, fields, headerErr, message) })
	if fromErr == nil {
		wg.Go(func() { pol = lookupPolicy(ctx, c.resolver, from) })
	}
	wg.Wait()
	if fromErr != nil {
		res.DMARC = DMARC{Result: PermError, Reason: fromErr.Error()}
	} else {
		res.DMARC = evaluate(from, pol, res.SPF, res.DKIM)
	}

	c.log.Debug("sender authentication",
		"client_ip", clientIP.String(), "helo", helo, "mail_from", mailFrom,
		"spf", res.SPF.Result, "spf_domain", res.SPF.Domain,
		"dkim", dkimSummary(res.DKIM),
		"dmarc", res.DMARC.Result, "dmarc_domain", res.DMARC.Domain, "dmarc_policy", res.DMARC.Policy,
		"dmarc_reason", res.DMARC.Reason)
	return res
}

// checkSPF evaluates SPF for the MAIL FROM domain or, for a null sender (or
// one without a domain), for the HELO name as postmaster@helo (RFC 7208
// section 2.4).
func (c *Checker) checkSPF(ctx context.Context, ip net.IP, helo, mailFrom string) SPF {
	sender := strings.TrimSpace(mailFrom)
	sender = strings.TrimSuffix(strings.TrimPrefix(sender, "<"), ">")
	out := SPF{Identity: "mailfrom"}
	at := strings.LastIndexByte(sender, '@')
	domain := ""
	if at >= 0 {
		domain = sender[at+1:]
		if at == 0 {
			sender = "postmaster" + sender
		}
	}
	if domain == "" {
		out.Identity = "helo"
		domain = strings.TrimSpace(helo)
		sender = "postmaster@" + domain
	}
	d, err := normalizeDomain(domain)
	if err == nil && !strings.Contains(d, ".") {
		err = fmt.Errorf("%q is not a multi-label domain", d)
	}
	out.Domain = d
	if err != nil {
		// RFC 7208 section 4.3: a malformed domain gives none.
		out.Result = None
		out.Explanation = fmt.Sprintf("no %s domain to check: %v", out.Identity, err)
		return out
	}
	sender = sender[:strings.LastIndexByte(sender, '@')+1] + d

	r, err := spf.CheckHostWithSender(ip, helo, sender, spf.WithContext(ctx), spf.WithResolver(c.resolver))
	out.Result = string(r)
	switch r {
	case spf.Pass:
		out.Explanation = fmt.Sprintf("%s permits %s", d, ip)
	case spf.Fail:
		out.Explanation = fmt.Sprintf("%s does not permit %s", d, ip)
	case spf.SoftFail:
		out.Explanation = fmt.Sprintf("%s does not permit %s, but weakly (~)", d, ip)
	case spf.Neutral:
		out.Explanation = fmt.Sprintf("%s makes no assertion about %s", d, ip)
	case spf.None:
		out.Explanation = fmt.Sprintf("%s publishes no SPF record", d)
	case spf.TempError:
		out.Explanation = fmt.Sprintf("DNS failure checking %s: %v", d, err)
	default:
		out.Result = PermError
		out.Explanation = fmt.Sprintf("invalid SPF policy of %s: %v", d, err)
	}
	return out
}

// checkDKIM verifies every DKIM-Signature field of message, at most
// maxSignatures of them.
func (c *Checker) checkDKIM(ctx context.Context, fields []field, headerErr error, message []byte) (out []DKIM) {
	sigs := values(fields, "DKIM-Signature")
	if headerErr != nil || len(sigs) == 0 {
		reason := "no signature"
		if headerErr != nil {
			reason = "no signature read: " + headerErr.Error()
		}
		return []DKIM{{Result: None, Reason: reason}}
	}
	sigs = sigs[:min(len(sigs), maxSignatures)]
	out = make([]DKIM, len(sigs))
	for i, v := range sigs {
		out[i].Domain, out[i].Selector = signatureTags(v)
	}
	fail := func(reason string) []DKIM {
		for i := range out {
			out[i].Result, out[i].Reason = PermError, reason
		}
		return out
	}
	defer func() {
		// The verifier parses hostile input; a bug there must not take the
		// gateway down.
		if p := recover(); p != nil {
			c.log.Error("dkim verifier panicked", "panic", fmt.Sprint(p))
			out = fail("verifier failure")
		}
	}()

	verifs, err := dkim.VerifyWithOptions(bytes.NewReader(message), &dkim.VerifyOptions{
		LookupTXT:        func(name string) ([]string, error) { return c.resolver.LookupTXT(ctx, name) },
		MaxVerifications: maxSignatures,
	})
	if err != nil && err != dkim.ErrTooManySignatures {
		return fail(err.Error())
	}
	if len(verifs) != len(out) {
		// Cannot happen: both parsers split the header alike.
		return fail(fmt.Sprintf("verifier saw %d signatures, want %d", len(verifs), len(out)))
	}
	for i, v := range verifs {
		if v.Domain != "" {
			out[i].Domain = strings.ToLower(v.Domain)
		}
		out[i].Identifier = v.Identifier
		switch {
		case v.Err == nil:
			out[i].Result = Pass
		case dkim.IsTempFail(v.Err):
			out[i].Result, out[i].Reason = TempError, v.Err.Error()
		case dkim.IsPermFail(v.Err):
			out[i].Result, out[i].Reason = PermError, v.Err.Error()
		default:
			out[i].Result, out[i].Reason = Fail, v.Err.Error()
		}
	}
	return out
}

func dkimSummary(ds []DKIM) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = d.Result
		if d.Domain != "" {
			parts[i] += " d=" + d.Domain
		}
	}
	return strings.Join(parts, ", ")
}
