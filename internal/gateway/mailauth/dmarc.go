package mailauth

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-msgauth/dmarc"
	"golang.org/x/net/publicsuffix"
)

// policy is the outcome of DMARC policy discovery (RFC 7489 section 6.6.3).
type policy struct {
	rec    *dmarc.Record // nil when err is set
	domain string        // where the record was found (or last looked for)
	err    error         // dmarc.ErrNoPolicy, a dmarc temporary failure, or a broken record
}

// lookupPolicy looks for the DMARC record of from, then of its
// organizational domain.
func lookupPolicy(ctx context.Context, r Resolver, from string) policy {
	rec, err := lookupRecord(ctx, r, from)
	if errors.Is(err, dmarc.ErrNoPolicy) {
		if org := orgDomain(from); org != from {
			rec, err = lookupRecord(ctx, r, org)
			return policy{rec: rec, domain: org, err: err}
		}
	}
	return policy{rec: rec, domain: from, err: err}
}

// lookupRecord fetches and parses the record at _dmarc.domain; more than one
// DMARC record there is an error, as RFC 7489 requires.
func lookupRecord(ctx context.Context, r Resolver, domain string) (*dmarc.Record, error) {
	found := 0
	rec, err := dmarc.LookupWithOptions(domain, &dmarc.LookupOptions{
		LookupTXT: func(name string) ([]string, error) {
			txts, err := r.LookupTXT(ctx, name)
			for _, t := range txts {
				v, _, _ := strings.Cut(t, ";")
				if strings.HasPrefix(v, "v=") && strings.TrimSpace(v[2:]) == "DMARC1" {
					found++
				}
			}
			return txts, err
		},
	})
	if err == nil && found > 1 {
		return nil, fmt.Errorf("%d DMARC records at _dmarc.%s", found, domain)
	}
	return rec, err
}

// orgDomain returns the organizational domain of d (RFC 7489 section 3.2):
// its public suffix plus one label, or d itself when d is a public suffix.
func orgDomain(d string) string {
	org, err := publicsuffix.EffectiveTLDPlusOne(d)
	if err != nil {
		return d
	}
	return org
}

// aligned reports whether the authenticated domain d aligns with the From
// domain: equal in strict mode, the same organizational domain in relaxed.
func aligned(d, from string, mode dmarc.AlignmentMode) bool {
	if d == "" {
		return false
	}
	if d == from {
		return true
	}
	return mode != dmarc.AlignmentStrict && orgDomain(d) == orgDomain(from)
}

// evaluate applies the DMARC record found for from to the SPF and DKIM
// results. Besides RFC 7489: when nothing aligned passed but an aligned
// check failed temporarily, the result is temperror, not fail, so that a DNS
// outage does not make the gateway reject legitimate mail.
func evaluate(from string, pol policy, s SPF, ds []DKIM) DMARC {
	out := DMARC{Domain: from}
	spfMode, dkimMode := dmarc.AlignmentMode(dmarc.AlignmentRelaxed), dmarc.AlignmentMode(dmarc.AlignmentRelaxed)
	if pol.rec != nil {
		spfMode, dkimMode = pol.rec.SPFAlignment, pol.rec.DKIMAlignment
	}

	var passed, tempFailed []string
	if aligned(s.Domain, from, spfMode) {
		switch s.Result {
		case Pass:
			passed = append(passed, "SPF pass for "+s.Domain)
		case TempError:
			tempFailed = append(tempFailed, "SPF temperror for "+s.Domain)
		}
	}
	for _, d := range ds {
		if !aligned(d.Domain, from, dkimMode) {
			continue
		}
		switch d.Result {
		case Pass:
			passed = append(passed, "DKIM pass for d="+d.Domain)
		case TempError:
			tempFailed = append(tempFailed, "DKIM temperror for d="+d.Domain)
		}
	}
	out.Aligned = len(passed) > 0

	switch {
	case errors.Is(pol.err, dmarc.ErrNoPolicy):
		out.Result, out.Reason = None, "no DMARC record for "+from
		if pol.domain != from {
			out.Reason += " nor " + pol.domain
		}
		return out
	case dmarc.IsTempFail(pol.err):
		out.Result, out.Reason = TempError, "DMARC record lookup failed: "+pol.err.Error()
		return out
	case pol.err != nil:
		out.Result, out.Reason = PermError, "invalid DMARC record at _dmarc."+pol.domain+": "+pol.err.Error()
		return out
	}

	out.Policy = string(pol.rec.Policy)
	if pol.domain != from && pol.rec.SubdomainPolicy != "" {
		out.Policy = string(pol.rec.SubdomainPolicy)
	}
	switch {
	case out.Aligned:
		out.Result, out.Reason = Pass, "aligned "+strings.Join(passed, ", ")
	case len(tempFailed) > 0:
		out.Result, out.Reason = TempError, "no aligned pass yet: "+strings.Join(tempFailed, ", ")
	default:
		out.Result, out.Reason = Fail, fmt.Sprintf("no aligned pass: SPF %s for %s, DKIM %s",
			s.Result, orDash(s.Domain), orDash(dkimSummary(ds)))
	}
	return out
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
