package tracking_test

import (
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/tracking"
)

func TestParseSearch(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	sha := strings.Repeat("ab", 32)
	word := func(v, text string, neg bool) tracking.Term {
		return tracking.Term{Key: tracking.KeyWord, Value: v, Text: text, Negated: neg}
	}
	kv := func(k tracking.Key, v, text string, neg bool) tracking.Term {
		return tracking.Term{Key: k, Value: v, Text: text, Negated: neg}
	}
	at := func(k tracking.Key, v string, tm time.Time) tracking.Term {
		return tracking.Term{Key: k, Value: v, Text: string(k) + ":" + v, Time: tm}
	}
	size := func(k tracking.Key, v string, n int64) tracking.Term {
		return tracking.Term{Key: k, Value: v, Text: string(k) + ":" + v, Size: n}
	}
	ip := func(v, prefix string) tracking.Term {
		return tracking.Term{Key: tracking.KeyIP, Value: v, Text: "ip:" + v, Prefix: netip.MustParsePrefix(prefix)}
	}
	tests := []struct {
		name string
		q    string
		want []tracking.Term
	}{
		{"empty", "", nil},
		{"spaces", "  \t ", nil},
		{"words", "invoice  4471", []tracking.Term{word("invoice", "invoice", false), word("4471", "4471", false)}},
		{"phrase", `"invoice 4471"`, []tracking.Term{word("invoice 4471", `"invoice 4471"`, false)}},
		{"escaped quote", `"say \"hi\" now"`, []tracking.Term{word(`say "hi" now`, `"say \"hi\" now"`, false)}},
		{"backslash kept", `a\b`, []tracking.Term{word(`a\b`, `a\b`, false)}},
		{"unterminated quote", `"open phrase`, []tracking.Term{word("open phrase", `"open phrase`, false)}},
		{"empty phrase", `"" x`, []tracking.Term{word("x", "x", false)}},
		{"negated word", "-invoice", []tracking.Term{word("invoice", "-invoice", true)}},
		{"bang", "!invoice", []tracking.Term{word("invoice", "!invoice", true)}},
		{"negated phrase", `-"a b"`, []tracking.Term{word("a b", `-"a b"`, true)}},
		{"lone dash", "-", []tracking.Term{word("-", "-", false)}},
		{"quoted dash", `"-x"`, []tracking.Term{word("-x", `"-x"`, false)}},
		{"key with phrase", `to:"john doe"`, []tracking.Term{kv(tracking.KeyTo, "john doe", `to:"john doe"`, false)}},
		{"key case", "FROM:Alice@X", []tracking.Term{kv(tracking.KeyFrom, "Alice@X", "FROM:Alice@X", false)}},
		{"negated key", "!from:admin@example.com", []tracking.Term{kv(tracking.KeyFrom, "admin@example.com", "!from:admin@example.com", true)}},
		{"unknown key", "re: fwd:x", []tracking.Term{word("re:", "re:", false), word("fwd:x", "fwd:x", false)}},
		{"quoted colon", `"from:x"`, []tracking.Term{word("from:x", `"from:x"`, false)}},
		{"value with colon", "subject:re:x", []tracking.Term{kv(tracking.KeySubject, "re:x", "subject:re:x", false)}},
		{"text keys", "cc:a reply-to:b addressed:c subject:d host:e filename:f status:g", []tracking.Term{
			kv(tracking.KeyCc, "a", "cc:a", false), kv(tracking.KeyReplyTo, "b", "reply-to:b", false),
			kv(tracking.KeyAddressed, "c", "addressed:c", false), kv(tracking.KeySubject, "d", "subject:d", false),
			kv(tracking.KeyHost, "e", "host:e", false), kv(tracking.KeyFilename, "f", "filename:f", false),
			kv(tracking.KeyStatus, "g", "status:g", false)}},
		{"message-id", "message-id:<AbC@X>", []tracking.Term{kv(tracking.KeyMessageID, "abc@x", "message-id:<AbC@X>", false)}},
		{"url", `url:"https://x.example/?a=1 b"`, []tracking.Term{kv(tracking.KeyURL, "https://x.example/?a=1 b", `url:"https://x.example/?a=1 b"`, false)}},
		{"flags", "is:Incoming -has:attachments has:URL", []tracking.Term{
			kv(tracking.KeyIs, "incoming", "is:Incoming", false), kv(tracking.KeyHas, "attachment", "-has:attachments", true),
			kv(tracking.KeyHas, "url", "has:URL", false)}},
		{"every is flag", "is:outgoing is:delivered is:quarantined is:dropped is:bounced is:aborted is:inprogress is:spam is:virus has:inline",
			[]tracking.Term{kv(tracking.KeyIs, "outgoing", "is:outgoing", false), kv(tracking.KeyIs, "delivered", "is:delivered", false),
				kv(tracking.KeyIs, "quarantined", "is:quarantined", false), kv(tracking.KeyIs, "dropped", "is:dropped", false),
				kv(tracking.KeyIs, "bounced", "is:bounced", false), kv(tracking.KeyIs, "aborted", "is:aborted", false),
				kv(tracking.KeyIs, "inprogress", "is:inprogress", false), kv(tracking.KeyIs, "spam", "is:spam", false),
				kv(tracking.KeyIs, "virus", "is:virus", false), kv(tracking.KeyHas, "inline", "has:inline", false)}},
		{"date", "after:2026-01-10", []tracking.Term{at(tracking.KeyAfter, "2026-01-10", time.Date(2026, 1, 10, 0, 0, 0, 0, paris))}},
		{"slash date", "before:2026/01/10", []tracking.Term{at(tracking.KeyBefore, "2026/01/10", time.Date(2026, 1, 10, 0, 0, 0, 0, paris))}},
		{"date and minutes", "after:2026-01-10T08:00", []tracking.Term{at(tracking.KeyAfter, "2026-01-10T08:00", time.Date(2026, 1, 10, 8, 0, 0, 0, paris))}},
		{"slash date and time", "after:2026/01/10T08:00:12", []tracking.Term{at(tracking.KeyAfter, "2026/01/10T08:00:12", time.Date(2026, 1, 10, 8, 0, 12, 0, paris))}},
		{"quoted date and time", `after:"2026-01-10 08:00:12.5"`, []tracking.Term{{Key: tracking.KeyAfter, Value: "2026-01-10 08:00:12.5",
			Text: `after:"2026-01-10 08:00:12.5"`, Time: time.Date(2026, 1, 10, 8, 0, 12, 5e8, paris)}}},
		{"rfc 3339", "before:2026-01-10T08:00:00Z", []tracking.Term{at(tracking.KeyBefore, "2026-01-10T08:00:00Z", time.Date(2026, 1, 10, 8, 0, 0, 0, time.UTC))}},
		{"offset without seconds", "before:2026-01-10T08:00-05:00", []tracking.Term{at(tracking.KeyBefore, "2026-01-10T08:00-05:00", time.Date(2026, 1, 10, 13, 0, 0, 0, time.UTC))}},
		{"sizes", "larger:1.5m smaller:10KB larger:7 smaller:2k larger:1Mb", []tracking.Term{
			size(tracking.KeyLarger, "1.5m", 1572864), size(tracking.KeySmaller, "10KB", 10240), size(tracking.KeyLarger, "7", 7),
			size(tracking.KeySmaller, "2k", 2048), size(tracking.KeyLarger, "1Mb", 1<<20)}},
		{"ipv4", "ip:203.0.113.7", []tracking.Term{ip("203.0.113.7", "203.0.113.7/32")}},
		{"cidr", "ip:203.0.113.0/24", []tracking.Term{ip("203.0.113.0/24", "203.0.113.0/24")}},
		{"cidr masked", "ip:203.0.113.9/24", []tracking.Term{ip("203.0.113.9/24", "203.0.113.0/24")}},
		{"mapped", "ip:::ffff:192.0.2.1", []tracking.Term{ip("::ffff:192.0.2.1", "192.0.2.1/32")}},
		{"mapped cidr", "ip:::ffff:192.0.2.0/120", []tracking.Term{ip("::ffff:192.0.2.0/120", "192.0.2.0/24")}},
		{"ipv6 cidr", "ip:2001:DB8::/32", []tracking.Term{ip("2001:DB8::/32", "2001:db8::/32")}},
		{"hashes", "sha256:" + strings.ToUpper(sha) + " sha1:" + sha[:40] + " md5:" + sha[:32], []tracking.Term{
			kv(tracking.KeySHA256, sha, "sha256:"+strings.ToUpper(sha), false), kv(tracking.KeySHA1, sha[:40], "sha1:"+sha[:40], false),
			kv(tracking.KeyMD5, sha[:32], "md5:"+sha[:32], false)}},
		{"mid", "mid:315", []tracking.Term{{Key: tracking.KeyMID, Value: "315", Text: "mid:315", MID: 315}}},
		{"domain", "domain:Corp.Example -domain:@X.example domain:.corp.example", []tracking.Term{
			kv(tracking.KeyDomain, "corp.example", "domain:Corp.Example", false), kv(tracking.KeyDomain, "x.example", "-domain:@X.example", true),
			kv(tracking.KeyDomain, ".corp.example", "domain:.corp.example", false)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tracking.ParseSearch(tt.q, paris)
			if err != nil {
				t.Fatalf("ParseSearch(%q) error: %v", tt.q, err)
			}
			if diff := cmp.Diff(tt.want, got.Terms, cmpopts.EquateEmpty(), cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
				cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })); diff != "" {
				t.Errorf("ParseSearch(%q) terms (-want +got):\n%s", tt.q, diff)
			}
		})
	}
}

func TestParseSearchErrors(t *testing.T) {
	tests := []struct {
		q          string
		term       string
		reasonPart string
	}{
		{"after:31/12/2025", "after:31/12/2025", "ambiguous date; use yyyy-mm-dd"},
		{"x -before:01/04/2024", "-before:01/04/2024", "ambiguous date"},
		{"after:10.01.2026", "after:10.01.2026", "ambiguous date"},
		{"after:yesterday", "after:yesterday", "invalid date"},
		{"after:2026-02-30", "after:2026-02-30", "invalid date"},
		{"after:2026-01-10T25:00", "after:2026-01-10T25:00", "invalid date"},
		{"larger:big", "larger:big", "invalid size"},
		{"smaller:1g", "smaller:1g", "invalid size"},
		{"larger:-5", "larger:-5", "invalid size"},
		{"larger:1.m", "larger:1.m", "invalid size"},
		{"larger:99999999999999m", "larger:99999999999999m", "size too large"},
		{"ip:203.0.113", "ip:203.0.113", "invalid IP address"},
		{"ip:fe80::1%eth0", "ip:fe80::1%eth0", "invalid IP address"},
		{"ip:203.0.113.0/33", "ip:203.0.113.0/33", "invalid CIDR"},
		{"ip:host.example/24", "ip:host.example/24", "invalid CIDR"},
		{"sha256:abc", "sha256:abc", "sha256 must be 64 hexadecimal digits"},
		{"sha1:" + strings.Repeat("g", 40), "sha1:" + strings.Repeat("g", 40), "sha1 must be 40"},
		{"md5:" + strings.Repeat("a", 33), "md5:" + strings.Repeat("a", 33), "md5 must be 32"},
		{"mid:abc", "mid:abc", "invalid MID"},
		{"mid:0", "mid:0", "invalid MID"},
		{"mid:+5", "mid:+5", "invalid MID"},
		{"mid:99999999999999999999", "mid:99999999999999999999", "invalid MID"},
		{"is:read", "is:read", "unknown flag; use one of incoming"},
		{"has:nothing", "has:nothing", "unknown flag; use one of attachment"},
		{"from:", "from:", "missing value"},
		{`subject:""`, `subject:""`, "missing value"},
		{"message-id:<>", "message-id:<>", "empty Message-ID"},
		{"domain:.", "domain:.", "invalid domain"},
		{"domain:a..b", "domain:a..b", "invalid domain"},
		{"domain:a@b", "domain:a@b", "invalid domain"},
		{strings.Repeat("a ", tracking.MaxSearchTerms) + "last", "last", "more than 32 terms"},
		{strings.Repeat("a", tracking.MaxSearchLen+1), strings.Repeat("a", 64) + "…", "query longer than"},
		{"bad\xffutf8", "bad\uFFFDutf8", "invalid UTF-8"},
	}
	for _, tt := range tests {
		_, err := tracking.ParseSearch(tt.q, time.UTC)
		var se *tracking.SearchError
		if !errors.As(err, &se) {
			t.Errorf("ParseSearch(%q) error = %v, want a *SearchError", tt.q, err)
			continue
		}
		if se.Term != tt.term || !strings.Contains(se.Reason, tt.reasonPart) {
			t.Errorf("ParseSearch(%q) = term %q reason %q, want term %q reason containing %q", tt.q, se.Term, se.Reason, tt.term, tt.reasonPart)
		}
		if k := sightline.ErrorKind(err); k != sightline.Invalid {
			t.Errorf("ErrorKind(ParseSearch(%q)) = %v, want %v", tt.q, k, sightline.Invalid)
		}
	}
}

func TestSearchErrorJSON(t *testing.T) {
	_, err := tracking.ParseSearch("after:31/12/2025", time.UTC)
	b, jerr := json.Marshal(err)
	if jerr != nil {
		t.Fatal(jerr)
	}
	want := `{"error":"invalid term","term":"after:31/12/2025","reason":"ambiguous date; use yyyy-mm-dd"}`
	if string(b) != want {
		t.Errorf("json.Marshal(%v) = %s, want %s", err, b, want)
	}
}

func TestCursorRoundTrip(t *testing.T) {
	for _, c := range []tracking.Cursor{
		{InjectedAt: time.Unix(0, 0).UTC(), MID: 1},
		{InjectedAt: time.Date(2026, 1, 10, 8, 0, 12, 345, time.UTC), MID: 1 << 40},
	} {
		got, err := tracking.ParseCursor(c.String())
		if err != nil || !got.InjectedAt.Equal(c.InjectedAt) || got.MID != c.MID {
			t.Errorf("ParseCursor(%q) = %v, %v; want %v", c.String(), got, err, c)
		}
	}
	for _, s := range []string{"x", "AQ", "!!!!", (tracking.Cursor{}).String() + "A"} {
		if _, err := tracking.ParseCursor(s); sightline.ErrorKind(err) != sightline.Invalid {
			t.Errorf("ParseCursor(%q) error = %v, want Invalid", s, err)
		}
	}
}

// FuzzParseSearch checks that any query parses or fails with a
// *SearchError, and that parsed terms are sound.
func FuzzParseSearch(f *testing.F) {
	for _, s := range []string{
		"", `from:alice@sender.example after:2026-01-01 has:attachment`, `"invoice 4471" -is:delivered`,
		"ip:203.0.113.0/24 status:quarantined larger:1m", "sha256:" + strings.Repeat("0", 64),
		`url:"https://sender.example/i?x=1"`, "mid:315", "filename:.zip !domain:corp.example",
		`"a \" b`, `-"" !`, "after:31/12/2025", "ip:::ffff:1.2.3.4/100", "domain:.x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		s, err := tracking.ParseSearch(q, time.UTC)
		if err != nil {
			var se *tracking.SearchError
			if !errors.As(err, &se) || se.Reason == "" {
				t.Fatalf("ParseSearch(%q) error = %#v, want a *SearchError with a reason", q, err)
			}
			if _, err := json.Marshal(se); err != nil {
				t.Fatalf("json.Marshal(%#v): %v", se, err)
			}
			return
		}
		if len(s.Terms) > tracking.MaxSearchTerms {
			t.Fatalf("ParseSearch(%q) gave %d terms", q, len(s.Terms))
		}
		for _, tm := range s.Terms {
			if tm.Value == "" || tm.Text == "" || !strings.Contains(q, tm.Text) {
				t.Fatalf("ParseSearch(%q) gave term %+v", q, tm)
			}
			if tm.Key == tracking.KeyIP && (!tm.Prefix.IsValid() || tm.Prefix != tm.Prefix.Masked() || tm.Prefix.Addr().Is4In6()) {
				t.Fatalf("ParseSearch(%q) gave prefix %v", q, tm.Prefix)
			}
		}
	})
}
