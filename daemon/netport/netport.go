package netport

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
	// Bridge is the host bridge the port joins; it is created when missing.
	Bridge string `json:"bridge"`
	// Addresses are the only source addresses the VM may use.
	Addresses []netip.Addr `json:"addresses"`
	// BlockIn and BlockOut drop TCP/UDP traffic to these destination ports
	// towards the VM and from it.
	BlockIn  []firewall.PortRange `json:"block_in,omitempty"`
	BlockOut []firewall.PortRange `json:"block_out,omitempty"`
	// InKbit limits what the VM receives, OutKbit what it sends, in kbit/s;
	// 0 is unlimited.
	InKbit  uint64 `json:"in_kbit,omitempty"`
	OutKbit uint64 `json:"out_kbit,omitempty"`
}

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
	if err := validName("bridge", s.Bridge); err != nil {
		return err
	}
	if s.Bridge == s.Name {
		return invalid("port %s: bridge %q is the port itself", s.Name, s.Bridge)
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

// Policy is the port's firewall policy.
func (s Spec) Policy() firewall.Policy {
	mac, _ := net.ParseMAC(s.MAC)
	p := firewall.Policy{Port: s.Name, MAC: mac, BlockIn: s.BlockIn, BlockOut: s.BlockOut}
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
	return a.Name == b.Name && a.VMID == b.VMID && a.MAC == b.MAC && a.Bridge == b.Bridge &&
		slices.Equal(a.Addresses, b.Addresses) && slices.Equal(a.BlockIn, b.BlockIn) && slices.Equal(a.BlockOut, b.BlockOut) &&
		a.InKbit == b.InKbit && a.OutKbit == b.OutKbit
}

func (s Spec) String() string {
	return fmt.Sprintf("port %s (vm %s, mac %s) on %s", s.Name, s.VMID, s.MAC, s.Bridge)
}

// conflict is the error of a Setup whose name another VM's port holds.
func conflict(name, owner, want string) error {
	return virtplane.Errorf(virtplane.ErrConflict, "port %s belongs to vm %s, not %s", name, owner, want)
}
