package ipam

import (
	"net/netip"

	"github.com/virtplane/virtplane"
)

// blockState is the in-memory allocator of one block: pure, no I/O, not
// safe for concurrent use (the manager serialises access per pool).
//
// Allocation policy. A cursor walks forward over the block ("next fit"):
// during its first lap everything ahead of it has never been handed out, so
// taking the next clear bit after the cursor gives a never-used address.
// Two sparse sets keep that exact when addresses are used out of order:
// deferred holds used addresses ahead of the cursor (taken by explicit
// request, then released) – they stay busy until the lap ends; fresh holds
// never-used addresses behind the cursor (reserved when the cursor passed,
// unreserved since). After the first lap every address has been used, and
// the cursor keeps walking, so the address released longest ago comes back
// first. Released units rest in a FIFO for the cooldown before they clear.
type blockState struct {
	blk      Block
	last     uint64 // last unit offset
	bits     unitSet
	excl     []interval // excluded offsets (gateway, network, broadcast, Excluded)
	cursor   uint64     // next offset the walk looks at
	atEnd    bool       // the walk passed the last unit
	lap1     bool       // the walk has not wrapped yet
	reserved map[uint64]reservation
	deferred map[uint64]struct{}
	fresh    map[uint64]struct{}
	cooling  []cooling // FIFO by release time
	coolHead int
	cooldown int64 // nanoseconds

	// journal records the transitions of units to states other than
	// Allocated and Cooling, for the manager to persist.
	journal []transition
	record  bool
}

type reservation struct {
	used bool // the unit was handed out at least once
	busy bool // allocated or cooling now
}

type cooling struct {
	off uint64
	at  int64 // release time, unix nanoseconds
}

type transition struct {
	off   uint64
	state RecordState // StateFree, StateRetired or StateFresh
}

// newBlockState builds the allocator of b; b must be valid.
func newBlockState(b Block, cooldown int64) *blockState {
	last := b.lastOffset()
	s := &blockState{blk: b, last: last, lap1: true, cooldown: cooldown}
	var excl []interval
	addExcl := func(a, z netip.Addr) {
		excl = append(excl, interval{b.offsetOf(a), b.offsetOf(z)})
	}
	for _, u := range b.unfitRanges() {
		addExcl(u.r.From(), u.r.To())
	}
	s.excl = mergeIntervals(excl)
	if last < denseLimit {
		bm := newBitmap(last + 1)
		for _, iv := range s.excl {
			for off := iv.lo; ; off++ {
				bm.set(off)
				if off == iv.hi {
					break
				}
			}
		}
		s.bits = bm
	} else {
		s.bits = &sparseSet{last: last, busy: map[uint64]struct{}{}, excluded: s.excl}
	}
	for _, r := range b.Reserved {
		off := b.offsetOf(r)
		if s.excluded(off) {
			continue
		}
		if s.reserved == nil {
			s.reserved = map[uint64]reservation{}
		}
		s.reserved[off] = reservation{}
		s.bits.set(off)
	}
	return s
}

func (s *blockState) excluded(off uint64) bool {
	for _, iv := range s.excl {
		if off >= iv.lo && off <= iv.hi {
			return true
		}
	}
	return false
}

func (s *blockState) note(off uint64, st RecordState) {
	if s.record {
		s.journal = append(s.journal, transition{off, st})
	}
}

// ahead reports whether off is still ahead of the first-lap walk.
func (s *blockState) ahead(off uint64) bool { return s.lap1 && !s.atEnd && off >= s.cursor }

// expire settles the cooled-down units whose cooldown ended by now.
func (s *blockState) expire(now int64) {
	for s.coolHead < len(s.cooling) {
		c := s.cooling[s.coolHead]
		if now-c.at < s.cooldown {
			break
		}
		s.coolHead++
		s.settle(c.off)
	}
	if s.coolHead == len(s.cooling) {
		s.cooling, s.coolHead = s.cooling[:0], 0
	} else if s.coolHead > 1024 && s.coolHead*2 > len(s.cooling) {
		s.cooling = append(s.cooling[:0], s.cooling[s.coolHead:]...)
		s.coolHead = 0
	}
}

// settle makes a released unit whose cooldown is over available again.
func (s *blockState) settle(off uint64) {
	if _, ok := s.reserved[off]; ok {
		s.reserved[off] = reservation{used: true}
		s.note(off, StateRetired)
		return
	}
	if s.ahead(off) {
		if s.deferred == nil {
			s.deferred = map[uint64]struct{}{}
		}
		s.deferred[off] = struct{}{}
		s.note(off, StateRetired)
		return
	}
	s.bits.clear(off)
	s.note(off, StateFree)
}

// nextNever hands out a never-used unit, or reports that none is left.
func (s *blockState) nextNever() (uint64, bool) {
	if len(s.fresh) > 0 {
		off, first := uint64(0), true
		for o := range s.fresh {
			if first || o < off {
				off, first = o, false
			}
		}
		delete(s.fresh, off)
		s.bits.set(off)
		return off, true
	}
	if !s.lap1 || s.atEnd {
		return 0, false
	}
	off, ok := s.bits.nextClear(s.cursor)
	if !ok {
		s.atEnd = true
		return 0, false
	}
	s.take1(off)
	return off, true
}

// nextAny hands out any available unit, wrapping the walk if needed.
func (s *blockState) nextAny() (uint64, bool) {
	if off, ok := s.nextNever(); ok {
		return off, true
	}
	if s.lap1 {
		s.wrap()
	}
	off, ok := uint64(0), false
	if !s.atEnd {
		off, ok = s.bits.nextClear(s.cursor)
	}
	if !ok && s.cursor > 0 {
		off, ok = s.bits.nextClear(0)
	}
	if !ok {
		return 0, false
	}
	s.take1(off)
	return off, true
}

// take1 marks off allocated and moves the walk past it.
func (s *blockState) take1(off uint64) {
	s.bits.set(off)
	if off == s.last {
		s.cursor, s.atEnd = 0, true
		if !s.lap1 {
			s.atEnd = false // later laps wrap silently
		}
		return
	}
	s.cursor, s.atEnd = off+1, false
}

// wrap ends the first lap: the held-back units become available.
func (s *blockState) wrap() {
	s.lap1, s.atEnd, s.cursor = false, false, 0
	for off := range s.deferred {
		s.bits.clear(off)
		s.note(off, StateFree)
	}
	s.deferred = nil
}

// take allocates a specific unit. It changes nothing when it fails.
func (s *blockState) take(off uint64) error {
	if s.excluded(off) {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "address %s is excluded from block %q", s.blk.unitPrefix(off), s.blk.ID)
	}
	if r, ok := s.reserved[off]; ok {
		if r.busy {
			return virtplane.Errorf(virtplane.ErrConflict, "address %s is in use or cooling down", s.blk.unitPrefix(off))
		}
		s.reserved[off] = reservation{used: true, busy: true}
		return nil
	}
	if _, ok := s.deferred[off]; ok {
		delete(s.deferred, off)
		return nil
	}
	if s.bits.isSet(off) {
		return virtplane.Errorf(virtplane.ErrConflict, "address %s is in use or cooling down", s.blk.unitPrefix(off))
	}
	delete(s.fresh, off)
	s.bits.set(off)
	return nil
}

// release frees an allocated unit; the caller checked that it is allocated.
// It reports whether the unit now cools down.
func (s *blockState) release(off uint64, now int64) bool {
	if r, ok := s.reserved[off]; ok {
		r.used = true
		s.reserved[off] = r
	}
	if s.cooldown <= 0 {
		s.settle(off)
		return false
	}
	s.cooling = append(s.cooling, cooling{off, now})
	return true
}

// reserve takes a unit out of next-free allocation. It is idempotent.
func (s *blockState) reserve(off uint64) error {
	if s.excluded(off) {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "address %s is excluded from block %q", s.blk.unitPrefix(off), s.blk.ID)
	}
	if _, ok := s.reserved[off]; ok {
		return nil
	}
	var r reservation
	if _, ok := s.deferred[off]; ok {
		delete(s.deferred, off)
		r.used = true // keeps its Retired record
	} else if _, ok := s.fresh[off]; ok {
		delete(s.fresh, off)
		s.note(off, StateFree)
	} else if s.bits.isSet(off) {
		r = reservation{used: true, busy: true} // allocated or cooling down
	} else {
		// A clear unit the walk has passed was handed out before (a
		// never-used one would be in fresh).
		r.used = !s.ahead(off)
		if r.used {
			s.note(off, StateRetired)
		}
	}
	if s.reserved == nil {
		s.reserved = map[uint64]reservation{}
	}
	s.reserved[off] = r
	s.bits.set(off)
	return nil
}

// unreserve returns a reserved unit to next-free allocation.
func (s *blockState) unreserve(off uint64) {
	r, ok := s.reserved[off]
	if !ok {
		return
	}
	delete(s.reserved, off)
	if r.busy {
		return // allocated or cooling: release and expiry handle it
	}
	switch {
	case s.ahead(off) && r.used:
		if s.deferred == nil {
			s.deferred = map[uint64]struct{}{}
		}
		s.deferred[off] = struct{}{}
	case s.ahead(off):
		s.bits.clear(off)
	case !r.used:
		if s.fresh == nil {
			s.fresh = map[uint64]struct{}{}
		}
		s.fresh[off] = struct{}{}
		s.bits.clear(off)
		s.note(off, StateFresh)
	default:
		s.bits.clear(off)
		s.note(off, StateFree)
	}
}

// sizeBytes estimates the memory the state holds.
func (s *blockState) sizeBytes() int {
	return s.bits.sizeBytes() + 16*cap(s.cooling) + 24*(len(s.reserved)+len(s.deferred)+len(s.fresh)) + 16*len(s.excl)
}
