package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/sightline/sightline/internal/gateway"
	"github.com/sightline/sightline/internal/gateway/connector"
)

// The AsyncOS texts the CLI prints (gateway-api.md §10 and §11).
const (
	textRegistered = "Your appliance is successfully registered with Cisco Threat Response."
	textFailedCLI  = connector.TextFailed + " key"
)

// gatewayClientFlags are how a CLI command reaches a running gateway.
func gatewayClientFlags(fs *flag.FlagSet) (*clientFlags, *string) {
	var c clientFlags
	c.register(fs)
	url := fs.String("gateway", "http://127.0.0.1:6080", "gateway `URL`")
	return &c, url
}

func runGatewayCommit(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) error {
	fs := newFlagSet("gateway commit", stderr)
	client, url := gatewayClientFlags(fs)
	comment := fs.String("m", "", "`comment` describing the changes")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	if err := client.resolve(getenv); err != nil {
		return err
	}
	body, err := callAPI(ctx, http.MethodPost, *url, "/api/v1/config/commit", map[string]string{"comment": *comment}, *client)
	var ge apiError
	if errors.As(err, &ge) && ge.status == http.StatusConflict {
		fmt.Fprintln(stdout, ge.message) // "There is no data to commit."
		return nil
	}
	if err != nil {
		return err
	}
	var c gateway.CommitResult
	if err := json.Unmarshal(body, &c); err != nil {
		return fmt.Errorf("gateway answer: %w", err)
	}
	fmt.Fprintf(stdout, "Changes committed: %s\n", c.CommittedAt.UTC().Format("Mon Jan 2 15:04:05 2006 MST"))
	return nil
}

func runGatewayClear(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) error {
	fs := newFlagSet("gateway clear", stderr)
	client, url := gatewayClientFlags(fs)
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	if err := client.resolve(getenv); err != nil {
		return err
	}
	body, err := callAPI(ctx, http.MethodPost, *url, "/api/v1/config/clear", struct{}{}, *client)
	if err != nil {
		return err
	}
	var out struct{ Cleared bool }
	if err := json.Unmarshal(body, &out); err != nil {
		return fmt.Errorf("gateway answer: %w", err)
	}
	if out.Cleared {
		fmt.Fprintln(stdout, "Your changes have been cleared.")
	} else {
		fmt.Fprintln(stdout, "No changes have been made")
	}
	return nil
}

// runCloudServiceConfig is AsyncOS's cloudserviceconfig, one verb per call.
func runCloudServiceConfig(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) error {
	const usage = "usage: sightline gateway cloudserviceconfig enable|disable|settrs|register TOKEN|deregister|status [flags]"
	if len(args) == 0 {
		return usageError(usage)
	}
	verb := strings.ToLower(args[0])
	fs := newFlagSet("gateway cloudserviceconfig "+verb, stderr)
	client, url := gatewayClientFlags(fs)
	server := fs.String("server", "AMERICAS", "Threat Response Server `region` (enable, settrs)")
	wait := fs.Duration("wait", 120*time.Second, "how long register waits for the outcome")
	rest := args[1:]
	var token string
	if verb == "register" {
		if len(rest) == 0 || strings.HasPrefix(rest[0], "-") {
			return usageError("usage: sightline gateway cloudserviceconfig register TOKEN")
		}
		token, rest = rest[0], rest[1:]
	}
	if err := parseFlags(fs, rest, getenv); err != nil {
		return err
	}
	if err := client.resolve(getenv); err != nil {
		return err
	}
	call := func(method, path string, in any) (gateway.CloudStatus, error) {
		var st gateway.CloudStatus
		body, err := callAPI(ctx, method, *url, path, in, *client)
		if err != nil {
			return st, err
		}
		return st, json.Unmarshal(body, &st)
	}
	switch verb {
	case "enable", "settrs":
		in := map[string]any{"server": strings.ToUpper(*server)}
		if verb == "enable" {
			in["threat_response"] = true
		}
		st, err := call(http.MethodPut, "/api/v1/cloud", in)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Threat Response %s, server %s. Commit to apply: sightline gateway commit -m \"…\"\n",
			map[bool]string{true: "enabled", false: "disabled"}[st.ThreatResponse], st.Server)
	case "disable":
		if _, err := call(http.MethodPut, "/api/v1/cloud", map[string]any{"threat_response": false}); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "The Cisco Cloud Service is currently disabled on your appliance. Commit to apply: sightline gateway commit -m \"…\"")
	case "status":
		st, err := call(http.MethodGet, "/api/v1/cloud", nil)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, describeCloud(st))
	case "register":
		st, err := call(http.MethodPost, "/api/v1/cloud/register", map[string]string{"token": token})
		if err != nil {
			return err
		}
		deadline := time.Now().Add(*wait)
		for st.State == connector.InProgress && time.Now().Before(deadline) {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(500 * time.Millisecond):
			}
			if st, err = call(http.MethodGet, "/api/v1/cloud", nil); err != nil {
				return err
			}
		}
		switch st.State {
		case connector.Registered:
			fmt.Fprintf(stdout, "%s Device ID: %s\n", textRegistered, st.DeviceID)
		case connector.InProgress:
			return fmt.Errorf("registration still in progress after %s: check with 'sightline gateway cloudserviceconfig status'", *wait)
		default:
			msg := textFailedCLI
			if st.Message != "" && st.Message != connector.TextFailed {
				msg = st.Message
			}
			return errors.New(msg)
		}
	case "deregister":
		st, err := call(http.MethodPost, "/api/v1/cloud/deregister", struct{}{})
		if err != nil {
			return err
		}
		deadline := time.Now().Add(*wait)
		for st.State == connector.InProgress && time.Now().Before(deadline) {
			time.Sleep(500 * time.Millisecond)
			if st, err = call(http.MethodGet, "/api/v1/cloud", nil); err != nil {
				return err
			}
		}
		fmt.Fprintln(stdout, describeCloud(st))
	default:
		return usageError(fmt.Sprintf("unknown verb %q; %s", args[0], usage))
	}
	return nil
}

// describeCloud puts the cloud service state in words, AsyncOS style.
func describeCloud(st gateway.CloudStatus) string {
	var s string
	switch st.State {
	case connector.Disabled:
		s = "The Cisco Cloud Service is currently disabled on your appliance."
	case connector.Busy:
		s = connector.TextBusy
	case connector.Enabled:
		s = "Threat Response is enabled on " + st.Server + ": the appliance awaits a registration token."
	case connector.InProgress:
		s = connector.TextInProgress
	case connector.Registered:
		s = textRegistered + " Device ID: " + st.DeviceID
		if !st.TunnelConnected {
			s += " (tunnel to the exchange down)"
		}
	case connector.Failed:
		s = connector.TextFailed
	default:
		s = "State " + st.State
	}
	if st.Message != "" && !strings.Contains(s, st.Message) {
		s += "\n" + st.Message
	}
	if st.LastError != "" && st.LastError != st.Message {
		s += "\nLast error: " + st.LastError
	}
	if st.Pending {
		s += "\nYou have uncommitted changes: sightline gateway commit -m \"…\" applies them."
	}
	return s
}
