package pipeline

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/gateway/mailauth"
	"github.com/sightline/sightline/internal/gateway/mailflow"
	"github.com/sightline/sightline/internal/gateway/pipeline/contentfilter"
	"github.com/sightline/sightline/internal/tracking"
)

// fakeScanner finds "FAKE-VIRUS-MARKER" and fails on "SCAN-ERROR-MARKER".
type fakeScanner struct{}

func (fakeScanner) Scan(ctx context.Context, r io.Reader) (string, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return "", err
	}
	switch {
	case bytes.Contains(b, []byte("SCAN-ERROR-MARKER")):
		return "", errors.New("clamd: connection refused")
	case bytes.Contains(b, []byte("FAKE-VIRUS-MARKER")):
		return "Eicar-Signature", nil
	}
	return "", ctx.Err()
}

type fakeAuth struct{ res mailauth.Result }

func (a fakeAuth) Check(context.Context, net.IP, string, string, []byte) mailauth.Result {
	return a.res
}

var authPass = mailauth.Result{
	SPF:   mailauth.SPF{Result: "pass", Identity: "mailfrom", Domain: "sender.example"},
	DKIM:  []mailauth.DKIM{{Result: "pass", Domain: "sender.example", Selector: "s1", Identifier: "@sender.example"}},
	DMARC: mailauth.DMARC{Result: "pass", Policy: "reject", Domain: "sender.example", Aligned: true},
}

// recorder collects events.
type recorder struct {
	mu     sync.Mutex
	events []tracking.Event
}

func (r *recorder) Emit(ev tracking.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
}

func (r *recorder) logs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, ev := range r.events {
		if ev.Log != "" {
			out = append(out, string(ev.Level)+": "+ev.Log)
		}
	}
	return out
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var receivedAt = time.Date(2026, 1, 10, 8, 0, 12, 0, time.UTC)

func envelope(data []byte) *mailflow.Envelope {
	return &mailflow.Envelope{
		ICID: 5, MID: 6, ReceivedAt: receivedAt, Direction: mailflow.Incoming,
		Listener: "Data1", ClientIP: "203.0.113.25", ClientPort: 40000, HELO: "mail.sender.example",
		ReverseDNS: "mail.sender.example", ReverseDNSOK: true, SenderGroup: "UNKNOWNLIST", MailFlowPolicy: "ACCEPT",
		TLS: "TLSv1.3 TLS_AES_128_GCM_SHA256", MailFrom: "alice@sender.example",
		Recipients: []string{"bob@corp.example", "carol@corp.example"}, Size: int64(len(data)),
	}
}

func sha256hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func newPipeline(t *testing.T, rules *Rules, auth mailauth.Result) (*Pipeline, *recorder) {
	t.Helper()
	rec := &recorder{}
	p := &Pipeline{Auth: fakeAuth{auth}, AV: fakeScanner{}, Events: rec}
	if rules != nil {
		if err := p.SetRules(rules); err != nil {
			t.Fatalf("SetRules() = %v", err)
		}
	}
	return p, rec
}

func TestScreenDelivered(t *testing.T) {
	data := readTestdata(t, "invoice.eml")
	p, rec := newPipeline(t, nil, authPass)
	v, err := p.Screen(context.Background(), envelope(data), data)
	if err != nil {
		t.Fatal(err)
	}
	pdf := "%PDF-1.4 invoice 4471\n"
	pdfSHA1, pdfMD5 := "", ""
	for _, a := range v.Record.Attachments {
		pdfSHA1, pdfMD5 = a.SHA1, a.MD5
	}
	want := &mailflow.Verdict{Action: mailflow.Deliver, Record: &tracking.Message{
		MID: 6, ICID: 5, Direction: "incoming", InjectedAt: receivedAt,
		SenderIP: "203.0.113.25", ReverseDNS: "mail.sender.example", HELO: "mail.sender.example", SBRS: "None",
		SenderGroup: "UNKNOWNLIST", MailPolicy: []string{"DEFAULT"}, TLS: "TLSv1.3 TLS_AES_128_GCM_SHA256",
		ListenerName: "Data1", Sender: "alice@sender.example", SenderDomain: "sender.example",
		HeaderFrom: "alice@sender.example", FriendlyFrom: "Alice Example <alice@sender.example>",
		ReplyTo: "billing@sender.example", HeaderTo: []string{"bob@corp.example"},
		Subject: "Invoice 4471", FinalSubject: "Invoice 4471",
		MessageID: "<20260110080012.4471@sender.example>", Size: int64(len(data)),
		BodySnippet: "Please pay at https://pay.sender.example/i?x=1 before Friday.",
		Recipients: []tracking.Recipient{
			{RID: 0, Address: "bob@corp.example", Status: "In Progress"},
			{RID: 1, Address: "carol@corp.example", Status: "In Progress"},
		},
		Attachments: []tracking.Attachment{{Name: "invoice.pdf", Type: "application/pdf", Size: int64(len(pdf)),
			SHA256: sha256hex(pdf), SHA1: pdfSHA1, MD5: pdfMD5}},
		URLs:         []string{"https://pay.sender.example/i?x=1"},
		Status:       "In Progress",
		VerdictChart: "01000000",
		SPF:          "pass", DKIM: "pass", DMARC: "pass",
	}}
	if diff := cmp.Diff(want, v, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("Screen(invoice.eml) mismatch (-want +got):\n%s", diff)
	}
	if len(pdfSHA1) != 40 || len(pdfMD5) != 32 {
		t.Errorf("attachment hashes sha1 %q md5 %q, want hex", pdfSHA1, pdfMD5)
	}

	wantEvents := []tracking.Event{
		{Level: "Info", ICID: 5, MID: 6, Summary: "Message 6 contains message ID header '<20260110080012.4471@sender.example>'.", Log: "MID 6 Message-ID '<20260110080012.4471@sender.example>'"},
		{Level: "Info", ICID: 5, MID: 6, Summary: "Message 6 original subject on injection: Invoice 4471", Log: "MID 6 Subject 'Invoice 4471'"},
		{Level: "Info", ICID: 5, MID: 6, Summary: "Message 6 (" + strconv.Itoa(len(data)) + " bytes) from alice@sender.example ready.", Log: "MID 6 ready " + strconv.Itoa(len(data)) + " bytes from <alice@sender.example>"},
		{Level: "Info", ICID: 5, MID: 6, Summary: "Message 6 Sender Domain: sender.example"},
		{Level: "Info", ICID: 5, MID: 6, Summary: "Message 6 SPF: mailfrom identity alice@sender.example Pass", Log: "MID 6 SPF: mailfrom identity alice@sender.example Pass (v=spf1)"},
		{Level: "Info", ICID: 5, MID: 6, Summary: "Message 6 DKIM: pass signature verified (d=sender.example s=s1 i=@sender.example)", Log: "MID 6 DKIM: pass signature verified (d=sender.example s=s1 i=@sender.example)"},
		{Level: "Info", ICID: 5, MID: 6, Summary: "Message 6: DMARC verification passed.", Log: "MID 6 DMARC: Verification passed"},
		{Level: "Info", ICID: 5, MID: 6, Summary: "Message 6 matched per-recipient policy DEFAULT for inbound mail policies.", Log: "MID 6 matched all recipients for per-recipient policy DEFAULT in the inbound table"},
		{Level: "Info", ICID: 5, MID: 6, Summary: "Message 6 scanned by Anti-Virus engine. Final verdict: Negative ", Log: "MID 6 antivirus negative"},
	}
	if diff := cmp.Diff(wantEvents, rec.events, cmpopts.IgnoreFields(tracking.Event{}, "Time")); diff != "" {
		t.Errorf("Screen(invoice.eml) events mismatch (-want +got):\n%s", diff)
	}
	for _, ev := range rec.events {
		if ev.Time.IsZero() {
			t.Errorf("event %q has no time", ev.Summary)
		}
	}
}

func TestScreenAntiVirus(t *testing.T) {
	virus := readTestdata(t, "virus.eml")
	unscannable := []byte(strings.Replace(string(readTestdata(t, "invoice.eml")), "before Friday", "SCAN-ERROR-MARKER", 1))
	tests := []struct {
		name       string
		av         AntiVirusRules
		data       []byte
		wantAction mailflow.Action
		wantStatus string
		wantQ      string
		wantChart  string
		wantFlags  []string
		wantThreat string
		wantLast   string // last mail_logs line
		wantHeader bool
	}{
		{"virus dropped", AntiVirusRules{Enabled: true}, virus, mailflow.Drop, "Dropped By Anti-Virus", "", "02000000",
			[]string{"virusPositive"}, "Eicar-Signature", "Info: MID 6 Dropped by Anti-Virus", false},
		{"virus quarantined", AntiVirusRules{Enabled: true, OnVirus: "quarantine"}, virus, mailflow.Quarantine,
			"Quarantined by Anti-Virus", "Virus", "02000000", []string{"virusPositive"}, "Eicar-Signature",
			`Info: MID 6 quarantined to "Virus" by Anti-Virus`, false},
		{"scan error delivered with header", AntiVirusRules{Enabled: true}, unscannable, mailflow.Deliver, "In Progress", "",
			"00000000", nil, "", "Warning: MID 6 antivirus unscannable", true},
		{"scan error quarantined", AntiVirusRules{Enabled: true, OnError: "quarantine", Quarantine: "Unscannable"},
			unscannable, mailflow.Quarantine, "Quarantined by Anti-Virus", "Unscannable", "02000000", nil, "",
			`Info: MID 6 quarantined to "Unscannable" by Anti-Virus`, false},
		{"disabled", AntiVirusRules{}, virus, mailflow.Deliver, "In Progress", "", "00000000", nil, "",
			"Info: MID 6 matched all recipients for per-recipient policy DEFAULT in the inbound table", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rules := DefaultRules()
			rules.AntiVirus = tt.av
			p, rec := newPipeline(t, rules, authPass)
			v, err := p.Screen(context.Background(), envelope(tt.data), tt.data)
			if err != nil {
				t.Fatal(err)
			}
			r := v.Record
			got := []any{v.Action, v.Status, v.Quarantine, r.Status, r.VerdictChart, r.Flags, r.ThreatName, r.Quarantine}
			want := []any{tt.wantAction, tt.wantStatus, tt.wantQ, tt.wantStatus, tt.wantChart, tt.wantFlags, tt.wantThreat, tt.wantQ}
			if tt.wantAction == mailflow.Deliver {
				want[1] = ""
			}
			if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Screen() verdict mismatch (-want +got):\n%s", diff)
			}
			logs := rec.logs()
			if last := logs[len(logs)-1]; last != tt.wantLast {
				t.Errorf("last log line = %q, want %q", last, tt.wantLast)
			}
			if got := v.Data != nil; got != tt.wantHeader {
				t.Fatalf("Screen() changed data = %v, want %v", got, tt.wantHeader)
			}
			if tt.wantHeader {
				checkRewrite(t, tt.data, v.Data, "X-Sightline-AV: unscannable\r\n")
			}
		})
	}
}

// checkRewrite checks that out is in with its header changed: same body
// bytes, CRLF line ends, and the header containing each of fields.
func checkRewrite(t *testing.T, in, out []byte, fields ...string) {
	t.Helper()
	inHead, inBody, _ := bytes.Cut(in, []byte("\r\n\r\n"))
	outHead, outBody, ok := bytes.Cut(out, []byte("\r\n\r\n"))
	if !ok || !bytes.Equal(inBody, outBody) {
		t.Errorf("rewritten body differs from the original")
	}
	if bytes.Contains(bytes.ReplaceAll(outHead, []byte("\r\n"), nil), []byte("\n")) {
		t.Errorf("rewritten header has bare LF:\n%s", outHead)
	}
	head := string(outHead) + "\r\n"
	for _, f := range fields {
		if !strings.Contains(head, f) {
			t.Errorf("rewritten header lacks %q:\n%s", f, head)
		}
	}
	if len(outHead) <= len(inHead)-200 {
		t.Errorf("rewritten header lost fields:\n%s", outHead)
	}
}

func TestScreenLists(t *testing.T) {
	data := readTestdata(t, "invoice.eml")
	pdfHash := sha256hex("%PDF-1.4 invoice 4471\n")
	block := func(name, kind string, action Disposition, entries ...string) List {
		return List{Name: name, Kind: kind, Mode: Blocklist, Entries: entries, Action: action}
	}
	safe := func(name, kind string, entries ...string) List {
		return List{Name: name, Kind: kind, Mode: Safelist, Entries: entries}
	}
	tests := []struct {
		name       string
		lists      []List
		mailFrom   string
		wantAction mailflow.Action
		wantStatus string
		wantReason string
		wantChart  string
		wantFlags  []string
	}{
		{"no lists", nil, "", mailflow.Deliver, "In Progress", "", "01000000", nil},
		{"blocked IP quarantined by default", []List{block("bad_ips", ListSenderIP, Disposition{}, "203.0.113.0/24")}, "",
			mailflow.Quarantine, "Quarantined by Message Filter", "blocklist 'bad_ips' matched sender IP 203.0.113.25", "01000002", nil},
		{"blocked IP dropped", []List{block("bad_ips", ListSenderIP, Disposition{Type: "drop"}, "203.0.113.25")}, "",
			mailflow.Drop, "Dropped by Message Filter", "blocklist 'bad_ips' matched sender IP 203.0.113.25", "00000002", nil},
		{"safelisted domain beats blocked IP", []List{
			block("bad_ips", ListSenderIP, Disposition{Type: "drop"}, "203.0.113.25"),
			safe("partners", ListSenderDomain, ".sender.example"),
		}, "", mailflow.Deliver, "In Progress", "", "01000001", nil},
		{"safelist ignores header From", []List{
			block("bad_ips", ListSenderIP, Disposition{Type: "drop"}, "203.0.113.25"),
			safe("partners", ListSender, "alice@sender.example"),
		}, "other@elsewhere.example", mailflow.Drop, "Dropped by Message Filter", "blocklist 'bad_ips' matched sender IP 203.0.113.25", "00000002", nil},
		{"blocklist matches header From", []List{block("spoofers", ListSender, Disposition{Type: "drop"}, "ALICE@sender.example")},
			"other@elsewhere.example", mailflow.Drop, "Dropped by Message Filter", "blocklist 'spoofers' matched sender alice@sender.example", "00000002", nil},
		{"URL domain bounced", []List{block("phish", ListURLDomain, Disposition{Type: "bounce", Text: "no phishing"}, ".sender.example")}, "",
			mailflow.Bounce, "Bounced", "no phishing", "00000002", []string{"containedMaliciousUrls"}},
		{"URL domain safelisted", []List{
			block("phish", ListURLDomain, Disposition{Type: "drop"}, ".sender.example"),
			safe("pay", ListURLDomain, "pay.sender.example"),
		}, "", mailflow.Deliver, "In Progress", "", "01000001", nil},
		{"hash blocked", []List{block("bad_files", ListSHA256, Disposition{Type: "quarantine", Quarantine: "Files"}, strings.ToUpper(pdfHash))}, "",
			mailflow.Quarantine, "Quarantined by Message Filter", "blocklist 'bad_files' matched attachment SHA-256 " + pdfHash, "01000002", nil},
		{"domain pattern exact only", []List{block("d", ListSenderDomain, Disposition{Type: "drop"}, "example")}, "",
			mailflow.Deliver, "In Progress", "", "01000001", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rules := DefaultRules()
			rules.Lists = tt.lists
			p, _ := newPipeline(t, rules, authPass)
			env := envelope(data)
			if tt.mailFrom != "" {
				env.MailFrom = tt.mailFrom
			}
			v, err := p.Screen(context.Background(), env, data)
			if err != nil {
				t.Fatal(err)
			}
			got := []any{v.Action, v.Record.Status, v.Reason, v.Record.VerdictChart, v.Record.Flags}
			want := []any{tt.wantAction, tt.wantStatus, tt.wantReason, tt.wantChart, tt.wantFlags}
			if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Screen() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestScreenDMARC(t *testing.T) {
	data := readTestdata(t, "invoice.eml")
	fail := func(policy string) mailauth.Result {
		r := authPass
		r.DMARC = mailauth.DMARC{Result: "fail", Policy: policy, Domain: "sender.example"}
		return r
	}
	tests := []struct {
		name       string
		dmarc      DMARCRules
		auth       mailauth.Result
		flowPolicy string
		wantAction mailflow.Action
		wantStatus string
		wantQ      string
		wantLog    string // a mail_logs line expected among the events
	}{
		{"reject dropped", DefaultRules().DMARC, fail("reject"), "ACCEPT", mailflow.Drop, "Dropped by Message Filter", "",
			"Info: MID 6 Dropped by DMARC policy reject"},
		{"reject bounced", DMARCRules{Enforce: true, Reject: Disposition{Type: "bounce"}}, fail("reject"), "ACCEPT",
			mailflow.Bounce, "Bounced", "", "Info: MID 6 Bounced by DMARC policy reject"},
		{"quarantine", DMARCRules{Enforce: true, Quarantine: "DMARC"}, fail("quarantine"), "ACCEPT", mailflow.Quarantine,
			"Quarantined by Message Filter", "DMARC", `Info: MID 6 quarantined to "DMARC" by DMARC policy quarantine`},
		{"not enforced on RELAYED", DefaultRules().DMARC, fail("reject"), "RELAYED", mailflow.Deliver, "In Progress", "",
			"Info: MID 6 DMARC: Verification failed (p=reject)"},
		{"enforced only where overridden", DMARCRules{Policies: map[string]bool{"THROTTLED": true}}, fail("reject"), "THROTTLED",
			mailflow.Drop, "Dropped by Message Filter", "", "Info: MID 6 Dropped by DMARC policy reject"},
		{"p=none delivered", DefaultRules().DMARC, fail("none"), "ACCEPT", mailflow.Deliver, "In Progress", "",
			"Info: MID 6 DMARC: Verification failed (p=none)"},
		{"pass delivered", DefaultRules().DMARC, authPass, "ACCEPT", mailflow.Deliver, "In Progress", "",
			"Info: MID 6 DMARC: Verification passed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rules := DefaultRules()
			rules.DMARC = tt.dmarc
			p, rec := newPipeline(t, rules, tt.auth)
			env := envelope(data)
			env.MailFlowPolicy = tt.flowPolicy
			v, err := p.Screen(context.Background(), env, data)
			if err != nil {
				t.Fatal(err)
			}
			if v.Action != tt.wantAction || v.Record.Status != tt.wantStatus || v.Quarantine != tt.wantQ {
				t.Errorf("Screen() = %s %q %q, want %s %q %q", v.Action, v.Record.Status, v.Quarantine, tt.wantAction, tt.wantStatus, tt.wantQ)
			}
			if v.Record.DMARC != tt.auth.DMARC.Result {
				t.Errorf("Record.DMARC = %q, want %q", v.Record.DMARC, tt.auth.DMARC.Result)
			}
			if logs := rec.logs(); !contains(logs, tt.wantLog) {
				t.Errorf("events lack %q:\n%s", tt.wantLog, strings.Join(logs, "\n"))
			}
		})
	}
}

func contains(xs []string, x string) bool {
	for _, s := range xs {
		if s == x {
			return true
		}
	}
	return false
}

func TestScreenContentFilters(t *testing.T) {
	invoice := readTestdata(t, "invoice.eml")
	virus := readTestdata(t, "virus.eml")
	tag := contentfilter.Filter{Name: "tag_invoices", Enabled: true, Conditions: []contentfilter.Condition{{Type: "subject", Value: "invoice"}},
		Actions: []contentfilter.Action{{Type: "tag_subject", Prefix: "[SUSPICIOUS]"}, {Type: "add_header", Header: "X-Screened", Value: "cf été"}}}
	dropExe := contentfilter.Filter{Name: "block_exe", Enabled: true, Direction: "both",
		Conditions: []contentfilter.Condition{{Type: "attachment_type", Value: ".exe"}},
		Actions:    []contentfilter.Action{{Type: "drop"}}}
	quarantinePDF := contentfilter.Filter{Name: "hold_pdf", Enabled: true,
		Conditions: []contentfilter.Condition{{Type: "attachment_name", Op: "glob", Value: "*.pdf"}},
		Actions:    []contentfilter.Action{{Type: "quarantine"}}}
	tests := []struct {
		name        string
		filters     []contentfilter.Filter
		av          AntiVirusRules
		data        []byte
		direction   string
		wantAction  mailflow.Action
		wantStatus  string
		wantChart   string
		wantMatched []string
		wantSubject string
		wantLog     string
	}{
		{"tag and header", []contentfilter.Filter{tag}, AntiVirusRules{Enabled: true}, invoice, "incoming", mailflow.Deliver,
			"In Progress", "01002000", []string{"tag_invoices"}, "[SUSPICIOUS] Invoice 4471",
			"Info: MID 6 matched content filter 'tag_invoices' in the inbound table"},
		{"drop exe", []contentfilter.Filter{dropExe}, AntiVirusRules{}, virus, "incoming", mailflow.Drop,
			"Dropped by Content Filter", "00002000", []string{"block_exe"}, "your parcel",
			"Info: MID 6 Dropped by content filter 'block_exe' in the inbound table"},
		{"drop exe outbound", []contentfilter.Filter{dropExe}, AntiVirusRules{}, virus, "outgoing", mailflow.Drop,
			"Dropped by Content Filter", "00002000", []string{"block_exe"}, "your parcel",
			"Info: MID 6 Dropped by content filter 'block_exe' in the outbound table"},
		{"inbound filter skips outgoing", []contentfilter.Filter{quarantinePDF}, AntiVirusRules{}, invoice, "outgoing",
			mailflow.Deliver, "In Progress", "00000000", nil, "Invoice 4471", ""},
		{"quarantine", []contentfilter.Filter{quarantinePDF}, AntiVirusRules{}, invoice, "incoming", mailflow.Quarantine,
			"Quarantined by Content Filter", "00002000", []string{"hold_pdf"}, "Invoice 4471",
			`Info: MID 6 quarantined to "Policy" by content filter 'hold_pdf' in the inbound table`},
		{"multiple engines", []contentfilter.Filter{{Name: "hold_all", Enabled: true, Actions: []contentfilter.Action{{Type: "quarantine"}}}},
			AntiVirusRules{Enabled: true, OnVirus: "quarantine"}, virus, "incoming", mailflow.Quarantine,
			"Quarantined by Multiple Engines", "02002000", []string{"hold_all"}, "your parcel",
			"Info: MID 6 matched content filter 'hold_all' in the inbound table"},
		{"no match", []contentfilter.Filter{dropExe}, AntiVirusRules{}, invoice, "incoming", mailflow.Deliver,
			"In Progress", "00001000", nil, "Invoice 4471", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rules := DefaultRules()
			rules.AntiVirus = tt.av
			rules.ContentFilters = tt.filters
			p, rec := newPipeline(t, rules, authPass)
			env := envelope(tt.data)
			env.Direction = tt.direction
			v, err := p.Screen(context.Background(), env, tt.data)
			if err != nil {
				t.Fatal(err)
			}
			r := v.Record
			got := []any{v.Action, r.Status, r.VerdictChart, r.ContentFilters, r.FinalSubject}
			want := []any{tt.wantAction, tt.wantStatus, tt.wantChart, tt.wantMatched, tt.wantSubject}
			if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Screen() mismatch (-want +got):\n%s", diff)
			}
			if tt.wantLog != "" && !contains(rec.logs(), tt.wantLog) {
				t.Errorf("events lack %q:\n%s", tt.wantLog, strings.Join(rec.logs(), "\n"))
			}
		})
	}
}

func TestScreenRewritesHeaderOnly(t *testing.T) {
	data := readTestdata(t, "invoice.eml")
	rules := DefaultRules()
	rules.ContentFilters = []contentfilter.Filter{{Name: "tag", Enabled: true,
		Actions: []contentfilter.Action{{Type: "tag_subject", Prefix: "[SUSPICIOUS]"}, {Type: "add_header", Header: "X-Screened", Value: "cf été"}}}}
	p, _ := newPipeline(t, rules, authPass)
	v, err := p.Screen(context.Background(), envelope(data), data)
	if err != nil {
		t.Fatal(err)
	}
	checkRewrite(t, data, v.Data, "\r\nSubject: [SUSPICIOUS] Invoice 4471\r\n", "\r\nX-Screened: =?utf-8?q?cf_=C3=A9t=C3=A9?=\r\n",
		"Received: from mail.sender.example (mail.sender.example [203.0.113.25])\r\n\tby gw1.corp.example")
	if n := strings.Count(string(v.Data), "Subject:"); n != 1 {
		t.Errorf("rewritten message has %d Subject fields, want 1", n)
	}
	// Screening the result again must not tag twice.
	v2, err := p.Screen(context.Background(), envelope(v.Data), v.Data)
	if err != nil {
		t.Fatal(err)
	}
	if got := v2.Record.FinalSubject; got != "[SUSPICIOUS] Invoice 4471" {
		t.Errorf("second Screen FinalSubject = %q, want one tag", got)
	}
}

func TestScreenCanceled(t *testing.T) {
	data := readTestdata(t, "invoice.eml")
	p, _ := newPipeline(t, nil, authPass)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if v, err := p.Screen(ctx, envelope(data), data); !errors.Is(err, context.Canceled) || v != nil {
		t.Errorf("Screen(canceled) = %v, %v; want nil, context.Canceled", v, err)
	}
}

func TestScreenWithoutAuthOrEvents(t *testing.T) {
	data := []byte("Subject: hi\r\n\r\nbody\r\n")
	p := &Pipeline{}
	env := envelope(data)
	env.MailFrom = ""
	v, err := p.Screen(context.Background(), env, data)
	if err != nil {
		t.Fatal(err)
	}
	if v.Action != mailflow.Deliver || v.Record.SPF != "" || v.Record.VerdictChart != "00000000" || v.Record.SenderDomain != "" {
		t.Errorf("Screen() = %+v, want delivery without checks", v.Record)
	}
}

func TestSetRules(t *testing.T) {
	p := &Pipeline{}
	good := DefaultRules()
	good.Lists = []List{{Name: "a", Kind: ListSenderIP, Mode: Blocklist, Entries: []string{"192.0.2.1"}}}
	if err := p.SetRules(good); err != nil {
		t.Fatalf("SetRules(good) = %v", err)
	}
	bad := DefaultRules()
	bad.Lists = []List{{Name: "b", Kind: ListSenderIP, Mode: Blocklist, Entries: []string{"300.1.1.1"}}}
	err := p.SetRules(bad)
	if sightline.ErrorKind(err) != sightline.Invalid {
		t.Fatalf("SetRules(bad) = %v, want Invalid", err)
	}
	if p.Rules() != good {
		t.Errorf("SetRules(bad) replaced the rules")
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(r *Rules)
		want string
	}{
		{"default", func(r *Rules) {}, ""},
		{"bad IP", func(r *Rules) {
			r.Lists = []List{{Name: "ips", Kind: ListSenderIP, Mode: Blocklist, Entries: []string{"10.0.0.0/8", "nope"}}}
		}, `list "ips": entry 2: invalid IP address "nope"`},
		{"bad kind and mode", func(r *Rules) { r.Lists = []List{{Name: "x", Kind: "asn", Mode: "greylist"}} },
			`list "x": unknown mode "greylist" (want blocklist or safelist); list "x": unknown kind "asn"`},
		{"duplicate list", func(r *Rules) {
			r.Lists = []List{{Name: "x", Kind: ListSender, Mode: Safelist}, {Name: "x", Kind: ListSender, Mode: Safelist}}
		}, `list "x": duplicate name`},
		{"safelist action", func(r *Rules) {
			r.Lists = []List{{Name: "s", Kind: ListSender, Mode: Safelist, Action: Disposition{Type: "drop"}}}
		}, `list "s": a safelist takes no action`},
		{"bad address and hash", func(r *Rules) {
			r.Lists = []List{{Name: "a", Kind: ListSender, Mode: Blocklist, Entries: []string{"nobody"}},
				{Name: "h", Kind: ListSHA256, Mode: Blocklist, Entries: []string{"abc"}}}
		}, `list "a": entry 1: invalid address "nobody"; list "h": entry 1: invalid sha256 "abc": want 64 hex digits`},
		{"dmarc action", func(r *Rules) { r.DMARC.Reject.Type = "reject" },
			`dmarc: reject: unknown action "reject" (want quarantine, drop or bounce)`},
		{"av actions", func(r *Rules) { r.AntiVirus.OnVirus, r.AntiVirus.OnError = "bounce", "drop" },
			`anti_virus: on_virus: unknown action "bounce" (want drop or quarantine); anti_virus: on_error: unknown action "drop" (want deliver or quarantine)`},
		{"content filter", func(r *Rules) {
			r.ContentFilters = []contentfilter.Filter{{Name: "block_exe", Conditions: []contentfilter.Condition{{Type: "subject"}, {Type: "subject", Op: "equalz", Value: "x"}},
				Actions: []contentfilter.Action{{Type: "drop"}}}}
		}, `content filter "block_exe": condition 1: missing value; content filter "block_exe": condition 2: unknown operator "equalz"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := DefaultRules()
			tt.edit(r)
			err := r.Validate()
			if got := sightline.ErrorMessage(err); got != tt.want {
				t.Errorf("Validate() = %q, want %q", got, tt.want)
			}
		})
	}
}
