package main

import (
	"context"
	"net"
	"strconv"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon"
)

// DNSBLConfig is the "dnsbl" section of the configuration file: the DNS
// blocklists pools' addresses are checked against (POST
// /v1/ippools/{id}/dnsbl-check).
//
//	"dnsbl": {"zones": ["zen.spamhaus.org", "bl.spamcop.net"], "resolver": "127.0.0.53:53"}
type DNSBLConfig struct {
	Zones []string `json:"zones"`
	// Resolver is the DNS server ("host:port") asked; empty: the system's
	// resolver. Public blocklists refuse queries from big public
	// resolvers, so an own recursive resolver is the usual choice.
	Resolver string `json:"resolver"`
}

// applyDNSBL sets the daemon's blocklists from the configuration's section.
func applyDNSBL(dcfg *daemon.Config, c *DNSBLConfig) error {
	if c == nil {
		return nil
	}
	if len(c.Zones) == 0 {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "dnsbl: no zones (a dnsbl section without zones checks nothing)")
	}
	dcfg.DNSBL = daemon.DNSBLConfig{Zones: c.Zones}
	if c.Resolver == "" {
		return nil
	}
	r, err := dnsResolver(c.Resolver)
	if err != nil {
		return err
	}
	dcfg.DNSBL.Resolver = r
	return nil
}

// dnsResolver returns a resolver that sends every query to the DNS server
// at addr ("host:port"), over the network the resolver asks for (UDP, TCP
// for truncated answers), rather than to those of /etc/resolv.conf.
func dnsResolver(addr string) (*net.Resolver, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "dnsbl resolver %q is not host:port", addr)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "dnsbl resolver %q: port %q is not a port number", addr, port)
	}
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}, nil
}
