package pipeline

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/gateway/pipeline/contentfilter"
)

// Rules is the screening configuration, stored in the gateway's
// configuration file and swapped in whole on commit. Validate it before
// committing; SetRules refuses invalid rules.
type Rules struct {
	Lists          []List                 `json:"lists,omitempty"`
	DMARC          DMARCRules             `json:"dmarc"`
	AntiVirus      AntiVirusRules         `json:"anti_virus"`
	ContentFilters []contentfilter.Filter `json:"content_filters,omitempty"`
}

// List kinds: what the entries of a List are matched against.
const (
	ListSenderIP     = "sender_ip"         // client IP; entries are addresses or CIDR prefixes
	ListSenderDomain = "sender_domain"     // sender's domain; "example.com", or ".example.com" with subdomains
	ListSender       = "sender"            // sender address, case-insensitive
	ListURLDomain    = "url_domain"        // host of any URL in the text; domain patterns as sender_domain
	ListSHA256       = "attachment_sha256" // SHA-256 of any attachment
)

// List modes.
const (
	Blocklist = "blocklist"
	Safelist  = "safelist"
)

// List is a named reputation list. A safelisted sender (by IP, domain or
// address, matched on the envelope sender only, since header From is
// trivially forged) skips every sender blocklist; a safelisted URL domain or
// hash is ignored by the URL-domain or hash blocklists. Blocklist sender
// entries match the envelope sender or the header From. Safelists never skip
// anti-virus or content filters.
type List struct {
	Name    string   `json:"name"` // letters, digits, _ - . (at most 64), unique
	Kind    string   `json:"kind"` // a List kind constant
	Mode    string   `json:"mode"` // Blocklist or Safelist
	Entries []string `json:"entries"`
	// Action is what a blocklist does; the zero value quarantines to
	// "Policy". Unused for safelists.
	Action Disposition `json:"action,omitzero"`
}

// Disposition types.
const (
	ActQuarantine = "quarantine"
	ActDrop       = "drop"
	ActBounce     = "bounce"
)

// Disposition says what to do with a message that a rule acts on.
type Disposition struct {
	Type       string `json:"type,omitempty"`       // ActQuarantine, ActDrop or ActBounce; the default depends on the rule
	Quarantine string `json:"quarantine,omitempty"` // quarantine name; "Policy" when empty
	Text       string `json:"text,omitempty"`       // bounce reason given to the sender
}

// DMARCRules apply the published DMARC policy of a failing message.
type DMARCRules struct {
	// Enforce applies the policy on mail flow policies not listed in
	// Policies.
	Enforce bool `json:"enforce"`
	// Policies overrides Enforce per mail flow policy name, e.g.
	// {"RELAYED": false}.
	Policies map[string]bool `json:"policies,omitempty"`
	// Reject is done to a failing message whose domain publishes p=reject;
	// the zero value drops it (a bounce would go to the forged sender).
	Reject Disposition `json:"reject,omitzero"`
	// Quarantine names the quarantine for p=quarantine; "Policy" when empty.
	Quarantine string `json:"quarantine,omitempty"`
}

// AntiVirusRules configure anti-virus scanning.
type AntiVirusRules struct {
	Enabled bool `json:"enabled"`
	// OnVirus is ActDrop (also when empty) or ActQuarantine.
	OnVirus string `json:"on_virus,omitempty"`
	// OnError is "deliver" (also when empty), which delivers the message
	// with the header "X-Sightline-AV: unscannable", or ActQuarantine.
	OnError string `json:"on_error,omitempty"`
	// Quarantine names the quarantine for both; "Virus" when empty.
	Quarantine string `json:"quarantine,omitempty"`
}

// DefaultRules returns the rules of a new gateway: anti-virus on (dropping
// viruses, delivering unscannable mail with a header), DMARC policies
// enforced except on the RELAYED mail flow policy, no lists, no content filters.
func DefaultRules() *Rules {
	return &Rules{
		DMARC:     DMARCRules{Enforce: true, Policies: map[string]bool{"RELAYED": false}},
		AntiVirus: AntiVirusRules{Enabled: true},
	}
}

// Default names.
const (
	PolicyQuarantine = contentfilter.DefaultQuarantine // "Policy"
	VirusQuarantine  = "Virus"
	onErrorDeliver   = "deliver"
)

// compiled is a validated Rules, ready to screen with.
type compiled struct {
	rules   *Rules
	lists   []compiledList
	filters *contentfilter.Set
}

type compiledList struct {
	List
	prefixes []netip.Prefix
	exact    map[string]bool // addresses and hashes, lowercase
	domains  []string        // domain patterns, lowercase
}

var listNameRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$`)

// Validate reports every problem in r, naming the rule and the field, as one
// error of kind Invalid.
func (r *Rules) Validate() error {
	_, err := compile(r)
	return err
}

func compile(r *Rules) (*compiled, error) {
	c := &compiled{rules: r}
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	seen := map[string]bool{}
	for i, l := range r.Lists {
		label := fmt.Sprintf("list %q", l.Name)
		switch {
		case l.Name == "":
			label = fmt.Sprintf("list %d", i+1)
			bad("%s: missing name", label)
		case !listNameRE.MatchString(l.Name):
			bad("%s: invalid name: use letters, digits, _ - . (at most 64)", label)
		case seen[l.Name]:
			bad("%s: duplicate name", label)
		}
		seen[l.Name] = true
		switch l.Mode {
		case Blocklist:
			if err := checkDisposition(l.Action); err != nil {
				bad("%s: action: %v", label, err)
			}
		case Safelist:
			if l.Action != (Disposition{}) {
				bad("%s: a safelist takes no action", label)
			}
		default:
			bad("%s: unknown mode %q (want blocklist or safelist)", label, l.Mode)
		}
		cl := compiledList{List: l, exact: map[string]bool{}}
		for j, e := range l.Entries {
			e = strings.ToLower(strings.TrimSpace(e))
			var err error
			switch l.Kind {
			case ListSenderIP:
				var p netip.Prefix
				if p, err = contentfilter.ParsePrefix(e); err == nil {
					cl.prefixes = append(cl.prefixes, p)
				}
			case ListSenderDomain, ListURLDomain:
				if err = contentfilter.CheckDomainPattern(e); err == nil {
					cl.domains = append(cl.domains, e)
				}
			case ListSender:
				if local, domain, ok := strings.Cut(e, "@"); !ok || local == "" || domain == "" || strings.ContainsAny(e, " <>") {
					err = fmt.Errorf("invalid address %q", e)
				}
				cl.exact[e] = true
			case ListSHA256:
				if len(e) != 64 || strings.Trim(e, "0123456789abcdef") != "" {
					err = fmt.Errorf("invalid sha256 %q: want 64 hex digits", e)
				}
				cl.exact[e] = true
			}
			if err != nil {
				bad("%s: entry %d: %v", label, j+1, err)
			}
		}
		switch l.Kind {
		case ListSenderIP, ListSenderDomain, ListSender, ListURLDomain, ListSHA256:
		default:
			bad("%s: unknown kind %q", label, l.Kind)
		}
		c.lists = append(c.lists, cl)
	}

	if err := checkDisposition(r.DMARC.Reject); err != nil {
		bad("dmarc: reject: %v", err)
	}
	if q := r.DMARC.Quarantine; q != "" && !validQuarantine(q) {
		bad("dmarc: invalid quarantine name %q", q)
	}

	av := r.AntiVirus
	if av.OnVirus != "" && av.OnVirus != ActDrop && av.OnVirus != ActQuarantine {
		bad("anti_virus: on_virus: unknown action %q (want drop or quarantine)", av.OnVirus)
	}
	if av.OnError != "" && av.OnError != onErrorDeliver && av.OnError != ActQuarantine {
		bad("anti_virus: on_error: unknown action %q (want deliver or quarantine)", av.OnError)
	}
	if av.Quarantine != "" && !validQuarantine(av.Quarantine) {
		bad("anti_virus: invalid quarantine name %q", av.Quarantine)
	}

	set, err := contentfilter.Compile(r.ContentFilters)
	if err != nil {
		problems = append(problems, sightline.ErrorMessage(err))
	}
	c.filters = set
	if len(problems) > 0 {
		return nil, sightline.Errorf(sightline.Invalid, "%s", strings.Join(problems, "; "))
	}
	return c, nil
}

func checkDisposition(d Disposition) error {
	switch d.Type {
	case "", ActQuarantine, ActDrop, ActBounce:
	default:
		return fmt.Errorf("unknown action %q (want quarantine, drop or bounce)", d.Type)
	}
	if d.Quarantine != "" && !validQuarantine(d.Quarantine) {
		return fmt.Errorf("invalid quarantine name %q", d.Quarantine)
	}
	if strings.ContainsAny(d.Text, "\r\n\x00") || len(d.Text) > 256 {
		return fmt.Errorf("bounce text must be one line of at most 256 bytes")
	}
	return nil
}

var quarantineRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_ .-]{0,63}$`)

func validQuarantine(name string) bool { return quarantineRE.MatchString(name) }

// match returns what of the message is on l, or "" when nothing is.
// senders are the addresses to match (lowercase), urlDomains and hashes are
// those not exempted by a safelist.
func (l *compiledList) match(ip netip.Addr, senders []string, urlDomains, hashes []string) string {
	switch l.Kind {
	case ListSenderIP:
		for _, p := range l.prefixes {
			if ip.IsValid() && p.Contains(ip) {
				return "sender IP " + ip.String()
			}
		}
	case ListSender:
		for _, s := range senders {
			if l.exact[s] {
				return "sender " + s
			}
		}
	case ListSenderDomain:
		for _, s := range senders {
			d := domainOf(s)
			if l.matchDomain(d) {
				return "sender domain " + d
			}
		}
	case ListURLDomain:
		for _, d := range urlDomains {
			if l.matchDomain(d) {
				return "URL domain " + d
			}
		}
	case ListSHA256:
		for _, h := range hashes {
			if l.exact[h] {
				return "attachment SHA-256 " + h
			}
		}
	}
	return ""
}

func (l *compiledList) matchDomain(d string) bool {
	if d == "" {
		return false
	}
	for _, p := range l.domains {
		if contentfilter.MatchDomain(p, d) {
			return true
		}
	}
	return false
}

func senderKind(kind string) bool {
	return kind == ListSenderIP || kind == ListSenderDomain || kind == ListSender
}

// domainOf returns the lowercase domain of an address, "" when none.
func domainOf(addr string) string {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return ""
	}
	return strings.ToLower(strings.TrimSuffix(addr[i+1:], "."))
}
