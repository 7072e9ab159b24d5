// Package doctor checks a running Sightline installation over the public
// APIs of its roles and explains each problem it finds in plain words, with
// the fix: the troubleshooting cases of the seed journey and the plumbing
// under them (ports, credentials, clocks, the tunnel).
//
// Run calls the roles in dependency order: the SMTP port, the gateway, each
// exchange, the console; then what each says about the others. A role that
// does not answer turns the checks that need it into StatusSkip, naming the
// reason. The installation is well when no check has StatusFail (see
// Count); warnings describe a state that is not wrong but worth knowing.
package doctor

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Status is the outcome of one check.
type Status string

const (
	StatusOK   Status = "ok"
	StatusWarn Status = "warn" // works, but something deserves attention
	StatusFail Status = "fail" // broken: the Fix says what to do
	StatusSkip Status = "skip" // not checked: Detail says why (usually a role that does not answer)
)

// Result is the outcome of one check. ID is stable across runs, for
// scripts: "<role>.<check>", where role is smtp, gateway, console or
// exchange.<REGION> (exchange.<URL> before the region is known).
type Result struct {
	ID     string `json:"id"`
	Title  string `json:"title"`
	Status Status `json:"status"`
	Detail string `json:"detail,omitempty"`
	Fix    string `json:"fix,omitempty"` // set when Status is fail or warn
}

// Targets are the running roles to check and how to reach them. A role
// whose address is "" is not checked.
type Targets struct {
	GatewayURL string   // the gateway's UI and API base URL, e.g. http://127.0.0.1:6080
	Exchanges  []string // the exchanges' base URLs; each one's region is asked from it
	ConsoleURL string   // the console's base URL
	SMTPAddr   string   // the gateway's SMTP host:port

	// User and Password sign in to every role (HTTP Basic authentication).
	User, Password string

	// HTTPClient makes every call; nil means a client with a 10s timeout.
	// Its timeout bounds each call.
	HTTPClient *http.Client
	// Now is the local clock the roles' clocks are compared with; nil means
	// time.Now.
	Now func() time.Time
}

// Clock skew thresholds: registration tokens and the console's JWTs carry
// times, so a role whose clock is off by minutes refuses or misjudges them.
const (
	SkewWarn = 30 * time.Second
	SkewFail = 5 * time.Minute
)

// Run checks the roles of t and returns one Result per check, in the order
// they ran. It never fails as a whole: an unreachable role is a failed check.
func Run(ctx context.Context, t Targets) []Result {
	d := &doctor{t: t, hc: t.HTTPClient, now: t.Now}
	if d.hc == nil {
		d.hc = &http.Client{Timeout: 10 * time.Second}
	}
	if d.now == nil {
		d.now = time.Now
	}
	d.checkSMTP(ctx)
	gw := d.probeGateway(ctx)
	for _, u := range t.Exchanges {
		if x := d.probeExchange(ctx, u); x != nil {
			d.exchanges = append(d.exchanges, x)
		}
	}
	con := d.probeConsole(ctx)
	d.checkGateway(ctx, gw)
	d.checkExchanges(gw, con)
	d.checkConsole(ctx, gw, con)
	return d.results
}

// Count returns how many of rs have status s; the installation is well
// when Count(rs, StatusFail) is 0.
func Count(rs []Result, s Status) int {
	n := 0
	for _, r := range rs {
		if r.Status == s {
			n++
		}
	}
	return n
}

// marks are the line prefixes of WriteText.
var marks = map[Status]string{StatusOK: "✓", StatusWarn: "!", StatusFail: "✗", StatusSkip: "-"}

// WriteText writes rs as a readable report: one line per check (✓ ok,
// ! warning, ✗ failure, - skipped) with its detail and fix indented below,
// and a summary line.
func WriteText(w io.Writer, rs []Result) error {
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&b, "%s %s\n", marks[r.Status], r.Title)
		if r.Detail != "" {
			fmt.Fprintf(&b, "    %s\n", r.Detail)
		}
		if r.Fix != "" {
			fmt.Fprintf(&b, "    Fix: %s\n", r.Fix)
		}
	}
	fmt.Fprintf(&b, "\n%d checks: %d ok, %d warnings, %d failed, %d skipped\n",
		len(rs), Count(rs, StatusOK), Count(rs, StatusWarn), Count(rs, StatusFail), Count(rs, StatusSkip))
	_, err := io.WriteString(w, b.String())
	return err
}

// doctor is one run's state.
type doctor struct {
	t         Targets
	hc        *http.Client
	now       func() time.Time
	exchanges []*exchange // those that answered, in the order of Targets.Exchanges
	results   []Result
}

func (d *doctor) add(id, title string, s Status, detail, fix string) {
	d.results = append(d.results, Result{ID: id, Title: title, Status: s, Detail: detail, Fix: fix})
}

func (d *doctor) skip(id, title, why string) { d.add(id, title, StatusSkip, why, "") }

// exchangeOf returns the probed exchange of region, nil when none answered.
func (d *doctor) exchangeOf(region string) *exchange {
	for _, x := range d.exchanges {
		if strings.EqualFold(x.region, region) {
			return x
		}
	}
	return nil
}
