package demo

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"strings"
	"time"
)

// Kinds of demo message: what the gateway should do with each is told in
// the summary Run prints.
const (
	KindSeed       = "seed"       // the seed's test message: "test test" from noreply@cisco.com
	KindNewsletter = "newsletter" // clean: delivered
	KindInvoice    = "invoice"    // clean, subject "Invoice Due": delivered
	KindSpam       = "spam"       // delivered with its subject tagged by a content filter
	KindPhishing   = "phishing"   // a link to a blocklisted domain: quarantined by the URL list
	KindHash       = "hash"       // an attachment whose SHA-256 is blocklisted: quarantined
	KindExecutable = "executable" // an .exe attachment: quarantined by a content filter
	KindEICAR      = "eicar"      // the EICAR test file: dropped by anti-virus when clamd is configured
	KindBounce     = "bounce"     // to a recipient the organisation's server refuses with 550
)

const (
	maxLineLength  = 76            // of base64 lines
	boundaryPrefix = "=_sightline" // cannot occur in quoted-printable or base64 text
)

// Message is one demo message: its envelope and its content.
type Message struct {
	Kind        string
	From        mail.Address // envelope sender and header From
	To          []string     // envelope recipients and header To
	Subject     string
	MessageID   string // with angle brackets
	Date        time.Time
	Text        string
	HTML        string // optional alternative to Text
	Attachments []Attachment
}

// Attachment is a file attached to a Message.
type Attachment struct {
	Name, Type string
	Data       []byte
}

// Bytes returns the message in RFC 5322 form with CRLF line ends: a single
// quoted-printable text part, or multipart/mixed (with a
// multipart/alternative body when there is HTML) and base64 attachments.
func (m *Message) Bytes() []byte {
	var b bytes.Buffer
	h := func(name, value string) { fmt.Fprintf(&b, "%s: %s\r\n", name, value) }
	h("From", m.From.String())
	h("To", strings.Join(m.To, ", "))
	h("Subject", mime.QEncoding.Encode("utf-8", m.Subject))
	h("Date", m.Date.Format(time.RFC1123Z))
	h("Message-ID", m.MessageID)
	h("MIME-Version", "1.0")
	if m.HTML == "" && len(m.Attachments) == 0 {
		h("Content-Type", `text/plain; charset="utf-8"`)
		h("Content-Transfer-Encoding", "quoted-printable")
		b.WriteString("\r\n")
		writeQP(&b, m.Text)
		return b.Bytes()
	}

	mw := multipart.NewWriter(&b)
	mw.SetBoundary(boundaryPrefix + "_mixed_" + boundaryKey(m))
	h("Content-Type", mime.FormatMediaType("multipart/mixed", map[string]string{"boundary": mw.Boundary()}))
	b.WriteString("\r\nThis is a multi-part message in MIME format.\r\n")
	if m.HTML == "" {
		writeTextPart(mw, "text/plain", m.Text)
	} else {
		var alt bytes.Buffer
		aw := multipart.NewWriter(&alt)
		aw.SetBoundary(boundaryPrefix + "_alt_" + boundaryKey(m))
		writeTextPart(aw, "text/plain", m.Text)
		writeTextPart(aw, "text/html", m.HTML)
		aw.Close()
		w, _ := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {
			mime.FormatMediaType("multipart/alternative", map[string]string{"boundary": aw.Boundary()})}})
		w.Write(alt.Bytes())
	}
	for _, a := range m.Attachments {
		w, _ := mw.CreatePart(textproto.MIMEHeader{
			"Content-Type":              {mime.FormatMediaType(a.Type, map[string]string{"name": a.Name})},
			"Content-Disposition":       {mime.FormatMediaType("attachment", map[string]string{"filename": a.Name})},
			"Content-Transfer-Encoding": {"base64"},
		})
		enc := base64.StdEncoding.EncodeToString(a.Data)
		for len(enc) > maxLineLength {
			fmt.Fprintf(w, "%s\r\n", enc[:maxLineLength])
			enc = enc[maxLineLength:]
		}
		fmt.Fprintf(w, "%s\r\n", enc)
	}
	mw.Close()
	return b.Bytes()
}

// boundaryKey makes a message's boundaries its own, from its Message-ID.
func boundaryKey(m *Message) string {
	sum := sha256.Sum256([]byte(m.MessageID))
	return hex.EncodeToString(sum[:8])
}

func writeTextPart(mw *multipart.Writer, typ, text string) {
	w, _ := mw.CreatePart(textproto.MIMEHeader{
		"Content-Type":              {typ + `; charset="utf-8"`},
		"Content-Transfer-Encoding": {"quoted-printable"},
	})
	var b bytes.Buffer
	writeQP(&b, text)
	w.Write(b.Bytes())
}

// writeQP writes text quoted-printable with CRLF line ends.
func writeQP(b *bytes.Buffer, text string) {
	qp := quotedprintable.NewWriter(b)
	qp.Write([]byte(strings.ReplaceAll(strings.ReplaceAll(text, "\r\n", "\n"), "\n", "\r\n")))
	qp.Close()
	b.WriteString("\r\n")
}

// The demo's cast. Every domain is under a reserved TLD (.example, .test),
// except the seed's cisco.com sender address used by the seed's own queries.
const (
	// OrgDomain is the demo organisation's mail domain, routed to the
	// demo's own mail server.
	OrgDomain = "northwind.example"
	// BouncingRecipient is refused by the organisation's server with 550.
	BouncingRecipient = "r.mueller@" + OrgDomain
	// MaliciousDomain hosts the phishing campaign's credential page; the
	// demo blocklists it with its subdomains.
	MaliciousDomain = "mailbox-verify.test"
	// PhishingSubject is the phishing campaign's subject.
	PhishingSubject = "Action required: your mailbox will be suspended"
	// InvoiceSubject is the subject of the invoices.
	InvoiceSubject = "Invoice Due"
	// SeedSubject and SeedMessageID are the seed's verification message.
	SeedSubject   = "test test"
	SeedMessageID = "<123-abc-456@cisco.com>"
	seedSender    = "noreply@cisco.com"
)

var (
	staff = []mail.Address{
		{Name: "Maria Garcia", Address: "maria.garcia@" + OrgDomain},
		{Name: "Li Wei", Address: "li.wei@" + OrgDomain},
		{Name: "James Okafor", Address: "james.okafor@" + OrgDomain},
		{Name: "Priya Nair", Address: "priya.nair@" + OrgDomain},
		{Name: "Tom Becker", Address: "tom.becker@" + OrgDomain},
		{Name: "Ana Silva", Address: "ana.silva@" + OrgDomain},
		{Name: "Accounts Payable", Address: "ap@" + OrgDomain},
	}
	newsletters = []struct {
		from     mail.Address
		subjects []string
	}{
		{mail.Address{Name: "Contoso Weekly", Address: "news@contoso-weekly.example"},
			[]string{"This week: supply chains, AI pilots and a new office in Lyon", "Contoso Weekly: five reads for your Friday"}},
		{mail.Address{Name: "Fabrikam Engineering Digest", Address: "digest@fabrikam.test"},
			[]string{"Digest: what we learned migrating 400 services", "Digest: the on-call handbook, revised"}},
		{mail.Address{Name: "Adventure Works Events", Address: "events@adventure-works.example"},
			[]string{"Save the date: partner summit, 14–16 October", "Your ticket for the spring roadshow"}},
	}
	vendors = []mail.Address{
		{Name: "Tailspin Supply Billing", Address: "billing@tailspin-supply.example"},
		{Name: "Wingtip Toys Accounts", Address: "accounts@wingtip-toys.test"},
		{Name: "Litware Receivables", Address: "ar@litware.example"},
	}
	spammers = []struct {
		from    mail.Address
		subject string
	}{
		{mail.Address{Name: "Rewards Center", Address: "rewards@prize-center.test"}, "Congratulations! You have been selected for a $1,000 reward"},
		{mail.Address{Name: "Mega Savings", Address: "promo@mega-savings.test"}, "Last chance: 90% off designer watches, act now"},
		{mail.Address{Name: "Crypto Alerts", Address: "alerts@coin-yield.test"}, "Your wallet earned 4.2 bitcoin this week: claim it today"},
	}
	// phishers send the same campaign from several addresses.
	phishers = []mail.Address{
		{Name: "IT Service Desk", Address: "helpdesk@account-services.test"},
		{Name: "Mailbox Administrator", Address: "admin@mailbox-notice.test"},
		{Name: "Security Team", Address: "security@secure-notify.test"},
		{Name: "Northwind IT", Address: "it-support@northwind-helpdesk.test"},
	}
)

// SpamPattern is the content filter's regular expression for the demo's
// spam subjects.
const SpamPattern = `(?i)(reward|% off|act now|bitcoin)`

// maliciousDocument is the "malicious" attachment the demo blocklists by
// its SHA-256: harmless bytes, named like a macro-laden document.
var maliciousDocument = []byte("PK\x03\x04 Sightline demo: a stand-in for a macro-enabled document. Harmless.\n")

// MaliciousSHA256 is the SHA-256 of the demo's "malicious" attachment.
func MaliciousSHA256() string {
	sum := sha256.Sum256(maliciousDocument)
	return hex.EncodeToString(sum[:])
}

// eicarFile returns the EICAR anti-virus test file, assembled at run time so
// that no scanner flags this source file.
func eicarFile() []byte {
	return []byte(`X5O!P%@AP[4\PZX54(P^)7CC)7}$` + "EICAR-STANDARD-ANTIVIRUS-" + `TEST-FILE!$H+H*`)
}

// invoicePDF is a minimal PDF standing for an invoice.
const invoicePDF = "%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n" +
	"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"

// generator makes demo messages; it is not safe for concurrent use.
type generator struct {
	rnd *rand.Rand
	now func() time.Time
	n   int // messages made, for unique Message-IDs
}

func newGenerator(seed uint64, now func() time.Time) *generator {
	return &generator{rnd: rand.New(rand.NewPCG(seed, seed^0x5eed)), now: now}
}

func pick[T any](g *generator, xs []T) T { return xs[g.rnd.IntN(len(xs))] }

// message fills the common fields.
func (g *generator) message(kind string, from mail.Address, to []string, subject, text string) *Message {
	g.n++
	now := g.now()
	_, domain, _ := strings.Cut(from.Address, "@")
	return &Message{Kind: kind, From: from, To: to, Subject: subject, Date: now, Text: text,
		MessageID: fmt.Sprintf("<%d.%d.%08x@%s>", now.UnixNano(), g.n, g.rnd.Uint32(), domain)}
}

func (g *generator) employee() mail.Address { return pick(g, staff[:len(staff)-1]) }

func (g *generator) newsletter() *Message {
	nl := pick(g, newsletters)
	to := g.employee()
	m := g.message(KindNewsletter, nl.from, []string{to.Address}, pick(g, nl.subjects),
		fmt.Sprintf("Hello %s,\n\nHere is what happened this week. Read the full issue at https://www.%s/latest\n\n"+
			"You receive this because you subscribed with %s. Unsubscribe: https://www.%s/unsubscribe\n",
			firstName(to), domainOf(nl.from.Address), to.Address, domainOf(nl.from.Address)))
	m.HTML = fmt.Sprintf(`<html><body><h1>%s</h1><p>Read the full issue <a href="https://www.%s/latest">online</a>.</p></body></html>`,
		m.Subject, domainOf(nl.from.Address))
	return m
}

func (g *generator) invoice() *Message {
	v := pick(g, vendors)
	number := fmt.Sprintf("INV-%d-%04d", g.now().Year(), 1000+g.rnd.IntN(9000))
	amount := fmt.Sprintf("%d.%02d", 200+g.rnd.IntN(9800), g.rnd.IntN(100))
	m := g.message(KindInvoice, v, []string{staff[len(staff)-1].Address}, InvoiceSubject,
		fmt.Sprintf("Dear customer,\n\ninvoice %s for USD %s is due in 14 days. The PDF is attached.\n"+
			"Pay online at https://pay.%s/%s\n\n%s\n", number, amount, domainOf(v.Address), number, v.Name))
	m.Attachments = []Attachment{{Name: number + ".pdf", Type: "application/pdf", Data: []byte(invoicePDF)}}
	return m
}

func (g *generator) spam() *Message {
	s := pick(g, spammers)
	return g.message(KindSpam, s.from, []string{g.employee().Address}, s.subject,
		fmt.Sprintf("You are one of our lucky winners! Claim now at https://claim.%s/?id=%d before it expires.\n",
			domainOf(s.from.Address), g.rnd.IntN(1e6)))
}

// phishing is the campaign's message from its i-th sender.
func (g *generator) phishing(i int) *Message {
	to := g.employee()
	link := fmt.Sprintf("https://login.%s/owa/session?user=%s", MaliciousDomain, to.Address)
	m := g.message(KindPhishing, phishers[i%len(phishers)], []string{to.Address}, PhishingSubject,
		fmt.Sprintf("Dear %s,\n\nyour mailbox has exceeded its storage quota and will be suspended within 24 hours.\n"+
			"Verify your account to keep your messages: %s\n\nIT Service Desk\n", firstName(to), link))
	m.HTML = fmt.Sprintf(`<html><body><p>Your mailbox will be suspended within 24 hours.</p>`+
		`<p><a href="%s">Verify your account</a></p></body></html>`, link)
	return m
}

func (g *generator) hashCaught() *Message {
	po := 40000 + g.rnd.IntN(10000)
	m := g.message(KindHash, mail.Address{Name: "Globex Logistics Payments", Address: "payments@globex-logistics.example"},
		[]string{staff[len(staff)-1].Address}, fmt.Sprintf("Remittance advice for PO %d", po),
		"Hello,\n\nplease find the remittance advice attached. Enable editing to view it.\n")
	m.Attachments = []Attachment{{Name: fmt.Sprintf("Remittance_Advice_%d.docm", po),
		Type: "application/vnd.ms-word.document.macroenabled.12", Data: maliciousDocument}}
	return m
}

func (g *generator) executable() *Message {
	m := g.message(KindExecutable, mail.Address{Name: "Parcel Service", Address: "courier@parcel-track.test"},
		[]string{g.employee().Address}, "Your parcel could not be delivered",
		"We tried to deliver your parcel today. Run the attached label tool to book a new delivery.\n")
	m.Attachments = []Attachment{{Name: "Delivery_Label.exe", Type: "application/x-msdownload",
		Data: []byte("MZ\x90\x00 Sightline demo: not a real program.\n")}}
	return m
}

func (g *generator) eicar() *Message {
	m := g.message(KindEICAR, mail.Address{Name: "MFP-3F Scanner", Address: "scanner@office-devices.test"},
		[]string{g.employee().Address}, "Scanned document from MFP-3F",
		"A document was scanned and sent to you.\n")
	m.Attachments = []Attachment{{Name: "scan_2291.com", Type: "application/octet-stream", Data: eicarFile()}}
	return m
}

func (g *generator) bounce() *Message {
	return g.message(KindBounce, pick(g, vendors), []string{BouncingRecipient}, "Quarterly statement",
		"Dear Mr Müller,\n\nyour quarterly statement is ready in the customer portal.\n")
}

// seed is the seed's verification message, the same every time.
func (g *generator) seed() *Message {
	m := g.message(KindSeed, mail.Address{Address: seedSender}, []string{staff[0].Address}, SeedSubject, "hello\n")
	m.MessageID = SeedMessageID
	m.Attachments = []Attachment{{Name: "invoice.pdf", Type: "application/pdf", Data: []byte(invoicePDF)}}
	return m
}

// burst is what the demo sends at once, so that every sample query finds
// something: the seed's message, one message of each kind and the whole
// phishing campaign.
func (g *generator) burst() []*Message {
	ms := []*Message{g.seed(), g.newsletter(), g.invoice(), g.spam()}
	for i := range phishers {
		ms = append(ms, g.phishing(i))
	}
	return append(ms, g.hashCaught(), g.executable(), g.eicar(), g.bounce())
}

// next is one message of the steady trickle: mostly clean mail, some spam,
// and now and then a threat.
func (g *generator) next() *Message {
	switch n := g.rnd.IntN(100); {
	case n < 35:
		return g.newsletter()
	case n < 55:
		return g.invoice()
	case n < 75:
		return g.spam()
	case n < 85:
		return g.phishing(g.rnd.IntN(len(phishers)))
	case n < 89:
		return g.hashCaught()
	case n < 93:
		return g.executable()
	case n < 96:
		return g.eicar()
	default:
		return g.bounce()
	}
}

func firstName(a mail.Address) string {
	if name, _, ok := strings.Cut(a.Name, " "); ok {
		return name
	}
	return a.Name
}

func domainOf(addr string) string {
	_, d, _ := strings.Cut(addr, "@")
	return d
}
