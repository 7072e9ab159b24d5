package console

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/console/module"
	"github.com/sightline/sightline/internal/exchange/exchangeclient"
)

// Each organisation of the console reaches the paired exchange with its
// own organisation API key, set with PUT /api/v1/exchange or on Settings >
// Devices and sealed at rest. The modules that reach devices through the
// exchange (ESA, SMA) get an OrgExchange: it sends every request with the
// key of the instance's organisation, so one organisation's modules never
// reach another's devices.

// ExchangeFactory builds a module instance of a kind that reaches its device
// through the paired exchange; exchange carries the API key of the
// instance's organisation. Like Factory, it must not do network I/O.
type ExchangeFactory func(inst module.Instance, exchange *OrgExchange) (module.Module, error)

// OrgExchange is the paired exchange as one organisation reaches it. Its
// Proxy satisfies the Proxy interface of the ESA module.
type OrgExchange struct {
	c     *Console
	orgID string
}

// OrgExchange returns the exchange as the organisation orgID reaches it.
func (c *Console) OrgExchange(orgID string) *OrgExchange { return &OrgExchange{c: c, orgID: orgID} }

// Proxy sends a request to one of the organisation's devices through the
// exchange, with the organisation's current API key.
func (x *OrgExchange) Proxy(ctx context.Context, deviceID string, req exchangeclient.ProxyRequest) (exchangeclient.ProxyResponse, error) {
	cl, err := x.c.exchangeClient(ctx, x.orgID)
	if err != nil {
		return exchangeclient.ProxyResponse{}, err
	}
	return cl.client.Proxy(ctx, deviceID, req)
}

// Devices lists the organisation's devices in the exchange.
func (x *OrgExchange) Devices(ctx context.Context) (exchangeclient.Devices, error) {
	return x.c.exchangeDevices(ctx, x.orgID)
}

// orgClientTTL is how long an organisation's exchange client is used
// before its key is read again: a key changed through another replica
// takes effect within it (through this one, at once).
const orgClientTTL = 5 * time.Second

// orgClient is the exchange client of one organisation, with the sealed
// key it was made from.
type orgClient struct {
	client *exchangeclient.Client
	org    string // the organisation's name
	sealed string
	read   time.Time
}

// orgClients caches the organisations' exchange clients.
type orgClients struct {
	mu sync.Mutex
	m  map[string]orgClient
}

func (oc *orgClients) get(orgID string) (orgClient, bool) {
	oc.mu.Lock()
	defer oc.mu.Unlock()
	cl, ok := oc.m[orgID]
	return cl, ok
}

func (oc *orgClients) put(orgID string, cl orgClient) {
	oc.mu.Lock()
	defer oc.mu.Unlock()
	if oc.m == nil {
		oc.m = map[string]orgClient{}
	}
	oc.m[orgID] = cl
}

func (oc *orgClients) forget(orgID string) {
	oc.mu.Lock()
	defer oc.mu.Unlock()
	delete(oc.m, orgID)
}

// exchangeClient returns the exchange client of the organisation, made
// with its API key.
func (c *Console) exchangeClient(ctx context.Context, orgID string) (orgClient, error) {
	if c.opts.ExchangeURL == "" {
		return orgClient{}, sightline.Errorf(sightline.Unavailable, "this console is not paired with an exchange: start it with the exchange's URL")
	}
	cached, ok := c.orgClients.get(orgID)
	if ok && time.Since(cached.read) < orgClientTTL {
		return cached, nil
	}
	org, err := c.store.Organisation(ctx, orgID)
	if err != nil {
		return orgClient{}, fmt.Errorf("organisation %s: %w", orgID, err)
	}
	if org.ExchangeKey == "" {
		c.orgClients.forget(orgID)
		return orgClient{}, sightline.Errorf(sightline.Invalid,
			"organisation %s has no exchange API key: create one in the exchange under API Keys and set it under Settings > Devices (or with PUT /api/v1/exchange)", org.Name)
	}
	if ok && cached.sealed == org.ExchangeKey {
		cached.read, cached.org = time.Now(), org.Name
		c.orgClients.put(orgID, cached)
		return cached, nil
	}
	key, err := c.seal.open(org.ExchangeKey, adExchangeKey(orgID))
	if err != nil {
		return orgClient{}, err
	}
	cl := orgClient{client: exchangeclient.NewKey(c.opts.ExchangeURL, c.hc, key), org: org.Name, sealed: org.ExchangeKey, read: time.Now()}
	c.orgClients.put(orgID, cl)
	return cl, nil
}

// setExchangeKey stores the organisation's exchange API key, sealed; its
// modules use it from their next request.
func (c *Console) setExchangeKey(ctx context.Context, orgID, key string) error {
	if key == "" || len(key) > 1024 {
		return sightline.Errorf(sightline.Invalid, "api_key: want the organisation API key the exchange created (1 to 1024 characters)")
	}
	if err := c.store.SetExchangeKey(ctx, orgID, c.seal.seal(key, adExchangeKey(orgID))); err != nil {
		return fmt.Errorf("set exchange key: %w", err)
	}
	c.orgClients.forget(orgID)
	return nil
}

// ExchangeStatus is the answer of GET /api/v1/exchange: the key itself is
// write-only.
type ExchangeStatus struct {
	URL       string `json:"url"`         // the paired exchange; "" when none
	KeyIsSet  bool   `json:"api_key_set"` // the organisation has an API key
	Reachable bool   `json:"reachable"`   // the exchange accepted the key just now
	// ThreatResponse is whether the organisation has Threat Response on
	// in the exchange (false when not reachable).
	ThreatResponse bool   `json:"threat_response"`
	Problem        string `json:"problem,omitempty"` // why it is not reachable
}

// exchangeStatus checks the organisation's exchange key against the
// exchange.
func (c *Console) exchangeStatus(ctx context.Context, orgID string) (ExchangeStatus, error) {
	org, err := c.store.Organisation(ctx, orgID)
	if err != nil {
		return ExchangeStatus{}, fmt.Errorf("organisation %s: %w", orgID, err)
	}
	st := ExchangeStatus{URL: c.opts.ExchangeURL, KeyIsSet: org.ExchangeKey != ""}
	devs, err := c.exchangeDevices(ctx, orgID)
	switch k := sightline.ErrorKind(err); k {
	case "":
		st.Reachable, st.ThreatResponse = true, devs.ThreatResponse
	case sightline.Invalid, sightline.Unavailable:
		st.Problem = sightline.ErrorMessage(err)
	default:
		return st, err
	}
	return st, nil
}

func (c *Console) apiExchange(w http.ResponseWriter, r *http.Request, p principal) error {
	st, err := c.exchangeStatus(r.Context(), p.orgID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}
