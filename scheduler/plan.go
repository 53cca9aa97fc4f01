package scheduler

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"github.com/virtplane/virtplane"
)

// Move is one VM going from one node to another (a live migration when
// rebalancing, a restart elsewhere when evacuating a failed node).
type Move struct {
	VM   string
	From string
	To   string
	// Pools names, per disk, the pool on To that receives it.
	Pools []string
}

// Unplaced is a VM an evacuation found no node for.
type Unplaced struct {
	VM       string
	Priority int
	// Err says why: a *PlacementError with the per-node reasons, or an
	// error wrapping virtplane.ErrConflict for a VM pinned to the source.
	Err error
}

// EvacuationPlan places the VMs of one node elsewhere.
type EvacuationPlan struct {
	Source string
	// Moves are in the order they were planned: by priority (highest
	// first), then by size (largest first), then by VM ID. Executing them in
	// that order gives the placements the plan counted on.
	Moves []Move
	// Unplaced are the VMs that fit nowhere, in the same order.
	Unplaced []Unplaced
}

// PlanEvacuation places every VM of node source on other nodes, honouring
// every rule (capacity, ratios, limits, tags, anti-affinity, pins), as if
// they were created one after another, highest Priority first. It changes
// nothing; the caller executes the plan and reports the new locations
// (RemoveVM and AddVM, or a fresh snapshot).
//
// vms lists the VMs to place with their requests and priorities, the way
// the ha package knows them; nil means the VMs this scheduler has on
// source. A listed VM the scheduler knows must be on source; one it does not
// know is placed too (its capacity on source is not counted anyway: source
// never receives a VM of the plan).
func (s *Scheduler) PlanEvacuation(source string, vms []VM) (EvacuationPlan, error) {
	src, ok := s.byID[source]
	if !ok {
		return EvacuationPlan{}, virtplane.Errorf(virtplane.ErrNotFound, "source node %q", source)
	}
	if vms == nil {
		for _, a := range s.allocationsOn(src) {
			vms = append(vms, VM{ID: a.id, Node: source, Request: a.req, Priority: a.priority})
		}
	}
	var removed []*allocation
	unknown := 0
	defer func() {
		for _, a := range removed {
			s.apply(a, 1)
		}
		s.totalVMs += unknown
	}()
	seen := map[string]bool{}
	for i, vm := range vms {
		field := fmt.Sprintf("vms[%d]", i)
		if vm.ID == "" {
			return EvacuationPlan{}, invalid("%s.ID: empty", field)
		}
		if seen[vm.ID] {
			return EvacuationPlan{}, invalid("%s.ID %q: listed twice", field, vm.ID)
		}
		seen[vm.ID] = true
		if vm.Node != "" && vm.Node != source {
			return EvacuationPlan{}, invalid("%s.Node %q: not the source %q", field, vm.Node, source)
		}
		if err := vm.Request.Validate(field + ".Request"); err != nil {
			return EvacuationPlan{}, err
		}
		if a, ok := s.vms[vm.ID]; ok {
			if a.node != src {
				return EvacuationPlan{}, invalid("%s: vm %q is on %q, not on the source %q", field, vm.ID, s.nodes[a.node].id, source)
			}
			// Its capacity and group membership leave with it.
			s.apply(a, -1)
			removed = append(removed, a)
		} else {
			s.totalVMs--
			unknown++
		}
	}
	order := slices.Clone(vms)
	slices.SortStableFunc(order, func(a, b VM) int {
		return cmp.Or(
			cmp.Compare(b.Priority, a.Priority),
			cmp.Compare(b.Request.RAM, a.Request.RAM),
			cmp.Compare(b.Request.VCPUs, a.Request.VCPUs),
			cmp.Compare(a.ID, b.ID))
	})

	plan := EvacuationPlan{Source: source}
	var placed []*allocation
	defer func() {
		for i := len(placed) - 1; i >= 0; i-- {
			s.apply(placed[i], -1)
		}
	}()
	for _, vm := range order {
		if vm.Request.Node == source {
			plan.Unplaced = append(plan.Unplaced, Unplaced{VM: vm.ID, Priority: vm.Priority,
				Err: virtplane.Errorf(virtplane.ErrConflict, "vm %q is pinned to the node being evacuated", vm.ID)})
			continue
		}
		a, err := s.decide(vm.Request, "vm "+vm.ID, src, s.even)
		if err != nil {
			plan.Unplaced = append(plan.Unplaced, Unplaced{VM: vm.ID, Priority: vm.Priority, Err: err})
			continue
		}
		s.apply(a, 1)
		placed = append(placed, a)
		p := s.placementOf(a)
		plan.Moves = append(plan.Moves, Move{VM: vm.ID, From: source, To: p.Node, Pools: p.Pools})
	}
	return plan, nil
}

// allocationsOn lists the VMs on node idx, by ID.
func (s *Scheduler) allocationsOn(idx int32) []*allocation {
	var out []*allocation
	for _, a := range s.vms {
		if a.node == idx {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(a, b *allocation) int { return cmp.Compare(a.id, b.id) })
	return out
}

// load is a node's load fraction, 1 − K.
func (n *node) load() float64 { return 1 - n.freeFraction() }

// loadWith is the node's load fraction with dcpu vCPUs and dram bytes more.
func (n *node) loadWith(dcpu, dram int64) float64 {
	m := *n
	m.cpuUsed += dcpu
	m.ramUsed += dram
	return m.load()
}

// balanced reports whether a node takes part in imbalance: active, with
// some compute to share.
func (n *node) balanced() bool { return n.state == NodeActive && n.cpuCap > 0 && n.ramCap > 0 }

// Imbalance is the spread of load over the active nodes: the largest load
// fraction minus the smallest, where a node's load fraction is 1 − K, the
// used fraction of its most constrained resource (CPU or RAM, at its
// ratios). 0 means perfectly even; 1 means one node full and another empty.
// Nodes that are not active, or have no CPU or RAM, do not count.
func (s *Scheduler) Imbalance() float64 {
	lo, hi := math.Inf(1), math.Inf(-1)
	for i := range s.nodes {
		if n := &s.nodes[i]; n.balanced() {
			l := n.load()
			lo, hi = min(lo, l), max(hi, l)
		}
	}
	if hi < lo {
		return 0
	}
	return hi - lo
}

// RebalanceOptions tune PlanRebalance.
type RebalanceOptions struct {
	// Threshold is the imbalance to get under (or to): 0.1 means the
	// most and least loaded active nodes end within 10 points.
	Threshold float64
	// MaxMoves bounds the plan; zero means no bound (each VM moves at most
	// once anyway).
	MaxMoves int
	// MaxSources bounds how many overloaded nodes one step examines, most
	// loaded first; zero means 64. It caps planning time on large clusters.
	MaxSources int
}

// RebalancePlan is a list of live migrations.
type RebalancePlan struct {
	// Before and After are the imbalance without and with the moves.
	Before, After float64
	// Moves, executed in order, each keep every rule.
	Moves []Move
	// Reached says whether After ≤ Threshold. It can be false when no move
	// that keeps the rules lowers the load of the busiest nodes, or when
	// MaxMoves cut the plan short.
	Reached bool
}

// PlanRebalance plans live migrations, DRS-style, that bring Imbalance to
// opts.Threshold or below without breaking any rule, and changes nothing.
//
// It is greedy, one move at a time: take the most loaded node whose load
// is above the least loaded one by more than the threshold; for each VM on
// it that is not pinned and has not moved yet, find where an even placement
// would put it (any rule-abiding node but its own, ties in the cluster's
// node order). A move qualifies when it lowers the source's load without
// the target ending at or above the source's old load, and does not widen
// the spread; among those, the one leaving the smallest spread (then the
// lowest of the two new loads) wins. When the busiest node has no such
// move, the next busiest is tried, up to opts.MaxSources. The plan is then
// cut to the shortest prefix reaching the lowest spread it saw, so it holds
// no move that does not pay off. Each VM moves at most once. The plan is
// short, but finding the shortest one is a bin-packing problem and is not
// attempted.
func (s *Scheduler) PlanRebalance(opts RebalanceOptions) (RebalancePlan, error) {
	if math.IsNaN(opts.Threshold) || opts.Threshold < 0 || opts.Threshold > 1 {
		return RebalancePlan{}, invalid("opts.Threshold %v: want 0 to 1", opts.Threshold)
	}
	if opts.MaxMoves < 0 {
		return RebalancePlan{}, invalid("opts.MaxMoves %d: want ≥ 0", opts.MaxMoves)
	}
	if opts.MaxSources < 0 {
		return RebalancePlan{}, invalid("opts.MaxSources %d: want ≥ 0", opts.MaxSources)
	}
	if opts.MaxSources == 0 {
		opts.MaxSources = 64
	}
	plan := RebalancePlan{Before: s.Imbalance()}

	type undo struct {
		a     *allocation
		node  int32
		pools []int32
	}
	var undos []undo
	defer func() {
		for i := len(undos) - 1; i >= 0; i-- {
			u := undos[i]
			s.apply(u.a, -1)
			u.a.node, u.a.pools = u.node, u.pools
			s.apply(u.a, 1)
		}
	}()
	moved := map[string]bool{}
	var after []float64 // imbalance after each move
	byNode := map[int32][]*allocation{}
	for _, a := range s.vms {
		byNode[a.node] = append(byNode[a.node], a)
	}
	for _, list := range byNode {
		slices.SortFunc(list, func(a, b *allocation) int { return cmp.Compare(a.id, b.id) })
	}

	for s.Imbalance() > opts.Threshold && (opts.MaxMoves == 0 || len(plan.Moves) < opts.MaxMoves) {
		var sources []int32
		lo := math.Inf(1)
		for i := range s.nodes {
			if n := &s.nodes[i]; n.balanced() {
				sources = append(sources, int32(i))
				lo = min(lo, n.load())
			}
		}
		slices.SortFunc(sources, func(a, b int32) int {
			return cmp.Or(cmp.Compare(s.nodes[b].load(), s.nodes[a].load()), cmp.Compare(s.nodes[a].rank, s.nodes[b].rank))
		})
		// The spread once src and tgt change: the others' extremes come
		// from the ends of the sorted list, skipping the two.
		spread := func(src, tgt int32, ls, lt float64) float64 {
			hi, lo := max(ls, lt), min(ls, lt)
			for _, idx := range sources {
				if idx != src && idx != tgt {
					hi = max(hi, s.nodes[idx].load())
					break
				}
			}
			for i := len(sources) - 1; i >= 0; i-- {
				if idx := sources[i]; idx != src && idx != tgt {
					lo = min(lo, s.nodes[idx].load())
					break
				}
			}
			return hi - lo
		}
		current := s.Imbalance()
		var bestA, bestTo *allocation
		bestSpread, bestPeak := math.Inf(1), math.Inf(1)
		for si, src := range sources {
			n := &s.nodes[src]
			if si >= opts.MaxSources || n.load()-lo <= opts.Threshold {
				break
			}
			before := n.load()
			for _, a := range byNode[src] {
				if moved[a.id] || a.req.Node != "" {
					continue
				}
				s.apply(a, -1)
				to, err := s.decide(a.req, "vm "+a.id, src, true)
				srcAfter := n.load()
				s.apply(a, 1)
				if err != nil {
					continue
				}
				tgtAfter := s.nodes[to.node].loadWith(int64(a.req.VCPUs), a.req.RAM)
				peak := max(srcAfter, tgtAfter)
				sp := spread(src, to.node, srcAfter, tgtAfter)
				if peak >= before || sp > current+1e-12 {
					continue // no progress on the busy node, or a worse spread
				}
				if sp < bestSpread || (sp == bestSpread && peak < bestPeak) {
					bestA, bestTo, bestSpread, bestPeak = a, to, sp, peak
				}
			}
			if bestA != nil {
				break
			}
		}
		if bestA == nil {
			break
		}
		from := bestA.node
		undos = append(undos, undo{a: bestA, node: bestA.node, pools: bestA.pools})
		s.apply(bestA, -1)
		bestA.node, bestA.pools = bestTo.node, bestTo.pools
		s.apply(bestA, 1)
		moved[bestA.id] = true
		byNode[from] = slices.DeleteFunc(byNode[from], func(x *allocation) bool { return x == bestA })
		byNode[bestA.node] = append(byNode[bestA.node], bestA)
		p := s.placementOf(bestA)
		plan.Moves = append(plan.Moves, Move{VM: bestA.id, From: s.nodes[from].id, To: p.Node, Pools: p.Pools})
		after = append(after, s.Imbalance())
	}
	// Moves that kept the spread level (several nodes sharing the peak)
	// pay off only if later moves lower it; keep the shortest prefix that
	// reaches the lowest spread seen.
	plan.After = plan.Before
	keep := 0
	for i, imb := range after {
		if imb < plan.After-1e-12 {
			plan.After, keep = imb, i+1
		}
	}
	plan.Moves = plan.Moves[:keep]
	plan.Reached = plan.After <= opts.Threshold
	return plan, nil
}
