package ipam

import (
	"context"
	"net/netip"
	"slices"
	"time"

	"go4.org/netipx"

	"github.com/virtplane/virtplane"
)

// Exclude adds addresses (the units holding them) to their blocks'
// exclusions, so that they are never handed out again, not even by
// explicit request: for addresses found unfit after the block was made
// (a DNS blocklist lists them). All or nothing, in one transaction:
// ErrConflict when one is allocated (its owner keeps it; release it
// first), ErrNotFound when one is in no block. An address already
// excluded is left as it is. A released unit's cooldown or history is
// dropped: an excluded unit has no state.
func (m *Manager) Exclude(ctx context.Context, poolID string, addrs ...netip.Addr) error {
	return m.changeExclusions(ctx, poolID, addrs, true)
}

// Unexclude removes single-unit exclusions that Exclude added (the undo of
// an Exclude whose caller failed afterwards); exclusions of wider ranges
// are left as they are. The units come back as free.
func (m *Manager) Unexclude(ctx context.Context, poolID string, addrs ...netip.Addr) error {
	return m.changeExclusions(ctx, poolID, addrs, false)
}

func (m *Manager) changeExclusions(ctx context.Context, poolID string, addrs []netip.Addr, on bool) error {
	for _, a := range addrs {
		if !a.IsValid() {
			return virtplane.Errorf(virtplane.ErrInvalidArgument, "excluded address is not valid")
		}
	}
	return m.update(ctx, poolID, func(t Txn, c *poolCache, now time.Time) error {
		// Every address is checked before anything changes: a refusal
		// commits the transaction.
		var units []exclusionUnit
		for _, a := range addrs {
			u, err := c.exclusionUnit(t, poolID, a.Unmap(), on)
			if err != nil {
				return err
			}
			if u.refusal != nil {
				return c.refuse(u.refusal)
			}
			if u.change {
				units = append(units, u)
			}
		}
		if len(units) == 0 {
			return nil
		}
		p := t.Pool()
		for _, u := range units {
			if err := u.apply(t, &p, on); err != nil {
				return err
			}
		}
		if err := t.SetPool(p); err != nil {
			return err
		}
		return c.reload(t, p, m.cooldown)
	})
}

// exclusionUnit is the unit of an address whose exclusion changes.
type exclusionUnit struct {
	block   string
	unit    netip.Prefix
	record  bool  // the unit has a record (released: cooling or retired)
	change  bool  // false: already as asked
	refusal error // the change is refused
}

// exclusionUnit reads what changing address a's exclusion takes. Errors
// from the store are returned; refusals are in the result.
func (c *poolCache) exclusionUnit(t Txn, poolID string, a netip.Addr, on bool) (exclusionUnit, error) {
	st, unit, err := c.unitOf(poolID, netip.PrefixFrom(a, a.BitLen()))
	if err != nil {
		return exclusionUnit{refusal: err}, nil
	}
	u := exclusionUnit{block: st.blk.ID, unit: unit}
	if !on {
		u.change = slices.Contains(st.blk.Excluded, netipx.RangeOfPrefix(unit))
		return u, nil
	}
	if st.excluded(st.blk.offsetOf(unit.Addr())) {
		return u, nil
	}
	rec, ok, err := t.Get(unit)
	if err != nil {
		return u, err
	}
	if ok && rec.State == StateAllocated {
		u.refusal = virtplane.Errorf(virtplane.ErrConflict, "address %s of pool %q is allocated to VM %q: release it before excluding it", a, poolID, rec.Owner.VM)
		return u, nil
	}
	u.record, u.change = ok, true
	return u, nil
}

// apply changes the unit's exclusion in pool p and drops its record.
func (u exclusionUnit) apply(t Txn, p *Pool, on bool) error {
	i := slices.IndexFunc(p.Blocks, func(b Block) bool { return b.ID == u.block })
	if i < 0 {
		return virtplane.Errorf(virtplane.ErrConflict, "block %q vanished from pool %q", u.block, p.ID)
	}
	blk := &p.Blocks[i]
	rng := netipx.RangeOfPrefix(u.unit)
	if !on {
		blk.Excluded = slices.DeleteFunc(blk.Excluded, func(e netipx.IPRange) bool { return e == rng })
		return nil
	}
	if u.record {
		if err := t.Delete(u.unit); err != nil {
			return err
		}
	}
	if !slices.Contains(blk.Excluded, rng) {
		blk.Excluded = append(blk.Excluded, rng)
	}
	blk.Reserved = slices.DeleteFunc(blk.Reserved, func(r netip.Addr) bool { return blk.unitPrefixOfAddr(r) == u.unit })
	return nil
}

// reload rebuilds the allocators after a change of the blocks' exclusions
// in the running transaction, and keeps them journaling, as runOps set
// them, for the operations after this one.
func (c *poolCache) reload(t Txn, p Pool, cooldown time.Duration) error {
	if err := c.load(t, p, cooldown); err != nil {
		return err
	}
	for _, b := range c.blocks {
		b.journal, b.record = b.journal[:0], true
	}
	return nil
}
