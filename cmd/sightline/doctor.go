package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/sightline/sightline/internal/doctor"
)

// doctorFailed is the error of a doctor run that found a failure: the
// report already said what, so main prints only this line; exit status 1.
type doctorFailed int

func (n doctorFailed) Error() string { return fmt.Sprintf("doctor: %d check(s) failed", int(n)) }

// runDoctor checks a running installation and explains each problem with
// its fix. Exit status: 0 when no check failed (warnings allowed), 1 when
// one did, 2 for a mistake in the command line.
func runDoctor(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) error {
	fs := newFlagSet("doctor", stderr)
	var client clientFlags
	client.register(fs)
	gatewayURL := fs.String("gateway", "http://127.0.0.1:6080", "gateway `URL` (\"\" to skip)")
	var exchanges []string
	fs.Func("exchange", "exchange `URL` or region name, repeatable (default: the AMERICAS and EUROPE exchanges of serve)", func(v string) error {
		u, err := parseExchange(v)
		if err == nil {
			exchanges = append(exchanges, u)
		}
		return err
	})
	consoleURL := fs.String("console", "http://127.0.0.1:8080", "console `URL` (\"\" to skip)")
	smtpAddr := fs.String("smtp", "127.0.0.1:2525", "gateway SMTP `address` (\"\" to skip)")
	asJSON := fs.Bool("json", false, "print the results as JSON")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError("doctor takes no arguments: " + strings.Join(fs.Args(), " "))
	}
	if err := client.resolve(getenv); err != nil {
		return err
	}
	if exchanges == nil {
		for _, r := range regions {
			exchanges = append(exchanges, "http://"+r.addr)
		}
	}
	results := doctor.Run(ctx, doctor.Targets{GatewayURL: *gatewayURL, Exchanges: exchanges, ConsoleURL: *consoleURL,
		SMTPAddr: *smtpAddr, User: client.user, Password: client.password})
	var err error
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(results)
	} else {
		err = doctor.WriteText(stdout, results)
	}
	if err != nil {
		return err
	}
	if failed := doctor.Count(results, doctor.StatusFail); failed > 0 {
		return doctorFailed(failed)
	}
	return nil
}
