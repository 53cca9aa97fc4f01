package dnsbl_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/network/ipam/dnsbl"
	"github.com/virtplane/virtplane/network/ipam/dnsbl/dnsbltest"
)

func TestFakeResolverConformance(t *testing.T) { dnsbltest.Run(t, dnsbltest.FakeFactory) }

// The real resolver of the standard library, against a DNS server on
// 127.0.0.1 run with github.com/miekg/dns.
func TestNetResolverConformance(t *testing.T) { dnsbltest.Run(t, dnsbltest.NetFactory) }

func TestQueryName(t *testing.T) {
	tests := []struct{ addr, zone, want string }{
		{"192.0.2.99", "zen.example", "99.2.0.192.zen.example."},
		{"127.0.0.2", "bl.test.", "2.0.0.127.bl.test."},
		{"2001:db8:1:2:3:4:567:89ab", "bl.test",
			"b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.bl.test."},
		{"::ffff:7f00:2", "bl.test",
			"2.0.0.0.0.0.f.7.f.f.f.f.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.bl.test."},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			assert.Equal(t, tt.want, dnsbl.QueryName(netip.MustParseAddr(tt.addr), tt.zone))
		})
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	r := dnsbl.NewFakeResolver()
	tests := []struct {
		name  string
		cfg   dnsbl.Config
		names string
	}{
		{"no resolver", dnsbl.Config{Zones: []string{"bl.test"}}, "Resolver"},
		{"no zones", dnsbl.Config{Resolver: r}, "no zones"},
		{"empty label", dnsbl.Config{Resolver: r, Zones: []string{"bl..test"}}, `"bl..test"`},
		{"bad char", dnsbl.Config{Resolver: r, Zones: []string{"bl test"}}, `"bl test"`},
		{"empty", dnsbl.Config{Resolver: r, Zones: []string{" "}}, `" "`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := dnsbl.New(tt.cfg)
			assert.ErrorIs(t, err, virtplane.ErrInvalidArgument)
			assert.ErrorContains(t, err, tt.names)
		})
	}
}

func TestFakeRecordsCallsAndInjectsFaults(t *testing.T) {
	r := dnsbl.NewFakeResolver()
	r.SetA("2.0.0.127.bl.test", netip.MustParseAddr("127.0.0.2"))
	boom := errors.New("boom")
	r.FailWith(func(name string) error {
		if name == "2.0.0.127.bl2.test." {
			return boom
		}
		return nil
	})
	c, err := dnsbl.New(dnsbl.Config{Resolver: r, Zones: []string{"bl.test", "bl2.test"}}, dnsbl.WithoutReasons())
	require.NoError(t, err)
	res, err := c.Check(t.Context(), netip.MustParseAddr("127.0.0.2"))
	assert.ErrorIs(t, err, boom)
	assert.ErrorIs(t, err, virtplane.ErrUnavailable)
	assert.True(t, res.Listed(), "the answering zone's listing is kept")
	assert.ElementsMatch(t, []string{"A 2.0.0.127.bl.test.", "A 2.0.0.127.bl2.test."}, r.Calls())
}

func ExampleChecker_Check() {
	r := dnsbl.NewFakeResolver() // net.DefaultResolver in production
	r.SetA("99.2.0.192.bl.example", netip.MustParseAddr("127.0.0.2"))
	r.SetTXT("99.2.0.192.bl.example", "spam source")
	c, _ := dnsbl.New(dnsbl.Config{Zones: []string{"bl.example"}, Resolver: r})
	for _, a := range []string{"192.0.2.99", "192.0.2.100"} {
		res, err := c.Check(context.Background(), netip.MustParseAddr(a))
		if err != nil {
			fmt.Println(err)
			continue
		}
		if res.Listed() {
			fmt.Println(a, "listed by", res.Listings[0].Zone+":", res.Listings[0].Reason)
		} else {
			fmt.Println(a, "clean")
		}
	}
	// Output:
	// 192.0.2.99 listed by bl.example: spam source
	// 192.0.2.100 clean
}

// ZoneErrors names the zones that failed, each with its own error, so a
// report can tell a refused zone from a listing one.
func TestZoneErrorsNameTheFailedZones(t *testing.T) {
	r := dnsbl.NewFakeResolver()
	r.SetA("2.0.0.127.bl.test", netip.MustParseAddr("127.0.0.2"))
	r.SetA("2.0.0.127.bl2.test", netip.MustParseAddr("127.255.255.254"))
	boom := errors.New("boom")
	r.FailWith(func(name string) error {
		if name == "2.0.0.127.bl3.test." {
			return boom
		}
		return nil
	})
	c, err := dnsbl.New(dnsbl.Config{Resolver: r, Zones: []string{"bl.test", "BL2.test.", "bl3.test"}})
	require.NoError(t, err)
	assert.Equal(t, []string{"bl.test", "bl2.test", "bl3.test"}, c.Zones())
	res, err := c.Check(t.Context(), netip.MustParseAddr("127.0.0.2"))
	require.Error(t, err)
	assert.True(t, res.Listed())
	zes := dnsbl.ZoneErrors(err)
	require.Len(t, zes, 2)
	assert.Equal(t, "bl2.test", zes[0].Zone)
	assert.ErrorIs(t, zes[0], virtplane.ErrUnavailable)
	assert.ErrorContains(t, zes[0], "refused")
	assert.Equal(t, "bl3.test", zes[1].Zone)
	assert.ErrorIs(t, zes[1], boom)
	assert.Nil(t, dnsbl.ZoneErrors(nil))
	assert.Nil(t, dnsbl.ZoneErrors(boom))
}
