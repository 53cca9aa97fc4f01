package port

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/network/firewall"
	"github.com/virtplane/virtplane/network/hostnet"
	"github.com/virtplane/virtplane/network/shaping"
	"github.com/virtplane/virtplane/network/vxlan"
)

// Ports manages the network ports of one node.
type Ports interface {
	// Setup brings the port s.Name to s: its bridge exists, its firewall
	// holds s's MAC and addresses, and, once the device exists, it is on
	// the bridge and shaped to s's limits. Setting up the same spec again
	// changes nothing; a port of that name owned by another VM is a
	// conflict. On error nothing of a new port is left.
	Setup(ctx context.Context, s Spec) error
	// Teardown removes the port's firewall, limits and bridge membership
	// (and the bridge, if this node made it and no port uses it any more).
	// A port that does not exist is torn down already: that is not an error.
	Teardown(ctx context.Context, name string) error
	// List returns the specs of the node's ports, sorted by name.
	List(ctx context.Context) ([]Spec, error)
}

// Spec is one VM NIC's port on a node.
type Spec struct {
	// Name is the host-side device of the NIC (the tap the hypervisor
	// makes), TapName of the VM.
	Name string `json:"name"`
	// VMID is the VM the port belongs to.
	VMID string `json:"vm_id"`
	// MAC is the only source MAC the VM may send from (lower case).
	MAC string `json:"mac"`
	// Mode is how the port reaches the network: ModeBridge (also the
	// empty mode of specs recorded before modes), ModeRouted or ModeVXLAN.
	Mode string `json:"mode,omitempty"`
	// Bridge is the host bridge the port joins; it is created when missing.
	// Bridge mode: any bridge; VXLAN mode: the bridge of the VNI
	// (VXLANBridge, filled in by Normalize); routed mode: none.
	Bridge string `json:"bridge"`
	// GatewayV4 and GatewayV6 are, in routed mode, the gateway addresses
	// the host holds on the port (the VM's default gateway, IPv4 required;
	// IPv6 link-local, optional). Every routed port of a node has the same.
	GatewayV4 netip.Addr `json:"gateway_v4,omitzero"`
	GatewayV6 netip.Addr `json:"gateway_v6,omitzero"`
	// VXLAN is, in VXLAN mode, the network the port joins.
	VXLAN *VXLAN `json:"vxlan,omitempty"`
	// Addresses are the only source addresses the VM may use.
	Addresses []netip.Addr `json:"addresses"`
	// BlockIn and BlockOut drop TCP/UDP traffic to these destination ports
	// towards the VM and from it.
	BlockIn  []firewall.PortRange `json:"block_in,omitempty"`
	BlockOut []firewall.PortRange `json:"block_out,omitempty"`
	// MaxConnections caps the VM's concurrent connections through the
	// host's forwarding path (firewall.Policy.MaxConnections); 0 is none.
	MaxConnections int `json:"max_connections,omitempty"`
	// InKbit limits what the VM receives, OutKbit what it sends, in kbit/s;
	// 0 is unlimited.
	InKbit  uint64 `json:"in_kbit,omitempty"`
	OutKbit uint64 `json:"out_kbit,omitempty"`
}

// The network modes of a port.
const (
	// ModeBridge puts the tap on a host bridge.
	ModeBridge = "bridge"
	// ModeRouted leaves the tap alone: the host routes the VM's addresses
	// to it (a /32 or /128 each) and holds the gateway addresses on it.
	ModeRouted = "routed"
	// ModeVXLAN puts the tap on the bridge of a VxLAN network, whose
	// tunnel device floods to the other nodes of the cluster (full mesh).
	ModeVXLAN = "vxlan"
)

// Modes returns the modes a Spec may have.
func Modes() []string { return []string{ModeBridge, ModeRouted, ModeVXLAN} }

// VXLAN is the VxLAN network of a port in VXLAN mode.
type VXLAN struct {
	// VNI is the network's identifier on the wire, 1..16777215: the
	// cluster's.
	VNI int `json:"vni"`
	// Local is this node's tunnel endpoint (underlay) address. Every VXLAN
	// port of a node has the same.
	Local netip.Addr `json:"local"`
	// Peers are the tunnel endpoints of the cluster's other nodes: the
	// full-mesh flood list.
	Peers []netip.Addr `json:"peers,omitempty"`
}

// MaxVNI is the largest VxLAN network identifier (24 bits).
const MaxVNI = 1<<24 - 1

// VXLANBridge is the bridge of VxLAN network vni on a node (the name
// network/vxlan gives it).
func VXLANBridge(vni int) string { return vxlan.Network{VNI: vni}.Bridge() }

// TapPrefix starts the name of every port device (and of the default
// bridge): a sweep after a crashed test finds them by it.
const TapPrefix = "vpt"

// TapName is the port device of a VM: the prefix and 12 characters of a
// hash of the ID (60 bits), within the kernel's 15-character limit. VM IDs
// share their leading timestamp, so a hash rather than a slice of the ID.
func TapName(vmID string) string {
	sum := sha256.Sum256([]byte(vmID))
	return TapPrefix + strings.ToLower(base32.HexEncoding.EncodeToString(sum[:8]))[:12]
}

// MAC is the MAC of a VM's NIC: locally administered and unicast (first
// octet 02) with 40 bits of a hash of the ID, so that VMs sharing a
// bridge do not collide in practice (0.5 ppm for 1,000 VMs).
func MAC(vmID string) string {
	sum := sha256.Sum256([]byte("mac/" + vmID))
	return net.HardwareAddr{0x02, sum[0], sum[1], sum[2], sum[3], sum[4]}.String()
}

// ForVM returns the spec of a VM's port on bridge with the VM's addresses:
// name and MAC derived from the ID, no blocked ports, no limits.
func ForVM(vmID, bridge string, addrs []netip.Addr) Spec {
	return Spec{Name: TapName(vmID), VMID: vmID, MAC: MAC(vmID), Bridge: bridge, Addresses: addrs}
}

func invalid(format string, args ...any) error {
	return virtplane.Errorf(virtplane.ErrInvalidArgument, format, args...)
}

// validName checks a port or bridge name: a link name that is also safe as
// a file name (Host keeps a file per port).
func validName(what, name string) error {
	if !hostnet.ValidLinkName(name) || strings.HasPrefix(name, ".") {
		return invalid("port %s %q: want 1-15 characters of [A-Za-z0-9_.-], not starting with a dot", what, name)
	}
	return nil
}

// Normalize returns the spec in the form implementations store and List
// returns: MAC in lower case, addresses sorted without duplicates.
func (s Spec) Normalize() Spec {
	s.MAC = strings.ToLower(s.MAC)
	s.Addresses = slices.Clone(s.Addresses)
	slices.SortFunc(s.Addresses, netip.Addr.Compare)
	s.Addresses = slices.Compact(s.Addresses)
	if s.Mode == "" {
		s.Mode = ModeBridge
	}
	if s.VXLAN != nil {
		v := *s.VXLAN
		v.Peers = slices.DeleteFunc(slices.Clone(v.Peers), func(a netip.Addr) bool { return a == v.Local })
		slices.SortFunc(v.Peers, netip.Addr.Compare)
		v.Peers = slices.Compact(v.Peers)
		s.VXLAN = &v
		if s.Mode == ModeVXLAN && s.Bridge == "" {
			s.Bridge = VXLANBridge(v.VNI)
		}
	}
	return s
}

// Validate checks a spec without touching the node; errors wrap
// virtplane.ErrInvalidArgument and name the field at fault.
func (s Spec) Validate() error {
	if err := validName("name", s.Name); err != nil {
		return err
	}
	if s.VMID == "" {
		return invalid("port %s: vm_id is empty", s.Name)
	}
	if err := s.validateMode(); err != nil {
		return err
	}
	mac, err := net.ParseMAC(s.MAC)
	if err != nil || len(mac) != 6 {
		return invalid("port %s: mac %q: want xx:xx:xx:xx:xx:xx", s.Name, s.MAC)
	}
	if mac[0]&1 == 1 {
		return invalid("port %s: mac %q is multicast", s.Name, s.MAC)
	}
	for i, a := range s.Addresses {
		if !a.IsValid() || a.IsUnspecified() || a.Zone() != "" || a.Is4In6() {
			return invalid("port %s: addresses[%d] %v: want an IPv4 or IPv6 address without zone", s.Name, i, a)
		}
	}
	if err := s.Policy().Validate(); err != nil {
		return err
	}
	if err := s.Limit().Validate(); err != nil {
		return err
	}
	return nil
}

// validateMode checks the fields of the port's mode, and that those of
// the other modes are unset.
func (s Spec) validateMode() error {
	mode := s.Mode
	if mode == "" {
		mode = ModeBridge
	}
	if !slices.Contains(Modes(), mode) {
		return invalid("port %s: mode %q: want one of %v", s.Name, s.Mode, Modes())
	}
	if mode != ModeRouted && (s.GatewayV4.IsValid() || s.GatewayV6.IsValid()) {
		return invalid("port %s: gateway_v4/gateway_v6 are for routed mode, not %s", s.Name, mode)
	}
	if mode != ModeVXLAN && s.VXLAN != nil {
		return invalid("port %s: vxlan is for vxlan mode, not %s", s.Name, mode)
	}
	switch mode {
	case ModeRouted:
		if s.Bridge != "" {
			return invalid("port %s: bridge %q: a routed port is on no bridge", s.Name, s.Bridge)
		}
		if !s.GatewayV4.Is4() {
			return invalid("port %s: gateway_v4 %v: routed mode needs the IPv4 gateway the host holds on the port", s.Name, s.GatewayV4)
		}
		if s.GatewayV6.IsValid() && (!s.GatewayV6.Is6() || !s.GatewayV6.IsLinkLocalUnicast() || s.GatewayV6.Zone() != "") {
			return invalid("port %s: gateway_v6 %v: want an IPv6 link-local address without zone", s.Name, s.GatewayV6)
		}
		for i, a := range s.Addresses {
			if a == s.GatewayV4 || a.IsLinkLocalUnicast() {
				return invalid("port %s: addresses[%d] %v cannot be routed to the VM (link-local or the gateway)", s.Name, i, a)
			}
		}
		return nil
	case ModeVXLAN:
		v := s.VXLAN
		if v == nil {
			return invalid("port %s: vxlan is missing: vxlan mode needs the network's vni and the node's vtep address", s.Name)
		}
		if v.VNI < 1 || v.VNI > MaxVNI {
			return invalid("port %s: vxlan.vni %d out of range 1..%d", s.Name, v.VNI, MaxVNI)
		}
		if !validUnderlay(v.Local) {
			return invalid("port %s: vxlan.local %v: want the node's unicast vtep address", s.Name, v.Local)
		}
		for i, p := range v.Peers {
			if !validUnderlay(p) || p.Is4() != v.Local.Is4() {
				return invalid("port %s: vxlan.peers[%d] %v: want a unicast address of the family of vxlan.local", s.Name, i, p)
			}
		}
		if want := VXLANBridge(v.VNI); s.Bridge != "" && s.Bridge != want {
			return invalid("port %s: bridge %q: vxlan network %d is on bridge %s", s.Name, s.Bridge, v.VNI, want)
		}
		return nil
	}
	if err := validName("bridge", s.Bridge); err != nil {
		return err
	}
	if s.Bridge == s.Name {
		return invalid("port %s: bridge %q is the port itself", s.Name, s.Bridge)
	}
	return nil
}

func validUnderlay(a netip.Addr) bool {
	return a.IsValid() && !a.IsUnspecified() && !a.IsMulticast() && a.Zone() == "" && !a.Is4In6()
}

// Policy is the port's firewall policy.
func (s Spec) Policy() firewall.Policy {
	mac, _ := net.ParseMAC(s.MAC)
	p := firewall.Policy{Port: s.Name, MAC: mac, BlockIn: s.BlockIn, BlockOut: s.BlockOut, MaxConnections: s.MaxConnections}
	for _, a := range s.Addresses {
		if a.Is4() {
			p.IPv4 = append(p.IPv4, a)
		} else {
			p.IPv6 = append(p.IPv6, a)
		}
	}
	return p
}

// Limit is the port's bandwidth limit.
func (s Spec) Limit() shaping.Limit {
	return shaping.Limit{Port: s.Name, InKbit: s.InKbit, OutKbit: s.OutKbit}
}

// Equal reports whether two specs describe the same port.
func (s Spec) Equal(o Spec) bool {
	a, b := s.Normalize(), o.Normalize()
	return a.Name == b.Name && a.VMID == b.VMID && a.MAC == b.MAC && a.Mode == b.Mode && a.Bridge == b.Bridge &&
		a.GatewayV4 == b.GatewayV4 && a.GatewayV6 == b.GatewayV6 && a.VXLAN.equal(b.VXLAN) &&
		slices.Equal(a.Addresses, b.Addresses) && slices.Equal(a.BlockIn, b.BlockIn) && slices.Equal(a.BlockOut, b.BlockOut) &&
		a.InKbit == b.InKbit && a.OutKbit == b.OutKbit && a.MaxConnections == b.MaxConnections
}

func (v *VXLAN) equal(o *VXLAN) bool {
	if v == nil || o == nil {
		return v == o
	}
	return v.VNI == o.VNI && v.Local == o.Local && slices.Equal(v.Peers, o.Peers)
}

func (s Spec) String() string {
	switch s.Mode {
	case ModeRouted:
		return fmt.Sprintf("port %s (vm %s, mac %s) routed via %v", s.Name, s.VMID, s.MAC, s.GatewayV4)
	case ModeVXLAN:
		vni := 0
		if s.VXLAN != nil {
			vni = s.VXLAN.VNI
		}
		return fmt.Sprintf("port %s (vm %s, mac %s) on vxlan %d", s.Name, s.VMID, s.MAC, vni)
	}
	return fmt.Sprintf("port %s (vm %s, mac %s) on %s", s.Name, s.VMID, s.MAC, s.Bridge)
}

// conflict is the error of a Setup whose name another VM's port holds.
func conflict(name, owner, want string) error {
	return virtplane.Errorf(virtplane.ErrConflict, "port %s belongs to vm %s, not %s", name, owner, want)
}

// agree checks that port s can be on one node with port other: the node's
// routed ports share one pair of gateway addresses (the host answers for
// them on every routed port), its VXLAN ports one tunnel endpoint.
func agree(s, other Spec) error {
	if s.Name == other.Name || s.Mode != other.Mode {
		return nil
	}
	switch s.Mode {
	case ModeRouted:
		if s.GatewayV4 != other.GatewayV4 || s.GatewayV6 != other.GatewayV6 {
			return virtplane.Errorf(virtplane.ErrConflict, "port %s: gateway_v4/gateway_v6 %v/%v differ from %v/%v of port %s: the routed ports of a node share their gateways",
				s.Name, s.GatewayV4, s.GatewayV6, other.GatewayV4, other.GatewayV6, other.Name)
		}
	case ModeVXLAN:
		if s.VXLAN.Local != other.VXLAN.Local {
			return virtplane.Errorf(virtplane.ErrConflict, "port %s: vxlan.local %v differs from %v of port %s: a node has one vtep address",
				s.Name, s.VXLAN.Local, other.VXLAN.Local, other.Name)
		}
	}
	return nil
}
