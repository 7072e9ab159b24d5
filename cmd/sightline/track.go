package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// clientFlags are how a CLI command reaches and signs in to a running role.
type clientFlags struct {
	user, password string
}

func (c *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.user, "user", "admin", "user `name` to sign in as")
	fs.StringVar(&c.password, "password", "", "`password` (default: $SIGHTLINE_ADMIN_PASSWORD)")
}

func (c *clientFlags) resolve(getenv env) error {
	if c.password == "" {
		c.password = getenv("SIGHTLINE_ADMIN_PASSWORD")
	}
	if c.password == "" {
		return usageError("no password: set SIGHTLINE_ADMIN_PASSWORD or pass --password")
	}
	return nil
}

// textFilter is one AsyncOS operator/value filter, set by --X-is, --X-begins
// or --X-contains.
type textFilter struct {
	opParam, valueParam string
	op, value           string
	given               string // the flag and its value, as given
}

func (f *textFilter) register(fs *flag.FlagSet, name, what, opParam, valueParam string) {
	f.opParam, f.valueParam = opParam, valueParam
	for _, op := range []struct{ suffix, op, verb string }{
		{"is", "is", "is"}, {"begins", "begins_with", "begins with"}, {"contains", "contains", "contains"},
	} {
		fs.Func(name+"-"+op.suffix, fmt.Sprintf("%s %s `text`", what, op.verb), func(v string) error {
			if f.op != "" {
				return fmt.Errorf("only one of --%s-is, --%s-begins, --%s-contains", name, name, name)
			}
			f.op, f.value, f.given = op.op, v, "--"+name+"-"+op.suffix+" "+v
			return nil
		})
	}
}

func (f *textFilter) apply(q query) {
	if f.op != "" {
		q.set(f.opParam, f.op, f.given)
		q.set(f.valueParam, f.value, f.given)
	}
}

// query is the API query a command line makes, and which flag set each
// parameter, so that the API's "Invalid value for senderIp." can name the
// flag.
type query struct {
	url.Values
	given map[string]string // parameter → the flag and value that set it, as given
}

func (q query) set(param, value, given string) {
	q.Set(param, value)
	q.given[param] = given
}

// explain prefixes an API error that names an invalid parameter with the
// flag that set it.
func (q query) explain(err error) error {
	var ae apiError
	if !errors.As(err, &ae) {
		return err
	}
	param, ok := strings.CutPrefix(ae.message, "Invalid value for ")
	if given := q.given[strings.TrimSuffix(param, ".")]; ok && given != "" {
		return fmt.Errorf("%s: %w", given, err)
	}
	return err
}

func runTrack(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) error {
	fs := newFlagSet("track", stderr)
	var client clientFlags
	client.register(fs)
	gatewayURL := fs.String("gateway", "http://127.0.0.1:6080", "gateway `URL`")
	var sender, recipient, subject, attachment, domain textFilter
	sender.register(fs, "sender", "envelope sender", "envelopeSenderfilterOperator", "envelopeSenderfilterValue")
	recipient.register(fs, "recipient", "envelope recipient", "envelopeRecipientfilterOperator", "envelopeRecipientfilterValue")
	subject.register(fs, "subject", "subject", "subjectfilterOperator", "subjectfilterValue")
	attachment.register(fs, "attachment", "attachment name", "attachmentNameOperator", "attachmentNameValue")
	domain.register(fs, "domain", "sender or recipient domain", "domainNameOperator", "domainNameValue")
	senderIP := fs.String("sender-ip", "", "sender `IP` address")
	messageID := fs.String("message-id", "", "Message-ID `header`")
	mid := fs.Int64("mid", 0, "message `ID` (MID)")
	sha256 := fs.String("sha256", "", "attachment SHA-256 `hash`")
	direction := fs.String("direction", "", "`incoming` or outgoing")
	status := fs.String("status", "", "delivery `status`: DELIVERED, DROPPED, ABORTED or BOUNCED")
	lastDay := fs.Bool("last-day", false, "the last 24 hours (the default range)")
	lastWeek := fs.Bool("last-week", false, "the last 7 days")
	since := fs.String("since", "", "range start `time` (2006-01-02 or 2006-01-02T15:04, UTC)")
	until := fs.String("until", "", "range end `time` (default now)")
	limit := fs.Int("limit", 20, "rows per `page` (at most 1000)")
	offset := fs.Int("offset", 0, "rows to `skip`")
	asJSON := fs.Bool("json", false, "print the API's JSON body")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	if err := client.resolve(getenv); err != nil {
		return err
	}

	end := time.Now().UTC()
	start := end.Add(-24 * time.Hour)
	switch {
	case *lastDay && *lastWeek, (*lastDay || *lastWeek) && *since != "":
		return usageError("choose one of --last-day, --last-week, --since")
	case *lastWeek:
		start = end.Add(-7 * 24 * time.Hour)
	}
	var err error
	if *since != "" {
		if start, err = parseCLITime(*since); err != nil {
			return usageError("--since: " + err.Error())
		}
	}
	if *until != "" {
		if end, err = parseCLITime(*until); err != nil {
			return usageError("--until: " + err.Error())
		}
	}
	// AsyncOS takes whole minutes: round the end up so nothing recent is missed.
	end = end.Truncate(time.Minute).Add(time.Minute)
	q := query{url.Values{}, map[string]string{}}
	q.Set("startDate", start.Truncate(time.Minute).Format("2006-01-02T15:04:00.000Z"))
	q.Set("endDate", end.Format("2006-01-02T15:04:00.000Z"))
	q.Set("searchOption", "messages")
	q.Set("ciscoHost", "All_Hosts")
	q.set("offset", strconv.Itoa(*offset), fmt.Sprint("--offset ", *offset))
	q.set("limit", strconv.Itoa(*limit), fmt.Sprint("--limit ", *limit))
	for _, f := range []*textFilter{&sender, &recipient, &subject, &attachment, &domain} {
		f.apply(q)
	}
	for _, p := range []struct{ param, flag, value string }{
		{"senderIp", "--sender-ip", *senderIP}, {"messageIdHeader", "--message-id", *messageID},
		{"fileSha256", "--sha256", *sha256}, {"messageDirection", "--direction", *direction},
	} {
		if p.value != "" {
			q.set(p.param, p.value, p.flag+" "+p.value)
		}
	}
	if *status != "" {
		q.set("deliveryStatus", strings.ToUpper(*status), "--status "+*status)
	}
	if *mid != 0 {
		q.set("ciscoMid", strconv.FormatInt(*mid, 10), fmt.Sprint("--mid ", *mid))
	}

	body, err := asyncOSGet(ctx, *gatewayURL, "/esa/api/v2.0/message-tracking/messages", q.Values, client)
	if err != nil {
		return q.explain(err)
	}
	if *asJSON {
		_, err := stdout.Write(body)
		return err
	}
	return printTracking(stdout, body)
}

func parseCLITime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q: want 2006-01-02, 2006-01-02T15:04 or RFC 3339", s)
}

// httpURL reports whether s is an absolute http or https URL.
func httpURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// asyncOSGet calls a gateway's API with Basic authentication and returns
// the body of a 200 answer, or the API's error message.
func asyncOSGet(ctx context.Context, base, path string, q url.Values, c clientFlags) ([]byte, error) {
	return callAPI(ctx, http.MethodGet, base, path+"?"+q.Encode(), nil, c)
}

// callAPI sends a request with an optional JSON body to a role's API
// with Basic authentication and returns the body of a 2xx answer, or an error
// carrying the error body's message (errorMessage reads both shapes).
func callAPI(ctx context.Context, method, base, pathQuery string, in any, c clientFlags) ([]byte, error) {
	if !httpURL(base) {
		return nil, usageError(fmt.Sprintf("%q is not the URL of a role: want http://host:port or https://host", base))
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(base, "/")+pathQuery, body)
	if err != nil {
		return nil, usageError(fmt.Sprintf("URL %q: %v", base, err))
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.SetBasicAuth(c.user, c.password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach %s: %w", base, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("read the answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		if msg := errorMessage(out); msg != "" {
			return nil, apiError{resp.StatusCode, msg}
		}
		return nil, fmt.Errorf("%s answered %s", base, resp.Status)
	}
	return out, nil
}

// errorMessage reads the message of an error body: the AsyncOS envelope
// {"error": {"message": …}} or the plain {"error": "…"} of the other roles.
func errorMessage(body []byte) string {
	var e struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil {
		return ""
	}
	var obj struct{ Message string }
	if json.Unmarshal(e.Error, &obj) == nil && obj.Message != "" {
		return obj.Message
	}
	var str string
	json.Unmarshal(e.Error, &str)
	return str
}

// apiError is an error answer of a role's API.
type apiError struct {
	status  int
	message string
}

func (e apiError) Error() string { return e.message }

// printTracking prints a message-tracking search answer as the UI's table.
func printTracking(w io.Writer, body []byte) error {
	var res struct {
		Meta struct {
			TotalCount int `json:"totalCount"`
		} `json:"meta"`
		Data []struct {
			Attributes struct {
				Timestamp     string            `json:"timestamp"`
				MID           []int64           `json:"mid"`
				Sender        string            `json:"sender"`
				Recipient     []string          `json:"recipient"`
				Subject       string            `json:"subject"`
				MessageStatus map[string]string `json:"messageStatus"`
			} `json:"attributes"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &res); err != nil {
		return fmt.Errorf("gateway answer is not a tracking result: %w", err)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tMID\tSENDER\tRECIPIENT\tSUBJECT\tLAST STATE")
	for _, row := range res.Data {
		a := row.Attributes
		mids := make([]string, len(a.MID))
		for i, m := range a.MID {
			mids[i] = strconv.FormatInt(m, 10)
		}
		keys := make([]string, 0, len(a.MessageStatus))
		for k := range a.MessageStatus {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		states := make([]string, len(keys))
		for i, k := range keys {
			states[i] = a.MessageStatus[k]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", a.Timestamp, strings.Join(mids, ","), a.Sender,
			strings.Join(a.Recipient, ", "), a.Subject, strings.Join(states, "; "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "%d of %d messages\n", len(res.Data), res.Meta.TotalCount)
	return nil
}
