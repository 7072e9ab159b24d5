package tracking

import (
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sightline/sightline"
)

// The AsyncOS date errors, verbatim (gateway-api.md §3).
const (
	msgMissingDates = "Missing attribute - startDate or endDate."
	msgInvalidDates = "Invalid attribute - startDate or endDate."
	msgDateSeconds  = "startDate and endDate attribute supports only 00 seconds and 000 microseconds."
	msgWrongParam   = "Wrong Parameter."
)

// MaxAlternatives bounds how often one parameter may repeat.
const MaxAlternatives = 100

// apiDateLayout is the input form of startDate and endDate.
const apiDateLayout = "2006-01-02T15:04:05.000Z"

func missing(name string) error {
	return sightline.Errorf(sightline.Invalid, "Missing attribute - %s.", name)
}

func invalidValue(name string) error {
	return sightline.Errorf(sightline.Invalid, "Invalid value for %s.", name)
}

// parseDate reads an API date: YYYY-MM-DDThh:mm:00.000Z, in UTC.
func parseDate(s string) (time.Time, error) {
	if len(s) != len(apiDateLayout) || s[19] != '.' || !isDigits(s[20:23]) || s[23] != 'Z' {
		return time.Time{}, sightline.Errorf(sightline.Invalid, msgInvalidDates)
	}
	t, err := time.Parse(apiDateLayout, s)
	if err != nil {
		return time.Time{}, sightline.Errorf(sightline.Invalid, msgInvalidDates)
	}
	if t.Second() != 0 || t.Nanosecond() != 0 {
		return time.Time{}, sightline.Errorf(sightline.Invalid, msgDateSeconds)
	}
	return t, nil
}

// parseDates reads the startDate and endDate parameters, which name
// minutes: the range is [startDate, endDate + 1 minute). required says
// whether their absence is an error; an absent pair gives zero times.
func parseDates(v url.Values, required bool) (start, end time.Time, err error) {
	s, e := v.Get("startDate"), v.Get("endDate")
	if s == "" || e == "" {
		if required || s != "" || e != "" {
			return start, end, sightline.Errorf(sightline.Invalid, msgMissingDates)
		}
		return start, end, nil
	}
	if start, err = parseDate(s); err != nil {
		return start, end, err
	}
	if end, err = parseDate(e); err != nil {
		return start, end, err
	}
	if start.After(end) {
		return start, end, sightline.Errorf(sightline.Invalid, msgInvalidDates)
	}
	return start, end.Add(time.Minute), nil
}

// textParam names the parameters of one text filter.
type textParam struct {
	op, value string
	field     func(*Query) *TextFilter
	address   bool // a space is read back as '+': no address contains one
	isEmpty   bool // accepts OpIsEmpty
	defaultOp Op   // operator when only the value is given; "" requires both
}

var textParams = []textParam{
	{op: "envelopeSenderfilterOperator", value: "envelopeSenderfilterValue", field: func(q *Query) *TextFilter { return &q.Sender }, address: true},
	{op: "envelopeRecipientfilterOperator", value: "envelopeRecipientfilterValue", field: func(q *Query) *TextFilter { return &q.Recipient }, address: true},
	{op: "subjectfilterOperator", value: "subjectfilterValue", field: func(q *Query) *TextFilter { return &q.Subject }, isEmpty: true},
	{op: "attachmentNameOperator", value: "attachmentNameValue", field: func(q *Query) *TextFilter { return &q.AttachmentName }},
	{op: "domainNameOperator", value: "domainNameValue", field: func(q *Query) *TextFilter { return &q.Domain }},
	// Cisco's name for the reply-to operator is unknown, so a lone
	// replyToValue means "is".
	{op: "replyToOperator", value: "replyToValue", field: func(q *Query) *TextFilter { return &q.ReplyTo }, defaultOp: OpIs},
}

// ParseQueryParams reads the parameters of GET message-tracking/messages
// (gateway-api.md §5) into a Query. Unknown parameters are ignored; a
// parameter may repeat at most MaxAlternatives times. Errors
// are Invalid *sightline.Error values whose messages are the AsyncOS texts,
// e.g. "Missing attribute - startDate or endDate.".
func ParseQueryParams(v url.Values) (Query, error) {
	for name, vals := range v {
		if len(vals) > MaxAlternatives {
			return Query{}, invalidValue(name)
		}
	}
	var q Query
	var err error
	if q.Start, q.End, err = parseDates(v, true); err != nil {
		return Query{}, err
	}
	if so := v.Get("searchOption"); so != "" && so != "messages" {
		return Query{}, invalidValue("searchOption")
	}
	if q.Offset, err = intParam(v, "offset", 0, 0, 1<<31-1); err != nil {
		return Query{}, err
	}
	if q.Limit, err = intParam(v, "limit", DefaultLimit, 1, MaxLimit); err != nil {
		return Query{}, err
	}
	for _, p := range textParams {
		if err := p.parse(v, p.field(&q)); err != nil {
			return Query{}, err
		}
	}
	for _, s := range v["senderIp"] {
		ip, ok := CanonicalIP(s)
		if !ok {
			return Query{}, invalidValue("senderIp")
		}
		q.SenderIPs = append(q.SenderIPs, ip)
	}
	for _, s := range v["messageIdHeader"] {
		if MessageIDKey(s) == "" {
			return Query{}, invalidValue("messageIdHeader")
		}
		q.MessageIDs = append(q.MessageIDs, strings.TrimSpace(s))
	}
	for _, s := range v["ciscoMid"] {
		mid, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil || mid < 0 {
			return Query{}, invalidValue("ciscoMid")
		}
		q.MIDs = append(q.MIDs, mid)
	}
	for _, s := range v["fileSha256"] {
		s = strings.ToLower(strings.TrimSpace(s))
		if !isHex(s, 64) {
			return Query{}, invalidValue("fileSha256")
		}
		q.SHA256s = append(q.SHA256s, s)
	}
	if d := v["messageDirection"]; len(d) > 0 {
		q.Direction = strings.ToLower(d[0])
		if (q.Direction != "incoming" && q.Direction != "outgoing") || slices.ContainsFunc(d, func(s string) bool { return !strings.EqualFold(s, q.Direction) }) {
			return Query{}, invalidValue("messageDirection")
		}
	}
	if q.Events, err = parseEvents(v); err != nil {
		return Query{}, err
	}
	return q, nil
}

func (p textParam) parse(v url.Values, f *TextFilter) error {
	ops, vals := v[p.op], v[p.value]
	if len(ops) == 0 && len(vals) == 0 {
		return nil
	}
	if len(ops) == 0 && p.defaultOp != "" {
		ops = []string{string(p.defaultOp)}
	}
	if len(ops) == 0 {
		return missing(p.op)
	}
	op := Op(strings.ToLower(strings.TrimSpace(ops[0])))
	for _, o := range ops[1:] {
		if Op(strings.ToLower(strings.TrimSpace(o))) != op {
			return sightline.Errorf(sightline.Invalid, msgWrongParam)
		}
	}
	switch op {
	case OpIs, OpBeginsWith, OpContains:
	case OpIsEmpty:
		if !p.isEmpty {
			return invalidValue(p.op)
		}
		*f = TextFilter{Op: op}
		return nil
	default:
		return invalidValue(p.op)
	}
	if len(vals) == 0 {
		return missing(p.value)
	}
	f.Op = op
	for _, s := range vals {
		if p.address {
			s = strings.ReplaceAll(s, " ", "+")
		}
		f.Values = append(f.Values, s)
	}
	return nil
}

// parseEvents reads the advanced filters in a stable order (by name).
func parseEvents(v url.Values) ([]EventFilter, error) {
	var fs []EventFilter
	for _, name := range sortedKeys(eventParams) {
		p := eventParams[name]
		vals := v[name]
		if len(vals) == 0 {
			for _, sub := range []string{p.direction, p.action} {
				if sub != "" && v.Get(sub) != "" {
					return nil, missing(name)
				}
			}
			continue
		}
		val, err := oneValue(name, vals, p.enum)
		if err != nil {
			return nil, err
		}
		if p.boolean {
			if !strings.EqualFold(val, "true") {
				continue
			}
			val = "True"
		}
		f := EventFilter{Name: name, Value: val}
		if p.direction != "" && v.Get(p.direction) != "" {
			d, err := oneValue(p.direction, v[p.direction], []string{"incoming", "outgoing", "inbound", "outbound"})
			if err != nil {
				return nil, err
			}
			f.Direction = map[string]string{"inbound": "incoming", "outbound": "outgoing"}[d]
			if f.Direction == "" {
				f.Direction = d
			}
		}
		if p.action != "" && v.Get(p.action) != "" {
			if f.Action, err = oneValue(p.action, v[p.action], []string{"stopped"}); err != nil {
				return nil, err
			}
		}
		fs = append(fs, f)
	}
	return fs, nil
}

// oneValue returns the single value of an advanced parameter, spelled as in
// enum when it has one. Two different values are "Wrong Parameter.": an
// advanced group holds one condition.
func oneValue(name string, vals []string, enum []string) (string, error) {
	val := strings.TrimSpace(vals[0])
	for _, o := range vals[1:] {
		if !strings.EqualFold(strings.TrimSpace(o), val) {
			return "", sightline.Errorf(sightline.Invalid, msgWrongParam)
		}
	}
	if enum == nil {
		if val == "" {
			return "", missing(name)
		}
		return val, nil
	}
	for _, e := range enum {
		if strings.EqualFold(e, val) {
			return e, nil
		}
	}
	return "", invalidValue(name)
}

func intParam(v url.Values, name string, def, lo, hi int) (int, error) {
	s := v.Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < lo || n > hi {
		return 0, invalidValue(name)
	}
	return n, nil
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Values returns q as the query parameters of GET message-tracking/messages,
// for clients such as the CLI and the console: ParseQueryParams(q.Values())
// gives back q, its times widened to whole minutes. Zero times are left out
// (the API requires both), as are the default offset and limit.
func (q Query) Values() url.Values {
	v := url.Values{}
	if !q.Start.IsZero() {
		v.Set("startDate", q.Start.UTC().Truncate(time.Minute).Format(apiDateLayout))
	}
	if !q.End.IsZero() {
		v.Set("endDate", q.End.UTC().Add(-time.Nanosecond).Truncate(time.Minute).Format(apiDateLayout))
	}
	for _, p := range textParams {
		f := p.field(&q)
		if !f.Active() {
			continue
		}
		v.Set(p.op, string(f.Op))
		if f.Op != OpIsEmpty {
			v[p.value] = slices.Clone(f.Values)
		}
	}
	v["senderIp"] = q.SenderIPs
	v["messageIdHeader"] = q.MessageIDs
	for _, mid := range q.MIDs {
		v.Add("ciscoMid", strconv.FormatInt(mid, 10))
	}
	v["fileSha256"] = q.SHA256s
	if q.Direction != "" {
		v.Set("messageDirection", q.Direction)
	}
	for _, f := range q.Events {
		p := eventParams[f.Name]
		v.Set(f.Name, f.Value)
		if f.Direction != "" && p.direction != "" {
			d := f.Direction
			if p.direction == "contentFiltersDirection" {
				d = map[string]string{"incoming": "inbound", "outgoing": "outbound"}[d]
			}
			v.Set(p.direction, d)
		}
		if f.Action != "" && p.action != "" {
			v.Set(p.action, f.Action)
		}
	}
	if q.Offset > 0 {
		v.Set("offset", strconv.Itoa(q.Offset))
	}
	if q.Limit > 0 && q.Limit != DefaultLimit {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	for k, vs := range v {
		if len(vs) == 0 {
			delete(v, k)
		}
	}
	return v
}
