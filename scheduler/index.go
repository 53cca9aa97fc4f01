package scheduler

import (
	"math"
	"math/bits"
	"slices"
	"sort"
	"strings"
)

// The index.
//
// Nodes are bucketed by their tag signature: the node's tags plus the
// distinct tag sets of its pools. A request's tag filters (required and
// forbidden node tags, disk tags) are decided once per bucket, not once per
// node; clusters have few signatures (hardware generations, racks with
// different storage), so this loop is short.
//
// Inside a bucket, the nodes sit in strategy order (node ID for even;
// Node.Order, then ID, for sequential) at the leaves of a segment tree. Each
// tree node stores, over its subtree, the maximum free fraction K, the
// maximum free vCPUs, free RAM and free VM slots, the maximum free space per
// pool tag set and the minimum rank. A subtree is pruned when any of those
// maxima is below what the request needs, or when it cannot beat the best
// node found so far (lower K, or equal K and larger ranks; for sequential,
// larger ranks). Sequential then finds the first fitting leaf with one
// descent; even walks the higher-K child first, so the first fitting leaf
// it reaches is usually the answer and the bound prunes the rest.
//
// Nodes that are not active look full in the tree, so the search never
// enters them. The source of a move and the hosts of the request's
// anti-affinity group are marked skipped for one search instead (O(1) per
// node); the search steps over them at the leaves, so a request in a group
// of g members costs O(g log n) at worst and less when the members are not
// among the best nodes.
//
// Every allocation change rewrites one leaf and its O(log n) ancestors.
// Adding or removing nodes rebuilds the index, O(n log n).

type bucket struct {
	tags     tagSet
	poolSets []tagSet
	nodes    []int32 // node indexes in rank order; leaf i is nodes[i]
	size     int     // leaves, a power of two

	agg []agg // tree nodes 1..2*size-1; leaves at size+i
}

// agg is what a tree node knows about its subtree; one struct so that an
// update touches one cache line per level.
type agg struct {
	k       float64 // largest free fraction K
	cpu     int32   // most free vCPUs
	slots   int32   // most free VM slots
	minRank int32   // smallest rank
	// ramAtCPU[j] is the most free RAM, in MiB rounded up, on a node with
	// at least 2^j free vCPUs. Plain maxima of CPU and RAM may come from
	// different nodes, so first-fit would wander into subtrees where no
	// single node has both; this ladder makes the CPU×RAM test exact for
	// power-of-two vCPU counts and tight for the others.
	ramAtCPU [cpuLadder]int32
	// poolFree[j] is the most free space, in MiB rounded up, in a pool
	// whose tags are bucket.poolSets[j].
	poolFree [maxPoolSets]int32
}

// Sizes in the index are MiB rounded up and saturated, so that agg fills
// one 64-byte cache line: an update then costs one line per level. Rounding
// up keeps every value an upper bound, so pruning stays sound; leaves are
// checked exactly against the node.
func upMiB(bytes int64) int32 {
	if bytes < 0 {
		return -1
	}
	return int32(min((bytes+(1<<20)-1)>>20, math.MaxInt32))
}

func sat32(v int64) int32 { return int32(max(min(v, math.MaxInt32), -1)) }

// maxPoolSets bounds the pool tag sets a bucket tracks, so that agg has a
// fixed size and an update touches no other memory. A node with more
// distinct pool tag sets has the extra ones merged into the last slot under
// the union of their tags: still an upper bound for pruning (a disk that
// fits a merged pool passes the slot's test), looser but never wrong; the
// leaf check stays exact.
const maxPoolSets = 4

// cpuLadder is the number of rungs in agg.ramAtCPU: 1 to 64 vCPUs.
const cpuLadder = 7

// rung is the ladder index for a request of cpu vCPUs: the largest j with
// 2^j ≤ cpu, so every node with cpu free vCPUs is counted in that rung.
func rung(cpu int64) int {
	return min(bits.Len64(uint64(cpu))-1, cpuLadder-1)
}

func (s *Scheduler) buildIndex() {
	byKey := map[string]int32{}
	s.buckets = s.buckets[:0]
	for _, idx := range s.byRank {
		n := &s.nodes[idx]
		setKeys := map[string]tagSet{}
		for _, p := range n.pools {
			setKeys[p.tags.key()] = p.tags
		}
		keys := make([]string, 0, len(setKeys))
		for k := range setKeys {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		key := n.tags.key() + "|" + strings.Join(keys, ",")
		bi, ok := byKey[key]
		if !ok {
			bi = int32(len(s.buckets))
			byKey[key] = bi
			b := bucket{tags: n.tags}
			for j, k := range keys {
				if j < maxPoolSets {
					b.poolSets = append(b.poolSets, slices.Clone(setKeys[k]))
					continue
				}
				last := b.poolSets[maxPoolSets-1]
				for w := range last {
					last[w] |= setKeys[k][w]
				}
			}
			s.buckets = append(s.buckets, b)
		}
		b := &s.buckets[bi]
		n.bucket = bi
		n.leaf = int32(len(b.nodes))
		b.nodes = append(b.nodes, idx)
		for pi := range n.pools {
			n.pools[pi].set = min(slices.Index(keys, n.pools[pi].tags.key()), maxPoolSets-1)
		}
	}
	for bi := range s.buckets {
		b := &s.buckets[bi]
		b.size = 1
		for b.size < len(b.nodes) {
			b.size *= 2
		}
		b.agg = make([]agg, 2*b.size)
		for i := b.size; i < 2*b.size; i++ {
			if li := i - b.size; li < len(b.nodes) {
				b.setLeaf(i, &s.nodes[b.nodes[li]])
			} else {
				b.setEmpty(i)
				b.agg[i].minRank = math.MaxInt32
			}
		}
		for i := b.size - 1; i >= 1; i-- {
			b.pull(i)
		}
	}
}

func (b *bucket) setEmpty(i int) {
	b.agg[i] = agg{k: math.Inf(-1), cpu: -1, minRank: b.agg[i].minRank}
	for j := range cpuLadder {
		b.agg[i].ramAtCPU[j] = -1
	}
	for j := range maxPoolSets {
		b.agg[i].poolFree[j] = -1
	}
}

func (b *bucket) setLeaf(i int, n *node) {
	b.agg[i].minRank = n.rank
	if n.state != NodeActive {
		b.setEmpty(i)
		return
	}
	a := agg{k: n.freeFraction(), cpu: sat32(n.cpuCap - n.cpuUsed), slots: n.slots(), minRank: n.rank}
	ram := upMiB(n.ramCap - n.ramUsed)
	for j := range cpuLadder {
		a.ramAtCPU[j] = -1
		if a.cpu >= 1<<j {
			a.ramAtCPU[j] = ram
		}
	}
	for j := range maxPoolSets {
		a.poolFree[j] = -1
	}
	for pi := range n.pools {
		p := &n.pools[pi]
		if free := upMiB(p.cap - p.used); free > a.poolFree[p.set] {
			a.poolFree[p.set] = free
		}
	}
	b.agg[i] = a
}

// pull recomputes tree node i from its children and reports whether it changed.
func (b *bucket) pull(i int) bool {
	l, r := &b.agg[2*i], &b.agg[2*i+1]
	a := agg{k: max(l.k, r.k), cpu: max(l.cpu, r.cpu), slots: max(l.slots, r.slots), minRank: min(l.minRank, r.minRank)}
	for j := range cpuLadder {
		a.ramAtCPU[j] = max(l.ramAtCPU[j], r.ramAtCPU[j])
	}
	for j := range maxPoolSets {
		a.poolFree[j] = max(l.poolFree[j], r.poolFree[j])
	}
	changed := a != b.agg[i]
	b.agg[i] = a
	return changed
}

// updateLeaf refreshes node idx in the index after its state or allocation
// changed. It stops climbing once an ancestor is unchanged: most updates
// touch a few levels, not all of them.
func (s *Scheduler) updateLeaf(idx int32) {
	n := &s.nodes[idx]
	b := &s.buckets[n.bucket]
	i := b.size + int(n.leaf)
	b.setLeaf(i, n)
	for i >>= 1; i >= 1; i >>= 1 {
		if !b.pull(i) {
			return
		}
	}
}

// candidate is the best node found so far in a search.
type candidate struct {
	node int32
	k    float64
	rank int32
}

// fits reports whether tree node i's subtree may hold a node that fits q.
func (b *bucket) fits(i int, q *query, cand [][]int32) bool {
	a := &b.agg[i]
	if a.slots < 1 || int64(a.cpu) < q.cpu || a.ramAtCPU[q.rung] < q.ramMiB {
		return false
	}
	for d := range q.disks {
		ok := false
		for _, j := range cand[d] {
			if a.poolFree[j] >= q.disks[d].sizeMiB {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// skipped reports whether node idx is left out of this search: the node a
// VM moves away from, or a host of the request's anti-affinity group.
func (s *Scheduler) skipped(idx int32) bool { return s.nodes[idx].skip == s.epoch }

func (s *Scheduler) searchSequential(b *bucket, i int, q *query, best *candidate) bool {
	if b.agg[i].minRank >= best.rank || !b.fits(i, q, s.scratch.cand) {
		return false
	}
	if i >= b.size {
		idx := b.nodes[i-b.size]
		if s.skipped(idx) || !s.fitsExactly(&s.nodes[idx], q) {
			return false
		}
		*best = candidate{node: idx, k: b.agg[i].k, rank: b.agg[i].minRank}
		return true
	}
	return s.searchSequential(b, 2*i, q, best) || s.searchSequential(b, 2*i+1, q, best)
}

func (s *Scheduler) searchEven(b *bucket, i int, q *query, best *candidate) {
	a := &b.agg[i]
	if a.k < best.k || (a.k == best.k && a.minRank > best.rank) || !b.fits(i, q, s.scratch.cand) {
		return
	}
	if i >= b.size {
		idx := b.nodes[i-b.size]
		if !s.skipped(idx) && s.fitsExactly(&s.nodes[idx], q) {
			*best = candidate{node: idx, k: a.k, rank: a.minRank}
		}
		return
	}
	l, r := 2*i, 2*i+1
	if b.agg[r].k > b.agg[l].k {
		l, r = r, l
	}
	s.searchEven(b, l, q, best)
	s.searchEven(b, r, q, best)
}

// fitsExactly is the leaf check: the tree's rounded sizes passed, now the
// node's own numbers decide. State, tags and slots are exact in the tree.
func (s *Scheduler) fitsExactly(n *node, q *query) bool {
	return n.cpuUsed+q.cpu <= n.cpuCap && n.ramUsed+q.ram <= n.ramCap && s.fitsDisks(n, q)
}

// diskCandidates fills s.scratch.cand with, per disk, the bucket's pool tag
// sets that carry the disk's tags; false when a disk has none.
func (s *Scheduler) diskCandidates(b *bucket, q *query) bool {
	sc := &s.scratch
	for len(sc.cand) < len(q.disks) {
		sc.cand = append(sc.cand, nil)
	}
	for d := range q.disks {
		if q.disks[d].unknown {
			return false
		}
		c := sc.cand[d][:0]
		for j, ps := range b.poolSets {
			if ps.contains(q.disks[d].tags) {
				c = append(c, int32(j))
			}
		}
		sc.cand[d] = c
		if len(c) == 0 {
			return false
		}
	}
	return true
}

func (s *Scheduler) searchBuckets(q *query, even bool) int32 {
	best := candidate{node: -1, k: math.Inf(-1), rank: math.MaxInt32}
	if !even {
		for bi := range s.buckets {
			b := &s.buckets[bi]
			if b.matches(q) && s.diskCandidates(b, q) {
				s.searchSequential(b, 1, q, &best)
			}
		}
		return best.node
	}
	// Even: visit the buckets with the largest K first, so that the first
	// answer is a strong bound and the other buckets are cut at their root.
	order := s.scratch.buckets[:0]
	for bi := range s.buckets {
		if !s.buckets[bi].matches(q) {
			continue
		}
		// Insertion sort by root K, descending: there are few buckets.
		k := s.buckets[bi].agg[1].k
		j := len(order)
		order = append(order, int32(bi))
		for ; j > 0 && s.buckets[order[j-1]].agg[1].k < k; j-- {
			order[j] = order[j-1]
		}
		order[j] = int32(bi)
	}
	s.scratch.buckets = order
	for _, bi := range order {
		b := &s.buckets[bi]
		if b.agg[1].k < best.k {
			break // sorted: no later bucket can beat it
		}
		if s.diskCandidates(b, q) {
			s.searchEven(b, 1, q, &best)
		}
	}
	return best.node
}

func (b *bucket) matches(q *query) bool {
	return b.tags.contains(q.require) && !b.tags.intersects(q.forbid)
}

// placeIndexed answers like placeNaive through the index.
func (s *Scheduler) placeIndexed(q *query) int32 { return s.placeIndexedWith(q, s.even) }

// placeIndexedWith searches with the even order (rebalancing) or the
// sequential one, whatever the cluster's strategy.
func (s *Scheduler) placeIndexedWith(q *query, even bool) int32 {
	if s.clusterFull() {
		return -1
	}
	if q.pinned >= 0 {
		if s.feasible(q.pinned, q) {
			return q.pinned
		}
		return -1
	}
	if q.unknown != "" {
		return -1
	}
	// Skipped nodes are marked with a fresh epoch instead of being masked
	// in the tree: marking costs O(1) per node, and the search steps over a
	// marked leaf as it does over one whose disks do not fit.
	members := s.groups[q.group]
	s.epoch++
	if q.exclude >= 0 {
		s.nodes[q.exclude].skip = s.epoch
	}
	for idx := range members {
		s.nodes[idx].skip = s.epoch
	}
	best := s.searchBuckets(q, even)
	if best < 0 && len(members) > 0 && !q.hard {
		s.epoch++
		if q.exclude >= 0 {
			s.nodes[q.exclude].skip = s.epoch
		}
		best = s.searchBuckets(q, even)
	}
	return best
}
