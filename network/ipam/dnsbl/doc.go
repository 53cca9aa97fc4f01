// Package dnsbl asks DNS blocklists (RFC 5782) whether an IP address is
// listed, so that a provider does not hand a customer an address that mail
// servers refuse. The resolver sits behind a two-method interface that
// *net.Resolver satisfies; FakeResolver serves tests.
//
//	c, err := dnsbl.New(dnsbl.Config{Zones: []string{"zen.spamhaus.org"}, Resolver: net.DefaultResolver})
//	res, err := c.Check(ctx, netip.MustParseAddr("192.0.2.99"))
//	if res.Listed() { ... pick another address ... }
//
// An IPv4 address is queried with its octets reversed
// (99.2.0.192.zen.spamhaus.org), an IPv6 address with its 32 nibbles
// reversed. Answers in 127.0.0.0/8 are listings; 127.255.255.0/24 answers
// are the list refusing the query (rate limit, public resolver) and are
// reported as errors, not as listings.
package dnsbl
