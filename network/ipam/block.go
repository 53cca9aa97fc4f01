package ipam

import (
	"fmt"
	"math/bits"
	"net/netip"
	"slices"
	"strings"

	"go4.org/netipx"

	"github.com/virtplane/virtplane"
)

// Block is one contiguous part of a pool: a CIDR prefix or an explicit range
// of addresses, with the addresses inside it that are never or not
// automatically handed out.
type Block struct {
	// ID names the block inside its pool. The manager assigns one when empty.
	ID string
	// Range is the first and last address the block covers.
	Range netipx.IPRange
	// CIDR is the prefix the block was defined as; zero for an explicit range.
	CIDR netip.Prefix
	// Gateway is the router address of the block; it is never allocated.
	Gateway netip.Addr
	// Excluded addresses are never allocated, not even by explicit request.
	Excluded []netipx.IPRange
	// Reserved addresses are not handed out by next-free allocation but can
	// be allocated by asking for them explicitly (an address kept for a
	// customer, a floating IP).
	Reserved []netip.Addr
	// PrefixLen, when non-zero, makes the block hand out prefixes of this
	// length instead of single addresses (IPv6 prefix delegation: a /64 per
	// VM out of a /48). It needs a CIDR block.
	PrefixLen int
	// KeepNetworkBroadcast allows the network and broadcast addresses of an
	// IPv4 CIDR block and the Subnet-Router anycast address (the all-zero
	// one) of an IPv6 CIDR block, which are excluded by default (they are
	// always allowed in /31, /32, /127 and /128 blocks, RFC 3021 and 6164).
	KeepNetworkBroadcast bool
}

// BlockSpec is a block definition as text, the way a user or a config file
// writes it. ParseBlock turns it into a Block.
type BlockSpec struct {
	ID string
	// Range is a CIDR ("10.0.0.0/24", "2001:db8::/48"), an explicit range
	// ("10.0.0.10-10.0.0.99") or a single address.
	Range string
	// Gateway is an address inside Range, or empty.
	Gateway string
	// Excluded holds addresses, CIDRs or ranges inside Range.
	Excluded []string
	// Reserved holds addresses inside Range.
	Reserved             []string
	PrefixLen            int
	KeepNetworkBroadcast bool
}

// maxBlockUnitBits bounds the number of units (addresses or delegated
// prefixes) in one block to 2^64, so that an offset fits a uint64.
const maxBlockUnitBits = 64

// ParseRange parses a CIDR ("10.0.0.0/24"), an explicit range
// ("10.0.0.10-10.0.0.99", both ends included) or a single address. It
// returns the prefix too when s is a CIDR. A CIDR with host bits set
// ("10.0.0.1/24") is refused so that a typo does not silently widen a block.
func ParseRange(s string) (netipx.IPRange, netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return netipx.IPRange{}, netip.Prefix{}, virtplane.Errorf(virtplane.ErrInvalidArgument, "range is empty")
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netipx.IPRange{}, netip.Prefix{}, virtplane.Errorf(virtplane.ErrInvalidArgument, "range %q is not a valid CIDR", s)
		}
		if p.Addr().Zone() != "" {
			return netipx.IPRange{}, netip.Prefix{}, virtplane.Errorf(virtplane.ErrInvalidArgument, "range %q: zones are not allowed", s)
		}
		if p.Masked() != p {
			return netipx.IPRange{}, netip.Prefix{}, virtplane.Errorf(virtplane.ErrInvalidArgument, "range %q has host bits set (did you mean %s?)", s, p.Masked())
		}
		return netipx.RangeOfPrefix(p), p, nil
	}
	if from, to, ok := strings.Cut(s, "-"); ok {
		a, err1 := parseAddr(from)
		b, err2 := parseAddr(to)
		if err1 != nil || err2 != nil {
			return netipx.IPRange{}, netip.Prefix{}, virtplane.Errorf(virtplane.ErrInvalidArgument, "range %q: ends must be IP addresses", s)
		}
		if a.Is4() != b.Is4() {
			return netipx.IPRange{}, netip.Prefix{}, virtplane.Errorf(virtplane.ErrInvalidArgument, "range %q mixes IPv4 and IPv6", s)
		}
		if b.Less(a) {
			return netipx.IPRange{}, netip.Prefix{}, virtplane.Errorf(virtplane.ErrInvalidArgument, "range %q ends before it starts", s)
		}
		return netipx.IPRangeFrom(a, b), netip.Prefix{}, nil
	}
	a, err := parseAddr(s)
	if err != nil {
		return netipx.IPRange{}, netip.Prefix{}, virtplane.Errorf(virtplane.ErrInvalidArgument, "range %q is not a CIDR, a range or an address", s)
	}
	return netipx.IPRangeFrom(a, a), netip.Prefix{}, nil
}

// parseAddr parses an address without zone; IPv4-mapped IPv6 addresses are
// unmapped so that ::ffff:10.0.0.1 and 10.0.0.1 are the same address.
func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil {
		return netip.Addr{}, err
	}
	if a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("zone not allowed")
	}
	return a.Unmap(), nil
}

// ParseBlock parses and validates a block definition. Errors wrap
// virtplane.ErrInvalidArgument and name the field and value at fault.
func ParseBlock(spec BlockSpec) (Block, error) {
	r, p, err := ParseRange(spec.Range)
	if err != nil {
		return Block{}, fmt.Errorf("block range: %w", err)
	}
	b := Block{ID: spec.ID, Range: r, CIDR: p, PrefixLen: spec.PrefixLen, KeepNetworkBroadcast: spec.KeepNetworkBroadcast}
	if strings.TrimSpace(spec.Gateway) != "" {
		gw, err := parseAddr(spec.Gateway)
		if err != nil {
			return Block{}, virtplane.Errorf(virtplane.ErrInvalidArgument, "block gateway %q is not an IP address", spec.Gateway)
		}
		b.Gateway = gw
	}
	for _, e := range spec.Excluded {
		er, _, err := ParseRange(e)
		if err != nil {
			return Block{}, fmt.Errorf("block excluded: %w", err)
		}
		b.Excluded = append(b.Excluded, er)
	}
	for _, s := range spec.Reserved {
		a, err := parseAddr(s)
		if err != nil {
			return Block{}, virtplane.Errorf(virtplane.ErrInvalidArgument, "block reserved address %q is not an IP address", s)
		}
		b.Reserved = append(b.Reserved, a)
	}
	if err := b.Validate(); err != nil {
		return Block{}, err
	}
	return b, nil
}

// Validate checks that the block is consistent: one address family, the
// gateway, exclusions and reservations inside the range, a prefix length
// that fits the block, and at most 2^64 units.
func (b Block) Validate() error {
	if !b.Range.IsValid() {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "block %q: range %q is not valid", b.ID, b.Range.String())
	}
	from, to := b.Range.From(), b.Range.To()
	if from.Zone() != "" || to.Zone() != "" || from.Is4In6() || to.Is4In6() {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "block %q: range %s must be plain IPv4 or IPv6", b.ID, b.Range)
	}
	if b.CIDR.IsValid() && netipx.RangeOfPrefix(b.CIDR) != b.Range {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "block %q: CIDR %s does not match range %s", b.ID, b.CIDR, b.Range)
	}
	if b.PrefixLen != 0 {
		switch {
		case from.Is4():
			return virtplane.Errorf(virtplane.ErrInvalidArgument, "block %q: prefix length %d: prefix delegation is IPv6 only", b.ID, b.PrefixLen)
		case !b.CIDR.IsValid():
			return virtplane.Errorf(virtplane.ErrInvalidArgument, "block %q: prefix length %d needs a CIDR block, not range %s", b.ID, b.PrefixLen, b.Range)
		case b.PrefixLen < b.CIDR.Bits() || b.PrefixLen > 128:
			return virtplane.Errorf(virtplane.ErrInvalidArgument, "block %q: prefix length %d does not fit in %s", b.ID, b.PrefixLen, b.CIDR)
		}
	}
	if hb := b.unitCountBits(); hb > maxBlockUnitBits {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "block %q: range %s holds about 2^%d units, more than 2^%d; use a smaller block or a prefix length", b.ID, b.Range, hb, maxBlockUnitBits)
	}
	if b.Gateway.IsValid() && !b.Range.Contains(b.Gateway) {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "block %q: gateway %s is outside %s", b.ID, b.Gateway, b.Range)
	}
	for _, e := range b.Excluded {
		if !e.IsValid() || !b.Range.Contains(e.From()) || !b.Range.Contains(e.To()) {
			return virtplane.Errorf(virtplane.ErrInvalidArgument, "block %q: excluded %s is outside %s", b.ID, e, b.Range)
		}
	}
	for _, r := range b.Reserved {
		if !b.Range.Contains(r) {
			return virtplane.Errorf(virtplane.ErrInvalidArgument, "block %q: reserved %s is outside %s", b.ID, r, b.Range)
		}
	}
	return nil
}

// unitBits is the length of the prefix one unit stands for: 32 or 128 for
// single addresses, PrefixLen for delegated prefixes.
func (b Block) unitBits() int {
	if b.PrefixLen != 0 {
		return b.PrefixLen
	}
	return b.Range.From().BitLen()
}

// unitCountBits returns ceil(log2(number of units)).
func (b Block) unitCountBits() int {
	first, last := b.unitIndex(b.Range.From()), b.unitIndex(b.Range.To())
	d := last.sub(first)
	if d.hi != 0 {
		return 64 + bits.Len64(d.hi)
	}
	return bits.Len64(d.lo) // units = d+1 <= 2^64
}

// unitIndex is the absolute index of the unit holding a.
func (b Block) unitIndex(a netip.Addr) u128 {
	return u128Of(a).shr(uint(a.BitLen() - b.unitBits()))
}

// Units returns how many units (addresses, or prefixes for a delegation
// block) the block spans, saturated at 2^64-1.
func (b Block) Units() uint64 {
	d := b.unitIndex(b.Range.To()).sub(b.unitIndex(b.Range.From()))
	if d.hi != 0 || d.lo == ^uint64(0) {
		return ^uint64(0)
	}
	return d.lo + 1
}

// lastOffset is the offset of the block's last unit (units - 1).
func (b Block) lastOffset() uint64 {
	return b.unitIndex(b.Range.To()).sub(b.unitIndex(b.Range.From())).lo
}

// Contains reports whether prefix p is a unit this block can hand out.
func (b Block) Contains(p netip.Prefix) bool {
	return p.IsValid() && p.Bits() == b.unitBits() && p.Addr().Is4() == b.Range.From().Is4() && b.Range.Contains(p.Addr())
}

// unitPrefix returns the prefix that unit offset off stands for.
func (b Block) unitPrefix(off uint64) netip.Prefix {
	first := b.unitIndex(b.Range.From())
	abs := first.add64(off)
	shift := uint(b.Range.From().BitLen() - b.unitBits())
	return netip.PrefixFrom(abs.shl(shift).addr(b.Range.From().Is4()), b.unitBits())
}

// offsetOf returns the unit offset of address a, which must be in Range.
func (b Block) offsetOf(a netip.Addr) uint64 {
	return b.unitIndex(a).sub(b.unitIndex(b.Range.From())).lo
}

// clone returns a deep copy.
func (b Block) clone() Block {
	b.Excluded = slices.Clone(b.Excluded)
	b.Reserved = slices.Clone(b.Reserved)
	return b
}

// unitPrefixOfAddr returns the unit prefix that holds address a in this block.
func (b Block) unitPrefixOfAddr(a netip.Addr) netip.Prefix {
	p, _ := a.Prefix(b.unitBits())
	return p
}

// u128 is an unsigned 128-bit integer for address arithmetic.
type u128 struct{ hi, lo uint64 }

func u128Of(a netip.Addr) u128 {
	if a.Is4() {
		v := a.As4()
		return u128{lo: uint64(v[0])<<24 | uint64(v[1])<<16 | uint64(v[2])<<8 | uint64(v[3])}
	}
	v := a.As16()
	var r u128
	for i := 0; i < 8; i++ {
		r.hi = r.hi<<8 | uint64(v[i])
		r.lo = r.lo<<8 | uint64(v[i+8])
	}
	return r
}

func (x u128) addr(is4 bool) netip.Addr {
	if is4 {
		return netip.AddrFrom4([4]byte{byte(x.lo >> 24), byte(x.lo >> 16), byte(x.lo >> 8), byte(x.lo)})
	}
	var v [16]byte
	for i := 0; i < 8; i++ {
		v[7-i] = byte(x.hi >> (8 * i))
		v[15-i] = byte(x.lo >> (8 * i))
	}
	return netip.AddrFrom16(v)
}

func (x u128) sub(y u128) u128 {
	lo, borrow := bits.Sub64(x.lo, y.lo, 0)
	hi, _ := bits.Sub64(x.hi, y.hi, borrow)
	return u128{hi, lo}
}

func (x u128) add64(y uint64) u128 {
	lo, carry := bits.Add64(x.lo, y, 0)
	return u128{x.hi + carry, lo}
}

func (x u128) shr(n uint) u128 {
	switch {
	case n == 0:
		return x
	case n >= 128:
		return u128{}
	case n >= 64:
		return u128{0, x.hi >> (n - 64)}
	}
	return u128{x.hi >> n, x.lo>>n | x.hi<<(64-n)}
}

func (x u128) shl(n uint) u128 {
	switch {
	case n == 0:
		return x
	case n >= 128:
		return u128{}
	case n >= 64:
		return u128{x.lo << (n - 64), 0}
	}
	return u128{x.hi<<n | x.lo>>(64-n), x.lo << n}
}

// unfit is a range of a block that is never allocated, and why.
type unfit struct {
	r   netipx.IPRange
	why string // "the gateway", "excluded", ...
}

// unfitRanges are the addresses of b that are never allocated: the
// gateway, the network and broadcast addresses of an IPv4 CIDR (but in
// /31 and /32, RFC 3021), the Subnet-Router anycast address of an IPv6
// CIDR of single addresses (the all-zero one, RFC 4291 2.6.1: a host
// holding it takes the routers' packets; /127 and /128 keep it, RFC 6164),
// unless KeepNetworkBroadcast, and the exclusions. The allocator and
// Refusal both read it.
func (b Block) unfitRanges() []unfit {
	var out []unfit
	one := func(a netip.Addr, why string) { out = append(out, unfit{netipx.IPRangeFrom(a, a), why}) }
	if b.Gateway.IsValid() {
		one(b.Gateway, "the gateway")
	}
	if b.CIDR.IsValid() && !b.KeepNetworkBroadcast {
		switch {
		case b.CIDR.Addr().Is4() && b.CIDR.Bits() <= 30:
			one(b.Range.From(), "the network address")
			one(b.Range.To(), "the broadcast address")
		case b.CIDR.Addr().Is6() && b.PrefixLen == 0 && b.CIDR.Bits() <= 126:
			one(b.Range.From(), "the Subnet-Router anycast address")
		}
	}
	for _, e := range b.Excluded {
		out = append(out, unfit{e, "excluded"})
	}
	return out
}

// Refusal says why a is never allocated from b, naming the block ("the
// gateway of block 192.0.2.0/24", "excluded from block ... (range)"), or
// "" when it may be (whether it is free is the Manager's answer).
func (b Block) Refusal(a netip.Addr) string {
	name := b.Range.String()
	if b.CIDR.IsValid() {
		name = b.CIDR.String()
	}
	for _, u := range b.unfitRanges() {
		if u.r.Contains(a) {
			if u.why == "excluded" {
				return fmt.Sprintf("excluded from block %s (%s)", name, u.r)
			}
			return u.why + " of block " + name
		}
	}
	return ""
}
