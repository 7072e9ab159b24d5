package tracking

import (
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/sightline/sightline"
)

// SearchAPI serves the native search endpoint of the gateway
// (search-and-bench.md §A.4):
//
//	GET /api/v1/messages?q=<query>&limit=50&cursor=<c>&tz=<zone>
//
// answering {"total": n, "total_capped": false, "messages": [...],
// "next_cursor": "…"}; next_cursor is "" on the last page. A bad term is
// 400 with the body of SearchError; another bad parameter is 400
// {"error": "…"}. It answers whatever path it is mounted on;
// authentication is the caller's.
type SearchAPI struct {
	store  SearchStore
	info   GatewayInfo
	logger *slog.Logger
}

// NewSearchAPI returns the endpoint over s. Times print in the request's tz,
// else in info.Location (UTC when nil). A nil logger discards.
func NewSearchAPI(s SearchStore, info GatewayInfo, logger *slog.Logger) *SearchAPI {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if info.Location == nil {
		info.Location = time.UTC
	}
	return &SearchAPI{store: s, info: info, logger: logger.With("component", "search_api")}
}

// maxZoneName bounds the tz parameter; IANA names are far shorter.
const maxZoneName = 64

// searchStatuses maps error kinds to the endpoint's statuses.
var searchStatuses = map[sightline.Kind]int{
	sightline.Invalid:      http.StatusBadRequest,
	sightline.NotFound:     http.StatusNotFound,
	sightline.Conflict:     http.StatusConflict,
	sightline.Unauthorized: http.StatusUnauthorized,
	sightline.Forbidden:    http.StatusForbidden,
	sightline.Unavailable:  http.StatusServiceUnavailable,
	sightline.Internal:     http.StatusInternalServerError,
}

// SearchErrorStatus returns the status and the body the endpoint answers err
// with: a *SearchError as it is, any other error as {"error": message},
// where an Internal error's message is never shown.
func SearchErrorStatus(err error) (status int, body any) {
	var se *SearchError
	if errors.As(err, &se) {
		return http.StatusBadRequest, se
	}
	kind := sightline.ErrorKind(err)
	status, ok := searchStatuses[kind]
	msg := sightline.ErrorMessage(err)
	if !ok || kind == sightline.Internal {
		status, msg = http.StatusInternalServerError, "internal error"
	}
	return status, map[string]string{"error": msg}
}

// searchResponse is the body of a successful search.
type searchResponse struct {
	Total       int             `json:"total"`
	TotalCapped bool            `json:"total_capped"`
	Messages    []searchMessage `json:"messages"`
	NextCursor  string          `json:"next_cursor"`
}

// searchMessage is one message of a search result. Times are RFC 3339 in the
// request's zone; lists are never null.
type searchMessage struct {
	MID          int64              `json:"mid"`
	ICID         int64              `json:"icid"`
	InjectedAt   string             `json:"injected_at"`
	Direction    string             `json:"direction"`
	Sender       string             `json:"sender"`
	From         string             `json:"from"` // the From header as written
	ReplyTo      string             `json:"reply_to"`
	Recipients   []searchRecipient  `json:"recipients"`
	Subject      string             `json:"subject"`
	Status       string             `json:"status"`
	Size         int64              `json:"size"`
	SenderIP     string             `json:"sender_ip"`
	ReverseDNS   string             `json:"reverse_dns"`
	HELO         string             `json:"helo"`
	SenderGroup  string             `json:"sender_group"`
	MessageID    string             `json:"message_id"`
	Attachments  []searchAttachment `json:"attachments"`
	URLs         []string           `json:"urls"`
	VerdictChart string             `json:"verdict_chart"`
	ThreatName   string             `json:"threat_name"`
	SPF          string             `json:"spf"`
	DKIM         string             `json:"dkim"`
	DMARC        string             `json:"dmarc"`
	Quarantine   string             `json:"quarantine"`
}

type searchRecipient struct {
	Address string `json:"address"`
	Status  string `json:"status"`
}

type searchAttachment struct {
	Name   string `json:"name"`
	Type   string `json:"type"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	SHA1   string `json:"sha1"`
	MD5    string `json:"md5"`
}

// ServeHTTP implements http.Handler.
func (a *SearchAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "method not allowed"})
		return
	}
	q, loc, err := a.parseRequest(r)
	if err == nil {
		var page SearchPage
		if page, err = a.store.SearchMessages(r.Context(), q); err == nil {
			writeJSON(w, http.StatusOK, searchBody(page, loc))
			return
		}
	}
	status, body := SearchErrorStatus(err)
	if status >= 500 {
		a.logger.Error("search failed", "status", status, "err", err)
	}
	writeJSON(w, status, body)
}

// parseRequest reads the parameters of a search request.
func (a *SearchAPI) parseRequest(r *http.Request) (SearchQuery, *time.Location, error) {
	v := r.URL.Query()
	loc := a.info.Location
	if tz := v.Get("tz"); tz != "" {
		l, err := time.LoadLocation(tz)
		if err != nil || len(tz) > maxZoneName || tz == "Local" {
			return SearchQuery{}, nil, sightline.Errorf(sightline.Invalid, "unknown time zone %q; use an IANA name such as Europe/Paris", clip(tz))
		}
		loc = l
	}
	var q SearchQuery
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxSearchLimit {
			return q, nil, sightline.Errorf(sightline.Invalid, "invalid limit %q; use 1 to %d", clip(s), MaxSearchLimit)
		}
		q.Limit = n
	}
	if s := v.Get("cursor"); s != "" {
		c, err := ParseCursor(s)
		if err != nil {
			return q, nil, err
		}
		q.After = &c
	}
	var err error
	q.Search, err = ParseSearch(v.Get("q"), loc)
	return q, loc, err
}

func searchBody(page SearchPage, loc *time.Location) searchResponse {
	resp := searchResponse{Total: page.Total, TotalCapped: page.TotalCapped, Messages: make([]searchMessage, 0, len(page.Messages))}
	if page.Next != nil {
		resp.NextCursor = page.Next.String()
	}
	for _, m := range page.Messages {
		resp.Messages = append(resp.Messages, searchMessageOf(m, loc))
	}
	return resp
}

// searchMessageOf is m as a search result shows it, times in loc.
func searchMessageOf(m *Message, loc *time.Location) searchMessage {
	sm := searchMessage{
		MID: m.MID, ICID: m.ICID, InjectedAt: m.InjectedAt.In(loc).Format(time.RFC3339Nano), Direction: m.Direction,
		Sender: m.Sender, From: m.FriendlyFrom, ReplyTo: m.ReplyTo, Subject: m.Subject,
		Status: orDefault(m.Status, StatusInProgress), Size: m.Size, SenderIP: m.SenderIP, ReverseDNS: m.ReverseDNS,
		HELO: m.HELO, SenderGroup: m.SenderGroup, MessageID: m.MessageID, URLs: nonNil(m.URLs),
		VerdictChart: m.VerdictChart, ThreatName: m.ThreatName, SPF: m.SPF, DKIM: m.DKIM, DMARC: m.DMARC,
		Quarantine: m.Quarantine,
		Recipients: make([]searchRecipient, 0, len(m.Recipients)), Attachments: make([]searchAttachment, 0, len(m.Attachments)),
	}
	for _, rc := range m.Recipients {
		sm.Recipients = append(sm.Recipients, searchRecipient{Address: rc.Address, Status: rc.Status})
	}
	for _, at := range m.Attachments {
		sm.Attachments = append(sm.Attachments, searchAttachment{Name: at.Name, Type: at.Type, Size: at.Size,
			SHA256: at.SHA256, SHA1: at.SHA1, MD5: at.MD5})
	}
	return sm
}
