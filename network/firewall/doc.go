// Package firewall enforces a per-port policy for each VM with nftables
// (github.com/google/nftables): anti-spoofing (the VM may send only from its
// MAC, its IPv4 addresses — in IP and in ARP — and its IPv6 addresses plus
// link-local; VLAN tags and other ether types are dropped), blocked inbound
// and outbound TCP/UDP port ranges, and a cap on concurrent connections.
//
// Each port gets its own netdev table whose chains hook the port device
// (ingress for what the VM sends, egress for what it receives), so the same
// rules hold for bridged, routed and fabric ports, and Apply replaces a
// port's table in one transaction. The connection limit needs conntrack and
// lives in an inet forward chain: it applies on routed paths (routing and IP
// fabric modes, or bridges with br_netfilter); bridge-family conntrack is not
// in this test kernel. A policy may be applied before the port exists (the
// hypervisor makes the tap when the VM starts): recent kernels, this one
// included, hook the chains when the device appears; older ones refuse, and
// Apply returns ErrNotFound. Fake records policies; firewalltest.Run is the
// suite.
//
//	fw, _ := firewall.New(conn) // nftables.New(...)
//	err := fw.Apply(ctx, firewall.Policy{Port: "vnet3", MAC: mac,
//		IPv4: []netip.Addr{ip}, BlockOut: []firewall.PortRange{{Protocol: "tcp", First: 25}},
//		MaxConnections: 1000})
package firewall
