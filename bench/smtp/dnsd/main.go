// Command dnsd is the SMTP benchmark's DNS server: it answers on loopback
// from a fixed zone, at once, so that the gateway's SPF, DKIM, DMARC and
// reverse-DNS checks run for real without a network. Names outside the zone
// get NXDOMAIN with a negative TTL, as a real resolver would cache them.
//
//	go run ./bench/smtp/dnsd -addr 127.0.0.1:5353
//
// It serves UDP and TCP on the same port until interrupted.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/miekg/dns"
)

// zone passes SPF for mail from sender.test sent by loopback, publishes a
// DMARC policy for it, and names 127.0.0.1.
var zone = []string{
	`sender.test. 3600 IN TXT "v=spf1 ip4:127.0.0.0/8 -all"`,
	`_dmarc.sender.test. 3600 IN TXT "v=DMARC1; p=none"`,
	`sender.test. 3600 IN MX 10 mx.sender.test.`,
	`mx.sender.test. 3600 IN A 127.0.0.1`,
	`1.0.0.127.in-addr.arpa. 3600 IN PTR localhost.`,
	`localhost. 3600 IN A 127.0.0.1`,
	`gen.test. 3600 IN A 127.0.0.1`,
}

const negativeTTL = 3600

func main() {
	addr := flag.String("addr", "127.0.0.1:5353", "UDP and TCP listen `address`")
	flag.Parse()
	if err := run(*addr); err != nil {
		fmt.Fprintln(os.Stderr, "dnsd:", err)
		os.Exit(1)
	}
}

func run(addr string) error {
	records := map[string][]dns.RR{}
	for _, line := range zone {
		rr, err := dns.NewRR(line)
		if err != nil {
			return fmt.Errorf("zone line %q: %w", line, err)
		}
		name := strings.ToLower(rr.Header().Name)
		records[name] = append(records[name], rr)
	}
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		m.Authoritative = true
		if len(req.Question) == 1 {
			q := req.Question[0]
			rrs, known := records[strings.ToLower(q.Name)]
			for _, rr := range rrs {
				if rr.Header().Rrtype == q.Qtype {
					m.Answer = append(m.Answer, rr)
				}
			}
			if !known {
				m.Rcode = dns.RcodeNameError
			}
			if len(m.Answer) == 0 {
				m.Ns = []dns.RR{&dns.SOA{
					Hdr: dns.RR_Header{Name: "test.", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: negativeTTL},
					Ns:  "ns.test.", Mbox: "hostmaster.test.", Serial: 1, Refresh: 3600, Retry: 600,
					Expire: 86400, Minttl: negativeTTL,
				}}
			}
		}
		w.WriteMsg(m)
	})
	udp := &dns.Server{Addr: addr, Net: "udp", Handler: handler}
	tcp := &dns.Server{Addr: addr, Net: "tcp", Handler: handler}
	errc := make(chan error, 2)
	go func() { errc <- udp.ListenAndServe() }()
	go func() { errc <- tcp.ListenAndServe() }()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	udp.Shutdown()
	tcp.Shutdown()
	return nil
}
