package firewall

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/network/hostnet"
)

// PortRange is a range of TCP or UDP destination ports.
type PortRange struct {
	Protocol    string // "tcp" or "udp"
	First, Last uint16 // inclusive; Last 0 means First only
}

// Policy is the firewall of one VM port.
type Policy struct {
	Port string           // the VM's port device on the host (tap, veth)
	MAC  net.HardwareAddr // the only source MAC the VM may use
	IPv4 []netip.Addr     // the VM's IPv4 addresses (sources it may use, in IP and ARP)
	IPv6 []netip.Addr     // the VM's IPv6 addresses; link-local sources are always allowed
	// BlockIn and BlockOut drop traffic to these destination ports, towards
	// the VM and from it (say outbound SMTP).
	BlockIn, BlockOut []PortRange
	// MaxConnections caps the VM's concurrent new connections through the
	// host's forwarding path (routed and IP-fabric modes); 0 for none.
	MaxConnections int
}

func invalid(format string, args ...any) error {
	return virtplane.Errorf(virtplane.ErrInvalidArgument, format, args...)
}

// Validate checks a policy without touching the host.
func (p Policy) Validate() error {
	if !hostnet.ValidLinkName(p.Port) {
		return invalid("firewall policy: port %q is not a link name", p.Port)
	}
	if len(p.MAC) != 6 {
		return invalid("firewall policy %s: mac %q is not 6 bytes", p.Port, p.MAC)
	}
	for _, a := range p.IPv4 {
		if !a.Is4() {
			return invalid("firewall policy %s: ipv4 address %v", p.Port, a)
		}
	}
	for _, a := range p.IPv6 {
		if !a.Is6() || a.Is4In6() || a.Zone() != "" {
			return invalid("firewall policy %s: ipv6 address %v", p.Port, a)
		}
	}
	for _, r := range slices.Concat(p.BlockIn, p.BlockOut) {
		if r.Protocol != "tcp" && r.Protocol != "udp" {
			return invalid("firewall policy %s: protocol %q, want tcp or udp", p.Port, r.Protocol)
		}
		if r.First == 0 || (r.Last != 0 && r.Last < r.First) {
			return invalid("firewall policy %s: port range %d-%d", p.Port, r.First, r.Last)
		}
	}
	if p.MaxConnections < 0 {
		return invalid("firewall policy %s: max connections %d is negative", p.Port, p.MaxConnections)
	}
	return nil
}

// Enforcer installs port policies. Firewall is the nftables implementation;
// Fake records policies; both pass firewalltest.Run.
type Enforcer interface {
	// Apply installs p for p.Port, replacing its previous policy atomically.
	Apply(ctx context.Context, p Policy) error
	// Remove deletes the port's policy; removing an absent one does nothing.
	Remove(ctx context.Context, port string) error
	// Ports lists the ports that have a policy, sorted.
	Ports(ctx context.Context) ([]string, error)
}

// Conn is the part of *nftables.Conn the Firewall uses.
type Conn interface {
	AddTable(t *nftables.Table) *nftables.Table
	DelTable(t *nftables.Table)
	AddChain(c *nftables.Chain) *nftables.Chain
	AddRule(r *nftables.Rule) *nftables.Rule
	AddSet(s *nftables.Set, vals []nftables.SetElement) error
	ListTablesOfFamily(family nftables.TableFamily) ([]*nftables.Table, error)
	Flush() error
}

// Firewall enforces policies with nftables: per port, a netdev table whose
// chains hook the port device itself (ingress: what the VM sends; egress:
// what it receives), so that the same rules hold whether the port is
// bridged or routed, and an inet table with the connection limit (it needs
// conntrack, which this path has and bridge-family hooks lack on many kernels).
type Firewall struct {
	conn Conn
}

var _ Enforcer = (*Firewall)(nil)

// New returns a Firewall over conn (nftables.New(nftables.WithNetNSFd(fd))
// for another namespace).
func New(conn Conn) (*Firewall, error) {
	if conn == nil {
		return nil, invalid("firewall: conn is nil")
	}
	return &Firewall{conn: conn}, nil
}

const tablePrefix = "vpt-"

func tableName(port string) string { return tablePrefix + port }

// Apply replaces the port's tables in one transaction.
func (f *Firewall) Apply(ctx context.Context, p Policy) error {
	if err := p.Validate(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// Add (a no-op when present), delete, add again: replaces the table
	// atomically whether it existed or not.
	nd := &nftables.Table{Family: nftables.TableFamilyNetdev, Name: tableName(p.Port)}
	f.conn.AddTable(nd)
	f.conn.DelTable(nd)
	f.conn.AddTable(nd)
	inet := &nftables.Table{Family: nftables.TableFamilyINet, Name: tableName(p.Port)}
	f.conn.AddTable(inet)
	f.conn.DelTable(inet)
	if err := f.build(nd, p); err != nil {
		return err
	}
	if p.MaxConnections > 0 {
		f.conn.AddTable(inet)
		f.buildLimit(inet, p)
	}
	if err := f.conn.Flush(); err != nil {
		return kernelErr("apply firewall of "+p.Port, err)
	}
	return nil
}

func kernelErr(what string, err error) error {
	class := virtplane.ErrUnavailable
	msg := err.Error()
	switch {
	case errors.Is(err, unix.EOPNOTSUPP) || strings.Contains(msg, "not supported") || strings.Contains(msg, "protocol error"):
		class = virtplane.ErrNotImplemented
	case errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENODEV) || strings.Contains(msg, "no such file") || strings.Contains(msg, "no such device"):
		class = virtplane.ErrNotFound // the port device is gone
	}
	return virtplane.Errorf(class, "%s: %v", what, err)
}

func (f *Firewall) build(t *nftables.Table, p Policy) error {
	accept := nftables.ChainPolicyAccept
	prio := nftables.ChainPriorityFilter
	fromVM := f.conn.AddChain(&nftables.Chain{Name: "from-vm", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookIngress, Priority: prio, Policy: &accept, Device: p.Port})
	toVM := f.conn.AddChain(&nftables.Chain{Name: "to-vm", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookEgress, Priority: prio, Policy: &accept, Device: p.Port})

	v4 := &nftables.Set{Table: t, Name: "ipv4", KeyType: nftables.TypeIPAddr}
	var v4e []nftables.SetElement
	for _, a := range append([]netip.Addr{netip.IPv4Unspecified()}, p.IPv4...) { // 0.0.0.0: DHCP, ARP probes
		b := a.As4()
		v4e = append(v4e, nftables.SetElement{Key: b[:]})
	}
	if err := f.conn.AddSet(v4, v4e); err != nil {
		return invalid("firewall %s: ipv4 set: %v", p.Port, err)
	}
	v6 := &nftables.Set{Table: t, Name: "ipv6", KeyType: nftables.TypeIP6Addr}
	var v6e []nftables.SetElement
	for _, a := range append([]netip.Addr{netip.IPv6Unspecified()}, p.IPv6...) { // ::: duplicate address detection
		b := a.As16()
		v6e = append(v6e, nftables.SetElement{Key: b[:]})
	}
	if err := f.conn.AddSet(v6, v6e); err != nil {
		return invalid("firewall %s: ipv6 set: %v", p.Port, err)
	}

	rule := func(c *nftables.Chain, parts ...[]expr.Any) {
		e := slices.Concat(parts...)
		f.conn.AddRule(&nftables.Rule{Table: t, Chain: c, Exprs: append(e, &expr.Verdict{Kind: expr.VerdictDrop})})
	}
	// What the VM sends.
	rule(fromVM, linkLayer(6, 6), neq(p.MAC))
	for _, r := range p.BlockOut {
		rule(fromVM, portRange(r))
	}
	rule(fromVM, etherType(unix.ETH_P_ARP), network(8, 6), neq(p.MAC))
	rule(fromVM, etherType(unix.ETH_P_ARP), network(14, 4), notIn(v4))
	rule(fromVM, etherType(unix.ETH_P_IP), network(12, 4), notIn(v4))
	f.conn.AddRule(&nftables.Rule{Table: t, Chain: fromVM, Exprs: slices.Concat(etherType(unix.ETH_P_IPV6), network(8, 2), []expr.Any{
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 2, Mask: []byte{0xff, 0xc0}, Xor: []byte{0, 0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0xfe, 0x80}},
		&expr.Verdict{Kind: expr.VerdictAccept}, // link-local: neighbour discovery
	})})
	rule(fromVM, etherType(unix.ETH_P_IPV6), network(8, 16), notIn(v6))
	// Anything else (VLAN tags, other protocols) is not for a VM to send.
	rule(fromVM, linkLayer(12, 2), []expr.Any{
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.BigEndian.PutUint16(unix.ETH_P_IP)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.BigEndian.PutUint16(unix.ETH_P_ARP)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.BigEndian.PutUint16(unix.ETH_P_IPV6)},
	})
	// What it receives.
	for _, r := range p.BlockIn {
		rule(toVM, portRange(r))
	}
	return nil
}

func (f *Firewall) buildLimit(t *nftables.Table, p Policy) {
	accept := nftables.ChainPolicyAccept
	c := f.conn.AddChain(&nftables.Chain{Name: "limit", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &accept})
	name := make([]byte, unix.IFNAMSIZ)
	copy(name, p.Port)
	f.conn.AddRule(&nftables.Rule{Table: t, Chain: c, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: name},
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitNEW), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
		&expr.Connlimit{Count: uint32(p.MaxConnections), Flags: expr.NFT_CONNLIMIT_F_INV},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}})
}

func linkLayer(off, n uint32) []expr.Any {
	return []expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseLLHeader, Offset: off, Len: n}}
}

func network(off, n uint32) []expr.Any {
	return []expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n}}
}

func etherType(t uint16) []expr.Any {
	return append(linkLayer(12, 2), &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(t)})
}

func neq(b []byte) []expr.Any {
	return []expr.Any{&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: slices.Clone(b)}}
}

func notIn(s *nftables.Set) []expr.Any {
	return []expr.Any{&expr.Lookup{SourceRegister: 1, SetName: s.Name, SetID: s.ID, Invert: true}}
}

func portRange(r PortRange) []expr.Any {
	proto := byte(unix.IPPROTO_TCP)
	if r.Protocol == "udp" {
		proto = unix.IPPROTO_UDP
	}
	last := r.Last
	if last == 0 {
		last = r.First
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Range{Op: expr.CmpOpEq, Register: 1, FromData: binaryutil.BigEndian.PutUint16(r.First), ToData: binaryutil.BigEndian.PutUint16(last)},
	}
}

// Remove deletes the port's tables.
func (f *Firewall) Remove(ctx context.Context, port string) error {
	if !hostnet.ValidLinkName(port) {
		return invalid("firewall: port %q is not a link name", port)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, fam := range []nftables.TableFamily{nftables.TableFamilyNetdev, nftables.TableFamilyINet} {
		t := &nftables.Table{Family: fam, Name: tableName(port)}
		f.conn.AddTable(t)
		f.conn.DelTable(t)
	}
	if err := f.conn.Flush(); err != nil {
		return kernelErr("remove firewall of "+port, err)
	}
	return nil
}

// Ports lists the ports with a policy.
func (f *Firewall) Ports(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ts, err := f.conn.ListTablesOfFamily(nftables.TableFamilyNetdev)
	if err != nil {
		return nil, kernelErr("list tables", err)
	}
	var out []string
	for _, t := range ts {
		if p, ok := strings.CutPrefix(t.Name, tablePrefix); ok {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out, nil
}
