package smtpd

import (
	"context"
	"encoding/json"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	sightline "github.com/sightline/sightline"
)

func TestHAT(t *testing.T) {
	p := &Policy{
		SenderGroups: []SenderGroup{
			{Name: "SKIPPED", Sources: []string{"192.0.2.99"}, FlowPolicy: "CONT"},
			{Name: RelayList, Sources: []string{"10.0.0.0/8", "2001:db8::/32"}, FlowPolicy: Relayed},
			{Name: AcceptList, Sources: []string{"mail.partner.test", ".trusted.test"}, FlowPolicy: Accepted},
			{Name: BlockList, Sources: []string{"192.0.2.66"}, FlowPolicy: Blocked},
			{Name: UnknownList, Sources: []string{"*"}, FlowPolicy: Accepted},
		},
		FlowPolicies: []FlowPolicy{
			{Name: Relayed, Action: Relay}, {Name: Accepted, Action: Accept},
			{Name: Blocked, Action: Reject}, {Name: "CONT", Action: Continue},
		},
	}
	cp, err := compile(p)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		ip, host               string
		group, match, flowName string
	}{
		{"10.1.2.3", "", RelayList, "10.0.0.0/8", Relayed},
		{"2001:db8::5", "", RelayList, "2001:db8::/32", Relayed},
		{"192.0.2.66", "", BlockList, "192.0.2.66", Blocked},
		{"198.51.100.1", "mail.partner.test", AcceptList, "mail.partner.test", Accepted},
		{"198.51.100.1", "mx1.trusted.test", AcceptList, ".trusted.test", Accepted},
		{"198.51.100.1", "trusted.test", UnknownList, "ALL", Accepted}, // ".x" is for subdomains only
		{"198.51.100.1", "", UnknownList, "ALL", Accepted},
		{"192.0.2.99", "", UnknownList, "ALL", Accepted}, // CONTINUE goes on matching
	}
	for _, tt := range tests {
		group, match, flow := cp.hat(netip.MustParseAddr(tt.ip), tt.host)
		if group != tt.group || match != tt.match || flow.Name != tt.flowName {
			t.Errorf("hat(%s, %q) = %s, %s, %s; want %s, %s, %s", tt.ip, tt.host, group, match, flow.Name, tt.group, tt.match, tt.flowName)
		}
	}

	// Nothing matches: no sender group, and the connection is refused.
	cp, err = compile(&Policy{})
	if err != nil {
		t.Fatal(err)
	}
	if group, match, flow := cp.hat(netip.MustParseAddr("192.0.2.1"), ""); group != "None" || match != "none" || flow.Action != Reject {
		t.Errorf("hat() with an empty HAT = %s, %s, %s; want None, none, REJECT", group, match, flow.Action)
	}
}

func TestRAT(t *testing.T) {
	rat := []RATEntry{
		{Pattern: "postmaster@", Action: Accept},
		{Pattern: "spam@example.com", Action: Reject},
		{Pattern: "example.com", Action: Accept},
		{Pattern: ".corp.test", Action: Accept},
		{Pattern: "ALL", Action: Reject},
	}
	cp, err := compile(&Policy{RAT: rat})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		addr string
		want bool
	}{
		{"bob@example.com", true},
		{"BOB@Example.COM", true},
		{"spam@example.com", false},
		{"bob@sub.example.com", false},
		{"bob@mail.corp.test", true},
		{"bob@corp.test", false},
		{"postmaster@anywhere.test", true},
		{"bob@elsewhere.test", false},
	}
	for _, tt := range tests {
		if got := cp.ratAccepts(tt.addr); got != tt.want {
			t.Errorf("ratAccepts(%q) = %v, want %v", tt.addr, got, tt.want)
		}
	}
	// An empty RAT accepts nothing.
	cp, _ = compile(&Policy{})
	if cp.ratAccepts("bob@example.com") {
		t.Errorf("ratAccepts with an empty RAT = true, want false")
	}
}

func TestValidate(t *testing.T) {
	flows := []FlowPolicy{{Name: Accepted, Action: Accept}}
	tests := []struct {
		name   string
		policy *Policy
		want   string // the user-safe message; "" for valid
	}{
		{"default", DefaultPolicy(), ""},
		{"nil", nil, "policy is missing"},
		{"unknown flow policy", &Policy{FlowPolicies: flows, SenderGroups: []SenderGroup{{Name: "G", FlowPolicy: "NOPE"}}},
			`sender group "G": unknown flow policy "NOPE"`},
		{"bad source", &Policy{FlowPolicies: flows, SenderGroups: []SenderGroup{{Name: "G", Sources: []string{"10.0.0.0/33"}, FlowPolicy: Accepted}}},
			`sender group "G": bad source "10.0.0.0/33"`},
		{"duplicate group", &Policy{FlowPolicies: flows, SenderGroups: []SenderGroup{{Name: "G", FlowPolicy: Accepted}, {Name: "G", FlowPolicy: Accepted}}},
			`sender group "G" is defined twice`},
		{"bad action", &Policy{FlowPolicies: []FlowPolicy{{Name: "F", Action: "ALLOW"}}},
			`flow policy "F": unknown action "ALLOW" (want ACCEPT, REJECT, TCPREFUSE, RELAY or CONTINUE)`},
		{"negative limit", &Policy{FlowPolicies: []FlowPolicy{{Name: "F", Action: Accept, MaxMessageSize: -1}}},
			`flow policy "F": limits must not be negative`},
		{"bad RAT pattern", &Policy{RAT: []RATEntry{{Pattern: "exa mple.com", Action: Accept}}},
			`RAT: bad pattern "exa mple.com"`},
		{"bad RAT action", &Policy{RAT: []RATEntry{{Pattern: "example.com", Action: Relay}}},
			`RAT "example.com": unknown action "RELAY" (want ACCEPT or REJECT)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.policy.Validate()
			if got := sightline.ErrorMessage(err); got != tt.want {
				t.Errorf("Validate() message = %q, want %q", got, tt.want)
			}
			if err != nil && sightline.ErrorKind(err) != sightline.Invalid {
				t.Errorf("Validate() kind = %q, want %q", sightline.ErrorKind(err), sightline.Invalid)
			}
		})
	}
}

func TestPolicyJSON(t *testing.T) {
	in := DefaultPolicy()
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out Policy
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(in, &out); diff != "" {
		t.Errorf("JSON round trip mismatch (-want +got):\n%s", diff)
	}
	var keys struct {
		FlowPolicies []map[string]any `json:"flow_policies"`
	}
	if err := json.Unmarshal(b, &keys); err != nil {
		t.Fatal(err)
	}
	if _, ok := keys.FlowPolicies[0]["max_concurrent_connections_per_ip"]; !ok {
		t.Errorf("JSON %s: want snake_case key max_concurrent_connections_per_ip", b)
	}
}

func TestParseSource(t *testing.T) {
	tests := []struct {
		in, want string // want "" means an error
	}{
		{"*", "ALL"},
		{"all", "ALL"},
		{"192.0.2.7", "192.0.2.7"},
		{"10.1.2.3/8", "10.0.0.0/8"},
		{"::ffff:192.0.2.7", "192.0.2.7"},
		{"::ffff:10.0.0.0/104", "10.0.0.0/8"},
		{"2001:DB8::1", "2001:db8::1"},
		{"Mail.Example.COM", "mail.example.com"},
		{".example.com", ".example.com"},
		{"10.0.0.0/33", ""},
		{"fe80::1%eth0", ""},
		{"exa mple.com", ""},
		{"-bad.example", ""},
		{"", ""},
	}
	for _, tt := range tests {
		src, err := parseSource(tt.in)
		got := ""
		if err == nil {
			got = src.String()
		}
		if got != tt.want {
			t.Errorf("parseSource(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestReverseDNS(t *testing.T) {
	r := resolver{
		ptr: map[string][]string{
			"192.0.2.1": {"mail.example.test."},
			"192.0.2.2": {"liar.example.test."},
			"192.0.2.3": {"bad_name.test.", "second.example.test."},
		},
		host: map[string][]string{
			"mail.example.test":   {"192.0.2.1"},
			"liar.example.test":   {"198.51.100.9"},
			"second.example.test": {"192.0.2.3"},
		},
	}
	tests := []struct {
		ip     string
		name   string
		verify bool
	}{
		{"192.0.2.1", "mail.example.test", true},
		{"192.0.2.2", "liar.example.test", false},
		{"192.0.2.3", "second.example.test", true},
		{"192.0.2.4", "", false},
	}
	for _, tt := range tests {
		name, ok := reverseDNS(context.Background(), r, netip.MustParseAddr(tt.ip))
		if name != tt.name || ok != tt.verify {
			t.Errorf("reverseDNS(%s) = %q, %v; want %q, %v", tt.ip, name, ok, tt.name, tt.verify)
		}
	}
}

func TestCheckAddress(t *testing.T) {
	tests := []struct {
		addr string
		utf8 bool
		want addrProblem
	}{
		{"bob@example.com", false, addrOK},
		{"bob@[192.0.2.1]", false, addrOK},
		{"bob@[IPv6:2001:db8::1]", false, addrOK},
		{"bob@[IPv6:192.0.2.1]", false, addrBad},
		{"bob@example", false, addrOK},
		{"bob@", false, addrBad},
		{"@example.com", false, addrBad},
		{"bob@exa mple.com", false, addrBad},
		{"bob\x01@example.com", false, addrBad},
		{"bøb@exämple.com", false, addrNeedsUTF8},
		{"bøb@exämple.com", true, addrOK},
		{"bob@example.com\xff", true, addrBad},
	}
	for _, tt := range tests {
		if got := checkAddress(tt.addr, tt.utf8); got != tt.want {
			t.Errorf("checkAddress(%q, %v) = %v, want %v", tt.addr, tt.utf8, got, tt.want)
		}
	}
}

func TestLoginServer(t *testing.T) {
	var gotUser, gotPass string
	l := &loginServer{auth: func(u, p string) error { gotUser, gotPass = u, p; return nil }}
	steps := []struct {
		response      []byte
		wantChallenge string
		wantDone      bool
	}{
		{nil, "Username:", false},
		{[]byte("alice"), "Password:", false},
		{[]byte("secret"), "", true},
	}
	for i, st := range steps {
		ch, done, err := l.Next(st.response)
		if string(ch) != st.wantChallenge || done != st.wantDone || err != nil {
			t.Fatalf("step %d: Next(%q) = %q, %v, %v; want %q, %v, nil", i, st.response, ch, done, err, st.wantChallenge, st.wantDone)
		}
	}
	if gotUser != "alice" || gotPass != "secret" {
		t.Errorf("authenticated %q/%q, want alice/secret", gotUser, gotPass)
	}
	if _, _, err := l.Next([]byte("more")); err == nil {
		t.Errorf("Next after done: err = nil, want an error")
	}
}
