package dnsbltest

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/network/ipam/dnsbl"
)

// Zone is DNS data: A and TXT records by fully qualified name, and names
// whose lookups fail (SERVFAIL).
type Zone struct {
	A        map[string][]netip.Addr
	TXT      map[string][]string
	ServFail []string
}

// Factory returns a resolver that serves zone.
type Factory func(t *testing.T, zone Zone) dnsbl.Resolver

// FakeFactory serves zone from a dnsbl.FakeResolver.
func FakeFactory(t *testing.T, zone Zone) dnsbl.Resolver {
	f := dnsbl.NewFakeResolver()
	for n, a := range zone.A {
		f.SetA(n, a...)
	}
	for n, txt := range zone.TXT {
		f.SetTXT(n, txt...)
	}
	fail := map[string]bool{}
	for _, n := range zone.ServFail {
		fail[strings.ToLower(n)] = true
	}
	f.FailWith(func(name string) error {
		if fail[name] {
			return &net.DNSError{Err: "server misbehaving", Name: name, IsTemporary: true}
		}
		return nil
	})
	return f
}

// Serve runs a DNS server for zone on 127.0.0.1 (UDP, a free port) until
// the test ends and returns its address.
func Serve(t *testing.T, zone Zone) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	fail := map[string]bool{}
	for _, n := range zone.ServFail {
		fail[strings.ToLower(n)] = true
	}
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		m.Authoritative = true
		if len(req.Question) != 1 {
			m.Rcode = dns.RcodeFormatError
			_ = w.WriteMsg(m)
			return
		}
		q := req.Question[0]
		name := strings.ToLower(q.Name)
		a, hasA := zone.A[name]
		txt, hasTXT := zone.TXT[name]
		switch {
		case fail[name]:
			m.Rcode = dns.RcodeServerFailure
		case !hasA && !hasTXT:
			m.Rcode = dns.RcodeNameError
		case q.Qtype == dns.TypeA:
			for _, ip := range a {
				if ip.Is4() {
					m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: ip.AsSlice()})
				}
			}
		case q.Qtype == dns.TypeTXT:
			if len(txt) > 0 {
				m.Answer = append(m.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: txt})
			}
		}
		_ = w.WriteMsg(m)
	})
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: handler, NotifyStartedFunc: func() { close(started) }}
	var wg sync.WaitGroup
	wg.Go(func() { _ = srv.ActivateAndServe() })
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		t.Fatal("dns server did not start")
	}
	t.Cleanup(func() {
		_ = srv.Shutdown()
		wg.Wait()
	})
	return pc.LocalAddr().String()
}

// NetResolver returns a pure-Go *net.Resolver that sends every query to addr.
func NetResolver(addr string) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", addr)
	}}
}

// NetFactory serves zone with Serve and resolves it with NetResolver.
func NetFactory(t *testing.T, zone Zone) dnsbl.Resolver { return NetResolver(Serve(t, zone)) }

// Run checks a Resolver, through a dnsbl.Checker, against the RFC 5782
// test points and the error cases.
func Run(t *testing.T, newResolver Factory) {
	v4Listed := netip.MustParseAddr("127.0.0.2")     // RFC 5782: always listed
	v4Clean := netip.MustParseAddr("127.0.0.1")      // RFC 5782: never listed
	v6Listed := netip.MustParseAddr("::ffff:7f00:2") // RFC 5782 IPv6 test point
	v6Clean := netip.MustParseAddr("::1")
	refused := netip.MustParseAddr("192.0.2.66")
	wildcard := netip.MustParseAddr("192.0.2.77")
	flaky := netip.MustParseAddr("192.0.2.88")
	zone := Zone{
		A: map[string][]netip.Addr{
			dnsbl.QueryName(v4Listed, "bl.test"):  {netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.4")},
			dnsbl.QueryName(v4Listed, "bl2.test"): {netip.MustParseAddr("127.0.0.10")},
			dnsbl.QueryName(refused, "bl.test"):   {netip.MustParseAddr("127.255.255.254")},
			dnsbl.QueryName(wildcard, "bl.test"):  {netip.MustParseAddr("198.51.100.1")},
		},
		TXT: map[string][]string{
			dnsbl.QueryName(v4Listed, "bl.test"): {"listed for testing"},
		},
		ServFail: []string{dnsbl.QueryName(flaky, "bl2.test")},
	}
	v6Customer := netip.MustParseAddr("2001:db8::99")
	zone.A[dnsbl.QueryName(v6Listed, "bl.test")] = []netip.Addr{netip.MustParseAddr("127.0.0.2")}
	zone.A[dnsbl.QueryName(v6Customer, "bl.test")] = []netip.Addr{netip.MustParseAddr("127.0.0.3")}
	r := newResolver(t, zone)
	c, err := dnsbl.New(dnsbl.Config{Zones: []string{"bl.test", "BL2.test."}, Resolver: r})
	require.NoError(t, err)

	t.Run("ListedIPv4", func(t *testing.T) {
		res, err := c.Check(t.Context(), v4Listed)
		require.NoError(t, err)
		require.True(t, res.Listed())
		require.Len(t, res.Listings, 2)
		assert.Equal(t, "bl.test", res.Listings[0].Zone)
		assert.Equal(t, []netip.Addr{netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.4")}, res.Listings[0].Codes)
		assert.Equal(t, "listed for testing", res.Listings[0].Reason)
		assert.Equal(t, "bl2.test", res.Listings[1].Zone)
		assert.Empty(t, res.Listings[1].Reason)
	})
	t.Run("CleanIPv4", func(t *testing.T) {
		res, err := c.Check(t.Context(), v4Clean)
		require.NoError(t, err)
		assert.False(t, res.Listed())
	})
	t.Run("ListedIPv6", func(t *testing.T) {
		c6, err := dnsbl.New(dnsbl.Config{Zones: []string{"bl.test"}, Resolver: r}, dnsbl.WithoutReasons())
		require.NoError(t, err)
		// The IPv6 test point is queried in nibble form, not as its IPv4 mapping.
		res, err := c6.Check(t.Context(), v6Listed)
		require.NoError(t, err)
		assert.True(t, res.Listed())
		res, err = c6.Check(t.Context(), v6Customer)
		require.NoError(t, err)
		require.True(t, res.Listed())
		assert.Equal(t, []netip.Addr{netip.MustParseAddr("127.0.0.3")}, res.Listings[0].Codes)
		res, err = c6.Check(t.Context(), netip.MustParseAddr("2001:db8::1"))
		require.NoError(t, err)
		assert.False(t, res.Listed())
		res, err = c6.Check(t.Context(), v6Clean)
		require.NoError(t, err)
		assert.False(t, res.Listed())
	})
	t.Run("RefusedIsAnError", func(t *testing.T) {
		res, err := c.Check(t.Context(), refused)
		assert.ErrorIs(t, err, virtplane.ErrUnavailable)
		assert.ErrorContains(t, err, "bl.test")
		assert.False(t, res.Listed())
	})
	t.Run("AnswerOutside127IsNoListing", func(t *testing.T) {
		res, err := c.Check(t.Context(), wildcard)
		require.NoError(t, err)
		assert.False(t, res.Listed())
	})
	t.Run("ServFailIsPartial", func(t *testing.T) {
		res, err := c.Check(t.Context(), flaky)
		require.Error(t, err)
		assert.True(t, errors.Is(err, virtplane.ErrUnavailable), "%v", err)
		assert.ErrorContains(t, err, "bl2.test")
		assert.False(t, res.Listed())
	})
	t.Run("Canceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := c.Check(ctx, v4Listed)
		assert.Error(t, err)
	})
}
