package vxlan

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

// Network is one user's virtual L2 network on this host. Its identity on
// the wire is the VNI alone: device names derive from it, so two users may
// give their networks the same name and addresses without sharing anything.
type Network struct {
	Name  string // the user's name for it; informational
	VNI   int    // 1..16777215, unique in the cluster
	Ports []string
	MTU   int // of the bridge and VxLAN device; 0 for the default
}

// Bridge returns the name of the network's bridge on a host.
func (n Network) Bridge() string { return fmt.Sprintf("vxbr%d", n.VNI) }

// Device returns the name of the network's VxLAN device on a host.
func (n Network) Device() string { return fmt.Sprintf("vx%d", n.VNI) }

// Underlay is how this host reaches the other tunnel endpoints.
type Underlay struct {
	Local  netip.Addr // this host's VTEP address
	Device string     // the underlay link; empty for any
	Port   int        // UDP port; 0 for 4789
}

// Desired returns the host configuration for the networks: one bridge and
// one VxLAN device per network, the VM ports on the bridge. learning is on
// for full mesh, off under EVPN (the control plane programs every MAC).
func Desired(u Underlay, nets []Network, learning bool) (hostnet.Desired, error) {
	if !u.Local.IsValid() {
		return hostnet.Desired{}, virtplane.Errorf(virtplane.ErrInvalidArgument, "underlay: local address is missing")
	}
	var d hostnet.Desired
	vnis := map[int]string{}
	for _, n := range nets {
		if n.VNI < 1 || n.VNI > 1<<24-1 {
			return hostnet.Desired{}, virtplane.Errorf(virtplane.ErrInvalidArgument, "network %q: vni %d out of range 1..16777215", n.Name, n.VNI)
		}
		if other, ok := vnis[n.VNI]; ok {
			return hostnet.Desired{}, virtplane.Errorf(virtplane.ErrConflict, "network %q: vni %d is already used by network %q", n.Name, n.VNI, other)
		}
		vnis[n.VNI] = n.Name
		d.Bridges = append(d.Bridges, hostnet.Bridge{Common: hostnet.Common{Name: n.Bridge(), MTU: n.MTU}})
		d.VXLANs = append(d.VXLANs, hostnet.VXLAN{
			Common: hostnet.Common{Name: n.Device(), MTU: n.MTU, Master: n.Bridge()},
			VNI:    n.VNI, Local: u.Local, Port: u.Port, Device: u.Device, Learning: learning,
		})
		for _, p := range n.Ports {
			d.Ports = append(d.Ports, hostnet.Port{Name: p, Master: n.Bridge()})
		}
	}
	return d, d.Validate()
}

// FDB is the part of *netlink.Handle that programs forwarding entries.
type FDB interface {
	LinkByName(name string) (netlink.Link, error)
	NeighList(linkIndex, family int) ([]netlink.Neigh, error)
	NeighAppend(neigh *netlink.Neigh) error
	NeighDel(neigh *netlink.Neigh) error
}

// Entry is one forwarding entry of a VxLAN device: frames for MAC go to
// the tunnel endpoint Dst. The zero MAC is the flood entry (head-end
// replication of broadcast, unknown unicast and multicast).
type Entry struct {
	MAC net.HardwareAddr
	Dst netip.Addr
}

func (e Entry) key() string { return e.MAC.String() + ">" + e.Dst.String() }

// FloodMAC returns the all-zero MAC of head-end replication entries.
func FloodMAC() net.HardwareAddr { return net.HardwareAddr{0, 0, 0, 0, 0, 0} }

// FullMesh returns the flood entries for a full mesh: one per peer.
func FullMesh(local netip.Addr, peers []netip.Addr) []Entry {
	var out []Entry
	for _, p := range peers {
		if p != local {
			out = append(out, Entry{MAC: FloodMAC(), Dst: p})
		}
	}
	return out
}

// SyncFDB makes the remote entries of a VxLAN device exactly want: missing
// entries are appended, stale ones deleted; entries the device learned
// itself are left alone. It returns how many entries it added and removed.
func SyncFDB(ctx context.Context, nl FDB, device string, want []Entry) (added, removed int, err error) {
	if err := ctx.Err(); err != nil {
		return 0, 0, err
	}
	link, err := nl.LinkByName(device)
	if err != nil {
		return 0, 0, virtplane.Errorf(virtplane.ErrNotFound, "vxlan device %q: %v", device, err)
	}
	cur, err := nl.NeighList(link.Attrs().Index, unix.AF_BRIDGE)
	if err != nil {
		return 0, 0, virtplane.Errorf(virtplane.ErrUnavailable, "list fdb of %q: %v", device, err)
	}
	have := map[string]netlink.Neigh{}
	for _, n := range cur {
		// Static remote entries only: learned ones (no NUD_PERMANENT) and
		// local ones (no destination) belong to the kernel.
		if n.IP == nil || n.State&netlink.NUD_PERMANENT == 0 || n.Flags&netlink.NTF_SELF == 0 {
			continue
		}
		dst, ok := netip.AddrFromSlice(n.IP)
		if !ok {
			continue
		}
		have[Entry{MAC: n.HardwareAddr, Dst: dst.Unmap()}.key()] = n
	}
	wantKeys := map[string]bool{}
	for _, e := range want {
		wantKeys[e.key()] = true
		if _, ok := have[e.key()]; ok {
			continue
		}
		n := &netlink.Neigh{
			LinkIndex: link.Attrs().Index, Family: unix.AF_BRIDGE, State: netlink.NUD_PERMANENT,
			Flags: netlink.NTF_SELF, IP: net.IP(e.Dst.AsSlice()), HardwareAddr: e.MAC,
		}
		if err := nl.NeighAppend(n); err != nil && !errors.Is(err, unix.EEXIST) {
			return added, removed, virtplane.Errorf(virtplane.ErrUnavailable, "add fdb %s dst %s on %q: %v", e.MAC, e.Dst, device, err)
		}
		added++
	}
	keys := make([]string, 0, len(have))
	for k := range have {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if wantKeys[k] {
			continue
		}
		n := have[k]
		if err := nl.NeighDel(&n); err != nil && !errors.Is(err, unix.ENOENT) {
			return added, removed, virtplane.Errorf(virtplane.ErrUnavailable, "delete fdb %s on %q: %v", k, device, err)
		}
		removed++
	}
	return added, removed, nil
}
