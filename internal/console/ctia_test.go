package console

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/ctim"
)

func sighting(value, title string) map[string]any {
	return map[string]any{"observed_time": map[string]string{"start_time": "2026-01-10T07:00:00.000Z"}, "title": title,
		"source": "gateway", "observables": []map[string]string{{"type": "ip", "value": value}}, "severity": "Low"}
}

func TestCTIACRUD(t *testing.T) {
	tc := startConsole(t, nil)
	tok := tc.token(t, tc.org.ID, "private-intel")

	status, body, hdr := tc.call(t, http.MethodPost, "/ctia/sighting?wait_for=true", tok, sighting("203.0.113.25", "Phish one"))
	if status != 201 {
		t.Fatalf("POST sighting = %d %s", status, body)
	}
	s := decode[ctim.Sighting](t, body)
	wantPrefix := "http://" + strings.Replace(tc.Addr(), "127.0.0.1", "127.0.0.1", 1) + "/ctia/sighting/sighting-"
	if !strings.HasPrefix(s.ID, wantPrefix) || hdr.Get("Location") != s.ID || s.Count != 1 || s.Confidence != "Unknown" ||
		s.TLP != "green" || s.Owner == "" || len(s.Groups) != 1 || s.Groups[0] != tc.org.ID || s.SchemaVersion != ctim.SchemaVersion {
		t.Errorf("stored sighting = %s", body)
	}
	id, _ := ctim.ParseID(s.ID)

	// Read by short and by escaped long id.
	for _, path := range []string{"/ctia/sighting/" + id.Short, "/ctia/sighting/" + url.PathEscape(s.ID)} {
		if status, body, _ := tc.call(t, http.MethodGet, path, tok, nil); status != 200 || !strings.Contains(string(body), id.Short) {
			t.Errorf("GET %s = %d %s", path, status, body)
		}
	}
	// Validation and closed schemas.
	bad := sighting("1.2.3.4", "x")
	delete(bad, "observed_time")
	status, body, _ = tc.call(t, http.MethodPost, "/ctia/sighting", tok, bad)
	if status != 400 || !strings.Contains(string(body), `{"errors":{"observed_time.start_time":"missing-required-key"}}`) {
		t.Errorf("POST sighting without observed_time = %d %s", status, body)
	}
	bad = sighting("1.2.3.4", "x")
	bad["colour"] = "red"
	if status, body, _ := tc.call(t, http.MethodPost, "/ctia/sighting", tok, bad); status != 400 || !strings.Contains(string(body), `"colour":"disallowed-key"`) {
		t.Errorf("POST sighting with an unknown key = %d %s", status, body)
	}
	if status, _, _ := tc.call(t, http.MethodPost, "/ctia/actor", tok, map[string]any{}); status != 404 {
		t.Errorf("POST /ctia/actor = %d, want 404", status)
	}
	// PUT replaces and keeps owner and created.
	tc.clock.Add(time.Minute)
	status, body, _ = tc.call(t, http.MethodPut, "/ctia/sighting/"+id.Short, tok, sighting("203.0.113.25", "Phish renamed"))
	put := decode[ctim.Sighting](t, body)
	if status != 200 || put.Title != "Phish renamed" || put.Created != s.Created || put.Owner != s.Owner || !put.Modified.After(s.Modified.Time) {
		t.Errorf("PUT = %d %s", status, body)
	}
	// Search with paging headers and a query.
	for i := range 3 {
		tc.call(t, http.MethodPost, "/ctia/sighting", tok, sighting("198.51.100."+string(rune('1'+i)), "Other"))
	}
	status, body, hdr = tc.call(t, http.MethodGet, "/ctia/sighting/search?limit=2&sort_by=title:desc", tok, nil)
	page := decode[[]ctim.Sighting](t, body)
	if status != 200 || len(page) != 2 || hdr.Get("X-Total-Hits") != "4" || hdr.Get("X-Next") != "limit=2&offset=2" || page[0].Title != "Phish renamed" {
		t.Errorf("search page 1 = %d %s %v", status, body, hdr)
	}
	_, _, hdr = tc.call(t, http.MethodGet, "/ctia/sighting/search?limit=2&offset=2", tok, nil)
	if hdr.Get("X-Next") != "" || hdr.Get("X-Previous") != "limit=2&offset=0" {
		t.Errorf("search page 2 headers = %v", hdr)
	}
	tests := []struct {
		query string
		want  string
	}{
		{"query=phish", "1"},
		{"query=" + url.QueryEscape(`title:"Phish renamed"`), "1"},
		{"observables.value=203.0.113.25&observables.type=ip", "1"},
		{"query=Other+source:gateway", "3"},
		{"from=2026-01-10T07:30:00Z", "0"},
	}
	for _, tt := range tests {
		status, body, _ := tc.call(t, http.MethodGet, "/ctia/sighting/search/count?"+tt.query, tok, nil)
		if status != 200 || strings.TrimSpace(string(body)) != tt.want {
			t.Errorf("count?%s = %d %s, want %s", tt.query, status, body, tt.want)
		}
	}
	if status, body, _ := tc.call(t, http.MethodGet, "/ctia/sighting/search?query="+url.QueryEscape("a OR b"), tok, nil); status != 400 {
		t.Errorf("search with OR = %d %s, want 400", status, body)
	}
	// Delete.
	if status, _, _ := tc.call(t, http.MethodDelete, "/ctia/sighting/"+id.Short, tok, nil); status != 204 {
		t.Errorf("DELETE = %d, want 204", status)
	}
	status, body, _ = tc.call(t, http.MethodGet, "/ctia/sighting/"+id.Short, tok, nil)
	if status != 404 || strings.TrimSpace(string(body)) != `{"message":"Sighting not found"}` {
		t.Errorf("GET deleted = %d %s", status, body)
	}
}

func TestCTIAVerdictAndIncident(t *testing.T) {
	tc := startConsole(t, nil)
	tok := tc.token(t, tc.org.ID, "private-intel")
	judge := func(disp, prio int) ctim.Judgement {
		status, body, _ := tc.call(t, http.MethodPost, "/ctia/judgement", tok, map[string]any{
			"observable": map[string]string{"type": "ip", "value": "10.0.0.1"}, "source": "s", "disposition": disp,
			"priority": prio, "confidence": "High", "severity": "High"})
		if status != 201 {
			t.Fatalf("POST judgement = %d %s", status, body)
		}
		return decode[ctim.Judgement](t, body)
	}
	if status, body, _ := tc.call(t, http.MethodGet, "/ctia/ip/10.0.0.1/verdict", tok, nil); status != 404 ||
		!strings.Contains(string(body), "no verdict currently available for the supplied observable") {
		t.Errorf("verdict with no judgement = %d %s", status, body)
	}
	judge(1, 50)
	high := judge(2, 90)
	status, body, _ := tc.call(t, http.MethodGet, "/ctia/ip/10.0.0.1/verdict", tok, nil)
	v := decode[ctim.Verdict](t, body)
	if status != 200 || v.Disposition != ctim.Malicious || v.JudgementID != high.ID {
		t.Errorf("verdict = %d %s, want Malicious from the priority-90 judgement", status, body)
	}
	hid, _ := ctim.ParseID(high.ID)
	if status, body, _ := tc.call(t, http.MethodPost, "/ctia/judgement/"+hid.Short+"/expire", tok, nil); status != 200 {
		t.Fatalf("expire = %d %s", status, body)
	}
	tc.clock.Add(time.Millisecond)
	status, body, _ = tc.call(t, http.MethodGet, "/ctia/ip/10.0.0.1/verdict", tok, nil)
	if v := decode[ctim.Verdict](t, body); status != 200 || v.Disposition != ctim.Clean {
		t.Errorf("verdict after expiry = %d %s, want Clean", status, body)
	}
	status, body, _ = tc.call(t, http.MethodGet, "/ctia/ip/10.0.0.1/judgements", tok, nil)
	if js := decode[[]ctim.Judgement](t, body); status != 200 || len(js) != 2 {
		t.Errorf("judgements of 10.0.0.1 = %d %s", status, body)
	}

	// Incidents: status stamping, PATCH.
	status, body, _ = tc.call(t, http.MethodPost, "/ctia/incident", tok, map[string]any{"title": "Phish wave",
		"confidence": "High", "status": "New", "incident_time": map[string]string{"opened": "2026-01-10T07:00:00.000Z"}})
	if status != 201 {
		t.Fatalf("POST incident = %d %s", status, body)
	}
	inc := decode[ctim.Incident](t, body)
	iid, _ := ctim.ParseID(inc.ID)
	tc.clock.Add(time.Hour)
	tok = tc.token(t, tc.org.ID, "private-intel") // the first one has expired
	status, body, _ = tc.call(t, http.MethodPost, "/ctia/incident/"+iid.Short+"/status", tok, map[string]string{"status": "Open: Contained"})
	inc = decode[ctim.Incident](t, body)
	now := ctim.NewTime(tc.clock.Now())
	if status != 200 || inc.Status != "Open: Contained" || inc.IncidentTime.Opened != now || inc.IncidentTime.Contained != now {
		t.Errorf("status Open: Contained = %d %s, want opened and contained at %s", status, body, now)
	}
	tc.clock.Add(time.Hour)
	tok = tc.token(t, tc.org.ID, "private-intel")
	status, body, _ = tc.call(t, http.MethodPatch, "/ctia/incident/"+iid.Short, tok, map[string]any{"status": "Open: Recovered", "title": nil})
	patched := decode[ctim.Incident](t, body)
	if status != 200 || patched.IncidentTime.Opened != now || patched.Title != "" || patched.Status != "Open: Recovered" {
		t.Errorf("PATCH = %d %s, want the first opened stamp kept and the title removed", status, body)
	}
	if status, body, _ := tc.call(t, http.MethodPost, "/ctia/incident/"+iid.Short+"/status", tok, map[string]string{"status": "Done"}); status != 400 ||
		!strings.Contains(string(body), `"status"`) {
		t.Errorf("bad status = %d %s, want 400", status, body)
	}
}

func TestCasebookSnapshot(t *testing.T) {
	tc := startConsole(t, nil)
	tok := tc.token(t, tc.org.ID, "casebook")
	status, body, _ := tc.call(t, http.MethodPost, "/ctia/casebook", tok, map[string]any{"title": "Investigation 1",
		"observables": []map[string]string{{"type": "ip", "value": "203.0.113.25"}},
		"texts":       []map[string]string{{"type": "query", "text": `ip:"203.0.113.25"`}}})
	if status != 201 {
		t.Fatalf("POST casebook = %d %s", status, body)
	}
	cb := decode[ctim.Casebook](t, body)
	id, _ := ctim.ParseID(cb.ID)
	status, body, _ = tc.call(t, http.MethodPost, "/ctia/casebook/"+id.Short+"/observables", tok, map[string]any{"operation": "add",
		"observables": []map[string]string{{"type": "domain", "value": "evil.example"}, {"type": "ip", "value": "203.0.113.25"}}})
	if cb := decode[ctim.Casebook](t, body); status != 200 || len(cb.Observables) != 2 {
		t.Errorf("add observables = %d %s, want 2 observables", status, body)
	}
	status, body, _ = tc.call(t, http.MethodPost, "/ctia/casebook/"+id.Short+"/bundle", tok, map[string]any{"operation": "add",
		"bundle": map[string]any{"source": "investigation", "verdicts": []map[string]any{{"type": "verdict", "disposition": 2,
			"observable": map[string]string{"type": "ip", "value": "203.0.113.25"}, "valid_time": map[string]any{}}}}})
	if cb := decode[ctim.Casebook](t, body); status != 200 || cb.Bundle == nil || len(cb.Bundle.Verdicts) != 1 {
		t.Errorf("add bundle = %d %s", status, body)
	}
	// The casebook scope does not reach other intelligence.
	if status, _, _ := tc.call(t, http.MethodGet, "/ctia/sighting/search", tok, nil); status != 403 {
		t.Errorf("casebook token on sightings = %d, want 403", status)
	}
}

func TestOrganisationsIsolated(t *testing.T) {
	tc := startConsole(t, nil)
	other := tc.addOrganisation(t, "Other", "otheradmin")
	mine := tc.addModule(t, "mine", fakeSettings{Mode: "ok"})
	tokA := tc.token(t, tc.org.ID, "enrich", "private-intel", "response")
	tokB := tc.token(t, other.ID, "enrich", "private-intel", "response")

	status, body, _ := tc.call(t, http.MethodPost, "/ctia/judgement", tokA, map[string]any{
		"observable": map[string]string{"type": "ip", "value": "10.9.9.9"}, "source": "s", "disposition": 2,
		"priority": 90, "confidence": "High", "severity": "High"})
	if status != 201 {
		t.Fatalf("POST judgement = %d %s", status, body)
	}
	jid, _ := ctim.ParseID(decode[ctim.Judgement](t, body).ID)

	checks := []struct {
		name, method, path string
		body               any
		wantStatus         int
	}{
		{"read judgement", http.MethodGet, "/ctia/judgement/" + jid.Short, nil, 404},
		{"delete judgement", http.MethodDelete, "/ctia/judgement/" + jid.Short, nil, 404},
		{"verdict", http.MethodGet, "/ctia/ip/10.9.9.9/verdict", nil, 404},
		{"health of A's module", http.MethodPost, "/iroh/iroh-enrich/health/" + mine, nil, 404},
		{"trigger A's module", http.MethodPost, "/iroh/iroh-response/respond/trigger/" + mine + "/block-ip", nil, 404},
	}
	for _, tt := range checks {
		if status, body, _ := tc.call(t, tt.method, tt.path, tokB, tt.body); status != tt.wantStatus {
			t.Errorf("org B: %s = %d %s, want %d", tt.name, status, body, tt.wantStatus)
		}
	}
	if n, _, _ := tc.call(t, http.MethodGet, "/ctia/judgement/search/count", tokB, nil); n != 200 {
		t.Errorf("search count = %d", n)
	}
	_, body, _ = tc.call(t, http.MethodGet, "/ctia/judgement/search/count", tokB, nil)
	if strings.TrimSpace(string(body)) != "0" {
		t.Errorf("org B judgement count = %s, want 0", body)
	}
	// B's enrich reaches only its own Private Intelligence, which knows nothing.
	status, body, _ = tc.call(t, http.MethodPost, "/iroh/iroh-enrich/deliberate/observables", tokB,
		[]map[string]string{{"type": "ip", "value": "10.9.9.9"}})
	env := decode[envelopeOf[[]resultItem]](t, body)
	if status != 200 || len(env.Data) != 1 || env.Data[0].InstanceID != InstanceIDPrivateIntel || len(env.Data[0].Data) != 0 {
		t.Errorf("org B deliberate = %d %s, want only its empty Private Intelligence", status, body)
	}
	// B's admin sees no modules of A and cannot change them.
	if status, body := tc.adminAs(t, "otheradmin", adminPass, http.MethodGet, "/api/v1/modules", nil); status != 200 || strings.TrimSpace(string(body)) != "[]" {
		t.Errorf("org B modules = %d %s, want []", status, body)
	}
	if status, _ := tc.adminAs(t, "otheradmin", adminPass, http.MethodDelete, "/api/v1/modules/"+mine, nil); status != 404 {
		t.Errorf("org B deletes A's module = %d, want 404", status)
	}
}
