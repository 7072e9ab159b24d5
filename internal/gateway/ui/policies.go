package ui

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/gateway/config"
	"github.com/sightline/sightline/internal/gateway/smtpd"
	"github.com/sightline/sightline/internal/web"
)

// policy returns the receiving policy of c, creating an empty one so that
// an edit can fill it.
func policy(c *config.Config) *smtpd.Policy {
	if c.SMTP == nil {
		c.SMTP = &smtpd.Policy{}
	}
	return c.SMTP
}

// hatPage is the data of hat.html.
type hatPage struct {
	settingsData
	Groups   []smtpd.SenderGroup
	Policies []smtpd.FlowPolicy
	UsedBy   map[string][]string // flow policy → the sender groups that use it
}

// hat serves Mail Policies > Host Access Table: the sender groups in order
// and the mail flow policies.
func (u *UI) hat(w http.ResponseWriter, r *http.Request) {
	c := u.view(w, r)
	if c == nil {
		return
	}
	p := policy(c)
	d := hatPage{Groups: p.SenderGroups, Policies: p.FlowPolicies, UsedBy: map[string][]string{}}
	d.CanEdit = canEdit(sessionUser(r).Role)
	for _, g := range p.SenderGroups {
		d.UsedBy[g.FlowPolicy] = append(d.UsedBy[g.FlowPolicy], g.Name)
	}
	u.rd.Render(w, r, http.StatusOK, "hat.html", web.PageData{Title: "Host Access Table", Data: d})
}

// maxName bounds names typed in forms; the configuration's own validation
// is stricter for most.
const maxName = 64

func readName(r *http.Request, f interface{ fail(string, string, ...any) }, label string) string {
	name := field(r, "name")
	switch {
	case name == "":
		f.fail("name", "%s: enter a name.", label)
	case len(name) > maxName || strings.ContainsAny(name, "/\\\x00\r\n"):
		f.fail("name", "%s: at most %d characters, without slashes.", label, maxName)
	}
	return name
}

// readLines reads a one-entry-per-line textarea.
func readLines(r *http.Request, f interface{ fail(string, string, ...any) }, name, label string) []string {
	ls := lines(r.PostFormValue(name))
	if len(ls) > maxLines {
		f.fail(name, "%s: at most %d lines.", label, maxLines)
		return nil
	}
	for _, l := range ls {
		if len(l) > 255 {
			f.fail(name, "%s: %q is longer than 255 characters.", label, clip(l))
			return nil
		}
	}
	return ls
}

var senderGroups = &entity[smtpd.SenderGroup]{
	what: "sender group", title: "Sender Group", list: "/mail-policies/hat", base: "/mail-policies/hat/groups",
	page: "sendergroup.html", keyField: "name",
	items: func(c *config.Config) *[]smtpd.SenderGroup { return &policy(c).SenderGroups },
	key:   func(g smtpd.SenderGroup) string { return g.Name },
	extra: flowPolicyNames,
	parse: func(r *http.Request, f *form[smtpd.SenderGroup]) smtpd.SenderGroup {
		return smtpd.SenderGroup{
			Name:       readName(r, f, "Name"),
			Sources:    readLines(r, f, "sources", "Sources"),
			FlowPolicy: field(r, "flow_policy"),
		}
	},
}

func flowPolicyNames(c *config.Config) any {
	var names []string
	for _, p := range policy(c).FlowPolicies {
		names = append(names, p.Name)
	}
	return names
}

// flowActions are the mail flow policy actions, with what they do.
var flowActions = []option{
	{string(smtpd.Accept), "ACCEPT — accept mail for the recipients in the RAT"},
	{string(smtpd.Relay), "RELAY — accept mail for any recipient (outgoing)"},
	{string(smtpd.Reject), "REJECT — greet with 554 and accept no mail"},
	{string(smtpd.TCPRefuse), "TCPREFUSE — close the connection without a greeting"},
	{string(smtpd.Continue), "CONTINUE — go on matching the next sender groups"},
}

// limits are the numeric fields of the mail flow policy form.
var limits = []struct {
	field, label string
	get          func(*smtpd.FlowPolicy) *int
}{
	{"max_recipients", "Max. Recipients per Message", func(p *smtpd.FlowPolicy) *int { return &p.MaxRecipientsPerMessage }},
	{"max_messages", "Max. Messages per Connection", func(p *smtpd.FlowPolicy) *int { return &p.MaxMessagesPerConnection }},
	{"max_connections", "Max. Concurrent Connections per IP", func(p *smtpd.FlowPolicy) *int { return &p.MaxConcurrentConnectionsPerIP }},
	{"max_per_hour", "Max. Messages per Hour per IP", func(p *smtpd.FlowPolicy) *int { return &p.MaxMessagesPerHourPerIP }},
}

var flowPolicies = &entity[smtpd.FlowPolicy]{
	what: "mail flow policy", title: "Mail Flow Policy", list: "/mail-policies/hat", base: "/mail-policies/hat/policies",
	page: "flowpolicy.html", keyField: "name",
	items: func(c *config.Config) *[]smtpd.FlowPolicy { return &policy(c).FlowPolicies },
	key:   func(p smtpd.FlowPolicy) string { return p.Name },
	extra: func(*config.Config) any { return flowActions },
	blank: func() smtpd.FlowPolicy {
		return smtpd.FlowPolicy{Action: smtpd.Accept, MaxMessageSize: 10 << 20, MaxRecipientsPerMessage: 1000,
			MaxMessagesPerConnection: 10, MaxConcurrentConnectionsPerIP: 10}
	},
	parse: func(r *http.Request, f *form[smtpd.FlowPolicy]) smtpd.FlowPolicy {
		p := smtpd.FlowPolicy{Name: readName(r, f, "Name"), Action: smtpd.Action(field(r, "action")),
			RequireTLS: checked(r, "require_tls")}
		if indexOf(flowActions, func(o option) bool { return o.Value == string(p.Action) }) < 0 {
			f.fail("action", "Action: choose one of ACCEPT, RELAY, REJECT, TCPREFUSE or CONTINUE.")
		}
		if s := field(r, "max_size"); s != "" {
			n, err := parseSize(s)
			if err != nil {
				f.fail("max_size", "Max. Message Size: %v", err)
				f.raw("max_size", s)
			}
			p.MaxMessageSize = n
		}
		for _, l := range limits {
			s := field(r, l.field)
			if s == "" {
				continue
			}
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 || n > 1e9 {
				f.fail(l.field, "%s: %q is not a whole number from 0 to 1000000000.", l.label, clip(s))
				f.raw(l.field, s)
				continue
			}
			*l.get(&p) = n
		}
		return p
	},
	renamed: func(c *config.Config, old, new string) {
		for i := range c.SMTP.SenderGroups {
			if g := &c.SMTP.SenderGroups[i]; g.FlowPolicy == old {
				g.FlowPolicy = new
			}
		}
		if c.Screening != nil {
			if v, ok := c.Screening.DMARC.Policies[old]; ok {
				delete(c.Screening.DMARC.Policies, old)
				c.Screening.DMARC.Policies[new] = v
			}
		}
	},
	deleting: func(c *config.Config, name string) error {
		var users []string
		for _, g := range policy(c).SenderGroups {
			if g.FlowPolicy == name {
				users = append(users, g.Name)
			}
		}
		if len(users) > 0 {
			return sightline.Errorf(sightline.Invalid, "Mail flow policy %q is in use by: %s. Choose another mail flow policy for those sender groups first.",
				name, strings.Join(users, ", "))
		}
		if c.Screening != nil {
			delete(c.Screening.DMARC.Policies, name)
		}
		return nil
	},
}

// parseSize reads a message size: bytes, or a number with K, M or G
// (×1024); 0 means unlimited.
func parseSize(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSuffix(strings.ToUpper(strings.TrimSpace(s)), "B"))
	mult := int64(1)
	if t != "" {
		switch t[len(t)-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		}
		if mult > 1 {
			t = strings.TrimSpace(t[:len(t)-1])
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > (1<<40)/mult {
		return 0, fmt.Errorf("%q is not a size: write bytes, or a number with K, M or G, e.g. 10M", clip(s))
	}
	return n * mult, nil
}

// sizeText writes a size as parseSize reads it, in the largest exact unit.
func sizeText(n int64) string {
	switch {
	case n == 0:
		return ""
	case n%(1<<30) == 0:
		return strconv.FormatInt(n>>30, 10) + "G"
	case n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + "M"
	case n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + "K"
	}
	return strconv.FormatInt(n, 10)
}

// limitText shows a limit in a table: zero is unlimited.
func limitText(n int) string {
	if n == 0 {
		return "Unlimited"
	}
	return strconv.Itoa(n)
}

// ratPage is the data of rat.html.
type ratPage struct {
	settingsData
	Entries []smtpd.RATEntry
}

// rat serves Mail Policies > Recipient Access Table.
func (u *UI) rat(w http.ResponseWriter, r *http.Request) {
	c := u.view(w, r)
	if c == nil {
		return
	}
	d := ratPage{Entries: policy(c).RAT}
	d.CanEdit = canEdit(sessionUser(r).Role)
	u.rd.Render(w, r, http.StatusOK, "rat.html", web.PageData{Title: "Recipient Access Table", Data: d})
}

var ratEntries = &entity[smtpd.RATEntry]{
	what: "RAT entry", title: "Recipient Access Table Entry", list: "/mail-policies/rat", base: "/mail-policies/rat/entries",
	page: "ratentry.html", keyField: "pattern", fold: true,
	items: func(c *config.Config) *[]smtpd.RATEntry { return &policy(c).RAT },
	key:   func(e smtpd.RATEntry) string { return e.Pattern },
	blank: func() smtpd.RATEntry { return smtpd.RATEntry{Action: smtpd.Accept} },
	parse: func(r *http.Request, f *form[smtpd.RATEntry]) smtpd.RATEntry {
		e := smtpd.RATEntry{Pattern: field(r, "pattern"), Action: smtpd.Action(field(r, "action"))}
		switch {
		case e.Pattern == "":
			f.fail("pattern", "Recipient Address: enter a domain, .domain, user@domain, user@ or ALL.")
		case len(e.Pattern) > 320 || strings.ContainsAny(e.Pattern, "/\\ "):
			f.fail("pattern", "Recipient Address: %q is not a domain, .domain, user@domain, user@ or ALL.", clip(e.Pattern))
		}
		if !slices.Contains([]smtpd.Action{smtpd.Accept, smtpd.Reject}, e.Action) {
			f.fail("action", "Action: choose ACCEPT or REJECT.")
		}
		return e
	},
}
