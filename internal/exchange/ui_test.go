package exchange

import (
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sightline/sightline/internal/exchange/registry"
)

var csrfRE = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// browser is an HTTP client with cookies that remembers the last form token.
type browser struct {
	t    *testing.T
	c    *http.Client
	base string
	csrf string
}

func newBrowser(t *testing.T, base string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, c: &http.Client{Jar: jar}, base: base}
}

func (b *browser) do(method, path string, form url.Values) (int, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		form.Set("csrf_token", b.csrf)
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, b.base+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", b.base)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	page := string(raw)
	if m := csrfRE.FindStringSubmatch(page); m != nil {
		b.csrf = html.UnescapeString(m[1])
	}
	return resp.StatusCode, page
}

func TestUI(t *testing.T) {
	t.Parallel()
	x := startExchange(t, nil)
	b := newBrowser(t, x.url)

	// Anonymous: sent to the sign-in page, and a bad passphrase is refused.
	if _, page := b.do("GET", "/devices", nil); !strings.Contains(page, `name="passphrase"`) {
		t.Fatalf("GET /devices signed out: want the sign-in form, got:\n%s", page)
	}
	if status, page := b.do("POST", "/login", url.Values{"username": {"admin"}, "passphrase": {"wrong"}, "next": {"/devices"}}); status != http.StatusUnauthorized || !strings.Contains(page, "Invalid username or passphrase.") {
		t.Errorf("sign-in with a wrong passphrase = %d, want 401 with the message", status)
	}
	status, page := b.do("POST", "/login", url.Values{"username": {"admin"}, "passphrase": {adminPass}, "next": {"/devices"}})
	if status != http.StatusOK || !strings.Contains(page, "Devices for Default") || !strings.Contains(page, "Add Devices and Generate Tokens") {
		t.Fatalf("sign-in = %d, want the Devices page, got:\n%s", status, page)
	}
	for _, label := range []string{"Cloud Services", "Audit Log", "Threat Response is not enabled for organisation Default"} {
		if !strings.Contains(page, label) {
			t.Errorf("Devices page lacks %q", label)
		}
	}

	// Add Devices and Generate Tokens: the form offers exactly the seed's choices.
	_, page = b.do("GET", "/devices/add", nil)
	for _, want := range []string{`name="devices" min="1" max="100" value="1"`, `<option value="1h" selected>1 hour</option>`,
		`<option value="12h">12 hours</option>`, `<option value="5d">5 days</option>`, "Continue"} {
		if !strings.Contains(page, want) {
			t.Errorf("Add Devices page lacks %s", want)
		}
	}
	if got := strings.Count(page, "<option "); got != 11 {
		t.Errorf("Add Devices page has %d expiry options, want 11", got)
	}
	if status, page := b.do("POST", "/devices/add", url.Values{"devices": {"101"}, "expiry": {"1h"}}); status != http.StatusBadRequest || !strings.Contains(page, "choose from 1 to 100") {
		t.Errorf("POST /devices/add 101 devices = %d, want 400 naming the range", status)
	}
	status, page = b.do("POST", "/devices/add", url.Values{"devices": {"2"}, "expiry": {"4h"}})
	m := regexp.MustCompile(`id="token" class="mono" value="([0-9a-f]{32})"`).FindStringSubmatch(page)
	if status != http.StatusCreated || m == nil || !strings.Contains(page, "Copy to Clipboard") || !strings.Contains(page, `data-copy-from="token"`) {
		t.Fatalf("POST /devices/add = %d, want 201 with the token and a copy button, got:\n%s", status, page)
	}
	token := m[1]
	if _, page := b.do("GET", "/tokens", nil); strings.Contains(page, token) || !strings.Contains(page, "2 of 2") {
		t.Errorf("Tokens page: want the token listed with 2 of 2 remaining and never shown again")
	}

	// The token registers a device, listed with its details.
	reg := x.register(t, token, "esa1.example.com")
	_, page = b.do("GET", "/devices?q=esa1", nil)
	for _, want := range []string{"esa1.example.com", reg.DeviceID, "127.0.0.1", "Registered", "1.2.0", "0 selected"} {
		if !strings.Contains(page, want) {
			t.Errorf("Devices page lacks %q", want)
		}
	}
	if _, page := b.do("GET", "/devices?q=nomatch", nil); !strings.Contains(page, "No device matches") {
		t.Errorf("Devices search for nomatch: want the empty message")
	}

	// Edit, Cloud Services, Delete, and the audit log of it all.
	if _, page := b.do("POST", "/devices/"+reg.DeviceID+"/edit", url.Values{"name": {"mail gateway"}, "description": {"lab"}}); !strings.Contains(page, "mail gateway") {
		t.Errorf("after edit: Devices page lacks the new name")
	}
	if _, page := b.do("POST", "/cloud-services", url.Values{"threat_response": {"on"}}); !strings.Contains(page, "Threat Response is enabled") {
		t.Errorf("after enabling: want the success banner")
	}
	if org := x.org(t, "Default"); !org.ThreatResponse {
		t.Errorf("organisation Threat Response = false after enabling in the UI")
	}
	if _, page := b.do("POST", "/devices/delete", url.Values{"id": {reg.DeviceID}}); !strings.Contains(page, "1 device deleted") {
		t.Errorf("after delete: want the success banner")
	}
	_, page = b.do("GET", "/audit", nil)
	for _, action := range []string{registry.ActionTokenCreate, registry.ActionRegister, registry.ActionDeviceEdit,
		registry.ActionCloudServices, registry.ActionDeviceDelete} {
		if !strings.Contains(page, action) {
			t.Errorf("Audit Log lacks %s", action)
		}
	}

	// A form without its token is refused.
	b.csrf = "forged"
	if status, _ := b.do("POST", "/cloud-services", url.Values{}); status != http.StatusForbidden {
		t.Errorf("POST /cloud-services with a forged form token = %d, want 403", status)
	}
	if org := x.org(t, "Default"); !org.ThreatResponse {
		t.Errorf("a forged form changed the Threat Response switch")
	}
}

// auditRows returns the cells of the Audit Log table's rows, as text.
func auditRows(page string) [][]string {
	body, _, _ := strings.Cut(page, "</tbody>")
	_, body, _ = strings.Cut(body, "<tbody>")
	tag := regexp.MustCompile(`<[^>]+>`)
	var rows [][]string
	for _, tr := range regexp.MustCompile(`(?s)<tr>(.*?)</tr>`).FindAllStringSubmatch(body, -1) {
		var cells []string
		for _, td := range regexp.MustCompile(`(?s)<td[^>]*>(.*?)</td>`).FindAllStringSubmatch(tr[1], -1) {
			cells = append(cells, html.UnescapeString(strings.TrimSpace(tag.ReplaceAllString(td[1], ""))))
		}
		rows = append(rows, cells)
	}
	return rows
}

// TestUIAudit: the Audit Log page shows each entry's reason code, filters
// by action and outcome, and pages, through the same query as the API.
func TestUIAudit(t *testing.T) {
	t.Parallel()
	x := startExchange(t, nil)
	ctx := t.Context()
	a := x.token(t, 1)
	b := x.token(t, 1)
	if err := x.admin.TokenRevoke(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	for _, token := range []string{b.Token, strings.Repeat("0", 32), "not-a-token"} {
		if _, err := x.anon.Register(ctx, registration(token, "gw-refused")); err == nil {
			t.Fatalf("Register(%s) succeeded, want a refusal", token)
		}
	}
	x.register(t, a.Token, "gw1")

	br := newBrowser(t, x.url)
	br.do("GET", "/audit", nil) // the sign-in form
	if status, _ := br.do("POST", "/login", url.Values{"username": {"admin"}, "passphrase": {adminPass}, "next": {"/audit"}}); status != http.StatusOK {
		t.Fatalf("sign-in = %d, want 200", status)
	}
	// columns: time, actor, source, action, target, outcome, reason, detail
	summary := func(rows [][]string) []string {
		var out []string
		for _, r := range rows {
			if len(r) != 8 {
				t.Fatalf("Audit Log row %q has %d cells, want 8", r, len(r))
			}
			out = append(out, strings.TrimSpace(r[3]+" "+r[5]+" "+r[6]))
		}
		return out
	}
	all := []string{
		"device.register success",
		"device.register failure token_malformed",
		"device.register failure token_unknown",
		"device.register failure token_revoked",
		"token.revoke success",
		"token.create success",
		"token.create success",
	}
	tests := []struct {
		query string
		want  []string
	}{
		{"", all},
		{"?outcome=failure", all[1:4]},
		{"?action=token.create", all[5:]},
		{"?action=device.register&outcome=success", all[:1]},
		{"?action=device.delete", nil},
	}
	for _, tt := range tests {
		t.Run("filter"+tt.query, func(t *testing.T) {
			status, page := br.do("GET", "/audit"+tt.query, nil)
			if status != http.StatusOK {
				t.Fatalf("GET /audit%s = %d, want 200", tt.query, status)
			}
			if diff := cmp.Diff(tt.want, summary(auditRows(page))); diff != "" {
				t.Errorf("GET /audit%s rows mismatch (-want +got):\n%s", tt.query, diff)
			}
			for _, want := range []string{`<th scope="col">Reason</th>`, `<select id="action" name="action">`, `<select id="outcome" name="outcome">`} {
				if tt.want == nil && strings.HasPrefix(want, "<th") {
					continue // no table
				}
				if !strings.Contains(page, want) {
					t.Errorf("GET /audit%s lacks %s", tt.query, want)
				}
			}
		})
	}
	if _, page := br.do("GET", "/audit?outcome=failure", nil); !strings.Contains(page, `<option value="failure" selected>failure</option>`) {
		t.Errorf("GET /audit?outcome=failure: want the outcome filter showing failure")
	}
	// Filters the form does not show are kept in it.
	if _, page := br.do("GET", "/audit?device=gw1", nil); !strings.Contains(page, `<input type="hidden" name="device" value="gw1">`) ||
		!cmp.Equal(summary(auditRows(page)), all[:1]) {
		t.Errorf("GET /audit?device=gw1: want gw1's registration only and the device kept in the form, got rows %q", summary(auditRows(page)))
	}
	if _, page := br.do("GET", "/audit?action=device.delete", nil); !strings.Contains(page, "No event matches these filters.") {
		t.Errorf("GET /audit?action=device.delete: want the no-match message")
	}

	// Pages of 3 by the Older link, back by Newest.
	older := regexp.MustCompile(`href="([^"]+)" rel="next">Older<`)
	var walked []string
	path := "/audit?limit=3"
	for pages := 0; path != ""; pages++ {
		if pages == 5 {
			t.Fatalf("more than 4 pages of 3 for %d entries", len(all))
		}
		_, page := br.do("GET", path, nil)
		walked = append(walked, summary(auditRows(page))...)
		if pages > 0 && !strings.Contains(page, `href="/audit?limit=3" rel="first">Newest<`) {
			t.Errorf("GET %s lacks the Newest link", path)
		}
		path = ""
		if m := older.FindStringSubmatch(page); m != nil {
			path = html.UnescapeString(m[1])
		}
	}
	if diff := cmp.Diff(all, walked); diff != "" {
		t.Errorf("walking the Audit Log by Older mismatch (-want +got):\n%s", diff)
	}

	if status, page := br.do("GET", "/audit?outcome=maybe", nil); status != http.StatusBadRequest || !strings.Contains(page, "want success or failure") {
		t.Errorf("GET /audit?outcome=maybe = %d, want 400 naming the choices", status)
	}
}
