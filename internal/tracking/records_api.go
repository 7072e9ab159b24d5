package tracking

import (
	"context"
	"log/slog"
	"net/http"
	"time"
)

// RecordsAPI serves the complete records of a Message Tracking search in one
// answer, for programs that would otherwise search and then ask for the
// details of every message found, one request each (the console's gateway
// module, through the exchange's tunnel):
//
//	GET /api/v1/tracking/records?<the parameters of message-tracking/messages>
//
// It reads the parameters of GET message-tracking/messages (startDate and
// endDate required, the filters, offset and limit; ParseQueryParams) and
// answers
//
//	{"total": 1, "total_capped": false, "serial_number": "…", "host_name": "gw1.example.com",
//	 "records": [{"mid": 315, …, "last_event_at": "2026-01-10T08:00:14Z"}]}
//
// newest first, as the search orders them. A record is a message as the
// native search shows it (SearchAPI), with times in UTC, plus last_event_at:
// the time of the last event that message-tracking/details lists for it, ""
// when it lists none. host_name is the gateway's, "" when unresolved.
//
// With view=sighting, a record holds only what a CTIM sighting is built
// from, the same keys with the same values: mid, injected_at, direction,
// sender, recipients (address), subject, status, sender_ip, message_id,
// attachments (name, sha256), urls, verdict_chart and last_event_at. That
// is half the bytes to encode, carry through the tunnel and decode. An
// older gateway ignores the parameter and answers whole records.
//
// A bad parameter is 400 {"error": "…"} with the AsyncOS message. It
// answers whatever path it is mounted on; authentication is the caller's.
type RecordsAPI struct {
	store  Store
	info   GatewayInfo
	logger *slog.Logger
}

// NewRecordsAPI returns the endpoint over s. A nil logger discards.
func NewRecordsAPI(s Store, info GatewayInfo, logger *slog.Logger) *RecordsAPI {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &RecordsAPI{store: s, info: info, logger: logger.With("component", "records_api")}
}

// recordsResponse is the body of a successful answer.
type recordsResponse struct {
	Total        int    `json:"total"`
	TotalCapped  bool   `json:"total_capped"`
	SerialNumber string `json:"serial_number"`
	HostName     string `json:"host_name"`
	Records      any    `json:"records"` // []record or []sightingRecord
}

// record is one message with what its details add to a search result.
type record struct {
	searchMessage
	LastEventAt string `json:"last_event_at"`
}

// The values of the view parameter.
const (
	viewWhole    = ""
	viewSighting = "sighting"
)

// sightingRecord is a record in view=sighting: the keys of record a
// sighting is built from.
type sightingRecord struct {
	MID          int64                `json:"mid"`
	InjectedAt   string               `json:"injected_at"`
	Direction    string               `json:"direction"`
	Sender       string               `json:"sender"`
	Recipients   []sightingRecipient  `json:"recipients"`
	Subject      string               `json:"subject"`
	Status       string               `json:"status"`
	SenderIP     string               `json:"sender_ip"`
	MessageID    string               `json:"message_id"`
	Attachments  []sightingAttachment `json:"attachments"`
	URLs         []string             `json:"urls"`
	VerdictChart string               `json:"verdict_chart"`
	LastEventAt  string               `json:"last_event_at"`
}

type sightingRecipient struct {
	Address string `json:"address"`
}

type sightingAttachment struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
}

// sightingOf returns b as a record in view=sighting.
func sightingOf(b *Brief) sightingRecord {
	sr := sightingRecord{MID: b.MID, InjectedAt: b.InjectedAt.UTC().Format(time.RFC3339Nano), Direction: b.Direction,
		Sender: b.Sender, Recipients: make([]sightingRecipient, 0, len(b.Recipients)), Subject: b.Subject,
		Status: orDefault(b.Status, StatusInProgress), SenderIP: b.SenderIP, MessageID: b.MessageID,
		Attachments: make([]sightingAttachment, 0, len(b.Attachments)), URLs: nonNil(b.URLs),
		VerdictChart: b.VerdictChart}
	for _, r := range b.Recipients {
		sr.Recipients = append(sr.Recipients, sightingRecipient{r})
	}
	for _, a := range b.Attachments {
		sr.Attachments = append(sr.Attachments, sightingAttachment{a.Name, a.SHA256})
	}
	if !b.LastEventAt.IsZero() {
		sr.LastEventAt = b.LastEventAt.UTC().Format(time.RFC3339Nano)
	}
	return sr
}

// ServeHTTP implements http.Handler.
func (a *RecordsAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "method not allowed"})
		return
	}
	resp, err := a.records(r.Context(), r)
	if err != nil {
		status, body := SearchErrorStatus(err)
		if status >= 500 {
			a.logger.Error("records failed", "status", status, "err", err)
		}
		writeJSON(w, status, body)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (a *RecordsAPI) records(ctx context.Context, r *http.Request) (recordsResponse, error) {
	params := r.URL.Query()
	q, err := ParseQueryParams(params)
	if err != nil {
		return recordsResponse{}, err
	}
	view := params.Get("view")
	if view != viewWhole && view != viewSighting {
		return recordsResponse{}, invalidValue("view")
	}
	if view == viewSighting {
		page, err := a.store.Briefs(ctx, q)
		if err != nil {
			return recordsResponse{}, err
		}
		records := make([]sightingRecord, 0, len(page.Briefs))
		for _, b := range page.Briefs {
			records = append(records, sightingOf(b))
		}
		return a.response(page.Total, page.TotalCapped, records), nil
	}
	page, err := a.store.Search(ctx, q)
	if err != nil {
		return recordsResponse{}, err
	}
	last, err := a.store.LastEvents(ctx, page.Messages)
	if err != nil {
		return recordsResponse{}, err
	}
	records := make([]record, 0, len(page.Messages))
	for _, m := range page.Messages {
		rec := record{searchMessage: searchMessageOf(m, time.UTC)}
		if t, ok := last[m.MID]; ok {
			rec.LastEventAt = t.UTC().Format(time.RFC3339Nano)
		}
		records = append(records, rec)
	}
	return a.response(page.Total, page.TotalCapped, records), nil
}

// response is the answer holding records.
func (a *RecordsAPI) response(total int, capped bool, records any) recordsResponse {
	return recordsResponse{Total: total, TotalCapped: capped, SerialNumber: a.info.SerialNumber,
		HostName: a.info.HostName, Records: records}
}
