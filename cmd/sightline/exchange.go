package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sightline/sightline/internal/exchange"
	"github.com/sightline/sightline/internal/exchange/exchangeclient"
	"github.com/sightline/sightline/internal/store/postgres"
)

// regions are the exchanges serve runs, and the URLs the CLI and a new
// gateway know them by.
var regions = []struct{ label, addr string }{
	{"AMERICAS", "127.0.0.1:8090"},
	{"EUROPE", "127.0.0.1:8091"},
}

// exchangeFlags are the settings of the exchange role.
type exchangeFlags struct {
	addrs      map[string]*string // region label → listen address
	minVersion string
}

func (e *exchangeFlags) register(fs *flag.FlagSet) {
	e.addrs = map[string]*string{}
	for _, r := range regions {
		e.addrs[r.label] = fs.String("exchange-"+strings.ToLower(r.label)+"-addr", r.addr,
			fmt.Sprintf("exchange %s listen `address`", r.label))
	}
	fs.StringVar(&e.minVersion, "min-version", "", "oldest device `version` an exchange registers (default: any)")
}

func (e *exchangeFlags) options(region, dataDir string, logger *slog.Logger, adminPassword func() (string, error)) exchange.Options {
	return exchange.Options{
		Region:        region,
		Addr:          *e.addrs[region],
		DataDir:       filepath.Join(dataDir, "exchange-"+strings.ToLower(region)),
		MinVersion:    e.minVersion,
		AdminPassword: adminPassword,
		Logger:        logger.With("role", "exchange"),
	}
}

func runExchange(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "token":
			return runExchangeToken(ctx, args[1:], getenv, stdout, stderr)
		case "devices":
			return runExchangeDevices(ctx, args[1:], getenv, stdout, stderr)
		case "cloud-services":
			return runExchangeCloudServices(ctx, args[1:], getenv, stdout, stderr)
		case "audit":
			return runExchangeAudit(ctx, args[1:], getenv, stdout, stderr)
		}
	}
	fs := newFlagSet("exchange", stderr)
	var common commonFlags
	var ex exchangeFlags
	common.register(fs)
	ex.register(fs)
	region := fs.String("region", "AMERICAS", "`region` this exchange serves: AMERICAS, EUROPE or APJC")
	dsn := fs.String("postgres", "", "PostgreSQL `DSN` to keep the exchange's records in, shared by its replicas (default: SQLite in --data)")
	setUsage(fs, "exchange [flags]            run one exchange region",
		"exchange token create --devices N --expires 1h",
		"exchange devices",
		"exchange cloud-services enable|disable",
		"exchange audit [--since T] [--action A] [--outcome O] [--device D] [--token T] [--limit N] [--json]")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	if _, ok := ex.addrs[*region]; !ok {
		return usageError(fmt.Sprintf("--region %q: want AMERICAS or EUROPE", *region))
	}
	logger, err := common.logger(stderr)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(common.data, 0o750); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	opts := ex.options(*region, common.data, logger, adminPassword(getenv, stdout))
	if *dsn != "" {
		st, err := postgres.OpenExchange(ctx, *dsn)
		if err != nil {
			return err
		}
		defer st.Close()
		opts.Store = st
	}
	x, err := exchange.Open(ctx, opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Sightline exchange %s %s: http://%s/\n", version, *region, x.Addr())
	return x.Run(ctx)
}

// exchangeURL turns --exchange, a region name or a URL, into a URL.
func exchangeURL(s string) (string, error) {
	u, err := parseExchange(s)
	if err != nil {
		return "", usageError(fmt.Sprintf("--exchange %q: %v", s, err))
	}
	return u, nil
}

// parseExchange is exchangeURL with an error that does not name the flag.
func parseExchange(s string) (string, error) {
	for _, r := range regions {
		if strings.EqualFold(s, r.label) {
			return "http://" + r.addr, nil
		}
	}
	if !httpURL(s) {
		return "", errors.New("want a region (AMERICAS, EUROPE) or a URL such as http://127.0.0.1:8090")
	}
	return strings.TrimSuffix(s, "/"), nil
}

// adminClient registers the flags that reach an exchange's admin API, and
// returns what makes its client once they are parsed.
func adminClient(fs *flag.FlagSet) (connect func(env) (*exchangeclient.Client, error)) {
	var c clientFlags
	c.register(fs)
	exchange := fs.String("exchange", "AMERICAS", "exchange `URL` or region name (AMERICAS, EUROPE)")
	return func(getenv env) (*exchangeclient.Client, error) {
		u, err := exchangeURL(*exchange)
		if err != nil {
			return nil, err
		}
		if err := c.resolve(getenv); err != nil {
			return nil, err
		}
		return exchangeclient.NewAdmin(u, &http.Client{Timeout: 30 * time.Second}, c.user, c.password), nil
	}
}

func runExchangeToken(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "create" {
		return usageError("usage: sightline exchange token create --devices N --expires 1h")
	}
	fs := newFlagSet("exchange token create", stderr)
	connect := adminClient(fs)
	devices := fs.Int("devices", 1, "how many devices the token may register (`1-100`)")
	expires := fs.String("expires", "1h", "token lifetime: 1h, 2h, 4h, 6h, 8h, 12h, 1d, 2d, 3d, 4d or 5d")
	if err := parseFlags(fs, args[1:], getenv); err != nil {
		return err
	}
	c, err := connect(getenv)
	if err != nil {
		return err
	}
	tok, err := c.TokenCreate(ctx, *devices, *expires)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok.Token)
	fmt.Fprintf(stderr, "Token for %d device(s) in region %s, expires %s. It is shown only this once.\n",
		tok.Devices, tok.Region, tok.ExpiresAt.Local().Format(time.RFC1123))
	return nil
}

func runExchangeDevices(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) error {
	fs := newFlagSet("exchange devices", stderr)
	connect := adminClient(fs)
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	c, err := connect(getenv)
	if err != nil {
		return err
	}
	ds, err := c.Devices(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tTYPE\tVERSION\tSTATUS\tIP\tTUNNEL")
	for _, d := range ds.Devices {
		tunnel := "down"
		if d.Connected {
			tunnel = "up"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.ID, d.Name, d.Type, d.Version, d.Status, d.IP, tunnel)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if !ds.ThreatResponse {
		fmt.Fprintf(stdout, "Threat Response is not enabled for organisation %s in region %s: enable it under Cloud Services.\n", ds.Organisation, ds.Region)
	}
	return nil
}

// runExchangeCloudServices turns the organisation's Threat Response on or
// off, as the exchange's Cloud Services page does.
func runExchangeCloudServices(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "enable" && args[0] != "disable") {
		return usageError("usage: sightline exchange cloud-services enable|disable")
	}
	fs := newFlagSet("exchange cloud-services "+args[0], stderr)
	connect := adminClient(fs)
	if err := parseFlags(fs, args[1:], getenv); err != nil {
		return err
	}
	c, err := connect(getenv)
	if err != nil {
		return err
	}
	on := args[0] == "enable"
	if err := c.SetCloudServices(ctx, exchangeclient.CloudServices{ThreatResponse: on}); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Threat Response %s for the organisation.\n", map[bool]string{true: "enabled", false: "disabled"}[on])
	return nil
}

// runExchangeAudit prints a page of the organisation's audit log, newest
// first, as the exchange's Audit Log page shows it: each entry's time,
// actor, action, outcome, reason code (for a refused registration) and
// text.
func runExchangeAudit(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) error {
	fs := newFlagSet("exchange audit", stderr)
	connect := adminClient(fs)
	since := fs.String("since", "", "entries at or after this `time` (2006-01-02, 2006-01-02T15:04 or RFC 3339, UTC) or this long ago (24h)")
	action := fs.String("action", "", "only this `action`, e.g. device.register or token.create")
	outcome := fs.String("outcome", "", "only this `outcome`: success or failure")
	device := fs.String("device", "", "only entries about this device `ID or host name`")
	token := fs.String("token", "", "only entries about this token `ID or fingerprint`")
	limit := fs.Int("limit", 100, "entries per `page` (1-1000)")
	before := fs.String("before", "", "the page older than this `cursor`, printed at the end of the previous page")
	asJSON := fs.Bool("json", false, "print the API's answer as JSON")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	if *limit < 1 || *limit > 1000 {
		return usageError(fmt.Sprintf("--limit %d: want a number from 1 to 1000", *limit))
	}
	q := exchangeclient.AuditQuery{Action: *action, Outcome: *outcome, Device: *device, Token: *token, Limit: *limit, Before: *before}
	if *since != "" {
		t, err := parseSince(*since, time.Now())
		if err != nil {
			return usageError("--since: " + err.Error())
		}
		q.Since = t
	}
	c, err := connect(getenv)
	if err != nil {
		return err
	}
	a, err := c.Audit(ctx, q)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(a)
	}
	return printAudit(stdout, a)
}

// parseSince reads --since: a time as parseCLITime reads it, or a
// duration before now.
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d <= 0 {
			return time.Time{}, fmt.Errorf("%q: give a positive duration such as 24h", s)
		}
		return now.Add(-d).UTC().Truncate(time.Second), nil
	}
	t, err := parseCLITime(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: want 2006-01-02, 2006-01-02T15:04, RFC 3339 or a duration such as 24h", s)
	}
	return t, nil
}

// printAudit prints a page of the audit log as a table, and how to read
// the next page.
func printAudit(w io.Writer, a exchangeclient.Audit) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tACTOR\tACTION\tOUTCOME\tREASON\tTEXT")
	for _, e := range a.Entries {
		reason := e.Reason
		if reason == "" {
			reason = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.UTC().Format(time.RFC3339), e.Actor, e.Action, e.Outcome, reason, e.Detail)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if a.Next != "" {
		fmt.Fprintf(w, "Older entries: add --before %s\n", a.Next)
	}
	return nil
}
