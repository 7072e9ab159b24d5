package ui

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/tracking"
	"github.com/sightline/sightline/internal/web"
	"golang.org/x/net/html"
)

var testNow = time.Date(2026, 1, 10, 8, 30, 0, 0, time.UTC)

// fakeTracker holds messages newest first and records the queries it gets.
type fakeTracker struct {
	mu      sync.Mutex
	msgs    []*tracking.Message
	events  map[int64][]tracking.Event
	queries []tracking.Query
	details int // Details calls
	err     error
}

func (f *fakeTracker) Search(ctx context.Context, q tracking.Query) (tracking.Page, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queries = append(f.queries, q)
	if f.err != nil {
		return tracking.Page{}, f.err
	}
	var match []*tracking.Message
	for _, m := range f.msgs {
		if q.Subject.Active() && !strings.HasPrefix(strings.ToLower(m.Subject), strings.ToLower(q.Subject.Values[0])) {
			continue
		}
		if !q.End.IsZero() && !m.InjectedAt.Before(q.End) {
			continue
		}
		match = append(match, m)
	}
	p := tracking.Page{Total: len(match)}
	if q.Offset < len(match) {
		p.Messages = match[q.Offset:min(len(match), q.Offset+q.PageLimit())]
	}
	return p, nil
}

func (f *fakeTracker) Details(ctx context.Context, mid int64) (*tracking.Message, []tracking.Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.details++
	for _, m := range f.msgs {
		if m.MID == mid {
			return m, f.events[mid], nil
		}
	}
	return nil, nil, sightline.Errorf(sightline.NotFound, "no such MID")
}

// lastStateTracker adds the batch Last State method.
type lastStateTracker struct {
	*fakeTracker
	calls int
}

func (f *lastStateTracker) LastStates(ctx context.Context, mids []int64) (map[int64]string, error) {
	f.calls++
	m := map[int64]string{}
	for _, mid := range mids {
		m[mid] = fmt.Sprintf("batch state %d", mid)
	}
	return m, nil
}

// newTracker returns n messages, MIDs n…1, one minute apart back from
// testNow, every third with subject "test test".
func newTracker(n int) *fakeTracker {
	f := &fakeTracker{events: map[int64][]tracking.Event{}}
	for i := range n {
		mid := int64(n - i)
		at := testNow.Add(-time.Duration(i+1) * time.Minute)
		subject := fmt.Sprintf("Invoice %d", mid)
		if i%3 == 0 {
			subject = "test test"
		}
		rcpt := fmt.Sprintf("user%d@corp.example", mid)
		f.msgs = append(f.msgs, &tracking.Message{MID: mid, ICID: 100 + mid, InjectedAt: at, Direction: "incoming",
			Sender: "mgmt01@cisco.com", Subject: subject, Status: tracking.StatusDelivered, SenderIP: "203.0.113.25",
			Recipients: []tracking.Recipient{{Address: rcpt, Status: tracking.StatusDelivered}}})
		f.events[mid] = []tracking.Event{
			{Time: at, ICID: 100 + mid, Summary: fmt.Sprintf("Incoming connection (ICID %d) has sender_group: UNKNOWNLIST, sender_ip: 203.0.113.25 and sbrs: None", 100+mid)},
			{Time: at, MID: mid, Log: "log-only line"},
			{Time: at.Add(time.Second), MID: mid, Summary: fmt.Sprintf("Message %d to %s received remote SMTP response 'ok:  Message 89 accepted'.", mid, rcpt)},
		}
	}
	return f
}

type fakeQuarantine struct {
	mu       sync.Mutex
	held     map[string][]QuarantinedMessage
	released []int64
	deleted  []int64
}

func (f *fakeQuarantine) Quarantined(ctx context.Context, name string) ([]QuarantinedMessage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.held[name], nil
}

func (f *fakeQuarantine) act(mid int64, to *[]int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for name, ms := range f.held {
		for i, m := range ms {
			if m.MID == mid {
				f.held[name] = append(ms[:i:i], ms[i+1:]...)
				*to = append(*to, mid)
				return nil
			}
		}
	}
	return sightline.Errorf(sightline.NotFound, "Message %d is not in a quarantine.", mid)
}

func (f *fakeQuarantine) Release(ctx context.Context, mid int64) error {
	return f.act(mid, &f.released)
}
func (f *fakeQuarantine) Delete(ctx context.Context, mid int64) error { return f.act(mid, &f.deleted) }

type fakeOverview struct{ since time.Time }

func (f *fakeOverview) Overview(ctx context.Context, since time.Time) (Overview, error) {
	f.since = since
	return Overview{
		Hours: []HourCounts{
			{Start: since, Delivered: 10, Quarantined: 2},
			{Start: since.Add(23 * time.Hour), Delivered: 30, Dropped: 1, Bounced: 1},
			{Start: since.Add(-time.Hour), Delivered: 999}, // before the window: ignored
		},
		TopSenders: []Ranked{{"newsletter@shop.example", 40}, {"mgmt01@cisco.com", 10}},
		TopThreats: []Ranked{{"Eicar-Test-Signature", 3}},
		QueueDepth: 7,
	}, nil
}

type env struct {
	srv *httptest.Server
	c   *http.Client
	tok string
}

func newEnv(t *testing.T, cfg Config) *env {
	t.Helper()
	s, err := web.NewSessions("sl_gateway", []byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Sessions = s
	cfg.Authenticate = func(ctx context.Context, user, pass string) (web.User, error) {
		if user == "admin" && pass == "ironport" {
			return web.User{Name: "admin", Role: "Administrator"}, nil
		}
		return web.User{}, sightline.Errorf(sightline.Unauthorized, "bad credentials")
	}
	cfg.Now = func() time.Time { return testNow }
	u, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{srv: httptest.NewServer(u.Routes())}
	t.Cleanup(e.srv.Close)
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	e.c = &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	login := e.get(t, "/login")
	res := e.post(t, "/login", url.Values{"csrf_token": {formToken(t, login)}, "username": {"admin"}, "passphrase": {"ironport"}, "next": {"/monitor/overview"}})
	if res.status != http.StatusSeeOther {
		t.Fatalf("sign in = %d, want 303:\n%s", res.status, res.body)
	}
	e.tok = formToken(t, e.get(t, "/monitor/tracking"))
	return e
}

type page struct {
	status int
	header http.Header
	body   string
	doc    *html.Node
}

func (e *env) do(t *testing.T, req *http.Request) page {
	t.Helper()
	res, err := e.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := html.Parse(strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return page{status: res.StatusCode, header: res.Header, body: string(b), doc: doc}
}

func (e *env) get(t *testing.T, path string) page {
	t.Helper()
	req, err := http.NewRequest("GET", e.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return e.do(t, req)
}

func (e *env) post(t *testing.T, path string, form url.Values) page {
	t.Helper()
	req, err := http.NewRequest("POST", e.srv.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return e.do(t, req)
}

func find(n *html.Node, match func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	for d := range n.Descendants() {
		if d.Type == html.ElementNode && match(d) {
			out = append(out, d)
		}
	}
	return out
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func text(n *html.Node) string {
	var b strings.Builder
	for d := range n.Descendants() {
		if d.Type == html.TextNode {
			b.WriteString(d.Data + " ")
		}
	}
	return strings.Join(strings.Fields(b.String()), " ")
}

func hasClass(n *html.Node, c string) bool {
	return strings.Contains(" "+attr(n, "class")+" ", " "+c+" ")
}

func formToken(t *testing.T, p page) string {
	t.Helper()
	in := find(p.doc, func(n *html.Node) bool { return n.Data == "input" && attr(n, "name") == "csrf_token" })
	if len(in) == 0 {
		t.Fatalf("no csrf_token on the page:\n%s", p.body)
	}
	return attr(in[0], "value")
}

// table returns the text of each cell of the first table with class c.
func table(p page, c string) [][]string {
	var rows [][]string
	for _, tb := range find(p.doc, func(n *html.Node) bool { return n.Data == "table" && hasClass(n, c) }) {
		for _, tr := range find(tb, func(n *html.Node) bool { return n.Data == "tr" }) {
			var cells []string
			for _, td := range find(tr, func(n *html.Node) bool { return n.Data == "td" || n.Data == "th" }) {
				cells = append(cells, text(td))
			}
			rows = append(rows, cells)
		}
		break
	}
	return rows
}

func TestNav(t *testing.T) {
	var got []string
	for _, s := range Nav {
		for _, it := range s.Items {
			got = append(got, s.Title+" > "+it.Label)
		}
	}
	want := []string{
		"Monitor > Message Tracking", "Monitor > Quarantine", "Monitor > Overview",
		"Mail Policies > Host Access Table", "Mail Policies > Recipient Access Table", "Mail Policies > Content Filters",
		"Security Services > Anti-Virus", "Security Services > SPF/DKIM/DMARC", "Security Services > Reputation Lists",
		"Network > Cloud Service Settings", "Network > SMTP Routes",
		"System Administration > Users", "System Administration > Configuration History",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Nav (-want +got):\n%s", diff)
	}
}

func TestPagesNeedSignIn(t *testing.T) {
	u, err := New(Config{Sessions: mustSessions(t), Authenticate: func(context.Context, string, string) (web.User, error) { return web.User{}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(u.Routes())
	defer srv.Close()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, path := range []string{"/", "/monitor/tracking?search=1", "/monitor/tracking/5", "/monitor/tracking/export.csv", "/monitor/quarantine/Policy", "/monitor/overview"} {
		res, err := c.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if loc := res.Header.Get("Location"); res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/login?next=") {
			t.Errorf("GET %s anonymously = %d to %q, want 303 to the login page", path, res.StatusCode, loc)
		}
	}
}

func mustSessions(t *testing.T) *web.Sessions {
	t.Helper()
	s, err := web.NewSessions("sl_gateway", []byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestTrackingSearch(t *testing.T) {
	tr := newTracker(60) // 20 with subject "test test"
	e := newEnv(t, Config{Tracking: tr})

	// The bare page shows the form and runs no search.
	p := e.get(t, "/monitor/tracking")
	if p.status != http.StatusOK || len(tr.queries) != 0 {
		t.Fatalf("GET /monitor/tracking = %d with %d searches, want 200 and none", p.status, len(tr.queries))
	}
	for _, name := range []string{"sender_op", "sender", "recipient_op", "recipient", "subject_op", "subject", "range", "start_date", "start_time", "end_date", "end_time",
		"sender_ip", "message_id", "mid", "attachment", "sha256", "status"} {
		if len(find(p.doc, func(n *html.Node) bool { return attr(n, "name") == name })) == 0 {
			t.Errorf("search form lacks field %q", name)
		}
	}
	var opLabels []string
	for _, o := range find(p.doc, func(n *html.Node) bool {
		return n.Data == "option" && n.Parent != nil && attr(n.Parent, "name") == "subject_op"
	}) {
		opLabels = append(opLabels, text(o))
	}
	if diff := cmp.Diff([]string{"Begins With", "Is", "Contains"}, opLabels); diff != "" {
		t.Errorf("subject operators (-want +got):\n%s", diff)
	}

	p = e.get(t, "/monitor/tracking?search=1&subject_op=begins_with&subject=test+test&size=20")
	if p.status != http.StatusOK {
		t.Fatalf("search = %d, want 200:\n%s", p.status, p.body)
	}
	q := tr.queries[len(tr.queries)-1]
	if q.Subject.Op != tracking.OpBeginsWith || q.Subject.Values[0] != "test test" || q.Offset != 0 || q.Limit != 20 || !q.Start.Equal(testNow.Add(-24*time.Hour)) {
		t.Errorf("search query = %+v, want subject begins with %q, offset 0, limit 20, the last day", q, "test test")
	}
	rows := table(p, "results")
	if len(rows) != 21 {
		t.Fatalf("results table has %d rows, want a header and 20", len(rows))
	}
	if diff := cmp.Diff([]string{"Time", "MID", "Sender", "Recipient", "Subject", "Last State", "Details"}, rows[0]); diff != "" {
		t.Errorf("results header (-want +got):\n%s", diff)
	}
	want := []string{"10 Jan 2026 08:29:00 (GMT +00:00)", "60", "mgmt01@cisco.com", "user60@corp.example", "test test",
		"Delivered Message 60 to user60@corp.example received remote SMTP response 'ok: Message 89 accepted'.", "Show Details"}
	if diff := cmp.Diff(want, rows[1]); diff != "" {
		t.Errorf("first result (-want +got):\n%s", diff)
	}
	if !strings.Contains(text(p.doc), "Displaying 1 — 20 of 20 items.") {
		t.Errorf("results do not count 1 — 20 of 20")
	}
	details := find(p.doc, func(n *html.Node) bool { return n.Data == "a" && text(n) == "Show Details" })
	if len(details) != 20 || !strings.HasPrefix(attr(details[0], "href"), "/monitor/tracking/60?") {
		t.Errorf("Show Details links = %d, first %q; want 20 to /monitor/tracking/60?…", len(details), attr(details[0], "href"))
	}
}

func TestTrackingPaging(t *testing.T) {
	tr := newTracker(45)
	e := newEnv(t, Config{Tracking: tr})
	tests := []struct {
		page       int
		offset     int
		rows       int
		count      string
		prev, next bool
	}{
		{1, 0, 20, "Displaying 1 — 20 of 45 items.", false, true},
		{2, 20, 20, "Displaying 21 — 40 of 45 items.", true, true},
		{3, 40, 5, "Displaying 41 — 45 of 45 items.", true, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint("page ", tt.page), func(t *testing.T) {
			p := e.get(t, fmt.Sprintf("/monitor/tracking?search=1&page=%d", tt.page))
			if q := tr.queries[len(tr.queries)-1]; q.Offset != tt.offset || q.Limit != 20 {
				t.Errorf("page %d searched offset %d limit %d, want %d, 20", tt.page, q.Offset, q.Limit, tt.offset)
			}
			if got := len(table(p, "results")) - 1; got != tt.rows {
				t.Errorf("page %d shows %d rows, want %d", tt.page, got, tt.rows)
			}
			if !strings.Contains(text(p.doc), tt.count) {
				t.Errorf("page %d lacks %q", tt.page, tt.count)
			}
			link := func(rel string) bool {
				return len(find(p.doc, func(n *html.Node) bool { return n.Data == "a" && attr(n, "rel") == rel })) > 0
			}
			if link("prev") != tt.prev || link("next") != tt.next {
				t.Errorf("page %d Previous, Next links = %v, %v; want %v, %v", tt.page, link("prev"), link("next"), tt.prev, tt.next)
			}
		})
	}
	p := e.get(t, "/monitor/tracking?search=1&size=50")
	if got := len(table(p, "results")) - 1; got != 45 {
		t.Errorf("page size 50 shows %d rows, want 45", got)
	}
}

func TestTrackingInvalidForm(t *testing.T) {
	tr := newTracker(3)
	e := newEnv(t, Config{Tracking: tr})
	p := e.get(t, "/monitor/tracking?search=1&sender_ip=nope&mid=abc")
	if p.status != http.StatusBadRequest || len(tr.queries) != 0 {
		t.Fatalf("invalid search = %d with %d searches, want 400 and none", p.status, len(tr.queries))
	}
	var errs []string
	for _, li := range find(p.doc, func(n *html.Node) bool { return n.Data == "li" && n.Parent != nil && hasClass(n.Parent, "error-list") }) {
		errs = append(errs, text(li))
	}
	want := []string{`Sender IP: "nope" is not an IPv4 or IPv6 address.`, `Cisco MID: "abc" is not a message number.`}
	if diff := cmp.Diff(want, errs); diff != "" {
		t.Errorf("errors shown (-want +got):\n%s", diff)
	}
	if got := find(p.doc, func(n *html.Node) bool { return attr(n, "aria-invalid") == "true" }); len(got) != 2 {
		t.Errorf("%d fields marked invalid, want 2", len(got))
	}
	if v := find(p.doc, func(n *html.Node) bool { return attr(n, "name") == "sender_ip" }); attr(v[0], "value") != "nope" {
		t.Errorf("the form does not keep what the user typed")
	}
}

func TestTrackingStoreError(t *testing.T) {
	tr := newTracker(3)
	tr.err = sightline.Errorf(sightline.Unavailable, "The tracking database is busy; try again.")
	e := newEnv(t, Config{Tracking: tr})
	p := e.get(t, "/monitor/tracking?search=1")
	if p.status != http.StatusServiceUnavailable || !strings.Contains(text(p.doc), "The tracking database is busy; try again.") {
		t.Errorf("search with a failing store = %d %q, want 503 with its message", p.status, text(p.doc))
	}
}

func TestTrackingLastStater(t *testing.T) {
	tr := &lastStateTracker{fakeTracker: newTracker(30)}
	e := newEnv(t, Config{Tracking: tr})
	p := e.get(t, "/monitor/tracking?search=1")
	rows := table(p, "results")
	if tr.calls != 1 || tr.details != 0 {
		t.Errorf("LastStates calls = %d, Details calls = %d; want 1 and 0", tr.calls, tr.details)
	}
	if len(rows) < 2 || rows[1][5] != "Delivered batch state 30" {
		t.Errorf("first row = %v, want the batch last state", rows[1])
	}
}

func TestDetails(t *testing.T) {
	tr := newTracker(3)
	m := tr.msgs[0]
	m.Attachments = []tracking.Attachment{{Name: "invoice.pdf", Type: "application/pdf", Size: 40192, SHA256: strings.Repeat("ab", 32)}}
	m.SPF, m.DKIM, m.DMARC, m.ReverseDNS, m.SenderGroup, m.MailPolicy = "pass", "none", "fail", "mail.sender.example (verified)", "UNKNOWNLIST", []string{"DEFAULT"}
	e := newEnv(t, Config{Tracking: tr})

	p := e.get(t, "/monitor/tracking/3?search=1&subject=test&page=1")
	if p.status != http.StatusOK {
		t.Fatalf("GET details = %d, want 200", p.status)
	}
	var events []string
	for _, li := range find(p.doc, func(n *html.Node) bool { return n.Data == "li" && n.Parent != nil && hasClass(n.Parent, "timeline") }) {
		events = append(events, text(li))
	}
	wantEvents := []string{
		"10 Jan 2026 08:29:00 (GMT +00:00) Incoming connection (ICID 103) has sender_group: UNKNOWNLIST, sender_ip: 203.0.113.25 and sbrs: None",
		"10 Jan 2026 08:29:01 (GMT +00:00) Message 3 to user3@corp.example received remote SMTP response 'ok: Message 89 accepted'. Last state",
	}
	if diff := cmp.Diff(wantEvents, events); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	facts := map[string]string{}
	for _, dt := range find(p.doc, func(n *html.Node) bool { return n.Data == "dt" }) {
		if dd := dt.NextSibling; dd != nil {
			facts[text(dt)] = text(dd)
		}
	}
	for k, v := range map[string]string{"Sender IP": "203.0.113.25", "Reverse DNS": "mail.sender.example (verified)", "Sender group": "UNKNOWNLIST",
		"Mail policy": "DEFAULT", "SPF": "pass", "DKIM": "none", "DMARC": "fail", "Envelope sender": "mgmt01@cisco.com"} {
		if facts[k] != v {
			t.Errorf("fact %q = %q, want %q", k, facts[k], v)
		}
	}
	if !strings.Contains(text(p.doc), "invoice.pdf application/pdf 39.2 KB "+strings.Repeat("ab", 32)) {
		t.Errorf("attachment row with its hash is missing")
	}
	back := find(p.doc, func(n *html.Node) bool { return n.Data == "a" && strings.Contains(text(n), "Back to results") })
	if len(back) != 1 || !strings.Contains(attr(back[0], "href"), "subject=test") {
		t.Errorf("Back to results does not return to the search: %v", back)
	}

	for _, path := range []string{"/monitor/tracking/999", "/monitor/tracking/abc", "/monitor/tracking/-1"} {
		if p := e.get(t, path); p.status != http.StatusNotFound || !strings.Contains(text(p.doc), "There is no message with MID") {
			t.Errorf("GET %s = %d, want 404 naming the MID", path, p.status)
		}
	}
}

func TestExportCSV(t *testing.T) {
	tr := newTracker(2500)
	tr.msgs[0].Subject = "=HYPERLINK(\"http://evil.example\")"
	e := newEnv(t, Config{Tracking: tr})
	p := e.get(t, "/monitor/tracking/export.csv?search=1&range=week&page=3&size=50")
	if p.status != http.StatusOK {
		t.Fatalf("export = %d, want 200:\n%s", p.status, p.body)
	}
	if ct, cd := p.header.Get("Content-Type"), p.header.Get("Content-Disposition"); ct != "text/csv; charset=utf-8" || cd != `attachment; filename="message-tracking-20260110-0830.csv"` {
		t.Errorf("export headers = %q, %q", ct, cd)
	}
	recs, err := csv.NewReader(strings.NewReader(p.body)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2501 {
		t.Fatalf("export has %d records, want a header and 2500 (all pages)", len(recs))
	}
	if diff := cmp.Diff(csvHeader, recs[0]); diff != "" {
		t.Errorf("header (-want +got):\n%s", diff)
	}
	for i, rec := range recs[1:] {
		if want := fmt.Sprint(2500 - i); rec[1] != want {
			t.Fatalf("record %d has MID %s, want %s (every message once, newest first)", i+1, rec[1], want)
		}
	}
	if got := recs[1][6]; got != `'=HYPERLINK("http://evil.example")` {
		t.Errorf("formula subject exported as %q, want it defused with a leading quote", got)
	}
	if got := recs[1][8]; got != "Message 2500 to user2500@corp.example received remote SMTP response 'ok:  Message 89 accepted'." {
		t.Errorf("last state = %q", got)
	}
	for _, q := range tr.queries {
		if !q.End.Equal(testNow) || !q.Start.Equal(testNow.Add(-7*24*time.Hour)) {
			t.Errorf("export query range = %v…%v, want the last week ending at the request", q.Start, q.End)
		}
	}
	if n := len(tr.queries); n != 3 {
		t.Errorf("export made %d searches, want 3 pages of %d", n, exportPage)
	}

	if p := e.get(t, "/monitor/tracking/export.csv?mid=x"); p.status != http.StatusBadRequest {
		t.Errorf("export of an invalid search = %d, want 400", p.status)
	}
}

func TestCSVSafe(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""}, {"hello", "hello"}, {"=1+1", "'=1+1"}, {"+33 1", "'+33 1"}, {"-x", "'-x"}, {"@SUM(A1)", "'@SUM(A1)"}, {"\tx", "'\tx"}, {"a=b", "a=b"},
	}
	for _, tt := range tests {
		if got := csvSafe(tt.in); got != tt.want {
			t.Errorf("csvSafe(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestQuarantine(t *testing.T) {
	at := testNow.Add(-time.Hour)
	q := &fakeQuarantine{held: map[string][]QuarantinedMessage{
		"Policy": {
			{MID: 315, Time: at, Sender: "alice@sender.example", Recipients: []string{"bob@corp.example"}, Subject: "Invoice 4471", Reason: "content filter 'block_exe' matched"},
			{MID: 316, Time: at, Sender: "alice@sender.example", Recipients: []string{"carol@corp.example"}, Subject: "Invoice 4472", Reason: "content filter 'block_exe' matched"},
			{MID: 317, Time: at, Sender: "eve@sender.example", Recipients: []string{"dan@corp.example"}, Subject: "Hi", Reason: "content filter 'block_exe' matched"},
		},
	}}
	e := newEnv(t, Config{Quarantine: q})

	p := e.get(t, "/monitor/quarantine")
	if p.status != http.StatusSeeOther || p.header.Get("Location") != "/monitor/quarantine/Policy" {
		t.Fatalf("GET /monitor/quarantine = %d to %q, want 303 to the first quarantine", p.status, p.header.Get("Location"))
	}
	p = e.get(t, "/monitor/quarantine/Policy")
	var tabs []string
	for _, a := range find(p.doc, func(n *html.Node) bool { return n.Data == "a" && n.Parent != nil && hasClass(n.Parent, "tabs") }) {
		tabs = append(tabs, text(a))
	}
	if diff := cmp.Diff([]string{"Policy", "Virus", "Outbreak"}, tabs); diff != "" {
		t.Errorf("quarantine tabs (-want +got):\n%s", diff)
	}
	rows := table(p, "table")
	if len(rows) != 4 || !cmp.Equal(rows[1][1:7], []string{"10 Jan 2026 07:30:00 (GMT +00:00)", "315", "alice@sender.example", "bob@corp.example", "Invoice 4471", "content filter 'block_exe' matched"}) {
		t.Errorf("quarantine rows = %q", rows)
	}
	confirms := find(p.doc, func(n *html.Node) bool { return n.Data == "button" && attr(n, "data-confirm") != "" })
	if len(confirms) != 8 {
		t.Errorf("%d buttons ask for confirmation, want 8 (2 bulk + 2 per row)", len(confirms))
	}

	tests := []struct {
		name              string
		path              string
		form              url.Values
		status            int
		released, deleted []int64
		flash             string
	}{
		{"no token", "/monitor/quarantine/Policy/release", url.Values{"mid": {"315"}}, http.StatusForbidden, nil, nil, ""},
		{"release one", "/monitor/quarantine/Policy/release", url.Values{"csrf_token": {e.tok}, "mid": {"315"}, "sel": {"317"}}, http.StatusSeeOther, []int64{315}, nil, "Success — Released 1 message."},
		{"delete selected", "/monitor/quarantine/Policy/delete", url.Values{"csrf_token": {e.tok}, "sel": {"316", "999"}}, http.StatusSeeOther, []int64{315}, []int64{316},
			"Success — Deleted 1 message. Error — Could not delete 1 message. MID 999: Message 999 is not in a quarantine."},
		{"nothing selected", "/monitor/quarantine/Policy/delete", url.Values{"csrf_token": {e.tok}}, http.StatusSeeOther, []int64{315}, []int64{316}, "Error — Select at least one message."},
		{"bad MID", "/monitor/quarantine/Policy/delete", url.Values{"csrf_token": {e.tok}, "sel": {"x"}}, http.StatusBadRequest, []int64{315}, []int64{316}, ""},
		{"unknown quarantine", "/monitor/quarantine/Nope/delete", url.Values{"csrf_token": {e.tok}, "sel": {"317"}}, http.StatusNotFound, []int64{315}, []int64{316}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := e.post(t, tt.path, tt.form)
			if p.status != tt.status {
				t.Fatalf("POST %s = %d, want %d:\n%s", tt.path, p.status, tt.status, p.body)
			}
			q.mu.Lock()
			released, deleted := q.released, q.deleted
			q.mu.Unlock()
			if !cmp.Equal(released, tt.released) || !cmp.Equal(deleted, tt.deleted) {
				t.Errorf("released %v, deleted %v; want %v, %v", released, deleted, tt.released, tt.deleted)
			}
			if tt.flash == "" {
				return
			}
			next := e.get(t, p.header.Get("Location"))
			var banners []string
			for _, b := range find(next.doc, func(n *html.Node) bool { return hasClass(n, "banner") }) {
				banners = append(banners, text(b))
			}
			if got := strings.Join(banners, " "); got != tt.flash {
				t.Errorf("banners after POST = %q, want %q", got, tt.flash)
			}
		})
	}
}

func TestOverview(t *testing.T) {
	ov := &fakeOverview{}
	e := newEnv(t, Config{Overview: ov})
	p := e.get(t, "/monitor/overview")
	if p.status != http.StatusOK {
		t.Fatalf("GET /monitor/overview = %d", p.status)
	}
	if want := time.Date(2026, 1, 9, 9, 0, 0, 0, time.UTC); !ov.since.Equal(want) {
		t.Errorf("Overview since %v, want %v (24 whole hours)", ov.since, want)
	}
	bars := find(p.doc, func(n *html.Node) bool { return n.Data == "g" && hasClass(n, "bar") })
	if len(bars) != 24 {
		t.Fatalf("chart has %d bars, want 24", len(bars))
	}
	if got := len(find(bars[0], func(n *html.Node) bool { return n.Data == "rect" })); got != 2 {
		t.Errorf("first bar has %d segments, want 2 (delivered, quarantined)", got)
	}
	hourly := table(p, "hourly")
	if diff := cmp.Diff([]string{"10 Jan 2026 08:00:00 (GMT +00:00)", "30", "0", "1", "1"}, hourly[24]); diff != "" {
		t.Errorf("last hour row (-want +got):\n%s", diff)
	}
	stats := map[string]string{}
	for _, s := range find(p.doc, func(n *html.Node) bool { return hasClass(n, "stat") }) {
		l := find(s, func(n *html.Node) bool { return hasClass(n, "stat-label") })
		v := find(s, func(n *html.Node) bool { return hasClass(n, "stat-value") })
		stats[text(l[0])] = text(v[0])
	}
	if diff := cmp.Diff(map[string]string{"Messages (24 h)": "44", "Delivered": "40", "Quarantined": "2", "Dropped": "1", "Bounced": "1", "Queue depth": "7"}, stats); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([][]string{{"Sender", "Messages", "Share"}, {"newsletter@shop.example", "40", ""}, {"mgmt01@cisco.com", "10", ""}}, table(p, "ranked")); diff != "" {
		t.Errorf("top senders (-want +got):\n%s", diff)
	}
}

func TestNiceCeil(t *testing.T) {
	tests := []struct{ n, want int }{{0, 4}, {4, 4}, {5, 8}, {9, 20}, {21, 40}, {41, 80}, {81, 200}, {279, 400}, {4001, 8000}}
	for _, tt := range tests {
		if got := niceCeil(tt.n); got != tt.want {
			t.Errorf("niceCeil(%d) = %d, want %d", tt.n, got, tt.want)
		}
	}
}

func TestUnavailable(t *testing.T) {
	e := newEnv(t, Config{})
	for _, path := range []string{"/monitor/tracking", "/monitor/tracking/1", "/monitor/tracking/export.csv", "/monitor/quarantine/Policy", "/monitor/overview"} {
		if p := e.get(t, path); p.status != http.StatusServiceUnavailable || !strings.Contains(text(p.doc), "not available on this gateway") {
			t.Errorf("GET %s without its data source = %d, want 503 saying so", path, p.status)
		}
	}
	if p := e.get(t, "/mail-policies/hat"); p.status != http.StatusServiceUnavailable {
		t.Errorf("GET a configuration page without Settings = %d, want 503", p.status)
	}
	if p := e.get(t, "/no/such/page"); p.status != http.StatusNotFound {
		t.Errorf("GET an unknown page = %d, want 404", p.status)
	}
}
