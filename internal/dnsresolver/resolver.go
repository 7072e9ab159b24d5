// Package dnsresolver is the gateway's one DNS stub resolver: every lookup for
// SPF, DKIM, DMARC, reverse DNS and MX goes through it, with per-query
// timeouts, a bounded TTL cache and de-duplication of identical queries.
//
// Its methods have the signatures of *net.Resolver, and its errors are
// *net.DNSError values (never wrapped) so that libraries written against the
// standard resolver — blitiri.com.ar/go/spf, go-msgauth dkim and dmarc —
// classify them correctly: IsNotFound for NXDOMAIN and for no-data (tell them
// apart with errors.Is and ErrNXDomain or ErrNoData), Temporary() for
// timeouts and server failures.
package dnsresolver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sync/singleflight"
)

// Defaults for the zero values of Resolver's fields.
const (
	DefaultTimeout     = 2 * time.Second
	DefaultCacheSize   = 10000
	DefaultMaxTTL      = time.Hour
	DefaultNegativeTTL = 5 * time.Minute
)

// ResolvConf is the file read for servers when Resolver.Servers is empty.
const ResolvConf = "/etc/resolv.conf"

// Sentinels that a *net.DNSError with IsNotFound unwraps to.
var (
	ErrNXDomain = errors.New("no such host")   // the name does not exist (NXDOMAIN)
	ErrNoData   = errors.New("no such record") // the name exists without records of the type asked
)

// udpSize is the EDNS0 buffer size advertised over UDP (the DNS flag day 2020
// value); larger answers come back truncated and are asked again over TCP.
const udpSize = 1232

// Resolver is a caching DNS stub resolver. Its zero value is ready to use and
// reads ResolvConf. Fields must not change after the first lookup. It is safe
// for concurrent use.
type Resolver struct {
	// Servers are the recursive resolvers to ask, "host:port" (a missing port
	// means 53), tried in order. Empty means the nameservers of ResolvConf,
	// or 127.0.0.1:53 and [::1]:53 when it cannot be read.
	Servers []string

	// Timeout bounds one query to one server, the TCP retry of a truncated
	// answer included. Zero means DefaultTimeout. A lookup tries each server
	// once, so it takes at most len(Servers)*Timeout, and never longer than
	// its context allows.
	Timeout time.Duration

	// CacheSize is the number of answers kept, least recently used dropped
	// first. Zero means DefaultCacheSize; negative disables the cache.
	CacheSize int

	// MinTTL and MaxTTL clamp how long a positive answer is cached (its
	// smallest record TTL). Zero MinTTL means no floor; zero MaxTTL means
	// DefaultMaxTTL.
	MinTTL, MaxTTL time.Duration

	// NegativeTTL caps how long NXDOMAIN and no-data answers are cached; it
	// is used as is when the answer carries no SOA record. Zero means
	// DefaultNegativeTTL. Failures (timeouts, SERVFAIL) are never cached.
	NegativeTTL time.Duration

	// Logger receives debug records about failing servers. Nil means discard.
	Logger *slog.Logger

	now    func() time.Time // the clock; tests replace it
	joined func()           // tests: called once a caller waits on a query

	once    sync.Once
	log     *slog.Logger
	servers []string
	cache   *cache
	flight  singleflight.Group
}

func (r *Resolver) init() {
	r.once.Do(func() {
		if r.now == nil {
			r.now = time.Now
		}
		r.log = r.Logger
		if r.log == nil {
			r.log = slog.New(slog.DiscardHandler)
		}
		r.log = r.log.With("component", "dnsresolver")
		servers := r.Servers
		if len(servers) == 0 {
			servers = systemServers(r.log)
		}
		for _, s := range servers {
			if _, _, err := net.SplitHostPort(s); err != nil {
				s = net.JoinHostPort(strings.Trim(s, "[]"), "53")
			}
			r.servers = append(r.servers, s)
		}
		size := r.CacheSize
		if size == 0 {
			size = DefaultCacheSize
		}
		if size > 0 {
			r.cache = newCache(size)
		}
	})
}

func systemServers(log *slog.Logger) []string {
	cfg, err := dns.ClientConfigFromFile(ResolvConf)
	if err == nil && len(cfg.Servers) > 0 {
		var out []string
		for _, s := range cfg.Servers {
			out = append(out, net.JoinHostPort(s, cfg.Port))
		}
		return out
	}
	log.Warn("no nameservers from resolv.conf, using localhost", "path", ResolvConf, "err", err)
	return []string{"127.0.0.1:53", "[::1]:53"}
}

// LookupTXT returns the TXT records of name, the strings of each record
// concatenated, as net.Resolver.LookupTXT does.
func (r *Resolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	a, err := r.lookup(ctx, name, dns.TypeTXT)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(a.rrs))
	for i, rr := range a.rrs {
		out[i] = rr.txt
	}
	return out, nil
}

// LookupMX returns the MX records of name sorted by preference; hosts are
// fully qualified, with the trailing dot.
func (r *Resolver) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	a, err := r.lookup(ctx, name, dns.TypeMX)
	if err != nil {
		return nil, err
	}
	out := make([]*net.MX, len(a.rrs))
	for i, rr := range a.rrs {
		out[i] = &net.MX{Host: rr.host, Pref: rr.pref}
	}
	slices.SortStableFunc(out, func(a, b *net.MX) int { return int(a.Pref) - int(b.Pref) })
	return out, nil
}

// LookupIPAddr returns the IPv4 then IPv6 addresses of host, asked in
// parallel. An IP literal is returned as is. The error is the one of the
// more telling family: a temporary failure outranks not-found.
func (r *Resolver) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	if ip := net.ParseIP(host); ip != nil {
		return []net.IPAddr{{IP: ip}}, nil
	}
	var v4, v6 *answer
	var err4, err6 error
	var wg sync.WaitGroup
	wg.Go(func() { v6, err6 = r.lookup(ctx, host, dns.TypeAAAA) })
	v4, err4 = r.lookup(ctx, host, dns.TypeA)
	wg.Wait()
	var out []net.IPAddr
	for _, a := range []*answer{v4, v6} {
		if a == nil {
			continue
		}
		for _, rr := range a.rrs {
			out = append(out, net.IPAddr{IP: net.IP(rr.ip)})
		}
	}
	switch {
	case len(out) > 0:
		return out, nil
	case isTemporary(err4):
		return nil, err4
	case isTemporary(err6):
		return nil, err6
	case err4 != nil:
		return nil, err4
	default:
		return nil, err6
	}
}

// LookupHost returns the addresses of host as strings, like LookupIPAddr.
func (r *Resolver) LookupHost(ctx context.Context, host string) ([]string, error) {
	ips, err := r.LookupIPAddr(ctx, host)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = ip.IP.String()
	}
	return out, nil
}

// LookupAddr returns the PTR names of the IP address addr, fully qualified.
func (r *Resolver) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	arpa, err := dns.ReverseAddr(addr)
	if err != nil || net.ParseIP(addr) == nil {
		return nil, &net.DNSError{Err: "unrecognized address", Name: addr}
	}
	a, err := r.lookup(ctx, arpa, dns.TypePTR)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(a.rrs))
	for i, rr := range a.rrs {
		out[i] = rr.host
	}
	return out, nil
}

func isTemporary(err error) bool {
	var dnsErr *net.DNSError
	return errors.As(err, &dnsErr) && dnsErr.Temporary()
}

// lookup answers one question from the cache or, sharing the query with
// concurrent callers of the same question, from the servers.
func (r *Resolver) lookup(ctx context.Context, name string, qtype uint16) (*answer, error) {
	r.init()
	fqdn := strings.ToLower(dns.Fqdn(name))
	if _, ok := dns.IsDomainName(fqdn); !ok || len(fqdn) > 254 || fqdn == "." {
		return nil, &net.DNSError{Err: "invalid domain name", Name: name, IsNotFound: true, UnwrapErr: ErrNXDomain}
	}
	k := cacheKey{fqdn, qtype}
	if a := r.cache.get(k, r.now()); a != nil {
		return a, a.result(name)
	}
	ch := r.flight.DoChan(fqdn+" "+dns.TypeToString[qtype], func() (any, error) {
		// The query outlives a caller that gives up, so that the others
		// sharing it, and the cache, still get the answer.
		a, err := r.query(context.WithoutCancel(ctx), fqdn, qtype)
		if err == nil {
			r.cache.put(k, a)
		}
		return a, err
	})
	if r.joined != nil {
		r.joined()
	}
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, rename(res.Err, name)
		}
		a := res.Val.(*answer)
		return a, a.result(name)
	case <-ctx.Done():
		return nil, &net.DNSError{
			Err:         ctx.Err().Error(),
			Name:        name,
			IsTimeout:   errors.Is(ctx.Err(), context.DeadlineExceeded),
			IsTemporary: true,
			UnwrapErr:   ctx.Err(),
		}
	}
}

// result returns nil for a positive answer, else a fresh copy of its error
// naming name as the caller spelled it.
func (a *answer) result(name string) error {
	if a.err == nil {
		return nil
	}
	return rename(a.err, name)
}

func rename(err error, name string) error {
	var dnsErr *net.DNSError
	if !errors.As(err, &dnsErr) {
		return err
	}
	e := *dnsErr
	e.Name = name
	return &e
}

// query asks the servers in turn until one gives an answer (records,
// NXDOMAIN or no-data). Only a temporary *net.DNSError is returned as an
// error; negative answers are answers.
func (r *Resolver) query(ctx context.Context, fqdn string, qtype uint16) (*answer, error) {
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	var last error
	var lastServer string
	for _, server := range r.servers {
		if ctx.Err() != nil {
			break
		}
		actx, cancel := context.WithTimeout(ctx, timeout)
		resp, err := exchange(actx, server, fqdn, qtype, timeout)
		cancel()
		if err == nil {
			switch resp.Rcode {
			case dns.RcodeSuccess, dns.RcodeNameError:
				return r.parse(resp, fqdn, qtype, server), nil
			default:
				err = fmt.Errorf("server answered %s", dns.RcodeToString[resp.Rcode])
			}
		}
		r.log.Debug("dns query failed", "server", server, "name", fqdn, "type", dns.TypeToString[qtype], "err", err)
		last, lastServer = err, server
	}
	if last == nil {
		last = ctx.Err()
	}
	if last == nil {
		last = errors.New("no servers")
	}
	var netErr net.Error
	return nil, &net.DNSError{
		Err:         last.Error(),
		Name:        fqdn,
		Server:      lastServer,
		IsTimeout:   errors.As(last, &netErr) && netErr.Timeout(),
		IsTemporary: true,
	}
}

// exchange sends one question to server over UDP, then over TCP if the
// answer was truncated, and checks that the reply answers that question.
func exchange(ctx context.Context, server, fqdn string, qtype uint16, timeout time.Duration) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(fqdn, qtype)
	m.SetEdns0(udpSize, false)
	c := &dns.Client{Net: "udp", Timeout: timeout, UDPSize: udpSize}
	resp, _, err := c.ExchangeContext(ctx, m, server)
	if resp != nil && resp.Truncated {
		c.Net = "tcp"
		resp, _, err = c.ExchangeContext(ctx, m, server)
	}
	if err != nil {
		return nil, err
	}
	if len(resp.Question) != 1 || !strings.EqualFold(resp.Question[0].Name, fqdn) || resp.Question[0].Qtype != qtype {
		return nil, errors.New("reply does not match the question")
	}
	return resp, nil
}

// parse turns a NOERROR or NXDOMAIN reply into an answer with its expiry.
// Records are taken from the CNAME chain that starts at fqdn.
func (r *Resolver) parse(resp *dns.Msg, fqdn string, qtype uint16, server string) *answer {
	chain := map[string]bool{fqdn: true}
	var ttl uint32 = 1<<32 - 1
	for target := fqdn; ; {
		next := ""
		for _, rr := range resp.Answer {
			if c, ok := rr.(*dns.CNAME); ok && strings.EqualFold(c.Hdr.Name, target) {
				next = strings.ToLower(c.Target)
				ttl = min(ttl, c.Hdr.Ttl)
				break
			}
		}
		if next == "" || chain[next] {
			break
		}
		chain[next] = true
		target = next
	}
	a := &answer{}
	for _, rr := range resp.Answer {
		h := rr.Header()
		if h.Rrtype != qtype || !chain[strings.ToLower(h.Name)] {
			continue
		}
		var rec record
		switch v := rr.(type) {
		case *dns.TXT:
			rec.txt = strings.Join(v.Txt, "")
		case *dns.MX:
			rec.host, rec.pref = v.Mx, v.Preference
		case *dns.PTR:
			rec.host = v.Ptr
		case *dns.A:
			rec.ip = v.A
		case *dns.AAAA:
			rec.ip = v.AAAA
		default:
			continue
		}
		a.rrs = append(a.rrs, rec)
		ttl = min(ttl, h.Ttl)
	}
	now := r.now()
	if len(a.rrs) > 0 {
		d := time.Duration(ttl) * time.Second
		maxTTL := r.MaxTTL
		if maxTTL <= 0 {
			maxTTL = DefaultMaxTTL
		}
		a.expires = now.Add(min(max(d, r.MinTTL), maxTTL))
		return a
	}

	negTTL := r.NegativeTTL
	if negTTL <= 0 {
		negTTL = DefaultNegativeTTL
	}
	for _, rr := range resp.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			negTTL = min(negTTL, time.Duration(min(soa.Hdr.Ttl, soa.Minttl))*time.Second)
			break
		}
	}
	a.expires = now.Add(negTTL)
	if resp.Rcode == dns.RcodeNameError {
		a.err = &net.DNSError{Err: ErrNXDomain.Error(), Name: fqdn, Server: server, IsNotFound: true, UnwrapErr: ErrNXDomain}
	} else {
		a.err = &net.DNSError{Err: ErrNoData.Error(), Name: fqdn, Server: server, IsNotFound: true, UnwrapErr: ErrNoData}
	}
	return a
}
