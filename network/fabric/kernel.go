package fabric

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/virtplane/virtplane"
)

// KernelRouteProtocol marks the routes SyncKernel installs (rtm_protocol
// "bgp"), so it finds and replaces exactly its own.
const KernelRouteProtocol netlink.RouteProtocol = unix.RTPROT_BGP

// RouteNetlink is the part of *netlink.Handle SyncKernel uses.
type RouteNetlink interface {
	RouteListFiltered(family int, filter *netlink.Route, filterMask uint64) ([]netlink.Route, error)
	RouteReplace(route *netlink.Route) error
	RouteDel(route *netlink.Route) error
}

// SyncKernel makes the kernel's BGP routes in the main table exactly the
// learned routes (Speaker.Learned): other hosts' VM addresses via those
// hosts. It returns how many routes it added or changed, and removed.
func SyncKernel(ctx context.Context, nl RouteNetlink, learned []Route) (added, removed int, err error) {
	if err := ctx.Err(); err != nil {
		return 0, 0, err
	}
	cur, err := nl.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Protocol: KernelRouteProtocol, Table: unix.RT_TABLE_MAIN},
		netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE)
	if err != nil {
		return 0, 0, virtplane.Errorf(virtplane.ErrUnavailable, "list kernel routes: %v", err)
	}
	have := map[netip.Prefix]netlink.Route{}
	for _, r := range cur {
		if r.Dst == nil {
			continue
		}
		ip, _ := netip.AddrFromSlice(r.Dst.IP)
		ones, _ := r.Dst.Mask.Size()
		have[netip.PrefixFrom(ip.Unmap(), ones)] = r
	}
	want := map[netip.Prefix]bool{}
	for _, l := range learned {
		if !l.Prefix.IsValid() || !l.NextHop.IsValid() || l.Prefix.Addr().Is4() != l.NextHop.Is4() {
			continue // an IPv6 prefix over an IPv4 next hop needs RFC 5549: not installed
		}
		want[l.Prefix] = true
		if r, ok := have[l.Prefix]; ok && r.Gw != nil && r.Gw.Equal(net.IP(l.NextHop.AsSlice())) {
			continue
		}
		rt := &netlink.Route{
			Dst:      &net.IPNet{IP: l.Prefix.Addr().AsSlice(), Mask: net.CIDRMask(l.Prefix.Bits(), l.Prefix.Addr().BitLen())},
			Gw:       l.NextHop.AsSlice(),
			Protocol: KernelRouteProtocol, Table: unix.RT_TABLE_MAIN,
		}
		if err := nl.RouteReplace(rt); err != nil {
			return added, removed, virtplane.Errorf(virtplane.ErrUnavailable, "install route %s via %s: %v", l.Prefix, l.NextHop, err)
		}
		added++
	}
	var stale []netip.Prefix
	for p := range have {
		if !want[p] {
			stale = append(stale, p)
		}
	}
	slices.SortFunc(stale, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	for _, p := range stale {
		r := have[p]
		if err := nl.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
			return added, removed, virtplane.Errorf(virtplane.ErrUnavailable, "remove route %s: %v", p, err)
		}
		removed++
	}
	return added, removed, nil
}
