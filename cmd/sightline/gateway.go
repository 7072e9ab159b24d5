package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/sightline/sightline/internal/gateway"
)

func runGateway(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "commit":
			return runGatewayCommit(ctx, args[1:], getenv, stdout, stderr)
		case "clear":
			return runGatewayClear(ctx, args[1:], getenv, stdout, stderr)
		case "cloudserviceconfig":
			return runCloudServiceConfig(ctx, args[1:], getenv, stdout, stderr)
		}
	}
	fs := newFlagSet("gateway", stderr)
	var common commonFlags
	var gw gatewayFlags
	common.register(fs)
	gw.register(fs)
	setUsage(fs, "gateway [flags]             run the gateway role",
		"gateway commit [-m COMMENT]",
		"gateway clear",
		"gateway cloudserviceconfig enable|disable|settrs|register TOKEN|deregister|status [flags]")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	logger, err := common.logger(stderr)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(common.data, 0o750); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	g, err := gateway.Open(ctx, gw.options(common.data, logger, adminPassword(getenv, stdout)))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Sightline gateway %s: SMTP on %s, UI and API on http://%s/\n", version, g.SMTPAddr(), g.HTTPAddr())
	return g.Run(ctx)
}
