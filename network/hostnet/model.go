package hostnet

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/virtplane/virtplane"
)

// Desired is the host network configuration Apply converges to. Bridges,
// VLANs, bonds and VxLAN devices listed here are created and owned by the
// Host (marked with its owner tag); Ports are links someone else created (a
// hypervisor's tap, a physical NIC, a veth) that Apply only enslaves.
type Desired struct {
	Bridges []Bridge
	VLANs   []VLAN
	Bonds   []Bond
	VXLANs  []VXLAN
	Ports   []Port
	// Leave names links of others that Apply neither enslaves nor
	// releases, whatever master they have: a tap a hypervisor is making
	// and enslaving at this moment.
	Leave []string
}

// Common holds the attributes every owned link has.
type Common struct {
	Name      string
	MTU       int            // 0 keeps the kernel default
	Master    string         // bridge (or bond) to enslave the link to; empty for none
	Addresses []netip.Prefix // exactly these addresses, no others, on the owned link
}

// Bridge is a Linux bridge.
type Bridge struct {
	Common
	// VLANFiltering turns on 802.1Q filtering on the bridge (not available
	// in every kernel: this one answers EOPNOTSUPP).
	VLANFiltering bool
}

// VLAN is an 802.1Q (or 802.1ad) sub-interface of Parent.
type VLAN struct {
	Common
	Parent   string
	ID       int    // 1..4094
	Protocol string // "802.1Q" (default) or "802.1ad"
}

// BondModes returns the Linux bonding modes Bond.Mode accepts.
func BondModes() []string {
	return []string{"balance-rr", "active-backup", "balance-xor", "broadcast", "802.3ad", "balance-tlb", "balance-alb"}
}

// Bond aggregates Members into one link.
type Bond struct {
	Common
	Mode           string // one of BondModes
	Members        []string
	Miimon         int    // link monitoring interval in ms; 0 means 100
	LACPRate       string // "slow" or "fast", 802.3ad only
	XmitHashPolicy string // "layer2", "layer3+4", "layer2+3", "encap2+3", "encap3+4"; empty for the default
}

// VXLAN is a VxLAN tunnel endpoint.
type VXLAN struct {
	Common
	VNI    int        // 1..16777215
	Local  netip.Addr // the underlay source address
	Port   int        // UDP port; 0 means 4789
	Device string     // underlay link; empty for any
	// Learning lets the device learn remote MACs from received frames (full
	// mesh); off when a control plane (EVPN) programs every entry.
	Learning bool
}

// Port is an existing link (tap, veth, NIC) to enslave to a bridge.
type Port struct {
	Name   string
	Master string
	MTU    int
}

// Kind names of links in the model.
const (
	KindBridge = "bridge"
	KindVLAN   = "vlan"
	KindBond   = "bond"
	KindVXLAN  = "vxlan"
	KindOther  = "other" // a link Apply does not create (tap, veth, NIC)
)

// Link is one link as the model sees it: the result of reading the kernel,
// and the target of a plan.
type Link struct {
	Name      string
	Kind      string
	Owned     bool // carries the Host's owner tag
	MTU       int
	Master    string
	Up        bool
	Addresses []netip.Prefix

	VLANParent    string
	VLANID        int
	VLANProtocol  string
	BondMode      string
	BondMiimon    int
	BondLACPRate  string
	BondHash      string
	VLANFiltering bool
	VNI           int
	VXLANLocal    netip.Addr
	VXLANPort     int
	VXLANDevice   string
	VXLANLearning bool
}

// identity is what cannot change on a live link; a difference means the
// link is deleted and created again.
func (l Link) identity() string {
	return fmt.Sprintf("%s|%s|%d|%s|%s|%d|%s|%s|%t|%d|%s|%d|%s|%t", l.Kind, l.VLANParent, l.VLANID, l.VLANProtocol,
		l.BondMode, l.BondMiimon, l.BondLACPRate, l.BondHash, l.VLANFiltering, l.VNI, l.VXLANLocal, l.VXLANPort, l.VXLANDevice, l.VXLANLearning)
}

// ValidLinkName reports whether name can name a Linux link: 1 to 15
// characters of letters, digits, '_', '.' and '-' (a safe subset of what
// the kernel allows).
func ValidLinkName(name string) bool {
	if len(name) < 1 || len(name) > 15 {
		return false
	}
	for _, c := range name {
		ok := (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'
		if !ok {
			return false
		}
	}
	return true
}

func invalid(format string, args ...any) error {
	return virtplane.Errorf(virtplane.ErrInvalidArgument, format, args...)
}

// Validate checks the configuration without touching the host; every error
// wraps virtplane.ErrInvalidArgument and names the offending field.
func (d Desired) Validate() error {
	_, err := d.links()
	return err
}

// links compiles the configuration into the links it describes, in creation
// order (bonds before the VLANs that may sit on them, bridges before their ports).
func (d Desired) links() ([]Link, error) {
	var out []Link
	seen := map[string]string{}
	add := func(kind string, c Common, l Link) error {
		if !ValidLinkName(c.Name) {
			return invalid("%s name %q: want 1-15 characters of [A-Za-z0-9_.-]", kind, c.Name)
		}
		if prev, ok := seen[c.Name]; ok {
			return invalid("%s %q: name already used by a %s", kind, c.Name, prev)
		}
		if c.MTU < 0 || c.MTU > 65535 {
			return invalid("%s %q: mtu %d out of range 0..65535", kind, c.Name, c.MTU)
		}
		for _, a := range c.Addresses {
			if !a.IsValid() {
				return invalid("%s %q: invalid address %v", kind, c.Name, a)
			}
		}
		seen[c.Name] = kind
		l.Name, l.MTU, l.Master, l.Owned, l.Up = c.Name, c.MTU, c.Master, true, true
		l.Addresses = sortedPrefixes(c.Addresses)
		out = append(out, normalize(l))
		return nil
	}
	for _, b := range d.Bridges {
		if err := add("bridge", b.Common, Link{Kind: KindBridge, VLANFiltering: b.VLANFiltering}); err != nil {
			return nil, err
		}
	}
	for _, b := range d.Bonds {
		if !slices.Contains(BondModes(), b.Mode) {
			return nil, invalid("bond %q: mode %q: want one of %v", b.Name, b.Mode, BondModes())
		}
		if b.LACPRate != "" && b.LACPRate != "slow" && b.LACPRate != "fast" {
			return nil, invalid("bond %q: lacp rate %q: want slow or fast", b.Name, b.LACPRate)
		}
		if b.LACPRate != "" && b.Mode != "802.3ad" {
			return nil, invalid("bond %q: lacp rate is only for mode 802.3ad", b.Name)
		}
		switch b.XmitHashPolicy {
		case "", "layer2", "layer3+4", "layer2+3", "encap2+3", "encap3+4":
		default:
			return nil, invalid("bond %q: xmit hash policy %q unknown", b.Name, b.XmitHashPolicy)
		}
		if b.Miimon < 0 {
			return nil, invalid("bond %q: miimon %d is negative", b.Name, b.Miimon)
		}
		miimon := b.Miimon
		if miimon == 0 {
			miimon = 100
		}
		if err := add("bond", b.Common, Link{Kind: KindBond, BondMode: b.Mode, BondMiimon: miimon, BondLACPRate: b.LACPRate, BondHash: b.XmitHashPolicy}); err != nil {
			return nil, err
		}
	}
	for _, v := range d.VLANs {
		if v.ID < 1 || v.ID > 4094 {
			return nil, invalid("vlan %q: id %d out of range 1..4094", v.Name, v.ID)
		}
		proto := v.Protocol
		if proto == "" {
			proto = "802.1Q"
		}
		if proto != "802.1Q" && proto != "802.1ad" {
			return nil, invalid("vlan %q: protocol %q: want 802.1Q or 802.1ad", v.Name, v.Protocol)
		}
		if !ValidLinkName(v.Parent) {
			return nil, invalid("vlan %q: parent %q is not a link name", v.Name, v.Parent)
		}
		if err := add("vlan", v.Common, Link{Kind: KindVLAN, VLANParent: v.Parent, VLANID: v.ID, VLANProtocol: proto}); err != nil {
			return nil, err
		}
	}
	for _, x := range d.VXLANs {
		if x.VNI < 1 || x.VNI > 1<<24-1 {
			return nil, invalid("vxlan %q: vni %d out of range 1..16777215", x.Name, x.VNI)
		}
		if x.Local.IsValid() && x.Local.Zone() != "" {
			return nil, invalid("vxlan %q: local address %v has a zone", x.Name, x.Local)
		}
		port := x.Port
		if port == 0 {
			port = 4789
		}
		if port < 1 || port > 65535 {
			return nil, invalid("vxlan %q: port %d out of range", x.Name, x.Port)
		}
		if err := add("vxlan", x.Common, Link{Kind: KindVXLAN, VNI: x.VNI, VXLANLocal: x.Local, VXLANPort: port, VXLANDevice: x.Device, VXLANLearning: x.Learning}); err != nil {
			return nil, err
		}
	}
	// Bond members are ports whose master is the bond.
	var ports []Port
	for _, b := range d.Bonds {
		for _, m := range b.Members {
			ports = append(ports, Port{Name: m, Master: b.Name})
		}
	}
	ports = append(ports, d.Ports...)
	for _, p := range ports {
		if !ValidLinkName(p.Name) {
			return nil, invalid("port name %q: want 1-15 characters of [A-Za-z0-9_.-]", p.Name)
		}
		if prev, ok := seen[p.Name]; ok {
			return nil, invalid("port %q: name already used by a %s", p.Name, prev)
		}
		if p.MTU < 0 || p.MTU > 65535 {
			return nil, invalid("port %q: mtu %d out of range 0..65535", p.Name, p.MTU)
		}
		seen[p.Name] = "port"
		out = append(out, Link{Name: p.Name, Kind: KindOther, MTU: p.MTU, Master: p.Master, Up: true})
	}
	for _, l := range out {
		if l.Master == "" {
			continue
		}
		kind, ok := seen[l.Master]
		if !ok {
			return nil, invalid("link %q: master %q is not a bridge or bond of this configuration", l.Name, l.Master)
		}
		if kind != "bridge" && kind != "bond" {
			return nil, invalid("link %q: master %q is a %s, want a bridge or bond", l.Name, l.Master, kind)
		}
		if l.Master == l.Name {
			return nil, invalid("link %q: is its own master", l.Name)
		}
	}
	return out, nil
}

func sortedPrefixes(p []netip.Prefix) []netip.Prefix {
	out := slices.Clone(p)
	slices.SortFunc(out, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	return slices.Compact(out)
}
