package esa_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/sightline/sightline/internal/console/module"
	"github.com/sightline/sightline/internal/console/module/esa"
	"github.com/sightline/sightline/internal/ctim"
	"github.com/sightline/sightline/internal/exchange/exchangeclient"
)

const pathRecords = "/api/v1/tracking/records"

// countingProxy counts the requests sent to the gateway, by path. With
// hideRecords it answers the records endpoint 404 itself, as a gateway
// without it (an AsyncOS appliance) does.
type countingProxy struct {
	p           esa.Proxy
	hideRecords bool

	mu    sync.Mutex
	calls map[string]int
}

func (c *countingProxy) Proxy(ctx context.Context, deviceID string, req exchangeclient.ProxyRequest) (exchangeclient.ProxyResponse, error) {
	c.mu.Lock()
	if c.calls == nil {
		c.calls = map[string]int{}
	}
	c.calls[req.Path]++
	c.mu.Unlock()
	if c.hideRecords && req.Path == pathRecords {
		return exchangeclient.ProxyResponse{Status: http.StatusNotFound, Body: []byte(`{"error": "Not Found."}`)}, nil
	}
	return c.p.Proxy(ctx, deviceID, req)
}

// take returns the calls counted since the last take.
func (c *countingProxy) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	calls := c.calls
	c.calls = nil
	return calls
}

func (e *env) moduleWith(t *testing.T, p esa.Proxy) module.Module {
	t.Helper()
	inst := module.Instance{ID: uuid.NewString(), Kind: module.KindESA, Name: "Gateway gw1",
		Settings: json.RawMessage(fmt.Sprintf(`{"device_id": %q, "timeframe_days": 7}`, e.deviceID))}
	m, err := esa.New(inst, p, esa.Options{GatewayURL: "https://gw.test"})
	if err != nil {
		t.Fatalf("esa.New: %v", err)
	}
	return m
}

// TestObserveRecords checks that with the gateway's records endpoint an
// observable costs one request (two for the native search's types) and
// gives exactly the sightings the AsyncOS requests give, times included.
func TestObserveRecords(t *testing.T) {
	e := startEnv(t)
	fast := &countingProxy{p: e.console}
	asyncOS := &countingProxy{p: e.console, hideRecords: true}
	withRecords, without := e.moduleWith(t, fast), e.moduleWith(t, asyncOS)
	sendInvoice(t, e.gw.SMTPAddr())

	subject := ctim.Observable{Type: "email_subject", Value: "Invoice 4471"}
	var mid string
	deadline := time.Now().Add(15 * time.Second)
	for {
		docs, errs := observe(t, withRecords, subject)
		if len(errs) > 0 {
			t.Fatalf("Observe(subject) errors: %v", errs)
		}
		// The last event, the delivery, ends the observed time.
		if len(docs) == 1 && docs[0]["title"] == "Outgoing message (Delivered)" {
			mid = docs[0]["relations"].([]any)[0].(map[string]any)["source"].(map[string]any)["value"].(string)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no delivered sighting within 15s; last answer %v", docs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	fast.take()
	if _, errs := observe(t, without, subject); len(errs) > 0 {
		t.Fatalf("Observe(subject) without records: %v", errs)
	}
	if n := asyncOS.take()[pathRecords]; n != 1 {
		t.Errorf("the module asked a gateway without records for them %d times, want once", n)
	}

	tests := []struct {
		obs  ctim.Observable
		want map[string]int // requests with the records endpoint
	}{
		{ctim.Observable{Type: "email", Value: "alice@sender.example"}, map[string]int{pathRecords: 2}}, // as sender, as recipient
		{subject, map[string]int{pathRecords: 1}},
		{ctim.Observable{Type: "email_messageid", Value: "20260110080012.4471@sender.example"}, map[string]int{pathRecords: 1}},
		{ctim.Observable{Type: "cisco_mid", Value: mid}, map[string]int{pathRecords: 1}},
		{ctim.Observable{Type: "ip", Value: "127.0.0.1"}, map[string]int{pathRecords: 1}},
		{ctim.Observable{Type: "domain", Value: "sender.example"}, map[string]int{pathRecords: 1}},
		{ctim.Observable{Type: "sha256", Value: sha256Test}, map[string]int{pathRecords: 1}},
		{ctim.Observable{Type: "file_name", Value: "invoice.pdf"}, map[string]int{pathRecords: 1}},
		{ctim.Observable{Type: "url", Value: "https://sender.example/i?x=1"}, map[string]int{"/api/v1/messages": 1, pathRecords: 1}},
		{ctim.Observable{Type: "md5", Value: "098f6bcd4621d373cade4e832627b4f6"}, map[string]int{"/api/v1/messages": 1, pathRecords: 1}},
		{ctim.Observable{Type: "hostname", Value: "localhost"}, map[string]int{"/api/v1/messages": 1, pathRecords: 1}},
	}
	for _, tt := range tests {
		t.Run(string(tt.obs.Type), func(t *testing.T) {
			got, errs := observe(t, withRecords, tt.obs)
			if len(errs) > 0 || len(got) != 1 {
				t.Fatalf("Observe(%v) with records = %d sightings, %v; want 1", tt.obs, len(got), errs)
			}
			if diff := cmp.Diff(tt.want, fast.take()); diff != "" {
				t.Errorf("Observe(%v) requests to the gateway (-want +got):\n%s", tt.obs, diff)
			}
			want, errs := observe(t, without, tt.obs)
			if len(errs) > 0 || len(want) != 1 {
				t.Fatalf("Observe(%v) without records = %d sightings, %v; want 1", tt.obs, len(want), errs)
			}
			got[0]["id"], want[0]["id"] = "<id>", "<id>"
			if diff := cmp.Diff(want[0], got[0]); diff != "" {
				t.Errorf("Observe(%v) sighting from records mismatch (-AsyncOS requests +records):\n%s", tt.obs, diff)
			}
		})
	}
	// The module remembers that the gateway has no records.
	if n := asyncOS.take()[pathRecords]; n != 0 {
		t.Errorf("the module asked a gateway without records for them again, %d times", n)
	}
}
