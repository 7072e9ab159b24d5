package ui

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/ctim"
	"github.com/sightline/sightline/internal/observable"
)

// Snapshots.

type snapshotsPage struct {
	base
	Snapshots []Snapshot
}

func (u *UI) snapshots(w http.ResponseWriter, r *http.Request, me Account) {
	if u.cfg.Snapshots == nil {
		u.unavailable(w, r, "Snapshots")
		return
	}
	list, err := u.cfg.Snapshots.Snapshots(r.Context(), me.Org)
	if err != nil {
		u.rd.Error(w, r, err)
		return
	}
	u.render(w, r, http.StatusOK, "snapshots.html", "Snapshots", snapshotsPage{base: newBase(me), Snapshots: list})
}

// snapshot shows a saved investigation as Investigate showed it.
func (u *UI) snapshot(w http.ResponseWriter, r *http.Request, me Account) {
	if u.cfg.Snapshots == nil {
		u.unavailable(w, r, "Snapshots")
		return
	}
	s, err := u.cfg.Snapshots.Snapshot(r.Context(), me.Org, r.PathValue("id"))
	if err != nil {
		u.rd.Error(w, r, err)
		return
	}
	obs := s.Investigation.Observables
	if obs == nil {
		if q, err := observable.ParseQuery(s.Query); err == nil {
			obs = q.Observables()
		}
	}
	if s.Investigation.Time.IsZero() {
		s.Investigation.Time = s.Created
	}
	d := investigatePage{base: newBase(me), Query: s.Query, Snapshot: &s, Result: buildResult(s.Investigation, obs)}
	u.render(w, r, http.StatusOK, "investigate.html", "Snapshot: "+s.Name, d)
}

func (u *UI) deleteSnapshot(w http.ResponseWriter, r *http.Request, me Account) {
	if u.cfg.Snapshots == nil {
		u.unavailable(w, r, "Snapshots")
		return
	}
	id := r.PathValue("id")
	if err := u.cfg.Snapshots.DeleteSnapshot(r.Context(), me.Org, id); err != nil {
		u.failed(w, r, "/snapshots", err)
		return
	}
	u.log.Info("snapshot deleted", "user", me.Name, "snapshot", id)
	u.done(w, r, "/snapshots", "The snapshot has been deleted.")
}

// Incidents.

type incidentsPage struct {
	base
	Incidents []Incident
}

type incidentPage struct {
	base
	Incident  Incident
	Statuses  []ctim.IncidentStatus
	Sightings []sightRow
}

func (u *UI) incidents(w http.ResponseWriter, r *http.Request, me Account) {
	if u.cfg.Incidents == nil {
		u.unavailable(w, r, "Incidents")
		return
	}
	list, err := u.cfg.Incidents.Incidents(r.Context(), me.Org)
	if err != nil {
		u.rd.Error(w, r, err)
		return
	}
	u.render(w, r, http.StatusOK, "incidents.html", "Incidents", incidentsPage{base: newBase(me), Incidents: list})
}

func (u *UI) incident(w http.ResponseWriter, r *http.Request, me Account) {
	if u.cfg.Incidents == nil {
		u.unavailable(w, r, "Incidents")
		return
	}
	in, err := u.cfg.Incidents.Incident(r.Context(), me.Org, r.PathValue("id"))
	if err != nil {
		u.rd.Error(w, r, err)
		return
	}
	d := incidentPage{base: newBase(me), Incident: in, Statuses: ctim.IncidentStatuses()}
	for i, raw := range in.Sightings {
		var s ctim.Sighting
		if len(raw) > maxDocBytes || json.Unmarshal(raw, &s) != nil {
			continue
		}
		row := newSightRow(sightingSource(s), s, raw)
		row.RowID = "sighting-" + strconv.Itoa(i)
		d.Sightings = append(d.Sightings, row)
	}
	u.render(w, r, http.StatusOK, "incident.html", "Incident: "+in.Title, d)
}

// sightingSource names where a stored sighting came from.
func sightingSource(s ctim.Sighting) string { return firstNonEmpty(s.Source, "Unknown source") }

func (u *UI) setIncidentStatus(w http.ResponseWriter, r *http.Request, me Account) {
	if u.cfg.Incidents == nil {
		u.unavailable(w, r, "Incidents")
		return
	}
	id := r.PathValue("id")
	back := "/incidents/" + url.PathEscape(id)
	status := ctim.IncidentStatus(r.PostFormValue("status"))
	if !status.Valid() {
		u.failed(w, r, back, sightline.Errorf(sightline.Invalid, "Status: choose one of the statuses listed."))
		return
	}
	if err := u.cfg.Incidents.SetIncidentStatus(r.Context(), me.Org, id, status); err != nil {
		u.failed(w, r, back, err)
		return
	}
	u.log.Info("incident status changed", "user", me.Name, "incident", id, "status", status)
	u.done(w, r, back, "The incident's status is now "+string(status)+".")
}

// Intelligence: the organisation's judgements.

// judgementTypes are the observable types offered by the judgement form.
var judgementTypes = []observable.Type{
	observable.Email, observable.Domain, observable.IP, observable.IPv6, observable.URL, observable.SHA256,
	observable.SHA1, observable.MD5, observable.FileName, observable.EmailSubject, observable.Hostname,
}

// judgementDispositions are offered in CTIM's order.
var judgementDispositions = []ctim.Disposition{ctim.Clean, ctim.Malicious, ctim.Suspicious, ctim.Common, ctim.Unknown}

// Limits of the judgement form.
const (
	defaultValidDays = 30
	maxValidDays     = 3650
	maxReasonLen     = ctim.ShortLen
)

type judgementView struct {
	ID          string // short id
	Observable  observable.Observable
	Disposition string
	Reason      string
	Source      string
	Start, End  time.Time
	Expired     bool
}

type intelligencePage struct {
	base
	Judgements   []judgementView
	Types        []observable.Type
	Dispositions []string
	Form         judgementForm
}

// judgementForm is the judgement form's input, kept on error.
type judgementForm struct {
	Type, Value, Disposition, Reason, Days string
}

func (u *UI) intelligence(w http.ResponseWriter, r *http.Request, me Account) {
	u.renderIntelligence(w, r, me, http.StatusOK, judgementForm{Type: string(observable.Email), Disposition: "Malicious",
		Days: strconv.Itoa(defaultValidDays)}, "")
}

func (u *UI) renderIntelligence(w http.ResponseWriter, r *http.Request, me Account, status int, f judgementForm, problem string) {
	if u.cfg.Judgements == nil {
		u.unavailable(w, r, "Intelligence")
		return
	}
	js, err := u.cfg.Judgements.Judgements(r.Context(), me.Org)
	if err != nil {
		u.rd.Error(w, r, err)
		return
	}
	d := intelligencePage{base: newBase(me), Types: judgementTypes, Form: f}
	for _, disp := range judgementDispositions {
		d.Dispositions = append(d.Dispositions, disp.Name())
	}
	now := u.cfg.Now()
	for _, j := range js {
		end := j.ValidTime.EndTime.Time
		d.Judgements = append(d.Judgements, judgementView{ID: shortID(j.ID), Observable: j.Observable,
			Disposition: firstNonEmpty(j.DispositionName, j.Disposition.Name()), Reason: j.Reason, Source: j.Source,
			Start: j.ValidTime.StartTime.Time, End: end, Expired: !end.IsZero() && !now.Before(end)})
	}
	if problem != "" {
		u.rd.Render(w, r, status, "intelligence.html", pageWithError("Intelligence", problem, d))
		return
	}
	u.render(w, r, status, "intelligence.html", "Intelligence", d)
}

// shortID returns the last path segment of a long CTIM id, the id itself
// otherwise.
func shortID(id string) string {
	if i := strings.LastIndexByte(id, '/'); i >= 0 {
		return id[i+1:]
	}
	return id
}

// parseJudgement checks the judgement form and builds the judgement it
// asks for, valid from now. The error is an Invalid *sightline.Error naming
// the field.
func parseJudgement(f judgementForm, now time.Time) (ctim.Judgement, error) {
	t := observable.Type(f.Type)
	if !t.Valid() {
		return ctim.Judgement{}, sightline.Errorf(sightline.Invalid, "Observable Type: choose one of the types listed.")
	}
	o, err := observable.New(t, f.Value)
	if err != nil {
		return ctim.Judgement{}, sightline.Errorf(sightline.Invalid, "Observable Value: %s", sightline.ErrorMessage(err))
	}
	disp, ok := ctim.DispositionByName(f.Disposition)
	if !ok {
		return ctim.Judgement{}, sightline.Errorf(sightline.Invalid, "Disposition: choose Clean, Malicious, Suspicious, Common or Unknown.")
	}
	if n := len([]rune(f.Reason)); n > maxReasonLen {
		return ctim.Judgement{}, sightline.Errorf(sightline.Invalid, "Reason: at most %d characters (%d given).", maxReasonLen, n)
	}
	days, err := strconv.Atoi(f.Days)
	if err != nil || days < 1 || days > maxValidDays {
		return ctim.Judgement{}, sightline.Errorf(sightline.Invalid, "Valid For: a whole number of days from 1 to %d.", maxValidDays)
	}
	severity := map[ctim.Disposition]ctim.Severity{ctim.Malicious: ctim.SeverityHigh, ctim.Suspicious: ctim.SeverityMedium}[disp]
	if severity == "" {
		severity = ctim.SeverityInfo
	}
	start := ctim.NewTime(now)
	return ctim.Judgement{
		Observable: o, Disposition: disp, DispositionName: disp.Name(), Source: "Private Intelligence",
		Priority: 95, Confidence: ctim.ConfidenceHigh, Severity: severity, Reason: f.Reason,
		ValidTime: ctim.ValidTime{StartTime: start, EndTime: ctim.NewTime(now.AddDate(0, 0, days))},
	}, nil
}

func (u *UI) createJudgement(w http.ResponseWriter, r *http.Request, me Account) {
	if u.cfg.Judgements == nil {
		u.unavailable(w, r, "Intelligence")
		return
	}
	f := judgementForm{Type: r.PostFormValue("type"), Value: strings.TrimSpace(r.PostFormValue("value")),
		Disposition: r.PostFormValue("disposition"), Reason: strings.TrimSpace(r.PostFormValue("reason")),
		Days: strings.TrimSpace(r.PostFormValue("days"))}
	j, err := parseJudgement(f, u.cfg.Now())
	if err == nil {
		j, err = u.cfg.Judgements.CreateJudgement(r.Context(), me.Org, j)
	}
	switch sightline.ErrorKind(err) {
	case "":
		u.log.Info("judgement created", "user", me.Name, "observable", j.Observable.String(), "disposition", j.DispositionName)
		u.done(w, r, "/intelligence", "Judgement "+j.DispositionName+" for "+j.Observable.String()+" has been created.")
	case sightline.Invalid:
		u.renderIntelligence(w, r, me, http.StatusBadRequest, f, sightline.ErrorMessage(err))
	default:
		u.rd.Error(w, r, err)
	}
}

func (u *UI) expireJudgement(w http.ResponseWriter, r *http.Request, me Account) {
	if u.cfg.Judgements == nil {
		u.unavailable(w, r, "Intelligence")
		return
	}
	id := r.PathValue("id")
	if err := u.cfg.Judgements.ExpireJudgement(r.Context(), me.Org, id, u.cfg.Now()); err != nil {
		u.failed(w, r, "/intelligence", err)
		return
	}
	u.log.Info("judgement expired", "user", me.Name, "judgement", id)
	u.done(w, r, "/intelligence", "The judgement has expired.")
}

func (u *UI) deleteJudgement(w http.ResponseWriter, r *http.Request, me Account) {
	if u.cfg.Judgements == nil {
		u.unavailable(w, r, "Intelligence")
		return
	}
	id := r.PathValue("id")
	if err := u.cfg.Judgements.DeleteJudgement(r.Context(), me.Org, id); err != nil {
		u.failed(w, r, "/intelligence", err)
		return
	}
	u.log.Info("judgement deleted", "user", me.Name, "judgement", id)
	u.done(w, r, "/intelligence", "The judgement has been deleted.")
}

// prettyJSON indents a JSON document for display.
func prettyJSON(raw []byte) string {
	var b bytes.Buffer
	if json.Indent(&b, raw, "", "  ") != nil {
		return string(raw)
	}
	return b.String()
}
