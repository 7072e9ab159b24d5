package ui

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/tracking"
	"github.com/sightline/sightline/internal/web"
)

// trackingPage is the data of tracking.html.
type trackingPage struct {
	Form      searchForm
	Ops       []option
	Statuses  []option
	Results   *results      // nil until a valid search is submitted
	Coverage  rangeCoverage // of the searched time range, with Results
	Generated time.Time
	Zone      string // the gateway's time zone, "GMT +01:00"

	// Query is the native search (search-and-bench.md Part A) of the box
	// above the form; QueryError names its bad term.
	Query      string
	QueryError string
}

type results struct {
	Rows             []row
	Total            int
	Capped           bool // more than Total matched
	From, To         int  // 1-based positions of the rows shown
	Page, Pages      int
	PrevURL, NextURL string // "" at either end
	ExportURL        string
	Sizes            []sizeLink
}

type sizeLink struct {
	Size    int
	URL     string
	Current bool
}

type row struct {
	Msg        *tracking.Message
	LastState  string
	DetailsURL string
}

func (u *UI) unavailable(w http.ResponseWriter, r *http.Request, what string) {
	u.rd.Error(w, r, sightline.Errorf(sightline.Unavailable, "%s is not available on this gateway.", what))
}

// tracking serves Monitor > Message Tracking: the search form and, once
// submitted, one page of results.
func (u *UI) tracking(w http.ResponseWriter, r *http.Request) {
	if u.cfg.Tracking == nil {
		u.unavailable(w, r, "Message Tracking")
		return
	}
	now := u.cfg.Now()
	form, q := parseSearch(r.URL.Query(), now, u.cfg.Location)
	data := trackingPage{Form: form, Ops: ops, Generated: now, Zone: now.In(u.cfg.Location).Format("GMT -07:00")}
	for _, s := range statusFilters {
		data.Statuses = append(data.Statuses, s.option)
	}
	if r.URL.Query().Has("q") {
		u.querySearch(w, r, data)
		return
	}
	status := http.StatusOK
	switch {
	case len(form.Errors) > 0:
		status = http.StatusBadRequest
	case form.Submitted:
		q.Offset, q.Limit = (form.Page-1)*form.Size, form.Size
		page, err := u.cfg.Tracking.Search(r.Context(), q)
		if err != nil {
			u.rd.Error(w, r, err)
			return
		}
		res, err := u.results(r.Context(), form, page)
		if err != nil {
			u.rd.Error(w, r, err)
			return
		}
		data.Results = res
		data.Coverage = coverage(q.Start, q.End, now)
	}
	u.rd.Render(w, r, status, "tracking.html", web.PageData{Title: "Message Tracking", Data: data})
}

// querySearch serves a search written in the native language (q=…), paged
// by cursor: Next follows the cursor, Previous is the browser's.
func (u *UI) querySearch(w http.ResponseWriter, r *http.Request, data trackingPage) {
	ss, ok := u.cfg.Tracking.(tracking.SearchStore)
	if !ok {
		u.unavailable(w, r, "Query search")
		return
	}
	v := r.URL.Query()
	data.Query = strings.TrimSpace(v.Get("q"))
	form := searchForm{Page: 1, Size: pageSizes[0]}
	if n, err := strconv.Atoi(v.Get("size")); err == nil && slices.Contains(pageSizes, n) {
		form.Size = n
	}
	if n, err := strconv.Atoi(v.Get("page")); err == nil && n >= 1 && n <= maxPage {
		form.Page = n
	}
	data.Form.Size = form.Size
	q := tracking.SearchQuery{Limit: form.Size}
	s, err := tracking.ParseSearch(data.Query, u.cfg.Location)
	if c := v.Get("cursor"); err == nil && c != "" {
		var cur tracking.Cursor
		if cur, err = tracking.ParseCursor(c); err == nil {
			q.After = &cur
		}
	}
	if err != nil {
		var se *tracking.SearchError
		if errors.As(err, &se) {
			data.QueryError = fmt.Sprintf("term %q: %s.", se.Term, se.Reason)
		} else {
			data.QueryError = sightline.ErrorMessage(err) + "."
		}
		u.rd.Render(w, r, http.StatusBadRequest, "tracking.html", web.PageData{Title: "Message Tracking", Data: data})
		return
	}
	q.Search = s
	page, err := ss.SearchMessages(r.Context(), q)
	if err != nil {
		u.rd.Error(w, r, err)
		return
	}
	link := func(size, pageNo int, cursor *tracking.Cursor) string {
		lv := url.Values{"q": {data.Query}, "size": {strconv.Itoa(size)}}
		if cursor != nil {
			lv.Set("cursor", cursor.String())
			lv.Set("page", strconv.Itoa(pageNo))
		}
		return "/monitor/tracking?" + lv.Encode()
	}
	res := &results{Total: page.Total, Capped: page.TotalCapped, Page: form.Page}
	res.Pages = max(1, (page.Total+form.Size-1)/form.Size)
	if n := len(page.Messages); n > 0 {
		res.From = (form.Page-1)*form.Size + 1
		res.To = res.From + n - 1
	}
	if page.Next != nil {
		res.NextURL = link(form.Size, form.Page+1, page.Next)
	}
	for _, size := range pageSizes {
		res.Sizes = append(res.Sizes, sizeLink{Size: size, URL: link(size, 1, nil), Current: size == form.Size})
	}
	states, err := u.lastStates(r.Context(), page.Messages)
	if err != nil {
		u.rd.Error(w, r, err)
		return
	}
	for _, m := range page.Messages {
		res.Rows = append(res.Rows, row{Msg: m, LastState: states[m.MID], DetailsURL: "/monitor/tracking/" + strconv.FormatInt(m.MID, 10)})
	}
	data.Results = res
	start, end := searchRange(s)
	data.Coverage = coverage(start, end, data.Generated)
	u.rd.Render(w, r, http.StatusOK, "tracking.html", web.PageData{Title: "Message Tracking", Data: data})
}

func (u *UI) results(ctx context.Context, form searchForm, page tracking.Page) (*results, error) {
	res := &results{Total: page.Total, Capped: page.TotalCapped, Page: form.Page}
	res.Pages = max(1, (page.Total+form.Size-1)/form.Size)
	if n := len(page.Messages); n > 0 {
		res.From = (form.Page-1)*form.Size + 1
		res.To = res.From + n - 1
	}
	if form.Page > 1 {
		res.PrevURL = "/monitor/tracking?" + form.values(form.Page-1).Encode()
	}
	if len(page.Messages) == form.Size && (res.To < page.Total || page.TotalCapped) {
		res.NextURL = "/monitor/tracking?" + form.values(form.Page+1).Encode()
	}
	res.ExportURL = "/monitor/tracking/export.csv?" + form.values(1).Encode()
	for _, s := range pageSizes {
		f := form
		f.Size = s
		res.Sizes = append(res.Sizes, sizeLink{Size: s, URL: "/monitor/tracking?" + f.values(1).Encode(), Current: s == form.Size})
	}
	states, err := u.lastStates(ctx, page.Messages)
	if err != nil {
		return nil, err
	}
	back := form.values(form.Page).Encode()
	for _, m := range page.Messages {
		res.Rows = append(res.Rows, row{Msg: m, LastState: states[m.MID],
			DetailsURL: "/monitor/tracking/" + strconv.FormatInt(m.MID, 10) + "?" + back})
	}
	return res, nil
}

// lastStates returns the Last State of each message, through LastStater
// when the Tracker has it, else from each message's events.
func (u *UI) lastStates(ctx context.Context, msgs []*tracking.Message) (map[int64]string, error) {
	if len(msgs) == 0 {
		return nil, nil
	}
	mids := make([]int64, len(msgs))
	for i, m := range msgs {
		mids[i] = m.MID
	}
	if ls, ok := u.cfg.Tracking.(LastStater); ok {
		states, err := ls.LastStates(ctx, mids)
		if err != nil {
			return nil, fmt.Errorf("last states: %w", err)
		}
		return states, nil
	}
	states := make(map[int64]string, len(mids))
	for _, mid := range mids {
		_, events, err := u.cfg.Tracking.Details(ctx, mid)
		if sightline.ErrorKind(err) == sightline.NotFound {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("details of MID %d: %w", mid, err)
		}
		states[mid] = lastSummary(events)
	}
	return states, nil
}

// lastSummary returns the Summary of the last event that has one.
func lastSummary(events []tracking.Event) string {
	for i := len(events) - 1; i >= 0; i-- {
		if events[i].Summary != "" {
			return events[i].Summary
		}
	}
	return ""
}

// detailsPage is the data of details.html.
type detailsPage struct {
	Msg     *tracking.Message
	Events  []tracking.Event // summary events only, in order
	BackURL string
}

// details serves one message's facts and its summary events in order.
func (u *UI) details(w http.ResponseWriter, r *http.Request) {
	if u.cfg.Tracking == nil {
		u.unavailable(w, r, "Message Tracking")
		return
	}
	mid, err := strconv.ParseInt(r.PathValue("mid"), 10, 64)
	if err != nil || mid <= 0 {
		u.rd.Error(w, r, sightline.Errorf(sightline.NotFound, "There is no message with MID %q.", clip(r.PathValue("mid"))))
		return
	}
	m, events, err := u.cfg.Tracking.Details(r.Context(), mid)
	if err != nil {
		if sightline.ErrorKind(err) == sightline.NotFound {
			err = sightline.Wrap(sightline.NotFound, err, fmt.Sprintf("There is no message with MID %d.", mid))
		}
		u.rd.Error(w, r, err)
		return
	}
	data := detailsPage{Msg: m, BackURL: "/monitor/tracking"}
	if r.URL.RawQuery != "" {
		// Back to the same search: re-encode only what the form knows.
		form, _ := parseSearch(r.URL.Query(), u.cfg.Now(), u.cfg.Location)
		data.BackURL += "?" + form.values(form.Page).Encode()
	}
	for _, ev := range events {
		if ev.Summary != "" {
			data.Events = append(data.Events, ev)
		}
	}
	u.rd.Render(w, r, http.StatusOK, "details.html", web.PageData{Title: fmt.Sprintf("Message Details: MID %d", mid), Data: data})
}

// exportPage is how many rows the CSV export asks for at a time; each
// batch gets a fresh write deadline.
const (
	exportPage     = tracking.MaxLimit
	exportDeadline = time.Minute
)

var csvHeader = []string{"Time", "MID", "ICID", "Direction", "Sender", "Recipients", "Subject", "Status", "Last State",
	"Sender IP", "Reverse DNS", "Sender Group", "Message ID", "Size", "Attachments", "SHA-256", "SPF", "DKIM", "DMARC"}

// exportCSV streams every row of the search (all pages) as CSV. The time
// range ends at the moment of the request so that paging is stable while
// mail keeps arriving.
func (u *UI) exportCSV(w http.ResponseWriter, r *http.Request) {
	if u.cfg.Tracking == nil {
		u.unavailable(w, r, "Message Tracking")
		return
	}
	now := u.cfg.Now()
	form, q := parseSearch(r.URL.Query(), now, u.cfg.Location)
	if len(form.Errors) > 0 {
		u.rd.Error(w, r, sightline.Errorf(sightline.Invalid, "%s", strings.Join(form.Errors, " ")))
		return
	}
	if q.End.IsZero() || q.End.After(now) {
		q.End = now
	}
	q.Limit = exportPage
	rc := http.NewResponseController(w)
	ctx := r.Context()

	// The first batch is fetched before any byte is written, so that a
	// failing store gives an error page rather than a truncated file.
	page, err := u.cfg.Tracking.Search(ctx, q)
	if err != nil {
		u.rd.Error(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/csv; charset=utf-8")
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="message-tracking-%s.csv"`, now.In(u.cfg.Location).Format("20060102-1504")))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	cw := csv.NewWriter(w)
	cw.Write(csvHeader)
	for {
		rc.SetWriteDeadline(time.Now().Add(exportDeadline)) // ErrNotSupported: nothing to extend
		states, err := u.lastStates(ctx, page.Messages)
		if err != nil {
			u.exportFailed(r, cw, err)
			return
		}
		for _, m := range page.Messages {
			cw.Write(csvRecord(m, states[m.MID], u.rd.FormatTime))
		}
		cw.Flush()
		if err := cw.Error(); err != nil {
			u.log.Info("export aborted", "err", err)
			return
		}
		rc.Flush()
		if len(page.Messages) < exportPage {
			return
		}
		q.Offset += len(page.Messages)
		if page, err = u.cfg.Tracking.Search(ctx, q); err != nil {
			u.exportFailed(r, cw, err)
			return
		}
	}
}

// exportFailed ends a CSV whose rows have started: the status is sent, so
// the file ends with a line that says it is incomplete.
func (u *UI) exportFailed(r *http.Request, cw *csv.Writer, err error) {
	if !errors.Is(err, context.Canceled) {
		u.log.Error("export failed", "path", r.URL.Path, "err", err)
	}
	cw.Write([]string{"# export incomplete: " + sightline.ErrorMessage(err)})
	cw.Flush()
}

func csvRecord(m *tracking.Message, lastState string, fmtTime func(time.Time) string) []string {
	var rcpts, names, hashes []string
	for _, rc := range m.Recipients {
		rcpts = append(rcpts, rc.Address)
	}
	for _, a := range m.Attachments {
		names = append(names, a.Name)
		hashes = append(hashes, a.SHA256)
	}
	rec := []string{fmtTime(m.InjectedAt), strconv.FormatInt(m.MID, 10), strconv.FormatInt(m.ICID, 10), m.Direction,
		m.Sender, strings.Join(rcpts, "; "), m.Subject, m.Status, lastState,
		m.SenderIP, m.ReverseDNS, m.SenderGroup, m.MessageID, strconv.FormatInt(m.Size, 10),
		strings.Join(names, "; "), strings.Join(hashes, "; "), m.SPF, m.DKIM, m.DMARC}
	for i, s := range rec {
		rec[i] = csvSafe(s)
	}
	return rec
}

// csvSafe keeps a spreadsheet from reading text that senders control (a
// subject, an address) as a formula.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// statusClass returns the badge style of a tracking status.
func statusClass(status string) string {
	switch {
	case status == tracking.StatusDelivered:
		return "badge-ok"
	case strings.HasPrefix(status, "Quarantined"):
		return "badge-warn"
	case strings.HasPrefix(status, "Dropped"), strings.Contains(status, "Bounced"), status == tracking.StatusAborted:
		return "badge-danger"
	}
	return "badge-neutral"
}

// funcs are the gateway pages' template functions.
var funcs = template.FuncMap{
	"statusClass": statusClass,
	"join":        strings.Join,
	"pathEscape":  url.PathEscape,
	"recipients": func(rs []tracking.Recipient) string {
		s := make([]string, len(rs))
		for i, r := range rs {
			s[i] = r.Address
		}
		return strings.Join(s, ", ")
	},
	"orNone": func(s string) string {
		if s == "" {
			return "—"
		}
		return s
	},
}
