package ipam

import (
	"math/bits"
	"sort"
)

// unitSet marks the busy units of one block. A set bit means "not available
// to next-free allocation": allocated, cooling down, excluded, reserved, or
// held back until the cursor's first lap ends.
type unitSet interface {
	isSet(off uint64) bool
	set(off uint64)
	clear(off uint64)
	// nextClear returns the first clear offset in [from, last].
	nextClear(from uint64) (uint64, bool)
	// sizeBytes is the memory the set holds, for reports and budgets.
	sizeBytes() int
}

// denseLimit is the largest block, in units, that gets a bitmap (4 MiB of
// bits); larger blocks (IPv6) get a sparse set, since they are never close
// to full.
const denseLimit = 1 << 25

// interval is a closed range of unit offsets.
type interval struct{ lo, hi uint64 }

// mergeIntervals sorts and merges overlapping or touching intervals.
func mergeIntervals(in []interval) []interval {
	if len(in) == 0 {
		return nil
	}
	sort.Slice(in, func(i, j int) bool { return in[i].lo < in[j].lo })
	out := []interval{in[0]}
	for _, iv := range in[1:] {
		last := &out[len(out)-1]
		if last.hi == ^uint64(0) || iv.lo <= last.hi+1 {
			last.hi = max(last.hi, iv.hi)
			continue
		}
		out = append(out, iv)
	}
	return out
}

// bitmap is a two-level bitmap: words holds one bit per unit; full holds one
// bit per word, set when the word is all ones, so that a search skips 4096
// busy units per summary bit test. Bits past the last unit are set, so a
// search never returns an offset outside the block.
type bitmap struct {
	words []uint64
	full  []uint64
}

func newBitmap(units uint64) *bitmap {
	nw := (units + 63) / 64
	b := &bitmap{words: make([]uint64, nw), full: make([]uint64, (nw+63)/64)}
	if r := units % 64; r != 0 {
		b.words[nw-1] = ^uint64(0) << r
	}
	if r := nw % 64; r != 0 {
		b.full[len(b.full)-1] = ^uint64(0) << r
	}
	return b
}

func (b *bitmap) isSet(off uint64) bool { return b.words[off>>6]&(1<<(off&63)) != 0 }

func (b *bitmap) set(off uint64) {
	w := off >> 6
	b.words[w] |= 1 << (off & 63)
	if b.words[w] == ^uint64(0) {
		b.full[w>>6] |= 1 << (w & 63)
	}
}

func (b *bitmap) clear(off uint64) {
	w := off >> 6
	b.words[w] &^= 1 << (off & 63)
	b.full[w>>6] &^= 1 << (w & 63)
}

func (b *bitmap) nextClear(from uint64) (uint64, bool) {
	w := from >> 6
	if w >= uint64(len(b.words)) {
		return 0, false
	}
	if x := ^b.words[w] & (^uint64(0) << (from & 63)); x != 0 {
		return w<<6 | uint64(bits.TrailingZeros64(x)), true
	}
	w++
	for s := w >> 6; s < uint64(len(b.full)); s++ {
		free := ^b.full[s]
		if s == w>>6 {
			free &= ^uint64(0) << (w & 63)
		}
		if free == 0 {
			continue
		}
		fw := s<<6 | uint64(bits.TrailingZeros64(free))
		return fw<<6 | uint64(bits.TrailingZeros64(^b.words[fw])), true
	}
	return 0, false
}

func (b *bitmap) sizeBytes() int { return 8 * (cap(b.words) + cap(b.full)) }

// sparseSet is the unit set of a huge block: the busy offsets in a map, and
// the excluded intervals, which would be too many to list one by one.
type sparseSet struct {
	last     uint64
	busy     map[uint64]struct{}
	excluded []interval
}

func (s *sparseSet) excludedAt(off uint64) (interval, bool) {
	i := sort.Search(len(s.excluded), func(i int) bool { return s.excluded[i].hi >= off })
	if i < len(s.excluded) && s.excluded[i].lo <= off {
		return s.excluded[i], true
	}
	return interval{}, false
}

func (s *sparseSet) isSet(off uint64) bool {
	if _, ok := s.busy[off]; ok {
		return true
	}
	_, ok := s.excludedAt(off)
	return ok
}

func (s *sparseSet) set(off uint64)   { s.busy[off] = struct{}{} }
func (s *sparseSet) clear(off uint64) { delete(s.busy, off) }

func (s *sparseSet) nextClear(from uint64) (uint64, bool) {
	// The map holds at most len(busy) offsets, so at most that many steps
	// land on a busy unit; excluded intervals are skipped whole.
	for off := from; off <= s.last; {
		if iv, ok := s.excludedAt(off); ok {
			if iv.hi >= s.last {
				return 0, false
			}
			off = iv.hi + 1
			continue
		}
		if _, ok := s.busy[off]; !ok {
			return off, true
		}
		if off == s.last {
			break
		}
		off++
	}
	return 0, false
}

func (s *sparseSet) sizeBytes() int { return 16*len(s.busy) + 16*len(s.excluded) }
