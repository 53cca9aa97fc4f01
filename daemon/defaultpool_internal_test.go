package daemon

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestDefaultPoolBlockAvoidsHostNetworks(t *testing.T) {
	pfx := func(ss ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range ss {
			out = append(out, netip.MustParsePrefix(s))
		}
		return out
	}
	for _, tc := range []struct {
		name     string
		own      []netip.Prefix
		rng, gw  string
		excluded []string
	}{
		{"no networks", nil, "192.0.2.0/24", "192.0.2.1", nil},
		{"loopback and IPv6 only", pfx("127.0.0.1/8", "::1/128", "2001:db8::5/64"), "192.0.2.0/24", "192.0.2.1", nil},
		// The report: a host at 192.0.2.2 gave its own address to the first VM.
		{"host in the first", pfx("127.0.0.1/8", "192.0.2.2/24"), "198.51.100.0/24", "198.51.100.1", nil},
		{"a wide LAN covers the first", pfx("192.0.0.0/16"), "198.51.100.0/24", "198.51.100.1", nil},
		{"host in the first two", pfx("192.0.2.2/24", "198.51.100.9/25"), "203.0.113.0/24", "203.0.113.1", nil},
		{"host in all three", pfx("192.0.2.2/24", "192.0.2.1/32", "198.51.100.9/24", "203.0.113.3/24"), "192.0.2.0/24", "192.0.2.1", []string{"192.0.2.2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng, gw, excluded := defaultPoolBlock(tc.own)
			assert.Equal(t, tc.rng, rng)
			assert.Equal(t, tc.gw, gw)
			assert.Equal(t, tc.excluded, excluded)
		})
	}
}
