package ui

import (
	"slices"
	"strings"

	"github.com/sightline/sightline/internal/gateway/pipeline"
	cf "github.com/sightline/sightline/internal/gateway/pipeline/contentfilter"
	"github.com/sightline/sightline/internal/gateway/queue"
	"github.com/sightline/sightline/internal/gateway/smtpd"
	"golang.org/x/net/html"
)

type (
	cfFilter    = cf.Filter
	cfCondition = cf.Condition
	cfAction    = cf.Action
	htmlNode    = html.Node
	form_       = form[cf.Filter]
)

func smtpdSenderGroup(name, flow string, sources ...string) smtpd.SenderGroup {
	return smtpd.SenderGroup{Name: name, Sources: sources, FlowPolicy: flow}
}

func pipelineAV(enabled bool, onVirus, onError, quarantine string) pipeline.AntiVirusRules {
	return pipeline.AntiVirusRules{Enabled: enabled, OnVirus: onVirus, OnError: onError, Quarantine: quarantine}
}

func pipelineDMARC(enforce bool, policies map[string]bool, rejectType, rejectQuarantine, quarantine string) pipeline.DMARCRules {
	return pipeline.DMARCRules{Enforce: enforce, Policies: policies,
		Reject: pipeline.Disposition{Type: rejectType, Quarantine: rejectQuarantine}, Quarantine: quarantine}
}

func pipelineList(name, kind, mode, action, text string, entries ...string) pipeline.List {
	return pipeline.List{Name: name, Kind: kind, Mode: mode, Entries: entries, Action: pipeline.Disposition{Type: action, Text: text}}
}

func routes(domain, tls string, hosts ...string) []queue.Route {
	return []queue.Route{{Domain: domain, Hosts: hosts, TLS: tls}}
}

func slicesSortAccounts(as []Account) {
	slices.SortFunc(as, func(a, b Account) int { return strings.Compare(a.Name, b.Name) })
}
