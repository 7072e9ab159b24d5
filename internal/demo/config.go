package demo

import (
	"slices"
	"strings"

	"github.com/sightline/sightline/internal/gateway/config"
	"github.com/sightline/sightline/internal/gateway/pipeline"
	"github.com/sightline/sightline/internal/gateway/pipeline/contentfilter"
	"github.com/sightline/sightline/internal/gateway/queue"
	"github.com/sightline/sightline/internal/gateway/smtpd"
)

// Names of what the demo adds to the gateway's configuration. configure
// replaces entries of these names and leaves everything else alone.
const (
	ListURLs   = "demo-malicious-urls"
	ListHashes = "demo-malicious-attachments"
	FilterExe  = "demo-quarantine-executables"
	FilterSpam = "demo-tag-spam"
	SpamTag    = "[SUSPECTED SPAM]"
	// Quarantine receives what the demo's lists and filters catch.
	Quarantine = pipeline.PolicyQuarantine
	// SenderGroup and FlowPolicy receive the demo's mail as incoming, from
	// SourceIP; the demo falls back to 127.0.0.1 (relayed, outgoing) where
	// SourceIP cannot be used.
	SenderGroup = "DEMO_INTERNET"
	FlowPolicy  = "DEMO_INBOUND"
	SourceIP    = "127.0.0.2"
)

// configure adds the demo's mail flow, screening and routing to c:
//   - the sender group SenderGroup (SourceIP, first in the HAT) under the
//     flow policy FlowPolicy, which accepts mail for OrgDomain (first in the
//     RAT) as incoming and does not enforce DMARC, since the seed's sender
//     domain cisco.com may publish p=reject for mail from loopback;
//   - blocklists of the phishing domain and of the malicious attachment's
//     hash, and content filters quarantining .exe attachments and tagging
//     spam, in both directions since mail from 127.0.0.1 is relayed;
//   - an SMTP route of OrgDomain to sinkAddr.
//
// Applying it twice gives the same configuration.
func configure(c *config.Config, sinkAddr string) {
	p := c.SMTP
	p.SenderGroups = slices.Insert(slices.DeleteFunc(p.SenderGroups, func(g smtpd.SenderGroup) bool { return g.Name == SenderGroup }),
		0, smtpd.SenderGroup{Name: SenderGroup, Sources: []string{SourceIP}, FlowPolicy: FlowPolicy})
	p.FlowPolicies = upsert(p.FlowPolicies, func(f smtpd.FlowPolicy) string { return f.Name },
		smtpd.FlowPolicy{Name: FlowPolicy, Action: smtpd.Accept, MaxMessageSize: 10 << 20,
			MaxRecipientsPerMessage: 100, MaxMessagesPerConnection: 10, MaxConcurrentConnectionsPerIP: 10})
	p.RAT = slices.Insert(slices.DeleteFunc(p.RAT, func(e smtpd.RATEntry) bool { return strings.EqualFold(e.Pattern, OrgDomain) }),
		0, smtpd.RATEntry{Pattern: OrgDomain, Action: smtpd.Accept})

	r := c.Screening
	if r.DMARC.Policies == nil {
		r.DMARC.Policies = map[string]bool{}
	}
	r.DMARC.Policies[FlowPolicy] = false
	r.Lists = upsert(r.Lists, func(l pipeline.List) string { return l.Name },
		pipeline.List{Name: ListURLs, Kind: pipeline.ListURLDomain, Mode: pipeline.Blocklist,
			Entries: []string{"." + MaliciousDomain},
			Action:  pipeline.Disposition{Type: pipeline.ActQuarantine, Quarantine: Quarantine}},
		pipeline.List{Name: ListHashes, Kind: pipeline.ListSHA256, Mode: pipeline.Blocklist,
			Entries: []string{MaliciousSHA256()},
			Action:  pipeline.Disposition{Type: pipeline.ActQuarantine, Quarantine: Quarantine}})
	r.ContentFilters = upsert(r.ContentFilters, func(f contentfilter.Filter) string { return f.Name },
		contentfilter.Filter{Name: FilterExe, Enabled: true, Direction: "both",
			Conditions: []contentfilter.Condition{{Type: contentfilter.AttachmentType, Value: ".exe"}},
			Actions:    []contentfilter.Action{{Type: contentfilter.Quarantine, Quarantine: Quarantine}}},
		contentfilter.Filter{Name: FilterSpam, Enabled: true, Direction: "both",
			Conditions: []contentfilter.Condition{{Type: contentfilter.Subject, Op: contentfilter.Matches, Value: SpamPattern}},
			Actions: []contentfilter.Action{{Type: contentfilter.TagSubject, Prefix: SpamTag},
				{Type: contentfilter.AddHeader, Header: "X-Sightline-Demo", Value: "spam"}}})
	c.Routes = upsert(c.Routes, func(r queue.Route) string { return strings.ToLower(r.Domain) },
		queue.Route{Domain: OrgDomain, Hosts: []string{sinkAddr}, TLS: queue.TLSNone})
}

// routedSink returns the host of the running route of OrgDomain, "" when
// there is none: the demo's mail server listens there again on a restart,
// so that a restart needs no new commit.
func routedSink(c *config.Config) string {
	for _, r := range c.Routes {
		if strings.EqualFold(r.Domain, OrgDomain) && len(r.Hosts) == 1 {
			return r.Hosts[0]
		}
	}
	return ""
}

// upsert replaces the elements of xs whose key is that of one of add, in
// place, and appends the others.
func upsert[T any](xs []T, key func(T) string, add ...T) []T {
	for _, a := range add {
		if i := slices.IndexFunc(xs, func(x T) bool { return key(x) == key(a) }); i >= 0 {
			xs[i] = a
		} else {
			xs = append(xs, a)
		}
	}
	return xs
}
