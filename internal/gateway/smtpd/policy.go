package smtpd

import (
	"fmt"
	"net/netip"
	"strings"

	sightline "github.com/sightline/sightline"
)

// Action is what a mail flow policy does with a connection, or what a RAT
// entry does with a recipient.
type Action string

// Mail flow policy actions (AsyncOS names). A RAT entry uses only Accept and
// Reject.
const (
	Accept    Action = "ACCEPT"    // accept mail for recipients in the RAT
	Reject    Action = "REJECT"    // greet with 554 and accept no mail
	TCPRefuse Action = "TCPREFUSE" // close the connection without a greeting
	Relay     Action = "RELAY"     // accept mail for any recipient: outgoing mail
	Continue  Action = "CONTINUE"  // skip this sender group and keep matching the HAT
)

// Policy is the receiving policy of a listener: the host access table (HAT),
// the mail flow policies it names and the recipient access table (RAT). It is
// meant to live in the gateway's configuration file.
type Policy struct {
	// SenderGroups is the HAT, matched in order; the first group with a
	// matching source decides, unless its policy's action is Continue.
	SenderGroups []SenderGroup `json:"sender_groups"`
	// FlowPolicies are the mail flow policies named by SenderGroups.
	FlowPolicies []FlowPolicy `json:"flow_policies"`
	// RAT lists the recipients accepted from senders that do not relay,
	// matched in order; a recipient that matches no entry is rejected.
	RAT []RATEntry `json:"rat"`
}

// SenderGroup is one row of the HAT.
//
// A source is an IP address ("192.0.2.7", "2001:db8::1"), a CIDR block
// ("10.0.0.0/8"), a host name ("mail.example.com"), a domain suffix
// (".example.com" matches any host under example.com) or "*" / "ALL", which
// matches every client. Host names match the client's reverse DNS name only
// when it is forward-confirmed, because a PTR record alone is chosen by the
// client's owner.
type SenderGroup struct {
	Name       string   `json:"name"`
	Sources    []string `json:"sources"`
	FlowPolicy string   `json:"flow_policy"`
}

// FlowPolicy is a mail flow policy. A zero limit means unlimited.
type FlowPolicy struct {
	Name   string `json:"name"`
	Action Action `json:"action"`

	MaxMessageSize                int64 `json:"max_message_size"` // bytes, as advertised by SIZE
	MaxRecipientsPerMessage       int   `json:"max_recipients_per_message"`
	MaxMessagesPerConnection      int   `json:"max_messages_per_connection"`
	MaxConcurrentConnectionsPerIP int   `json:"max_concurrent_connections_per_ip"`
	// MaxMessagesPerHourPerIP counts messages accepted from one client IP in
	// the current clock hour (a fixed window, reset on the hour).
	MaxMessagesPerHourPerIP int `json:"max_messages_per_hour_per_ip"`
	// RequireTLS refuses MAIL until the session has done STARTTLS.
	RequireTLS bool `json:"require_tls"`
}

// RATEntry is one row of the RAT. Pattern is "example.com" (that domain),
// ".example.com" (its subdomains, not itself), "user@example.com" (one
// address), "user@" (that local part in any domain) or "ALL". Matching ignores
// case. Action is Accept or Reject.
type RATEntry struct {
	Pattern string `json:"pattern"`
	Action  Action `json:"action"`
}

// Names of the default sender groups and flow policies, as AsyncOS names them.
const (
	AcceptList  = "ACCEPTLIST"
	UnknownList = "UNKNOWNLIST"
	SuspectList = "SUSPECTLIST"
	RelayList   = "RELAYLIST"
	BlockList   = "BLOCKLIST"

	Accepted  = "ACCEPTED"
	Relayed   = "RELAYED"
	Blocked   = "BLOCKED"
	Throttled = "THROTTLED"
	Trusted   = "TRUSTED"
)

const mib = 1 << 20

// DefaultPolicy returns the policy of a new gateway: loopback relays
// (RELAYLIST), ACCEPTLIST, BLOCKLIST and SUSPECTLIST are empty, everyone else
// is UNKNOWNLIST under ACCEPTED, and the RAT accepts no recipient.
//
// RELAYED has no hourly limit, allows 1000 concurrent connections per IP and
// unlimited messages per connection, so a local injector such as
// `smtp-source -s 100 -m 20000` runs at full speed.
func DefaultPolicy() *Policy {
	return &Policy{
		SenderGroups: []SenderGroup{
			{Name: RelayList, Sources: []string{"127.0.0.0/8", "::1"}, FlowPolicy: Relayed},
			{Name: AcceptList, FlowPolicy: Trusted},
			{Name: BlockList, FlowPolicy: Blocked},
			{Name: SuspectList, FlowPolicy: Throttled},
			{Name: UnknownList, Sources: []string{"*"}, FlowPolicy: Accepted},
		},
		FlowPolicies: []FlowPolicy{
			{Name: Accepted, Action: Accept, MaxMessageSize: 10 * mib, MaxRecipientsPerMessage: 1000,
				MaxMessagesPerConnection: 10, MaxConcurrentConnectionsPerIP: 10},
			{Name: Relayed, Action: Relay, MaxMessageSize: 100 * mib, MaxRecipientsPerMessage: 1000,
				MaxConcurrentConnectionsPerIP: 1000},
			{Name: Blocked, Action: Reject},
			{Name: Throttled, Action: Accept, MaxMessageSize: 10 * mib, MaxRecipientsPerMessage: 25,
				MaxMessagesPerConnection: 1, MaxConcurrentConnectionsPerIP: 10, MaxMessagesPerHourPerIP: 20},
			{Name: Trusted, Action: Accept, MaxMessageSize: 100 * mib, MaxRecipientsPerMessage: 5000,
				MaxMessagesPerConnection: 5000, MaxConcurrentConnectionsPerIP: 600},
		},
		RAT: []RATEntry{{Pattern: "ALL", Action: Reject}},
	}
}

// Validate reports the first problem of p as a *sightline.Error of kind
// Invalid whose message names the offending entry.
func (p *Policy) Validate() error {
	_, err := compile(p)
	return err
}

// compiledPolicy is a validated Policy in the form the server matches against.
type compiledPolicy struct {
	groups []compiledGroup
	flows  map[string]*FlowPolicy
	rat    []ratRule
}

type compiledGroup struct {
	name    string
	sources []source
	flow    *FlowPolicy
}

// noMatch is the decision when no sender group matches: refuse mail.
var noMatch = &FlowPolicy{Action: Reject}

func compile(p *Policy) (*compiledPolicy, error) {
	if p == nil {
		return nil, sightline.Errorf(sightline.Invalid, "policy is missing")
	}
	cp := &compiledPolicy{flows: make(map[string]*FlowPolicy, len(p.FlowPolicies))}
	for i := range p.FlowPolicies {
		f := p.FlowPolicies[i] // a copy: later edits of p do not leak in
		switch {
		case f.Name == "":
			return nil, sightline.Errorf(sightline.Invalid, "flow policy %d has no name", i+1)
		case cp.flows[f.Name] != nil:
			return nil, sightline.Errorf(sightline.Invalid, "flow policy %q is defined twice", f.Name)
		}
		switch f.Action {
		case Accept, Reject, TCPRefuse, Relay, Continue:
		default:
			return nil, sightline.Errorf(sightline.Invalid, "flow policy %q: unknown action %q (want ACCEPT, REJECT, TCPREFUSE, RELAY or CONTINUE)", f.Name, f.Action)
		}
		if f.MaxMessageSize < 0 || f.MaxRecipientsPerMessage < 0 || f.MaxMessagesPerConnection < 0 ||
			f.MaxConcurrentConnectionsPerIP < 0 || f.MaxMessagesPerHourPerIP < 0 {
			return nil, sightline.Errorf(sightline.Invalid, "flow policy %q: limits must not be negative", f.Name)
		}
		cp.flows[f.Name] = &f
	}
	seen := make(map[string]bool, len(p.SenderGroups))
	for i, g := range p.SenderGroups {
		switch {
		case g.Name == "":
			return nil, sightline.Errorf(sightline.Invalid, "sender group %d has no name", i+1)
		case seen[g.Name]:
			return nil, sightline.Errorf(sightline.Invalid, "sender group %q is defined twice", g.Name)
		case cp.flows[g.FlowPolicy] == nil:
			return nil, sightline.Errorf(sightline.Invalid, "sender group %q: unknown flow policy %q", g.Name, g.FlowPolicy)
		}
		seen[g.Name] = true
		cg := compiledGroup{name: g.Name, flow: cp.flows[g.FlowPolicy]}
		for _, s := range g.Sources {
			src, err := parseSource(s)
			if err != nil {
				return nil, sightline.Wrap(sightline.Invalid, err, fmt.Sprintf("sender group %q: bad source %q", g.Name, s))
			}
			cg.sources = append(cg.sources, src)
		}
		cp.groups = append(cp.groups, cg)
	}
	for _, e := range p.RAT {
		r, err := parseRATPattern(e.Pattern)
		if err != nil {
			return nil, sightline.Wrap(sightline.Invalid, err, fmt.Sprintf("RAT: bad pattern %q", e.Pattern))
		}
		switch e.Action {
		case Accept:
			r.accept = true
		case Reject:
		default:
			return nil, sightline.Errorf(sightline.Invalid, "RAT %q: unknown action %q (want ACCEPT or REJECT)", e.Pattern, e.Action)
		}
		cp.rat = append(cp.rat, r)
	}
	return cp, nil
}

// hat finds the sender group of a client. host is the client's
// forward-confirmed reverse DNS name, "" when none. It returns the group name,
// the source that matched as logged ("ALL" for "*") and the flow policy. When
// nothing matches, the group is "None" and the policy rejects.
func (cp *compiledPolicy) hat(ip netip.Addr, host string) (group, match string, flow *FlowPolicy) {
	group, match, flow = "None", "none", noMatch
	continued := false
	for _, g := range cp.groups {
		for _, s := range g.sources {
			if !s.matches(ip, host) {
				continue
			}
			if g.flow.Action == Continue {
				if !continued {
					group, match, flow, continued = g.name, s.String(), g.flow, true
				}
				break // go on with the next group
			}
			return g.name, s.String(), g.flow
		}
	}
	// Only CONTINUE rows matched: the first of them decides, and its
	// connection is accepted as ACCEPT would.
	return group, match, flow
}

// flow returns the current definition of a named flow policy, or nil.
func (cp *compiledPolicy) flow(name string) *FlowPolicy { return cp.flows[name] }

// ratAccepts reports whether the RAT accepts addr (local@domain, already
// validated).
func (cp *compiledPolicy) ratAccepts(addr string) bool {
	local, domain := splitAddress(addr)
	local, domain = strings.ToLower(local), strings.ToLower(domain)
	for _, r := range cp.rat {
		if r.matches(local, domain) {
			return r.accept
		}
	}
	return false
}

// source is one parsed HAT source.
type source struct {
	all    bool
	prefix netip.Prefix // valid for an address or CIDR
	host   string       // lower case; with a leading dot for a suffix
}

// parseSource parses a HAT source (see SenderGroup).
func parseSource(s string) (source, error) {
	if s == "*" || strings.EqualFold(s, "ALL") {
		return source{all: true}, nil
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return source{}, fmt.Errorf("bad CIDR block: %w", err)
		}
		if p.Addr().Zone() != "" {
			return source{}, fmt.Errorf("address zone not allowed")
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
			if p.Bits() < 0 {
				return source{}, fmt.Errorf("prefix of an IPv4-mapped address shorter than /96")
			}
		}
		return source{prefix: p.Masked()}, nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		if a.Zone() != "" {
			return source{}, fmt.Errorf("address zone not allowed")
		}
		a = a.Unmap()
		return source{prefix: netip.PrefixFrom(a, a.BitLen())}, nil
	}
	h := strings.ToLower(s)
	if !validDomain(strings.TrimPrefix(h, "."), false) {
		return source{}, fmt.Errorf("not an IP address, CIDR block, host name or \"*\"")
	}
	return source{host: h}, nil
}

func (s source) matches(ip netip.Addr, host string) bool {
	switch {
	case s.all:
		return true
	case s.prefix.IsValid():
		return s.prefix.Contains(ip)
	case host == "":
		return false
	case strings.HasPrefix(s.host, "."):
		return strings.HasSuffix(host, s.host)
	default:
		return host == s.host
	}
}

// String returns the source as mail_logs names it in "match …".
func (s source) String() string {
	switch {
	case s.all:
		return "ALL"
	case s.prefix.IsValid() && s.prefix.IsSingleIP():
		return s.prefix.Addr().String()
	case s.prefix.IsValid():
		return s.prefix.String()
	default:
		return s.host
	}
}

// ratRule is one parsed RAT entry.
type ratRule struct {
	all        bool
	local      string // "" when any
	domain     string // "" when any
	subdomains bool   // domain matches strictly below
	accept     bool
}

func parseRATPattern(p string) (ratRule, error) {
	if strings.EqualFold(p, "ALL") {
		return ratRule{all: true}, nil
	}
	p = strings.ToLower(p)
	var r ratRule
	if i := strings.LastIndexByte(p, '@'); i >= 0 {
		r.local, p = p[:i], p[i+1:]
		if r.local == "" || !validLocalPart(r.local) {
			return ratRule{}, fmt.Errorf("bad local part")
		}
		if p == "" {
			return r, nil
		}
	} else if strings.HasPrefix(p, ".") {
		r.subdomains, p = true, p[1:]
	}
	if !validDomain(p, true) {
		return ratRule{}, fmt.Errorf("bad domain")
	}
	r.domain = p
	return r, nil
}

func (r ratRule) matches(local, domain string) bool {
	switch {
	case r.all:
		return true
	case r.local != "" && r.local != local:
		return false
	case r.domain == "":
		return true
	case r.subdomains:
		return strings.HasSuffix(domain, "."+r.domain)
	default:
		return domain == r.domain
	}
}
