package daemon

import "net/netip"

// defaultPoolCandidates are the ranges the first-run pool may take, in
// order: the documentation networks of RFC 5737, which no real network
// routes, so that a laptop's or a test machine's own LAN is not reused.
var defaultPoolCandidates = []netip.Prefix{
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
}

// defaultPoolBlock chooses the block of the pool SetupFirstNode makes: the
// first candidate none of the host's own networks overlaps (a VM must never
// get an address the host answers for: on a host at 192.0.2.2/24 the first
// VM got 192.0.2.2). When every candidate overlaps, the first one is taken
// with the host's addresses inside it excluded. Pure: own comes from
// agent.HostNetworks.
func defaultPoolBlock(own []netip.Prefix) (rng, gateway string, excluded []string) {
	for _, c := range defaultPoolCandidates {
		if !overlapsAny(c, own) {
			return c.String(), c.Addr().Next().String(), nil
		}
	}
	c := defaultPoolCandidates[0]
	gw := c.Addr().Next()
	for _, p := range own {
		if a := p.Addr().Unmap(); c.Contains(a) && a != gw {
			excluded = append(excluded, a.String())
		}
	}
	return c.String(), gw.String(), excluded
}

func overlapsAny(p netip.Prefix, own []netip.Prefix) bool {
	for _, o := range own {
		if p.Overlaps(o) {
			return true
		}
	}
	return false
}
