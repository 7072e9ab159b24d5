package tracking

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sightline/sightline"
)

// GatewayInfo is what the API says about the gateway serving it.
type GatewayInfo struct {
	SerialNumber string
	HostName     string
	Location     *time.Location // time zone of the dates it prints; nil means UTC
}

// API serves the AsyncOS message tracking routes (gateway-api.md §5–§7) under
// both /esa/api/v2.0/ and /sma/api/v2.0/: GET message-tracking/messages and
// GET message-tracking/details, with CORS for browsers. Any other request is
// answered 404 "Not Found." in the AsyncOS error envelope, so the caller
// mounts it on both prefixes and registers its own routes (login, …) beside
// it. Authentication is the caller's: wrap the API, leaving OPTIONS open.
type API struct {
	store  Store
	info   GatewayInfo
	logger *slog.Logger
	mux    *http.ServeMux
}

// DateLayout is how the API prints times (gateway-api.md §4).
const DateLayout = "02 Jan 2006 15:04:05 (GMT -07:00)"

// API prefixes of the gateway and the manager.
var apiPrefixes = []string{"/esa/api/v2.0/", "/sma/api/v2.0/"}

// NewAPI returns the API over s. A nil logger discards.
func NewAPI(s Store, info GatewayInfo, logger *slog.Logger) *API {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if info.Location == nil {
		info.Location = time.UTC
	}
	a := &API{store: s, info: info, logger: logger.With("component", "tracking_api"), mux: http.NewServeMux()}
	for _, p := range apiPrefixes {
		a.mux.HandleFunc("GET "+p+"message-tracking/messages", a.messages)
		a.mux.HandleFunc("GET "+p+"message-tracking/details", a.details)
		a.mux.HandleFunc("OPTIONS "+p, preflight)
	}
	a.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { WriteError(w, http.StatusNotFound, "") })
	return a
}

// ServeHTTP implements http.Handler.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

// CORS headers of every API response (gateway-api.md §1).
func setCORS(h http.Header) {
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, jwtToken")
	h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
	h.Set("Access-Control-Expose-Headers", "jwtToken")
}

func preflight(w http.ResponseWriter, r *http.Request) {
	setCORS(w.Header())
	w.Header().Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
}

// statusTexts are Python's http.server phrases and descriptions, which
// AsyncOS puts in its error envelope (gateway-api.md §3).
var statusTexts = map[int][2]string{
	400: {"Bad Request", "Bad request syntax or unsupported method"},
	401: {"Unauthorized", "No permission -- see authorization schemes"},
	403: {"Forbidden", "Request forbidden -- authorization will not help"},
	404: {"Not Found", "Nothing matches the given URI"},
	405: {"Method Not Allowed", "Specified method is invalid for this resource"},
	406: {"Not Acceptable", "URI not available in preferred format"},
	408: {"Request Timeout", "Request timed out; try again later"},
	409: {"Conflict", "Request conflict"},
	410: {"Gone", "URI no longer exists and has been permanently removed"},
	411: {"Length Required", "Client must specify Content-Length"},
	412: {"Precondition Failed", "Precondition in headers is false"},
	413: {"Request Entity Too Large", "Entity is too large"},
	414: {"Request-URI Too Long", "URI is too long"},
	415: {"Unsupported Media Type", "Entity body in unsupported format"},
	429: {"Too Many Requests", `The user has sent too many requests in a given amount of time ("rate limiting")`},
	431: {"Request Header Fields Too Large", "The server is unwilling to process the request because its header fields are too large"},
	500: {"Internal Server Error", "Server got itself in trouble"},
	501: {"Not Implemented", "Server does not support this operation"},
	502: {"Bad Gateway", "Invalid responses from another server/proxy"},
	503: {"Service Unavailable", "The server cannot process the request due to a high load"},
	504: {"Gateway Timeout", "The gateway server did not receive a timely response"},
}

// WriteError writes the AsyncOS error envelope, e.g.
// {"error":{"message":"Not Found.","code":"404","explanation":"404 = Nothing matches the given URI."}}.
// An empty message means the status phrase followed by a period.
func WriteError(w http.ResponseWriter, status int, message string) {
	texts, ok := statusTexts[status]
	if !ok {
		texts = [2]string{http.StatusText(status), http.StatusText(status)}
	}
	if message == "" {
		message = texts[0] + "."
	}
	code := strconv.Itoa(status)
	var body struct {
		Error struct {
			Message     string `json:"message"`
			Code        string `json:"code"`
			Explanation string `json:"explanation"`
		} `json:"error"`
	}
	body.Error.Message, body.Error.Code, body.Error.Explanation = message, code, code+" = "+texts[1]+"."
	writeJSON(w, status, body)
}

// errorStatuses maps error kinds to API statuses. Invalid input is 404, as
// AsyncOS answers it.
var errorStatuses = map[sightline.Kind]int{
	sightline.Invalid:      http.StatusNotFound,
	sightline.NotFound:     http.StatusNotFound,
	sightline.Conflict:     http.StatusConflict,
	sightline.Unauthorized: http.StatusUnauthorized,
	sightline.Forbidden:    http.StatusForbidden,
	sightline.Unavailable:  http.StatusServiceUnavailable,
	sightline.Internal:     http.StatusInternalServerError,
}

// ErrorStatus returns the status and the message the API answers err with.
// An Internal error's message is never shown.
func ErrorStatus(err error) (status int, message string) {
	kind := sightline.ErrorKind(err)
	status, ok := errorStatuses[kind]
	if !ok || kind == sightline.Internal {
		return http.StatusInternalServerError, ""
	}
	return status, sightline.ErrorMessage(err)
}

func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, msg := ErrorStatus(err)
	if status >= 500 {
		a.logger.Error("tracking request failed", "path", r.URL.Path, "status", status, "err", err)
	}
	WriteError(w, status, msg)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Only our own types are encoded: this is a bug.
		panic(fmt.Sprintf("tracking: encode response: %v", err))
	}
	h := w.Header()
	setCORS(h)
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

func (a *API) date(t time.Time) string { return t.In(a.info.Location).Format(DateLayout) }

// searchRow is one row of GET message-tracking/messages, in AsyncOS's key
// order. Per-MID maps have string keys.
type searchRow struct {
	HostName       string              `json:"hostName"`
	SerialNumber   string              `json:"serialNumber"`
	Direction      string              `json:"direction"`
	ICID           int64               `json:"icid"`
	AllICID        []int64             `json:"allIcid"`
	MID            []int64             `json:"mid"`
	Timestamp      string              `json:"timestamp"`
	Sender         string              `json:"sender"`
	FriendlyFrom   []string            `json:"friendly_from"`
	SenderDomain   string              `json:"senderDomain"`
	SenderIP       string              `json:"senderIp"`
	SBRS           string              `json:"sbrs"`
	SenderGroup    string              `json:"senderGroup"`
	MailPolicy     []string            `json:"mailPolicy"`
	Recipient      []string            `json:"recipient"`
	RecipientMap   map[string][]string `json:"recipientMap"`
	Subject        string              `json:"subject"`
	FinalSubject   map[string]string   `json:"finalSubject"`
	MessageID      map[string]string   `json:"messageID"`
	MessageStatus  map[string]string   `json:"messageStatus"`
	VerdictChart   map[string]string   `json:"verdictChart"`
	ReplyTo        string              `json:"replyTo"`
	IsCompleteData string              `json:"isCompleteData"`
	MorDetails     struct{}            `json:"morDetails"`
}

func (a *API) messages(w http.ResponseWriter, r *http.Request) {
	q, err := ParseQueryParams(r.URL.Query())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	page, err := a.store.Search(r.Context(), q)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	type item struct {
		Attributes searchRow `json:"attributes"`
	}
	resp := struct {
		Meta struct {
			NumBadRecords int `json:"num_bad_records"`
			TotalCount    int `json:"totalCount"`
		} `json:"meta"`
		Data []item `json:"data"`
	}{Data: make([]item, 0, len(page.Messages))}
	resp.Meta.TotalCount = page.Total
	for _, m := range page.Messages {
		resp.Data = append(resp.Data, item{a.row(m)})
	}
	writeJSON(w, http.StatusOK, resp)
}

func (a *API) row(m *Message) searchRow {
	key := strconv.FormatInt(m.MID, 10)
	rcpts := recipientAddresses(m)
	return searchRow{
		HostName:       "",
		SerialNumber:   a.info.SerialNumber,
		Direction:      m.Direction,
		ICID:           m.ICID,
		AllICID:        []int64{m.ICID},
		MID:            []int64{m.MID},
		Timestamp:      a.date(m.InjectedAt),
		Sender:         m.Sender,
		FriendlyFrom:   friendlyFrom(m),
		SenderDomain:   senderDomain(m),
		SenderIP:       m.SenderIP,
		SBRS:           orDefault(m.SBRS, "None"),
		SenderGroup:    m.SenderGroup,
		MailPolicy:     nonNil(m.MailPolicy),
		Recipient:      rcpts,
		RecipientMap:   map[string][]string{key: rcpts},
		Subject:        m.Subject,
		FinalSubject:   map[string]string{key: orDefault(m.FinalSubject, m.Subject)},
		MessageID:      map[string]string{key: m.MessageID},
		MessageStatus:  map[string]string{key: orDefault(m.Status, StatusInProgress)},
		VerdictChart:   map[string]string{key: orDefault(m.VerdictChart, "00000000")},
		ReplyTo:        orDefault(m.ReplyTo, "N/A"),
		IsCompleteData: "N/A",
	}
}

func recipientAddresses(m *Message) []string {
	rs := make([]string, 0, len(m.Recipients))
	for _, r := range m.Recipients {
		rs = append(rs, r.Address)
	}
	return rs
}

// friendlyFrom is the From header as written, else the best address known.
func friendlyFrom(m *Message) []string {
	for _, s := range []string{m.FriendlyFrom, m.HeaderFrom, m.Sender} {
		if s != "" {
			return []string{s}
		}
	}
	return []string{}
}

func senderDomain(m *Message) string {
	if m.SenderDomain != "" {
		return m.SenderDomain
	}
	if i := strings.LastIndexByte(m.Sender, '@'); i >= 0 {
		return m.Sender[i+1:]
	}
	return ""
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func nonNil(ss []string) []string {
	if ss == nil {
		return []string{}
	}
	return ss
}

// detailsMessage is data.messages of GET message-tracking/details.
type detailsMessage struct {
	MID                []int64        `json:"mid"`
	AllICID            []int64        `json:"allIcid"`
	HostName           string         `json:"hostName"`
	Direction          string         `json:"direction"`
	IsCompleteData     bool           `json:"isCompleteData"`
	MessageStatus      string         `json:"messageStatus"`
	MailPolicy         []string       `json:"mailPolicy"`
	SenderGroup        string         `json:"senderGroup"`
	Subject            string         `json:"subject"`
	Sender             string         `json:"sender"`
	Recipient          []string       `json:"recipient"`
	HeaderFrom         string         `json:"headerFrom"`
	MidHeader          string         `json:"midHeader"`
	Attachments        []string       `json:"attachments"`
	MessageSize        string         `json:"messageSize"`
	SMTPAuthID         string         `json:"smtpAuthId"`
	Timestamp          string         `json:"timestamp"`
	SendingHostSummary hostSummary    `json:"sendingHostSummary"`
	ShowAMP            bool           `json:"showAMP"`
	ShowDLP            bool           `json:"showDLP"`
	ShowURL            bool           `json:"showURL"`
	Summary            []summaryEvent `json:"summary"`
}

type hostSummary struct {
	ReverseDNSHostname string `json:"reverseDnsHostname"`
	IPAddress          string `json:"ipAddress"`
	SBRSScore          string `json:"sbrsScore"`
}

type summaryEvent struct {
	Timestamp   string `json:"timestamp"`
	Description string `json:"description"`
	LastEvent   bool   `json:"lastEvent"`
}

// unknownMID is the answer for a MID the gateway does not know
// (gateway-api.md §7): clients look for "N/A" in mid.
var unknownMID = map[string]any{"data": map[string]any{"messages": map[string]any{"mid": []string{"N/A"}}}}

func (a *API) details(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	if _, _, err := parseDates(v, false); err != nil {
		a.fail(w, r, err)
		return
	}
	if len(v["mid"]) == 0 {
		a.fail(w, r, missing("mid"))
		return
	}
	var mids []int64
	for _, s := range v["mid"] {
		mid, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil || mid < 0 {
			a.fail(w, r, invalidValue("mid"))
			return
		}
		mids = append(mids, mid)
	}
	for _, name := range []string{"icid", "dcid"} {
		if s := v.Get(name); s != "" {
			if _, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64); err != nil {
				a.fail(w, r, invalidValue(name))
				return
			}
		}
	}
	// A serial number names the gateway that holds the message: another
	// gateway's MID is not ours even when the number exists here.
	if sn := v.Get("serialNumber"); sn != "" && !strings.EqualFold(sn, a.info.SerialNumber) {
		writeJSON(w, http.StatusOK, unknownMID)
		return
	}
	for _, mid := range mids {
		m, evs, err := a.store.Details(r.Context(), mid)
		if sightline.ErrorKind(err) == sightline.NotFound {
			continue
		}
		if err != nil {
			a.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"data": map[string]any{"messages": a.detailsOf(m, evs)}})
		return
	}
	writeJSON(w, http.StatusOK, unknownMID)
}

func (a *API) detailsOf(m *Message, evs []Event) detailsMessage {
	host := fmt.Sprintf("(Name unresolved,  SN:%s)", a.info.SerialNumber)
	if a.info.HostName != "" {
		host = fmt.Sprintf("%s (SN:%s)", a.info.HostName, a.info.SerialNumber)
	}
	names := make([]string, 0, len(m.Attachments))
	for _, at := range m.Attachments {
		names = append(names, at.Name)
	}
	rdns := "unknown"
	if m.ReverseDNS != "" {
		rdns = m.ReverseDNS + " (verified)"
	}
	summary := []summaryEvent{}
	for _, ev := range evs {
		if ev.Summary != "" {
			summary = append(summary, summaryEvent{Timestamp: a.date(ev.Time), Description: ev.Summary})
		}
	}
	if n := len(summary); n > 0 {
		summary[n-1].LastEvent = true
	}
	return detailsMessage{
		MID:       []int64{m.MID},
		AllICID:   []int64{m.ICID},
		HostName:  host,
		Direction: m.Direction,
		// AsyncOS prints false here for complete records too.
		IsCompleteData: false,
		MessageStatus:  orDefault(m.Status, StatusInProgress),
		MailPolicy:     nonNil(m.MailPolicy),
		SenderGroup:    m.SenderGroup,
		Subject:        m.Subject,
		Sender:         m.Sender,
		Recipient:      recipientAddresses(m),
		HeaderFrom:     m.HeaderFrom,
		MidHeader:      m.MessageID,
		Attachments:    names,
		MessageSize:    formatSize(m.Size),
		SMTPAuthID:     m.SMTPAuthID,
		Timestamp:      a.date(m.InjectedAt),
		SendingHostSummary: hostSummary{
			ReverseDNSHostname: rdns,
			IPAddress:          m.SenderIP,
			SBRSScore:          orDefault(m.SBRS, "None"),
		},
		ShowAMP: len(m.Attachments) > 0,
		ShowDLP: false, // Sightline has no DLP engine
		ShowURL: len(m.URLs) > 0,
		Summary: summary,
	}
}

// formatSize prints a size as AsyncOS does: "39.25 (KB)", "1.50 (MB)".
func formatSize(n int64) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%.2f (MB)", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.2f (KB)", float64(n)/(1<<10))
}
