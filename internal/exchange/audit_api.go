package exchange

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/exchange/exchangeclient"
	"github.com/sightline/sightline/internal/exchange/registry"
)

// Page sizes of GET /api/v1/audit.
const (
	auditDefaultLimit = 100
	auditMaxLimit     = 1000
)

// auditActions are the actions the audit filter accepts.
var auditActions = []string{registry.ActionTokenCreate, registry.ActionTokenRevoke, registry.ActionRegister,
	registry.ActionDeregister, registry.ActionDeviceEdit, registry.ActionDeviceDelete, registry.ActionCloudServices,
	registry.ActionAPIKeyCreate, registry.ActionAPIKeyRevoke, registry.ActionOrganisationAdd}

// auditQuery is a parsed GET /api/v1/audit query.
type auditQuery struct {
	since                          time.Time
	action, outcome, device, token string
	limit                          int
	before                         int64 // 0: from the newest
}

// maxAuditParam bounds a device or token filter.
const maxAuditParam = 256

// auditParams are the query parameters of GET /api/v1/audit, as errors list them.
const auditParams = "since, action (or event), outcome, device, token, limit and before"

// parseAuditQuery reads and checks the query of GET /api/v1/audit; an
// error is Invalid and names the parameter.
func parseAuditQuery(v url.Values) (auditQuery, error) {
	q := auditQuery{limit: auditDefaultLimit}
	for name, vals := range v {
		switch name {
		case "since", "action", "event", "outcome", "device", "token", "limit", "before":
		default:
			return q, sightline.Errorf(sightline.Invalid, "unknown parameter %q: the audit log takes %s", name, auditParams)
		}
		if len(vals) > 1 {
			return q, sightline.Errorf(sightline.Invalid, "%s: give it once", name)
		}
	}
	if s := v.Get("since"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return q, sightline.Errorf(sightline.Invalid, "since %q: want an RFC 3339 time such as 2026-01-10T08:00:00Z", s)
		}
		q.since = t
	}
	q.action = v.Get("action")
	if ev := v.Get("event"); ev != "" {
		if q.action != "" && q.action != ev {
			return q, sightline.Errorf(sightline.Invalid, "action %q and event %q: event is another name for action; give one", q.action, ev)
		}
		q.action = ev
	}
	if q.action != "" && !slices.Contains(auditActions, q.action) {
		return q, sightline.Errorf(sightline.Invalid, "action %q: want one of %s", q.action, strings.Join(auditActions, ", "))
	}
	q.outcome = v.Get("outcome")
	if q.outcome != "" && q.outcome != registry.OutcomeSuccess && q.outcome != registry.OutcomeFailure {
		return q, sightline.Errorf(sightline.Invalid, "outcome %q: want %s or %s", q.outcome, registry.OutcomeSuccess, registry.OutcomeFailure)
	}
	q.device = strings.TrimSpace(v.Get("device"))
	if len(q.device) > maxAuditParam {
		return q, sightline.Errorf(sightline.Invalid, "device: give a device ID or host name of at most %d characters", maxAuditParam)
	}
	q.token = strings.ToLower(strings.TrimSpace(v.Get("token")))
	switch {
	case len(q.token) > maxAuditParam:
		return q, sightline.Errorf(sightline.Invalid, "token: give a token ID or fingerprint of at most %d characters", maxAuditParam)
	case len(q.token) == tokenLen && isHex(q.token):
		return q, sightline.Errorf(sightline.Invalid, "token: give the token's ID or fingerprint, never the token itself")
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > auditMaxLimit {
			return q, sightline.Errorf(sightline.Invalid, "limit %q: want a number from 1 to %d", s, auditMaxLimit)
		}
		q.limit = n
	}
	if s := v.Get("before"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 1 {
			return q, sightline.Errorf(sightline.Invalid, "before %q: want the next cursor of a previous page", s)
		}
		q.before = n
	}
	return q, nil
}

// apiAudit answers GET /api/v1/audit: the organisation's audit log,
// newest first, filtered and paged.
func (e *Exchange) apiAudit(w http.ResponseWriter, r *http.Request, who actor) error {
	q, err := parseAuditQuery(r.URL.Query())
	if err != nil {
		return err
	}
	entries, next, err := e.auditPage(r.Context(), who.org, q)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, exchangeclient.Audit{Region: e.opts.Region, Organisation: who.org.Name,
		Entries: entries, Next: next})
	return nil
}

// auditPage returns the page of org's audit log that q selects and the
// cursor of the next page ("" for none), as the store's audit query
// answers it. The first organisation is the exchange operator's: it also
// sees the registration attempts that belong to no organisation (unknown
// tokens).
func (e *Exchange) auditPage(ctx context.Context, org registry.Organisation, q auditQuery) ([]exchangeclient.AuditEntry, string, error) {
	orgIDs := []string{org.ID}
	orgs, err := e.store.Organisations(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("read audit log: %w", err)
	}
	if len(orgs) > 0 && orgs[0].ID == org.ID {
		orgIDs = append(orgIDs, "")
	}
	// One more than the page tells whether a next page exists.
	list, err := e.store.Audit(ctx, registry.AuditQuery{OrgIDs: orgIDs, Since: q.since, Action: q.action,
		Outcome: q.outcome, Device: q.device, Token: q.token, Before: q.before, Limit: q.limit + 1})
	if err != nil {
		return nil, "", fmt.Errorf("read audit log: %w", err)
	}
	next := ""
	if len(list) > q.limit {
		list = list[:q.limit]
		next = strconv.FormatInt(list[len(list)-1].ID, 10)
	}
	page := make([]exchangeclient.AuditEntry, len(list))
	for i, en := range list {
		page[i] = auditView(en)
	}
	return page, next, nil
}

// auditView is an audit entry as the API shows it.
func auditView(e registry.AuditEntry) exchangeclient.AuditEntry {
	return exchangeclient.AuditEntry{ID: e.ID, Time: e.Time, Actor: e.Actor, Source: e.Source, Action: e.Action,
		Target: e.Target, Outcome: e.Outcome, Reason: e.Reason, Detail: e.Detail,
		TokenID: e.TokenID, TokenFingerprint: e.TokenFingerprint, TokenRegion: e.TokenRegion,
		DeviceID: e.DeviceID, DeviceName: e.DeviceName, DeviceVersion: e.DeviceVersion, MinVersion: e.MinVersion}
}
