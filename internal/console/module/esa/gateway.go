package esa

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/console/module"
	"github.com/sightline/sightline/internal/exchange/exchangeclient"
)

// Gateway API paths the module calls (gateway-api.md §2, §5, §7;
// search-and-bench.md §A.4).
const (
	pathPrivileges = "/esa/api/v2.0/login/privileges"
	pathMessages   = "/esa/api/v2.0/message-tracking/messages"
	pathDetails    = "/esa/api/v2.0/message-tracking/details"
	pathSearch     = "/api/v1/messages"
)

// Error codes and types of relay-api.md §3.
const (
	codeAuthorization    = "authorization error"
	codeInvalidArgument  = "invalid argument"
	codePermissionDenied = "permission denied"
	codeNotFound         = "not found"
	codeTooManyRequests  = "too many requests"
	codeServerDown       = "web server is down"
	codeUnavailable      = "service unavailable"
	codeInternal         = "internal error"
	codeUnknown          = "unknown"

	typeFatal   = "fatal"
	typeWarning = "warning"
)

// gatewayError is a non-200 answer of the gateway: its status and the
// message of its AsyncOS error body (or the status text).
type gatewayError struct {
	Path    string
	Status  int
	Message string
}

func (e *gatewayError) Error() string {
	return fmt.Sprintf("gateway GET %s: %d %s", e.Path, e.Status, e.Message)
}

// get sends GET path?q to the gateway through the exchange, with no
// credentials of its own (the gateway trusts requests from its tunnel), and
// decodes a 200 JSON answer into out. Any other answer is a *gatewayError;
// a failure of the exchange is its *sightline.Error.
func (m *esaModule) get(ctx context.Context, path string, q url.Values, out any) error {
	req := exchangeclient.ProxyRequest{Method: http.MethodGet, Path: path, Query: q.Encode(),
		Headers: http.Header{"Accept": {"application/json"}}}
	resp, err := m.proxy.Proxy(ctx, m.settings.DeviceID, req)
	if err != nil {
		return fmt.Errorf("proxy GET %s: %w", path, err)
	}
	if resp.Status != http.StatusOK {
		return &gatewayError{Path: path, Status: resp.Status, Message: asyncOSMessage(resp)}
	}
	if err := json.Unmarshal(resp.Body, out); err != nil {
		return &gatewayError{Path: path, Status: http.StatusBadGateway, Message: "the answer is not the JSON expected: " + err.Error()}
	}
	return nil
}

// asyncOSMessage returns the message of an AsyncOS error body
// {"error": {"message": …}}, else of a native one {"error": "…"}, else the
// status text.
func asyncOSMessage(resp exchangeclient.ProxyResponse) string {
	var asyncOS struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(resp.Body, &asyncOS) == nil && asyncOS.Error.Message != "" {
		return asyncOS.Error.Message
	}
	var native struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(resp.Body, &native) == nil && native.Error != "" {
		return native.Error
	}
	return http.StatusText(resp.Status)
}

// statusCodes maps a gateway's HTTP status to the relay error code.
var statusCodes = map[int]string{
	http.StatusBadRequest:          codeInvalidArgument,
	http.StatusUnauthorized:        codeAuthorization,
	http.StatusForbidden:           codePermissionDenied,
	http.StatusNotFound:            codeNotFound,
	http.StatusTooManyRequests:     codeTooManyRequests,
	http.StatusInternalServerError: codeInternal,
	http.StatusBadGateway:          codeUnknown,
	http.StatusServiceUnavailable:  codeUnavailable,
	http.StatusGatewayTimeout:      codeUnavailable,
}

// exchangeCodes maps the kind of an exchange error to the relay error code.
var exchangeCodes = map[sightline.Kind]string{
	sightline.Unauthorized: codeAuthorization,
	sightline.Forbidden:    codePermissionDenied,
	sightline.NotFound:     codeNotFound,
	sightline.Unavailable:  codeUnavailable,
	sightline.Invalid:      codeInvalidArgument,
	sightline.Conflict:     codeUnknown,
	sightline.Internal:     codeUnknown,
}

// moduleError explains a failed gateway call as the relay error the
// console shows, naming what to check.
func (m *esaModule) moduleError(ctx context.Context, err error) module.Error {
	e := module.Error{Type: typeFatal, Code: codeUnknown}
	var ge *gatewayError
	var ue *url.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil:
		e.Code = codeUnavailable
		e.Message = "The gateway did not answer before the module's deadline."
	case errors.As(err, &ge):
		if c, ok := statusCodes[ge.Status]; ok {
			e.Code = c
		} else if ge.Status >= 500 {
			e.Code = codeInternal
		}
		e.Message = fmt.Sprintf("The gateway answered %s with %d: %s", ge.Path, ge.Status, ge.Message)
		if e.Code == codeAuthorization {
			e.Message = "Authorization failed: " + e.Message + " (the gateway must trust requests from its exchange tunnel)"
		}
	case errors.As(err, &ue):
		// The exchange itself cannot be reached.
		e.Code = codeServerDown
		e.Message = "The exchange cannot be reached: " + sightline.ErrorMessage(err)
	default:
		kind := sightline.ErrorKind(err)
		e.Code = exchangeCodes[kind]
		msg := sightline.ErrorMessage(err)
		switch kind {
		case sightline.Unauthorized:
			e.Message = "Authorization failed: the exchange refused the console's API key: " + msg
		case sightline.Forbidden:
			e.Message = "The exchange refused to reach the gateway: " + msg
		case sightline.NotFound:
			e.Message = fmt.Sprintf("Device %s is not registered with this exchange: check the module's Registered Device and that the console uses the device's region. (%s)",
				m.settings.DeviceID, msg)
		case sightline.Unavailable:
			e.Message = msg
		default:
			e.Message = "The gateway could not be asked: " + msg
		}
	}
	return e
}
