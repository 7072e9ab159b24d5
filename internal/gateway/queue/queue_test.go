package queue_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"
	"github.com/emersion/go-smtp"
	"github.com/google/go-cmp/cmp"
	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/gateway/mailbox"
	"github.com/sightline/sightline/internal/gateway/mailflow"
	"github.com/sightline/sightline/internal/gateway/queue"
	"github.com/sightline/sightline/internal/tracking"
)

func TestDeliverToNextHop(t *testing.T) {
	h := newHarness(t)
	sk := startSink(t)
	h.q.SetRoutes([]queue.Route{{Domain: "corp.test", Hosts: []string{sk.addr}, TLS: queue.TLSNone}})
	h.run(t)
	mid := h.enqueue(t, "a@sender.test", "x@corp.test", "y@corp.test")

	list := h.events.waitLog(t, fmt.Sprintf("Message finished MID %d done", mid))
	msgs := sk.waitMsgs(t, 1)
	want := []sinkMsg{{From: "a@sender.test", To: []string{"x@corp.test", "y@corp.test"}, Data: testMessage(mid)}}
	if diff := cmp.Diff(want, msgs); diff != "" {
		t.Errorf("next hop received (-want +got):\n%s", diff)
	}
	_, port, _ := net.SplitHostPort(sk.addr)
	wantLogs := []string{
		fmt.Sprintf("MID %d queued for delivery", mid),
		"New SMTP DCID 1 interface 127.0.0.1 address 127.0.0.1 port " + port,
		fmt.Sprintf("Delivery start DCID 1 MID %d to RID [0, 1]", mid),
		fmt.Sprintf("Message done DCID 1 MID %d to RID [0, 1] [('from', 'a@sender.test'), ('to', 'x@corp.test'), ('to', 'y@corp.test')]", mid),
		fmt.Sprintf("MID %d RID [0] Response '2.0.0 OK: queued'", mid),
		fmt.Sprintf("MID %d RID [1] Response '2.0.0 OK: queued'", mid),
		fmt.Sprintf("Message finished MID %d done", mid),
	}
	if diff := cmp.Diff(wantLogs, logLines(list)); diff != "" {
		t.Errorf("mail_logs lines (-want +got):\n%s", diff)
	}
	wantSummaries := []string{
		fmt.Sprintf("Message %d queued for delivery.", mid),
		"SMTP delivery connection (DCID 1) opened from interface 127.0.0.1 to IP address 127.0.0.1 on port " + port + ".",
		fmt.Sprintf("(DCID 1) Delivery started for message %d to x@corp.test.", mid),
		fmt.Sprintf("(DCID 1) Delivery started for message %d to y@corp.test.", mid),
		fmt.Sprintf("(DCID 1) Delivery details: Message %d sent to x@corp.test [('from', 'a@sender.test'), ('to', 'x@corp.test')]", mid),
		fmt.Sprintf("(DCID 1) Delivery details: Message %d sent to y@corp.test [('from', 'a@sender.test'), ('to', 'y@corp.test')]", mid),
		fmt.Sprintf("Message %d to x@corp.test received remote SMTP response 'OK: queued'.", mid),
		fmt.Sprintf("Message %d to y@corp.test received remote SMTP response 'OK: queued'.", mid),
	}
	if diff := cmp.Diff(wantSummaries, summaries(list, mid)); diff != "" {
		t.Errorf("tracking summaries (-want +got):\n%s", diff)
	}
	var delivered []string
	for _, ev := range list {
		if ev.Status == tracking.StatusDelivered {
			delivered = append(delivered, ev.Recipient+" "+ev.Reply)
		}
	}
	if diff := cmp.Diff([]string{"x@corp.test 2.0.0 OK: queued", "y@corp.test 2.0.0 OK: queued"}, delivered); diff != "" {
		t.Errorf("Delivered statuses (-want +got):\n%s", diff)
	}
	if _, ok := h.rec.get(mid); !ok {
		t.Errorf("no tracking record saved for MID %d", mid)
	}
	if _, err := h.spool.Message(context.Background(), mid); sightline.ErrorKind(err) != sightline.NotFound {
		t.Errorf("spool still holds delivered MID %d: %v", mid, err)
	}
	h.events.waitLog(t, "DCID 1 close") // after IdleTimeout
}

func TestConnectionReuse(t *testing.T) {
	h := newHarness(t)
	h.q.IdleTimeout = 10 * time.Second
	sk := startSink(t)
	h.q.SetRoutes([]queue.Route{{Domain: "ALL", Hosts: []string{sk.addr}, TLS: queue.TLSNone}})
	h.run(t)
	for i := range 3 {
		mid := h.enqueue(t, "a@sender.test", "x@corp.test")
		h.events.waitLog(t, fmt.Sprintf("Message finished MID %d done", mid))
		sk.waitMsgs(t, i+1)
	}
	if n := sk.connCount(); n != 1 {
		t.Errorf("next hop saw %d connections for 3 messages in a row, want 1", n)
	}
	list, _ := h.events.snapshot()
	var opened int
	for _, l := range logLines(list) {
		if strings.HasPrefix(l, "New SMTP DCID") {
			opened++
		}
	}
	if opened != 1 {
		t.Errorf("%d \"New SMTP DCID\" lines, want 1", opened)
	}
}

func TestDeferredUntilNextHopComesUp(t *testing.T) {
	h := newHarness(t)
	// A port with nothing listening, for now.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	h.q.SetRoutes([]queue.Route{{Domain: "corp.test", Hosts: []string{addr}, TLS: queue.TLSNone}})
	h.run(t)
	mid := h.enqueue(t, "a@sender.test", "x@corp.test")

	list := h.events.waitSummaryPrefix(t, fmt.Sprintf("Message %d to x@corp.test delayed: 4.4.1 connection to %s failed", mid, addr))
	var soft bool
	for _, ev := range list {
		soft = soft || (ev.Status == tracking.StatusSoftBounced && ev.Recipient == "x@corp.test")
	}
	if !soft {
		t.Errorf("no Soft Bounced status event for the deferred recipient")
	}
	st, err := h.q.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Depth != 1 {
		t.Errorf("Stats().Depth = %d while deferred, want 1", st.Depth)
	}

	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen again on %s: %v", addr, err)
	}
	sk := startSinkOn(t, ln)
	h.events.waitLog(t, fmt.Sprintf("Message finished MID %d done", mid))
	if msgs := sk.waitMsgs(t, 1); msgs[0].To[0] != "x@corp.test" {
		t.Errorf("delivered to %v, want x@corp.test", msgs[0].To)
	}
}

// waitSummaryPrefix waits for a summary that starts with prefix.
func (e *events) waitSummaryPrefix(t *testing.T, prefix string) []tracking.Event {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		list, ch := e.snapshot()
		for _, ev := range list {
			if strings.HasPrefix(ev.Summary, prefix) {
				return list
			}
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("no summary starting %q in:\n%s", prefix, strings.Join(summaries(list, 0), "\n"))
		}
	}
}

// dsnParts parses a DSN and returns its report type, its parts' types, the
// per-recipient fields and the returned headers.
type dsn struct {
	ContentType string
	ReportType  string
	PartTypes   []string
	Message     map[string]string // per-message fields
	Recipients  []map[string]string
	Headers     string
}

func parseDSN(t *testing.T, data []byte) dsn {
	t.Helper()
	ent, err := message.Read(strings.NewReader(string(data)))
	if err != nil {
		t.Fatalf("parse DSN: %v\n%s", err, data)
	}
	var d dsn
	var params map[string]string
	d.ContentType, params, _ = ent.Header.ContentType()
	d.ReportType = params["report-type"]
	mr := ent.MultipartReader()
	if mr == nil {
		t.Fatalf("DSN is not multipart:\n%s", data)
	}
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("DSN part: %v", err)
		}
		typ, _, _ := p.Header.ContentType()
		d.PartTypes = append(d.PartTypes, typ)
		body, _ := io.ReadAll(p.Body)
		switch typ {
		case "message/delivery-status":
			br := bufio.NewReader(strings.NewReader(string(body)))
			for i := 0; ; i++ {
				h, err := textproto.ReadHeader(br)
				if err != nil || h.Len() == 0 {
					break
				}
				fields := map[string]string{}
				for f := h.Fields(); f.Next(); {
					fields[f.Key()] = f.Value()
				}
				if i == 0 {
					d.Message = fields
				} else {
					d.Recipients = append(d.Recipients, fields)
				}
			}
		case "text/rfc822-headers":
			d.Headers = string(body)
		}
	}
	return d
}

func TestPermanentFailureSendsDSN(t *testing.T) {
	h := newHarness(t)
	sk := startSink(t)
	sk.rcpt = func(to string) error {
		if to == "nobody@corp.test" {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
		}
		return nil
	}
	h.q.SetRoutes([]queue.Route{{Domain: "ALL", Hosts: []string{sk.addr}, TLS: queue.TLSNone}})
	h.run(t)
	mid := h.enqueue(t, "a@sender.test", "x@corp.test", "nobody@corp.test")

	list := h.events.waitLog(t, fmt.Sprintf("Message finished MID %d done", mid))
	var hard []string
	for _, ev := range list {
		if ev.Status == tracking.StatusHardBounced {
			hard = append(hard, ev.Recipient+": "+ev.Summary)
		}
	}
	wantHard := []string{fmt.Sprintf("nobody@corp.test: Message %d to nobody@corp.test bounced: 550 5.1.1 no such user.", mid)}
	if diff := cmp.Diff(wantHard, hard); diff != "" {
		t.Errorf("Hard Bounced events (-want +got):\n%s", diff)
	}
	h.events.waitLog(t, fmt.Sprintf("MID 1001 was generated for bounce of MID %d", mid))
	h.events.waitLog(t, "Message finished MID 1001 done")
	msgs := sk.waitMsgs(t, 2)
	var bounce *sinkMsg
	for i := range msgs {
		if msgs[i].From == "" {
			bounce = &msgs[i]
		}
	}
	if bounce == nil {
		t.Fatalf("no null-sender DSN among %d messages", len(msgs))
	}
	if diff := cmp.Diff([]string{"a@sender.test"}, bounce.To); diff != "" {
		t.Errorf("DSN recipients (-want +got):\n%s", diff)
	}
	got := parseDSN(t, bounce.Data)
	want := dsn{
		ContentType: "multipart/report",
		ReportType:  "delivery-status",
		PartTypes:   []string{"text/plain", "message/delivery-status", "text/rfc822-headers"},
		Message:     map[string]string{"Reporting-Mta": "dns; gw.test", "X-Sightline-Mid": fmt.Sprint(mid)},
		Recipients: []map[string]string{{
			"Final-Recipient": "rfc822; nobody@corp.test",
			"Action":          "failed",
			"Status":          "5.1.1",
			"Remote-Mta":      "dns; 127.0.0.1",
			"Diagnostic-Code": "smtp; 550 5.1.1 no such user",
		}},
		Headers: string(testMessage(mid)[:strings.Index(string(testMessage(mid)), "\r\n\r\n")+2]),
	}
	ignore := func(k string, _ string) bool { return k == "Arrival-Date" || k == "Last-Attempt-Date" }
	if diff := cmp.Diff(want, got, cmp.FilterPath(func(p cmp.Path) bool {
		mi, ok := p.Last().(cmp.MapIndex)
		return ok && ignore(mi.Key().String(), "")
	}, cmp.Ignore())); diff != "" {
		t.Errorf("DSN (-want +got):\n%s", diff)
	}
}

func TestBounceIsNeverBounced(t *testing.T) {
	h := newHarness(t)
	sk := startSink(t)
	sk.rcpt = func(string) error { return &smtp.SMTPError{Code: 550, Message: "go away"} }
	h.q.SetRoutes([]queue.Route{{Domain: "ALL", Hosts: []string{sk.addr}, TLS: queue.TLSNone}})
	h.run(t)
	mid := h.enqueue(t, "a@sender.test", "x@corp.test")
	h.events.waitLog(t, fmt.Sprintf("MID 1001 was generated for bounce of MID %d", mid))
	list := h.events.waitLog(t, "Message finished MID 1001 done")
	for _, l := range logLines(list) {
		if strings.Contains(l, "generated for bounce of MID 1001") {
			t.Errorf("a bounce was bounced: %q", l)
		}
	}
	if n := len(sk.msgs); n != 0 {
		t.Errorf("next hop accepted %d messages, want 0", n)
	}
}

func TestExpiryBouncesWithDSN(t *testing.T) {
	h := newHarness(t)
	h.q.Lifetime = 300 * time.Millisecond
	sk := startSink(t)
	sk.rcpt = func(to string) error {
		if to == "x@corp.test" {
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}
		}
		return nil
	}
	h.q.SetRoutes([]queue.Route{{Domain: "ALL", Hosts: []string{sk.addr}, TLS: queue.TLSNone}})
	h.run(t)
	mid := h.enqueue(t, "a@sender.test", "x@corp.test")
	list := h.events.waitLog(t, fmt.Sprintf("Message finished MID %d done", mid))
	var delayed int
	for _, l := range logLines(list) {
		if strings.HasPrefix(l, "Delayed: ") && strings.Contains(l, fmt.Sprintf("MID %d to RID [0] - 451 4.3.0 try later", mid)) {
			delayed++
		}
	}
	if delayed == 0 {
		t.Errorf("no Delayed line before expiry in:\n%s", strings.Join(logLines(list), "\n"))
	}
	msgs := sk.waitMsgs(t, 1)
	d := parseDSN(t, msgs[0].Data)
	if len(d.Recipients) != 1 || d.Recipients[0]["Status"] != "5.4.7" || d.Recipients[0]["Diagnostic-Code"] != "smtp; 451 4.3.0 try later" {
		t.Errorf("expiry DSN recipients = %v, want Status 5.4.7 with the last reply", d.Recipients)
	}
}

func TestQuarantineReleaseAndDelete(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	h.q.Screener = screenFunc(func(env *mailflow.Envelope, _ []byte) (*mailflow.Verdict, error) {
		return &mailflow.Verdict{Action: mailflow.Quarantine, Quarantine: "Policy", Status: tracking.StatusQuarantinedCF,
			Reason: "content filter 'exe' matched", Record: &tracking.Message{MID: env.MID, Subject: fmt.Sprint("hello ", env.MID)}}, nil
	})
	sk := startSink(t)
	h.q.SetRoutes([]queue.Route{{Domain: "ALL", Hosts: []string{sk.addr}, TLS: queue.TLSNone}})
	h.run(t)
	m1 := h.enqueue(t, "a@sender.test", "x@corp.test")
	m2 := h.enqueue(t, "a@sender.test", "y@corp.test")
	for _, mid := range []int64{m1, m2} {
		h.events.waitLog(t, fmt.Sprintf("MID %d quarantined to \"Policy\" (content filter 'exe' matched)", mid))
	}
	if rec, _ := h.rec.get(m1); rec.Status != tracking.StatusQuarantinedCF || rec.Quarantine != "Policy" {
		t.Errorf("record of MID %d: status %q quarantine %q, want %q in Policy", m1, rec.Status, rec.Quarantine, tracking.StatusQuarantinedCF)
	}
	qm, err := h.q.Quarantined(ctx, "Policy", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range qm {
		got = append(got, fmt.Sprintf("%d %s %s %v", m.MID, m.Subject, m.From, m.To))
	}
	want := []string{fmt.Sprintf("%d hello %d a@sender.test [y@corp.test]", m2, m2), fmt.Sprintf("%d hello %d a@sender.test [x@corp.test]", m1, m1)}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Quarantined(Policy) (-want +got):\n%s", diff)
	}

	if err := h.q.Release(ctx, m1); err != nil {
		t.Fatalf("Release(%d): %v", m1, err)
	}
	list := h.events.waitLog(t, fmt.Sprintf("Message finished MID %d done", m1))
	if msgs := sk.waitMsgs(t, 1); msgs[0].To[0] != "x@corp.test" {
		t.Errorf("released message went to %v", msgs[0].To)
	}
	sums := summaries(list, m1)
	if !contains(sums, fmt.Sprintf("Message %d quarantined in Policy quarantine.", m1)) || !contains(sums, fmt.Sprintf("Message %d released from quarantine Policy.", m1)) {
		t.Errorf("summaries of MID %d lack quarantine and release: %q", m1, sums)
	}

	if err := h.q.Delete(ctx, m2); err != nil {
		t.Fatalf("Delete(%d): %v", m2, err)
	}
	h.events.waitLog(t, fmt.Sprintf("MID %d deleted from quarantine Policy", m2))
	for _, call := range []struct {
		name string
		fn   func(context.Context, int64) error
	}{{"Release", h.q.Release}, {"Delete", h.q.Delete}} {
		if err := call.fn(ctx, m2); sightline.ErrorKind(err) != sightline.NotFound {
			t.Errorf("%s(deleted %d) = %v, want NotFound", call.name, m2, err)
		}
	}
	st, err := h.q.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(queue.Stats{}, st); diff != "" {
		t.Errorf("Stats() after release and delete (-want +got):\n%s", diff)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestDropAndPolicyBounce(t *testing.T) {
	h := newHarness(t)
	sk := startSink(t)
	h.q.Screener = screenFunc(func(env *mailflow.Envelope, _ []byte) (*mailflow.Verdict, error) {
		if env.Recipients[0] == "drop@corp.test" {
			return &mailflow.Verdict{Action: mailflow.Drop, Status: tracking.StatusDroppedCF, Reason: "content filter 'x' matched"}, nil
		}
		return &mailflow.Verdict{Action: mailflow.Bounce, Reason: "message refused by content filter 'y'"}, nil
	})
	h.q.SetRoutes([]queue.Route{{Domain: "ALL", Hosts: []string{sk.addr}, TLS: queue.TLSNone}})
	h.run(t)
	dropped := h.enqueue(t, "a@sender.test", "drop@corp.test")
	list := h.events.waitLog(t, fmt.Sprintf("Message finished MID %d done", dropped))
	if !contains(summaries(list, dropped), fmt.Sprintf("Message %d dropped by Content Filter.", dropped)) {
		t.Errorf("summaries of MID %d: %q, want the drop", dropped, summaries(list, dropped))
	}
	bounced := h.enqueue(t, "a@sender.test", "b@corp.test")
	h.events.waitLog(t, fmt.Sprintf("Message finished MID %d done", bounced))
	msgs := sk.waitMsgs(t, 1)
	d := parseDSN(t, msgs[0].Data)
	if msgs[0].From != "" || len(d.Recipients) != 1 || d.Recipients[0]["Final-Recipient"] != "rfc822; b@corp.test" ||
		d.Recipients[0]["Diagnostic-Code"] != "smtp; 550 5.7.1 message refused by content filter 'y'" {
		t.Errorf("policy bounce DSN from %q, recipients %v", msgs[0].From, d.Recipients)
	}
}

func TestLocalMailbox(t *testing.T) {
	h := newHarness(t)
	mb := &mailbox.Mailbox{Dir: t.TempDir()}
	h.q.Mailbox = mb
	h.run(t)
	mid := h.enqueue(t, "a@sender.test", "x@local.test")
	list := h.events.waitLog(t, fmt.Sprintf("MID %d RID [0] Response '%s'", mid, mailbox.Reply))
	if !contains(summaries(list, mid), fmt.Sprintf("Message %d to x@local.test received remote SMTP response 'Ok: delivered to local mailbox'.", mid)) {
		t.Errorf("summaries: %q", summaries(list, mid))
	}
	h.events.waitLog(t, fmt.Sprintf("Message finished MID %d done", mid))
	ms, err := mb.List(context.Background(), "x@local.test")
	if err != nil || len(ms) != 1 {
		t.Fatalf("List(x@local.test) = %v, %v, want one message", ms, err)
	}
	data, err := mb.Read(context.Background(), "x@local.test", ms[0].Name)
	if err != nil || !strings.HasSuffix(string(data), string(testMessage(mid))) {
		t.Errorf("Read = %q, %v, want the message", data, err)
	}
}

func TestEnqueueInvalid(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		name string
		env  *mailflow.Envelope
	}{
		{"nil", nil},
		{"no MID", &mailflow.Envelope{Recipients: []string{"x@corp.test"}}},
		{"no recipients", &mailflow.Envelope{MID: 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := h.q.Enqueue(context.Background(), tt.env, []byte("x")); sightline.ErrorKind(err) != sightline.Invalid {
				t.Errorf("Enqueue(%+v) = %v, want an Invalid error", tt.env, err)
			}
		})
	}
}

// A next hop offering PIPELINING gets MAIL, RCPT and DATA in one write (the
// hop answers only once it has DATA); one that does not gets them one reply
// at a time (the hop refuses a command sent early). Both take three
// messages in a row on one connection.
func TestPipelining(t *testing.T) {
	for _, pipelining := range []bool{true, false} {
		t.Run(fmt.Sprint("pipelining=", pipelining), func(t *testing.T) {
			h := newHarness(t)
			h.q.IdleTimeout = 10 * time.Second
			h.q.CommandTimeout = 3 * time.Second // a lockstep client would wait this long
			h.q.RetryMin, h.q.RetryMax = time.Hour, time.Hour
			hop := startRawHop(t, pipelining, "")
			h.q.SetRoutes([]queue.Route{{Domain: "ALL", Hosts: []string{hop.addr}, TLS: queue.TLSNone}})
			h.run(t)
			for range 3 {
				mid := h.enqueue(t, "a@sender.test", "x@corp.test", "y@corp.test")
				list := h.events.waitLog(t, fmt.Sprintf("Message finished MID %d done", mid))
				for _, ev := range list {
					if ev.MID == mid && ev.Status != "" && ev.Status != tracking.StatusDelivered && ev.Status != tracking.StatusInProgress {
						t.Fatalf("MID %d: %s: %s", mid, ev.Status, ev.Summary)
					}
				}
			}
			if n := hop.count(); n != 3 {
				t.Errorf("next hop took %d messages, want 3", n)
			}
		})
	}
}

// A connection the next hop closed while it was idle is replaced at once:
// the message goes over a new connection, not after a retry.
func TestIdleConnectionClosedByNextHop(t *testing.T) {
	h := newHarness(t)
	h.q.IdleTimeout = 10 * time.Second
	h.q.RetryMin, h.q.RetryMax = time.Hour, time.Hour
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sk := startSinkIdle(t, ln, 200*time.Millisecond)
	h.q.SetRoutes([]queue.Route{{Domain: "ALL", Hosts: []string{sk.addr}, TLS: queue.TLSNone}})
	h.run(t)
	for i := range 2 {
		mid := h.enqueue(t, "a@sender.test", "x@corp.test")
		h.events.waitLog(t, fmt.Sprintf("Message finished MID %d done", mid))
		sk.waitMsgs(t, i+1)
		time.Sleep(600 * time.Millisecond) // the next hop drops the idle connection
	}
	if n := sk.connCount(); n != 2 {
		t.Errorf("next hop saw %d connections, want 2 (the second after the first was dropped)", n)
	}
}

// After a transaction whose every recipient was refused, the next one on
// the same connection starts with RSET and is delivered. (The first has a
// null sender, so that no DSN takes another connection.)
func TestAllRecipientsRefusedThenNext(t *testing.T) {
	for _, pipelining := range []bool{true, false} {
		t.Run(fmt.Sprint("pipelining=", pipelining), func(t *testing.T) {
			h := newHarness(t)
			h.q.IdleTimeout = 10 * time.Second
			hop := startRawHop(t, pipelining, "nobody")
			h.q.SetRoutes([]queue.Route{{Domain: "ALL", Hosts: []string{hop.addr}, TLS: queue.TLSNone}})
			h.run(t)
			refused := h.enqueue(t, "", "nobody@corp.test", "nobody2@corp.test")
			list := h.events.waitLog(t, fmt.Sprintf("Message finished MID %d done", refused))
			var hard int
			for _, ev := range list {
				if ev.MID == refused && ev.Status == tracking.StatusHardBounced {
					hard++
				}
			}
			if hard != 2 {
				t.Errorf("%d Hard Bounced events for MID %d, want 2", hard, refused)
			}
			mid := h.enqueue(t, "a@sender.test", "x@corp.test")
			list = h.events.waitLog(t, fmt.Sprintf("Message finished MID %d done", mid))
			for _, ev := range list {
				if ev.MID == mid && ev.Status != "" && ev.Status != tracking.StatusDelivered && ev.Status != tracking.StatusInProgress {
					t.Fatalf("MID %d: %s: %s", mid, ev.Status, ev.Summary)
				}
			}
			if n := hop.count(); n != 1 {
				t.Errorf("next hop took %d messages, want 1", n)
			}
		})
	}
}
