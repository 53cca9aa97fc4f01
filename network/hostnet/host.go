package hostnet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"

	"github.com/vishvananda/netlink"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/internal/revert"
)

// Configurator converges a host's links to a desired configuration. Host is
// the kernel implementation, Fake the in-memory one; both pass
// hostnettest.Run.
type Configurator interface {
	// Apply brings the host to d and returns the changes it made; applying
	// the same d again returns no changes. On error nothing is changed.
	Apply(ctx context.Context, d Desired) ([]Change, error)
	// Links returns the host's links in the model's terms; addresses are
	// filled in for owned links only.
	Links(ctx context.Context) ([]Link, error)
}

// Netlink is the part of *netlink.Handle that Host uses. A *netlink.Handle
// (from netlink.NewHandle or netlink.NewHandleAt for another namespace)
// satisfies it; nettest.Recorder records the requests instead, for features
// the test kernel lacks (VLAN sub-interfaces, bonds, VLAN filtering).
type Netlink interface {
	LinkList() ([]netlink.Link, error)
	LinkByName(name string) (netlink.Link, error)
	LinkAdd(link netlink.Link) error
	LinkDel(link netlink.Link) error
	LinkSetMaster(link, master netlink.Link) error
	LinkSetNoMaster(link netlink.Link) error
	LinkSetUp(link netlink.Link) error
	LinkSetDown(link netlink.Link) error
	LinkSetMTU(link netlink.Link, mtu int) error
	LinkSetAlias(link netlink.Link, alias string) error
	AddrList(link netlink.Link, family int) ([]netlink.Addr, error)
	AddrAdd(link netlink.Link, addr *netlink.Addr) error
	AddrDel(link netlink.Link, addr *netlink.Addr) error
}

// DefaultOwnerTag is the interface alias that marks links a Host created.
const DefaultOwnerTag = "virtplane"

// Config holds what a Host needs.
type Config struct {
	Netlink Netlink
	// OwnerTag is written as the alias of every link the Host creates; links
	// with another alias are never deleted. Empty means DefaultOwnerTag.
	OwnerTag string
}

// Host applies configurations to the kernel through netlink.
type Host struct {
	// mu serialises Apply: two plans computed from the same reading would
	// undo each other's work.
	mu  sync.Mutex
	nl  Netlink
	tag string
}

var _ Configurator = (*Host)(nil)

// New returns a Host over cfg.Netlink.
func New(cfg Config) (*Host, error) {
	if cfg.Netlink == nil {
		return nil, invalid("hostnet config: netlink is nil")
	}
	tag := cfg.OwnerTag
	if tag == "" {
		tag = DefaultOwnerTag
	}
	return &Host{nl: cfg.Netlink, tag: tag}, nil
}

func (h *Host) linkList() ([]netlink.Link, error) {
	for range 5 {
		ls, err := h.nl.LinkList()
		if errors.Is(err, netlink.ErrDumpInterrupted) {
			continue
		}
		return ls, err
	}
	return nil, virtplane.Errorf(virtplane.ErrUnavailable, "list links: dump interrupted repeatedly")
}

// Links returns every link of the host in the model's terms.
func (h *Host) Links(ctx context.Context) ([]Link, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	nls, err := h.linkList()
	if err != nil {
		return nil, kernelErr("list links", err)
	}
	byIndex := map[int]string{}
	for _, l := range nls {
		byIndex[l.Attrs().Index] = l.Attrs().Name
	}
	out := make([]Link, 0, len(nls))
	for _, nl := range nls {
		l := fromNetlink(nl, byIndex, h.tag)
		if l.Owned {
			as, err := h.nl.AddrList(nl, netlink.FAMILY_ALL)
			if err != nil {
				return nil, kernelErr("list addresses of "+l.Name, err)
			}
			for _, a := range as {
				if p, ok := prefixOf(a); ok {
					l.Addresses = append(l.Addresses, p)
				}
			}
			l.Addresses = sortedPrefixes(l.Addresses)
		}
		out = append(out, l)
	}
	return out, nil
}

func prefixOf(a netlink.Addr) (netip.Prefix, bool) {
	if a.IPNet == nil {
		return netip.Prefix{}, false
	}
	ip, ok := netip.AddrFromSlice(a.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := a.Mask.Size()
	return netip.PrefixFrom(ip.Unmap(), ones), true
}

func fromNetlink(nl netlink.Link, byIndex map[int]string, tag string) Link {
	a := nl.Attrs()
	l := Link{Name: a.Name, Kind: KindOther, Owned: a.Alias == tag, MTU: a.MTU, Up: a.Flags&net.FlagUp != 0}
	if a.MasterIndex != 0 {
		l.Master = byIndex[a.MasterIndex]
	}
	switch v := nl.(type) {
	case *netlink.Bridge:
		l.Kind = KindBridge
		l.VLANFiltering = v.VlanFiltering != nil && *v.VlanFiltering
	case *netlink.Vlan:
		l.Kind = KindVLAN
		l.VLANParent = byIndex[a.ParentIndex]
		l.VLANID = v.VlanId
		l.VLANProtocol = "802.1Q"
		if v.VlanProtocol == netlink.VLAN_PROTOCOL_8021AD {
			l.VLANProtocol = "802.1ad"
		}
	case *netlink.Bond:
		l.Kind = KindBond
		l.BondMode = v.Mode.String()
		l.BondMiimon = v.Miimon
		if v.Mode == netlink.BOND_MODE_802_3AD {
			l.BondLACPRate = v.LacpRate.String()
		}
		l.BondHash = v.XmitHashPolicy.String()
	case *netlink.Vxlan:
		l.Kind = KindVXLAN
		l.VNI = v.VxlanId
		if ip, ok := netip.AddrFromSlice(v.SrcAddr); ok {
			l.VXLANLocal = ip.Unmap()
		}
		l.VXLANPort = v.Port
		l.VXLANLearning = v.Learning
		if v.VtepDevIndex != 0 {
			l.VXLANDevice = byIndex[v.VtepDevIndex]
		}
	}
	return normalize(l)
}

// normalize fills the kernel's defaults into a link so that a configuration
// that leaves them out compares equal to what the kernel reports.
func normalize(l Link) Link {
	if l.Kind == KindBond {
		if l.BondMode == "802.3ad" && l.BondLACPRate == "" {
			l.BondLACPRate = "slow"
		}
		if l.BondHash == "" {
			l.BondHash = "layer2"
		}
	}
	return l
}

// toNetlink builds the link creation request for an owned link.
func (h *Host) toNetlink(l Link) (netlink.Link, error) {
	attrs := netlink.NewLinkAttrs()
	attrs.Name, attrs.MTU = l.Name, l.MTU
	parentIndex := func(name string) (int, error) {
		p, err := h.nl.LinkByName(name)
		if err != nil {
			return 0, virtplane.Errorf(virtplane.ErrNotFound, "%s %q: link %q: %v", l.Kind, l.Name, name, err)
		}
		return p.Attrs().Index, nil
	}
	switch l.Kind {
	case KindBridge:
		br := &netlink.Bridge{LinkAttrs: attrs}
		if l.VLANFiltering {
			on := true
			br.VlanFiltering = &on
		}
		return br, nil
	case KindVLAN:
		idx, err := parentIndex(l.VLANParent)
		if err != nil {
			return nil, err
		}
		attrs.ParentIndex = idx
		proto := netlink.VLAN_PROTOCOL_8021Q
		if l.VLANProtocol == "802.1ad" {
			proto = netlink.VLAN_PROTOCOL_8021AD
		}
		return &netlink.Vlan{LinkAttrs: attrs, VlanId: l.VLANID, VlanProtocol: proto}, nil
	case KindBond:
		b := netlink.NewLinkBond(attrs)
		b.Mode = netlink.StringToBondMode(l.BondMode)
		b.Miimon = l.BondMiimon
		if l.BondLACPRate != "" {
			b.LacpRate = netlink.StringToBondLacpRate(l.BondLACPRate)
		}
		if l.BondHash != "" {
			b.XmitHashPolicy = netlink.StringToBondXmitHashPolicy(l.BondHash)
		}
		return b, nil
	case KindVXLAN:
		x := &netlink.Vxlan{LinkAttrs: attrs, VxlanId: l.VNI, Port: l.VXLANPort, Learning: l.VXLANLearning}
		if l.VXLANLocal.IsValid() {
			x.SrcAddr = net.IP(l.VXLANLocal.AsSlice())
		}
		if l.VXLANDevice != "" {
			idx, err := parentIndex(l.VXLANDevice)
			if err != nil {
				return nil, err
			}
			x.VtepDevIndex = idx
		}
		return x, nil
	}
	return nil, invalid("link %q: cannot create a link of kind %q", l.Name, l.Kind)
}

// Apply converges the host to d. A failed step undoes the steps before it.
func (h *Host) Apply(ctx context.Context, d Desired) ([]Change, error) {
	if err := d.Validate(); err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	cur, err := h.Links(ctx)
	if err != nil {
		return nil, err
	}
	changes, err := Plan(cur, d)
	if err != nil {
		return nil, err
	}
	r := revert.New()
	defer r.Fail()
	for _, c := range changes {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		undo, err := h.exec(c)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c, err)
		}
		r.AddE(undo)
	}
	r.Success()
	return changes, nil
}

func (h *Host) byName(name string) (netlink.Link, error) {
	l, err := h.nl.LinkByName(name)
	if err != nil {
		return nil, kernelErr("find link "+name, err)
	}
	return l, nil
}

// exec performs one change and returns its undo.
func (h *Host) exec(c Change) (func() error, error) {
	if c.Op == OpCreate {
		nl, err := h.toNetlink(c.Spec)
		if err != nil {
			return nil, err
		}
		if err := h.nl.LinkAdd(nl); err != nil {
			return nil, kernelErr("create "+c.Link, err)
		}
		// The kernel ignores IFLA_IFALIAS in a creation request: the owner
		// tag is set in a second request.
		if err := h.nl.LinkSetAlias(nl, h.tag); err != nil {
			_ = h.nl.LinkDel(nl)
			return nil, kernelErr("tag "+c.Link, err)
		}
		return func() error { return h.nl.LinkDel(nl) }, nil
	}
	l, err := h.byName(c.Link)
	if err != nil {
		if c.Op == OpDelete && errors.Is(err, virtplane.ErrNotFound) {
			// A VLAN deleted with its parent, earlier in this plan.
			return func() error { return nil }, nil
		}
		return nil, err
	}
	switch c.Op {
	case OpDelete:
		if err := h.nl.LinkDel(l); err != nil {
			return nil, kernelErr("delete "+c.Link, err)
		}
		return func() error {
			// Best effort: the link comes back with its attributes and
			// state; ports that hung on it are reattached by the next Apply.
			nl, err := h.toNetlink(c.Spec)
			if err != nil {
				return err
			}
			if err := h.nl.LinkAdd(nl); err != nil {
				return err
			}
			if err := h.nl.LinkSetAlias(nl, h.tag); err != nil {
				return err
			}
			if c.Spec.Up {
				return h.nl.LinkSetUp(nl)
			}
			return nil
		}, nil
	case OpSetMTU:
		if err := h.nl.LinkSetMTU(l, c.MTU); err != nil {
			return nil, kernelErr("set mtu of "+c.Link, err)
		}
		return func() error { return h.nl.LinkSetMTU(l, c.PrevMT) }, nil
	case OpSetMaster:
		m, err := h.byName(c.Master)
		if err != nil {
			return nil, err
		}
		if _, isBond := m.(*netlink.Bond); isBond {
			// The bonding driver refuses a member that is up.
			if err := h.nl.LinkSetDown(l); err != nil {
				return nil, kernelErr("set down "+c.Link, err)
			}
		}
		if err := h.nl.LinkSetMaster(l, m); err != nil {
			return nil, kernelErr("enslave "+c.Link+" to "+c.Master, err)
		}
		return func() error {
			if c.Prev == "" {
				return h.nl.LinkSetNoMaster(l)
			}
			p, err := h.byName(c.Prev)
			if err != nil {
				return err
			}
			return h.nl.LinkSetMaster(l, p)
		}, nil
	case OpRelease:
		if err := h.nl.LinkSetNoMaster(l); err != nil {
			return nil, kernelErr("release "+c.Link, err)
		}
		return func() error {
			m, err := h.byName(c.Master)
			if err != nil {
				return err
			}
			return h.nl.LinkSetMaster(l, m)
		}, nil
	case OpAddAddr, OpDelAddr:
		a := &netlink.Addr{IPNet: &net.IPNet{IP: net.IP(c.Addr.Addr().AsSlice()), Mask: net.CIDRMask(c.Addr.Bits(), c.Addr.Addr().BitLen())}}
		if c.Op == OpAddAddr {
			if err := h.nl.AddrAdd(l, a); err != nil {
				return nil, kernelErr("add address "+c.Addr.String()+" to "+c.Link, err)
			}
			return func() error { return h.nl.AddrDel(l, a) }, nil
		}
		if err := h.nl.AddrDel(l, a); err != nil {
			return nil, kernelErr("delete address "+c.Addr.String()+" from "+c.Link, err)
		}
		return func() error { return h.nl.AddrAdd(l, a) }, nil
	case OpSetUp:
		if err := h.nl.LinkSetUp(l); err != nil {
			return nil, kernelErr("set up "+c.Link, err)
		}
		return func() error { return h.nl.LinkSetDown(l) }, nil
	}
	return nil, invalid("unknown change %q", c.Op)
}

// kernelErr classifies a netlink error: a missing kernel feature becomes
// ErrNotImplemented, a missing link ErrNotFound, the rest ErrUnavailable.
func kernelErr(what string, err error) error {
	class := virtplane.ErrUnavailable
	var lnf netlink.LinkNotFoundError
	switch {
	case virtplane.Class(err) != nil:
		return fmt.Errorf("%s: %w", what, err)
	case errors.Is(err, errEOPNOTSUPP), errors.Is(err, errENOTSUP):
		class = virtplane.ErrNotImplemented
	case errors.As(err, &lnf), errors.Is(err, errENODEV):
		class = virtplane.ErrNotFound
	case errors.Is(err, errEEXIST):
		class = virtplane.ErrAlreadyExists
	}
	return virtplane.Errorf(class, "%s: %v", what, err)
}

// Simulate applies a plan to a model of the links, as the kernel would; the
// Fake uses it, and tests use it to check that a plan reaches its target.
func Simulate(links []Link, changes []Change) []Link {
	out := slices.Clone(links)
	find := func(name string) int {
		return slices.IndexFunc(out, func(l Link) bool { return l.Name == name })
	}
	for _, c := range changes {
		i := find(c.Link)
		switch c.Op {
		case OpDelete:
			if i < 0 {
				continue // went with its parent
			}
			out = slices.Delete(out, i, i+1)
			out = slices.DeleteFunc(out, func(l Link) bool {
				return (l.Kind == KindVLAN && l.VLANParent == c.Link) || (l.Kind == KindVXLAN && l.VXLANDevice == c.Link)
			})
			for j := range out {
				if out[j].Master == c.Link {
					out[j].Master = ""
				}
			}
		case OpCreate:
			l := c.Spec
			l.Master, l.Up, l.Addresses = "", false, nil
			l = normalize(l)
			if l.MTU == 0 {
				l.MTU = 1500
			}
			out = append(out, l)
		case OpSetMTU:
			out[i].MTU = c.MTU
		case OpSetMaster:
			out[i].Master = c.Master
			if m := find(c.Master); m >= 0 && out[m].Kind == KindBond {
				out[i].Up = false
			}
		case OpRelease:
			out[i].Master = ""
		case OpAddAddr:
			out[i].Addresses = sortedPrefixes(append(slices.Clone(out[i].Addresses), c.Addr))
		case OpDelAddr:
			out[i].Addresses = slices.DeleteFunc(slices.Clone(out[i].Addresses), func(p netip.Prefix) bool { return p == c.Addr })
		case OpSetUp:
			out[i].Up = true
		}
	}
	return out
}
