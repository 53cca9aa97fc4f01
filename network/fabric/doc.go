// Package fabric runs the IP-fabric mode: an embedded GoBGP speaker
// (github.com/osrg/gobgp/v4) on each host announces every local VM's /32
// and /128 to iBGP route reflectors, with the host as next hop, and
// withdraws them when the VM stops or migrates; stopping the speaker
// withdraws everything. Hosts may sit in a private network: the speaker only
// dials out. SyncKernel installs the routes learned from the reflectors
// (other hosts' VMs via those hosts) into the kernel, so that VMs on
// different hosts reach each other; with package routing this is the whole
// IP-fabric mode. CheckAddress pings the fabric's check address (usually the
// gateway) to report reachability.
//
// The same speaker carries BGP EVPN for VxLAN route-reflector mode: type-3
// routes (with a PMSI tunnel attribute, ingress replication, label = VNI)
// build each VNI's flood list, type-2 routes pin MACs to VTEPs; FDBEntries
// turns learned routes into vxlan.SyncFDB input.
//
// The speaker uses the network namespace of the process; tests run it in a
// helper process under `ip netns exec`. Fake is an Announcer for callers' tests.
//
//	sp, err := fabric.Start(ctx, fabric.Config{ASN: 65000, RouterID: self,
//		Reflectors: []netip.Addr{rr1, rr2}, NextHop: self})
//	_ = sp.Announce(ctx, netip.MustParsePrefix("203.0.113.7/32"))
//	r, _ := fabric.CheckAddress(ctx, gateway)
package fabric
