package scheduler

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/virtplane/virtplane"
)

// unlimitedSlots stands for "no VM limit" in the index's slot counts.
const unlimitedSlots = math.MaxInt32

// Scheduler holds a cluster's state and an index over it, and answers
// placement questions. It does no I/O and starts no goroutines. It is not
// safe for concurrent use: a caller that shares one (the daemon) serialises
// calls with its own lock; answers take microseconds.
type Scheduler struct {
	settings Settings
	even     bool

	tagIdx   map[string]int
	tagNames []string
	words    int // uint64 words in a tagSet

	nodes  []node
	byID   map[string]int32
	byRank []int32 // node indexes in strategy order

	buckets []bucket

	vms          map[string]*allocation
	reservations map[string]*reservation
	groups       map[string]map[int32]int // anti-affinity group → node → members
	totalVMs     int
	nextRes      uint64
	epoch        uint64 // current search, for node.skip

	scratch scratch
}

// node is the scheduler's view of one Node.
type node struct {
	id     string
	rank   int32
	order  int
	state  NodeState
	tags   tagSet
	cores  int
	ram    int64
	cpuR   float64
	ramR   float64
	cpuCap int64 // effective vCPUs: floor(cores × ratio)
	ramCap int64 // effective bytes: floor(ram × ratio)
	maxVMs int   // 0 = unlimited

	cpuUsed int64
	ramUsed int64
	vms     int

	pools  []pool
	bucket int32
	leaf   int32
	skip   uint64 // equal to Scheduler.epoch: left out of the current search

	src Node // the input, kept to rebuild
}

type pool struct {
	name  string
	tags  tagSet
	size  int64
	ratio float64
	cap   int64
	used  int64
	set   int // index of the pool's tag set in its bucket
}

// allocation is capacity held on a node by a VM or a reservation.
type allocation struct {
	id       string
	node     int32
	req      Request
	pools    []int32 // pool index per disk
	priority int
}

type reservation struct {
	alloc   allocation
	expires time.Time
}

// New builds a scheduler from a snapshot. Malformed input returns an error
// wrapping virtplane.ErrInvalidArgument that names the field; a snapshot that
// already overcommits a node is accepted (the node just takes nothing new).
func New(c Cluster) (*Scheduler, error) {
	if err := c.Settings.validate(); err != nil {
		return nil, err
	}
	s := &Scheduler{
		settings:     c.Settings,
		even:         c.Settings.Strategy != StrategySequential,
		tagIdx:       map[string]int{},
		byID:         make(map[string]int32, len(c.Nodes)),
		vms:          map[string]*allocation{},
		reservations: map[string]*reservation{},
		groups:       map[string]map[int32]int{},
	}
	for i := range c.Nodes {
		n := &c.Nodes[i]
		if err := n.validate(fmt.Sprintf("nodes[%d]", i)); err != nil {
			return nil, err
		}
		if _, dup := s.byID[n.ID]; dup {
			return nil, invalid("nodes[%d].ID %q: duplicate node", i, n.ID)
		}
		s.byID[n.ID] = int32(i)
	}
	s.rebuild(c.Nodes)
	for i := range c.VMs {
		if err := s.AddVM(c.VMs[i]); err != nil {
			return nil, fmt.Errorf("vms[%d]: %w", i, err)
		}
	}
	return s, nil
}

// rebuild (re)creates nodes, tags and the index from node definitions,
// keeping nothing but the definitions' own Used amounts. Callers re-add
// allocations afterwards.
func (s *Scheduler) rebuild(defs []Node) {
	s.tagIdx = map[string]int{}
	s.tagNames = nil
	for i := range defs {
		for _, t := range defs[i].Tags {
			s.intern(t)
		}
		for _, p := range defs[i].Pools {
			for _, t := range p.Tags {
				s.intern(t)
			}
		}
	}
	s.words = (len(s.tagNames) + 63) / 64
	s.nodes = make([]node, len(defs))
	s.byID = make(map[string]int32, len(defs))
	for i := range defs {
		s.nodes[i] = s.makeNode(defs[i])
		s.byID[defs[i].ID] = int32(i)
	}
	s.totalVMs = 0
	for i := range s.nodes {
		s.totalVMs += s.nodes[i].vms
	}
	s.byRank = make([]int32, len(defs))
	for i := range s.byRank {
		s.byRank[i] = int32(i)
	}
	sort.Slice(s.byRank, func(a, b int) bool {
		na, nb := &s.nodes[s.byRank[a]], &s.nodes[s.byRank[b]]
		if !s.even && na.order != nb.order {
			return na.order < nb.order
		}
		return na.id < nb.id
	})
	for r, idx := range s.byRank {
		s.nodes[idx].rank = int32(r)
	}
	s.buildIndex()
}

func (s *Scheduler) makeNode(d Node) node {
	st := d.State
	if st == "" {
		st = NodeActive
	}
	n := node{
		id:      d.ID,
		order:   d.Order,
		state:   st,
		tags:    s.tagSetOf(d.Tags),
		cores:   d.Cores,
		ram:     d.RAM,
		cpuR:    ratioOr(d.CPURatio, s.settings.CPURatio),
		ramR:    ratioOr(d.RAMRatio, s.settings.RAMRatio),
		maxVMs:  d.MaxVMs,
		cpuUsed: int64(d.Used.VCPUs),
		ramUsed: d.Used.RAM,
		vms:     d.Used.VMs,
		src:     d,
	}
	if n.maxVMs == 0 {
		n.maxVMs = s.settings.MaxVMsPerNode
	}
	n.cpuCap = scaled(int64(d.Cores), n.cpuR)
	n.ramCap = scaled(d.RAM, n.ramR)
	n.pools = make([]pool, len(d.Pools))
	for i, p := range d.Pools {
		r := ratioOr(p.Ratio, s.settings.DiskRatios[p.Name])
		n.pools[i] = pool{name: p.Name, tags: s.tagSetOf(p.Tags), size: p.Size, ratio: r, cap: scaled(p.Size, r), used: p.Used}
	}
	return n
}

// scaled is floor(v × ratio), saturating instead of overflowing.
func scaled(v int64, ratio float64) int64 {
	f := math.Floor(float64(v) * ratio)
	if f >= math.MaxInt64/2 {
		return math.MaxInt64 / 2
	}
	return int64(f)
}

func (s *Scheduler) intern(t string) int {
	if i, ok := s.tagIdx[t]; ok {
		return i
	}
	s.tagIdx[t] = len(s.tagNames)
	s.tagNames = append(s.tagNames, t)
	return len(s.tagNames) - 1
}

// tagSet is a bitset over interned tags.
type tagSet []uint64

func (s *Scheduler) tagSetOf(tags []string) tagSet {
	ts := make(tagSet, s.words)
	for _, t := range tags {
		i := s.tagIdx[t]
		ts[i/64] |= 1 << (i % 64)
	}
	return ts
}

func (a tagSet) contains(b tagSet) bool {
	for i := range b {
		if b[i]&^a[i] != 0 {
			return false
		}
	}
	return true
}

func (a tagSet) intersects(b tagSet) bool {
	for i := range b {
		if a[i]&b[i] != 0 {
			return true
		}
	}
	return false
}

func (a tagSet) key() string {
	var sb strings.Builder
	for _, w := range a {
		fmt.Fprintf(&sb, "%016x", w)
	}
	return sb.String()
}

// freeFraction is the node's K: the free fraction of its most constrained
// compute resource. A resource with no capacity counts as fully used.
func (n *node) freeFraction() float64 {
	k := 0.0
	if n.cpuCap > 0 {
		k = float64(n.cpuCap-n.cpuUsed) / float64(n.cpuCap)
	}
	if n.ramCap > 0 {
		if r := float64(n.ramCap-n.ramUsed) / float64(n.ramCap); r < k {
			k = r
		}
	} else {
		k = math.Min(k, 0)
	}
	return k
}

// slots is how many more VMs the node may take under its own limit.
func (n *node) slots() int32 {
	if n.maxVMs == 0 {
		return unlimitedSlots
	}
	if n.vms >= n.maxVMs {
		return 0
	}
	return int32(min(n.maxVMs-n.vms, unlimitedSlots-1))
}

// query is a compiled Request.
type query struct {
	req      *Request
	cpu, ram int64
	ramMiB   int32 // ram in MiB rounded up, for the index
	rung     int   // rung(cpu), for agg.ramAtCPU
	require  tagSet
	forbid   tagSet
	unknown  string // a required tag no node has
	disks    []qdisk
	group    string
	hard     bool
	pinned   int32 // -1: not pinned
	exclude  int32 // -1: none; a node never chosen (the source of a move)
}

type qdisk struct {
	size    int64
	sizeMiB int32 // size in MiB rounded up, for the index
	tags    tagSet
	unknown bool // a tag no pool has
}

// scratch holds buffers reused across decisions so that a placement does
// not allocate.
type scratch struct {
	q        query
	disks    []qdisk
	tagWords []uint64
	cand     [][]int32
	assigned []int64
	poolPick []int32
	buckets  []int32
}

// compile turns r into a query in s.scratch. The returned query is valid
// until the next compile.
func (s *Scheduler) compile(r *Request, field string) (*query, error) {
	if err := r.Validate(field); err != nil {
		return nil, err
	}
	sc := &s.scratch
	q := &sc.q
	*q = query{req: r, cpu: int64(r.VCPUs), ram: r.RAM, group: r.AntiAffinity.Group, hard: r.AntiAffinity.Hard, pinned: -1, exclude: -1}
	q.rung = rung(q.cpu)
	q.ramMiB = upMiB(q.ram)
	need := s.words * (2 + len(r.Disks))
	if cap(sc.tagWords) < need {
		sc.tagWords = make([]uint64, need)
	}
	words := sc.tagWords[:need]
	clear(words)
	q.require, words = words[:s.words], words[s.words:]
	q.forbid, words = words[:s.words], words[s.words:]
	for _, t := range r.RequireTags {
		i, ok := s.tagIdx[t]
		if !ok {
			q.unknown = t
			continue
		}
		q.require[i/64] |= 1 << (i % 64)
	}
	for _, t := range r.ForbidTags {
		if i, ok := s.tagIdx[t]; ok {
			q.forbid[i/64] |= 1 << (i % 64)
		}
	}
	sc.disks = sc.disks[:0]
	for _, d := range r.Disks {
		qd := qdisk{size: d.Size, sizeMiB: upMiB(d.Size), tags: words[:s.words]}
		words = words[s.words:]
		for _, t := range d.Tags {
			i, ok := s.tagIdx[t]
			if !ok {
				qd.unknown = true
				continue
			}
			qd.tags[i/64] |= 1 << (i % 64)
		}
		sc.disks = append(sc.disks, qd)
	}
	q.disks = sc.disks
	if r.Node != "" {
		idx, ok := s.byID[r.Node]
		if !ok {
			return nil, virtplane.Errorf(virtplane.ErrNotFound, "%s.Node %q: no such node", field, r.Node)
		}
		q.pinned = idx
	}
	return q, nil
}

// fitsDisks assigns the query's disks to n's pools, greedily: each disk, in
// order, goes to the pool with the most free space among those carrying its
// tags (ties: first pool). The choice lands in s.scratch.poolPick.
func (s *Scheduler) fitsDisks(n *node, q *query) bool {
	sc := &s.scratch
	sc.poolPick = sc.poolPick[:0]
	if len(q.disks) == 0 {
		return true
	}
	if cap(sc.assigned) < len(n.pools) {
		sc.assigned = make([]int64, len(n.pools))
	}
	as := sc.assigned[:len(n.pools)]
	clear(as)
	for _, d := range q.disks {
		if d.unknown {
			return false
		}
		best, bestFree := int32(-1), int64(-1)
		for pi := range n.pools {
			p := &n.pools[pi]
			if !p.tags.contains(d.tags) {
				continue
			}
			if free := p.cap - p.used - as[pi]; free > bestFree {
				best, bestFree = int32(pi), free
			}
		}
		if best < 0 || bestFree < d.size {
			return false
		}
		as[best] += d.size
		sc.poolPick = append(sc.poolPick, best)
	}
	return true
}

// hostsGroup reports whether node idx hosts a member of group.
func (s *Scheduler) hostsGroup(idx int32, group string) bool {
	return group != "" && s.groups[group][idx] > 0
}

// feasible is the full check of one node, shared by the reference scan and
// the index's leaves; soft anti-affinity is not checked here.
func (s *Scheduler) feasible(idx int32, q *query) bool {
	n := &s.nodes[idx]
	if n.state != NodeActive || idx == q.exclude || q.unknown != "" {
		return false
	}
	if !n.tags.contains(q.require) || n.tags.intersects(q.forbid) {
		return false
	}
	if n.slots() < 1 || n.cpuUsed+q.cpu > n.cpuCap || n.ramUsed+q.ram > n.ramCap {
		return false
	}
	if q.hard && s.hostsGroup(idx, q.group) {
		return false
	}
	return s.fitsDisks(n, q)
}

func (s *Scheduler) clusterFull() bool {
	return s.settings.MaxVMs > 0 && s.totalVMs >= s.settings.MaxVMs
}

// better reports whether node a beats node b (b < 0: no node yet) under the
// strategy's order.
func (s *Scheduler) better(a, b int32) bool {
	if b < 0 {
		return true
	}
	na, nb := &s.nodes[a], &s.nodes[b]
	if s.even {
		ka, kb := na.freeFraction(), nb.freeFraction()
		if ka != kb {
			return ka > kb
		}
	}
	return na.rank < nb.rank
}

// placeNaive is the reference implementation: a full scan of every node.
func (s *Scheduler) placeNaive(q *query) int32 {
	if s.clusterFull() {
		return -1
	}
	if q.pinned >= 0 {
		if s.feasible(q.pinned, q) {
			return q.pinned
		}
		return -1
	}
	best, bestOther := int32(-1), int32(-1)
	for _, idx := range s.byRank {
		if !s.feasible(idx, q) {
			continue
		}
		if q.group != "" && s.hostsGroup(idx, q.group) {
			// only reachable for soft anti-affinity: a fallback
			if s.better(idx, bestOther) {
				bestOther = idx
			}
			continue
		}
		if s.better(idx, best) {
			best = idx
		}
	}
	if best < 0 {
		best = bestOther
	}
	return best
}

// PlaceNaive answers like Place with a full scan of every node. It is the
// reference the index is tested against and the baseline of the benchmarks.
func (s *Scheduler) PlaceNaive(r Request) (Placement, error) {
	q, err := s.compile(&r, "request")
	if err != nil {
		return Placement{}, err
	}
	idx := s.placeNaive(q)
	if idx < 0 {
		return Placement{}, s.explain(q)
	}
	return s.placement(idx, q), nil
}

// Place chooses a node for r without changing any state. It returns an
// error wrapping virtplane.ErrInvalidArgument for a malformed request,
// virtplane.ErrNotFound for an unknown pinned node, and a *PlacementError
// (wrapping virtplane.ErrResourceExhausted) when no node can take r.
func (s *Scheduler) Place(r Request) (Placement, error) {
	q, err := s.compile(&r, "request")
	if err != nil {
		return Placement{}, err
	}
	idx := s.placeIndexed(q)
	if idx < 0 {
		return Placement{}, s.explain(q)
	}
	return s.placement(idx, q), nil
}

// placement renders the decision; it re-runs the disk assignment because
// the scratch may hold another node's.
func (s *Scheduler) placement(idx int32, q *query) Placement {
	n := &s.nodes[idx]
	p := Placement{Node: n.id}
	if len(q.disks) > 0 && s.fitsDisks(n, q) {
		p.Pools = make([]string, len(q.disks))
		for i, pi := range s.scratch.poolPick {
			p.Pools[i] = n.pools[pi].name
		}
	}
	return p
}
