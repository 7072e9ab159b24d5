package esa

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sightline/sightline/internal/ctim"
	"github.com/sightline/sightline/internal/observable"
	"github.com/sightline/sightline/internal/tracking"
)

// Relations of a message sighting (ctim.md §5).
const (
	relSentBy       = "Sent_By"
	relSentTo       = "Sent_To"
	relReceivedFrom = "Received_From"
	relContains     = "Contains"
)

// Severity of a message from its tracking status (ctim.md §14):
//
//	Delivered, Bounced (hard, soft), Aborted, In Progress   Low
//	dropped or quarantined by Anti-Spam/Graymail, Content
//	Filter, Message Filter or DLP                           Medium
//	dropped or quarantined by Anti-Virus, AMP or Outbreak
//	Filters                                                 High
//	quarantined by Multiple Engines                         High when the verdict chart shows
//	                                                        AV, AMP or OF positive, else Medium
//	anything else                                           Unknown
var (
	statusSeverity = map[string]ctim.Severity{
		"delivered": ctim.SeverityLow, "bounced": ctim.SeverityLow, "hard bounced": ctim.SeverityLow,
		"soft bounced": ctim.SeverityLow, "aborted": ctim.SeverityLow, "in progress": ctim.SeverityLow,
	}
	engineSeverity = map[string]ctim.Severity{
		"anti-spam": ctim.SeverityMedium, "anti-spam/graymail": ctim.SeverityMedium, "graymail": ctim.SeverityMedium,
		"content filter": ctim.SeverityMedium, "message filter": ctim.SeverityMedium, "dlp": ctim.SeverityMedium,
		"anti-virus": ctim.SeverityHigh, "amp": ctim.SeverityHigh, "outbreak filters": ctim.SeverityHigh,
	}
)

// verdict chart positions (gateway-api.md §5) of the engines whose
// positive verdict makes a message High: AV, AMP, OF.
var highChartDigits = []int{1, 2, 5}

// severity returns the severity of a message with status and verdict chart.
func severity(status, chart string) ctim.Severity {
	s := strings.ToLower(status)
	if sev, ok := statusSeverity[s]; ok {
		return sev
	}
	action, engine, ok := strings.Cut(s, " by ")
	if !ok || (action != "dropped" && action != "quarantined") {
		return ctim.SeverityUnknown
	}
	if engine == "multiple engines" {
		for _, i := range highChartDigits {
			if i < len(chart) && chart[i] == '2' {
				return ctim.SeverityHigh
			}
		}
		return ctim.SeverityMedium
	}
	if sev, ok := engineSeverity[engine]; ok {
		return sev
	}
	return ctim.SeverityMedium
}

// resolution is allowed when delivered, blocked when dropped or
// quarantined, otherwise detected (ctim.md §14).
func resolution(status string) ctim.Resolution {
	s := strings.ToLower(status)
	switch {
	case s == "delivered":
		return ctim.ResolutionAllowed
	case strings.HasPrefix(s, "dropped "), strings.HasPrefix(s, "quarantined "):
		return ctim.ResolutionBlocked
	}
	return ctim.ResolutionDetected
}

// sighting builds the sighting of one MID (ctim.md §14).
func (m *esaModule) sighting(msg *message) *ctim.Sighting {
	row := msg.row
	key := strconv.FormatInt(msg.mid, 10)
	status := row.MessageStatus[key]
	if status == "" {
		status = tracking.StatusInProgress
	}
	direction := "Incoming"
	if strings.EqualFold(row.Direction, "outgoing") {
		direction = "Outgoing"
	}
	title := fmt.Sprintf("%s message (%s)", direction, status)

	start := injected(msg)
	end := start
	if d := msg.details; d != nil {
		for _, ev := range d.Summary {
			if t, err := time.Parse(tracking.DateLayout, ev.Timestamp); err == nil && ev.LastEvent && t.After(start) {
				end = t
			}
		}
	}
	observed := ctim.ObservedTime{StartTime: ctim.NewTime(start), EndTime: ctim.NewTime(end)}

	rcpts, ok := row.RecipientMap[key]
	if !ok {
		rcpts = row.Recipient
	}
	s := &ctim.Sighting{
		Base:         ctim.NewBase(ctim.TypeSighting),
		Describable:  ctim.Describable{Title: title, Description: title, ShortDescription: summary(msg.mid, row.Sender, rcpts, row.Subject)},
		Sourcable:    ctim.Sourcable{Source: m.opts.Source},
		Count:        1,
		Confidence:   ctim.ConfidenceHigh,
		Severity:     severity(status, row.VerdictChart[key]),
		Resolution:   resolution(status),
		Internal:     true,
		Sensor:       ctim.SensorEmailService,
		ObservedTime: observed,
		Observables:  msg.matched,
	}
	s.ExternalIDs = []string{fmt.Sprintf("sightline-mid:%s:%d", row.SerialNumber, msg.mid)}
	if m.opts.GatewayURL != "" {
		s.SourceURI = strings.TrimSuffix(m.opts.GatewayURL, "/") + "/monitor/tracking/" + key
	}
	if msg.details != nil {
		if host, ok := obsOf(observable.Hostname, gatewayHost(msg.details.HostName)); ok {
			s.SensorCoordinates = &ctim.SensorCoordinates{Type: ctim.SensorEmailService, Observables: []ctim.Observable{host}}
		}
	}

	sender, hasSender := obsOf(observable.Email, row.Sender)
	var recipients []ctim.Observable
	for _, r := range rcpts {
		if o, ok := obsOf(observable.Email, r); ok {
			recipients = append(recipients, o)
		}
	}
	// The target is the internal party: the recipients of incoming mail,
	// the sender of outgoing mail.
	target := recipients
	if direction == "Outgoing" {
		target = nil
		if hasSender {
			target = []ctim.Observable{sender}
		}
	}
	if len(target) > 0 {
		s.Targets = []ctim.IdentitySpecification{{Type: "email", Observables: target,
			ObservedTime: ctim.ObservedTime{StartTime: observed.EndTime, EndTime: observed.EndTime}}}
	}

	self := ctim.Observable{Type: observable.CiscoMID, Value: key}
	contained := contents(msg)
	// Sent_By, Sent_To each, Received_From, the subject, the Message-ID and
	// the contents: allocated once.
	s.Relations = make([]ctim.ObservedRelation, 0, 4+len(recipients)+len(contained))
	rel := func(relation string, related ctim.Observable) {
		s.Relations = append(s.Relations, ctim.ObservedRelation{Origin: m.opts.Source, Relation: relation, Source: self, Related: related})
	}
	if hasSender {
		rel(relSentBy, sender)
	}
	for _, r := range recipients {
		rel(relSentTo, r)
	}
	if ip, ok := clientIP(row.SenderIP); ok {
		rel(relReceivedFrom, ip)
	}
	if o, ok := obsOf(observable.EmailSubject, row.Subject); ok {
		rel(relContains, o)
	}
	if o, ok := obsOf(observable.EmailMessageID, row.MessageID[key]); ok {
		rel(relContains, o)
	}
	for _, o := range contained {
		rel(relContains, o)
	}
	return s
}

// contents are the attachments (name, then SHA-256) and URLs of msg, from
// the native search when known, else the attachment names of its details.
func contents(msg *message) []ctim.Observable {
	var os []ctim.Observable
	add := func(t observable.Type, v string) {
		if o, ok := obsOf(t, v); ok {
			os = append(os, o)
		}
	}
	switch {
	case msg.native != nil:
		for _, a := range msg.native.Attachments {
			add(observable.FileName, a.Name)
			add(observable.SHA256, a.SHA256)
		}
		for _, u := range msg.native.URLs {
			add(observable.URL, u)
		}
	case msg.details != nil:
		for _, name := range msg.details.Attachments {
			add(observable.FileName, name)
		}
	}
	return os
}

// summary is the short description: "MID 315 from alice@sender.example to
// bob@corp.example: Invoice 4471".
func summary(mid int64, sender string, rcpts []string, subject string) string {
	if sender == "" {
		sender = "<>"
	}
	s := fmt.Sprintf("MID %d from %s to %s", mid, sender, strings.Join(rcpts, ", "))
	if subject != "" {
		s += ": " + subject
	}
	if r := []rune(s); len(r) > ctim.MedLen {
		s = string(r[:ctim.MedLen-1]) + "…"
	}
	return s
}

// gatewayHost returns the host name in a details hostName,
// "gw1.example.com (SN:…)"; "" for "(Name unresolved,  SN:…)".
func gatewayHost(s string) string {
	host, _, _ := strings.Cut(s, " (")
	if strings.HasPrefix(host, "(") {
		return ""
	}
	return host
}

// clientIP returns the connecting address as an ip or ipv6 observable.
func clientIP(s string) (ctim.Observable, bool) {
	if o, ok := obsOf(observable.IP, s); ok {
		return o, true
	}
	return obsOf(observable.IPv6, s)
}

// obsOf returns v as an observable of type t in normal form; false when v is
// empty or not valid for t.
func obsOf(t observable.Type, v string) (ctim.Observable, bool) {
	if v == "" {
		return ctim.Observable{}, false
	}
	o, err := observable.New(t, v)
	return o, err == nil
}

// trackingLink returns the gateway's Message Tracking page searching q over
// the days before now, absolute under base or a path when base is "".
func trackingLink(base string, q url.Values) string {
	return strings.TrimSuffix(base, "/") + "/monitor/tracking?" + q.Encode()
}
