// Package routing runs the routed network mode, for datacenters with port
// security (Hetzner and the like) where only the host's MAC may appear on
// the uplink: the host routes each VM's /32 and /128 to the VM's port and
// answers ARP and neighbour discovery for the VMs' gateway by holding the
// gateway addresses on every VM port (IPv4 /32, IPv6 link-local). The
// datacenter routes the VM addresses to the host's main address; VM frames
// never leave the host. Routes carry RouteProtocol so Apply finds, keeps
// and removes exactly its own; Apply twice changes nothing.
//
//	r, _ := routing.New(handle, routing.Config{GatewayV4: netip.MustParseAddr("172.31.1.1"),
//		GatewayV6: netip.MustParseAddr("fe80::1")})
//	changes, err := r.Apply(ctx, []routing.VM{{Port: "vnet3",
//		IPv4: []netip.Addr{vmIP}, IPv6: []netip.Addr{vmIP6}}})
//
// The host must forward (net.ipv4.ip_forward, net.ipv6.conf.all.forwarding).
package routing
