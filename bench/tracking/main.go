// Command tracking benchmarks Message Tracking search on a large store.
//
// It generates N realistic messages straight into a sqlite.OpenTracking
// store (in batches through BulkLoad: Apply, as the gateway's recorder
// writes them, with the indexes built after the rows, then the substring
// index, as the gateway's indexer writes it),
// then measures the latency of Search for each AsyncOS filter of
// gateway-api.md §5 with a 24-hour and a 30-day window, 20 results a page:
//
//	go run ./bench/tracking -n 1000000 -db /var/tmp/tracking-1m.db
//
// An existing store of at least N messages is reused, so that one generation
// serves several measurements. See docs/benchmarks.md for the figures.
package main

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sightline/sightline/internal/store/sqlite"
	"github.com/sightline/sightline/internal/tracking"
)

func main() {
	var o options
	flag.IntVar(&o.n, "n", 1_000_000, "`messages` in the store")
	flag.StringVar(&o.db, "db", "", "tracking database `file`, kept for later runs with the same -n and -days (default: a temporary file, removed)")
	flag.IntVar(&o.days, "days", 90, "the messages span this many `days`, ending at the newest")
	flag.IntVar(&o.events, "events", 12, "tracking `events` stored per message")
	flag.IntVar(&o.batch, "batch", 2000, "messages per Apply `batch`")
	flag.IntVar(&o.runs, "runs", 200, "timed searches per filter and window")
	flag.DurationVar(&o.budget, "budget", 20*time.Second, "stop timing a filter after this `long`, once it has 10 samples")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the run to `file`")
	flag.StringVar(&o.only, "only", "", "measure only the filters whose name contains this `text` (several: separated by commas)")
	flag.BoolVar(&o.index, "index", true, "write the substring index of every queued message before measuring; with false, contains filters scan what is queued")
	flag.Parse()
	if err := run(context.Background(), o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "tracking bench:", err)
		os.Exit(1)
	}
}

type options struct {
	n, days, events, batch, runs int
	budget                       time.Duration
	db, cpuprofile, only         string
	index                        bool
}

func run(ctx context.Context, o options, out io.Writer) error {
	if o.n < 1000 || o.days < 30 || o.batch < 1 || o.runs < 1 || o.events < 0 {
		return errors.New("want -n >= 1000, -days >= 30, -batch, -runs >= 1, -events >= 0")
	}
	if o.db == "" {
		dir, err := os.MkdirTemp("", "tracking-bench")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		o.db = filepath.Join(dir, "tracking.db")
	}
	if o.cpuprofile != "" {
		f, err := os.Create(o.cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	g := newGenerator(o.n, time.Duration(o.days)*24*time.Hour)

	s, err := sqlite.OpenTracking(ctx, o.db)
	if err != nil {
		return err
	}
	have, err := count(ctx, s)
	if err != nil {
		s.Close()
		return err
	}
	switch {
	case have == 0:
		if err := generate(ctx, s, g, o, out); err != nil {
			s.Close()
			return err
		}
	case have != o.n:
		s.Close()
		return fmt.Errorf("%s holds %d messages, want %d: remove it or change -n", o.db, have, o.n)
	default:
		fmt.Fprintf(out, "reusing %s: %d messages\n", o.db, have)
	}
	if !o.index {
		fmt.Fprintln(out, "substring index not written (-index=false): contains filters scan the queued messages")
	} else if err := index(ctx, s, out); err != nil {
		s.Close()
		return err
	}
	// Reopen, as the gateway would after a restart: OpenTracking refreshes
	// the planner's statistics.
	if err := s.Close(); err != nil {
		return err
	}
	if err := reportSize(o.db, o.n, out); err != nil {
		return err
	}

	return measure(ctx, o, g, out)
}

// count returns the messages in s, uncapped.
func count(ctx context.Context, s *sqlite.TrackingStore) (int, error) {
	s.CountLimit = 1 << 40
	p, err := s.Search(ctx, tracking.Query{Limit: 1})
	return p.Total, err
}

func generate(ctx context.Context, s *sqlite.TrackingStore, g *generator, o options, out io.Writer) error {
	fmt.Fprintf(out, "generating %d messages (%d events each) over %d days into %s\n", o.n, o.events, o.days, o.db)
	start := time.Now()
	i := 0
	next := func() (tracking.Batch, bool) {
		if i >= o.n {
			return tracking.Batch{}, false
		}
		ms := make([]*tracking.Message, 0, o.batch)
		for ; len(ms) < o.batch && i < o.n; i++ {
			ms = append(ms, g.message(i))
		}
		return tracking.Batch{Messages: ms, Events: g.events(ms, o.events)}, true
	}
	logger := slog.New(slog.NewTextHandler(out, nil))
	if err := s.BulkLoad(ctx, logger, next); err != nil {
		return err
	}
	el := time.Since(start)
	fmt.Fprintf(out, "generated and indexed %d messages in %s: %.0f msg/s (%.0f events/s)\n",
		o.n, el.Round(time.Second), float64(o.n)/el.Seconds(), float64(o.n*o.events)/el.Seconds())
	return nil
}

// index writes the substring index of every queued message, as the
// gateway's indexer does behind ingest, in batches of sqlite.IndexBatch,
// then seals its complete eras, as the indexer does between batches.
func index(ctx context.Context, s *sqlite.TrackingStore, out io.Writer) error {
	start, last := time.Now(), time.Now()
	indexed := 0
	for {
		n, err := s.IndexPending(ctx, sqlite.IndexBatch)
		if err != nil {
			return err
		}
		if indexed += n; n == 0 {
			break
		}
		if now := time.Now(); now.Sub(last) > 30*time.Second {
			last = now
			fmt.Fprintf(out, "  indexed %d messages, %.0f msg/s\n", indexed, float64(indexed)/now.Sub(start).Seconds())
		}
	}
	if indexed > 0 {
		el := time.Since(start)
		fmt.Fprintf(out, "indexed %d messages for substring search in %s: %.0f msg/s\n", indexed, el.Round(time.Second), float64(indexed)/el.Seconds())
	}
	start = time.Now()
	steps, err := s.SealEras(ctx)
	if steps > 0 {
		fmt.Fprintf(out, "sealed the substring index's complete eras in %d steps, %s\n", steps, time.Since(start).Round(time.Second))
	}
	return err
}

func reportSize(db string, n int, out io.Writer) error {
	var total int64
	for _, suffix := range []string{"", "-wal", "-shm"} {
		fi, err := os.Stat(db + suffix)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		total += fi.Size()
	}
	fmt.Fprintf(out, "store size %.2f GiB, %.0f bytes per message\n", float64(total)/(1<<30), float64(total)/float64(n))
	return nil
}

// A probe is one filter measured with several values, taken from messages
// that exist in the window, so that every search finds something (except
// where the filter is meant to be broad or rare).
type probe struct {
	name  string
	query func(q *tracking.Query, m *tracking.Message)
}

func text(op tracking.Op, v string) tracking.TextFilter {
	return tracking.TextFilter{Op: op, Values: []string{v}}
}

var probes = []probe{
	{"window only", func(*tracking.Query, *tracking.Message) {}},
	{"sender is", func(q *tracking.Query, m *tracking.Message) { q.Sender = text(tracking.OpIs, m.Sender) }},
	{"sender begins with", func(q *tracking.Query, m *tracking.Message) {
		q.Sender = text(tracking.OpBeginsWith, m.Sender[:strings.IndexByte(m.Sender, '@')+3])
	}},
	{"sender contains", func(q *tracking.Query, m *tracking.Message) {
		at := strings.IndexByte(m.Sender, '@')
		q.Sender = text(tracking.OpContains, m.Sender[max(at-4, 0):at+4])
	}},
	{"recipient is", func(q *tracking.Query, m *tracking.Message) {
		q.Recipient = text(tracking.OpIs, m.Recipients[0].Address)
	}},
	{"recipient begins with", func(q *tracking.Query, m *tracking.Message) {
		a := m.Recipients[0].Address
		q.Recipient = text(tracking.OpBeginsWith, a[:strings.IndexByte(a, '@')+1])
	}},
	{"recipient contains", func(q *tracking.Query, m *tracking.Message) {
		a := m.Recipients[0].Address
		at := strings.IndexByte(a, '@')
		q.Recipient = text(tracking.OpContains, a[max(at-4, 0):at+2])
	}},
	{"subject is", func(q *tracking.Query, m *tracking.Message) { q.Subject = text(tracking.OpIs, m.Subject) }},
	{"subject begins with", func(q *tracking.Query, m *tracking.Message) {
		w := strings.Fields(m.Subject)
		q.Subject = text(tracking.OpBeginsWith, strings.Join(w[:min(2, len(w))], " "))
	}},
	{"subject contains", func(q *tracking.Query, m *tracking.Message) {
		w := strings.Fields(m.Subject)
		q.Subject = text(tracking.OpContains, strings.Join(w[len(w)-2:], " "))
	}},
	{"attachment name contains", func(q *tracking.Query, m *tracking.Message) {
		n := m.Attachments[0].Name
		q.AttachmentName = text(tracking.OpContains, n[:strings.IndexByte(n, '.')])
	}},
	{"domain is", func(q *tracking.Query, m *tracking.Message) { q.Domain = text(tracking.OpIs, m.SenderDomain) }},
	{"sender IP", func(q *tracking.Query, m *tracking.Message) { q.SenderIPs = []string{m.SenderIP} }},
	{"message-id", func(q *tracking.Query, m *tracking.Message) { q.MessageIDs = []string{m.MessageID} }},
	{"MID", func(q *tracking.Query, m *tracking.Message) { q.MIDs = []int64{m.MID} }},
	{"sha256", func(q *tracking.Query, m *tracking.Message) { q.SHA256s = []string{m.Attachments[0].SHA256} }},
	{"direction outgoing", func(q *tracking.Query, m *tracking.Message) { q.Direction = "outgoing" }},
	{"flag virusPositive", func(q *tracking.Query, m *tracking.Message) {
		q.Events = []tracking.EventFilter{{Name: "virusPositive", Value: "True"}}
	}},
	{"status delivered", func(q *tracking.Query, m *tracking.Message) {
		q.Events = []tracking.EventFilter{{Name: "message_delivered", Value: "True"}}
	}},
}

// samples returns k messages with an attachment spread over the last span of
// the store.
func samples(g *generator, span time.Duration, k int) []*tracking.Message {
	first := g.n - int(float64(g.n)*float64(span)/float64(g.span))
	var ms []*tracking.Message
	for i := max(first, 0); len(ms) < k && i < g.n; i += max((g.n-first)/(4*k), 1) {
		if m := g.message(i); len(m.Attachments) > 0 {
			ms = append(ms, m)
		}
	}
	return ms
}

func measure(ctx context.Context, o options, g *generator, out io.Writer) error {
	full, err := sqlite.OpenTracking(ctx, o.db)
	if err != nil {
		return err
	}
	defer full.Close()
	// A second store on the same file that stops counting after one match:
	// the difference between the two is the cost of totalCount.
	pageOnly, err := sqlite.OpenTracking(ctx, o.db)
	if err != nil {
		return err
	}
	defer pageOnly.Close()
	pageOnly.CountLimit = 1

	newest := g.time(g.n - 1).Add(time.Second)
	fmt.Fprintf(out, "\n%d messages; up to %d searches per row (fewer if slower than -budget %s), limit 20;\nlatency of the whole Search call\n", g.n, o.runs, o.budget)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "filter\twindow\tp50\tp99\tmax\tp50 no count\tmatches\tsamples\t")
	for _, w := range []struct {
		name string
		span time.Duration
	}{{"24 h", 24 * time.Hour}, {"30 d", 30 * 24 * time.Hour}} {
		sample := samples(g, w.span, 50)
		for _, p := range probes {
			if !selected(p.name, o.only) {
				continue
			}
			qs := make([]tracking.Query, len(sample))
			for i, m := range sample {
				qs[i] = tracking.Query{Start: newest.Add(-w.span), End: newest, Limit: 20}
				p.query(&qs[i], m)
			}
			// Warm up: one pass over every value, within the budget.
			var matches []int
			warm := time.Now()
			for _, q := range qs {
				if len(matches) >= 10 && time.Since(warm) > o.budget/2 {
					break
				}
				pg, err := full.Search(ctx, q)
				if err != nil {
					return fmt.Errorf("%s: %w", p.name, err)
				}
				matches = append(matches, pg.Total)
			}
			withCount, err := timeSearches(ctx, full, qs, o.runs, o.budget)
			if err != nil {
				return fmt.Errorf("%s: %w", p.name, err)
			}
			noCount, err := timeSearches(ctx, pageOnly, qs, o.runs, o.budget/2)
			if err != nil {
				return fmt.Errorf("%s: %w", p.name, err)
			}
			slices.Sort(matches)
			row := fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t\n", p.name, w.name,
				ms(pct(withCount, 50)), ms(pct(withCount, 99)), ms(withCount[len(withCount)-1]),
				ms(pct(noCount, 50)), matches[len(matches)/2], len(withCount))
			fmt.Fprint(os.Stderr, strings.ReplaceAll(row, "\t", " "))
			fmt.Fprint(tw, row)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(out, "\nmatches: median over the sampled values (total capped at the store's CountLimit, 100,000)")
	return nil
}

// timeSearches runs n searches cycling over qs, or fewer when they take
// longer than budget (but at least 10), and returns their sorted durations.
func timeSearches(ctx context.Context, s *sqlite.TrackingStore, qs []tracking.Query, n int, budget time.Duration) ([]time.Duration, error) {
	ds := make([]time.Duration, 0, n)
	begin := time.Now()
	for i := range n {
		if i >= 10 && time.Since(begin) > budget {
			break
		}
		start := time.Now()
		if _, err := s.Search(ctx, qs[i%len(qs)]); err != nil {
			return nil, err
		}
		ds = append(ds, time.Since(start))
	}
	slices.Sort(ds)
	return ds, nil
}

func pct(sorted []time.Duration, p int) time.Duration {
	return sorted[min(len(sorted)*p/100, len(sorted)-1)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }

// generator makes message i of a store of n deterministically, so that the
// measurement can pick existing values without reading the store.
type generator struct {
	n     int
	span  time.Duration
	start time.Time
}

// Fixed, so that a kept store matches a later run's generator.
var newestMessage = time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)

func newGenerator(n int, span time.Duration) *generator {
	return &generator{n: n, span: span, start: newestMessage.Add(-span)}
}

// time spreads the messages evenly over the span.
func (g *generator) time(i int) time.Time {
	return g.start.Add(time.Duration(float64(g.span) * float64(i) / float64(g.n)))
}

// rng is a splitmix64 stream seeded by the message number.
type rng uint64

func (r *rng) next() uint64 {
	*r += 0x9E3779B97F4A7C15
	z := uint64(*r)
	z = (z ^ z>>30) * 0xBF58476D1CE4E5B9
	z = (z ^ z>>27) * 0x94D049BB133111EB
	return z ^ z>>31
}

func (r *rng) intn(n int) int { return int(r.next() % uint64(n)) }

// skewed returns 0…n-1, small values far more often (roughly Zipf-like):
// a few sender domains and subjects dominate, as in real mail.
func (r *rng) skewed(n int) int {
	f := float64(r.next()>>11) / (1 << 53)
	return min(int(float64(n)*f*f*f), n-1)
}

func (r *rng) pick(words []string) string { return words[r.intn(len(words))] }

func (r *rng) hex(bytes int) string {
	b := make([]byte, bytes)
	for i := 0; i < bytes; i += 8 {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], r.next())
		copy(b[i:], w[:])
	}
	return hex.EncodeToString(b)
}

var (
	subjectWords = strings.Fields(`invoice payment order shipment delivery meeting agenda report quarterly
		update urgent reminder account security password reset confirm verify request approval contract
		proposal offer discount newsletter webinar invitation schedule project status review feedback
		budget forecast expense receipt statement balance transfer notice policy change document signed
		draft final revised weekly monthly annual team sales marketing support ticket incident outage
		maintenance release notes training survey results welcome onboarding follow-up question
		réunion facture livraison commande`)
	subjectPrefixes = []string{"", "", "", "", "Re: ", "RE: ", "Fwd: ", "FW: ", "[External] "}
	tlds            = []string{"com", "com", "com", "net", "org", "example", "de", "fr", "co.uk", "io"}
	domainWords     = strings.Fields(`acme globex initech umbrella hooli vandelay stark wayne wonka cyberdyne
		soylent tyrell aperture oscorp pied massive dunder gringotts monarch nakatomi`)
	localParts = strings.Fields(`info sales billing noreply support news alerts hr jobs accounts admin
		service team office contact marketing orders notifications`)
	firstNames = strings.Fields(`alice bob carol dave erin frank grace heidi ivan judy mallory niaj olivia
		peggy rupert sybil trent victor walter yvonne`)
	attachmentExts = []string{"pdf", "pdf", "pdf", "docx", "xlsx", "zip", "png", "jpg", "html", "txt"}
	urlPaths       = []string{"login", "track", "unsubscribe", "view", "invoice", "download", "reset", "promo"}
)

// senderDomain is one of 3,000 sender domains.
func senderDomain(k int) string {
	return fmt.Sprintf("%s%d.%s", domainWords[k%len(domainWords)], k/len(domainWords), tlds[k%len(tlds)])
}

func (g *generator) message(i int) *tracking.Message {
	r := rng(uint64(i) * 0x2545F4914F6CDD1D)
	domain := senderDomain(r.skewed(3000))
	var local string
	if r.intn(2) == 0 {
		local = r.pick(localParts)
	} else {
		local = fmt.Sprintf("%s.%s%d", r.pick(firstNames), r.pick(firstNames), r.intn(40))
	}
	sender := local + "@" + domain
	direction := "incoming"
	if r.intn(5) == 0 {
		direction = "outgoing"
	}
	subject := r.pick(subjectPrefixes)
	for k := range 2 + r.intn(5) {
		if k > 0 {
			subject += " "
		}
		subject += subjectWords[r.skewed(len(subjectWords))]
	}
	if r.intn(3) == 0 {
		subject += fmt.Sprintf(" #%d", r.intn(100000))
	}
	ip := fmt.Sprintf("%d.%d.%d.%d", 23+r.skewed(200), r.intn(256), r.intn(256), 1+r.intn(254))
	t := g.time(i)
	m := &tracking.Message{
		MID: int64(i + 1), ICID: int64(i*7/10 + 1), Direction: direction, InjectedAt: t,
		SenderIP: ip, ReverseDNS: "mail." + domain, HELO: "mail." + domain,
		SBRS: "None", SenderGroup: "UNKNOWNLIST", MailPolicy: []string{"DEFAULT"},
		TLS: "TLSv1.3", ListenerName: "IncomingMail",
		Sender: sender, SenderDomain: domain, HeaderFrom: sender,
		FriendlyFrom: fmt.Sprintf("%q <%s>", local, sender),
		Subject:      subject, FinalSubject: subject,
		MessageID:   fmt.Sprintf("<%s.%d@%s>", r.hex(8), t.Unix(), domain),
		Size:        int64(1500 + r.skewed(2_000_000)),
		BodySnippet: "Hello, please find the " + subject + " below. " + r.pick(subjectWords) + " " + r.pick(subjectWords),
		Status:      tracking.StatusDelivered, VerdictChart: "11100000",
		SPF: "pass", DKIM: "pass", DMARC: "pass",
	}
	for rid := range 1 + r.skewed(3) {
		addr := fmt.Sprintf("%s.%s%d@corp%d.test", r.pick(firstNames), r.pick(firstNames), r.intn(500), r.skewed(20))
		m.Recipients = append(m.Recipients, tracking.Recipient{RID: rid, Address: addr,
			Status: tracking.StatusDelivered, Reply: "250 2.0.0 Ok: queued"})
	}
	if r.intn(10) < 3 {
		for range 1 + r.skewed(3) {
			raw := []byte(r.hex(32))
			s256, s1 := sha256.Sum256(raw), sha1.Sum(raw)
			m.Attachments = append(m.Attachments, tracking.Attachment{
				Name: fmt.Sprintf("%s_%d.%s", subjectWords[r.skewed(len(subjectWords))], r.intn(10000), r.pick(attachmentExts)),
				Type: "application/octet-stream", Size: int64(1000 + r.intn(500_000)),
				SHA256: hex.EncodeToString(s256[:]), SHA1: hex.EncodeToString(s1[:]), MD5: r.hex(16),
			})
		}
	}
	for range r.skewed(4) {
		m.URLs = append(m.URLs, fmt.Sprintf("https://www.%s/%s?id=%d", senderDomain(r.skewed(3000)), r.pick(urlPaths), r.intn(1_000_000)))
	}
	switch v := r.intn(1000); {
	case v < 10:
		m.Flags, m.Status, m.VerdictChart, m.ThreatName = []string{"virusPositive"}, tracking.StatusDroppedAV, "12100000", "Eicar-Test-Signature"
		m.Recipients = m.Recipients[:1]
		m.Recipients[0].Status, m.Recipients[0].Reply = tracking.StatusDroppedAV, ""
	case v < 60:
		m.Flags = []string{"spamPositive"}
		m.Status, m.VerdictChart, m.Quarantine = tracking.StatusQuarantinedAS, "21100000", "Spam Quarantine"
		for k := range m.Recipients {
			m.Recipients[k].Status, m.Recipients[k].Reply = tracking.StatusQuarantinedAS, ""
		}
	case v < 70:
		m.Status = tracking.StatusHardBounced
		m.Recipients[0].Status, m.Recipients[0].Reply = tracking.StatusHardBounced, "550 5.1.1 User unknown"
	}
	return m
}

// events returns k events per message, shaped like the gateway's: the
// connection, envelope, scanning verdicts and one delivery per recipient.
func (g *generator) events(ms []*tracking.Message, k int) []tracking.Event {
	evs := make([]tracking.Event, 0, k*len(ms))
	for _, m := range ms {
		for j := range k {
			ev := tracking.Event{Time: m.InjectedAt.Add(time.Duration(j) * time.Millisecond), ICID: m.ICID, MID: m.MID,
				Summary: fmt.Sprintf("Message %d step %d on incoming connection (ICID %d).", m.MID, j, m.ICID),
				Log:     fmt.Sprintf("Info: MID %d ICID %d step %d From: <%s>", m.MID, m.ICID, j, m.Sender)}
			if j == k-1 {
				ev.Summary = fmt.Sprintf("Message %d to %s received remote SMTP response 'ok'.", m.MID, m.Recipients[0].Address)
			}
			evs = append(evs, ev)
		}
	}
	return evs
}

// selected reports whether the filter name contains one of the
// comma-separated texts of only; every name is selected when only is "".
func selected(name, only string) bool {
	for _, t := range strings.Split(only, ",") {
		if strings.Contains(name, t) {
			return true
		}
	}
	return false
}
