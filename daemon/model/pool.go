package model

import (
	"net/netip"
	"slices"

	"github.com/virtplane/virtplane/network/ipam"
)

// BlockOf returns the index of the block of p whose range holds a, or -1.
func (p IPPool) BlockOf(a netip.Addr) int {
	for i, b := range p.Blocks {
		if r, _, err := ipam.ParseRange(b.Range); err == nil && r.Contains(a) {
			return i
		}
	}
	return -1
}

// ExcludeAddress records a among the exclusions of the block holding it,
// and drops a reservation of it, as IPAM's Manager.Exclude does to its own
// copy of the block; false when no block holds a.
func (p *IPPool) ExcludeAddress(a netip.Addr) bool {
	i := p.BlockOf(a)
	if i < 0 {
		return false
	}
	b := &p.Blocks[i]
	if !slices.Contains(b.Excluded, a.String()) {
		b.Excluded = append(b.Excluded, a.String())
	}
	b.Reserved = slices.DeleteFunc(b.Reserved, func(r string) bool {
		ra, err := netip.ParseAddr(r)
		return err == nil && ra.Unmap() == a
	})
	return true
}
