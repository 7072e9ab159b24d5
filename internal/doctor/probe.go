package doctor

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// maxBody bounds an answer read from a role.
const maxBody = 8 << 20

// smtpTimeout bounds the SMTP connection and its greeting.
const smtpTimeout = 10 * time.Second

// answer is a role's HTTP answer.
type answer struct {
	status int
	date   time.Time // the Date header, zero when absent or unreadable
	body   []byte
}

// ok reports a 2xx answer.
func (a answer) ok() bool { return a.status/100 == 2 }

// message returns the error message of a non-2xx answer: the AsyncOS
// envelope {"error": {"message": …}}, the other roles' {"error": "…"}, or
// the status.
func (a answer) message() string {
	var e struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(a.body, &e) == nil && len(e.Error) > 0 {
		var obj struct{ Message string }
		if json.Unmarshal(e.Error, &obj) == nil && obj.Message != "" {
			return obj.Message
		}
		var s string
		if json.Unmarshal(e.Error, &s) == nil && s != "" {
			return s
		}
	}
	return fmt.Sprintf("HTTP %d %s", a.status, http.StatusText(a.status))
}

// decode reads a 2xx answer's JSON body into v.
func (a answer) decode(v any) error {
	if err := json.Unmarshal(a.body, v); err != nil {
		return fmt.Errorf("answer is not the expected JSON: %w", err)
	}
	return nil
}

// get calls GET base+path, with Basic authentication when auth is set. The
// error is a transport failure; any HTTP answer is returned.
func (d *doctor) get(ctx context.Context, base, path string, auth bool) (answer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+path, nil)
	if err != nil {
		return answer{}, fmt.Errorf("bad URL %q: %w", base, err)
	}
	req.Header.Set("Accept", "application/json")
	if auth {
		req.SetBasicAuth(d.t.User, d.t.Password)
	}
	resp, err := d.hc.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return answer{}, fmt.Errorf("read answer of %s: %w", req.URL.Path, err)
	}
	a := answer{status: resp.StatusCode, body: body}
	if v := resp.Header.Get("Date"); v != "" {
		a.date, _ = http.ParseTime(v)
	}
	return a, nil
}

// getJSON calls get and decodes a 2xx answer into v; any other answer is
// an error carrying the role's message.
func (d *doctor) getJSON(ctx context.Context, base, path string, v any) error {
	a, err := d.get(ctx, base, path, true)
	if err != nil {
		return err
	}
	if !a.ok() {
		return fmt.Errorf("%s", a.message())
	}
	return a.decode(v)
}

// probe calls a role's first route and records whether it answers, its
// clock and, when auth is set, whether it accepts the credentials. It
// returns the answer, or false when the role cannot be used; start says how
// to start the role.
func (d *doctor) probe(ctx context.Context, id, name, base, path string, auth bool, start string) (answer, bool) {
	a, err := d.get(ctx, base, path, auth)
	if err != nil {
		d.unreachable(id, name, base, err, start)
		return a, false
	}
	d.add(id+".reachable", name+" answers at "+base, StatusOK, "", "")
	d.checkClock(id, name, a.date)
	if !auth {
		return a, true
	}
	return a, d.checkCredentials(id, name, a)
}

// unreachable records that nothing answers at base.
func (d *doctor) unreachable(id, name, base string, err error, start string) {
	d.add(id+".reachable", name+" answers at "+base, StatusFail,
		fmt.Sprintf("Nothing answers at %s: %v.", base, err),
		fmt.Sprintf("Start it (%s), or pass its address if it listens elsewhere.", start))
}

// checkCredentials records whether a's route accepted the credentials.
func (d *doctor) checkCredentials(id, name string, a answer) bool {
	title := name + " accepts the credentials"
	switch a.status {
	case http.StatusUnauthorized:
		d.add(id+".credentials", title, StatusFail,
			fmt.Sprintf("%s refused user %q: %s", name, d.t.User, a.message()),
			"Pass --user and --password (or set SIGHTLINE_ADMIN_PASSWORD) with an administrator of this role.")
		return false
	case http.StatusForbidden:
		d.add(id+".credentials", title, StatusFail,
			fmt.Sprintf("User %q may not read this: %s", d.t.User, a.message()),
			"Sign in as an administrator (--user admin).")
		return false
	}
	d.add(id+".credentials", title, StatusOK, "Signed in as "+d.t.User+".", "")
	return true
}

// checkClock compares a role's Date header with the local clock.
func (d *doctor) checkClock(id, name string, date time.Time) {
	id, title := id+".clock", name+" clock agrees with this machine"
	if date.IsZero() {
		d.add(id, title, StatusSkip, "The answer carried no Date header.", "")
		return
	}
	// Date has whole seconds: allow one for the truncation.
	skew := d.now().Sub(date).Round(time.Second)
	abs := max(skew, -skew)
	if abs <= time.Second {
		d.add(id, title, StatusOK, "", "")
		return
	}
	ahead := "behind"
	if skew < 0 {
		ahead = "ahead of"
	}
	detail := fmt.Sprintf("%s's clock is %s %s this machine's.", name, abs, ahead)
	fix := "Synchronise the clocks with NTP (timedatectl set-ntp true); registration tokens and the console's tokens carry times."
	switch {
	case abs > SkewFail:
		d.add(id, title, StatusFail, detail+" Tokens issued by one side look expired or not yet valid to the other.", fix)
	case abs > SkewWarn:
		d.add(id, title, StatusWarn, detail, fix)
	default:
		d.add(id, title, StatusOK, detail, "")
	}
}

// checkSMTP reads the gateway's SMTP greeting.
func (d *doctor) checkSMTP(ctx context.Context) {
	addr := d.t.SMTPAddr
	if addr == "" {
		return
	}
	id, title := "smtp.reachable", "Gateway SMTP answers at "+addr
	greeting, err := readGreeting(ctx, addr)
	fix := "Start the gateway (sightline serve, or sightline gateway --smtp-addr ADDR), or pass --smtp with the address it listens on."
	switch {
	case err != nil:
		d.add(id, title, StatusFail, fmt.Sprintf("No SMTP greeting from %s: %v.", addr, err), fix)
	case !strings.HasPrefix(greeting, "220"):
		d.add(id, title, StatusFail, fmt.Sprintf("%s greets with %q instead of 220: it refuses mail.", addr, greeting),
			"Check the gateway's log for why its listener refuses connections.")
	default:
		d.add(id, title, StatusOK, greeting, "")
	}
}

// readGreeting connects to addr and returns the first line of its greeting.
func readGreeting(ctx context.Context, addr string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, smtpTimeout)
	defer cancel()
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)
	line, err := bufio.NewReader(io.LimitReader(conn, 1024)).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("read greeting: %w", err)
	}
	fmt.Fprint(conn, "QUIT\r\n")
	return strings.TrimRight(line, "\r\n"), nil
}
