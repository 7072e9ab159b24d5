package ui

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/gateway/config"
	"github.com/sightline/sightline/internal/web"
)

// fakeSettings keeps configurations in memory with the commit model of
// config.Manager: per-user pending copies validated on Edit.
type fakeSettings struct {
	mu      sync.Mutex
	running *config.Config
	pending map[string]*config.Config
	commits []config.Commit // newest first
	saved   map[int64]*config.Config
}

func clone(c *config.Config) *config.Config {
	b, err := json.Marshal(c)
	if err != nil {
		panic(err)
	}
	var d config.Config
	if err := json.Unmarshal(b, &d); err != nil {
		panic(err)
	}
	return &d
}

func newFakeSettings() *fakeSettings {
	f := &fakeSettings{pending: map[string]*config.Config{}, saved: map[int64]*config.Config{}}
	f.commitLocked(config.Default("gw.test"), "system", "initial configuration")
	return f
}

func (f *fakeSettings) commitLocked(c *config.Config, user, comment string) *config.Commit {
	id := int64(len(f.saved) + 1)
	f.running, f.saved[id] = clone(c), clone(c)
	cm := config.Commit{ID: id, CommittedAt: testNow.Add(time.Duration(id) * time.Minute), User: user, Comment: comment}
	f.commits = append([]config.Commit{cm}, f.commits...)
	return &cm
}

func (f *fakeSettings) View(ctx context.Context, user string) (*config.Config, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p, ok := f.pending[user]; ok {
		return clone(p), true, nil
	}
	return clone(f.running), false, nil
}

func (f *fakeSettings) Edit(ctx context.Context, user string, edit func(*config.Config) error) error {
	c, _, _ := f.View(ctx, user)
	if err := edit(c); err != nil {
		return err
	}
	if err := c.Validate(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pending[user] = c
	return nil
}

func (f *fakeSettings) HasPending(ctx context.Context, user string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.pending[user]
	return ok, nil
}

func (f *fakeSettings) Commit(ctx context.Context, user, comment string) (*config.Commit, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.pending[user]
	if !ok {
		return nil, config.ErrNothingToCommit
	}
	delete(f.pending, user)
	return f.commitLocked(p, user, comment), nil
}

func (f *fakeSettings) Clear(ctx context.Context, user string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.pending[user]
	delete(f.pending, user)
	return ok, nil
}

func (f *fakeSettings) History(ctx context.Context) ([]config.Commit, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]config.Commit(nil), f.commits...), nil
}

func (f *fakeSettings) Rollback(ctx context.Context, user string, id int64) (*config.Commit, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.saved[id]
	if !ok {
		return nil, sightline.Errorf(sightline.NotFound, "no configuration %d", id)
	}
	return f.commitLocked(c, user, "rollback"), nil
}

func (f *fakeSettings) Running() *config.Config {
	f.mu.Lock()
	defer f.mu.Unlock()
	return clone(f.running)
}

func (f *fakeSettings) pendingOf(user string) *config.Config {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pending[user]
}

// signIn starts a UI with cfg and signs in as user (password "secret-pw").
func signIn(t *testing.T, cfg Config, user web.User) *env {
	t.Helper()
	s, err := web.NewSessions("sl_gateway", []byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Sessions = s
	cfg.Authenticate = func(ctx context.Context, name, pass string) (web.User, error) {
		if name == user.Name && pass == "secret-pw" {
			return user, nil
		}
		return web.User{}, sightline.Errorf(sightline.Unauthorized, "bad credentials")
	}
	cfg.Now = func() time.Time { return testNow }
	u, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{srv: httptest.NewServer(u.Routes())}
	t.Cleanup(e.srv.Close)
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	e.c = &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	login := e.get(t, "/login")
	res := e.post(t, "/login", url.Values{"csrf_token": {formToken(t, login)}, "username": {user.Name}, "passphrase": {"secret-pw"}})
	if res.status != http.StatusSeeOther {
		t.Fatalf("sign in = %d, want 303:\n%s", res.status, res.body)
	}
	e.tok = formToken(t, e.get(t, "/commit"))
	return e
}

var (
	admin    = web.User{Name: "admin", Role: RoleAdministrator}
	operator = web.User{Name: "oper", Role: RoleOperator}
)

// submit posts form with the session's token.
func (e *env) submit(t *testing.T, path string, form url.Values) page {
	t.Helper()
	if form == nil {
		form = url.Values{}
	}
	form.Set("csrf_token", e.tok)
	return e.post(t, path, form)
}

// follow GETs the Location of a redirect.
func (e *env) follow(t *testing.T, p page) page {
	t.Helper()
	if p.status != http.StatusSeeOther {
		t.Fatalf("status = %d, want 303:\n%s", p.status, p.body)
	}
	return e.get(t, p.header.Get("Location"))
}

const pendingText = "You have uncommitted changes."

func TestSettingsPagesRender(t *testing.T) {
	st := newFakeSettings()
	st.Edit(context.Background(), "admin", func(c *config.Config) error {
		c.Screening.ContentFilters = append(c.Screening.ContentFilters, testFilter())
		return nil
	})
	e := signIn(t, Config{Settings: st, Accounts: newFakeAccounts(), AV: fakePinger{}}, admin)
	tests := []struct {
		path string
		want []string
	}{
		{"/mail-policies/hat", []string{"Sender Groups", "RELAYLIST", "127.0.0.0/8, ::1", "UNKNOWNLIST", "Mail Flow Policies", "THROTTLED", "Add Sender Group", "Add Policy"}},
		{"/mail-policies/hat/groups/new", []string{"Add Sender Group", "Sources", "Mail Flow Policy", "ACCEPTED"}},
		{"/mail-policies/hat/groups/RELAYLIST/edit", []string{"Edit Sender Group", "127.0.0.0/8"}},
		{"/mail-policies/hat/policies/new", []string{"Add Mail Flow Policy", "Max. Message Size", "Max. Recipients per Message", "Max. Messages per Connection", "Max. Concurrent Connections per IP", "Max. Messages per Hour per IP", "Require TLS"}},
		{"/mail-policies/hat/policies/ACCEPTED/edit", []string{"Edit Mail Flow Policy", "Policy Name"}},
		{"/mail-policies/rat", []string{"Recipient Access Table", "ALL", "REJECT", "Add Recipient"}},
		{"/mail-policies/rat/entries/new", []string{"Recipient Address", "Accept", "Reject"}},
		{"/mail-policies/content-filters", []string{"Content Filters", "block_exe", "Enabled", "Incoming", `Attachment Type is ".exe" or NOT Subject contains "invoice"`, "Quarantine (Policy); Tag Subject \"[EXE]\""}},
		{"/mail-policies/content-filters/new", []string{"Add Content Filter", "Conditions", "Actions", "Edit as JSON"}},
		{"/mail-policies/content-filters/block_exe/edit", []string{"Edit Content Filter", "Submit JSON"}},
		{"/security/anti-virus", []string{"Anti-Virus Settings", "ClamAV Daemon", "Action on Virus", "Test Connection"}},
		{"/security/mail-auth", []string{"DMARC Verification", "Action on p=reject", "Quarantine for p=quarantine", "DMARC Enforcement per Mail Flow Policy", "RELAYED"}},
		{"/security/reputation", []string{"Reputation Lists", "There are no reputation lists.", "Add List"}},
		{"/security/reputation/new", []string{"Add Reputation List", "Entries", "Blocklist Action"}},
		{"/network/smtp-routes", []string{"SMTP Routes", "built-in local mailbox", "Add Route"}},
		{"/network/smtp-routes/new", []string{"Receiving Domain", "Destination Hosts", "USEDNS"}},
		{"/network/cloud-service", []string{"Cloud Services", "Threat Response: Disabled", "Threat Response Server: AMERICAS (127.0.0.1)", "Edit Settings"}},
		{"/network/cloud-service/edit", []string{"Enable", "Threat Response Server:", "AMERICAS (127.0.0.1)", "EUROPE (127.0.0.1)", "Submit"}},
		{"/system/users", []string{"Users", "admin", "Administrator", "Add User"}},
		{"/system/users/new", []string{"User Name", "User Role", "Read-Only Operator", "Help Desk User", "Confirm Password"}},
		{"/system/config-history", []string{"Committed Configurations", "initial configuration", "Running"}},
		{"/commit", []string{"Commit Changes", "Content Filters", "Abandon Changes"}},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			p := e.get(t, tt.path)
			if p.status != http.StatusOK {
				t.Fatalf("GET %s = %d, want 200:\n%s", tt.path, p.status, p.body)
			}
			got := text(p.doc)
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("GET %s: no %q in:\n%s", tt.path, w, got)
				}
			}
		})
	}
}

func testFilter() cfFilter {
	return cfFilter{Name: "block_exe", Enabled: true, Match: "any",
		Conditions: []cfCondition{{Type: "attachment_type", Value: ".exe"}, {Type: "subject", Value: "invoice", Negate: true}},
		Actions:    []cfAction{{Type: "quarantine"}, {Type: "tag_subject", Prefix: "[EXE]"}}}
}

// TestStage submits each form and checks that the change is staged, shown
// by the banner, and not running.
func TestStage(t *testing.T) {
	tests := []struct {
		name  string
		path  string
		form  url.Values
		check func(c *config.Config) any // the part of the pending configuration to compare
		want  any
	}{
		{"add sender group", "/mail-policies/hat/groups",
			url.Values{"name": {"PARTNERS"}, "sources": {"192.0.2.0/24\n\n .partner.example \n"}, "flow_policy": {"TRUSTED"}},
			func(c *config.Config) any { return c.SMTP.SenderGroups[len(c.SMTP.SenderGroups)-1] },
			smtpdSenderGroup("PARTNERS", "TRUSTED", "192.0.2.0/24", ".partner.example")},
		{"edit sender group", "/mail-policies/hat/groups/ACCEPTLIST",
			url.Values{"name": {"ACCEPTLIST"}, "sources": {"198.51.100.7"}, "flow_policy": {"TRUSTED"}},
			func(c *config.Config) any { return c.SMTP.SenderGroups[1] },
			smtpdSenderGroup("ACCEPTLIST", "TRUSTED", "198.51.100.7")},
		{"move sender group", "/mail-policies/hat/groups/BLOCKLIST/move", url.Values{"dir": {"up"}},
			func(c *config.Config) any { return []string{c.SMTP.SenderGroups[1].Name, c.SMTP.SenderGroups[2].Name} },
			[]string{"BLOCKLIST", "ACCEPTLIST"}},
		{"delete sender group", "/mail-policies/hat/groups/SUSPECTLIST/delete", nil,
			func(c *config.Config) any { return len(c.SMTP.SenderGroups) }, 4},
		{"rename flow policy", "/mail-policies/hat/policies/TRUSTED",
			url.Values{"name": {"FRIENDS"}, "action": {"ACCEPT"}, "max_size": {"20M"}, "max_recipients": {"50"}, "max_per_hour": {""}, "require_tls": {"1"}},
			func(c *config.Config) any {
				return []any{c.SMTP.FlowPolicies[4].Name, c.SMTP.FlowPolicies[4].MaxMessageSize, c.SMTP.FlowPolicies[4].MaxRecipientsPerMessage,
					c.SMTP.FlowPolicies[4].RequireTLS, c.SMTP.SenderGroups[1].FlowPolicy}
			},
			[]any{"FRIENDS", int64(20 << 20), 50, true, "FRIENDS"}},
		{"add RAT entry", "/mail-policies/rat/entries", url.Values{"pattern": {"corp.example"}, "action": {"ACCEPT"}},
			func(c *config.Config) any { return c.SMTP.RAT[1].Pattern }, "corp.example"},
		{"move RAT entry", "/mail-policies/rat/entries/all/move", url.Values{"dir": {"down"}},
			func(c *config.Config) any { return c.SMTP.RAT[0].Pattern }, "ALL"},
		{"add content filter", "/mail-policies/content-filters",
			url.Values{"name": {"tag_spam"}, "enabled": {"1"}, "direction": {"both"}, "match": {"all"}, "conds": {"3"},
				"cond_type_0": {"header"}, "cond_header_0": {"X-Spam"}, "cond_op_0": {"exists"}, "cond_value_0": {"ignored"},
				"cond_type_1": {"sender_ip"}, "cond_op_1": {"contains"}, "cond_value_1": {"10.0.0.0/8"}, "cond_negate_1": {"1"},
				"acts": {"2"}, "act_type_0": {"add_header"}, "act_name_0": {"X-Tag"}, "act_value_0": {"spam"}, "act_type_1": {"drop"}},
			func(c *config.Config) any { return c.Screening.ContentFilters[0] },
			cfFilter{Name: "tag_spam", Enabled: true, Direction: "both", Match: "all",
				Conditions: []cfCondition{{Type: "header", Header: "X-Spam", Op: "exists"}, {Type: "sender_ip", Value: "10.0.0.0/8", Negate: true}},
				Actions:    []cfAction{{Type: "add_header", Header: "X-Tag", Value: "spam"}, {Type: "drop"}}}},
		{"add content filter as JSON", "/mail-policies/content-filters",
			url.Values{"mode": {"json"}, "name": {"ignored"}, "json": {`{"name":"big","enabled":false,"conditions":[{"type":"size_greater","value":"10m"}],"actions":[{"type":"bounce","text":"too big"}]}`}},
			func(c *config.Config) any { return c.Screening.ContentFilters[0] },
			cfFilter{Name: "big", Conditions: []cfCondition{{Type: "size_greater", Value: "10m"}}, Actions: []cfAction{{Type: "bounce", Text: "too big"}}}},
		{"anti-virus", "/security/anti-virus",
			url.Values{"enabled": {"1"}, "clamd": {"tcp:127.0.0.1:3310"}, "on_virus": {"quarantine"}, "on_error": {"quarantine"}, "quarantine": {"Virus"}},
			func(c *config.Config) any { return []any{c.AntiVirus.Clamd, c.Screening.AntiVirus} },
			[]any{"tcp:127.0.0.1:3310", pipelineAV(true, "quarantine", "quarantine", "Virus")}},
		{"dmarc", "/security/mail-auth",
			url.Values{"reject_type": {"quarantine"}, "reject_quarantine": {"DMARC"}, "reject_text": {"dropped: not a bounce"}, "quarantine": {"Policy"},
				"rows": {"2"}, "policy_0": {"ACCEPTED"}, "dmarc_0": {"on"}, "policy_1": {"RELAY"}, "dmarc_1": {""}},
			func(c *config.Config) any { return c.Screening.DMARC },
			pipelineDMARC(false, map[string]bool{"ACCEPTED": true}, "quarantine", "DMARC", "Policy")},
		{"add reputation list", "/security/reputation",
			url.Values{"name": {"bad_senders"}, "kind": {"sender_domain"}, "mode": {"blocklist"}, "entries": {"spam.example\n.evil.example"}, "action_type": {"bounce"}, "action_text": {"go away"}},
			func(c *config.Config) any { return c.Screening.Lists[0] },
			pipelineList("bad_senders", "sender_domain", "blocklist", "bounce", "go away", "spam.example", ".evil.example")},
		{"add SMTP route", "/network/smtp-routes",
			url.Values{"domain": {"corp.example"}, "hosts": {"mx1.corp.example:2525\nmx2.corp.example"}, "tls": {"required"}},
			func(c *config.Config) any { return c.Routes }, routes("corp.example", "required", "mx1.corp.example:2525", "mx2.corp.example")},
		{"cloud service", "/network/cloud-service", url.Values{"enabled": {"1"}, "server": {"EUROPE"}},
			func(c *config.Config) any { return []any{c.Cloud.ThreatResponse, c.Cloud.Server} }, []any{true, "EUROPE"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := newFakeSettings()
			e := signIn(t, Config{Settings: st}, operator)
			if strings.Contains(e.get(t, "/mail-policies/hat").body, pendingText) {
				t.Fatal("banner shown before any change")
			}
			p := e.submit(t, tt.path, tt.form)
			if p.status != http.StatusSeeOther {
				t.Fatalf("POST %s = %d, want 303:\n%s", tt.path, p.status, text(p.doc))
			}
			if next := e.follow(t, p); !strings.Contains(text(next.doc), pendingText) {
				t.Errorf("after POST %s: no %q banner", tt.path, pendingText)
			}
			pending := st.pendingOf(operator.Name)
			if pending == nil {
				t.Fatalf("POST %s staged nothing", tt.path)
			}
			if diff := cmp.Diff(tt.want, tt.check(pending)); diff != "" {
				t.Errorf("pending after POST %s (-want +got):\n%s", tt.path, diff)
			}
			if diff := cmp.Diff(config.Default("gw.test"), st.Running()); diff != "" {
				t.Errorf("running configuration changed before the commit (-want +got):\n%s", diff)
			}
		})
	}
}

// TestStageInvalid submits bad forms: each shows its problem naming the
// field, with status 400, and stages nothing.
func TestStageInvalid(t *testing.T) {
	tests := []struct {
		name, path string
		form       url.Values
		want       string
	}{
		{"group without name", "/mail-policies/hat/groups", url.Values{"sources": {"10.0.0.1"}, "flow_policy": {"ACCEPTED"}}, "Name: enter a name."},
		{"group with bad source", "/mail-policies/hat/groups", url.Values{"name": {"X"}, "sources": {"10.0.0.0/99"}, "flow_policy": {"ACCEPTED"}}, `sender group "X": bad source "10.0.0.0/99"`},
		{"duplicate group", "/mail-policies/hat/groups", url.Values{"name": {"BLOCKLIST"}, "flow_policy": {"BLOCKED"}}, `Sender group "BLOCKLIST" already exists.`},
		{"unknown flow policy", "/mail-policies/hat/groups", url.Values{"name": {"X"}, "flow_policy": {"NOPE"}}, `unknown flow policy "NOPE"`},
		{"bad size", "/mail-policies/hat/policies", url.Values{"name": {"P"}, "action": {"ACCEPT"}, "max_size": {"ten megs"}}, `Max. Message Size: "ten megs" is not a size`},
		{"negative limit", "/mail-policies/hat/policies", url.Values{"name": {"P"}, "action": {"ACCEPT"}, "max_per_hour": {"-1"}}, `Max. Messages per Hour per IP: "-1" is not a whole number`},
		{"bad action", "/mail-policies/hat/policies", url.Values{"name": {"P"}, "action": {"MAYBE"}}, "Action: choose one of"},
		{"used flow policy", "/mail-policies/hat/policies/ACCEPTED/delete", nil, `Mail flow policy "ACCEPTED" is in use by: UNKNOWNLIST.`},
		{"bad RAT pattern", "/mail-policies/rat/entries", url.Values{"pattern": {"user@exa..mple"}, "action": {"ACCEPT"}}, `RAT: bad pattern "user@exa..mple"`},
		{"filter without action", "/mail-policies/content-filters", url.Values{"name": {"f"}, "conds": {"1"}, "cond_type_0": {"subject"}, "cond_value_0": {"x"}}, "Actions: choose at least one action."},
		{"filter bad regex", "/mail-policies/content-filters", url.Values{"name": {"f"}, "conds": {"1"}, "cond_type_0": {"subject"}, "cond_op_0": {"matches"}, "cond_value_0": {"("}, "acts": {"1"}, "act_type_0": {"drop"}}, `content filter "f": condition 1:`},
		{"filter bad JSON", "/mail-policies/content-filters", url.Values{"mode": {"json"}, "json": {`{"name":"f","colour":"red"}`}}, `JSON: json: unknown field "colour"`},
		{"clamd address", "/security/anti-virus", url.Values{"enabled": {"1"}, "clamd": {"localhost"}}, `anti-virus: clamd address "localhost": want unix:/path or tcp:host:port`},
		{"clamd missing", "/security/anti-virus", url.Values{"enabled": {"1"}}, "ClamAV Daemon: enter the address"},
		{"dmarc quarantine", "/security/mail-auth", url.Values{"quarantine": {"no/slash"}}, `dmarc: invalid quarantine name "no/slash"`},
		{"list entry", "/security/reputation", url.Values{"name": {"ips"}, "kind": {"sender_ip"}, "mode": {"blocklist"}, "entries": {"300.1.1.1"}, "action_type": {"drop"}}, `list "ips": entry 1:`},
		{"route without hosts", "/network/smtp-routes", url.Values{"domain": {"corp.example"}}, "Destination Hosts: enter at least one host, or USEDNS."},
		{"route bad host", "/network/smtp-routes", url.Values{"domain": {"corp.example"}, "hosts": {"mx:99999"}}, `SMTP route "corp.example": destination "mx:99999"`},
		{"cloud server", "/network/cloud-service", url.Values{"enabled": {"1"}, "server": {"MARS"}}, "Threat Response Server: choose one of the servers listed."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := newFakeSettings()
			e := signIn(t, Config{Settings: st}, admin)
			p := e.submit(t, tt.path, tt.form)
			if p.status == http.StatusSeeOther {
				p = e.follow(t, p) // delete and move report on the list page
			} else if p.status != http.StatusBadRequest {
				t.Errorf("POST %s = %d, want 400", tt.path, p.status)
			}
			if got := text(p.doc); !strings.Contains(got, tt.want) {
				t.Errorf("POST %s: no %q in:\n%s", tt.path, tt.want, got)
			}
			if strings.Contains(p.body, pendingText) || st.pendingOf(admin.Name) != nil {
				t.Errorf("POST %s staged a change", tt.path)
			}
		})
	}
}

func TestStageInvalidKeepsInput(t *testing.T) {
	e := signIn(t, Config{Settings: newFakeSettings()}, admin)
	p := e.submit(t, "/mail-policies/hat/policies/ACCEPTED", url.Values{"name": {"ACCEPTED"}, "action": {"ACCEPT"}, "max_size": {"lots"}, "max_recipients": {"12"}})
	if p.status != http.StatusBadRequest {
		t.Fatalf("status = %d, want 400", p.status)
	}
	in := find(p.doc, func(n *htmlNode) bool { return n.Data == "input" && attr(n, "name") == "max_size" })
	if len(in) != 1 || attr(in[0], "value") != "lots" || attr(in[0], "aria-invalid") != "true" {
		t.Errorf("max_size input = %v, want value %q marked invalid", in, "lots")
	}
	forms := find(p.doc, func(n *htmlNode) bool {
		return n.Data == "form" && attr(n, "action") == "/mail-policies/hat/policies/ACCEPTED"
	})
	if len(forms) != 1 {
		t.Errorf("the form no longer posts to the policy it edits:\n%s", p.body)
	}
}

func TestCommitAndClear(t *testing.T) {
	st := newFakeSettings()
	e := signIn(t, Config{Settings: st}, admin)
	ctx := context.Background()

	// Nothing staged.
	p := e.submit(t, "/commit", url.Values{"next": {"/network/cloud-service"}})
	if got := text(e.follow(t, p).doc); !strings.Contains(got, "Error — There is no data to commit.") {
		t.Errorf("commit without changes: page lacks the message:\n%s", got)
	}
	if got := text(e.get(t, "/commit").doc); !strings.Contains(got, "You have no uncommitted changes.") {
		t.Errorf("commit page without changes:\n%s", got)
	}

	// Stage, see the page list the area, commit with a comment.
	e.submit(t, "/network/cloud-service", url.Values{"enabled": {"1"}, "server": {"AMERICAS"}})
	var changed []string
	for _, li := range find(e.get(t, "/commit").doc, func(n *htmlNode) bool { return n.Data == "li" && hasClass(n.Parent, "changed") }) {
		changed = append(changed, text(li))
	}
	if diff := cmp.Diff([]string{"Cloud Service Settings"}, changed); diff != "" {
		t.Errorf("commit page: areas changed (-want +got):\n%s", diff)
	}
	p = e.submit(t, "/commit", url.Values{"comment": {"enable cloud service"}, "next": {"/network/cloud-service"}})
	if loc := p.header.Get("Location"); loc != "/network/cloud-service" {
		t.Errorf("commit redirects to %q, want the page it came from", loc)
	}
	page := e.follow(t, p)
	if got := text(page.doc); !strings.Contains(got, "Success — Your changes have been committed.") || !strings.Contains(got, "Threat Response: Enabled") {
		t.Errorf("after commit:\n%s", got)
	}
	if strings.Contains(page.body, pendingText) {
		t.Error("banner still shown after the commit")
	}
	if !st.Running().Cloud.ThreatResponse {
		t.Error("commit did not apply")
	}
	if h, _ := st.History(ctx); h[0].Comment != "enable cloud service" || h[0].User != "admin" {
		t.Errorf("last commit = %+v, want admin's with the comment", h[0])
	}

	// Clear.
	e.submit(t, "/network/smtp-routes", url.Values{"domain": {"ALL"}, "hosts": {"USEDNS"}})
	p = e.submit(t, "/clear", url.Values{"next": {"/network/smtp-routes"}})
	page = e.follow(t, p)
	if got := text(page.doc); !strings.Contains(got, "Success — Your changes have been cleared.") || strings.Contains(got, "USEDNS") {
		t.Errorf("after clear:\n%s", got)
	}
	if st.pendingOf("admin") != nil || len(st.Running().Routes) != 0 {
		t.Error("clear kept the change")
	}
	p = e.submit(t, "/clear", url.Values{"next": {"/network/smtp-routes"}})
	if got := text(e.follow(t, p).doc); !strings.Contains(got, "No changes have been made") {
		t.Errorf("clear without changes:\n%s", got)
	}

	// A comment too long is refused and nothing is committed.
	e.submit(t, "/network/smtp-routes", url.Values{"domain": {"ALL"}, "hosts": {"USEDNS"}})
	if p := e.submit(t, "/commit", url.Values{"comment": {strings.Repeat("x", maxComment+1)}}); p.status != http.StatusBadRequest ||
		!strings.Contains(text(p.doc), "Comment: at most") || st.pendingOf("admin") == nil {
		t.Errorf("long comment = %d, want 400 and the change still pending", p.status)
	}
}

func TestRollback(t *testing.T) {
	st := newFakeSettings()
	e := signIn(t, Config{Settings: st}, admin)
	e.submit(t, "/network/smtp-routes", url.Values{"domain": {"ALL"}, "hosts": {"USEDNS"}})
	e.submit(t, "/commit", url.Values{"comment": {"route all"}})
	hist := e.get(t, "/system/config-history")
	rows := table(hist, "history")
	if len(rows) != 3 || rows[1][3] != "route all" || !strings.Contains(rows[1][4], "Running") || !strings.Contains(rows[2][4], "Rollback") {
		t.Fatalf("history rows = %q", rows)
	}
	p := e.submit(t, "/system/config-history/1/rollback", nil)
	if got := text(e.follow(t, p).doc); !strings.Contains(got, "Configuration 1 is running again, committed as configuration 3.") {
		t.Errorf("after rollback:\n%s", got)
	}
	if len(st.Running().Routes) != 0 {
		t.Error("rollback did not restore configuration 1")
	}
	if p := e.submit(t, "/system/config-history/99/rollback", nil); p.status != http.StatusNotFound {
		t.Errorf("rollback to an unknown configuration = %d, want 404", p.status)
	}
}

func TestSettingsNeedCSRF(t *testing.T) {
	st := newFakeSettings()
	e := signIn(t, Config{Settings: st}, admin)
	for _, path := range []string{"/network/cloud-service", "/mail-policies/hat/groups", "/commit", "/clear", "/system/config-history/1/rollback"} {
		p := e.post(t, path, url.Values{"enabled": {"1"}, "server": {"AMERICAS"}, "name": {"X"}, "flow_policy": {"ACCEPTED"}})
		if p.status != http.StatusForbidden {
			t.Errorf("POST %s without token = %d, want 403", path, p.status)
		}
	}
	if st.pendingOf("admin") != nil || len(st.commits) != 1 {
		t.Error("a post without token changed the configuration")
	}
}

func TestReadOnlyRoles(t *testing.T) {
	for _, role := range []string{RoleReadOnlyOperator, RoleGuest, RoleHelpDeskUser, RoleTechnician, ""} {
		t.Run(role, func(t *testing.T) {
			st := newFakeSettings()
			e := signIn(t, Config{Settings: st, Accounts: newFakeAccounts()}, web.User{Name: "viewer", Role: role})
			for _, path := range []string{"/mail-policies/hat", "/network/cloud-service", "/security/anti-virus", "/system/config-history", "/system/users"} {
				p := e.get(t, path)
				if p.status != http.StatusOK {
					t.Errorf("GET %s = %d, want 200", path, p.status)
				}
				for _, b := range []string{"Edit Settings", "Add Sender Group", "Rollback", "Add User", "Submit"} {
					if strings.Contains(text(p.doc), b) {
						t.Errorf("GET %s shows %q to a %s", path, b, role)
					}
				}
			}
			for _, path := range []string{"/network/cloud-service", "/mail-policies/hat/groups", "/commit", "/system/config-history/1/rollback", "/network/cloud-service/register", "/system/users"} {
				p := e.submit(t, path, url.Values{"enabled": {"1"}, "server": {"AMERICAS"}, "name": {"X"}, "flow_policy": {"ACCEPTED"}})
				if p.status != http.StatusForbidden || !strings.Contains(text(p.doc), "can") || !strings.Contains(text(p.doc), "Ask an administrator") {
					t.Errorf("POST %s as %q = %d, want 403 with a reason:\n%s", path, role, p.status, text(p.doc))
				}
			}
			if p := e.get(t, "/network/cloud-service/edit"); p.status != http.StatusForbidden {
				t.Errorf("GET the edit form as %q = %d, want 403", role, p.status)
			}
			if st.pendingOf("viewer") != nil || len(st.commits) != 1 {
				t.Error("a read-only user changed the configuration")
			}
		})
	}
}

// fakeConnector returns a set status and records calls.
type fakeConnector struct {
	mu          sync.Mutex
	status      ConnectorStatus
	tokens      []string
	deregisters int
	err         error
}

func (f *fakeConnector) Status(ctx context.Context) ConnectorStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status
}

func (f *fakeConnector) Register(ctx context.Context, token string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tokens = append(f.tokens, token)
	return f.err
}

func (f *fakeConnector) Deregister(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deregisters++
	return f.err
}

func enabledSettings() *fakeSettings {
	st := newFakeSettings()
	c := st.Running()
	c.Cloud.ThreatResponse, c.Cloud.Server = true, "AMERICAS"
	st.commitLocked(c, "admin", "enable")
	return st
}

func TestCloudServiceStates(t *testing.T) {
	tests := []struct {
		status  ConnectorStatus
		want    []string
		token   bool // the token field and Register are shown
		dereg   bool
		wantNot []string
	}{
		{ConnectorStatus{State: ConnectorBusy}, []string{"Cloud Services Settings", "Status: The Cisco Cloud Service is busy. Navigate back to this page after some time to check the appliance status."}, false, false, nil},
		{ConnectorStatus{State: ConnectorEnabled}, []string{"Registration Token:", "Register"}, true, false, []string{"failed"}},
		{ConnectorStatus{State: ConnectorFailed, Message: "token expired"}, []string{"The registration failed because of an invalid or expired token", "token expired", "Registration Token:"}, true, false, nil},
		{ConnectorStatus{State: ConnectorInProgress}, []string{"Status: The appliance registration is in progress. Navigate back to this page after some time to check the appliance status."}, false, false, nil},
		{ConnectorStatus{State: ConnectorRegistered, DeviceID: "4c0f-device"}, []string{"Your appliance is successfully registered with Cisco Threat Response.", "Device ID: 4c0f-device", "Deregister"}, false, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.status.State, func(t *testing.T) {
			conn := &fakeConnector{status: tt.status}
			e := signIn(t, Config{Settings: enabledSettings(), Connector: conn}, admin)
			p := e.get(t, "/network/cloud-service")
			got := text(p.doc)
			for _, w := range append(tt.want, "Threat Response: Enabled", "Threat Response Server: AMERICAS (127.0.0.1)") {
				if !strings.Contains(got, w) {
					t.Errorf("no %q in:\n%s", w, got)
				}
			}
			for _, w := range tt.wantNot {
				if strings.Contains(got, w) {
					t.Errorf("%q in:\n%s", w, got)
				}
			}
			tok := find(p.doc, func(n *htmlNode) bool { return n.Data == "input" && attr(n, "id") == "token" })
			if (len(tok) == 1) != tt.token {
				t.Errorf("token input shown = %v, want %v", len(tok) == 1, tt.token)
			}
			dereg := find(p.doc, func(n *htmlNode) bool {
				return n.Data == "form" && attr(n, "action") == "/network/cloud-service/deregister"
			})
			if (len(dereg) == 1) != tt.dereg || (tt.dereg && attr(dereg[0], "data-confirm") == "") {
				t.Errorf("deregister form = %d, want shown %v with a confirmation", len(dereg), tt.dereg)
			}
		})
	}
}

func TestCloudServiceRegister(t *testing.T) {
	conn := &fakeConnector{status: ConnectorStatus{State: ConnectorEnabled}}
	e := signIn(t, Config{Settings: enabledSettings(), Connector: conn}, admin)
	p := e.submit(t, "/network/cloud-service/register", url.Values{"token": {" a389f98df0e77c5411148e96e239e05d "}})
	want := "Success — A request to register your appliance with the Cisco Threat Response portal is initiated. Navigate back to this page after some time to check the appliance status."
	if got := text(e.follow(t, p).doc); !strings.Contains(got, want) {
		t.Errorf("after Register: no %q in:\n%s", want, got)
	}
	if diff := cmp.Diff([]string{"a389f98df0e77c5411148e96e239e05d"}, conn.tokens); diff != "" {
		t.Errorf("Register tokens (-want +got):\n%s", diff)
	}

	p = e.submit(t, "/network/cloud-service/register", url.Values{"token": {""}})
	if got := text(e.follow(t, p).doc); !strings.Contains(got, "Registration Token: paste the token") || len(conn.tokens) != 1 {
		t.Errorf("empty token: %s", got)
	}
	conn.err = sightline.Errorf(sightline.Unavailable, "The exchange at 127.0.0.1:8090 cannot be reached.")
	p = e.submit(t, "/network/cloud-service/register", url.Values{"token": {"abc"}})
	if got := text(e.follow(t, p).doc); !strings.Contains(got, "Error — The exchange at 127.0.0.1:8090 cannot be reached.") {
		t.Errorf("failed Register: %s", got)
	}

	conn.err = nil
	conn.status.State = ConnectorRegistered
	p = e.submit(t, "/network/cloud-service/deregister", nil)
	if got := text(e.follow(t, p).doc); !strings.Contains(got, "A request to deregister your appliance") || conn.deregisters != 1 {
		t.Errorf("after Deregister (%d calls): %s", conn.deregisters, got)
	}
	// Disabling while registered is refused.
	if p := e.submit(t, "/network/cloud-service", url.Values{"server": {"AMERICAS"}}); p.status != http.StatusBadRequest ||
		!strings.Contains(text(p.doc), "deregister the appliance before disabling") {
		t.Errorf("disable while registered = %d:\n%s", p.status, text(p.doc))
	}
}

func TestCloudServiceWithoutConnector(t *testing.T) {
	e := signIn(t, Config{Settings: enabledSettings()}, admin)
	if got := text(e.get(t, "/network/cloud-service").doc); !strings.Contains(got, "The Cisco Cloud Service connector is not available on this gateway.") {
		t.Errorf("page without connector:\n%s", got)
	}
	if p := e.submit(t, "/network/cloud-service/register", url.Values{"token": {"abc"}}); p.status != http.StatusServiceUnavailable {
		t.Errorf("Register without connector = %d, want 503", p.status)
	}
	// Before Threat Response is committed, no connector box at all.
	e = signIn(t, Config{Settings: newFakeSettings(), Connector: &fakeConnector{}}, admin)
	if got := text(e.get(t, "/network/cloud-service").doc); strings.Contains(got, "Cloud Services Settings") {
		t.Errorf("connector box shown while Threat Response is disabled:\n%s", got)
	}
}

type fakePinger struct{ err error }

func (f fakePinger) PingAV(ctx context.Context, addr string) error { return f.err }

func TestTestAV(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"ok", nil, "Test Connection — clamd at tcp:127.0.0.1:3310 answered."},
		{"down", sightline.Errorf(sightline.Unavailable, "connection refused"), "Test Connection — clamd at tcp:127.0.0.1:3310 did not answer: connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := newFakeSettings()
			e := signIn(t, Config{Settings: st, AV: fakePinger{tt.err}}, admin)
			p := e.submit(t, "/security/anti-virus/test", url.Values{"clamd": {"tcp:127.0.0.1:3310"}, "enabled": {"1"}})
			if got := text(p.doc); p.status != http.StatusOK || !strings.Contains(got, tt.want) {
				t.Errorf("Test Connection = %d, want %q in:\n%s", p.status, tt.want, got)
			}
			if st.pendingOf("admin") != nil {
				t.Error("Test Connection staged the form")
			}
		})
	}
}

func TestContentFilterActions(t *testing.T) {
	st := newFakeSettings()
	st.Edit(context.Background(), "admin", func(c *config.Config) error {
		f2 := testFilter()
		f2.Name = "second"
		c.Screening.ContentFilters = []cfFilter{testFilter(), f2}
		return nil
	})
	e := signIn(t, Config{Settings: st}, admin)
	e.submit(t, "/mail-policies/content-filters/block_exe/enable", url.Values{"enabled": {"0"}})
	e.submit(t, "/mail-policies/content-filters/second/move", url.Values{"dir": {"up"}})
	e.submit(t, "/mail-policies/content-filters/block_exe/delete", nil)
	p := e.get(t, "/mail-policies/content-filters")
	rows := table(p, "filters")
	if len(rows) != 2 || rows[1][1] != "second" {
		t.Errorf("filters after disable, move, delete = %q", rows)
	}
	fs := st.pendingOf("admin").Screening.ContentFilters
	if len(fs) != 1 || fs[0].Name != "second" {
		t.Errorf("pending filters = %+v", fs)
	}
	if p := e.submit(t, "/mail-policies/content-filters/nope/delete", nil); p.status != http.StatusNotFound ||
		!strings.Contains(text(p.doc), `There is no content filter named "nope".`) {
		t.Errorf("delete unknown filter = %d: %s", p.status, text(p.doc))
	}
}

// fakeAccounts keeps users in memory.
type fakeAccounts struct {
	mu    sync.Mutex
	users map[string]Account
	pw    map[string]string
}

func newFakeAccounts() *fakeAccounts {
	return &fakeAccounts{users: map[string]Account{"admin": {Name: "admin", Role: RoleAdministrator, Created: testNow}}, pw: map[string]string{}}
}

func (f *fakeAccounts) Accounts(ctx context.Context) ([]Account, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Account
	for _, a := range f.users {
		out = append(out, a)
	}
	slicesSortAccounts(out)
	return out, nil
}

func (f *fakeAccounts) CreateAccount(ctx context.Context, a Account, password string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.users[a.Name]; ok {
		return sightline.Errorf(sightline.Conflict, "user %q already exists", a.Name)
	}
	f.users[a.Name], f.pw[a.Name] = a, password
	return nil
}

func (f *fakeAccounts) SetPassword(ctx context.Context, name, password string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.users[name]; !ok {
		return sightline.Errorf(sightline.NotFound, "no user %q", name)
	}
	f.pw[name] = password
	return nil
}

func (f *fakeAccounts) DeleteAccount(ctx context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.users[name]; !ok {
		return sightline.Errorf(sightline.NotFound, "There is no user %q.", name)
	}
	delete(f.users, name)
	return nil
}

func TestUsers(t *testing.T) {
	accts := newFakeAccounts()
	e := signIn(t, Config{Accounts: accts}, admin)
	tests := []struct {
		name   string
		path   string
		form   url.Values
		status int
		want   string
	}{
		{"add", "/system/users", url.Values{"name": {"alice"}, "role": {RoleReadOnlyOperator}, "password": {"correct horse"}, "confirm": {"correct horse"}}, 303, "Success — User alice has been added."},
		{"add taken", "/system/users", url.Values{"name": {"alice"}, "role": {RoleGuest}, "password": {"correct horse"}, "confirm": {"correct horse"}}, 400, `User Name: a user named "alice" already exists.`},
		{"add bad name", "/system/users", url.Values{"name": {"al ice"}, "role": {RoleGuest}, "password": {"correct horse"}, "confirm": {"correct horse"}}, 400, "User Name: 1 to 32 letters"},
		{"add bad role", "/system/users", url.Values{"name": {"bob"}, "role": {"Root"}, "password": {"correct horse"}, "confirm": {"correct horse"}}, 400, "User Role: choose one of the roles listed."},
		{"add short password", "/system/users", url.Values{"name": {"bob"}, "role": {RoleGuest}, "password": {"short"}, "confirm": {"short"}}, 400, "Password: 8 to 72 characters."},
		{"add mismatch", "/system/users", url.Values{"name": {"bob"}, "role": {RoleGuest}, "password": {"correct horse"}, "confirm": {"correct h0rse"}}, 400, "Confirm Password: the two passwords differ."},
		{"password", "/system/users/alice/password", url.Values{"password": {"battery staple"}, "confirm": {"battery staple"}}, 303, "Success — The password of alice has been changed."},
		{"own password, wrong current", "/system/users/admin/password", url.Values{"current": {"guess"}, "password": {"battery staple"}, "confirm": {"battery staple"}}, 400, "Current Password: this is not your current password."},
		{"own password", "/system/users/admin/password", url.Values{"current": {"secret-pw"}, "password": {"battery staple"}, "confirm": {"battery staple"}}, 303, "The password of admin has been changed."},
		{"delete self", "/system/users/admin/delete", nil, 303, "Error — You cannot delete yourself"},
		{"delete", "/system/users/alice/delete", nil, 303, "Success — User alice has been deleted."},
		{"delete unknown", "/system/users/alice/delete", nil, 303, `Error — There is no user "alice".`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := e.submit(t, tt.path, tt.form)
			if p.status != tt.status {
				t.Fatalf("POST %s = %d, want %d:\n%s", tt.path, p.status, tt.status, text(p.doc))
			}
			if p.status == http.StatusSeeOther {
				p = e.follow(t, p)
			}
			if got := text(p.doc); !strings.Contains(got, tt.want) {
				t.Errorf("POST %s: no %q in:\n%s", tt.path, tt.want, got)
			}
		})
	}
	if accts.pw["admin"] != "battery staple" || len(accts.users) != 1 {
		t.Errorf("accounts = %v, passwords %v", accts.users, accts.pw)
	}
}

func TestUsersByRole(t *testing.T) {
	accts := newFakeAccounts()
	accts.users["oper"] = Account{Name: "oper", Role: RoleOperator}
	accts.users["carol"] = Account{Name: "carol", Role: RoleGuest}
	e := signIn(t, Config{Accounts: accts}, operator)
	if p := e.submit(t, "/system/users/carol/delete", nil); p.status != http.StatusForbidden || !strings.Contains(text(p.doc), "cannot manage users") {
		t.Errorf("operator deletes a user = %d:\n%s", p.status, text(p.doc))
	}
	if p := e.submit(t, "/system/users/carol/password", url.Values{"password": {"12345678"}, "confirm": {"12345678"}}); p.status != http.StatusForbidden {
		t.Errorf("operator sets another's password = %d, want 403", p.status)
	}
	if p := e.submit(t, "/system/users/oper/password", url.Values{"current": {"secret-pw"}, "password": {"12345678"}, "confirm": {"12345678"}}); p.status != http.StatusSeeOther {
		t.Errorf("operator sets their own password = %d, want 303", p.status)
	}
	if len(accts.users) != 3 || accts.pw["oper"] != "12345678" || accts.pw["carol"] != "" {
		t.Errorf("accounts = %v, passwords %v", accts.users, accts.pw)
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"1024", 1024, true}, {"10M", 10 << 20, true}, {"10 mb", 10 << 20, true}, {"100k", 100 << 10, true},
		{"2G", 2 << 30, true}, {"-1", 0, false}, {"ten", 0, false}, {"M", 0, false}, {"99999999999999G", 0, false},
	}
	for _, tt := range tests {
		got, err := parseSize(tt.in)
		if got != tt.want || (err == nil) != tt.ok {
			t.Errorf("parseSize(%q) = %d, %v, want %d, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"10M", "0", "1k", " 5 G ", "-3", "1e9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseSize(s)
		if err != nil {
			return
		}
		if n < 0 || n > 1<<40 {
			t.Fatalf("parseSize(%q) = %d, out of range", s, n)
		}
		if back, err := parseSize(cmpOr(sizeText(n), "0")); err != nil || back != n {
			t.Fatalf("parseSize(sizeText(%d)) = %d, %v", n, back, err)
		}
	})
}

// FuzzFilterForm feeds arbitrary form values to the content filter form:
// it must not panic, and a filter it accepts must survive validation's
// error path.
func FuzzFilterForm(f *testing.F) {
	f.Add("f", "subject", "contains", "x", "quarantine", "Policy", "", false)
	f.Add("", "header", "exists", "", "add_header", "X-A", "b", true)
	f.Add("{", "zzz", "matches", "(", "bounce", "", "\r\n", true)
	f.Fuzz(func(t *testing.T, name, ctype, op, value, atype, aname, avalue string, json bool) {
		form := url.Values{"name": {name}, "conds": {"1"}, "cond_type_0": {ctype}, "cond_op_0": {op}, "cond_value_0": {value},
			"acts": {"1"}, "act_type_0": {atype}, "act_name_0": {aname}, "act_value_0": {avalue}, "json": {name}}
		if json {
			form.Set("mode", "json")
		}
		r := httptest.NewRequest("POST", "/", strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		fm := &form_{}
		flt := parseFilter(r, fm)
		if len(fm.Errors) == 0 {
			_ = filterJSON(flt)
		}
	})
}
