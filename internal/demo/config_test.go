package demo

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sightline/sightline/internal/gateway/config"
	"github.com/sightline/sightline/internal/gateway/mailflow"
	"github.com/sightline/sightline/internal/gateway/pipeline"
	"github.com/sightline/sightline/internal/gateway/smtpd"
)

func demoConfig(t *testing.T) *config.Config {
	t.Helper()
	c := config.Default("gw.test")
	configure(c, "127.0.0.1:2526")
	if err := c.Validate(); err != nil {
		t.Fatalf("configure gives an invalid configuration: %v", err)
	}
	return c
}

// TestConfigureIdempotent checks that configuring twice changes nothing, so
// that a second start commits nothing, and that a user's own entries stay.
func TestConfigureIdempotent(t *testing.T) {
	c := config.Default("gw.test")
	c.Screening.Lists = []pipeline.List{{Name: "mine", Kind: pipeline.ListSender, Mode: pipeline.Blocklist, Entries: []string{"x@y.test"}}}
	configure(c, "127.0.0.1:2526")
	once, _ := json.Marshal(c)
	configure(c, "127.0.0.1:2526")
	twice, _ := json.Marshal(c)
	if diff := cmp.Diff(string(once), string(twice)); diff != "" {
		t.Errorf("configure twice differs from once (-once +twice):\n%s", diff)
	}
	if got := routedSink(c); got != "127.0.0.1:2526" {
		t.Errorf("routedSink = %q, want 127.0.0.1:2526", got)
	}
	if c.SMTP.SenderGroups[0].Name != SenderGroup || c.SMTP.RAT[0].Pattern != OrgDomain {
		t.Errorf("HAT starts with %q and RAT with %q, want %s and %s first", c.SMTP.SenderGroups[0].Name, c.SMTP.RAT[0].Pattern, SenderGroup, OrgDomain)
	}
	var names []string
	for _, l := range c.Screening.Lists {
		names = append(names, l.Name)
	}
	if want := []string{"mine", ListURLs, ListHashes}; !slices.Equal(names, want) {
		t.Errorf("lists = %q, want %q", names, want)
	}
	configure(c, "127.0.0.1:2600")
	if got := routedSink(c); got != "127.0.0.1:2600" {
		t.Errorf("routedSink after a new address = %q, want 127.0.0.1:2600", got)
	}
}

// TestScreening runs the gateway's pipeline with the demo's rules on each
// kind of demo message and checks what the summary promises.
func TestScreening(t *testing.T) {
	c := demoConfig(t)
	var p pipeline.Pipeline
	if err := p.SetRules(c.Screening); err != nil {
		t.Fatal(err)
	}
	g := testGenerator()
	tests := []struct {
		m          *Message
		direction  string
		action     mailflow.Action
		status     string
		subjectTag bool
	}{
		{g.seed(), mailflow.Incoming, mailflow.Deliver, "", false},
		{g.newsletter(), mailflow.Incoming, mailflow.Deliver, "", false},
		{g.invoice(), mailflow.Incoming, mailflow.Deliver, "", false},
		{g.spam(), mailflow.Incoming, mailflow.Deliver, "", true},
		{g.phishing(1), mailflow.Incoming, mailflow.Quarantine, "Quarantined by Message Filter", false},
		{g.phishing(3), mailflow.Outgoing, mailflow.Quarantine, "Quarantined by Message Filter", false},
		{g.hashCaught(), mailflow.Incoming, mailflow.Quarantine, "Quarantined by Message Filter", false},
		{g.executable(), mailflow.Incoming, mailflow.Quarantine, "Quarantined by Content Filter", false},
		{g.executable(), mailflow.Outgoing, mailflow.Quarantine, "Quarantined by Content Filter", false},
		{g.eicar(), mailflow.Incoming, mailflow.Deliver, "", false}, // no anti-virus configured here
	}
	for i, tt := range tests {
		t.Run(tt.m.Kind+"/"+tt.direction, func(t *testing.T) {
			data := tt.m.Bytes()
			env := &mailflow.Envelope{MID: int64(i + 1), Direction: tt.direction, ClientIP: SourceIP, MailFlowPolicy: FlowPolicy,
				SenderGroup: SenderGroup, MailFrom: tt.m.From.Address, Recipients: tt.m.To, Size: int64(len(data))}
			v, err := p.Screen(context.Background(), env, data)
			if err != nil {
				t.Fatal(err)
			}
			if v.Action != tt.action || v.Status != tt.status {
				t.Errorf("Screen(%s message) = %s %q (%s), want %s %q", tt.m.Kind, v.Action, v.Status, v.Reason, tt.action, tt.status)
			}
			if tagged := strings.HasPrefix(v.Record.FinalSubject, SpamTag); tagged != tt.subjectTag {
				t.Errorf("Screen(%s message) final subject = %q, want tagged %v", tt.m.Kind, v.Record.FinalSubject, tt.subjectTag)
			}
		})
	}
}

// TestDMARCNotEnforcedForDemo checks that the demo's flow policy leaves
// DMARC unenforced and the other policies as they were.
func TestDMARCNotEnforcedForDemo(t *testing.T) {
	c := demoConfig(t)
	want := map[string]bool{"RELAYED": false, FlowPolicy: false}
	if diff := cmp.Diff(want, c.Screening.DMARC.Policies); diff != "" {
		t.Errorf("DMARC policies mismatch (-want +got):\n%s", diff)
	}
	if i := slices.IndexFunc(c.SMTP.FlowPolicies, func(f smtpd.FlowPolicy) bool { return f.Name == FlowPolicy }); i < 0 ||
		c.SMTP.FlowPolicies[i].Action != smtpd.Accept {
		t.Errorf("flow policies = %+v, want %s accepting", c.SMTP.FlowPolicies, FlowPolicy)
	}
}
