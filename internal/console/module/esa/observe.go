package esa

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/sightline/sightline/internal/console/module"
	"github.com/sightline/sightline/internal/ctim"
	"github.com/sightline/sightline/internal/observable"
	"github.com/sightline/sightline/internal/tracking"
)

// pageSize is the limit of each search request.
const pageSize = 100

// searchRow is the attributes of one row of GET message-tracking/messages
// (gateway-api.md §5): one injected message with the MIDs it split into.
type searchRow struct {
	SerialNumber  string              `json:"serialNumber"`
	Direction     string              `json:"direction"`
	MID           []int64             `json:"mid"`
	Timestamp     string              `json:"timestamp"`
	Sender        string              `json:"sender"`
	SenderIP      string              `json:"senderIp"`
	Recipient     []string            `json:"recipient"`
	RecipientMap  map[string][]string `json:"recipientMap"`
	Subject       string              `json:"subject"`
	MessageID     map[string]string   `json:"messageID"`
	MessageStatus map[string]string   `json:"messageStatus"`
	VerdictChart  map[string]string   `json:"verdictChart"`
}

type searchAnswer struct {
	Meta struct {
		TotalCount int `json:"totalCount"`
	} `json:"meta"`
	Data []struct {
		Attributes searchRow `json:"attributes"`
	} `json:"data"`
}

// details is data.messages of GET message-tracking/details (§7). MID is
// raw because an unknown MID answers ["N/A"].
type details struct {
	MID         json.RawMessage `json:"mid"`
	HostName    string          `json:"hostName"`
	Attachments []string        `json:"attachments"`
	ShowURL     bool            `json:"showURL"`
	Summary     []struct {
		Timestamp string `json:"timestamp"`
		LastEvent bool   `json:"lastEvent"`
	} `json:"summary"`
}

// nativeMessage is one message of the native search (search-and-bench.md §A.4).
type nativeMessage struct {
	MID         int64 `json:"mid"`
	Attachments []struct {
		Name   string `json:"name"`
		SHA256 string `json:"sha256"`
	} `json:"attachments"`
	URLs []string `json:"urls"`
}

type nativeAnswer struct {
	Messages   []nativeMessage `json:"messages"`
	NextCursor string          `json:"next_cursor"`
}

// message is what observe gathers about one MID.
type message struct {
	mid     int64
	row     *searchRow
	matched []ctim.Observable // the request's observables it matched
	details *details          // nil when unknown
	native  *nativeMessage    // attachments' hashes and URLs; nil when unknown
	// complete says that row, details and native come from the gateway's
	// record of the message: there is nothing to describe.
	complete bool
}

// search is one way to find messages for an observable: AsyncOS tracking
// parameters, or a native search query.
type search struct {
	params url.Values // AsyncOS filters, without dates and paging
	native string     // native query, without the time bound
}

// searchesFor maps an observable to its searches (gateway-api.md §14);
// nil means the type is not searchable on a gateway.
func searchesFor(o ctim.Observable) []search {
	v := o.Value
	is := func(vs ...string) tracking.TextFilter { return tracking.TextFilter{Op: tracking.OpIs, Values: vs} }
	var qs []tracking.Query
	switch o.Type {
	case observable.Email:
		qs = []tracking.Query{{Sender: is(v)}, {Recipient: is(v)}}
	case observable.EmailSubject:
		qs = []tracking.Query{{Subject: is(v)}}
	case observable.EmailMessageID:
		qs = []tracking.Query{{MessageIDs: []string{v}}}
	case observable.CiscoMID:
		mid, err := strconv.ParseInt(v, 10, 64)
		if err != nil || mid < 0 {
			return nil
		}
		qs = []tracking.Query{{MIDs: []int64{mid}}}
	case observable.IP, observable.IPv6:
		qs = []tracking.Query{{SenderIPs: []string{v}}}
	case observable.Domain:
		qs = []tracking.Query{{Domain: is(v)}}
	case observable.SHA256:
		qs = []tracking.Query{{SHA256s: []string{v}}}
	case observable.FileName:
		qs = []tracking.Query{{AttachmentName: is(v)}}
	case observable.URL:
		return []search{{native: `url:"` + strings.ReplaceAll(v, `"`, `\"`) + `"`}}
	case observable.SHA1:
		return []search{{native: "sha1:" + v}}
	case observable.MD5:
		return []search{{native: "md5:" + v}}
	case observable.Hostname:
		return []search{{native: "host:" + v}}
	}
	ss := make([]search, 0, len(qs))
	for _, q := range qs {
		ss = append(ss, search{params: q.Values()})
	}
	return ss
}

// observation gathers the messages of one observe call, safe for
// concurrent use.
type observation struct {
	mu       sync.Mutex
	messages map[int64]*message
	errs     []module.Error
}

func (ob *observation) fail(e module.Error) {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	for _, x := range ob.errs {
		if x == e {
			return
		}
	}
	ob.errs = append(ob.errs, e)
}

// add records that MID mid (described by row, which may be nil) matched o.
func (ob *observation) add(mid int64, row *searchRow, o ctim.Observable) {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	m := ob.messages[mid]
	if m == nil {
		m = &message{mid: mid}
		ob.messages[mid] = m
	}
	if m.row == nil {
		m.row = row
	}
	if !slices.Contains(m.matched, o) {
		m.matched = append(m.matched, o)
	}
}

// Observe finds the messages matching each supported observable within the
// timeframe and returns one sighting per MID (ctim.md §14), newest first.
// Unsupported observable types are skipped. Gateway failures come back as
// errors next to the sightings found before them.
func (m *esaModule) Observe(ctx context.Context, obs []ctim.Observable) (module.Data, []module.Error, error) {
	now := m.opts.Now().UTC()
	end := now.Truncate(time.Minute)
	start := now.Add(-time.Duration(m.settings.TimeframeDays) * 24 * time.Hour).Truncate(time.Minute)
	ob := &observation{messages: map[int64]*message{}}

	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(m.opts.Parallel)
	seen := map[string]bool{}
	for _, o := range obs {
		if seen[o.Key()] {
			continue
		}
		seen[o.Key()] = true
		for _, s := range searchesFor(o) {
			g.Go(func() error {
				m.find(gctx, ob, o, s, start, end)
				return nil
			})
		}
	}
	g.Wait()

	// Messages found by the native search alone need their tracking row.
	var rowless []int64
	for mid, msg := range ob.messages {
		if msg.row == nil {
			rowless = append(rowless, mid)
		}
	}
	slices.Sort(rowless)
	if !m.recordsUsable() || !m.completeRecords(ctx, ob, rowless, start, end) {
		m.fetchRows(ctx, ob, rowless, start, end)
	}

	msgs := make([]*message, 0, len(ob.messages))
	for _, msg := range ob.messages {
		if msg.row != nil {
			msgs = append(msgs, msg)
		}
	}
	newestFirst(msgs)
	if len(msgs) > m.opts.MaxMessages {
		ob.fail(module.Error{Code: codeUnknown, Type: typeWarning, Message: fmt.Sprintf(
			"%d messages match; the %d newest are shown: shorten the module's timeframe or search for fewer observables.", len(msgs), m.opts.MaxMessages)})
		msgs = msgs[:m.opts.MaxMessages]
	}

	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(m.opts.Parallel)
	for _, msg := range msgs {
		if msg.complete {
			continue
		}
		g.Go(func() error {
			m.describe(gctx, ob, msg)
			return nil
		})
	}
	g.Wait()

	sightings := make([]*ctim.Sighting, 0, len(msgs))
	for _, msg := range msgs {
		if injected(msg).IsZero() {
			ob.fail(module.Error{Code: codeUnknown, Type: typeWarning, Message: fmt.Sprintf(
				"MID %d is left out: the gateway gave its time as %q, not as AsyncOS prints times.", msg.mid, msg.row.Timestamp)})
			continue
		}
		sightings = append(sightings, m.sighting(msg))
	}
	data := module.Data{}
	if len(sightings) > 0 {
		b, err := json.Marshal(struct {
			Count int              `json:"count"`
			Docs  []*ctim.Sighting `json:"docs"`
		}{len(sightings), sightings})
		if err != nil {
			return nil, nil, fmt.Errorf("encode sightings: %w", err)
		}
		data["sightings"] = b
	}
	return data, ob.errs, nil
}

// newestFirst sorts msgs by injection time, then MID, descending; each
// time is read once.
func newestFirst(msgs []*message) {
	type keyed struct {
		at  time.Time
		msg *message
	}
	ks := make([]keyed, len(msgs))
	for i, msg := range msgs {
		ks[i] = keyed{injected(msg), msg}
	}
	slices.SortFunc(ks, func(a, b keyed) int {
		return cmp.Or(b.at.Compare(a.at), cmp.Compare(b.msg.mid, a.msg.mid))
	})
	for i, k := range ks {
		msgs[i] = k.msg
	}
}

// find runs one search for o and records the messages found, up to
// MaxMessages.
func (m *esaModule) find(ctx context.Context, ob *observation, o ctim.Observable, s search, start, end time.Time) {
	if s.native != "" {
		m.findNative(ctx, ob, o, s.native, start)
		return
	}
	if m.recordsUsable() && m.findRecords(ctx, ob, o, s.params, start, end) {
		return
	}
	found := 0
	for offset := 0; found < m.opts.MaxMessages; offset += pageSize {
		q := dated(s.params, start, end)
		q.Set("offset", strconv.Itoa(offset))
		q.Set("limit", strconv.Itoa(pageSize))
		var ans searchAnswer
		if err := m.get(ctx, pathMessages, q, &ans); err != nil {
			ob.fail(m.moduleError(ctx, err))
			return
		}
		for i := range ans.Data {
			row := &ans.Data[i].Attributes
			for _, mid := range row.MID {
				ob.add(mid, row, o)
			}
			found++
		}
		if len(ans.Data) < pageSize || offset+len(ans.Data) >= ans.Meta.TotalCount {
			return
		}
	}
	ob.fail(tooMany(o, m.opts.MaxMessages))
}

// tooMany is the warning that more than n messages match o.
func tooMany(o ctim.Observable, n int) module.Error {
	return module.Error{Code: codeUnknown, Type: typeWarning, Message: fmt.Sprintf(
		"More than %d messages match %s; the newest %d are shown: shorten the module's timeframe.", n, o, n)}
}

// findNative runs a native search for o. A gateway without the native
// search (noSearch) has no results.
func (m *esaModule) findNative(ctx context.Context, ob *observation, o ctim.Observable, query string, start time.Time) {
	q := url.Values{"q": {query + " after:" + start.Format("2006-01-02T15:04")}, "tz": {"UTC"}, "limit": {strconv.Itoa(pageSize)}}
	for found := 0; found < m.opts.MaxMessages; {
		var ans nativeAnswer
		if err := m.get(ctx, pathSearch, q, &ans); err != nil {
			if !noSearch(err) {
				ob.fail(m.moduleError(ctx, err))
			}
			return
		}
		for _, nm := range ans.Messages {
			ob.add(nm.MID, nil, o)
			found++
		}
		if ans.NextCursor == "" || len(ans.Messages) == 0 {
			return
		}
		q.Set("cursor", ans.NextCursor)
	}
	ob.fail(tooMany(o, m.opts.MaxMessages))
}

// fetchRows gets the tracking rows of mids, by batches of repeated ciscoMid.
func (m *esaModule) fetchRows(ctx context.Context, ob *observation, mids []int64, start, end time.Time) {
	for batch := range slices.Chunk(mids, pageSize) {
		q := dated(tracking.Query{MIDs: batch}.Values(), start, end)
		q.Set("limit", strconv.Itoa(pageSize))
		var ans searchAnswer
		if err := m.get(ctx, pathMessages, q, &ans); err != nil {
			ob.fail(m.moduleError(ctx, err))
			return
		}
		ob.mu.Lock()
		for i := range ans.Data {
			row := &ans.Data[i].Attributes
			for _, mid := range row.MID {
				if msg := ob.messages[mid]; msg != nil && msg.row == nil {
					msg.row = row
				}
			}
		}
		ob.mu.Unlock()
	}
}

// describe fetches the details of msg and, when it has attachments or URLs,
// their hashes and addresses from the native search. A failure leaves the
// sighting with what the search row says.
func (m *esaModule) describe(ctx context.Context, ob *observation, msg *message) {
	q := url.Values{"serialNumber": {msg.row.SerialNumber}, "mid": {strconv.FormatInt(msg.mid, 10)}}
	var ans struct {
		Data struct {
			Messages details `json:"messages"`
		} `json:"data"`
	}
	if err := m.get(ctx, pathDetails, q, &ans); err != nil {
		ob.fail(m.moduleError(ctx, err))
		return
	}
	if string(ans.Data.Messages.MID) == `["N/A"]` {
		return
	}
	msg.details = &ans.Data.Messages
	if len(msg.details.Attachments) == 0 && !msg.details.ShowURL {
		return
	}
	var nat nativeAnswer
	nq := url.Values{"q": {"mid:" + strconv.FormatInt(msg.mid, 10)}, "limit": {"1"}}
	if err := m.get(ctx, pathSearch, nq, &nat); err != nil {
		if !noSearch(err) {
			ob.fail(m.moduleError(ctx, err))
		}
		return
	}
	for i := range nat.Messages {
		if nat.Messages[i].MID == msg.mid {
			msg.native = &nat.Messages[i]
		}
	}
}

// dated returns a copy of params with the search's fixed parameters and
// the timeframe [start, end], both whole minutes (gateway-api.md §4, §14).
func dated(params url.Values, start, end time.Time) url.Values {
	q := url.Values{}
	for k, v := range params {
		q[k] = slices.Clone(v)
	}
	q.Set("startDate", start.UTC().Format(asyncOSDate))
	q.Set("endDate", end.UTC().Format(asyncOSDate))
	q.Set("searchOption", "messages")
	q.Set("ciscoHost", "All_Hosts")
	return q
}

// asyncOSDate is the input form of startDate and endDate: seconds and
// milliseconds are always 00.000.
const asyncOSDate = "2006-01-02T15:04:00.000Z"

// injected is the injection time of msg's row, zero if unreadable.
func injected(msg *message) time.Time {
	t, _ := time.Parse(tracking.DateLayout, msg.row.Timestamp)
	return t
}

// noSearch reports whether err says the gateway has no native search: a 404,
// or a redirect (to the login page of a gateway whose web interface
// catches the path). Then the search has no results.
func noSearch(err error) bool {
	var ge *gatewayError
	return errors.As(err, &ge) && (ge.Status == http.StatusNotFound || ge.Status >= 300 && ge.Status < 400)
}
