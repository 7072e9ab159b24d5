package ui

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/gateway/config"
	"github.com/sightline/sightline/internal/gateway/pipeline"
	"github.com/sightline/sightline/internal/gateway/smtpd"
	"github.com/sightline/sightline/internal/web"
)

// AVPinger checks that a ClamAV daemon answers at an address ("unix:/path"
// or "tcp:host:port") for the Anti-Virus page's Test Connection; its error
// message is shown.
type AVPinger interface {
	PingAV(ctx context.Context, addr string) error
}

// avPage is the data of antivirus.html.
type avPage struct {
	settingsData
	Clamd   string
	Rules   pipeline.AntiVirusRules
	CanTest bool
	Test    *web.Flash // the result of Test Connection
}

func (u *UI) renderAV(w http.ResponseWriter, r *http.Request, status int, d avPage) {
	d.CanEdit = canEdit(sessionUser(r).Role)
	d.CanTest = d.CanEdit && u.cfg.AV != nil
	u.rd.Render(w, r, status, "antivirus.html", web.PageData{Title: "Anti-Virus", Data: d})
}

// antiVirus serves Security Services > Anti-Virus.
func (u *UI) antiVirus(w http.ResponseWriter, r *http.Request) {
	c := u.view(w, r)
	if c == nil {
		return
	}
	u.renderAV(w, r, http.StatusOK, avPage{Clamd: c.AntiVirus.Clamd, Rules: screeningRules(c).AntiVirus})
}

func parseAV(r *http.Request) avPage {
	d := avPage{Clamd: field(r, "clamd"), Rules: pipeline.AntiVirusRules{
		Enabled: checked(r, "enabled"), OnVirus: field(r, "on_virus"), OnError: field(r, "on_error"), Quarantine: field(r, "quarantine"),
	}}
	if len(d.Clamd) > 1024 {
		d.fail("clamd", "ClamAV Daemon: at most 1024 characters.")
	}
	if d.Rules.Enabled && d.Clamd == "" {
		d.fail("clamd", "ClamAV Daemon: enter the address of clamd (unix:/path or tcp:host:port) to enable scanning.")
	}
	return d
}

// saveAV stages the anti-virus settings.
func (u *UI) saveAV(w http.ResponseWriter, r *http.Request) {
	if !u.parseForm(w, r) {
		return
	}
	d := parseAV(r)
	if len(d.Errors) == 0 && u.stage(w, r, &d.settingsData, "/security/anti-virus", func(c *config.Config) error {
		c.AntiVirus.Clamd = d.Clamd
		screeningRules(c).AntiVirus = d.Rules
		return nil
	}) {
		return
	}
	u.renderAV(w, r, http.StatusBadRequest, d)
}

// testAV tries the clamd address of the form, and shows the form again as
// submitted with the result; it stages nothing.
func (u *UI) testAV(w http.ResponseWriter, r *http.Request) {
	if u.cfg.AV == nil {
		u.unavailable(w, r, "Testing the anti-virus connection")
		return
	}
	if !u.parseForm(w, r) {
		return
	}
	d := parseAV(r)
	d.Errors, d.Invalid = nil, nil
	if d.Clamd == "" {
		d.fail("clamd", "ClamAV Daemon: enter an address to test.")
		u.renderAV(w, r, http.StatusBadRequest, d)
		return
	}
	if err := u.cfg.AV.PingAV(r.Context(), d.Clamd); err != nil {
		d.Test = &web.Flash{Kind: web.FlashError, Message: fmt.Sprintf("clamd at %s did not answer: %s", d.Clamd, sightline.ErrorMessage(err))}
	} else {
		d.Test = &web.Flash{Kind: web.FlashSuccess, Message: fmt.Sprintf("clamd at %s answered.", d.Clamd)}
	}
	u.renderAV(w, r, http.StatusOK, d)
}

// dmarcRow is one mail flow policy's DMARC enforcement: "" follows the
// default, "on" or "off" overrides it.
type dmarcRow struct {
	Policy  string
	Setting string
	Unknown bool // the name is no mail flow policy
}

// mailAuthPage is the data of mailauth.html.
type mailAuthPage struct {
	settingsData
	DMARC pipeline.DMARCRules
	Rows  []dmarcRow
}

// mailAuth serves Security Services > SPF/DKIM/DMARC.
func (u *UI) mailAuth(w http.ResponseWriter, r *http.Request) {
	c := u.view(w, r)
	if c == nil {
		return
	}
	d := mailAuthPage{DMARC: screeningRules(c).DMARC}
	d.CanEdit = canEdit(sessionUser(r).Role)
	d.Rows = dmarcRows(policy(c).FlowPolicies, d.DMARC.Policies)
	u.rd.Render(w, r, http.StatusOK, "mailauth.html", web.PageData{Title: "SPF/DKIM/DMARC", Data: d})
}

// dmarcRows lists every mail flow policy, then the overrides that name no
// mail flow policy (so that they can be seen and removed).
func dmarcRows(flows []smtpd.FlowPolicy, overrides map[string]bool) []dmarcRow {
	var rows []dmarcRow
	setting := func(name string) string {
		v, ok := overrides[name]
		switch {
		case !ok:
			return ""
		case v:
			return "on"
		}
		return "off"
	}
	known := map[string]bool{}
	for _, f := range flows {
		known[f.Name] = true
		rows = append(rows, dmarcRow{Policy: f.Name, Setting: setting(f.Name)})
	}
	var stale []string
	for name := range overrides {
		if !known[name] {
			stale = append(stale, name)
		}
	}
	slices.Sort(stale)
	for _, name := range stale {
		rows = append(rows, dmarcRow{Policy: name, Setting: setting(name), Unknown: true})
	}
	return rows
}

// saveMailAuth stages the DMARC settings.
func (u *UI) saveMailAuth(w http.ResponseWriter, r *http.Request) {
	if !u.parseForm(w, r) {
		return
	}
	d := mailAuthPage{DMARC: pipeline.DMARCRules{
		Enforce:    checked(r, "enforce"),
		Quarantine: field(r, "quarantine"),
		Reject:     pipeline.Disposition{Type: field(r, "reject_type"), Quarantine: field(r, "reject_quarantine"), Text: field(r, "reject_text")},
	}}
	n, _ := strconv.Atoi(r.PostFormValue("rows"))
	for i := range min(max(n, 0), maxRows*20) {
		name := r.PostFormValue(fmt.Sprintf("policy_%d", i))
		set := r.PostFormValue(fmt.Sprintf("dmarc_%d", i))
		if name == "" || (set != "on" && set != "off") {
			continue
		}
		if d.DMARC.Policies == nil {
			d.DMARC.Policies = map[string]bool{}
		}
		d.DMARC.Policies[name] = set == "on"
	}
	if d.DMARC.Reject.Type != pipeline.ActQuarantine {
		d.DMARC.Reject.Quarantine = ""
	}
	if d.DMARC.Reject.Type != pipeline.ActBounce {
		d.DMARC.Reject.Text = ""
	}
	if u.stage(w, r, &d.settingsData, "/security/mail-auth", func(c *config.Config) error {
		screeningRules(c).DMARC = d.DMARC
		return nil
	}) {
		return
	}
	c := u.view(w, r)
	if c == nil {
		return
	}
	d.CanEdit = true
	d.Rows = dmarcRows(policy(c).FlowPolicies, d.DMARC.Policies)
	u.rd.Render(w, r, http.StatusBadRequest, "mailauth.html", web.PageData{Title: "SPF/DKIM/DMARC", Data: d})
}

// Choices of the reputation list form.
var (
	listKinds = []option{
		{pipeline.ListSenderIP, "Sender IP"}, {pipeline.ListSenderDomain, "Sender Domain"}, {pipeline.ListSender, "Sender Address"},
		{pipeline.ListURLDomain, "URL Domain"}, {pipeline.ListSHA256, "Attachment SHA-256"},
	}
	listModes  = []option{{pipeline.Blocklist, "Blocklist"}, {pipeline.Safelist, "Safelist"}}
	dispoTypes = []option{{pipeline.ActQuarantine, "Quarantine"}, {pipeline.ActDrop, "Drop"}, {pipeline.ActBounce, "Bounce"}}
)

// listsPage is the data of lists.html.
type listsPage struct {
	settingsData
	Lists []pipeline.List
}

// lists serves Security Services > Reputation Lists.
func (u *UI) lists(w http.ResponseWriter, r *http.Request) {
	c := u.view(w, r)
	if c == nil {
		return
	}
	d := listsPage{Lists: screeningRules(c).Lists}
	d.CanEdit = canEdit(sessionUser(r).Role)
	u.rd.Render(w, r, http.StatusOK, "lists.html", web.PageData{Title: "Reputation Lists", Data: d})
}

var reputationLists = &entity[pipeline.List]{
	what: "reputation list", title: "Reputation List", list: "/security/reputation", base: "/security/reputation",
	page: "list.html", keyField: "name",
	items: func(c *config.Config) *[]pipeline.List { return &screeningRules(c).Lists },
	key:   func(l pipeline.List) string { return l.Name },
	blank: func() pipeline.List {
		return pipeline.List{Kind: pipeline.ListSenderDomain, Mode: pipeline.Blocklist, Action: pipeline.Disposition{Type: pipeline.ActQuarantine}}
	},
	parse: func(r *http.Request, f *form[pipeline.List]) pipeline.List {
		l := pipeline.List{Name: readName(r, f, "Name"), Kind: field(r, "kind"), Mode: field(r, "mode"),
			Entries: readLines(r, f, "entries", "Entries")}
		if l.Mode == pipeline.Blocklist {
			l.Action = pipeline.Disposition{Type: field(r, "action_type")}
			switch l.Action.Type {
			case pipeline.ActQuarantine:
				l.Action.Quarantine = field(r, "action_quarantine")
			case pipeline.ActBounce:
				l.Action.Text = field(r, "action_text")
			}
		}
		return l
	},
}
