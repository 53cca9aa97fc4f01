package daemon

import (
	"net"

	"github.com/virtplane/virtplane/network/ipam/dnsbl"
)

// DNSBLConfig is the DNS blocklists (RFC 5782) the API checks pools'
// addresses against, so that an address a blocklist lists can be kept
// from VMs.
type DNSBLConfig struct {
	// Zones are the blocklist zones asked ("zen.spamhaus.org"); none
	// turns the check off (it answers ErrNotImplemented, never a clean
	// result).
	Zones []string
	// Resolver asks the zones; nil is net.DefaultResolver.
	Resolver dnsbl.Resolver
}

// checker returns the configured checker, nil without zones; bad zones
// fail the daemon's start rather than every check.
func (c DNSBLConfig) checker() (*dnsbl.Checker, error) {
	if len(c.Zones) == 0 {
		return nil, nil
	}
	r := c.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	return dnsbl.New(dnsbl.Config{Zones: c.Zones, Resolver: r})
}
