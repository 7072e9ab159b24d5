package sqlite_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/store/sqlite"
	"github.com/sightline/sightline/internal/tracking"
)

// MustOpenTracking opens a tracking store in a temporary directory, closed
// when tb ends.
func MustOpenTracking(tb testing.TB) *sqlite.TrackingStore {
	tb.Helper()
	s, err := sqlite.OpenTracking(context.Background(), filepath.Join(tb.TempDir(), "tracking.db"))
	if err != nil {
		tb.Fatalf("OpenTracking: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func mustApply(tb testing.TB, s tracking.Store, b tracking.Batch) {
	tb.Helper()
	if err := s.Apply(context.Background(), b); err != nil {
		tb.Fatalf("Apply: %v", err)
	}
}

// indexModes are the states a search must answer alike in: saved messages
// still queued for the substring indexer, indexed after every Apply, and
// indexed once and then saved again without indexing (so that the index
// bits of a record's old text must not match).
var indexModes = []struct {
	name  string
	apply func() func(testing.TB, *sqlite.TrackingStore, tracking.Batch)
}{
	{"queued", func() func(testing.TB, *sqlite.TrackingStore, tracking.Batch) {
		return func(tb testing.TB, s *sqlite.TrackingStore, b tracking.Batch) { mustApply(tb, s, b) }
	}},
	{"indexed", func() func(testing.TB, *sqlite.TrackingStore, tracking.Batch) {
		return func(tb testing.TB, s *sqlite.TrackingStore, b tracking.Batch) { mustApply(tb, s, b); mustIndex(tb, s) }
	}},
	{"indexed once", func() func(testing.TB, *sqlite.TrackingStore, tracking.Batch) {
		first := true
		return func(tb testing.TB, s *sqlite.TrackingStore, b tracking.Batch) {
			mustApply(tb, s, b)
			if first {
				mustIndex(tb, s)
			}
			first = false
		}
	}},
	{"bulk loaded", func() func(testing.TB, *sqlite.TrackingStore, tracking.Batch) {
		first := true
		return func(tb testing.TB, s *sqlite.TrackingStore, b tracking.Batch) {
			if !first {
				mustApply(tb, s, b)
				mustIndex(tb, s)
				return
			}
			first = false
			if err := s.BulkLoad(context.Background(), slog.New(slog.DiscardHandler), func() (tracking.Batch, bool) {
				once := b
				b = tracking.Batch{}
				return once, len(once.Messages)+len(once.Events) > 0
			}); err != nil {
				tb.Fatalf("BulkLoad: %v", err)
			}
		}
	}},
}

// mustIndex indexes everything queued.
func mustIndex(tb testing.TB, s *sqlite.TrackingStore) {
	tb.Helper()
	for {
		n, err := s.IndexPending(context.Background(), 3)
		if err != nil {
			tb.Fatalf("IndexPending: %v", err)
		}
		if n == 0 {
			return
		}
	}
}

var t0 = time.Date(2026, 1, 10, 8, 0, 0, 0, time.UTC)

const (
	shaInvoice = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	shaZip     = "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752"
)

// corpus is the conformance corpus: each message exercises some filters.
func corpus() []*tracking.Message {
	rcpts := func(addrs ...string) []tracking.Recipient {
		var rs []tracking.Recipient
		for i, a := range addrs {
			rs = append(rs, tracking.Recipient{RID: i, Address: a})
		}
		return rs
	}
	return []*tracking.Message{
		{
			MID: 1, ICID: 10, Direction: "incoming", InjectedAt: t0.Add(1 * time.Minute),
			SenderIP: "203.0.113.25", SBRS: "None", SenderGroup: "UNKNOWNLIST", MailPolicy: []string{"DEFAULT"},
			Sender: "alice@sender.example", HeaderFrom: "alice@sender.example", FriendlyFrom: "Alice <alice@sender.example>",
			HeaderTo: []string{"bob@corp.example"}, HeaderCc: []string{"carol@corp.example", "dan@corp.example"}, HasInline: true,
			Subject: "Invoice 4471", FinalSubject: "Invoice 4471", MessageID: "<20260110080012.4471@sender.example>",
			Recipients:  rcpts("bob@corp.example", "carol@corp.example"),
			Attachments: []tracking.Attachment{{Name: "invoice.pdf", Type: "application/pdf", Size: 1200, SHA256: shaInvoice}},
			URLs:        []string{"https://sender.example/i?x=1"},
			Flags:       []string{"spamPositive"}, VerdictChart: "11100000", DMARC: "pass", Size: 40190,
		},
		{
			MID: 2, ICID: 11, Direction: "outgoing", InjectedAt: t0.Add(2 * time.Minute),
			SenderIP: "2001:0db8:0:0::1", Sender: "Bob.Smith@Example.COM", ReplyTo: "Replies@Example.com",
			Subject: "Réunion ÉTÉ café", MessageID: "<AbC.123@Example.COM>",
			Recipients:  rcpts("dave@partner.example"),
			Attachments: []tracking.Attachment{{Name: "Résumé.DOCX"}},
			MailPolicy:  []string{"OUTBOUND"},
		},
		{
			MID: 3, ICID: 12, Direction: "incoming", InjectedAt: t0.Add(3 * time.Minute),
			SenderIP: "::ffff:192.0.2.7", Sender: "", Subject: "",
			Recipients: rcpts("alice+tag@sender.example"),
		},
		{
			MID: 4, ICID: 12, Direction: "incoming", InjectedAt: t0.Add(4 * time.Minute),
			SenderIP: "192.0.2.7", Sender: "a+b@x.com", Subject: "test test",
			Recipients: rcpts("erin@corp.example"),
			Attachments: []tracking.Attachment{
				{Name: "report.zip", SHA256: strings.ToUpper(shaZip)},
				{Name: "photo.JPG"},
			},
			ContentFilters: []string{"Block_EXE"}, ThreatName: "EICAR-Test", Quarantine: "Policy",
			Status: tracking.StatusQuarantinedCF, Flags: []string{"virusPositive"}, VerdictChart: "12202000",
		},
		{
			MID: 5, ICID: 13, Direction: "incoming", InjectedAt: t0.Add(5 * time.Minute),
			SenderIP: "198.51.100.9", Sender: "eve@evil.example", Subject: "Hello wörld",
			Recipients: rcpts("bob@corp.example"),
		},
	}
}

func mids(ms []*tracking.Message) []int64 {
	out := []int64{}
	for _, m := range ms {
		out = append(out, m.MID)
	}
	return out
}

func TestTrackingSearchFilters(t *testing.T) {
	for _, mode := range indexModes {
		t.Run(mode.name, func(t *testing.T) {
			apply := mode.apply()
			ctx := context.Background()
			s := MustOpenTracking(t)
			apply(t, s, tracking.Batch{Messages: corpus(), Events: []tracking.Event{
				{Time: t0.Add(6 * time.Minute), MID: 5, Status: tracking.StatusDelivered, Recipient: "bob@corp.example", Reply: "250 ok"},
			}})
			is := func(v ...string) tracking.TextFilter { return tracking.TextFilter{Op: tracking.OpIs, Values: v} }
			begins := func(v ...string) tracking.TextFilter {
				return tracking.TextFilter{Op: tracking.OpBeginsWith, Values: v}
			}
			contains := func(v ...string) tracking.TextFilter { return tracking.TextFilter{Op: tracking.OpContains, Values: v} }
			ev := func(name, value string) []tracking.EventFilter {
				return []tracking.EventFilter{{Name: name, Value: value}}
			}
			tests := []struct {
				name string
				q    tracking.Query
				want []int64
			}{
				{"all, newest first", tracking.Query{}, []int64{5, 4, 3, 2, 1}},
				{"time range half-open", tracking.Query{Start: t0.Add(2 * time.Minute), End: t0.Add(4 * time.Minute)}, []int64{3, 2}},
				{"sender is", tracking.Query{Sender: is("alice@sender.example")}, []int64{1}},
				{"sender is case-insensitive", tracking.Query{Sender: is("ALICE@Sender.Example")}, []int64{1}},
				{"sender is whole string", tracking.Query{Sender: is("alice@sender")}, []int64{}},
				{"sender is alternatives", tracking.Query{Sender: is("alice@sender.example", "eve@evil.example")}, []int64{5, 1}},
				{"sender is empty (null sender)", tracking.Query{Sender: is("")}, []int64{3}},
				{"sender plus address", tracking.Query{Sender: is("a+b@x.com")}, []int64{4}},
				{"sender begins_with", tracking.Query{Sender: begins("BOB.")}, []int64{2}},
				{"sender contains via index", tracking.Query{Sender: contains("ample.co")}, []int64{2}},
				{"sender contains short", tracking.Query{Sender: contains("x.")}, []int64{4}},
				{"subject is", tracking.Query{Subject: is("test test")}, []int64{4}},
				{"subject is_empty", tracking.Query{Subject: tracking.TextFilter{Op: tracking.OpIsEmpty}}, []int64{3}},
				{"subject contains unicode folded", tracking.Query{Subject: contains("ÉTÉ")}, []int64{2}},
				{"subject contains lowercase unicode", tracking.Query{Subject: contains("été c")}, []int64{2}},
				{"subject begins_with unicode", tracking.Query{Subject: begins("RÉU")}, []int64{2}},
				{"subject contains quote", tracking.Query{Subject: contains(`"inv`)}, []int64{}},
				{"subject contains two chars", tracking.Query{Subject: contains("rl")}, []int64{5}},
				{"recipient is any", tracking.Query{Recipient: is("bob@corp.example")}, []int64{5, 1}},
				{"recipient is second", tracking.Query{Recipient: is("CAROL@corp.example")}, []int64{1}},
				{"recipient begins_with", tracking.Query{Recipient: begins("alice+")}, []int64{3}},
				{"recipient contains", tracking.Query{Recipient: contains("corp.ex")}, []int64{5, 4, 1}},
				{"attachment is unicode", tracking.Query{AttachmentName: is("résumé.docx")}, []int64{2}},
				{"attachment contains any", tracking.Query{AttachmentName: contains(".jp")}, []int64{4}},
				{"attachment begins_with", tracking.Query{AttachmentName: begins("rep")}, []int64{4}},
				{"domain is recipient domain", tracking.Query{Domain: is("corp.example")}, []int64{5, 4, 1}},
				{"domain is sender domain", tracking.Query{Domain: is("EXAMPLE.com")}, []int64{2}},
				{"domain is with @", tracking.Query{Domain: is("@partner.example")}, []int64{2}},
				{"domain begins_with", tracking.Query{Domain: begins("sender.")}, []int64{3, 1}},
				{"domain contains", tracking.Query{Domain: contains("vil")}, []int64{5}},
				{"domain contains short", tracking.Query{Domain: contains("x.")}, []int64{4}},
				{"reply-to is", tracking.Query{ReplyTo: is("replies@example.com")}, []int64{2}},
				{"sender IPv6 canonical", tracking.Query{SenderIPs: []string{"2001:DB8::0:1"}}, []int64{2}},
				{"sender IPv4-mapped", tracking.Query{SenderIPs: []string{"::ffff:192.0.2.7"}}, []int64{4, 3}},
				{"message-id with brackets", tracking.Query{MessageIDs: []string{"<20260110080012.4471@sender.example>"}}, []int64{1}},
				{"message-id without brackets, other case", tracking.Query{MessageIDs: []string{"abc.123@example.com"}}, []int64{2}},
				{"mids", tracking.Query{MIDs: []int64{2, 4, 99}}, []int64{4, 2}},
				{"sha256 any attachment, case", tracking.Query{SHA256s: []string{shaZip}}, []int64{4}},
				{"sha256 first attachment", tracking.Query{SHA256s: []string{strings.ToUpper(shaInvoice)}}, []int64{1}},
				{"direction", tracking.Query{Direction: "outgoing"}, []int64{2}},
				{"AND of groups", tracking.Query{Recipient: is("bob@corp.example"), Sender: contains("eve")}, []int64{5}},
				{"flag", tracking.Query{Events: ev("virusPositive", "True")}, []int64{4}},
				{"flag unset", tracking.Query{Events: ev("graymail", "True")}, []int64{}},
				{"delivery status from recipient event", tracking.Query{Events: ev("deliveryStatus", "DELIVERED")}, []int64{5}},
				{"message_delivered", tracking.Query{Events: ev("message_delivered", "True")}, []int64{5}},
				{"quarantine status policy", tracking.Query{Events: ev("quarantineStatus", "POLICY")}, []int64{4}},
				{"content filter name folded", tracking.Query{Events: ev("contentFiltersName", "block_exe")}, []int64{4}},
				{"content filter stopped", tracking.Query{Events: []tracking.EventFilter{{Name: "contentFiltersName", Value: "block_exe", Action: "stopped"}}}, []int64{4}},
				{"content filter other direction", tracking.Query{Events: []tracking.EventFilter{{Name: "contentFiltersName", Value: "block_exe", Direction: "outgoing"}}}, []int64{}},
				{"mail policy", tracking.Query{Events: ev("mailPolicyName", "outbound")}, []int64{2}},
				{"threat name", tracking.Query{Events: ev("threatName", "eicar-test")}, []int64{4}},
				{"amp clean from verdict chart", tracking.Query{Events: ev("advancedMalwareProtection", "amp_clean")}, []int64{1}},
				{"amp malicious", tracking.Query{Events: ev("advancedMalwareProtection", "amp_malicious")}, []int64{4}},
				{"dmarc passed", tracking.Query{Events: ev("dmarcAction", "passed")}, []int64{1}},
				{"quarantined to", tracking.Query{Events: ev("quarantinedTo", "POLICY")}, []int64{4}},
				{"feature we lack matches nothing", tracking.Query{Events: ev("messageFilters", "x")}, []int64{}},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					page, err := s.Search(ctx, tt.q)
					if err != nil {
						t.Fatalf("Search(%+v): %v", tt.q, err)
					}
					if diff := cmp.Diff(tt.want, mids(page.Messages)); diff != "" {
						t.Errorf("Search(%+v) MIDs (-want +got):\n%s", tt.q, diff)
					}
					if page.Total != len(tt.want) || page.TotalCapped {
						t.Errorf("Search(%+v) Total = %d (capped %v), want %d", tt.q, page.Total, page.TotalCapped, len(tt.want))
					}
				})
			}
		})
	}
}

func TestTrackingRoundTrip(t *testing.T) {
	ctx := context.Background()
	s := MustOpenTracking(t)
	want := corpus()[0]
	mustApply(t, s, tracking.Batch{Messages: []*tracking.Message{want}})
	got, _, err := s.Details(ctx, want.MID)
	if err != nil {
		t.Fatalf("Details(%d): %v", want.MID, err)
	}
	// The store fills what the record leaves to it.
	w := *want
	w.Status, w.SenderDomain = tracking.StatusInProgress, "sender.example"
	w.Recipients = []tracking.Recipient{
		{RID: 0, Address: "bob@corp.example", Status: tracking.StatusInProgress},
		{RID: 1, Address: "carol@corp.example", Status: tracking.StatusInProgress},
	}
	if diff := cmp.Diff(&w, got); diff != "" {
		t.Errorf("Details(%d) record (-want +got):\n%s", want.MID, diff)
	}
}

func TestTrackingResaveReplaces(t *testing.T) {
	for _, mode := range indexModes {
		t.Run(mode.name, func(t *testing.T) {
			apply := mode.apply()
			ctx := context.Background()
			s := MustOpenTracking(t)
			first := corpus()[3]
			apply(t, s, tracking.Batch{Messages: []*tracking.Message{first}})
			again := *first
			again.Subject, again.Attachments, again.Flags, again.ContentFilters = "second screening", nil, nil, nil
			apply(t, s, tracking.Batch{Messages: []*tracking.Message{&again}})

			tests := []struct {
				name string
				q    tracking.Query
				want []int64
			}{
				{"new subject", tracking.Query{Subject: tracking.TextFilter{Op: tracking.OpContains, Values: []string{"second"}}}, []int64{4}},
				{"old subject gone", tracking.Query{Subject: tracking.TextFilter{Op: tracking.OpContains, Values: []string{"test test"}}}, []int64{}},
				{"old attachment gone", tracking.Query{SHA256s: []string{shaZip}}, []int64{}},
				{"old flag gone", tracking.Query{Events: []tracking.EventFilter{{Name: "virusPositive", Value: "True"}}}, []int64{}},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					page, err := s.Search(ctx, tt.q)
					if err != nil {
						t.Fatal(err)
					}
					if diff := cmp.Diff(tt.want, mids(page.Messages)); diff != "" {
						t.Errorf("Search(%+v) MIDs (-want +got):\n%s", tt.q, diff)
					}
				})
			}
		})
	}
}

func TestTrackingStatusEvents(t *testing.T) {
	ctx := context.Background()
	m := func() *tracking.Message {
		return &tracking.Message{MID: 7, ICID: 3, InjectedAt: t0, Recipients: []tracking.Recipient{
			{RID: 0, Address: "a@corp.example"}, {RID: 1, Address: "b@corp.example"},
		}}
	}
	status := func(rcpt, st string) tracking.Event {
		return tracking.Event{Time: t0, MID: 7, Recipient: rcpt, Status: st, Reply: "reply " + st}
	}
	tests := []struct {
		name      string
		events    []tracking.Event
		want      string
		wantRcpts []string
	}{
		{"none", nil, tracking.StatusInProgress, []string{tracking.StatusInProgress, tracking.StatusInProgress}},
		{"one of two delivered", []tracking.Event{status("a@corp.example", tracking.StatusDelivered)},
			tracking.StatusInProgress, []string{tracking.StatusDelivered, tracking.StatusInProgress}},
		{"all delivered", []tracking.Event{status("<A@Corp.Example>", tracking.StatusDelivered), status("b@corp.example", tracking.StatusDelivered)},
			tracking.StatusDelivered, []string{tracking.StatusDelivered, tracking.StatusDelivered}},
		{"delivered and bounced", []tracking.Event{status("a@corp.example", tracking.StatusHardBounced), status("b@corp.example", tracking.StatusDelivered)},
			tracking.StatusDelivered, []string{tracking.StatusHardBounced, tracking.StatusDelivered}},
		{"two bounce kinds", []tracking.Event{status("a@corp.example", tracking.StatusHardBounced), status("b@corp.example", tracking.StatusSoftBounced)},
			tracking.StatusBounced, []string{tracking.StatusHardBounced, tracking.StatusSoftBounced}},
		{"message-level drop sets pending recipients", []tracking.Event{status("a@corp.example", tracking.StatusDelivered), status("", tracking.StatusDroppedAV)},
			tracking.StatusDroppedAV, []string{tracking.StatusDelivered, tracking.StatusDroppedAV}},
		{"unknown recipient changes nothing", []tracking.Event{status("z@corp.example", tracking.StatusDelivered)},
			tracking.StatusInProgress, []string{tracking.StatusInProgress, tracking.StatusInProgress}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := MustOpenTracking(t)
			mustApply(t, s, tracking.Batch{Messages: []*tracking.Message{m()}, Events: tt.events})
			got, _, err := s.Details(ctx, 7)
			if err != nil {
				t.Fatal(err)
			}
			var rs []string
			for _, r := range got.Recipients {
				rs = append(rs, r.Status)
			}
			if got.Status != tt.want || !cmp.Equal(rs, tt.wantRcpts) {
				t.Errorf("after %d events: status %q, recipients %q; want %q, %q", len(tt.events), got.Status, rs, tt.want, tt.wantRcpts)
			}
		})
	}
}

func TestTrackingDetailsEvents(t *testing.T) {
	ctx := context.Background()
	s := MustOpenTracking(t)
	at := func(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }
	conn := tracking.Event{Time: at(0), ICID: 5, Summary: "Incoming connection (ICID 5) has sender_group: UNKNOWNLIST"}
	otherConn := tracking.Event{Time: at(0), ICID: 6, Summary: "Incoming connection (ICID 6)"}
	start := tracking.Event{Time: at(1), ICID: 5, MID: 9, Summary: "Start message 9 on incoming connection (ICID 5).", Log: "Start MID 9 ICID 5"}
	other := tracking.Event{Time: at(1), ICID: 5, MID: 10, Summary: "Start message 10 on incoming connection (ICID 5)."}
	// Receipt events come before the record exists.
	mustApply(t, s, tracking.Batch{Events: []tracking.Event{conn, otherConn, start, other}})
	if _, _, err := s.Details(ctx, 9); sightline.ErrorKind(err) != sightline.NotFound {
		t.Fatalf("Details(9) before the record: err = %v, want NotFound", err)
	}
	lost := tracking.Event{Time: at(3), ICID: 5, Summary: "Incoming connection (ICID 5) lost."}
	done := tracking.Event{Time: at(4), MID: 9, DCID: 2, Level: tracking.Info, Summary: "Message 9 to x@y received remote SMTP response 'ok'.",
		Status: tracking.StatusDelivered, Recipient: "x@y", Reply: "ok"}
	mustApply(t, s, tracking.Batch{
		Messages: []*tracking.Message{{MID: 9, ICID: 5, InjectedAt: at(2), Recipients: []tracking.Recipient{{Address: "x@y"}}}},
		Events:   []tracking.Event{lost, done},
	})
	m, evs, err := s.Details(ctx, 9)
	if err != nil {
		t.Fatalf("Details(9): %v", err)
	}
	conn.Level, start.Level, lost.Level = tracking.Info, tracking.Info, tracking.Info
	want := []tracking.Event{conn, start, lost, done}
	if diff := cmp.Diff(want, evs, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("Details(9) events (-want +got):\n%s", diff)
	}
	if m.Status != tracking.StatusDelivered {
		t.Errorf("Details(9) status = %q, want %q", m.Status, tracking.StatusDelivered)
	}
}

// TestTrackingManyEvents applies a batch of more events than one insert
// statement carries: all are kept, in order, with their fields.
func TestTrackingManyEvents(t *testing.T) {
	ctx := context.Background()
	s := MustOpenTracking(t)
	var want []tracking.Event
	for i := range 75 {
		want = append(want, tracking.Event{Time: t0.Add(time.Duration(i) * time.Millisecond), ICID: 3, MID: 4, DCID: int64(i % 2),
			Level: tracking.Info, Summary: fmt.Sprintf("step %d", i), Log: fmt.Sprintf("Info: MID 4 step %d", i)})
	}
	want[74].Level, want[74].Status, want[74].Recipient, want[74].Reply = tracking.Warning, tracking.StatusHardBounced, "x@y", "550 no"
	mustApply(t, s, tracking.Batch{
		Messages: []*tracking.Message{{MID: 4, ICID: 3, InjectedAt: t0, Recipients: []tracking.Recipient{{Address: "x@y"}}}},
		Events:   want,
	})
	m, got, err := s.Details(ctx, 4)
	if err != nil {
		t.Fatalf("Details(4): %v", err)
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("Details(4) events (-want +got):\n%s", diff)
	}
	if m.Status != tracking.StatusHardBounced {
		t.Errorf("Details(4) status = %q, want %q", m.Status, tracking.StatusHardBounced)
	}
}

func TestTrackingPaging(t *testing.T) {
	ctx := context.Background()
	s := MustOpenTracking(t)
	var ms []*tracking.Message
	for i := range 45 {
		// Pairs share an injection time: MID breaks the tie.
		ms = append(ms, &tracking.Message{MID: int64(100 + i), InjectedAt: t0.Add(time.Duration(i/2) * time.Second), Sender: fmt.Sprintf("s%d@x.example", i)})
	}
	mustApply(t, s, tracking.Batch{Messages: ms})
	var all []int64
	for off := 0; ; off += 20 {
		page, err := s.Search(ctx, tracking.Query{Offset: off})
		if err != nil {
			t.Fatal(err)
		}
		if page.Total != 45 {
			t.Errorf("Search(offset %d) Total = %d, want 45", off, page.Total)
		}
		if len(page.Messages) == 0 {
			break
		}
		all = append(all, mids(page.Messages)...)
	}
	var want []int64
	for i := 144; i >= 100; i-- {
		want = append(want, int64(i))
	}
	if diff := cmp.Diff(want, all); diff != "" {
		t.Errorf("paged MIDs (-want +got):\n%s", diff)
	}

	s.CountLimit = 10
	page, err := s.Search(ctx, tracking.Query{Limit: 5})
	if err != nil {
		t.Fatal(err)
	}
	if page.Total != 10 || !page.TotalCapped || len(page.Messages) != 5 {
		t.Errorf("capped Search = Total %d, capped %v, %d rows; want 10, true, 5", page.Total, page.TotalCapped, len(page.Messages))
	}
}

// benchMessages generates n messages of a gateway's ordinary day: a few
// thousand senders, more recipients, an attachment on one in three, one
// message per 50 ms, deterministic.
func benchMessages(start, n int) []*tracking.Message {
	words := []string{"invoice", "meeting", "report", "urgent", "payment", "update", "réunion", "delivery", "account", "security"}
	ms := make([]*tracking.Message, 0, n)
	for i := start; i < start+n; i++ {
		h := uint64(i)*0x9E3779B97F4A7C15 + 1
		pick := func(k uint64) uint64 { h ^= h >> 29; h *= 0xBF58476D1CE4E5B9; return h % k }
		sender := fmt.Sprintf("user%d@sender%d.example", pick(5000), pick(300))
		m := &tracking.Message{
			MID: int64(i + 1), ICID: int64(i/3 + 1), Direction: []string{"incoming", "outgoing"}[pick(2)],
			InjectedAt: t0.Add(time.Duration(i) * 50 * time.Millisecond),
			SenderIP:   fmt.Sprintf("198.51.%d.%d", pick(256), pick(256)), SBRS: "None", SenderGroup: "UNKNOWNLIST",
			MailPolicy: []string{"DEFAULT"}, Sender: sender, HeaderFrom: sender,
			Subject:   fmt.Sprintf("%s %s %d", words[pick(10)], words[pick(10)], pick(100000)),
			MessageID: fmt.Sprintf("<%d.%d@sender.example>", i, pick(1<<30)), Size: int64(2000 + pick(100000)),
			Status: tracking.StatusInProgress, VerdictChart: "11100000",
		}
		for r := range 1 + pick(3) {
			m.Recipients = append(m.Recipients, tracking.Recipient{RID: int(r), Address: fmt.Sprintf("rcpt%d@corp%d.example", pick(20000), pick(20))})
		}
		if pick(3) == 0 {
			m.Attachments = []tracking.Attachment{{Name: fmt.Sprintf("%s_%d.pdf", words[pick(10)], pick(1000)), SHA256: fmt.Sprintf("%064x", pick(1<<62))}}
		}
		if pick(50) == 0 {
			m.Flags = []string{"virusPositive"}
		}
		ms = append(ms, m)
	}
	return ms
}

// benchEvents are ~20 events per message, as the gateway emits them.
func benchEvents(ms []*tracking.Message) []tracking.Event {
	evs := make([]tracking.Event, 0, 20*len(ms))
	for _, m := range ms {
		for k := range 19 {
			evs = append(evs, tracking.Event{Time: m.InjectedAt, ICID: m.ICID, MID: m.MID,
				Summary: fmt.Sprintf("Message %d step %d on incoming connection (ICID %d).", m.MID, k, m.ICID),
				Log:     fmt.Sprintf("MID %d step %d", m.MID, k)})
		}
		evs = append(evs, tracking.Event{Time: m.InjectedAt, MID: m.MID, Status: tracking.StatusDelivered,
			Recipient: m.Recipients[0].Address, Summary: "delivered"})
	}
	return evs
}

// BenchmarkTrackingApply writes batches of 500 messages with 20 events each;
// msg/s is the figure to compare with the gateway's ingest rate.
func BenchmarkTrackingApply(b *testing.B) {
	s := MustOpenTracking(b)
	const batch = 500
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		ms := benchMessages(i*batch, batch)
		evs := benchEvents(ms)
		b.StartTimer()
		mustApply(b, s, tracking.Batch{Messages: ms, Events: evs})
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "msg/s")
}

// BenchmarkTrackingIndex writes the substring index of batches of 500
// messages, as the indexer does behind ingest; msg/s compares with
// BenchmarkTrackingApply's.
func BenchmarkTrackingIndex(b *testing.B) {
	s := MustOpenTracking(b)
	const batch = 500
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		mustApply(b, s, tracking.Batch{Messages: benchMessages(i*batch, batch)})
		b.StartTimer()
		if n, err := s.IndexPending(context.Background(), batch); n != batch || err != nil {
			b.Fatalf("IndexPending = %d, %v; want %d", n, err, batch)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "msg/s")
}

// BenchmarkTrackingSearch measures each filter over a store of
// SIGHTLINE_BENCH_MESSAGES messages (default 20,000; the store is kept
// between runs in SIGHTLINE_BENCH_DB when set, to bench 1M or 10M).
func BenchmarkTrackingSearch(b *testing.B) {
	n := 20_000
	if v := os.Getenv("SIGHTLINE_BENCH_MESSAGES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatalf("SIGHTLINE_BENCH_MESSAGES=%q: %v", v, err)
		}
	}
	path := os.Getenv("SIGHTLINE_BENCH_DB")
	if path == "" {
		path = filepath.Join(b.TempDir(), "tracking.db")
	}
	ctx := context.Background()
	s, err := sqlite.OpenTracking(ctx, path)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	have, err := s.Search(ctx, tracking.Query{Limit: 1})
	if err != nil {
		b.Fatal(err)
	}
	s.CountLimit = 10_000
	if have.Total == 0 {
		for i := 0; i < n; i += 5000 {
			mustApply(b, s, tracking.Batch{Messages: benchMessages(i, min(5000, n-i))})
		}
	}
	last := t0.Add(time.Duration(n) * 50 * time.Millisecond)
	day := tracking.Query{Start: last.Add(-24 * time.Hour), End: last}
	with := func(f func(*tracking.Query)) tracking.Query { q := day; f(&q); return q }
	text := func(op tracking.Op, v string) tracking.TextFilter {
		return tracking.TextFilter{Op: op, Values: []string{v}}
	}
	queries := []struct {
		name string
		q    tracking.Query
	}{
		{"last_day", day},
		{"sender_is", with(func(q *tracking.Query) { q.Sender = text(tracking.OpIs, "user42@sender7.example") })},
		{"sender_begins_with", with(func(q *tracking.Query) { q.Sender = text(tracking.OpBeginsWith, "user421") })},
		{"sender_contains", with(func(q *tracking.Query) { q.Sender = text(tracking.OpContains, "r4217@") })},
		{"recipient_is", with(func(q *tracking.Query) { q.Recipient = text(tracking.OpIs, "rcpt123@corp3.example") })},
		{"recipient_contains", with(func(q *tracking.Query) { q.Recipient = text(tracking.OpContains, "pt1234@") })},
		{"subject_contains", with(func(q *tracking.Query) { q.Subject = text(tracking.OpContains, "urgent payment 4") })},
		{"subject_is", with(func(q *tracking.Query) { q.Subject = text(tracking.OpIs, "urgent payment 42") })},
		{"attachment_contains", with(func(q *tracking.Query) { q.AttachmentName = text(tracking.OpContains, "report_12") })},
		{"domain_is", with(func(q *tracking.Query) { q.Domain = text(tracking.OpIs, "sender7.example") })},
		{"domain_contains", with(func(q *tracking.Query) { q.Domain = text(tracking.OpContains, "der17.ex") })},
		{"sender_ip", with(func(q *tracking.Query) { q.SenderIPs = []string{"198.51.7.7"} })},
		{"message_id", with(func(q *tracking.Query) { q.MessageIDs = []string{"<12.1@sender.example>"} })},
		{"mid", with(func(q *tracking.Query) { q.MIDs = []int64{int64(n / 2)} })},
		{"sha256", with(func(q *tracking.Query) { q.SHA256s = []string{strings.Repeat("0", 63) + "1"} })},
		{"direction", with(func(q *tracking.Query) { q.Direction = "outgoing" })},
		{"flag", with(func(q *tracking.Query) { q.Events = []tracking.EventFilter{{Name: "virusPositive", Value: "True"}} })},
		{"delivered", with(func(q *tracking.Query) {
			q.Events = []tracking.EventFilter{{Name: "deliveryStatus", Value: "DELIVERED"}}
		})},
	}
	b.ResetTimer()
	for _, tt := range queries {
		b.Run(tt.name, func(b *testing.B) {
			for range b.N {
				if _, err := s.Search(ctx, tt.q); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkTrackingLastEvents reads the last listed event of 50 messages
// spread over a store of 5,000 with 21 events each, as the records
// endpoint does for a page of the console's investigation, the messages'
// last event being a log line without a summary.
func BenchmarkTrackingLastEvents(b *testing.B) {
	ctx := context.Background()
	s := MustOpenTracking(b)
	for i := 0; i < 5000; i += 2500 {
		ms := benchMessages(i, 2500)
		evs := benchEvents(ms)
		for _, m := range ms {
			evs = append(evs, tracking.Event{Time: m.InjectedAt, ICID: m.ICID, MID: m.MID, Log: fmt.Sprintf("MID %d log only", m.MID)})
		}
		mustApply(b, s, tracking.Batch{Messages: ms, Events: evs})
	}
	page := make([]*tracking.Message, 50)
	for i := range page {
		page[i] = &tracking.Message{MID: int64(i*97 + 1), ICID: int64(i*97/3 + 1)}
	}
	b.ResetTimer()
	for range b.N {
		last, err := s.LastEvents(ctx, page)
		if err != nil || len(last) != len(page) {
			b.Fatalf("LastEvents = %d times, %v; want %d", len(last), err, len(page))
		}
	}
}

// BenchmarkTrackingRecordsPage reads a page of 50 scattered messages as
// the records endpoint does: whole (Search, then LastEvents) and in brief
// (Briefs, one statement).
func BenchmarkTrackingRecordsPage(b *testing.B) {
	ctx := context.Background()
	s := MustOpenTracking(b)
	for i := 0; i < 5000; i += 2500 {
		ms := benchMessages(i, 2500)
		mustApply(b, s, tracking.Batch{Messages: ms, Events: benchEvents(ms)})
	}
	var q tracking.Query
	for i := range 50 {
		q.MIDs = append(q.MIDs, int64(i*97+1))
	}
	q.Limit = 100
	b.Run("whole", func(b *testing.B) {
		for range b.N {
			page, err := s.Search(ctx, q)
			if err == nil {
				_, err = s.LastEvents(ctx, page.Messages)
			}
			if err != nil || len(page.Messages) != 50 {
				b.Fatalf("Search = %d messages, %v; want 50", len(page.Messages), err)
			}
		}
	})
	b.Run("briefs", func(b *testing.B) {
		for range b.N {
			page, err := s.Briefs(ctx, q)
			if err != nil || len(page.Briefs) != 50 {
				b.Fatalf("Briefs = %d messages, %v; want 50", len(page.Briefs), err)
			}
		}
	})
}

// TestTrackingIndexer checks that the background indexer empties the queue
// once ingest pauses, and that searches answer alike before and after.
func TestTrackingIndexer(t *testing.T) {
	ctx := context.Background()
	s := MustOpenTracking(t)
	mustApply(t, s, tracking.Batch{Messages: corpus()})
	if n, err := s.Unindexed(ctx); err != nil || n != len(corpus()) {
		t.Fatalf("Unindexed before StartIndexer = %d, %v; want %d", n, err, len(corpus()))
	}
	q := tracking.Query{Subject: tracking.TextFilter{Op: tracking.OpContains, Values: []string{"nvoic"}}}
	before, err := s.Search(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	s.StartIndexer(nil)
	deadline := time.Now().Add(20 * time.Second)
	for {
		n, err := s.Unindexed(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Unindexed = %d after 20 s of indexing, want 0", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	after, err := s.Search(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if len(before.Messages) == 0 || !cmp.Equal(mids(before.Messages), mids(after.Messages)) {
		t.Errorf("Search(subject contains nvoic) = %v before indexing, %v after; want the same, not empty", mids(before.Messages), mids(after.Messages))
	}
}

// TestTrackingLastEvents checks LastEvents against what Details lists: the
// last event with a summary, the connection's events included.
func TestTrackingLastEvents(t *testing.T) {
	ctx := context.Background()
	s := MustOpenTracking(t)
	ms := corpus()
	at := func(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }
	mustApply(t, s, tracking.Batch{Messages: ms, Events: []tracking.Event{
		{Time: at(10), ICID: ms[0].ICID, Summary: "New SMTP ICID"}, // the connection's, before the MID
		{Time: at(11), ICID: ms[0].ICID, MID: ms[0].MID, Summary: "Start message"},
		{Time: at(12), ICID: ms[0].ICID, MID: ms[0].MID, Log: "log line only"},
		{Time: at(13), ICID: ms[1].ICID, MID: ms[1].MID, Summary: "Start message"},
		{Time: at(14), ICID: ms[1].ICID, Summary: "ICID closed"}, // the connection's, after the MID's
		{Time: at(15), ICID: ms[2].ICID, Summary: "connection only"},
	}})
	got, err := s.LastEvents(ctx, ms)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int64]time.Time{}
	for _, m := range ms {
		_, evs, err := s.Details(ctx, m.MID)
		if err != nil {
			t.Fatal(err)
		}
		for i := len(evs) - 1; i >= 0; i-- {
			if evs[i].Summary != "" {
				want[m.MID] = evs[i].Time
				break
			}
		}
	}
	if len(want) < 3 {
		t.Fatalf("Details found last events for %d messages, want at least the test's 3", len(want))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("LastEvents (-from Details +got):\n%s", diff)
	}
}

// TestTrackingBriefs checks Briefs against Search and LastEvents: the same
// page and count for every kind of plan, each message in brief with the
// last event LastEvents gives it.
func TestTrackingBriefs(t *testing.T) {
	ctx := context.Background()
	s := MustOpenTracking(t)
	ms := corpus()
	ms[4].Recipients = append(ms[4].Recipients, tracking.Recipient{RID: 1, Address: "zed@corp.example"},
		tracking.Recipient{RID: 2, Address: "amy@corp.example"})
	ms[4].Attachments = []tracking.Attachment{{Name: `a "quoted" <&> näme.pdf`, SHA256: shaZip}, {Name: "b.txt"}}
	ms[4].URLs = []string{"https://evil.example/2?a=<b>&c", "https://evil.example/1"}
	at := func(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }
	mustApply(t, s, tracking.Batch{Messages: ms, Events: []tracking.Event{
		{Time: at(10), ICID: ms[0].ICID, Summary: "New SMTP ICID"},
		{Time: at(11), ICID: ms[0].ICID, MID: ms[0].MID, Summary: "Start message"},
		{Time: at(12), ICID: ms[0].ICID, MID: ms[0].MID, Log: "log line only"},
		{Time: at(13), ICID: ms[1].ICID, MID: ms[1].MID, Summary: "Start message"},
		{Time: at(14), ICID: ms[1].ICID, Summary: "ICID closed"},
		{Time: at(15), ICID: ms[2].ICID, Summary: "connection only"},
		{Time: at(16), MID: ms[4].MID, Status: tracking.StatusDelivered, Recipient: "bob@corp.example", Summary: "Delivered"},
	}})
	mustIndex(t, s)
	is := func(v ...string) tracking.TextFilter { return tracking.TextFilter{Op: tracking.OpIs, Values: v} }
	contains := func(v ...string) tracking.TextFilter { return tracking.TextFilter{Op: tracking.OpContains, Values: v} }
	for name, q := range map[string]tracking.Query{
		"all":                 {},
		"second page":         {Offset: 2, Limit: 2},
		"window":              {Start: t0.Add(2 * time.Minute), End: t0.Add(5 * time.Minute)},
		"subject is":          {Subject: is("test test")},
		"subject begins":      {Subject: tracking.TextFilter{Op: tracking.OpBeginsWith, Values: []string{"inv"}}},
		"recipient contains":  {Recipient: contains("corp.ex")},
		"domain is (tags)":    {Domain: is("corp.example")},
		"flag (tags)":         {Events: []tracking.EventFilter{{Name: "virusPositive", Value: "True"}}},
		"mids":                {MIDs: []int64{2, 5, 99}},
		"matches nothing":     {Sender: is("nobody@nowhere.example")},
		"impossible":          {Start: at(10), End: at(5)},
		"contains and sender": {Recipient: contains("corp.ex"), Sender: is("eve@evil.example")},
	} {
		t.Run(name, func(t *testing.T) {
			page, err := s.Search(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Messages) == 0 && name != "matches nothing" && name != "impossible" {
				t.Fatalf("Search(%+v) found nothing", q)
			}
			last, err := s.LastEvents(ctx, page.Messages)
			if err != nil {
				t.Fatal(err)
			}
			want := tracking.BriefPage{Total: page.Total, TotalCapped: page.TotalCapped}
			for _, m := range page.Messages {
				b := &tracking.Brief{MID: m.MID, InjectedAt: m.InjectedAt, Direction: m.Direction, Sender: m.Sender,
					Subject: m.Subject, Status: m.Status, SenderIP: m.SenderIP, MessageID: m.MessageID,
					VerdictChart: m.VerdictChart, URLs: m.URLs, LastEventAt: last[m.MID]}
				for _, r := range m.Recipients {
					b.Recipients = append(b.Recipients, r.Address)
				}
				for _, a := range m.Attachments {
					b.Attachments = append(b.Attachments, tracking.BriefAttachment{Name: a.Name, SHA256: a.SHA256})
				}
				want.Briefs = append(want.Briefs, b)
			}
			got, err := s.Briefs(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Briefs(%+v) (-from Search and LastEvents +got):\n%s", q, diff)
			}
		})
	}
}
