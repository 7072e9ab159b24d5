package esa

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/sightline/sightline/internal/ctim"
	"github.com/sightline/sightline/internal/tracking"
)

// A Sightline gateway answers a tracking search with the complete records
// of the messages found (GET /api/v1/tracking/records, the parameters of
// message-tracking/messages): one request per observable instead of a
// search, then the details and the native search of every message. A
// gateway without it (an AsyncOS appliance, an older Sightline) answers 404
// or redirects, and the module then asks as AsyncOS allows, until
// recordsRetry has passed.
const (
	pathRecords  = "/api/v1/tracking/records"
	recordsRetry = 10 * time.Minute
)

// recordsView asks for records with only what a sighting is built from,
// the keys of record: half the bytes of a whole record to carry and decode.
// A gateway without the view answers whole records, which decode the same.
const recordsView = "sighting"

// recordsAnswer is the body of GET /api/v1/tracking/records.
type recordsAnswer struct {
	Total        int      `json:"total"`
	SerialNumber string   `json:"serial_number"`
	HostName     string   `json:"host_name"`
	Records      []record `json:"records"`
}

// record is one message of a records answer: the native search's view of
// it and the time of its last event.
type record struct {
	MID        int64     `json:"mid"`
	InjectedAt time.Time `json:"injected_at"`
	Direction  string    `json:"direction"`
	Sender     string    `json:"sender"`
	Recipients []struct {
		Address string `json:"address"`
	} `json:"recipients"`
	Subject      string `json:"subject"`
	Status       string `json:"status"`
	SenderIP     string `json:"sender_ip"`
	MessageID    string `json:"message_id"`
	VerdictChart string `json:"verdict_chart"`
	Attachments  []struct {
		Name   string `json:"name"`
		SHA256 string `json:"sha256"`
	} `json:"attachments"`
	URLs        []string `json:"urls"`
	LastEventAt string   `json:"last_event_at"` // RFC 3339; "" when no event is listed
}

// described returns the message of rec as the AsyncOS answers would
// describe it: its search row, its details and its native search result,
// from which sighting builds the same sighting either way. Times keep
// whole seconds, as AsyncOS prints them.
func (a *recordsAnswer) described(rec *record) (*searchRow, *details, *nativeMessage, error) {
	key := strconv.FormatInt(rec.MID, 10)
	rcpts := make([]string, 0, len(rec.Recipients))
	for _, r := range rec.Recipients {
		rcpts = append(rcpts, r.Address)
	}
	chart := rec.VerdictChart
	if chart == "" {
		chart = "00000000"
	}
	row := &searchRow{
		SerialNumber: a.SerialNumber, Direction: rec.Direction, MID: []int64{rec.MID},
		Timestamp: asyncOSTime(rec.InjectedAt), Sender: rec.Sender, SenderIP: rec.SenderIP,
		Recipient: rcpts, RecipientMap: map[string][]string{key: rcpts}, Subject: rec.Subject,
		MessageID: map[string]string{key: rec.MessageID}, MessageStatus: map[string]string{key: rec.Status},
		VerdictChart: map[string]string{key: chart},
	}
	host := fmt.Sprintf("(Name unresolved,  SN:%s)", a.SerialNumber)
	if a.HostName != "" {
		host = fmt.Sprintf("%s (SN:%s)", a.HostName, a.SerialNumber)
	}
	d := &details{MID: json.RawMessage("[" + key + "]"), HostName: host, ShowURL: len(rec.URLs) > 0}
	if rec.LastEventAt != "" {
		last, err := time.Parse(time.RFC3339Nano, rec.LastEventAt)
		if err != nil {
			return nil, nil, nil, &gatewayError{Path: pathRecords, Status: http.StatusBadGateway,
				Message: fmt.Sprintf("the answer is not the JSON expected: MID %d: last_event_at %q is not an RFC 3339 time", rec.MID, rec.LastEventAt)}
		}
		d.Summary = append(d.Summary, struct {
			Timestamp string `json:"timestamp"`
			LastEvent bool   `json:"lastEvent"`
		}{asyncOSTime(last), true})
	}
	nm := &nativeMessage{MID: rec.MID, URLs: rec.URLs}
	for _, at := range rec.Attachments {
		d.Attachments = append(d.Attachments, at.Name)
		nm.Attachments = append(nm.Attachments, struct {
			Name   string `json:"name"`
			SHA256 string `json:"sha256"`
		}{at.Name, at.SHA256})
	}
	return row, d, nm, nil
}

// asyncOSTime prints t as the AsyncOS API does, in UTC.
func asyncOSTime(t time.Time) string { return t.UTC().Format(tracking.DateLayout) }

// recordsUsable reports whether the gateway may have the records endpoint:
// it has not said otherwise within recordsRetry.
func (m *esaModule) recordsUsable() bool {
	at := m.noRecords.Load()
	return at == 0 || m.opts.Now().Sub(time.Unix(0, at)) > recordsRetry
}

// getRecords asks for one page of records. ok is false when the gateway has
// no records endpoint, which is remembered; any other failure is err.
func (m *esaModule) getRecords(ctx context.Context, q url.Values) (ans recordsAnswer, ok bool, err error) {
	if err := m.get(ctx, pathRecords, q, &ans); err != nil {
		if noSearch(err) {
			m.noRecords.Store(m.opts.Now().UnixNano())
			m.logger.Info("the gateway has no records endpoint: asking for each message's details instead", "err", err)
			return ans, false, nil
		}
		return ans, true, err
	}
	return ans, true, nil
}

// addRecords records the messages of a records answer. With o, they matched
// o; without, they only complete the messages already found.
func (ob *observation) addRecords(ans *recordsAnswer, o *ctim.Observable) error {
	for i := range ans.Records {
		row, d, nm, err := ans.described(&ans.Records[i])
		if err != nil {
			return err
		}
		ob.mu.Lock()
		msg := ob.messages[nm.MID]
		if msg == nil && o != nil {
			msg = &message{mid: nm.MID}
			ob.messages[nm.MID] = msg
		}
		if msg != nil && !msg.complete {
			msg.row, msg.details, msg.native, msg.complete = row, d, nm, true
		}
		if msg != nil && o != nil && !slices.Contains(msg.matched, *o) {
			msg.matched = append(msg.matched, *o)
		}
		ob.mu.Unlock()
	}
	return nil
}

// findRecords runs one AsyncOS search for o on the records endpoint and
// records the messages found, up to MaxMessages. It returns false, having
// recorded nothing, when the gateway has no records endpoint.
func (m *esaModule) findRecords(ctx context.Context, ob *observation, o ctim.Observable, params url.Values, start, end time.Time) bool {
	found := 0
	for offset := 0; found < m.opts.MaxMessages; offset += pageSize {
		q := dated(params, start, end)
		q.Set("offset", strconv.Itoa(offset))
		q.Set("limit", strconv.Itoa(pageSize))
		ans, ok, failed := m.addRecordsPage(ctx, ob, q, &o)
		if !ok || failed {
			return ok
		}
		found += len(ans.Records)
		if len(ans.Records) < pageSize || offset+len(ans.Records) >= ans.Total {
			return true
		}
	}
	ob.fail(tooMany(o, m.opts.MaxMessages))
	return true
}

// addRecordsPage gets one page of records in view=sighting and adds them to
// ob (for the observable o, when not nil). ok is false when the gateway has
// no records endpoint; failed when the page failed, the failure being
// recorded in ob.
func (m *esaModule) addRecordsPage(ctx context.Context, ob *observation, q url.Values, o *ctim.Observable) (ans recordsAnswer, ok, failed bool) {
	q.Set("view", recordsView)
	ans, ok, err := m.getRecords(ctx, q)
	if !ok {
		return ans, false, false
	}
	if err == nil {
		err = ob.addRecords(&ans, o)
	}
	if err != nil {
		ob.fail(m.moduleError(ctx, err))
		return ans, true, true
	}
	return ans, true, false
}

// completeRecords gets the records of mids, messages the native search
// found, by batches of repeated ciscoMid. It returns false when the gateway
// has no records endpoint.
func (m *esaModule) completeRecords(ctx context.Context, ob *observation, mids []int64, start, end time.Time) bool {
	for batch := range slices.Chunk(mids, pageSize) {
		q := dated(tracking.Query{MIDs: batch}.Values(), start, end)
		q.Set("limit", strconv.Itoa(pageSize))
		if _, ok, failed := m.addRecordsPage(ctx, ob, q, nil); !ok || failed {
			return ok
		}
	}
	return true
}
