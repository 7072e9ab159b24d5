package esa

import (
	"context"
	"net/url"
	"strings"
	"time"

	"github.com/sightline/sightline/internal/console/module"
	"github.com/sightline/sightline/internal/ctim"
	"github.com/sightline/sightline/internal/observable"
)

// referField is how the gateway's Message Tracking form searches one
// observable type: its field (with "_op" for text fields) and what it says.
type referField struct {
	field string
	text  bool // a text field: operator "is"
	title string
	what  string
}

// referFields lists the observables the tracking form can search; an email
// address gives two references, as sender and as recipient.
var referFields = map[observable.Type][]referField{
	observable.Email: {
		{field: "sender", text: true, title: "Search messages from this address", what: "by envelope sender"},
		{field: "recipient", text: true, title: "Search messages to this address", what: "by envelope recipient"},
	},
	observable.EmailSubject:   {{field: "subject", text: true, title: "Search messages with this subject", what: "by subject"}},
	observable.IP:             {{field: "sender_ip", title: "Search messages from this IP", what: "by sender IP"}},
	observable.IPv6:           {{field: "sender_ip", title: "Search messages from this IP", what: "by sender IP"}},
	observable.EmailMessageID: {{field: "message_id", title: "Search messages with this Message-ID", what: "by Message-ID header"}},
	observable.SHA256:         {{field: "sha256", title: "Search messages with this attachment", what: "by attachment SHA-256"}},
	observable.FileName:       {{field: "attachment", text: true, title: "Search messages with this attachment name", what: "by attachment name"}},
}

// Refer returns, per observable the gateway's Message Tracking can search,
// a link to that search (a cisco_mid links to the message's details page),
// over the module's timeframe. Without Options.GatewayURL the links are
// paths on the gateway's web interface, and the description says so.
func (m *esaModule) Refer(ctx context.Context, obs []ctim.Observable) ([]module.Reference, []module.Error, error) {
	now := m.opts.Now().UTC()
	// The form reads dates in the gateway's time zone, unknown here: a day
	// more on each side covers any zone.
	from := now.AddDate(0, 0, -m.settings.TimeframeDays-1)
	to := now.AddDate(0, 0, 1)
	where := "Open Message Tracking on the gateway"
	if m.opts.GatewayURL == "" {
		where = "On the gateway's web interface, open this path of Message Tracking"
	}
	refs := []module.Reference{}
	seen := map[string]bool{}
	for _, o := range obs {
		if seen[o.Key()] {
			continue
		}
		seen[o.Key()] = true
		if o.Type == observable.CiscoMID {
			refs = append(refs, module.Reference{
				ID:          "ref-esa-details-cisco_mid-" + o.Value,
				Title:       "Open this message in Message Tracking",
				Description: where + " at the details of MID " + o.Value,
				URL:         strings.TrimSuffix(m.opts.GatewayURL, "/") + "/monitor/tracking/" + url.PathEscape(o.Value),
				Categories:  []string{m.opts.Source, "Message Tracking"},
			})
			continue
		}
		for _, f := range referFields[o.Type] {
			q := url.Values{"search": {"1"}, "range": {"custom"},
				"start_date": {from.Format(time.DateOnly)}, "start_time": {"00:00"},
				"end_date": {to.Format(time.DateOnly)}, "end_time": {"23:59"},
				f.field: {o.Value}}
			if f.text {
				q.Set(f.field+"_op", "is")
			}
			refs = append(refs, module.Reference{
				ID:          "ref-esa-search-" + f.field + "-" + o.Value,
				Title:       f.title,
				Description: where + ", searching " + f.what + " " + o.String(),
				URL:         trackingLink(m.opts.GatewayURL, q),
				Categories:  []string{m.opts.Source, "Search"},
			})
		}
	}
	return refs, nil, nil
}
