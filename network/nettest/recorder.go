package nettest

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Recorder is an in-memory kernel behind the netlink calls the network
// packages make. It keeps links and addresses like the kernel would, so that
// a second Apply sees the first one's result, and it writes every request
// that changes something as one line of text for comparison with a golden
// file. It stands in for features this test kernel lacks (VLAN
// sub-interfaces, bonds, bridge VLAN filtering).
type Recorder struct {
	mu     sync.Mutex
	links  []netlink.Link
	addrs  map[int][]netlink.Addr
	routes []netlink.Route
	next   int
	log    []string
	failOn map[string]error
}

// NewRecorder returns a Recorder whose kernel holds loopback and the named
// physical links (as "device" links, up, MTU 1500).
func NewRecorder(devices ...string) *Recorder {
	r := &Recorder{addrs: map[int][]netlink.Addr{}, next: 1, failOn: map[string]error{}}
	for _, n := range append([]string{"lo"}, devices...) {
		a := netlink.NewLinkAttrs()
		a.Name, a.MTU, a.Flags = n, 1500, net.FlagUp
		r.insert(&netlink.Device{LinkAttrs: a})
	}
	return r
}

func (r *Recorder) insert(l netlink.Link) {
	l.Attrs().Index = r.next
	r.next++
	r.links = append(r.links, l)
}

// FailOn makes the next request of the given method (such as "LinkAdd") on
// the named link fail with err; the request is recorded with "FAILED".
func (r *Recorder) FailOn(method, link string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failOn[method+" "+link] = err
}

// Requests returns the recorded requests, one a line, and forgets them.
func (r *Recorder) Requests() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := strings.Join(r.log, "\n")
	if out != "" {
		out += "\n"
	}
	r.log = nil
	return out
}

func (r *Recorder) record(method, link, format string, args ...any) error {
	parts := []string{method}
	for _, p := range []string{link, fmt.Sprintf(format, args...)} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	line := strings.Join(parts, " ")
	if err, ok := r.failOn[method+" "+link]; ok {
		delete(r.failOn, method+" "+link)
		r.log = append(r.log, line+" FAILED")
		return err
	}
	r.log = append(r.log, line)
	return nil
}

func (r *Recorder) find(l netlink.Link) (int, error) {
	if l == nil || l.Attrs() == nil {
		return -1, unix.EINVAL
	}
	for i, x := range r.links {
		if (l.Attrs().Index != 0 && x.Attrs().Index == l.Attrs().Index) || (l.Attrs().Index == 0 && x.Attrs().Name == l.Attrs().Name) {
			return i, nil
		}
	}
	return -1, unix.ENODEV
}

func (r *Recorder) nameOf(index int) string {
	for _, x := range r.links {
		if x.Attrs().Index == index {
			return x.Attrs().Name
		}
	}
	return fmt.Sprintf("#%d", index)
}

// LinkList returns the links.
func (r *Recorder) LinkList() ([]netlink.Link, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.links), nil
}

// LinkByName finds a link.
func (r *Recorder) LinkByName(name string) (netlink.Link, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, x := range r.links {
		if x.Attrs().Name == name {
			return x, nil
		}
	}
	return nil, unix.ENODEV
}

// LinkAdd creates a link.
func (r *Recorder) LinkAdd(l netlink.Link) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, err := r.find(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Name: l.Attrs().Name}}); err == nil {
		_ = r.record("LinkAdd", l.Attrs().Name, "%s", r.describe(l))
		return unix.EEXIST
	}
	if err := r.record("LinkAdd", l.Attrs().Name, "%s", r.describe(l)); err != nil {
		return err
	}
	l.Attrs().Alias = "" // the kernel ignores IFLA_IFALIAS on creation
	r.insert(l)
	return nil
}

// describe renders the attributes of a creation request that matter.
func (r *Recorder) describe(l netlink.Link) string {
	a := l.Attrs()
	parts := []string{"type=" + l.Type()}
	if a.Alias != "" {
		parts = append(parts, "alias="+a.Alias+" (ignored by the kernel)")
	}
	if a.MTU != 0 {
		parts = append(parts, fmt.Sprintf("mtu=%d", a.MTU))
	}
	switch v := l.(type) {
	case *netlink.Vlan:
		parts = append(parts, "parent="+r.nameOf(a.ParentIndex), fmt.Sprintf("id=%d", v.VlanId), "protocol="+v.VlanProtocol.String())
	case *netlink.Bond:
		parts = append(parts, "mode="+v.Mode.String(), fmt.Sprintf("miimon=%d", v.Miimon))
		if v.LacpRate != netlink.BondLacpRate(-1) && v.LacpRate != netlink.BOND_LACP_RATE_UNKNOWN {
			parts = append(parts, "lacp_rate="+v.LacpRate.String())
		}
		if v.XmitHashPolicy != netlink.BondXmitHashPolicy(-1) && v.XmitHashPolicy != netlink.BOND_XMIT_HASH_POLICY_UNKNOWN {
			parts = append(parts, "xmit_hash_policy="+v.XmitHashPolicy.String())
		}
	case *netlink.Bridge:
		if v.VlanFiltering != nil {
			parts = append(parts, fmt.Sprintf("vlan_filtering=%t", *v.VlanFiltering))
		}
	case *netlink.Vxlan:
		parts = append(parts, fmt.Sprintf("vni=%d", v.VxlanId), fmt.Sprintf("port=%d", v.Port), fmt.Sprintf("learning=%t", v.Learning))
		if v.SrcAddr != nil {
			parts = append(parts, "local="+v.SrcAddr.String())
		}
		if v.VtepDevIndex != 0 {
			parts = append(parts, "dev="+r.nameOf(v.VtepDevIndex))
		}
	}
	return strings.Join(parts, " ")
}

// LinkDel deletes a link; its slaves lose their master and its VLANs go with it.
func (r *Recorder) LinkDel(l netlink.Link) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	i, err := r.find(l)
	if err != nil {
		return err
	}
	name, idx := r.links[i].Attrs().Name, r.links[i].Attrs().Index
	if err := r.record("LinkDel", name, ""); err != nil {
		return err
	}
	r.links = slices.Delete(r.links, i, i+1)
	delete(r.addrs, idx)
	r.links = slices.DeleteFunc(r.links, func(x netlink.Link) bool {
		_, isVlan := x.(*netlink.Vlan)
		return isVlan && x.Attrs().ParentIndex == idx
	})
	for _, x := range r.links {
		if x.Attrs().MasterIndex == idx {
			x.Attrs().MasterIndex = 0
		}
	}
	return nil
}

func (r *Recorder) mutate(method string, l netlink.Link, detail string, f func(a *netlink.LinkAttrs)) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	i, err := r.find(l)
	if err != nil {
		return err
	}
	if err := r.record(method, r.links[i].Attrs().Name, "%s", detail); err != nil {
		return err
	}
	f(r.links[i].Attrs())
	return nil
}

// LinkSetMaster enslaves a link.
func (r *Recorder) LinkSetMaster(l, master netlink.Link) error {
	r.mu.Lock()
	mi, err := r.find(master)
	var idx int
	var mname string
	if err == nil {
		idx, mname = r.links[mi].Attrs().Index, r.links[mi].Attrs().Name
	}
	r.mu.Unlock()
	if err != nil {
		return err
	}
	return r.mutate("LinkSetMaster", l, "master="+mname, func(a *netlink.LinkAttrs) { a.MasterIndex = idx })
}

// LinkSetNoMaster releases a link.
func (r *Recorder) LinkSetNoMaster(l netlink.Link) error {
	return r.mutate("LinkSetNoMaster", l, "", func(a *netlink.LinkAttrs) { a.MasterIndex = 0 })
}

// LinkSetAlias sets a link's alias.
func (r *Recorder) LinkSetAlias(l netlink.Link, alias string) error {
	return r.mutate("LinkSetAlias", l, alias, func(a *netlink.LinkAttrs) { a.Alias = alias })
}

// LinkSetUp sets a link up.
func (r *Recorder) LinkSetUp(l netlink.Link) error {
	return r.mutate("LinkSetUp", l, "", func(a *netlink.LinkAttrs) { a.Flags |= net.FlagUp })
}

// LinkSetDown sets a link down.
func (r *Recorder) LinkSetDown(l netlink.Link) error {
	return r.mutate("LinkSetDown", l, "", func(a *netlink.LinkAttrs) { a.Flags &^= net.FlagUp })
}

// LinkSetMTU sets a link's MTU.
func (r *Recorder) LinkSetMTU(l netlink.Link, mtu int) error {
	return r.mutate("LinkSetMTU", l, fmt.Sprintf("mtu=%d", mtu), func(a *netlink.LinkAttrs) { a.MTU = mtu })
}

// AddrList returns a link's addresses.
func (r *Recorder) AddrList(l netlink.Link, family int) ([]netlink.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	i, err := r.find(l)
	if err != nil {
		return nil, err
	}
	return slices.Clone(r.addrs[r.links[i].Attrs().Index]), nil
}

// AddrAdd adds an address.
func (r *Recorder) AddrAdd(l netlink.Link, a *netlink.Addr) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	i, err := r.find(l)
	if err != nil {
		return err
	}
	idx := r.links[i].Attrs().Index
	if slices.ContainsFunc(r.addrs[idx], func(x netlink.Addr) bool { return x.IPNet.String() == a.IPNet.String() }) {
		return unix.EEXIST
	}
	if err := r.record("AddrAdd", r.links[i].Attrs().Name, "%s", a.IPNet); err != nil {
		return err
	}
	r.addrs[idx] = append(r.addrs[idx], *a)
	return nil
}

// AddrDel removes an address.
func (r *Recorder) AddrDel(l netlink.Link, a *netlink.Addr) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	i, err := r.find(l)
	if err != nil {
		return err
	}
	idx := r.links[i].Attrs().Index
	n := len(r.addrs[idx])
	r.addrs[idx] = slices.DeleteFunc(r.addrs[idx], func(x netlink.Addr) bool { return x.IPNet.String() == a.IPNet.String() })
	if len(r.addrs[idx]) == n {
		return unix.EADDRNOTAVAIL
	}
	return r.record("AddrDel", r.links[i].Attrs().Name, "%s", a.IPNet)
}

// LinkByIndex finds a link by index.
func (r *Recorder) LinkByIndex(index int) (netlink.Link, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, x := range r.links {
		if x.Attrs().Index == index {
			return x, nil
		}
	}
	return nil, unix.ENODEV
}

func (r *Recorder) describeRoute(rt *netlink.Route) string {
	return fmt.Sprintf("%s dev %s scope %d proto %d table %d", rt.Dst, r.nameOf(rt.LinkIndex), rt.Scope, rt.Protocol, rt.Table)
}

// RouteListFiltered returns the routes matching the protocol and table of
// filter (the only filters the network packages use).
func (r *Recorder) RouteListFiltered(family int, filter *netlink.Route, mask uint64) ([]netlink.Route, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []netlink.Route
	for _, rt := range r.routes {
		if mask&netlink.RT_FILTER_PROTOCOL != 0 && rt.Protocol != filter.Protocol {
			continue
		}
		if mask&netlink.RT_FILTER_TABLE != 0 && rt.Table != filter.Table {
			continue
		}
		out = append(out, rt)
	}
	return out, nil
}

// RouteReplace adds or replaces a route.
func (r *Recorder) RouteReplace(rt *netlink.Route) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.record("RouteReplace", "", "%s", r.describeRoute(rt)); err != nil {
		return err
	}
	r.routes = slices.DeleteFunc(r.routes, func(x netlink.Route) bool { return x.Dst.String() == rt.Dst.String() && x.Table == rt.Table })
	r.routes = append(r.routes, *rt)
	return nil
}

// RouteDel deletes a route.
func (r *Recorder) RouteDel(rt *netlink.Route) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := len(r.routes)
	r.routes = slices.DeleteFunc(r.routes, func(x netlink.Route) bool { return x.Dst.String() == rt.Dst.String() && x.Table == rt.Table })
	if len(r.routes) == n {
		return unix.ESRCH
	}
	return r.record("RouteDel", "", "%s", r.describeRoute(rt))
}
