package ui

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/sightline/sightline/internal/gateway/config"
	"github.com/sightline/sightline/internal/gateway/pipeline"
	cf "github.com/sightline/sightline/internal/gateway/pipeline/contentfilter"
	"github.com/sightline/sightline/internal/web"
)

// screeningRules returns the screening rules of c, creating empty ones so
// that an edit can fill them.
func screeningRules(c *config.Config) *pipeline.Rules {
	if c.Screening == nil {
		c.Screening = &pipeline.Rules{}
	}
	return c.Screening
}

// Choices of the content filter form.
var (
	condTypes = []option{
		{cf.Subject, "Subject"}, {cf.Header, "Header"}, {cf.Body, "Message Body"},
		{cf.AttachmentName, "Attachment Name"}, {cf.AttachmentType, "Attachment Type"}, {cf.AttachmentSHA256, "Attachment SHA-256"},
		{cf.EnvelopeSender, "Envelope Sender"}, {cf.EnvelopeRecipient, "Envelope Recipient"},
		{cf.SenderGroup, "Sender Group"}, {cf.SenderIP, "Sender IP"}, {cf.URLDomain, "URL Domain"},
		{cf.SPF, "SPF Result"}, {cf.DKIM, "DKIM Result"}, {cf.DMARC, "DMARC Result"},
		{cf.SizeGreater, "Message Size Greater Than"},
	}
	textOps = []option{
		{cf.Contains, "contains"}, {cf.Is, "is"}, {cf.BeginsWith, "begins with"}, {cf.EndsWith, "ends with"},
		{cf.Matches, "matches regex"}, {cf.Glob, "matches pattern"}, {cf.Exists, "exists (header)"},
	}
	actionTypes = []option{
		{cf.Quarantine, "Quarantine"}, {cf.AddHeader, "Add Header"}, {cf.TagSubject, "Tag Subject"},
		{cf.Deliver, "Deliver (skip later filters)"}, {cf.Bounce, "Bounce"}, {cf.Drop, "Drop"},
	}
	directions = []option{{"inbound", "Incoming"}, {"outbound", "Outgoing"}, {"both", "Both"}}
)

// textTypes are the condition types that take a text operator.
var textTypes = []string{cf.Header, cf.Subject, cf.Body, cf.AttachmentName, cf.SenderGroup, cf.EnvelopeSender, cf.EnvelopeRecipient}

func label(opts []option, v string) string {
	if i := indexOf(opts, func(o option) bool { return o.Value == v }); i >= 0 {
		return opts[i].Label
	}
	return v
}

// condText summarises a condition: `NOT Subject contains "test"`.
func condText(c cf.Condition) string {
	var b strings.Builder
	if c.Negate {
		b.WriteString("NOT ")
	}
	b.WriteString(label(condTypes, c.Type))
	if c.Header != "" {
		b.WriteString(" " + c.Header)
	}
	switch {
	case c.Op == cf.Exists:
		b.WriteString(" exists")
		return b.String()
	case c.Op != "":
		b.WriteString(" " + label(textOps, c.Op))
	case slices.Contains(textTypes, c.Type):
		b.WriteString(" contains")
	default:
		b.WriteString(" is")
	}
	b.WriteString(" " + strconv.Quote(c.Value))
	return b.String()
}

// actionText summarises an action: `Quarantine (Policy)`.
func actionText(a cf.Action) string {
	switch a.Type {
	case cf.Quarantine:
		return "Quarantine (" + cmpOr(a.Quarantine, cf.DefaultQuarantine) + ")"
	case cf.Bounce:
		return "Bounce " + strconv.Quote(cmpOr(a.Text, cf.DefaultBounceText))
	case cf.AddHeader:
		return "Add Header " + a.Header + ": " + a.Value
	case cf.TagSubject:
		return "Tag Subject " + strconv.Quote(a.Prefix)
	}
	return label(actionTypes, a.Type)
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// actionRow is an action as the form's row shows it: one name field
// (quarantine or header) and one value field (bounce text, header value or
// subject tag).
type actionRow struct{ Type, Name, Value string }

func toRow(a cf.Action) actionRow {
	switch a.Type {
	case cf.Quarantine:
		return actionRow{a.Type, a.Quarantine, ""}
	case cf.Bounce:
		return actionRow{a.Type, "", a.Text}
	case cf.AddHeader:
		return actionRow{a.Type, a.Header, a.Value}
	case cf.TagSubject:
		return actionRow{a.Type, "", a.Prefix}
	}
	return actionRow{Type: a.Type}
}

func fromRow(r actionRow) cf.Action {
	a := cf.Action{Type: r.Type}
	switch r.Type {
	case cf.Quarantine:
		a.Quarantine = r.Name
	case cf.Bounce:
		a.Text = r.Value
	case cf.AddHeader:
		a.Header, a.Value = r.Name, r.Value
	case cf.TagSubject:
		a.Prefix = r.Value
	}
	return a
}

// blankRows is how many empty rows the form adds after the conditions and
// after the actions; maxRows bounds the rows read.
const (
	blankRows = 2
	maxRows   = 50
	maxJSON   = 64 << 10
)

func padConds(cs []cf.Condition) []cf.Condition {
	return append(slices.Clip(cs), make([]cf.Condition, blankRows)...)
}

func padActions(as []cf.Action) []actionRow {
	rows := make([]actionRow, 0, len(as)+blankRows)
	for _, a := range as {
		rows = append(rows, toRow(a))
	}
	return append(rows, make([]actionRow, blankRows)...)
}

func filterJSON(f cf.Filter) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	enc.Encode(f)
	return b.String()
}

var contentFilters = &entity[cf.Filter]{
	what: "content filter", title: "Content Filter", list: "/mail-policies/content-filters", base: "/mail-policies/content-filters",
	page: "filter.html", keyField: "name",
	items: func(c *config.Config) *[]cf.Filter { return &screeningRules(c).ContentFilters },
	key:   func(f cf.Filter) string { return f.Name },
	blank: func() cf.Filter {
		return cf.Filter{Enabled: true, Direction: "inbound", Match: "all", Actions: []cf.Action{{Type: cf.Quarantine}}}
	},
	parse: parseFilter,
}

// parseFilter reads the content filter form: the structured rows, or with
// mode=json the JSON text.
func parseFilter(r *http.Request, f *form[cf.Filter]) cf.Filter {
	if r.PostFormValue("mode") == "json" {
		text := r.PostFormValue("json")
		var flt cf.Filter
		if len(text) > maxJSON {
			f.fail("json", "JSON: at most %d bytes.", maxJSON)
		} else {
			dec := json.NewDecoder(strings.NewReader(text))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&flt); err != nil {
				f.fail("json", "JSON: %v", err)
			}
		}
		if len(f.Errors) > 0 {
			f.raw("json", text)
		}
		return flt
	}
	flt := cf.Filter{
		Name:      readName(r, f, "Name"),
		Enabled:   checked(r, "enabled"),
		Direction: field(r, "direction"),
		Match:     field(r, "match"),
	}
	rows := func(name string) int {
		n, _ := strconv.Atoi(r.PostFormValue(name))
		return min(max(n, 0), maxRows)
	}
	for i := range rows("conds") {
		at := func(k string) string { return r.PostFormValue(fmt.Sprintf("cond_%s_%d", k, i)) }
		c := cf.Condition{Type: at("type"), Op: at("op"), Value: at("value"), Negate: at("negate") != ""}
		if c.Type == "" {
			continue
		}
		if c.Type == cf.Header {
			c.Header = strings.TrimSpace(at("header"))
		}
		if !slices.Contains(textTypes, c.Type) {
			c.Op = "" // the operator select is on every row; only text types use it
		}
		if c.Op == cf.Exists {
			c.Value = ""
		}
		if c.Op == cf.Contains {
			c.Op = "" // the default, as the configuration writes it
		}
		flt.Conditions = append(flt.Conditions, c)
	}
	for i := range rows("acts") {
		at := func(k string) string { return r.PostFormValue(fmt.Sprintf("act_%s_%d", k, i)) }
		if at("type") == "" {
			continue
		}
		flt.Actions = append(flt.Actions, fromRow(actionRow{at("type"), strings.TrimSpace(at("name")), at("value")}))
	}
	if len(flt.Actions) == 0 {
		f.fail("acts", "Actions: choose at least one action.")
	}
	return flt
}

// filtersPage is the data of filters.html.
type filtersPage struct {
	settingsData
	Filters []cf.Filter
}

// filters serves Mail Policies > Content Filters.
func (u *UI) filters(w http.ResponseWriter, r *http.Request) {
	c := u.view(w, r)
	if c == nil {
		return
	}
	d := filtersPage{Filters: screeningRules(c).ContentFilters}
	d.CanEdit = canEdit(sessionUser(r).Role)
	u.rd.Render(w, r, http.StatusOK, "filters.html", web.PageData{Title: "Content Filters", Data: d})
}

// enableFilter stages turning a content filter on (enabled=1) or off.
func (u *UI) enableFilter(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	var d settingsData
	on := r.PostFormValue("enabled") == "1"
	if !u.stage(w, r, &d, contentFilters.list, func(c *config.Config) error {
		i := contentFilters.find(c, key)
		if i < 0 {
			return notFound("content filter", key)
		}
		c.Screening.ContentFilters[i].Enabled = on
		return nil
	}) {
		u.failBack(w, r, contentFilters.list, d)
	}
}
