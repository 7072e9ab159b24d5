package ui

import (
	"html/template"
	"strconv"

	"github.com/sightline/sightline/internal/gateway/pipeline"
	"github.com/sightline/sightline/internal/gateway/smtpd"
)

// limitField is a numeric field of the mail flow policy form.
type limitField struct{ Field, Label string }

// settingsFuncs are the template functions of the configuration pages.
var settingsFuncs = template.FuncMap{
	"roleLabel": roleLabel,
	"actionClass": func(action string) string {
		switch smtpd.Action(action) {
		case smtpd.Accept, smtpd.Relay:
			return "badge-ok"
		case smtpd.Reject, smtpd.TCPRefuse:
			return "badge-danger"
		}
		return "badge-neutral"
	},
	"sizeText":  sizeText,
	"limitText": limitText,
	"limits": func() []limitField {
		out := make([]limitField, len(limits))
		for i, l := range limits {
			out[i] = limitField{l.field, l.label}
		}
		return out
	},
	"limitValue": func(p smtpd.FlowPolicy, field string) string {
		for _, l := range limits {
			if l.field == field {
				if n := *l.get(&p); n != 0 {
					return strconv.Itoa(n)
				}
			}
		}
		return ""
	},
	"condTypes":   func() []option { return condTypes },
	"textOps":     func() []option { return textOps },
	"actionTypes": func() []option { return actionTypes },
	"directions":  func() []option { return directions },
	"padConds":    padConds,
	"padActions":  padActions,
	"filterJSON":  filterJSON,
	"condText":    condText,
	"actionText":  actionText,
	"direction":   func(d string) string { return label(directions, dirValue(d)) },
	"dirValue":    dirValue,
	"dispoTypes":  func() []option { return dispoTypes },
	"listKinds":   func() []option { return listKinds },
	"listModes":   func() []option { return listModes },
	"listKind":    func(k string) string { return label(listKinds, k) },
	"disposition": func(d pipeline.Disposition) string {
		switch d.Type {
		case pipeline.ActDrop:
			return "Drop"
		case pipeline.ActBounce:
			if d.Text == "" {
				return "Bounce"
			}
			return "Bounce " + strconv.Quote(d.Text)
		}
		return "Quarantine (" + cmpOr(d.Quarantine, pipeline.PolicyQuarantine) + ")"
	},
	"tlsModes": func() []option { return tlsModes },
	"tlsMode": func(m string) string {
		switch m {
		case "", "opportunistic":
			return "Opportunistic"
		case "required":
			return "Required"
		case "none":
			return "None"
		}
		return m
	},
}

// dirValue returns a content filter's direction, "inbound" when empty.
func dirValue(d string) string { return cmpOr(d, "inbound") }
