package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/sightline/sightline/internal/store/sqlite"
	"github.com/sightline/sightline/internal/tracking"
)

// The benchmark's observables and how many messages of the last 30 days
// match each. Random messages never match them: random subjects are built
// from lowercase words without "due", and random sender IPs start at 23-190,
// never at 192.
const (
	benchSubject  = "Invoice Due"
	subjectHits   = 50
	benchIP       = "192.0.2.77"
	ipHits        = 20
	span          = 90 * 24 * time.Hour // the store's messages span 90 days, ending at generation
	hitSpan       = 28 * 24 * time.Hour // the matching messages span the 28 days before generation
	eventsPerMsg  = 4
	batchMessages = 2000
	// maxStoreAge is how old a kept store may be: its matching messages must
	// stay inside the module's 30-day timeframe.
	maxStoreAge = 24 * time.Hour
)

// The -distinct plant: a store generated since it exists, when it is large
// enough (minDistinctMessages), also holds distinctSubjects subjects
// "Invoice Due 01", "Invoice Due 02"… each on exactly subjectHits messages
// of the last 28 days. They are not benchSubject, which the module matches
// whole.
const (
	distinctSubjects = 50
	distinctFormat   = "Invoice Due %02d"
)

// distinctSubject is the k-th subject of the -distinct plant, from 1.
func distinctSubject(k int) string { return fmt.Sprintf(distinctFormat, k) }

// prepareStore generates n messages into the tracking store at path, or
// reuses it if it holds exactly n messages generated less than maxStoreAge
// ago. With distinct, the store must hold the -distinct plant.
func prepareStore(ctx context.Context, path string, n int, distinct bool, out io.Writer) error {
	s, err := sqlite.OpenTracking(ctx, path)
	if err != nil {
		return err
	}
	defer s.Close()
	s.CountLimit = 1 << 40
	p, err := s.Search(ctx, tracking.Query{Limit: 1})
	if err != nil {
		return fmt.Errorf("count the store: %w", err)
	}
	switch {
	case p.Total == n && len(p.Messages) == 1 && time.Since(p.Messages[0].InjectedAt) < maxStoreAge:
		fmt.Fprintf(out, "reusing %s: %d messages, newest %s ago\n", path, n, time.Since(p.Messages[0].InjectedAt).Round(time.Minute))
		if err := indexStore(ctx, s, out); err != nil {
			return err
		}
		return checkHits(ctx, s, distinct)
	case p.Total != 0:
		return fmt.Errorf("%s holds %d messages, want %d generated in the last %s: remove it", path, p.Total, n, maxStoreAge)
	}
	fmt.Fprintf(out, "generating %d messages (%d events each) over 90 days into %s\n", n, eventsPerMsg, path)
	g := newGenerator(n, time.Now().Add(-time.Minute))
	if len(g.distinct) > 0 {
		fmt.Fprintf(out, "with the -distinct plant: %d subjects %q… on %d messages each\n", distinctSubjects, distinctSubject(1), subjectHits)
	} else {
		fmt.Fprintf(out, "without the -distinct plant: %d messages are too few for it\n", n)
	}
	began, i := time.Now(), 0
	next := func() (tracking.Batch, bool) {
		var b tracking.Batch
		for ; i < n && len(b.Messages) < batchMessages; i++ {
			m := g.message(i)
			b.Messages = append(b.Messages, m)
			b.Events = append(b.Events, events(m)...)
		}
		return b, len(b.Messages) > 0
	}
	// Rows first, then each index by one sort, then the substring index:
	// the store Apply and the indexer would have made, several times faster.
	if err := s.BulkLoad(ctx, slog.New(slog.NewTextHandler(out, nil)), next); err != nil {
		return fmt.Errorf("generate the store: %w", err)
	}
	el := time.Since(began)
	fmt.Fprintf(out, "generated and indexed %d messages in %s (%.0f msg/s)\n", n, el.Round(time.Second), float64(n)/el.Seconds())
	return checkHits(ctx, s, distinct)
}

// indexStore writes the substring index of every queued message, and seals
// its complete eras, before the measurement, as the gateway's indexer would
// have done behind ingest, so
// that the indexer does not compete with the investigations.
func indexStore(ctx context.Context, s *sqlite.TrackingStore, out io.Writer) error {
	began, indexed := time.Now(), 0
	for {
		n, err := s.IndexPending(ctx, sqlite.IndexBatch)
		if err != nil {
			return fmt.Errorf("index the store: %w", err)
		}
		if indexed += n; n == 0 {
			break
		}
	}
	if indexed > 0 {
		el := time.Since(began)
		fmt.Fprintf(out, "indexed %d messages for substring search in %s (%.0f msg/s)\n", indexed, el.Round(time.Second), float64(indexed)/el.Seconds())
	}
	if _, err := s.SealEras(ctx); err != nil {
		return fmt.Errorf("seal the store's substring index: %w", err)
	}
	return nil
}

// checkHits verifies that the store holds exactly the benchmark's matching
// messages in the module's 30-day timeframe, so that a wrong enrich answer
// is the console's fault, not the generator's. With distinct it checks the
// -distinct plant too.
func checkHits(ctx context.Context, s *sqlite.TrackingStore, distinct bool) error {
	now := time.Now()
	count := func(q tracking.Query) (int, error) {
		q.Start, q.End, q.Limit = now.Add(-30*24*time.Hour), now, 1
		p, err := s.Search(ctx, q)
		return p.Total, err
	}
	is := func(v string) tracking.TextFilter { return tracking.TextFilter{Op: tracking.OpIs, Values: []string{v}} }
	type check struct {
		what string
		q    tracking.Query
		want int
	}
	checks := []check{
		{"subject " + benchSubject, tracking.Query{Subject: is(benchSubject)}, subjectHits},
		{"sender IP " + benchIP, tracking.Query{SenderIPs: []string{benchIP}}, ipHits},
	}
	if distinct {
		n, err := count(tracking.Query{Subject: is(distinctSubject(1))})
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("-distinct: the store has no message with subject %q: it was generated before the "+
				"-distinct plant existed, or with fewer than %d messages: generate a new store (another -store file)",
				distinctSubject(1), minDistinctMessages())
		}
		for k := 1; k <= distinctSubjects; k++ {
			checks = append(checks, check{"subject " + distinctSubject(k), tracking.Query{Subject: is(distinctSubject(k))}, subjectHits})
		}
	}
	for _, c := range checks {
		n, err := count(c.q)
		if err != nil {
			return err
		}
		if n != c.want {
			return fmt.Errorf("the store holds %d messages with %s in the last 30 days, want %d", n, c.what, c.want)
		}
	}
	return nil
}

// generator makes message i of n deterministically.
type generator struct {
	n        int
	newest   time.Time
	hits     map[int]string // message number → "subject" or "ip"
	distinct map[int]string // message number → its -distinct subject
}

// minDistinctMessages returns the smallest store, to 100 messages, that
// holds the -distinct plant: the plant takes at most half of the other
// messages of the last 28 days.
func minDistinctMessages() int {
	n := 1000
	for len(newGenerator(n, time.Time{}).distinct) == 0 {
		n += 100
	}
	return n
}

func newGenerator(n int, newest time.Time) *generator {
	g := &generator{n: n, newest: newest, hits: map[int]string{}, distinct: map[int]string{}}
	// The matching messages are spread evenly over the last 28 days; the
	// messages are evenly spread in time, so message i's age is known.
	first := n - int(float64(n)*float64(hitSpan)/float64(span))
	for k := range subjectHits {
		g.hits[first+k*(n-first)/subjectHits] = "subject"
	}
	for k := range ipHits {
		g.hits[first+k*(n-first)/ipHits+1] = "ip"
	}
	// The -distinct plant: spread evenly over the other messages of the
	// last 28 days, the subjects in turn, so that each subject's messages
	// span the 28 days too. Other messages stay as they were.
	var free []int
	for i := first; i < n; i++ {
		if g.hits[i] == "" {
			free = append(free, i)
		}
	}
	if planted := distinctSubjects * subjectHits; len(free) >= 2*planted {
		for j := range planted {
			g.distinct[free[j*len(free)/planted]] = distinctSubject(j%distinctSubjects + 1)
		}
	}
	return g
}

func (g *generator) time(i int) time.Time {
	return g.newest.Add(-span + time.Duration(float64(span)*float64(i+1)/float64(g.n)))
}

var (
	words = strings.Fields(`invoice payment order shipment delivery meeting agenda report quarterly update urgent
		reminder account security password reset confirm verify request approval contract proposal offer newsletter
		webinar invitation schedule project status review feedback budget forecast receipt statement balance
		transfer notice policy document signed draft final weekly monthly team sales support ticket incident`)
	prefixes = []string{"", "", "", "Re: ", "RE: ", "Fwd: ", "[External] "}
	names    = strings.Fields(`alice bob carol dave erin frank grace heidi ivan judy olivia peggy rupert victor`)
	locals   = strings.Fields(`info sales billing noreply support news alerts hr accounts admin orders`)
	orgs     = strings.Fields(`acme globex initech umbrella hooli vandelay stark wayne wonka cyberdyne tyrell`)
	tlds     = []string{"com", "com", "com", "net", "org", "de", "fr", "io"}
	exts     = []string{"pdf", "pdf", "docx", "xlsx", "zip", "png", "html"}
)

// skewed returns 0…n-1, small values far more often, as a few domains and
// words dominate real mail.
func skewed(r *rand.Rand, n int) int {
	f := r.Float64()
	return min(int(float64(n)*f*f*f), n-1)
}

func (g *generator) message(i int) *tracking.Message {
	r := rand.New(rand.NewPCG(uint64(i), 0x5eed))
	k := skewed(r, 3000)
	domain := fmt.Sprintf("%s%d.%s", orgs[k%len(orgs)], k/len(orgs), tlds[k%len(tlds)])
	local := locals[r.IntN(len(locals))]
	if r.IntN(2) == 0 {
		local = fmt.Sprintf("%s.%s%d", names[r.IntN(len(names))], names[r.IntN(len(names))], r.IntN(40))
	}
	sender := local + "@" + domain
	subject := prefixes[r.IntN(len(prefixes))]
	for w := range 2 + r.IntN(5) {
		if w > 0 {
			subject += " "
		}
		subject += words[skewed(r, len(words))]
	}
	ip := fmt.Sprintf("%d.%d.%d.%d", 23+skewed(r, 168), r.IntN(256), r.IntN(256), 1+r.IntN(254))
	switch g.hits[i] {
	case "subject":
		subject = benchSubject
	case "ip":
		ip = benchIP
	}
	if s, ok := g.distinct[i]; ok {
		subject = s
	}
	t := g.time(i)
	direction := "incoming"
	if r.IntN(5) == 0 {
		direction = "outgoing"
	}
	m := &tracking.Message{
		MID: int64(i + 1), ICID: int64(i*7/10 + 1), Direction: direction, InjectedAt: t,
		SenderIP: ip, ReverseDNS: "mail." + domain, HELO: "mail." + domain,
		SBRS: "None", SenderGroup: "UNKNOWNLIST", MailPolicy: []string{"DEFAULT"}, TLS: "TLSv1.3",
		ListenerName: "IncomingMail", Sender: sender, SenderDomain: domain, HeaderFrom: sender,
		FriendlyFrom: fmt.Sprintf("%q <%s>", local, sender), Subject: subject, FinalSubject: subject,
		MessageID:   fmt.Sprintf("<%016x.%d@%s>", r.Uint64(), t.Unix(), domain),
		Size:        int64(1500 + skewed(r, 2_000_000)),
		BodySnippet: "Hello, please find the " + subject + " below.",
		Status:      tracking.StatusDelivered, VerdictChart: "11100000", SPF: "pass", DKIM: "pass", DMARC: "pass",
	}
	for rid := range 1 + skewed(r, 3) {
		m.Recipients = append(m.Recipients, tracking.Recipient{RID: rid,
			Address: fmt.Sprintf("%s.%s%d@corp%d.test", names[r.IntN(len(names))], names[r.IntN(len(names))], r.IntN(500), skewed(r, 20)),
			Status:  tracking.StatusDelivered, Reply: "250 2.0.0 Ok: queued"})
	}
	if r.IntN(10) < 3 {
		sum := sha256.Sum256(fmt.Appendf(nil, "attachment %d", i))
		m.Attachments = append(m.Attachments, tracking.Attachment{
			Name: fmt.Sprintf("%s_%d.%s", words[skewed(r, len(words))], r.IntN(10000), exts[r.IntN(len(exts))]),
			Type: "application/octet-stream", Size: int64(1000 + r.IntN(500_000)),
			SHA256: hex.EncodeToString(sum[:]), SHA1: hex.EncodeToString(sum[:20]), MD5: hex.EncodeToString(sum[:16]),
		})
	}
	for range skewed(r, 4) {
		m.URLs = append(m.URLs, fmt.Sprintf("https://www.%s/view?id=%d", domain, r.IntN(1_000_000)))
	}
	if v := r.IntN(100); v < 5 {
		m.Flags, m.Status, m.VerdictChart, m.Quarantine = []string{"spamPositive"}, tracking.StatusQuarantinedAS, "21100000", "Spam Quarantine"
		for j := range m.Recipients {
			m.Recipients[j].Status, m.Recipients[j].Reply = tracking.StatusQuarantinedAS, ""
		}
	}
	return m
}

// events returns the tracking events of m: connection, envelope, verdicts,
// delivery.
func events(m *tracking.Message) []tracking.Event {
	at := func(ms int) time.Time { return m.InjectedAt.Add(time.Duration(ms) * time.Millisecond) }
	return []tracking.Event{
		{Time: at(0), ICID: m.ICID, MID: m.MID, Summary: fmt.Sprintf("Incoming connection (ICID %d) from sender IP %s.", m.ICID, m.SenderIP),
			Log: fmt.Sprintf("New SMTP ICID %d interface Management (127.0.0.1) address %s", m.ICID, m.SenderIP)},
		{Time: at(5), ICID: m.ICID, MID: m.MID, Summary: fmt.Sprintf("Message %d Sender Domain: %s", m.MID, m.SenderDomain),
			Log: fmt.Sprintf("MID %d ICID %d From: <%s>", m.MID, m.ICID, m.Sender)},
		{Time: at(20), ICID: m.ICID, MID: m.MID, Summary: fmt.Sprintf("Message %d Subject %q", m.MID, m.Subject),
			Log: fmt.Sprintf("MID %d Subject %q", m.MID, m.Subject)},
		{Time: at(90), MID: m.MID, Summary: fmt.Sprintf("Message %d to %s received remote SMTP response 'ok'.", m.MID, m.Recipients[0].Address),
			Log: fmt.Sprintf("MID %d RID [0] Response 'ok'", m.MID)},
	}
}
