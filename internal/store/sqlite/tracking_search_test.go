package sqlite_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/sightline/sightline/internal/store/sqlite"
	"github.com/sightline/sightline/internal/tracking"
)

const (
	sha1Invoice = "a94a8fe5ccb19ba61c4c0873d391e987982fbbd3"
	md5Invoice  = "098f6bcd4621d373cade4e832627b4f6"
)

// searchCorpus exercises every key of the native search. In result order
// (newest first) the MIDs are 5, 4, 3, 2, 1; 3 and 4 share a time.
func searchCorpus() []*tracking.Message {
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
			SenderIP: "203.0.113.25", ReverseDNS: "mail.sender.example", HELO: "mx1.sender.example",
			Sender: "alice@sender.example", HeaderFrom: "alice@sender.example", FriendlyFrom: "Alice Liddell <alice@sender.example>",
			ReplyTo: "billing@sender.example", Subject: "Invoice 4471", MessageID: "<4471@sender.example>",
			Recipients:  rcpts("bob@corp.example", "carol@corp.example"),
			Attachments: []tracking.Attachment{{Name: "invoice.pdf", SHA256: shaInvoice, SHA1: sha1Invoice, MD5: md5Invoice}},
			URLs:        []string{"https://sender.example/i?x=1"},
			Flags:       []string{"spamPositive"}, Size: 40190, Status: tracking.StatusDelivered, BodySnippet: "Please pay by Friday",
		},
		{
			MID: 2, ICID: 11, Direction: "outgoing", InjectedAt: t0.Add(2 * time.Minute),
			SenderIP: "2001:db8::1", HELO: "laptop", Sender: "Bob.Smith@Example.COM", FriendlyFrom: "Bob Smith <bob.smith@example.com>",
			Subject: "Réunion ÉTÉ café", MessageID: "<AbC.123@Example.COM>",
			HeaderTo: []string{"team@example.com"}, HeaderCc: []string{"dave@partner.example", "Erin@Partner.example"},
			Recipients:  rcpts("dave@partner.example"),
			Attachments: []tracking.Attachment{{Name: "Résumé.DOCX"}, {Name: "archive.zip", SHA256: strings.ToUpper(shaZip)}},
			URLs:        []string{"http://Tracker.Example/Path", "https://cdn.partner.example/x.png"},
			Size:        2 << 20, Status: tracking.StatusQuarantinedAS,
		},
		{
			MID: 3, ICID: 12, Direction: "incoming", InjectedAt: t0.Add(3 * time.Minute),
			SenderIP: "::ffff:192.0.2.7", Recipients: rcpts("alice+tag@sub.corp.example"),
			Size: 100, Status: tracking.StatusDroppedAV, Flags: []string{"virusPositive"}, HasInline: true,
		},
		{
			MID: 4, ICID: 13, Direction: "incoming", InjectedAt: t0.Add(3 * time.Minute),
			SenderIP: "203.0.113.200", ReverseDNS: "relay.corp.example", Sender: "noreply@corp.example.net",
			Subject: `Re: invoice 4471 "urgent"`, Recipients: rcpts("x@corp.example", "y@other.example"),
			Size: 1536, BodySnippet: "bonjour",
		},
		{
			MID: 5, ICID: 14, Direction: "incoming", InjectedAt: t0.Add(5 * time.Minute),
			SenderIP: "198.51.100.1", Sender: "eve@attacker.example", Subject: "hi",
			Recipients: rcpts("bob@corp.example"), Size: 1537, Status: tracking.StatusHardBounced,
		},
	}
}

func mustSearch(tb testing.TB, s *sqlite.TrackingStore, query string, limit int, after *tracking.Cursor) tracking.SearchPage {
	tb.Helper()
	sq, err := tracking.ParseSearch(query, time.UTC)
	if err != nil {
		tb.Fatalf("ParseSearch(%q): %v", query, err)
	}
	page, err := s.SearchMessages(context.Background(), tracking.SearchQuery{Search: sq, Limit: limit, After: after})
	if err != nil {
		tb.Fatalf("SearchMessages(%q): %v", query, err)
	}
	return page
}

// TestSearchMessagesFoldsHeaders checks that the headers stored as sent
// (From, host names, body) are matched case-insensitively as
// tracking.Fold folds, beyond ASCII too, also for a value too short for the
// substring index.
func TestSearchMessagesFoldsHeaders(t *testing.T) {
	msg := func(mid int64, from, helo, body string) *tracking.Message {
		return &tracking.Message{MID: mid, ICID: mid, Direction: "incoming", InjectedAt: t0.Add(time.Duration(mid) * time.Minute),
			SenderIP: "192.0.2.1", FriendlyFrom: from, HELO: helo, BodySnippet: body,
			Recipients: []tracking.Recipient{{Address: "rcpt@corp.example"}}, Status: tracking.StatusDelivered}
	}
	for _, mode := range indexModes {
		t.Run(mode.name, func(t *testing.T) {
			s := MustOpenTracking(t)
			mode.apply()(t, s, tracking.Batch{Messages: []*tracking.Message{
				msg(1, "ÜNAL Ölmez <unal@one.example>", "MX.KÖLN.example", "Grüße aus KÖLN"),
				msg(2, "LIDDELL <l@two.example>", "RELAY", "HELLO World"),
				msg(3, "\u212aZ <z@three.example>", "mx", ""), // the Kelvin sign folds to k
			}})
			for _, tt := range []struct {
				q    string
				want []int64
			}{
				{"from:ün", []int64{1}}, // too short for the index: every message is checked
				{"from:ÜN", []int64{1}},
				{"from:ölmez", []int64{1}},
				{"from:li", []int64{2}},
				{"from:LIDDELL", []int64{2}},
				{"from:kz", []int64{3}},
				{"host:kö", []int64{1}},
				{"host:relay", []int64{2}},
				{"hello", []int64{2}},
				{"köln", []int64{1}},
				{"GRÜ", []int64{1}},
			} {
				if got := mids(mustSearch(t, s, tt.q, 10, nil).Messages); !cmp.Equal(got, tt.want) {
					t.Errorf("%q = %v, want %v", tt.q, got, tt.want)
				}
			}
		})
	}
}

func TestSearchMessagesKeys(t *testing.T) {
	for _, mode := range indexModes {
		t.Run(mode.name, func(t *testing.T) {
			apply := mode.apply()
			s := MustOpenTracking(t)
			apply(t, s, tracking.Batch{Messages: searchCorpus()})
			all := []int64{5, 4, 3, 2, 1}
			tests := []struct {
				q    string
				want []int64
			}{
				{"", all},
				// Words and phrases: subject, addresses, names, body.
				{"invoice", []int64{4, 1}},
				{"INVOICE", []int64{4, 1}},
				{"-invoice", []int64{5, 3, 2}},
				{`"invoice 4471"`, []int64{4, 1}},
				{"friday", []int64{1}},
				{"liddell", []int64{1}},
				{"hi", []int64{5, 2}}, // two letters: scanned, "archive.zip" included
				{"re:", []int64{4}},   // an unknown key is a word
				{"nothing-like-this", nil},
				// Address keys.
				{"from:alice", []int64{1}},
				{"from:liddell", []int64{1}},
				{"FROM:BOB.SMITH", []int64{2}},
				{"!from:alice@sender.example", []int64{5, 4, 3, 2}},
				{"to:corp.example", []int64{5, 4, 3, 1}},
				{"-to:corp.example", []int64{2}},
				{"to:bob", []int64{5, 1}},
				{"-to:carol", []int64{5, 4, 3, 2}}, // no recipient may match
				{"to:x@", []int64{4}},
				{"to:team", []int64{2}}, // the To header
				{"to:erin", []int64{2}}, // and Cc
				{"cc:dave", []int64{2}},
				{"cc:ERIN@partner", []int64{2}},
				{"cc:bob", nil}, // an envelope recipient, not in Cc
				{"addressed:team@", []int64{2}},
				{"reply-to:billing", []int64{1}},
				{"addressed:billing", []int64{1}},
				{"addressed:dave", []int64{2}},
				{"addressed:liddell", []int64{1}},
				// Subject and Message-ID.
				{"subject:réunion", []int64{2}},
				{"subject:RÉUNION", []int64{2}},
				{`subject:"été café"`, []int64{2}},
				{`subject:"\"urgent\""`, []int64{4}},
				{"subject:hi", []int64{5}},
				{"message-id:<AbC.123@example.com>", []int64{2}},
				{"message-id:abc.123@EXAMPLE.com", []int64{2}},
				{"message-id:abc.123", nil},
				// Flags.
				{"is:incoming", []int64{5, 4, 3, 1}},
				{"is:outgoing", []int64{2}},
				{"-is:incoming", []int64{2}},
				{"is:delivered", []int64{1}},
				{"is:quarantined", []int64{2}},
				{"is:dropped", []int64{3}},
				{"is:bounced", []int64{5}},
				{"is:aborted", nil},
				{"is:inprogress", []int64{4}},
				{"is:spam", []int64{1}},
				{"is:virus", []int64{3}},
				{"has:attachment", []int64{2, 1}},
				{"has:Attachments", []int64{2, 1}},
				{"-has:attachment", []int64{5, 4, 3}},
				{"has:url", []int64{2, 1}},
				{"has:inline", []int64{3}},
				{"-has:inline", []int64{5, 4, 2, 1}},
				// Dates: inclusive, turned round by negation.
				{"after:2026-01-10T08:03", []int64{5, 4, 3}},
				{"-after:2026-01-10T08:03", []int64{4, 3, 2, 1}},
				{"before:2026-01-10T08:02", []int64{2, 1}},
				{"-before:2026-01-10T08:02", []int64{5, 4, 3, 2}},
				{"after:2026-01-10", all},
				{"before:2026-01-10", nil},
				{"after:2026-01-10T09:03:00+01:00 before:2026/01/10T08:04", []int64{4, 3}},
				// Sizes: strict, turned round by negation.
				{"larger:1.5k", []int64{5, 2, 1}},
				{"-larger:1.5k", []int64{3}},
				{"smaller:1.5KB", []int64{3}},
				{"-smaller:1.5kb", []int64{5, 2, 1}},
				{"larger:1m", []int64{2}},
				{"larger:2mb", nil},
				// IPs and CIDR blocks.
				{"ip:203.0.113.25", []int64{1}},
				{"ip:203.0.113.0/24", []int64{4, 1}},
				{"-ip:203.0.113.0/24", []int64{5, 3, 2}},
				{"ip:192.0.2.7", []int64{3}},
				{"ip:::ffff:192.0.2.7", []int64{3}},
				{"ip:192.0.2.0/29", []int64{3}},
				{"ip:192.0.2.0/30", nil},
				{"ip:2001:db8::/32", []int64{2}},
				{"ip:2001:DB8:0::1", []int64{2}},
				{"ip:0.0.0.0/0", []int64{5, 4, 3, 1}},
				{"ip:::/0", all},
				// Host names.
				{"host:relay", []int64{4}},
				{"host:MX1", []int64{1}},
				{"host:laptop", []int64{2}},
				// Domains: exact, or with subdomains.
				{"domain:corp.example", []int64{5, 4, 1}},
				{"domain:.corp.example", []int64{5, 4, 3, 1}},
				{"-domain:.corp.example", []int64{2}},
				{"domain:@Example.com", []int64{2}},
				{"domain:example", nil},
				// Attachment hashes and names.
				{"sha256:" + shaInvoice, []int64{1}},
				{"sha256:" + strings.ToUpper(shaInvoice), []int64{1}},
				{"sha256:" + shaZip, []int64{2}},
				{"-sha256:" + shaZip, []int64{5, 4, 3, 1}},
				{"sha1:" + sha1Invoice, []int64{1}},
				{"md5:" + md5Invoice, []int64{1}},
				{"filename:.zip", []int64{2}},
				{"filename:résumé", []int64{2}},
				{"filename:RÉSUMÉ.docx", []int64{2}},
				{"-filename:.pdf", []int64{5, 4, 3, 2}},
				// URLs: substring, or exact with a scheme.
				{"url:tracker.example", []int64{2}},
				{`url:"https://sender.example/i?x=1"`, []int64{1}},
				{"url:https://sender.example/i", nil},
				{"url:HTTP://TRACKER.EXAMPLE/PATH", []int64{2}},
				{"-url:partner", []int64{5, 4, 3, 1}},
				// MIDs and statuses.
				{"mid:3", []int64{3}},
				{"-mid:3", []int64{5, 4, 2, 1}},
				{"status:quarantined", []int64{2}},
				{`status:"quarantined by anti-spam"`, []int64{2}},
				{"status:bounced", []int64{5}},
				{"-status:progress", []int64{5, 3, 2, 1}},
				// The spec's examples, combined.
				{"from:alice@sender.example after:2026-01-01 has:attachment", []int64{1}},
				{`"invoice 4471" -is:delivered`, []int64{4}},
				{"ip:203.0.113.0/24 status:progress larger:1k", []int64{4}},
				{"filename:.zip !domain:corp.example", []int64{2}},
			}
			for _, tt := range tests {
				page := mustSearch(t, s, tt.q, 0, nil)
				if diff := cmp.Diff(tt.want, mids(page.Messages), cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("SearchMessages(%q) MIDs (-want +got):\n%s", tt.q, diff)
				}
				if page.Total != len(tt.want) || page.TotalCapped || page.Next != nil {
					t.Errorf("SearchMessages(%q) = total %d capped %v next %v, want %d, false, nil", tt.q, page.Total, page.TotalCapped, page.Next, len(tt.want))
				}
			}
		})
	}
}

// TestSearchMessagesChildren checks that results carry their lists and that
// a message saved again is searched by its new record only.
func TestSearchMessagesResave(t *testing.T) {
	for _, mode := range indexModes {
		t.Run(mode.name, func(t *testing.T) {
			apply := mode.apply()
			s := MustOpenTracking(t)
			ms := searchCorpus()
			apply(t, s, tracking.Batch{Messages: ms})
			page := mustSearch(t, s, "mid:2", 0, nil)
			if len(page.Messages) != 1 || len(page.Messages[0].Attachments) != 2 || len(page.Messages[0].URLs) != 2 {
				t.Fatalf("SearchMessages(mid:2) = %+v, want one message with 2 attachments and 2 URLs", page.Messages)
			}
			m2 := *ms[1]
			m2.Subject, m2.URLs, m2.HELO, m2.Attachments = "Agenda", []string{"https://new.example/"}, "desktop", nil
			apply(t, s, tracking.Batch{Messages: []*tracking.Message{&m2}})
			for q, want := range map[string][]int64{
				"réunion": nil, "agenda": {2}, "url:tracker": nil, "url:new.example": {2}, "host:laptop": nil,
				"host:desktop": {2}, "filename:archive": nil, "sha256:" + shaZip: nil,
			} {
				if got := mids(mustSearch(t, s, q, 0, nil).Messages); !cmp.Equal(got, want, cmpopts.EquateEmpty()) {
					t.Errorf("after resave, SearchMessages(%q) = %v, want %v", q, got, want)
				}
			}
		})
	}
}

// TestSearchMessagesPaging walks pages over many ties and checks that the
// pages join into the whole result, and that mail arriving meanwhile does
// not shift them.
func TestSearchMessagesPaging(t *testing.T) {
	s := MustOpenTracking(t)
	var ms []*tracking.Message
	for i := 1; i <= 23; i++ {
		ms = append(ms, &tracking.Message{
			MID: int64(i), Direction: "incoming", InjectedAt: t0.Add(time.Duration(i%5) * time.Second),
			Sender: fmt.Sprintf("s%d@paging.example", i), Subject: "report", Size: int64(i),
		})
	}
	mustApply(t, s, tracking.Batch{Messages: ms})
	late := int64(1000)
	for _, q := range []string{"", "report", "domain:paging.example", "-larger:40"} {
		for _, limit := range []int{1, 4, 10, 23, 50} {
			whole := mids(mustSearch(t, s, q, tracking.MaxSearchLimit, nil).Messages)
			var got []int64
			var after *tracking.Cursor
			for pages := 0; ; pages++ {
				if pages > len(whole)+1 {
					t.Fatalf("SearchMessages(%q, limit %d) does not end", q, limit)
				}
				page := mustSearch(t, s, q, limit, after)
				if pages == 0 && page.Total != len(whole) {
					t.Errorf("SearchMessages(%q, limit %d) total = %d, want %d", q, limit, page.Total, len(whole))
				}
				got = append(got, mids(page.Messages)...)
				if page.Next == nil {
					break
				}
				if len(page.Messages) != limit {
					t.Fatalf("SearchMessages(%q, limit %d) gave %d rows and a cursor", q, limit, len(page.Messages))
				}
				if pages == 0 {
					// A newer match arrives between pages.
					late++
					mustApply(t, s, tracking.Batch{Messages: []*tracking.Message{{MID: late, Direction: "incoming",
						InjectedAt: t0.Add(time.Hour), Sender: "late@paging.example", Subject: "report"}}})
				}
				c, err := tracking.ParseCursor(page.Next.String())
				if err != nil {
					t.Fatalf("ParseCursor(%q): %v", page.Next.String(), err)
				}
				after = &c
			}
			if diff := cmp.Diff(whole, got); diff != "" {
				t.Errorf("SearchMessages(%q) in pages of %d (-whole +pages):\n%s", q, limit, diff)
			}
		}
	}
}
