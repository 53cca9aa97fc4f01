package shaping

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/network/hostnet"
)

// Limit is the bandwidth limit of one VM port, from the VM's point of view.
type Limit struct {
	Port string
	// InKbit limits what the VM receives (the port's egress: HTB);
	// OutKbit what it sends (the port's ingress, redirected to an IFB
	// device: TBF). 0 means unlimited in that direction.
	InKbit, OutKbit uint64
}

func invalid(format string, args ...any) error {
	return virtplane.Errorf(virtplane.ErrInvalidArgument, format, args...)
}

// maxKbit keeps rates within what the kernel's 64-bit rate attributes and
// the burst computation handle (100 Gbit/s).
const maxKbit = 100_000_000

// Validate checks a limit without touching the host.
func (l Limit) Validate() error {
	if !hostnet.ValidLinkName(l.Port) {
		return invalid("shaping: port %q is not a link name", l.Port)
	}
	if l.InKbit > maxKbit || l.OutKbit > maxKbit {
		return invalid("shaping %s: rate above %d kbit/s", l.Port, uint64(maxKbit))
	}
	if (l.InKbit != 0 && l.InKbit < 8) || (l.OutKbit != 0 && l.OutKbit < 8) {
		return invalid("shaping %s: rate below 8 kbit/s", l.Port)
	}
	return nil
}

// Netlink is the part of *netlink.Handle the Shaper uses.
type Netlink interface {
	LinkByName(name string) (netlink.Link, error)
	LinkAdd(link netlink.Link) error
	LinkDel(link netlink.Link) error
	LinkSetUp(link netlink.Link) error
	QdiscList(link netlink.Link) ([]netlink.Qdisc, error)
	QdiscReplace(q netlink.Qdisc) error
	QdiscDel(q netlink.Qdisc) error
	ClassList(link netlink.Link, parent uint32) ([]netlink.Class, error)
	ClassReplace(c netlink.Class) error
	FilterList(link netlink.Link, parent uint32) ([]netlink.Filter, error)
	FilterReplace(f netlink.Filter) error
}

// Shaper installs limits with tc through netlink.
type Shaper struct {
	nl Netlink
}

// New returns a Shaper.
func New(nl Netlink) (*Shaper, error) {
	if nl == nil {
		return nil, invalid("shaping: netlink is nil")
	}
	return &Shaper{nl: nl}, nil
}

// IFBName is the IFB device that carries a port's inbound (VM-sent) traffic.
func IFBName(port string) string { return fmt.Sprintf("vpi%08x", crc32.ChecksumIEEE([]byte(port))) }

// tc handles (major:minor): the HTB root 1:, its class 1:10, the ingress qdisc ffff:.
const (
	rootHandle    uint32 = 1 << 16
	classHandle   uint32 = 1<<16 | 0x10
	ingressHandle uint32 = 0xffff << 16
)

// State is what the Shaper finds installed on a port.
type State struct {
	InKbit, OutKbit uint64
}

// Current reads the limits installed on a port.
func (s *Shaper) Current(ctx context.Context, port string) (State, error) {
	var st State
	if err := ctx.Err(); err != nil {
		return st, err
	}
	link, err := s.nl.LinkByName(port)
	if err != nil {
		return st, virtplane.Errorf(virtplane.ErrNotFound, "shaping: port %q: %v", port, err)
	}
	qs, err := s.nl.QdiscList(link)
	if err != nil {
		return st, virtplane.Errorf(virtplane.ErrUnavailable, "shaping %s: list qdiscs: %v", port, err)
	}
	redirected := false // the port's ingress goes to the IFB
	for _, q := range qs {
		if _, ok := q.(*netlink.Ingress); ok && q.Attrs().Parent == netlink.HANDLE_INGRESS {
			redirected = true
		}
		if _, ok := q.(*netlink.Htb); ok && q.Attrs().Handle == rootHandle && q.Attrs().Parent == netlink.HANDLE_ROOT {
			cs, err := s.nl.ClassList(link, rootHandle)
			if err != nil {
				return st, virtplane.Errorf(virtplane.ErrUnavailable, "shaping %s: list classes: %v", port, err)
			}
			for _, c := range cs {
				if h, ok := c.(*netlink.HtbClass); ok && h.Attrs().Handle == classHandle {
					st.InKbit = h.Rate * 8 / 1000
				}
			}
		}
	}
	ifb, err := s.nl.LinkByName(IFBName(port))
	if err != nil || !redirected {
		// Without the redirect (a new tap of the same name, made when the
		// machine started again) the IFB's rate shapes nothing.
		return st, nil
	}
	qs, err = s.nl.QdiscList(ifb)
	if err != nil {
		return st, virtplane.Errorf(virtplane.ErrUnavailable, "shaping %s: list ifb qdiscs: %v", port, err)
	}
	for _, q := range qs {
		if t, ok := q.(*netlink.Tbf); ok && q.Attrs().Parent == netlink.HANDLE_ROOT {
			st.OutKbit = t.Rate * 8 / 1000
		}
	}
	return st, nil
}

// Apply installs l on its port and reports whether anything changed;
// applying the same limit again changes nothing.
func (s *Shaper) Apply(ctx context.Context, l Limit) (bool, error) {
	if err := l.Validate(); err != nil {
		return false, err
	}
	cur, err := s.Current(ctx, l.Port)
	if err != nil {
		return false, err
	}
	if cur == (State{InKbit: l.InKbit, OutKbit: l.OutKbit}) {
		return false, nil
	}
	link, err := s.nl.LinkByName(l.Port)
	if err != nil {
		return false, virtplane.Errorf(virtplane.ErrNotFound, "shaping: port %q: %v", l.Port, err)
	}
	if cur.InKbit != l.InKbit {
		if err := s.applyIn(link, l.InKbit); err != nil {
			return true, err
		}
	}
	if cur.OutKbit != l.OutKbit {
		if err := s.applyOut(link, l.OutKbit); err != nil {
			return true, err
		}
	}
	return true, nil
}

func burstBytes(bytesPerSec uint64) uint32 {
	// 10 ms worth, at least a few full frames.
	b := bytesPerSec / 100
	if b < 16*1024 {
		b = 16 * 1024
	}
	return uint32(b)
}

func (s *Shaper) applyIn(link netlink.Link, kbit uint64) error {
	idx := link.Attrs().Index
	root := netlink.QdiscAttrs{LinkIndex: idx, Handle: rootHandle, Parent: netlink.HANDLE_ROOT}
	if kbit == 0 {
		if err := s.nl.QdiscDel(netlink.NewHtb(root)); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EINVAL) {
			return virtplane.Errorf(virtplane.ErrUnavailable, "shaping %s: delete htb: %v", link.Attrs().Name, err)
		}
		return nil
	}
	qs, err := s.nl.QdiscList(link)
	if err != nil {
		return virtplane.Errorf(virtplane.ErrUnavailable, "shaping %s: list qdiscs: %v", link.Attrs().Name, err)
	}
	hasRoot := false
	for _, q := range qs {
		_, isHtb := q.(*netlink.Htb)
		hasRoot = hasRoot || (isHtb && q.Attrs().Handle == rootHandle && q.Attrs().Parent == netlink.HANDLE_ROOT)
	}
	// The HTB qdisc refuses a replace with itself; only its class changes.
	if !hasRoot {
		htb := netlink.NewHtb(root)
		htb.Defcls = 0x10
		if err := s.nl.QdiscReplace(htb); err != nil {
			return tcErr(link.Attrs().Name, "htb qdisc", err)
		}
	}
	bits := kbit * 1000
	class := netlink.NewHtbClass(netlink.ClassAttrs{LinkIndex: idx, Parent: rootHandle, Handle: classHandle},
		netlink.HtbClassAttrs{Rate: bits, Ceil: bits, Buffer: burstBytes(bits / 8), Cbuffer: burstBytes(bits / 8)})
	if err := s.nl.ClassReplace(class); err != nil {
		return tcErr(link.Attrs().Name, "htb class", err)
	}
	return nil
}

func (s *Shaper) applyOut(link netlink.Link, kbit uint64) error {
	idx, name := link.Attrs().Index, IFBName(link.Attrs().Name)
	ingress := &netlink.Ingress{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: idx, Handle: ingressHandle, Parent: netlink.HANDLE_INGRESS}}
	if kbit == 0 {
		if err := s.nl.QdiscDel(ingress); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EINVAL) {
			return virtplane.Errorf(virtplane.ErrUnavailable, "shaping %s: delete ingress: %v", link.Attrs().Name, err)
		}
		if ifb, err := s.nl.LinkByName(name); err == nil {
			if err := s.nl.LinkDel(ifb); err != nil {
				return virtplane.Errorf(virtplane.ErrUnavailable, "shaping %s: delete %s: %v", link.Attrs().Name, name, err)
			}
		}
		return nil
	}
	ifb, err := s.nl.LinkByName(name)
	if err != nil {
		attrs := netlink.NewLinkAttrs()
		attrs.Name = name
		if err := s.nl.LinkAdd(&netlink.Ifb{LinkAttrs: attrs}); err != nil {
			return tcErr(link.Attrs().Name, "ifb device", err)
		}
		if ifb, err = s.nl.LinkByName(name); err != nil {
			return virtplane.Errorf(virtplane.ErrUnavailable, "shaping %s: find %s: %v", link.Attrs().Name, name, err)
		}
	}
	if err := s.nl.LinkSetUp(ifb); err != nil {
		return tcErr(link.Attrs().Name, "ifb up", err)
	}
	rate := kbit * 1000 / 8
	burst := burstBytes(rate)
	tbf := &netlink.Tbf{
		QdiscAttrs: netlink.QdiscAttrs{LinkIndex: ifb.Attrs().Index, Handle: netlink.MakeHandle(1, 0), Parent: netlink.HANDLE_ROOT},
		Rate:       rate, Buffer: netlink.Xmittime(rate, burst),
		Limit: uint32(rate/20) + burst, // 50 ms of queue
	}
	if err := s.nl.QdiscReplace(tbf); err != nil {
		return tcErr(link.Attrs().Name, "tbf qdisc", err)
	}
	if err := s.nl.QdiscReplace(ingress); err != nil {
		return tcErr(link.Attrs().Name, "ingress qdisc", err)
	}
	// u32 with one all-zero key matches every packet (cls_matchall is not
	// in every kernel; this one lacks it).
	redirect := &netlink.U32{
		FilterAttrs: netlink.FilterAttrs{LinkIndex: idx, Parent: ingressHandle, Priority: 1, Protocol: unix.ETH_P_ALL},
		Sel:         &netlink.TcU32Sel{Flags: netlink.TC_U32_TERMINAL, Nkeys: 1, Keys: []netlink.TcU32Key{{Mask: 0, Val: 0, Off: 0}}},
		Actions:     []netlink.Action{netlink.NewMirredAction(ifb.Attrs().Index)},
	}
	if err := s.nl.FilterReplace(redirect); err != nil {
		return tcErr(link.Attrs().Name, "redirect filter", err)
	}
	return nil
}

// Remove deletes every limit of the port; removing none is fine, and so is
// removing those of a port that is gone (its IFB goes too).
func (s *Shaper) Remove(ctx context.Context, port string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, err := s.nl.LinkByName(port); err != nil {
		if ifb, err := s.nl.LinkByName(IFBName(port)); err == nil {
			if err := s.nl.LinkDel(ifb); err != nil {
				return virtplane.Errorf(virtplane.ErrUnavailable, "shaping %s: delete %s: %v", port, IFBName(port), err)
			}
		}
		return nil
	}
	_, err := s.Apply(ctx, Limit{Port: port})
	return err
}

func tcErr(port, what string, err error) error {
	class := virtplane.ErrUnavailable
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOENT) {
		class = virtplane.ErrNotImplemented
	}
	return virtplane.Errorf(class, "shaping %s: %s: %v", port, what, err)
}
