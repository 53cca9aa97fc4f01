package main

import (
	"encoding/json"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon"
	"github.com/virtplane/virtplane/network/ipam/dnsbl"
	"github.com/virtplane/virtplane/network/ipam/dnsbl/dnsbltest"
)

// The resolver of the dnsbl section asks the DNS server it names (a real
// one on loopback here), not the system's.
func TestDNSBLConfigSection(t *testing.T) {
	listed := dnsbl.QueryName(netip.MustParseAddr("192.0.2.9"), "bl.test")
	addr := dnsbltest.Serve(t, dnsbltest.Zone{A: map[string][]netip.Addr{listed: {netip.MustParseAddr("127.0.0.2")}}})
	cfg := defaults()
	require.NoError(t, json.Unmarshal([]byte(`{"dnsbl": {"zones": ["bl.test"], "resolver": "`+addr+`"}}`), &cfg))
	var d daemon.Config
	require.NoError(t, applyDNSBL(&d, cfg.DNSBL))
	assert.Equal(t, []string{"bl.test"}, d.DNSBL.Zones)
	require.NotNil(t, d.DNSBL.Resolver)
	got, err := d.DNSBL.Resolver.LookupNetIP(t.Context(), "ip4", listed)
	require.NoError(t, err)
	assert.Equal(t, []netip.Addr{netip.MustParseAddr("127.0.0.2")}, got)

	var sys daemon.Config
	require.NoError(t, applyDNSBL(&sys, &DNSBLConfig{Zones: []string{"bl.test"}}))
	assert.Nil(t, sys.DNSBL.Resolver, "no resolver: the daemon's default (net.DefaultResolver)")
	var none daemon.Config
	require.NoError(t, applyDNSBL(&none, nil))
	assert.Empty(t, none.DNSBL.Zones, "no section, no check")

	for name, bad := range map[string]DNSBLConfig{
		"no zones":    {Resolver: addr},
		"no port":     {Zones: []string{"bl.test"}, Resolver: "127.0.0.1"},
		"bad port":    {Zones: []string{"bl.test"}, Resolver: "127.0.0.1:dns"},
		"port zero":   {Zones: []string{"bl.test"}, Resolver: "127.0.0.1:0"},
		"no hostname": {Zones: []string{"bl.test"}, Resolver: ":53"},
	} {
		t.Run(name, func(t *testing.T) {
			err := applyDNSBL(&daemon.Config{}, &bad)
			assert.ErrorIs(t, err, virtplane.ErrInvalidArgument)
			assert.ErrorContains(t, err, "dnsbl")
		})
	}
}
