package ui

import (
	"fmt"
	"html/template"
	"strings"
	"time"

	"github.com/sightline/sightline/internal/ctim"
	"github.com/sightline/sightline/internal/observable"
)

// funcs are the console's template functions.
func (u *UI) funcs() template.FuncMap {
	return template.FuncMap{
		"cssURL":    func() string { return cssPath + "?v=" + u.cssTag },
		"ago":       func(t time.Time) string { return ago(t, u.cfg.Now()) },
		"isoTime":   func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"dispClass": dispClass,
		"sevClass":  sevClass,
		"typeLabel": typeLabel,
		"statusClass": func(s ctim.IncidentStatus) string {
			switch s.Family() {
			case "New", "Open":
				return "badge-warn"
			case "Closed", "Rejected":
				return "badge-neutral"
			case "Containment Achieved", "Restoration Achieved":
				return "badge-ok"
			}
			return "badge-danger"
		},
		"short": func(s string, n int) string { return shorten(s, n) },
		"join":  strings.Join,
		"partial": func(name string, data any) (template.HTML, error) {
			var b strings.Builder
			if err := u.parts.ExecuteTemplate(&b, name, data); err != nil {
				return "", err
			}
			return template.HTML(b.String()), nil // produced by html/template: escaped
		},
	}
}

// ago writes t relative to now as people read it: "just now",
// "5 minutes ago", "9 hours ago", "3 days ago", "in 2 hours".
func ago(t, now time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := now.Sub(t)
	future := d < 0
	if future {
		d = -d
	}
	var n int
	var unit string
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		n, unit = int(d/time.Minute), "minute"
	case d < 24*time.Hour:
		n, unit = int(d/time.Hour), "hour"
	case d < 30*24*time.Hour:
		n, unit = int(d/(24*time.Hour)), "day"
	case d < 365*24*time.Hour:
		n, unit = int(d/(30*24*time.Hour)), "month"
	default:
		n, unit = int(d/(365*24*time.Hour)), "year"
	}
	if n != 1 {
		unit += "s"
	}
	if future {
		return fmt.Sprintf("in %d %s", n, unit)
	}
	return fmt.Sprintf("%d %s ago", n, unit)
}

// dispClass is the badge class of a disposition name.
func dispClass(name string) string {
	switch name {
	case "Malicious":
		return "disp-malicious"
	case "Suspicious":
		return "disp-suspicious"
	case "Clean":
		return "disp-clean"
	case "Common":
		return "disp-common"
	}
	return "disp-unknown"
}

// sevClass is the class of a severity or confidence level.
func sevClass(level string) string {
	switch level {
	case "Critical", "High":
		return "lvl-high"
	case "Medium":
		return "lvl-medium"
	case "Low":
		return "lvl-low"
	}
	return "lvl-info"
}

// typeLabels name the common observable types for people.
var typeLabels = map[observable.Type]string{
	observable.IP: "IP", observable.IPv6: "IPv6", observable.Domain: "Domain", observable.Hostname: "Hostname",
	observable.URL: "URL", observable.Email: "Email", observable.EmailSubject: "Email Subject",
	observable.EmailMessageID: "Message ID", observable.CiscoMID: "Cisco MID", observable.SHA256: "SHA256",
	observable.SHA1: "SHA1", observable.MD5: "MD5", observable.FileName: "File Name",
}

// typeLabel returns a readable name for an observable type.
func typeLabel(t observable.Type) string {
	if l, ok := typeLabels[t]; ok {
		return l
	}
	return string(t)
}

// shorten cuts s to at most n characters, ending in "…" when cut.
func shorten(s string, n int) string {
	if n < 1 {
		return ""
	}
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
