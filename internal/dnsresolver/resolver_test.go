package dnsresolver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"
	"github.com/sightline/sightline/internal/dnsresolver/dnstest"
)

var zone = []string{
	`example.com. 300 IN TXT "v=spf1 ip4:192.0.2.0/24 -all"`,
	`example.com. 300 IN TXT "part one " "part two"`,
	`example.com. 300 IN MX 20 mx2.example.com.`,
	`example.com. 300 IN MX 10 mx1.example.com.`,
	`mx1.example.com. 300 IN A 192.0.2.10`,
	`mx1.example.com. 300 IN AAAA 2001:db8::10`,
	`v4only.example.com. 300 IN A 192.0.2.11`,
	`alias.example.com. 300 IN CNAME mx1.example.com.`,
	`sel._domainkey.example.com. 300 IN TXT "v=DKIM1; p=AAAA"`,
	`10.2.0.192.in-addr.arpa. 300 IN PTR mx1.example.com.`,
}

// clock is a settable time source for TTL tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newResolver(servers ...string) (*Resolver, *clock) {
	c := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	return &Resolver{Servers: servers, Timeout: 500 * time.Millisecond, now: c.now}, c
}

func TestLookups(t *testing.T) {
	srv := dnstest.Start(t, zone...)
	r, _ := newResolver(srv.Addr())
	ctx := t.Context()
	tests := []struct {
		name   string
		lookup func() (any, error)
		want   any
	}{
		{"TXT concatenates strings", func() (any, error) { return r.LookupTXT(ctx, "Example.COM") },
			[]string{"v=spf1 ip4:192.0.2.0/24 -all", "part one part two"}},
		{"TXT under empty non-terminal", func() (any, error) { return r.LookupTXT(ctx, "sel._domainkey.example.com.") },
			[]string{"v=DKIM1; p=AAAA"}},
		{"MX sorted by preference", func() (any, error) { return r.LookupMX(ctx, "example.com") },
			[]*net.MX{{Host: "mx1.example.com.", Pref: 10}, {Host: "mx2.example.com.", Pref: 20}}},
		{"IPAddr both families", func() (any, error) { return r.LookupIPAddr(ctx, "mx1.example.com") },
			[]net.IPAddr{{IP: net.ParseIP("192.0.2.10").To4()}, {IP: net.ParseIP("2001:db8::10")}}},
		{"IPAddr IPv4 only", func() (any, error) { return r.LookupIPAddr(ctx, "v4only.example.com") },
			[]net.IPAddr{{IP: net.ParseIP("192.0.2.11").To4()}}},
		{"IPAddr literal", func() (any, error) { return r.LookupIPAddr(ctx, "2001:db8::1") },
			[]net.IPAddr{{IP: net.ParseIP("2001:db8::1")}}},
		{"Host through CNAME", func() (any, error) { return r.LookupHost(ctx, "alias.example.com") },
			[]string{"192.0.2.10", "2001:db8::10"}},
		{"Addr", func() (any, error) { return r.LookupAddr(ctx, "192.0.2.10") },
			[]string{"mx1.example.com."}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.lookup()
			if err != nil {
				t.Fatalf("lookup: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("lookup mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNotFound(t *testing.T) {
	srv := dnstest.Start(t, zone...)
	r, _ := newResolver(srv.Addr())
	tests := []struct {
		name     string
		lookup   func(context.Context) error
		sentinel error
	}{
		{"NXDOMAIN", func(ctx context.Context) error { _, err := r.LookupTXT(ctx, "nope.example.com"); return err }, ErrNXDomain},
		{"no data", func(ctx context.Context) error { _, err := r.LookupMX(ctx, "mx1.example.com"); return err }, ErrNoData},
		{"empty non-terminal", func(ctx context.Context) error { _, err := r.LookupTXT(ctx, "_domainkey.example.com"); return err }, ErrNoData},
		{"no address", func(ctx context.Context) error { _, err := r.LookupHost(ctx, "example.com"); return err }, ErrNoData},
		{"no host", func(ctx context.Context) error { _, err := r.LookupIPAddr(ctx, "nope.example.com"); return err }, ErrNXDomain},
		{"invalid name", func(ctx context.Context) error { _, err := r.LookupTXT(ctx, "a..b"); return err }, ErrNXDomain},
		{"name too long", func(ctx context.Context) error {
			_, err := r.LookupTXT(ctx, strings.Repeat("a.", 130)+"com")
			return err
		}, ErrNXDomain},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.lookup(t.Context())
			var dnsErr *net.DNSError
			if !errors.As(err, &dnsErr) {
				t.Fatalf("lookup error = %v (%T), want *net.DNSError", err, err)
			}
			if !dnsErr.IsNotFound || dnsErr.Temporary() || !errors.Is(err, tt.sentinel) {
				t.Errorf("lookup error = %#v, want IsNotFound, not temporary, wrapping %v", dnsErr, tt.sentinel)
			}
		})
	}
}

func TestLookupAddrInvalid(t *testing.T) {
	r, _ := newResolver("127.0.0.1:1")
	for _, addr := range []string{"", "not-an-ip", "1.2.3"} {
		if _, err := r.LookupAddr(t.Context(), addr); err == nil {
			t.Errorf("LookupAddr(%q) = nil error, want one", addr)
		}
	}
}

func TestCacheAndTTL(t *testing.T) {
	srv := dnstest.Start(t,
		`short.example.com. 30 IN TXT "a"`,
		`long.example.com. 86400 IN TXT "b"`,
		`zero.example.com. 0 IN TXT "c"`,
	)
	r, clk := newResolver(srv.Addr())
	r.MinTTL = 10 * time.Second
	r.MaxTTL = time.Hour
	r.NegativeTTL = time.Hour // the SOA minimum (dnstest.NegativeTTL) is lower and wins
	ctx := t.Context()

	lookup := func(name string) {
		t.Helper()
		_, err := r.LookupTXT(ctx, name)
		if err != nil && !strings.HasPrefix(name, "missing") {
			t.Fatalf("LookupTXT(%q): %v", name, err)
		}
	}
	steps := []struct {
		advance time.Duration
		want    map[string]int // queries seen by the server after the step
	}{
		{0, map[string]int{"short": 1, "long": 1, "zero": 1, "missing": 1}},
		{0, map[string]int{"short": 1, "long": 1, "zero": 1, "missing": 1}},                // all cached, zero TTL raised to MinTTL
		{11 * time.Second, map[string]int{"short": 1, "long": 1, "zero": 2, "missing": 1}}, // MinTTL over
		{20 * time.Second, map[string]int{"short": 2, "long": 1, "zero": 3, "missing": 1}}, // TTL 30 over
		{31 * time.Second, map[string]int{"short": 3, "long": 1, "zero": 4, "missing": 2}}, // negative TTL 60 over
		{time.Hour, map[string]int{"short": 4, "long": 2, "zero": 5, "missing": 3}},        // MaxTTL caps 86400
	}
	for i, st := range steps {
		clk.advance(st.advance)
		for _, n := range []string{"short", "long", "zero", "missing"} {
			lookup(n + ".example.com")
		}
		got := map[string]int{}
		for n := range st.want {
			got[n] = srv.Queries(n+".example.com", "TXT")
		}
		if diff := cmp.Diff(st.want, got); diff != "" {
			t.Errorf("step %d: server queries mismatch (-want +got):\n%s", i, diff)
		}
	}
}

func TestCacheBounded(t *testing.T) {
	var records []string
	for i := range 5 {
		records = append(records, fmt.Sprintf(`n%d.example.com. 300 IN TXT "x"`, i))
	}
	srv := dnstest.Start(t, records...)
	r, _ := newResolver(srv.Addr())
	r.CacheSize = 3
	for i := range 5 {
		if _, err := r.LookupTXT(t.Context(), fmt.Sprintf("n%d.example.com", i)); err != nil {
			t.Fatal(err)
		}
	}
	if got := r.cache.len(); got != 3 {
		t.Errorf("cache holds %d answers, want 3", got)
	}
	// n0 was evicted, n4 is still there.
	r.LookupTXT(t.Context(), "n0.example.com")
	r.LookupTXT(t.Context(), "n4.example.com")
	if got := srv.Queries("n0.example.com", "TXT"); got != 2 {
		t.Errorf("n0 queried %d times, want 2 (evicted)", got)
	}
	if got := srv.Queries("n4.example.com", "TXT"); got != 1 {
		t.Errorf("n4 queried %d times, want 1 (cached)", got)
	}
}

func TestCacheDisabled(t *testing.T) {
	srv := dnstest.Start(t, zone...)
	r, _ := newResolver(srv.Addr())
	r.CacheSize = -1
	for range 2 {
		if _, err := r.LookupTXT(t.Context(), "example.com"); err != nil {
			t.Fatal(err)
		}
	}
	if got := srv.Queries("example.com", "TXT"); got != 2 {
		t.Errorf("server queried %d times with the cache disabled, want 2", got)
	}
}

func TestDeadServer(t *testing.T) {
	dead := dnstest.Blackhole(t)
	r, _ := newResolver(dead)
	r.Timeout = 100 * time.Millisecond
	// The test context is a safety net: the resolver must give up by itself.
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	_, err := r.LookupTXT(ctx, "example.com")
	var dnsErr *net.DNSError
	if !errors.As(err, &dnsErr) || !dnsErr.IsTimeout || !dnsErr.Temporary() || dnsErr.IsNotFound {
		t.Fatalf("LookupTXT on a dead server: err = %#v, want a temporary timeout", err)
	}
	if ctx.Err() != nil {
		t.Fatalf("LookupTXT returned only when the test context expired: %v", err)
	}
	if dnsErr.Server != dead {
		t.Errorf("error names server %q, want %q", dnsErr.Server, dead)
	}
}

func TestCallerDeadline(t *testing.T) {
	r, _ := newResolver(dnstest.Blackhole(t))
	r.Timeout = time.Minute
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := r.LookupMX(ctx, "example.com")
	var dnsErr *net.DNSError
	if !errors.As(err, &dnsErr) || !dnsErr.Temporary() || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("LookupMX past the caller's deadline: err = %#v, want temporary wrapping DeadlineExceeded", err)
	}
}

func TestFailover(t *testing.T) {
	srv := dnstest.Start(t, zone...)
	r, _ := newResolver(dnstest.Blackhole(t), srv.Addr())
	r.Timeout = 100 * time.Millisecond
	got, err := r.LookupMX(t.Context(), "example.com")
	if err != nil || len(got) != 2 {
		t.Fatalf("LookupMX with the first server dead = %v, %v; want the second server's answer", got, err)
	}
}

func TestServerFailureNotCached(t *testing.T) {
	srv := dnstest.Start(t, zone...)
	srv.SetRcode("example.com", dns.RcodeServerFailure)
	r, _ := newResolver(srv.Addr())
	_, err := r.LookupTXT(t.Context(), "example.com")
	var dnsErr *net.DNSError
	if !errors.As(err, &dnsErr) || !dnsErr.Temporary() || dnsErr.IsNotFound || dnsErr.IsTimeout {
		t.Fatalf("LookupTXT on SERVFAIL: err = %#v, want temporary, not a timeout", err)
	}
	srv.SetRcode("example.com", dns.RcodeSuccess)
	if _, err := r.LookupTXT(t.Context(), "example.com"); err != nil {
		t.Fatalf("LookupTXT after recovery: %v", err)
	}
	if got := srv.Queries("example.com", "TXT"); got != 2 {
		t.Errorf("server queried %d times, want 2 (failures are not cached)", got)
	}
}

func TestTruncatedFallsBackToTCP(t *testing.T) {
	var big []string
	for i := range 20 {
		big = append(big, fmt.Sprintf(`big.example.com. 300 IN TXT "%03d%s"`, i, strings.Repeat("x", 200)))
	}
	srv := dnstest.Start(t, big...)
	r, _ := newResolver(srv.Addr())
	got, err := r.LookupTXT(t.Context(), "big.example.com")
	if err != nil {
		t.Fatalf("LookupTXT(big): %v", err)
	}
	if len(got) != 20 {
		t.Errorf("LookupTXT(big) returned %d records, want 20", len(got))
	}
	if q := srv.Queries("big.example.com", "TXT"); q != 2 {
		t.Errorf("server saw %d queries, want 2 (UDP then TCP)", q)
	}
}

// waitFor polls cond until it holds, failing the test after a generous bound.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestSharedQuery(t *testing.T) {
	srv := dnstest.Start(t, zone...)
	release := srv.Hold("example.com")
	defer release()
	r, _ := newResolver(srv.Addr())
	r.Timeout = 10 * time.Second
	r.CacheSize = -1 // only de-duplication may save the second query
	var joined atomic.Int32
	r.joined = func() { joined.Add(1) }

	const n = 8
	errs := make(chan error, n)
	for range n {
		go func() {
			got, err := r.LookupMX(t.Context(), "example.com")
			if err == nil && len(got) != 2 {
				err = fmt.Errorf("got %d MX, want 2", len(got))
			}
			errs <- err
		}()
	}
	waitFor(t, "callers to share the query", func() bool { return joined.Load() == n })
	release()
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("LookupMX: %v", err)
		}
	}
	if got := srv.Queries("example.com", "MX"); got != 1 {
		t.Errorf("server queried %d times by %d concurrent callers, want 1", got, n)
	}
}

func TestAbandonedQueryStillCached(t *testing.T) {
	srv := dnstest.Start(t, zone...)
	release := srv.Hold("example.com")
	defer release()
	r, _ := newResolver(srv.Addr())
	r.Timeout = 10 * time.Second
	var joined atomic.Int32
	r.joined = func() { joined.Add(1) }

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { _, err := r.LookupTXT(ctx, "example.com"); done <- err }()
	waitFor(t, "the query to reach the server", func() bool { return srv.Queries("example.com", "TXT") == 1 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("LookupTXT after cancel: err = %v, want context.Canceled", err)
	}
	// A second caller joins the abandoned query and gets its answer.
	second := make(chan error, 1)
	go func() { _, err := r.LookupTXT(t.Context(), "example.com"); second <- err }()
	waitFor(t, "the second caller to join", func() bool { return joined.Load() == 2 })
	release()
	if err := <-second; err != nil {
		t.Fatalf("LookupTXT joining the abandoned query: %v", err)
	}
	if got := srv.Queries("example.com", "TXT"); got != 1 {
		t.Errorf("server queried %d times, want 1", got)
	}
}

// FuzzParse feeds arbitrary replies from a (hostile) server to parse.
func FuzzParse(f *testing.F) {
	m := new(dns.Msg)
	m.SetQuestion("example.com.", dns.TypeMX)
	m.Answer = append(m.Answer,
		&dns.CNAME{Hdr: dns.RR_Header{Name: "example.com.", Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: 60}, Target: "b.example."},
		&dns.MX{Hdr: dns.RR_Header{Name: "b.example.", Rrtype: dns.TypeMX, Class: dns.ClassINET, Ttl: 60}, Preference: 5, Mx: "mx.b.example."})
	seed, err := m.Pack()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed, uint16(dns.TypeMX))
	f.Fuzz(func(t *testing.T, raw []byte, qtype uint16) {
		resp := new(dns.Msg)
		if resp.Unpack(raw) != nil {
			return
		}
		r, _ := newResolver("127.0.0.1:1")
		r.init()
		a := r.parse(resp, "example.com.", qtype, "127.0.0.1:1")
		if (len(a.rrs) == 0) == (a.err == nil) {
			t.Errorf("parse gave %d records and error %v: want exactly one of them", len(a.rrs), a.err)
		}
	})
}
