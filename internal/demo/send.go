package demo

import (
	"context"
	"fmt"
	"net"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/emersion/go-smtp"
)

// smtpTimeout bounds the connection and each command of a submission.
const smtpTimeout = 30 * time.Second

// send submits m to the gateway over SMTP, one connection per message, from
// SourceIP so that it is incoming mail; where that address cannot be used
// (it is not a local address, or the gateway does not listen on IPv4
// loopback) it falls back to the default address for good.
func (d *demo) send(ctx context.Context, m *Message) error {
	conn, err := d.dial(ctx)
	if err != nil {
		return err
	}
	c := smtp.NewClient(conn)
	defer c.Close()
	c.CommandTimeout, c.SubmissionTimeout = smtpTimeout, smtpTimeout
	if err := c.Hello("mail." + domainOf(m.From.Address)); err != nil {
		return err
	}
	if err := c.Mail(m.From.Address, nil); err != nil {
		return err
	}
	for _, to := range m.To {
		if err := c.Rcpt(to, nil); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(m.Bytes()); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

func (d *demo) dial(ctx context.Context) (net.Conn, error) {
	if d.source != nil {
		dl := net.Dialer{Timeout: smtpTimeout, LocalAddr: d.source}
		conn, err := dl.DialContext(ctx, "tcp", d.SMTPAddr)
		if err == nil {
			return conn, nil
		}
		if ctx.Err() != nil {
			return nil, err
		}
		d.log.Info("demo mail comes from the default address: the gateway relays it as outgoing",
			"source", d.source.IP.String(), "err", err)
		d.source = nil
	}
	dl := net.Dialer{Timeout: smtpTimeout}
	return dl.DialContext(ctx, "tcp", d.SMTPAddr)
}

// expected says what the gateway does with each kind of message.
func (d *demo) expected(kind string) string {
	switch kind {
	case KindSeed:
		return "delivered: the seed's verification message"
	case KindNewsletter:
		return "delivered"
	case KindInvoice:
		return "delivered"
	case KindSpam:
		return fmt.Sprintf("delivered, subject tagged %s by content filter %s", SpamTag, FilterSpam)
	case KindPhishing:
		return fmt.Sprintf("quarantined (%s) by blocklist %s: a link to %s", Quarantine, ListURLs, MaliciousDomain)
	case KindHash:
		return fmt.Sprintf("quarantined (%s) by blocklist %s: its attachment's SHA-256", Quarantine, ListHashes)
	case KindExecutable:
		return fmt.Sprintf("quarantined (%s) by content filter %s", Quarantine, FilterExe)
	case KindEICAR:
		if d.Gateway.Config().Running().AntiVirus.Clamd == "" {
			return "delivered: anti-virus is off; start with --clamd to have it dropped"
		}
		return "dropped by anti-virus (the EICAR test file)"
	case KindBounce:
		return "bounced: " + OrgDomain + "'s server answers 550 for " + BouncingRecipient
	}
	return ""
}

// summary tells what the demo did and what to try.
func (d *demo) summary(deviceID, module, sinkAddr string, sent []*Message, st state) {
	console := strings.TrimSuffix(d.ConsoleURL, "/")
	fmt.Fprintf(d.out, "\nDemo: the journey is done.\n")
	tw := tabwriter.NewWriter(d.out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  gateway\tThreat Response enabled (server %s); registered as device %s\n", d.Region, deviceID)
	fmt.Fprintf(tw, "  exchange\tThreat Response enabled for the organisation\n")
	fmt.Fprintf(tw, "  console\tmodule %q for device %s\n", module, deviceID)
	from := fmt.Sprintf("mail from %s is incoming (sender group %s)", SourceIP, SenderGroup)
	if d.source == nil {
		from = "mail from loopback is relayed (outgoing): " + SourceIP + " is not usable here"
	}
	fmt.Fprintf(tw, "  mail flow\t%s; %s is routed to the demo's server at %s\n", from, OrgDomain, sinkAddr)
	fmt.Fprintf(tw, "  screening\tblocklists %s (.%s) and %s (sha256 %s); content filters %s and %s\n",
		ListURLs, MaliciousDomain, ListHashes, MaliciousSHA256(), FilterExe, FilterSpam)
	tw.Flush()
	if len(sent) > 0 {
		fmt.Fprintf(d.out, "Demo: sent %d messages to the gateway over SMTP:\n", len(sent))
		tw = tabwriter.NewWriter(d.out, 0, 0, 2, ' ', 0)
		for _, m := range sent {
			fmt.Fprintf(tw, "  %s\t%s\t%q\t%s\n", m.Kind, m.From.Address, m.Subject, d.expected(m.Kind))
		}
		tw.Flush()
	} else {
		fmt.Fprintf(d.out, "Demo: the first messages were sent on %s.\n", st.BurstSentAt.Local().Format(time.RFC1123))
	}
	if d.Messages > 0 {
		fmt.Fprintf(d.out, "Demo: now one message every %s–%s (%d at most), until serve stops.\n", d.MinPause, d.MaxPause, d.Messages)
	}
	fmt.Fprintf(d.out, "Try: open the console at %s/ and sign in as %s; Investigate:\n", console, d.User)
	for _, q := range []string{
		`email_subject:"` + SeedSubject + `"`,
		`email_messageid:"` + strings.Trim(SeedMessageID, "<>") + `"`,
		`email:"` + seedSender + `"`,
		`file_name:"invoice.pdf"`,
		`email_subject:"` + InvoiceSubject + `"`,
		`domain:"` + domainOf(phishers[0].Address) + `"`,
		`email:"` + BouncingRecipient + `"`,
		`sha256:"` + MaliciousSHA256() + `"`,
	} {
		fmt.Fprintf(d.out, "  %s\n", q)
	}
	fmt.Fprintf(d.out, "or from a shell, with SIGHTLINE_ADMIN_PASSWORD set:\n")
	fmt.Fprintf(d.out, "              sightline investigate '%s' --console %s\n", `email_subject:"`+SeedSubject+`"`, console)
	fmt.Fprintf(d.out, "              sightline track --subject-is %q --gateway %s\n", PhishingSubject, strings.TrimSuffix(d.GatewayURL, "/"))
	fmt.Fprintf(d.out, "Demo ready.\n\n")
}
