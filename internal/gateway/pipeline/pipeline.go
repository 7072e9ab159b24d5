// Package pipeline screens an accepted message in the AsyncOS work-queue
// order (gateway-api.md §8): reputation lists and DMARC policy (as built-in
// message filters), anti-virus, content filters; it returns the verdict with
// the tracking record, and tells each step to the event stream.
package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sightline/sightline/internal/gateway/mailauth"
	"github.com/sightline/sightline/internal/gateway/mailflow"
	"github.com/sightline/sightline/internal/gateway/pipeline/contentfilter"
	"github.com/sightline/sightline/internal/mailparse"
	"github.com/sightline/sightline/internal/tracking"
)

// Authenticator checks SPF, DKIM and DMARC of a message.
type Authenticator interface {
	Check(ctx context.Context, clientIP net.IP, helo, mailFrom string, message []byte) mailauth.Result
}

// Scanner scans content for viruses. It returns the virus name, "" when the
// content is clean, or an error when it could not tell.
type Scanner interface {
	Scan(ctx context.Context, r io.Reader) (virus string, err error)
}

// Pipeline screens messages. Its exported fields must be set before the first
// Screen; it is safe for concurrent use, and SetRules may be called at any
// time.
type Pipeline struct {
	Auth   Authenticator    // SPF/DKIM/DMARC; nil skips authentication
	AV     Scanner          // anti-virus; nil: not run (verdict chart digit 0)
	Events tracking.Emitter // nil discards events
	Logger *slog.Logger     // nil discards logs
	Limits mailparse.Limits // MIME parsing bounds; zero fields take mailparse defaults

	rules atomic.Pointer[compiled]
}

// SetRules validates r and makes it the rules of every later Screen; on error
// the current rules stay. r must not be changed afterwards. Until the first
// SetRules, DefaultRules apply.
func (p *Pipeline) SetRules(r *Rules) error {
	c, err := compile(r)
	if err != nil {
		return err
	}
	p.rules.Store(c)
	return nil
}

// Rules returns the rules in force.
func (p *Pipeline) Rules() *Rules { return p.current().rules }

func (p *Pipeline) current() *compiled {
	if c := p.rules.Load(); c != nil {
		return c
	}
	c, err := compile(DefaultRules())
	if err != nil {
		panic("pipeline: invalid DefaultRules: " + err.Error())
	}
	p.rules.CompareAndSwap(nil, c)
	return p.rules.Load()
}

// Header added to a message delivered although anti-virus could not scan it.
const (
	AVHeader      = "X-Sightline-AV"
	AVUnscannable = "unscannable"
)

// Engines, as they appear in status strings and events.
const (
	engineMF = iota // lists and DMARC: the built-in message filters
	engineAV
	engineCF
)

// quarantine is one engine's request to quarantine the message.
type quarantine struct {
	engine int
	name   string
	reason string
}

// screening is the state of one Screen call.
type screening struct {
	p     *Pipeline
	rules *compiled
	log   *slog.Logger
	env   *mailflow.Envelope
	data  []byte
	msg   *mailparse.Message
	rec   *tracking.Message
	table string // "inbound" or "outbound"
	ip    netip.Addr

	chart       [8]byte // AS AV AMP GM CF OF DLP MF
	quarantines []quarantine
	addHeaders  []contentfilter.Field
	tags        []string
}

// Chart positions.
const (
	chartAV = 1
	chartCF = 4
	chartMF = 7
)

// Screen runs the pipeline on one message: env as accepted, data the message
// as received. It emits the events of each step (gateway-api.md §6, §9) and
// returns the verdict, whose Record is complete. A drop or bounce ends
// screening at once; quarantine requests add up (the status then reads
// "Quarantined by Multiple Engines"). The error is non-nil only when ctx
// ended during a step; the message then has no verdict and must be screened
// again.
func (p *Pipeline) Screen(ctx context.Context, env *mailflow.Envelope, data []byte) (*mailflow.Verdict, error) {
	s := &screening{p: p, rules: p.current(), env: env, data: data, table: "inbound"}
	s.log = p.Logger
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("component", "pipeline", "mid", env.MID)
	if env.Direction == mailflow.Outgoing {
		s.table = "outbound"
	}
	s.ip, _ = netip.ParseAddr(env.ClientIP)
	s.ip = s.ip.Unmap()
	for i := range s.chart {
		s.chart[i] = '0'
	}

	msg, err := mailparse.Parse(data, p.Limits)
	s.msg = msg
	s.rec = s.newRecord()
	if err != nil {
		s.emit(tracking.Warning, "", fmt.Sprintf("MID %d MIME parsing stopped: %s", env.MID, sanitize(err.Error())))
	}
	if len(msg.Problems) > 0 {
		s.log.Debug("malformed MIME", "problems", msg.Problems)
	}
	s.received()

	var auth *mailauth.Result
	if p.Auth != nil {
		res := p.Auth.Check(ctx, net.ParseIP(env.ClientIP), env.HELO, env.MailFrom, data)
		auth = &res
		s.authenticated(res)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("screen MID %d: %w", env.MID, err)
	}
	s.emit(tracking.Info,
		fmt.Sprintf("Message %d matched per-recipient policy DEFAULT for %s mail policies.", env.MID, s.table),
		fmt.Sprintf("MID %d matched all recipients for per-recipient policy DEFAULT in the %s table", env.MID, s.table))

	if v := s.messageFilters(auth); v != nil {
		return v, nil
	}
	v, err := s.antiVirus(ctx)
	if err != nil || v != nil {
		return v, err
	}
	if v := s.contentFilters(auth); v != nil {
		return v, nil
	}
	return s.finish(), nil
}

func (s *screening) emit(level tracking.Level, summary, log string) {
	s.emitStatus(level, summary, log, "")
}

func (s *screening) emitStatus(level tracking.Level, summary, log, status string) {
	if s.p.Events == nil {
		return
	}
	s.p.Events.Emit(tracking.Event{Time: time.Now(), Level: level, ICID: s.env.ICID, MID: s.env.MID,
		Summary: summary, Log: log, Status: status})
}

// newRecord fills the tracking record from the envelope and the parse.
func (s *screening) newRecord() *tracking.Message {
	env, m := s.env, s.msg
	r := &tracking.Message{
		MID: env.MID, ICID: env.ICID, Direction: env.Direction, InjectedAt: env.ReceivedAt,
		SenderIP: env.ClientIP, ReverseDNS: env.ReverseDNS, HELO: env.HELO, SBRS: "None",
		SenderGroup: env.SenderGroup, MailPolicy: []string{"DEFAULT"}, SMTPAuthID: env.AuthID,
		TLS: env.TLS, ListenerName: env.Listener,
		Sender: env.MailFrom, SenderDomain: domainOf(env.MailFrom),
		HeaderFrom: m.From, FriendlyFrom: m.FriendlyFrom, HeaderTo: m.To, HeaderCc: m.Cc, HasInline: m.HasInline,
		Subject: m.Subject, FinalSubject: m.Subject, MessageID: m.MessageID,
		Size: env.Size, BodySnippet: m.Snippet, URLs: m.URLs,
	}
	if r.Direction == "" {
		r.Direction = mailflow.Incoming
	}
	if r.SenderDomain == "" {
		r.SenderDomain = domainOf(m.From)
	}
	if r.Size == 0 {
		r.Size = int64(len(s.data))
	}
	if len(m.ReplyTo) > 0 {
		r.ReplyTo = m.ReplyTo[0]
	}
	for i, rcpt := range env.Recipients {
		r.Recipients = append(r.Recipients, tracking.Recipient{RID: i, Address: rcpt})
	}
	for _, a := range m.Attachments {
		r.Attachments = append(r.Attachments, tracking.Attachment{Name: a.Name, Type: a.Type, Size: a.Size,
			SHA256: a.SHA256, SHA1: a.SHA1, MD5: a.MD5})
	}
	return r
}

// received emits the events about the message as it came in.
func (s *screening) received() {
	mid, r := s.env.MID, s.rec
	if r.MessageID != "" {
		id := sanitize(r.MessageID)
		s.emit(tracking.Info, fmt.Sprintf("Message %d contains message ID header '%s'.", mid, id),
			fmt.Sprintf("MID %d Message-ID '%s'", mid, id))
	}
	subj := sanitize(r.Subject)
	s.emit(tracking.Info, fmt.Sprintf("Message %d original subject on injection: %s", mid, subj),
		fmt.Sprintf("MID %d Subject '%s'", mid, subj))
	from := sanitize(s.env.MailFrom)
	s.emit(tracking.Info, fmt.Sprintf("Message %d (%d bytes) from %s ready.", mid, r.Size, orNull(from)),
		fmt.Sprintf("MID %d ready %d bytes from <%s>", mid, r.Size, from))
	if r.SenderDomain != "" {
		s.emit(tracking.Info, fmt.Sprintf("Message %d Sender Domain: %s", mid, sanitize(r.SenderDomain)), "")
	}
}

func orNull(addr string) string {
	if addr == "" {
		return "<>"
	}
	return addr
}

// sanitize makes s safe for one event line: control characters become
// spaces and the length is bounded.
func sanitize(s string) string {
	const max = 998
	if len(s) > max {
		s = strings.ToValidUTF8(s[:max], "")
	}
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// resultWord is an SPF or DKIM result as AsyncOS prints it.
var resultWord = map[string]string{
	mailauth.Pass: "Pass", mailauth.Fail: "Fail", mailauth.SoftFail: "SoftFail", mailauth.Neutral: "Neutral",
	mailauth.None: "None", mailauth.TempError: "TempError", mailauth.PermError: "PermError",
}

// authenticated records and emits the SPF, DKIM and DMARC results.
func (s *screening) authenticated(res mailauth.Result) {
	mid, r := s.env.MID, s.rec

	r.SPF = res.SPF.Result
	identity := s.env.MailFrom
	if res.SPF.Identity == "helo" || identity == "" {
		identity = "postmaster@" + s.env.HELO
	}
	idKind := res.SPF.Identity
	if idKind == "" {
		idKind = "mailfrom"
	}
	spf := fmt.Sprintf("SPF: %s identity %s %s", idKind, sanitize(identity), resultWord[res.SPF.Result])
	spfLog := spf
	switch res.SPF.Result {
	case mailauth.Pass, mailauth.Fail, mailauth.SoftFail, mailauth.Neutral:
		spfLog += " (v=spf1)"
	}
	s.emit(tracking.Info, fmt.Sprintf("Message %d %s", mid, spf), fmt.Sprintf("MID %d %s", mid, spfLog))

	r.DKIM = dkimSummary(res.DKIM)
	if len(res.DKIM) == 0 {
		res.DKIM = []mailauth.DKIM{{Result: mailauth.None}}
	}
	for _, d := range res.DKIM {
		line := "DKIM: " + dkimText(d)
		s.emit(tracking.Info, fmt.Sprintf("Message %d %s", mid, line), fmt.Sprintf("MID %d %s", mid, line))
	}

	r.DMARC = res.DMARC.Result
	var summary, log string
	switch res.DMARC.Result {
	case mailauth.Pass:
		summary, log = "DMARC verification passed.", "DMARC: Verification passed"
	case mailauth.Fail:
		p := res.DMARC.Policy
		if p == "" {
			p = "none"
		}
		summary = fmt.Sprintf("DMARC verification failed (p=%s).", p)
		log = fmt.Sprintf("DMARC: Verification failed (p=%s)", p)
	case mailauth.None, "":
		summary = "DMARC verification skipped (No record found for the sending domain)."
		log = "DMARC: Verification skipped (No record found for the sending domain)"
	default:
		why := sanitize(res.DMARC.Reason)
		if why == "" {
			why = res.DMARC.Result
		}
		summary = fmt.Sprintf("DMARC verification skipped (%s: %s).", res.DMARC.Result, why)
		log = fmt.Sprintf("DMARC: Verification skipped (%s: %s)", res.DMARC.Result, why)
	}
	s.emit(tracking.Info, fmt.Sprintf("Message %d: %s", mid, summary), fmt.Sprintf("MID %d %s", mid, log))
}

// dkimSummary is the one DKIM result of a message: pass when a signature
// passes, else the first signature's result, "none" without signatures.
func dkimSummary(ds []mailauth.DKIM) string {
	for _, d := range ds {
		if d.Result == mailauth.Pass {
			return mailauth.Pass
		}
	}
	if len(ds) == 0 {
		return mailauth.None
	}
	return ds[0].Result
}

// dkimText is the AsyncOS wording of one DKIM result, after "DKIM: ".
func dkimText(d mailauth.DKIM) string {
	tags := fmt.Sprintf("(d=%s s=%s", d.Domain, d.Selector)
	if d.Identifier != "" {
		tags += " i=" + d.Identifier
	}
	tags = sanitize(tags + ")")
	reason := sanitize(d.Reason)
	switch d.Result {
	case mailauth.Pass:
		return "pass signature verified " + tags
	case mailauth.None, "":
		return "no signature"
	case mailauth.TempError:
		if reason == "" {
			reason = "temporary failure"
		}
		return "tempfail " + reason + " " + tags
	default:
		if reason == "" {
			reason = "signature verification failed"
		}
		return "permfail " + reason + " " + tags
	}
}

// messageFilters applies the reputation lists and the DMARC policy. It
// returns a verdict when the message is dropped or bounced.
func (s *screening) messageFilters(auth *mailauth.Result) *mailflow.Verdict {
	mid := s.env.MID
	// The chart digit must be final before a drop or bounce completes the
	// record.
	ran := func() {
		if s.chart[chartMF] == '0' {
			s.chart[chartMF] = '1'
		}
	}
	acted := func() { s.chart[chartMF] = '2' }

	envSender := strings.ToLower(s.env.MailFrom)
	var envSenders []string
	if envSender != "" {
		envSenders = []string{envSender}
	}
	allSenders := envSenders
	if from := strings.ToLower(s.msg.From); from != "" && from != envSender {
		allSenders = append(append([]string(nil), envSenders...), from)
	}
	urlDomains, hashes := s.msg.URLDomains, attachmentHashes(s.msg)

	// Safelists first: they decide what the blocklists may look at.
	senderSafe := false
	for i := range s.rules.lists {
		l := &s.rules.lists[i]
		if l.Mode != Safelist {
			continue
		}
		ran()
		switch l.Kind {
		case ListURLDomain:
			urlDomains = filter(urlDomains, func(d string) bool { return !l.matchDomain(d) })
			continue
		case ListSHA256:
			hashes = filter(hashes, func(h string) bool { return !l.exact[h] })
			continue
		}
		if what := l.match(s.ip, envSenders, nil, nil); what != "" && !senderSafe {
			senderSafe = true
			s.emit(tracking.Info, fmt.Sprintf("Message %d matched safelist '%s' (%s).", mid, l.Name, sanitize(what)),
				fmt.Sprintf("MID %d safelist '%s' matched %s", mid, l.Name, sanitize(what)))
		}
	}
	for i := range s.rules.lists {
		l := &s.rules.lists[i]
		if l.Mode != Blocklist {
			continue
		}
		ran()
		if senderSafe && senderKind(l.Kind) {
			continue
		}
		what := l.match(s.ip, allSenders, urlDomains, hashes)
		if what == "" {
			continue
		}
		acted()
		if l.Kind == ListURLDomain {
			s.rec.Flags = append(s.rec.Flags, "containedMaliciousUrls")
		}
		by := fmt.Sprintf("blocklist '%s'", l.Name)
		s.emit(tracking.Info, fmt.Sprintf("Message %d matched %s (%s).", mid, by, sanitize(what)),
			fmt.Sprintf("MID %d %s matched %s", mid, by, sanitize(what)))
		reason := fmt.Sprintf("%s matched %s", by, what)
		if v := s.dispose(engineMF, l.Action, ActQuarantine, by, reason); v != nil {
			return v
		}
		break // the first blocklist that matches decides
	}

	if auth == nil || auth.DMARC.Result != mailauth.Fail {
		return nil
	}
	d := s.rules.rules.DMARC
	enforce, ok := d.Policies[s.env.MailFlowPolicy]
	if !ok {
		enforce = d.Enforce
	}
	if !enforce {
		return nil
	}
	ran()
	by := "DMARC policy " + auth.DMARC.Policy
	reason := fmt.Sprintf("DMARC policy %s of %s", auth.DMARC.Policy, auth.DMARC.Domain)
	switch auth.DMARC.Policy {
	case "reject":
		acted()
		return s.dispose(engineMF, d.Reject, ActDrop, by, reason)
	case "quarantine":
		acted()
		return s.dispose(engineMF, Disposition{Type: ActQuarantine, Quarantine: d.Quarantine}, ActQuarantine, by, reason)
	}
	return nil
}

func attachmentHashes(m *mailparse.Message) []string {
	var hs []string
	for _, a := range m.Attachments {
		hs = append(hs, a.SHA256)
	}
	return hs
}

func filter(xs []string, keep func(string) bool) []string {
	var out []string
	for _, x := range xs {
		if keep(x) {
			out = append(out, x)
		}
	}
	return out
}

// engineStatus gives the tracking status of each engine's drop and
// quarantine.
var engineStatus = [...]struct{ drop, quarantine string }{
	engineMF: {tracking.StatusDroppedMF, tracking.StatusQuarantinedMF},
	engineAV: {tracking.StatusDroppedAV, tracking.StatusQuarantinedAV},
	engineCF: {tracking.StatusDroppedCF, tracking.StatusQuarantinedCF},
}

// dispose carries out d (def when d.Type is empty) decided by "by" (e.g.
// "content filter 'x' in the inbound table"). A drop or bounce ends
// screening with the returned verdict; a quarantine is noted and nil
// returned.
func (s *screening) dispose(engine int, d Disposition, def, by, reason string) *mailflow.Verdict {
	mid := s.env.MID
	typ := d.Type
	if typ == "" {
		typ = def
	}
	switch typ {
	case ActDrop:
		status := engineStatus[engine].drop
		s.emitStatus(tracking.Info, fmt.Sprintf("Message %d dropped by %s.", mid, by),
			fmt.Sprintf("MID %d Dropped by %s", mid, by), status)
		return s.final(mailflow.Drop, status, reason)
	case ActBounce:
		text := d.Text
		if text == "" {
			text = "Message rejected: " + reason
		}
		s.emitStatus(tracking.Info, fmt.Sprintf("Message %d bounced by %s.", mid, by),
			fmt.Sprintf("MID %d Bounced by %s", mid, by), tracking.StatusBounced)
		return s.final(mailflow.Bounce, tracking.StatusBounced, text)
	}
	name := d.Quarantine
	if name == "" {
		name = PolicyQuarantine
	}
	s.emit(tracking.Info, fmt.Sprintf("Message %d quarantined to \"%s\" by %s.", mid, name, by),
		fmt.Sprintf("MID %d quarantined to \"%s\" by %s", mid, name, by))
	s.quarantines = append(s.quarantines, quarantine{engine, name, reason})
	return nil
}

// antiVirus scans the message. It returns a verdict when the message is
// dropped, and an error only when ctx ended.
func (s *screening) antiVirus(ctx context.Context) (*mailflow.Verdict, error) {
	av := s.rules.rules.AntiVirus
	if !av.Enabled || s.p.AV == nil {
		return nil, nil
	}
	mid := s.env.MID
	qname := av.Quarantine
	if qname == "" {
		qname = VirusQuarantine
	}
	virus, err := s.p.AV.Scan(ctx, bytes.NewReader(s.data))
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("screen MID %d: anti-virus: %w", mid, ctx.Err())
		}
		s.log.Warn("anti-virus scan failed", "err", err)
		s.emit(tracking.Warning, fmt.Sprintf("Message %d scanned by Anti-Virus engine. Final verdict: Unscannable", mid),
			fmt.Sprintf("MID %d antivirus unscannable", mid))
		if av.OnError == ActQuarantine {
			s.chart[chartAV] = '2'
			return s.dispose(engineAV, Disposition{Type: ActQuarantine, Quarantine: qname}, ActQuarantine,
				"Anti-Virus", "anti-virus could not scan the message"), nil
		}
		s.addHeaders = append(s.addHeaders, contentfilter.Field{Name: AVHeader, Value: AVUnscannable})
		return nil, nil
	}
	if virus == "" {
		s.chart[chartAV] = '1'
		s.emit(tracking.Info, fmt.Sprintf("Message %d scanned by Anti-Virus engine. Final verdict: Negative ", mid),
			fmt.Sprintf("MID %d antivirus negative", mid))
		return nil, nil
	}
	virus = sanitize(virus)
	s.chart[chartAV] = '2'
	s.rec.ThreatName = virus
	s.rec.Flags = append(s.rec.Flags, "virusPositive")
	s.emit(tracking.Info, fmt.Sprintf("Message %d scanned by Anti-Virus engine. Final verdict: Positive '%s'", mid, virus),
		fmt.Sprintf("MID %d antivirus positive '%s'", mid, virus))
	d := Disposition{Type: ActDrop}
	if av.OnVirus == ActQuarantine {
		d = Disposition{Type: ActQuarantine, Quarantine: qname}
	}
	return s.dispose(engineAV, d, ActDrop, "Anti-Virus", fmt.Sprintf("virus '%s' found", virus)), nil
}

// contentFilters runs the content filters of the message's direction.
func (s *screening) contentFilters(auth *mailauth.Result) *mailflow.Verdict {
	in := &contentfilter.Message{
		Inbound: s.env.Direction != mailflow.Outgoing, Parsed: s.msg,
		Sender: s.env.MailFrom, Recipients: s.env.Recipients, ClientIP: s.ip,
		SenderGroup: s.env.SenderGroup, Size: s.rec.Size,
	}
	if auth != nil {
		in.SPF, in.DKIM, in.DMARC = s.rec.SPF, s.rec.DKIM, s.rec.DMARC
	}
	o := s.rules.filters.Run(in)
	if !o.Ran {
		return nil
	}
	s.chart[chartCF] = '1'
	if len(o.Matched) == 0 {
		return nil
	}
	s.chart[chartCF] = '2'
	s.rec.ContentFilters = o.Matched
	mid := s.env.MID
	for _, name := range o.Matched {
		if name == o.FinalFilter && o.Final != contentfilter.Deliver {
			continue // told by its drop or bounce line
		}
		s.emit(tracking.Info, fmt.Sprintf("Message %d matched content filter '%s' in the %s table.", mid, name, s.table),
			fmt.Sprintf("MID %d matched content filter '%s' in the %s table", mid, name, s.table))
	}
	s.addHeaders = append(s.addHeaders, o.AddHeaders...)
	s.tags = append(s.tags, o.SubjectTags...)
	if o.Quarantine != "" {
		s.dispose(engineCF, Disposition{Type: ActQuarantine, Quarantine: o.Quarantine}, ActQuarantine,
			s.cfBy(o.QuarantineFilter), fmt.Sprintf("content filter '%s' matched", o.QuarantineFilter))
	}
	switch o.Final {
	case contentfilter.Drop:
		return s.dispose(engineCF, Disposition{Type: ActDrop}, ActDrop, s.cfBy(o.FinalFilter),
			fmt.Sprintf("content filter '%s' matched", o.FinalFilter))
	case contentfilter.Bounce:
		return s.dispose(engineCF, Disposition{Type: ActBounce, Text: o.BounceText}, ActBounce, s.cfBy(o.FinalFilter), "")
	}
	return nil
}

func (s *screening) cfBy(name string) string {
	return fmt.Sprintf("content filter '%s' in the %s table", name, s.table)
}

// final completes the record for a drop or bounce.
func (s *screening) final(action mailflow.Action, status, reason string) *mailflow.Verdict {
	s.setStatus(status)
	return &mailflow.Verdict{Action: action, Status: status, Reason: reason, Record: s.rec}
}

func (s *screening) setStatus(status string) {
	s.rec.Status = status
	for i := range s.rec.Recipients {
		s.rec.Recipients[i].Status = status
	}
	s.rec.VerdictChart = string(s.chart[:])
}

// finish decides between delivery and quarantine and applies the header
// changes.
func (s *screening) finish() *mailflow.Verdict {
	v := &mailflow.Verdict{Action: mailflow.Deliver, Record: s.rec}
	status := tracking.StatusInProgress
	if len(s.quarantines) > 0 {
		q := s.quarantines[0]
		v.Action, v.Quarantine, v.Reason = mailflow.Quarantine, q.name, q.reason
		status = engineStatus[q.engine].quarantine
		for _, other := range s.quarantines[1:] {
			if other.engine != q.engine {
				status = tracking.StatusQuarantinedMulti
			}
		}
		v.Status = status
		s.rec.Quarantine = q.name
	}
	s.setStatus(status)
	subject := tagSubject(s.rec.Subject, s.tags)
	if subject != s.rec.Subject || len(s.addHeaders) > 0 {
		v.Data = editHeader(s.data, subject != s.rec.Subject, subject, s.addHeaders)
		s.rec.FinalSubject = subject
	}
	return v
}
