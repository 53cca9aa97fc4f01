package main

import (
	"net/netip"
	"testing"

	"github.com/virtplane/virtplane/daemon"
	"github.com/virtplane/virtplane/network/ipam/dnsbl"
	"github.com/virtplane/virtplane/network/ipam/dnsbl/dnsbltest"
)

// TestGoldenPoolDNSBL: vpt pool dnsbl-check against a blocklist on a real
// DNS server on loopback: the VM's listed address reported with its VM,
// the free listed one excluded (pool get shows it), the refused query an
// error, an address outside the pool refused naming the flag's field.
func TestGoldenPoolDNSBL(t *testing.T) {
	q := func(s string) string { return dnsbl.QueryName(netip.MustParseAddr(s), "bl.test") }
	addr := dnsbltest.Serve(t, dnsbltest.Zone{
		A: map[string][]netip.Addr{
			q("192.0.2.2"):  {netip.MustParseAddr("127.0.0.2")},
			q("192.0.2.9"):  {netip.MustParseAddr("127.0.0.4")},
			q("192.0.2.10"): {netip.MustParseAddr("127.255.255.254")},
		},
		TXT: map[string][]string{q("192.0.2.2"): {"listed for testing"}, q("192.0.2.9"): {"spam source"}},
	})
	c := newCLIWith(t, daemon.Config{DNSBL: daemon.DNSBLConfig{Zones: []string{"bl.test"}, Resolver: dnsbltest.NetResolver(addr)}})
	c.login()
	c.infra()
	c.record("vm", "create", "--name", "web1", "--cluster", "fra1", "--image", "debian-12", "--pool", "public",
		"--cpus", "1", "--memory-mib", "512", "--disk-gib", "5", "--wait")
	c.record("pool", "dnsbl-check", "public", "--address", "192.0.2.9", "--address", "192.0.2.10", "--address", "192.0.2.3", "--exclude-listed")
	c.record("pool", "get", "public")
	c.record("pool", "dnsbl-check", "public", "-o", "json")
	c.record("pool", "dnsbl-check", "public", "--address", "192.0.2.9")
	c.record("pool", "dnsbl-check", "public", "--address", "198.51.100.1")
	c.golden("pool-dnsbl")
}
