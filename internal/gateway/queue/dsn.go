package queue

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/sightline/sightline/internal/gateway/mailflow"
	"github.com/sightline/sightline/internal/tracking"
)

// maxReturnedHeaders bounds the original header section quoted in a DSN.
const maxReturnedHeaders = 64 << 10

// failure is one recipient that will not get the message.
type failure struct {
	Rcpt    string
	Err     attemptError // the last error (an SMTP reply when Code != 0)
	Expired bool         // given up after Lifetime rather than refused
}

// bounce sends a delivery status notification for fails to the sender of
// env, as a new message (new MID) queued for delivery without screening. A
// message with the null sender (a bounce itself) never causes one.
func (q *Queue) bounce(ctx context.Context, r *runner, env *mailflow.Envelope, data []byte, fails []failure) {
	if env.MailFrom == "" || len(fails) == 0 {
		return
	}
	now := time.Now()
	mid := q.IDs.NextMID()
	msg := buildDSN(q.hostname(), mid, env, data, fails, now)
	benv := &mailflow.Envelope{
		MID:        mid,
		ReceivedAt: now,
		Direction:  mailflow.Outgoing,
		Recipients: []string{env.MailFrom},
		Size:       int64(len(msg)),
	}
	if err := q.Spool.Add(ctx, benv, msg, StateQueued); err != nil {
		q.logger().Error("queue bounce", "mid", env.MID, "bounce_mid", mid, "err", err)
		return
	}
	q.Recorder.Save(&tracking.Message{
		MID:          mid,
		Direction:    mailflow.Outgoing,
		InjectedAt:   now,
		Subject:      dsnSubject,
		FinalSubject: dsnSubject,
		MessageID:    dsnMessageID(q.hostname(), mid),
		Size:         benv.Size,
		Recipients:   []tracking.Recipient{{RID: 0, Address: env.MailFrom, Status: tracking.StatusInProgress}},
		Status:       tracking.StatusInProgress,
	})
	q.emit(tracking.Event{MID: mid,
		Summary: fmt.Sprintf("Message %d was generated for bounce of message %d.", mid, env.MID),
		Log:     fmt.Sprintf("MID %d was generated for bounce of MID %d", mid, env.MID)})
	q.emit(tracking.Event{MID: mid,
		Summary: fmt.Sprintf("Message %d queued for delivery.", mid),
		Log:     fmt.Sprintf("MID %d queued for delivery", mid)})
	q.mu.Lock()
	q.claimLocked(mid)
	q.mu.Unlock()
	q.dispatch(ctx, r, &item{env: benv, data: msg, rcpts: pendingRecipients(benv)})
}

const dsnSubject = "Undelivered Mail Returned to Sender"

func dsnMessageID(host string, mid int64) string {
	return fmt.Sprintf("<dsn.%d@%s>", mid, host)
}

// buildDSN writes an RFC 3464 delivery status notification: a
// multipart/report with a human part, a message/delivery-status part and
// the original header section as text/rfc822-headers.
func buildDSN(host string, mid int64, env *mailflow.Envelope, data []byte, fails []failure, now time.Time) []byte {
	boundary := fmt.Sprintf("=_sightline_dsn_%d_%d", mid, now.UnixNano())
	var b bytes.Buffer
	crlf := func(format string, args ...any) {
		fmt.Fprintf(&b, format, args...)
		b.WriteString("\r\n")
	}
	crlf("From: Mail Delivery System <MAILER-DAEMON@%s>", host)
	crlf("To: <%s>", env.MailFrom)
	crlf("Subject: %s", dsnSubject)
	crlf("Date: %s", now.Format(time.RFC1123Z))
	crlf("Message-ID: %s", dsnMessageID(host, mid))
	crlf("Auto-Submitted: auto-replied")
	crlf("MIME-Version: 1.0")
	crlf("Content-Type: multipart/report; report-type=delivery-status;")
	crlf("\tboundary=\"%s\"", boundary)
	crlf("")
	crlf("This is a MIME-encapsulated message.")
	crlf("")

	crlf("--%s", boundary)
	crlf("Content-Description: Notification")
	crlf("Content-Type: text/plain; charset=utf-8")
	crlf("")
	crlf("This is the mail system at host %s.", host)
	crlf("")
	crlf("I'm sorry to have to inform you that your message could not")
	crlf("be delivered to one or more recipients. It's attached below.")
	crlf("")
	for _, f := range fails {
		if f.Expired {
			crlf("<%s>: delivery time expired; last error: %s", f.Rcpt, oneLine(f.Err.String()))
		} else {
			crlf("<%s>: %s", f.Rcpt, oneLine(f.Err.String()))
		}
	}
	crlf("")

	crlf("--%s", boundary)
	crlf("Content-Description: Delivery report")
	crlf("Content-Type: message/delivery-status")
	crlf("")
	crlf("Reporting-MTA: dns; %s", host)
	crlf("X-Sightline-MID: %d", env.MID)
	if !env.ReceivedAt.IsZero() {
		crlf("Arrival-Date: %s", env.ReceivedAt.Format(time.RFC1123Z))
	}
	for _, f := range fails {
		crlf("")
		crlf("Final-Recipient: rfc822; %s", f.Rcpt)
		crlf("Action: failed")
		crlf("Status: %s", dsnStatus(f))
		if f.Err.RemoteMTA != "" {
			crlf("Remote-MTA: dns; %s", f.Err.RemoteMTA)
		}
		if f.Err.Code != 0 {
			crlf("Diagnostic-Code: smtp; %s", oneLine(f.Err.String()))
		} else {
			crlf("Diagnostic-Code: X-Sightline; %s", oneLine(f.Err.String()))
		}
		crlf("Last-Attempt-Date: %s", now.Format(time.RFC1123Z))
	}
	crlf("")

	crlf("--%s", boundary)
	crlf("Content-Description: Undelivered Message Headers")
	crlf("Content-Type: text/rfc822-headers")
	crlf("")
	b.Write(headerSection(data))
	crlf("")
	crlf("--%s--", boundary)
	return b.Bytes()
}

// dsnStatus is the RFC 3463 code of a failure: 5.4.7 when it expired, else
// the reply's enhanced code with a permanent class, else one from its code.
func dsnStatus(f failure) string {
	if f.Expired {
		return "5.4.7"
	}
	code, _, _ := strings.Cut(f.Err.Text, " ")
	if enhancedCode(code) {
		return "5" + code[1:]
	}
	return "5.0.0"
}

// headerSection returns the header section of an RFC 5322 message, with CRLF
// line ends, at most maxReturnedHeaders bytes cut at a line end.
func headerSection(data []byte) []byte {
	end := len(data)
	for _, sep := range [][]byte{[]byte("\r\n\r\n"), []byte("\n\n")} {
		if i := bytes.Index(data, sep); i >= 0 && i < end {
			end = i
		}
	}
	h := data[:end]
	if len(h) > maxReturnedHeaders {
		h = h[:maxReturnedHeaders]
		if i := bytes.LastIndexByte(h, '\n'); i >= 0 {
			h = h[:i]
		}
	}
	var out bytes.Buffer
	for line := range bytes.Lines(h) {
		line = bytes.TrimRight(line, "\r\n")
		if bytes.HasPrefix(line, []byte("--")) {
			line = append([]byte(" "), line...) // never a boundary of the report
		}
		out.Write(line)
		out.WriteString("\r\n")
	}
	return out.Bytes()
}

// oneLine folds a reply onto one line for a header field.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
