// Package dnsbltest is the conformance suite of dnsbl.Resolver, run by the
// FakeResolver and by *net.Resolver against a DNS server on loopback
// (Serve), so that the fake answers the way real DNS does.
//
//	func TestMyResolver(t *testing.T) {
//		dnsbltest.Run(t, func(t *testing.T, z dnsbltest.Zone) dnsbl.Resolver { return newMyResolver(t, z) })
//	}
//
// Serve and NetResolver are also what a test needs to point real code at
// a blocklist on loopback.
package dnsbltest
