package scheduler

import (
	"math"
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
// Nodes that are not active, the source of a move, and (for anti-affinity)
// the nodes hosting a group member are masked: their leaves look full, so
// the search never enters them. Masking a node costs O(log n), so a request
// in an anti-affinity group of g members costs O(g log n).
//
// Every allocation change rewrites one leaf and its O(log n) ancestors.
// Adding or removing nodes rebuilds the index, O(n log n).

type bucket struct {
	tags     tagSet
	poolSets []tagSet
	nodes    []int32 // node indexes in rank order; leaf i is nodes[i]
	size     int     // leaves, a power of two

	k        []float64
	cpu      []int64
	ram      []int64
	slots    []int32
	minRank  []int32
	poolFree []int64 // len(poolSets) values per tree node
}

func (s *Scheduler) buildIndex() {
	type sig struct {
		key  string
		sets []tagSet
	}
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
			for _, k := range keys {
				b.poolSets = append(b.poolSets, setKeys[k])
			}
			s.buckets = append(s.buckets, b)
		}
		b := &s.buckets[bi]
		n.bucket = bi
		n.leaf = int32(len(b.nodes))
		b.nodes = append(b.nodes, idx)
		for pi := range n.pools {
			for j, ps := range b.poolSets {
				if ps.key() == n.pools[pi].tags.key() {
					n.pools[pi].set = j
				}
			}
		}
	}
	for bi := range s.buckets {
		b := &s.buckets[bi]
		b.size = 1
		for b.size < len(b.nodes) {
			b.size *= 2
		}
		P := len(b.poolSets)
		b.k = make([]float64, 2*b.size)
		b.cpu = make([]int64, 2*b.size)
		b.ram = make([]int64, 2*b.size)
		b.slots = make([]int32, 2*b.size)
		b.minRank = make([]int32, 2*b.size)
		b.poolFree = make([]int64, 2*b.size*P)
		for i := b.size; i < 2*b.size; i++ {
			if li := i - b.size; li < len(b.nodes) {
				b.setLeaf(i, &s.nodes[b.nodes[li]])
			} else {
				b.setEmpty(i)
				b.minRank[i] = math.MaxInt32
			}
		}
		for i := b.size - 1; i >= 1; i-- {
			b.pull(i)
		}
	}
}

func (b *bucket) setEmpty(i int) {
	b.k[i] = math.Inf(-1)
	b.cpu[i], b.ram[i], b.slots[i] = -1, -1, 0
	P := len(b.poolSets)
	for j := range P {
		b.poolFree[i*P+j] = -1
	}
}

func (b *bucket) setLeaf(i int, n *node) {
	b.minRank[i] = n.rank
	if n.state != NodeActive || n.masked > 0 {
		b.setEmpty(i)
		return
	}
	b.k[i] = n.freeFraction()
	b.cpu[i] = n.cpuCap - n.cpuUsed
	b.ram[i] = n.ramCap - n.ramUsed
	b.slots[i] = n.slots()
	P := len(b.poolSets)
	pf := b.poolFree[i*P : (i+1)*P]
	for j := range pf {
		pf[j] = -1
	}
	for pi := range n.pools {
		p := &n.pools[pi]
		if free := p.cap - p.used; free > pf[p.set] {
			pf[p.set] = free
		}
	}
}

func (b *bucket) pull(i int) {
	l, r := 2*i, 2*i+1
	b.k[i] = max(b.k[l], b.k[r])
	b.cpu[i] = max(b.cpu[l], b.cpu[r])
	b.ram[i] = max(b.ram[l], b.ram[r])
	b.slots[i] = max(b.slots[l], b.slots[r])
	b.minRank[i] = min(b.minRank[l], b.minRank[r])
	P := len(b.poolSets)
	for j := range P {
		b.poolFree[i*P+j] = max(b.poolFree[l*P+j], b.poolFree[r*P+j])
	}
}

// updateLeaf refreshes node idx in the index after its state, allocation or
// mask changed.
func (s *Scheduler) updateLeaf(idx int32) {
	n := &s.nodes[idx]
	b := &s.buckets[n.bucket]
	i := b.size + int(n.leaf)
	b.setLeaf(i, n)
	for i >>= 1; i >= 1; i >>= 1 {
		b.pull(i)
	}
}

func (s *Scheduler) mask(idx int32) {
	s.nodes[idx].masked++
	if s.nodes[idx].masked == 1 {
		s.updateLeaf(idx)
	}
}

func (s *Scheduler) unmask(idx int32) {
	s.nodes[idx].masked--
	if s.nodes[idx].masked == 0 {
		s.updateLeaf(idx)
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
	if b.slots[i] < 1 || b.cpu[i] < q.cpu || b.ram[i] < q.ram {
		return false
	}
	P := len(b.poolSets)
	for d := range q.disks {
		ok := false
		for _, j := range cand[d] {
			if b.poolFree[i*P+int(j)] >= q.disks[d].size {
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

func (s *Scheduler) searchSequential(b *bucket, i int, q *query, best *candidate) bool {
	if b.minRank[i] >= best.rank || !b.fits(i, q, s.scratch.cand) {
		return false
	}
	if i >= b.size {
		idx := b.nodes[i-b.size]
		if !s.fitsDisks(&s.nodes[idx], q) {
			return false
		}
		*best = candidate{node: idx, k: b.k[i], rank: b.minRank[i]}
		return true
	}
	return s.searchSequential(b, 2*i, q, best) || s.searchSequential(b, 2*i+1, q, best)
}

func (s *Scheduler) searchEven(b *bucket, i int, q *query, best *candidate) {
	if k := b.k[i]; k < best.k || (k == best.k && b.minRank[i] > best.rank) || !b.fits(i, q, s.scratch.cand) {
		return
	}
	if i >= b.size {
		idx := b.nodes[i-b.size]
		if s.fitsDisks(&s.nodes[idx], q) {
			*best = candidate{node: idx, k: b.k[i], rank: b.minRank[i]}
		}
		return
	}
	l, r := 2*i, 2*i+1
	if b.k[r] > b.k[l] {
		l, r = r, l
	}
	s.searchEven(b, l, q, best)
	s.searchEven(b, r, q, best)
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
	for bi := range s.buckets {
		b := &s.buckets[bi]
		if !b.tags.contains(q.require) || b.tags.intersects(q.forbid) || !s.diskCandidates(b, q) {
			continue
		}
		if even {
			s.searchEven(b, 1, q, &best)
		} else {
			s.searchSequential(b, 1, q, &best)
		}
	}
	return best.node
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
	if q.exclude >= 0 {
		s.mask(q.exclude)
		defer s.unmask(q.exclude)
	}
	members := s.groups[q.group]
	for idx := range members {
		s.mask(idx)
	}
	best := s.searchBuckets(q, even)
	for idx := range members {
		s.unmask(idx)
	}
	if best < 0 && len(members) > 0 && !q.hard {
		best = s.searchBuckets(q, even)
	}
	return best
}
