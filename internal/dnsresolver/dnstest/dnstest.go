// Package dnstest runs a small authoritative DNS server on loopback for tests,
// so that SPF, DKIM, DMARC, PTR and MX lookups can be answered without a network.
package dnstest

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// NegativeTTL is the SOA minimum the server puts in the authority section of
// NXDOMAIN and no-data answers, so resolvers can cache them.
const NegativeTTL = 60

// Server answers queries over UDP and TCP on the same loopback port from an
// in-memory zone. It is safe for concurrent use; records can be changed while
// it runs.
type Server struct {
	udp, tcp *dns.Server
	addr     string

	mu      sync.Mutex
	records map[string][]dns.RR      // lowercased FQDN owner → records
	rcodes  map[string]int           // lowercased FQDN → forced rcode
	queries map[string]int           // "name TYPE" → count
	delay   map[string]chan struct{} // lowercased FQDN → answer only once closed
}

// Start runs a server on 127.0.0.1 holding records, each a zone-file line such
// as `example.com. 300 IN TXT "v=spf1 -all"`, and stops it when the test ends.
// A record that does not parse fails the test.
func Start(tb testing.TB, records ...string) *Server {
	tb.Helper()
	s := &Server{
		records: map[string][]dns.RR{},
		rcodes:  map[string]int{},
		queries: map[string]int{},
		delay:   map[string]chan struct{}{},
	}
	if err := s.Replace(records...); err != nil {
		tb.Fatalf("dnstest: %v", err)
	}
	// UDP and TCP must share the port; retry when the TCP side is taken.
	var pc net.PacketConn
	var ln net.Listener
	for i := 0; ; i++ {
		var err error
		pc, err = net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			tb.Fatalf("dnstest: listen udp: %v", err)
		}
		ln, err = net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			break
		}
		pc.Close()
		if i == 20 {
			tb.Fatalf("dnstest: listen tcp: %v", err)
		}
	}
	s.addr = pc.LocalAddr().String()
	s.udp = s.serve(tb, &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(s.handle)})
	s.tcp = s.serve(tb, &dns.Server{Listener: ln, Handler: dns.HandlerFunc(s.handle)})
	tb.Cleanup(func() {
		s.mu.Lock()
		for name, ch := range s.delay {
			close(ch)
			delete(s.delay, name)
		}
		s.mu.Unlock()
		s.udp.Shutdown()
		s.tcp.Shutdown()
	})
	return s
}

func (s *Server) serve(tb testing.TB, srv *dns.Server) *dns.Server {
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	srv.ReadTimeout = 5 * time.Second
	srv.WriteTimeout = 5 * time.Second
	go srv.ActivateAndServe()
	<-started
	return srv
}

// Addr returns the server's "127.0.0.1:port", the same for UDP and TCP.
func (s *Server) Addr() string { return s.addr }

// Replace swaps the whole zone for records (zone-file lines).
func (s *Server) Replace(records ...string) error {
	m := map[string][]dns.RR{}
	for _, line := range records {
		rr, err := dns.NewRR(line)
		if err != nil {
			return fmt.Errorf("parse record %q: %w", line, err)
		}
		if rr == nil {
			return fmt.Errorf("parse record %q: empty", line)
		}
		name := strings.ToLower(rr.Header().Name)
		m[name] = append(m[name], rr)
	}
	s.mu.Lock()
	s.records = m
	s.mu.Unlock()
	return nil
}

// SetRcode makes every query for name answer with rcode (for example
// dns.RcodeServerFailure); dns.RcodeSuccess restores normal answers.
func (s *Server) SetRcode(name string, rcode int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rcode == dns.RcodeSuccess {
		delete(s.rcodes, key(name))
		return
	}
	s.rcodes[key(name)] = rcode
}

// Hold makes queries for name wait, unanswered, until the returned function
// is called (or the test ends). It lets tests observe queries in flight.
func (s *Server) Hold(name string) (release func()) {
	ch := make(chan struct{})
	s.mu.Lock()
	s.delay[key(name)] = ch
	s.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			if s.delay[key(name)] == ch {
				delete(s.delay, key(name))
				close(ch)
			}
			s.mu.Unlock()
		})
	}
}

// Queries reports how many queries for name and qtype ("TXT", "A", …) the
// server has received, over UDP and TCP together.
func (s *Server) Queries(name, qtype string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries[key(name)+" "+strings.ToUpper(qtype)]
}

func key(name string) string { return strings.ToLower(dns.Fqdn(name)) }

func (s *Server) handle(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)

	s.mu.Lock()
	s.queries[name+" "+dns.TypeToString[q.Qtype]]++
	hold := s.delay[name]
	s.mu.Unlock()
	if hold != nil {
		<-hold
	}

	s.mu.Lock()
	if rc, ok := s.rcodes[name]; ok {
		m.Rcode = rc
	} else {
		s.answer(m, name, q.Qtype)
	}
	s.mu.Unlock()

	if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
		size := dns.MinMsgSize
		if opt := req.IsEdns0(); opt != nil && int(opt.UDPSize()) > size {
			size = int(opt.UDPSize())
		}
		m.Truncate(size)
	}
	w.WriteMsg(m)
}

// answer fills m from the zone, following CNAMEs inside it. s.mu is held.
func (s *Server) answer(m *dns.Msg, name string, qtype uint16) {
	for range 8 {
		rrs := s.records[name]
		var cname *dns.CNAME
		for _, rr := range rrs {
			if rr.Header().Rrtype == qtype {
				m.Answer = append(m.Answer, dns.Copy(rr))
			} else if c, ok := rr.(*dns.CNAME); ok {
				cname = c
			}
		}
		if len(m.Answer) > 0 && m.Answer[len(m.Answer)-1].Header().Rrtype == qtype {
			return
		}
		if cname == nil || qtype == dns.TypeCNAME {
			break
		}
		m.Answer = append(m.Answer, dns.Copy(cname))
		name = strings.ToLower(cname.Target)
	}
	if !s.exists(name) {
		m.Rcode = dns.RcodeNameError
	}
	m.Ns = append(m.Ns, &dns.SOA{
		Hdr:     dns.RR_Header{Name: apex(name), Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: NegativeTTL},
		Ns:      "ns.dnstest.",
		Mbox:    "hostmaster.dnstest.",
		Serial:  1,
		Refresh: 3600,
		Retry:   600,
		Expire:  86400,
		Minttl:  NegativeTTL,
	})
}

// exists reports whether name owns records or is an ancestor of a name that
// does (an empty non-terminal), which makes its answer no-data, not NXDOMAIN.
func (s *Server) exists(name string) bool {
	for owner := range s.records {
		if owner == name || strings.HasSuffix(owner, "."+name) {
			return true
		}
	}
	return false
}

// apex returns the last two labels of name, a good enough zone for the SOA.
func apex(name string) string {
	labels := dns.SplitDomainName(name)
	if len(labels) <= 2 {
		return dns.Fqdn(name)
	}
	return dns.Fqdn(strings.Join(labels[len(labels)-2:], "."))
}

// Blackhole returns the address of a loopback UDP and TCP endpoint that
// accepts queries and never answers, closed when the test ends.
func Blackhole(tb testing.TB) string {
	tb.Helper()
	for i := 0; ; i++ {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			tb.Fatalf("dnstest: listen udp: %v", err)
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err != nil {
			pc.Close()
			if i == 20 {
				tb.Fatalf("dnstest: listen tcp: %v", err)
			}
			continue
		}
		var conns sync.WaitGroup
		conns.Go(func() {
			// Hold accepted connections open without reading or writing.
			var held []net.Conn
			for {
				c, err := ln.Accept()
				if err != nil {
					for _, c := range held {
						c.Close()
					}
					return
				}
				held = append(held, c)
			}
		})
		tb.Cleanup(func() {
			pc.Close()
			ln.Close()
			conns.Wait()
		})
		return pc.LocalAddr().String()
	}
}
