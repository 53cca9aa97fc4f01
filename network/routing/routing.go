package routing

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/network/hostnet"
)

// RouteProtocol marks the routes a Router installs (the rtm_protocol field),
// so it finds and removes exactly its own.
const RouteProtocol netlink.RouteProtocol = 87

// VM is one VM's port and the addresses routed to it.
type VM struct {
	Port string
	IPv4 []netip.Addr
	IPv6 []netip.Addr
}

// Config holds the gateway addresses VMs are configured with. The host puts
// them on every VM port (IPv4 as /32, IPv6 as link-local /64), so it answers
// ARP and neighbour discovery for the gateway itself and routes the rest:
// no VM MAC ever leaves the host.
type Config struct {
	GatewayV4 netip.Addr // say 172.31.1.1
	GatewayV6 netip.Addr // a link-local address, say fe80::1
}

// Netlink is the part of *netlink.Handle a Router uses.
type Netlink interface {
	LinkByName(name string) (netlink.Link, error)
	LinkByIndex(index int) (netlink.Link, error)
	AddrList(link netlink.Link, family int) ([]netlink.Addr, error)
	AddrAdd(link netlink.Link, addr *netlink.Addr) error
	AddrDel(link netlink.Link, addr *netlink.Addr) error
	RouteListFiltered(family int, filter *netlink.Route, filterMask uint64) ([]netlink.Route, error)
	RouteReplace(route *netlink.Route) error
	RouteDel(route *netlink.Route) error
}

// Router configures routed mode on a host.
type Router struct {
	nl  Netlink
	cfg Config
}

func invalid(format string, args ...any) error {
	return virtplane.Errorf(virtplane.ErrInvalidArgument, format, args...)
}

// New returns a Router.
func New(nl Netlink, cfg Config) (*Router, error) {
	if nl == nil {
		return nil, invalid("routing: netlink is nil")
	}
	if !cfg.GatewayV4.Is4() {
		return nil, invalid("routing: gateway v4 %v is not an IPv4 address", cfg.GatewayV4)
	}
	if cfg.GatewayV6.IsValid() && (!cfg.GatewayV6.Is6() || !cfg.GatewayV6.IsLinkLocalUnicast()) {
		return nil, invalid("routing: gateway v6 %v is not an IPv6 link-local address", cfg.GatewayV6)
	}
	return &Router{nl: nl, cfg: cfg}, nil
}

type route struct {
	dst  netip.Prefix
	port string
}

func (r route) String() string { return r.dst.String() + " dev " + r.port }

func desiredRoutes(vms []VM) ([]route, error) {
	var out []route
	owner := map[netip.Addr]string{}
	ports := map[string]bool{}
	for _, vm := range vms {
		if !hostnet.ValidLinkName(vm.Port) {
			return nil, invalid("routing: port %q is not a link name", vm.Port)
		}
		if ports[vm.Port] {
			return nil, invalid("routing: port %q listed twice", vm.Port)
		}
		ports[vm.Port] = true
		for _, a := range slices.Concat(vm.IPv4, vm.IPv6) {
			if !a.IsValid() || a.Zone() != "" || a.Is4In6() || a.IsLinkLocalUnicast() {
				return nil, invalid("routing %s: address %v cannot be routed", vm.Port, a)
			}
			if other, ok := owner[a]; ok {
				return nil, virtplane.Errorf(virtplane.ErrConflict, "routing: address %v routed to both %s and %s", a, other, vm.Port)
			}
			owner[a] = vm.Port
			out = append(out, route{dst: netip.PrefixFrom(a, a.BitLen()), port: vm.Port})
		}
	}
	for _, vm := range vms {
		for _, a := range vm.IPv4 {
			if !a.Is4() {
				return nil, invalid("routing %s: ipv4 address %v", vm.Port, a)
			}
		}
		for _, a := range vm.IPv6 {
			if !a.Is6() {
				return nil, invalid("routing %s: ipv6 address %v", vm.Port, a)
			}
		}
	}
	return out, nil
}

func ipnet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// Apply makes the routed VMs exactly vms: a host route per VM address
// through its port, the gateway addresses on each port; routes and gateway
// addresses of VMs no longer listed are removed. It returns the changes made,
// none when the host already matches.
func (r *Router) Apply(ctx context.Context, vms []VM) ([]string, error) {
	want, err := desiredRoutes(vms)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cur, err := r.nl.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Protocol: RouteProtocol, Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, virtplane.Errorf(virtplane.ErrUnavailable, "routing: list routes: %v", err)
	}
	have := map[route]netlink.Route{}
	oldPorts := map[string]bool{}
	for _, rt := range cur {
		if rt.Dst == nil {
			continue
		}
		link, err := r.nl.LinkByIndex(rt.LinkIndex)
		if err != nil {
			continue
		}
		ip, _ := netip.AddrFromSlice(rt.Dst.IP)
		ones, _ := rt.Dst.Mask.Size()
		k := route{dst: netip.PrefixFrom(ip.Unmap(), ones), port: link.Attrs().Name}
		have[k] = rt
		oldPorts[k.port] = true
	}
	var changes []string
	links := map[string]netlink.Link{}
	linkOf := func(port string) (netlink.Link, error) {
		if l, ok := links[port]; ok {
			return l, nil
		}
		l, err := r.nl.LinkByName(port)
		if err != nil {
			return nil, virtplane.Errorf(virtplane.ErrNotFound, "routing: port %q: %v", port, err)
		}
		links[port] = l
		return l, nil
	}
	// Every port must exist before anything changes.
	for _, vm := range vms {
		if _, err := linkOf(vm.Port); err != nil {
			return nil, err
		}
	}
	// Gateway addresses first: the routes go through ports that answer for
	// the gateway.
	newPorts := map[string]bool{}
	for _, vm := range vms {
		newPorts[vm.Port] = true
		l, err := linkOf(vm.Port)
		if err != nil {
			return changes, err
		}
		c, err := r.syncGateway(l, true)
		changes = append(changes, c...)
		if err != nil {
			return changes, err
		}
	}
	wanted := map[route]bool{}
	for _, w := range want {
		wanted[w] = true
		if _, ok := have[w]; ok {
			continue
		}
		l, err := linkOf(w.port)
		if err != nil {
			return changes, err
		}
		rt := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: ipnet(w.dst), Scope: netlink.SCOPE_LINK, Protocol: RouteProtocol, Table: unix.RT_TABLE_MAIN}
		if err := r.nl.RouteReplace(rt); err != nil {
			return changes, virtplane.Errorf(virtplane.ErrUnavailable, "routing: add route %s: %v", w, err)
		}
		changes = append(changes, "add route "+w.String())
	}
	stale := make([]route, 0)
	for k := range have {
		if !wanted[k] {
			stale = append(stale, k)
		}
	}
	slices.SortFunc(stale, func(a, b route) int { return a.dst.Addr().Compare(b.dst.Addr()) })
	for _, k := range stale {
		rt := have[k]
		if err := r.nl.RouteDel(&rt); err != nil && !errors.Is(err, unix.ESRCH) {
			return changes, virtplane.Errorf(virtplane.ErrUnavailable, "routing: delete route %s: %v", k, err)
		}
		changes = append(changes, "delete route "+k.String())
	}
	var gone []string
	for p := range oldPorts {
		if !newPorts[p] {
			gone = append(gone, p)
		}
	}
	slices.Sort(gone)
	for _, p := range gone {
		l, err := r.nl.LinkByName(p)
		if err != nil {
			continue // the port went with its VM
		}
		c, err := r.syncGateway(l, false)
		changes = append(changes, c...)
		if err != nil {
			return changes, err
		}
	}
	return changes, nil
}

func (r *Router) gatewayPrefixes() []netip.Prefix {
	out := []netip.Prefix{netip.PrefixFrom(r.cfg.GatewayV4, 32)}
	if r.cfg.GatewayV6.IsValid() {
		out = append(out, netip.PrefixFrom(r.cfg.GatewayV6, 64))
	}
	return out
}

// syncGateway adds (present) or removes the gateway addresses on a port.
func (r *Router) syncGateway(l netlink.Link, present bool) ([]string, error) {
	addrs, err := r.nl.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return nil, virtplane.Errorf(virtplane.ErrUnavailable, "routing: list addresses of %s: %v", l.Attrs().Name, err)
	}
	var changes []string
	for _, p := range r.gatewayPrefixes() {
		has := slices.ContainsFunc(addrs, func(a netlink.Addr) bool { return a.IPNet.String() == ipnet(p).String() })
		switch {
		case present && !has:
			a := &netlink.Addr{IPNet: ipnet(p), Scope: int(netlink.SCOPE_LINK)}
			if p.Addr().Is6() {
				a.Flags = unix.IFA_F_NODAD
			}
			if err := r.nl.AddrAdd(l, a); err != nil {
				return changes, virtplane.Errorf(virtplane.ErrUnavailable, "routing: add gateway %s to %s: %v", p, l.Attrs().Name, err)
			}
			changes = append(changes, fmt.Sprintf("add gateway %s dev %s", p, l.Attrs().Name))
		case !present && has:
			if err := r.nl.AddrDel(l, &netlink.Addr{IPNet: ipnet(p)}); err != nil {
				return changes, virtplane.Errorf(virtplane.ErrUnavailable, "routing: delete gateway %s from %s: %v", p, l.Attrs().Name, err)
			}
			changes = append(changes, fmt.Sprintf("delete gateway %s dev %s", p, l.Attrs().Name))
		}
	}
	return changes, nil
}
