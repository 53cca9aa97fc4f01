package scheduler

import (
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/virtplane/virtplane"
)

// Reservation is capacity held for a VM whose creation is under way.
type Reservation struct {
	// ID names the reservation for Commit and Release.
	ID string
	// Placement is where the capacity is held.
	Placement Placement
	// Expires is when ExpireReservations releases it; zero means never.
	Expires time.Time
}

// apply adds (sign 1) or removes (sign -1) an allocation's resources.
func (s *Scheduler) apply(a *allocation, sign int) {
	n := &s.nodes[a.node]
	n.cpuUsed += int64(sign * a.req.VCPUs)
	n.ramUsed += int64(sign) * a.req.RAM
	n.vms += sign
	s.totalVMs += sign
	for d, pi := range a.pools {
		n.pools[pi].used += int64(sign) * a.req.Disks[d].Size
	}
	if g := a.req.AntiAffinity.Group; g != "" {
		m := s.groups[g]
		if m == nil {
			m = map[int32]int{}
			s.groups[g] = m
		}
		m[a.node] += sign
		if m[a.node] <= 0 {
			delete(m, a.node)
		}
		if len(m) == 0 {
			delete(s.groups, g)
		}
	}
	s.updateLeaf(a.node)
}

// decide places r and returns the allocation it would make, applying nothing.
func (s *Scheduler) decide(r Request, field string, exclude int32, even bool) (*allocation, error) {
	q, err := s.compile(&r, field)
	if err != nil {
		return nil, err
	}
	q.exclude = exclude
	idx := s.placeIndexedWith(q, even)
	if idx < 0 {
		return nil, s.explain(q)
	}
	s.fitsDisks(&s.nodes[idx], q)
	a := &allocation{node: idx, req: r, pools: append([]int32(nil), s.scratch.poolPick...)}
	return a, nil
}

func (s *Scheduler) placementOf(a *allocation) Placement {
	n := &s.nodes[a.node]
	p := Placement{Node: n.id}
	for _, pi := range a.pools {
		p.Pools = append(p.Pools, n.pools[pi].name)
	}
	return p
}

// PlaceBatch places requests one after another as if each earlier one had
// been created, so their capacity and anti-affinity count for the later
// ones, and then forgets them: it changes no state. It is all or nothing:
// the first request that does not fit fails the batch with an error naming
// its index.
func (s *Scheduler) PlaceBatch(reqs []Request) ([]Placement, error) {
	allocs, err := s.batch(reqs)
	if err != nil {
		return nil, err
	}
	out := make([]Placement, len(allocs))
	for i := len(allocs) - 1; i >= 0; i-- {
		out[i] = s.placementOf(allocs[i])
		s.apply(allocs[i], -1)
	}
	return out, nil
}

// batch applies the requests in order; on failure it undoes what it applied.
func (s *Scheduler) batch(reqs []Request) ([]*allocation, error) {
	allocs := make([]*allocation, 0, len(reqs))
	for i, r := range reqs {
		a, err := s.decide(r, fmt.Sprintf("requests[%d]", i), -1, s.even)
		if err != nil {
			for j := len(allocs) - 1; j >= 0; j-- {
				s.apply(allocs[j], -1)
			}
			return nil, fmt.Errorf("requests[%d]: %w", i, err)
		}
		s.apply(a, 1)
		allocs = append(allocs, a)
	}
	return allocs, nil
}

// Reserve places r and holds its capacity until Commit, Release or, when
// expires is not zero, an ExpireReservations call at or after expires.
// Reserved capacity counts for every later decision, anti-affinity included.
func (s *Scheduler) Reserve(r Request, expires time.Time) (Reservation, error) {
	res, err := s.ReserveBatch([]Request{r}, expires)
	if err != nil {
		return Reservation{}, err
	}
	return res[0], nil
}

// ReserveBatch reserves all requests (earlier ones counting for later ones)
// or none.
func (s *Scheduler) ReserveBatch(reqs []Request, expires time.Time) ([]Reservation, error) {
	allocs, err := s.batch(reqs)
	if err != nil {
		return nil, err
	}
	out := make([]Reservation, len(allocs))
	for i, a := range allocs {
		s.nextRes++
		a.id = "res-" + strconv.FormatUint(s.nextRes, 10)
		s.reservations[a.id] = &reservation{alloc: *a, expires: expires}
		out[i] = Reservation{ID: a.id, Placement: s.placementOf(a), Expires: expires}
	}
	return out, nil
}

// Commit turns a reservation into a VM named vmID: the capacity stays
// allocated and no longer expires.
func (s *Scheduler) Commit(reservationID, vmID string) error {
	res, ok := s.reservations[reservationID]
	if !ok {
		return virtplane.Errorf(virtplane.ErrNotFound, "reservation %q", reservationID)
	}
	if vmID == "" {
		return invalid("vmID: empty")
	}
	if _, dup := s.vms[vmID]; dup {
		return virtplane.Errorf(virtplane.ErrAlreadyExists, "vm %q", vmID)
	}
	delete(s.reservations, reservationID)
	a := res.alloc
	a.id = vmID
	s.vms[vmID] = &a
	return nil
}

// Release gives a reservation's capacity back.
func (s *Scheduler) Release(reservationID string) error {
	res, ok := s.reservations[reservationID]
	if !ok {
		return virtplane.Errorf(virtplane.ErrNotFound, "reservation %q", reservationID)
	}
	delete(s.reservations, reservationID)
	s.apply(&res.alloc, -1)
	return nil
}

// ExpireReservations releases every reservation whose deadline is at or
// before now and returns their IDs, sorted. The scheduler has no clock: the
// caller decides when to call it (before each decision, or on a timer).
func (s *Scheduler) ExpireReservations(now time.Time) []string {
	var ids []string
	for id, r := range s.reservations {
		if !r.expires.IsZero() && !now.Before(r.expires) {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	for _, id := range ids {
		_ = s.Release(id)
	}
	return ids
}

// AddVM records an existing VM and its allocation. It does not check
// capacity: it records what is, even on an overcommitted or offline node.
func (s *Scheduler) AddVM(vm VM) error {
	a, err := s.allocationOf(vm, "vm")
	if err != nil {
		return err
	}
	s.apply(a, 1)
	s.vms[vm.ID] = a
	return nil
}

func (s *Scheduler) allocationOf(vm VM, field string) (*allocation, error) {
	if vm.ID == "" {
		return nil, invalid("%s.ID: empty", field)
	}
	if _, dup := s.vms[vm.ID]; dup {
		return nil, virtplane.Errorf(virtplane.ErrAlreadyExists, "%s.ID %q", field, vm.ID)
	}
	idx, ok := s.byID[vm.Node]
	if !ok {
		return nil, virtplane.Errorf(virtplane.ErrNotFound, "%s.Node %q: no such node", field, vm.Node)
	}
	if err := vm.Request.Validate(field + ".Request"); err != nil {
		return nil, err
	}
	if len(vm.Pools) != len(vm.Request.Disks) {
		return nil, invalid("%s.Pools: %d pools for %d disks", field, len(vm.Pools), len(vm.Request.Disks))
	}
	a := &allocation{id: vm.ID, node: idx, req: vm.Request, priority: vm.Priority}
	n := &s.nodes[idx]
	for i, name := range vm.Pools {
		pi := n.poolIndex(name)
		if pi < 0 {
			return nil, virtplane.Errorf(virtplane.ErrNotFound, "%s.Pools[%d] %q: no such pool on node %q", field, i, name, n.id)
		}
		a.pools = append(a.pools, int32(pi))
	}
	return a, nil
}

func (n *node) poolIndex(name string) int {
	for i := range n.pools {
		if n.pools[i].name == name {
			return i
		}
	}
	return -1
}

// RemoveVM forgets a VM and frees its allocation.
func (s *Scheduler) RemoveVM(id string) error {
	a, ok := s.vms[id]
	if !ok {
		return virtplane.Errorf(virtplane.ErrNotFound, "vm %q", id)
	}
	delete(s.vms, id)
	s.apply(a, -1)
	return nil
}

// SetNodeState changes a node's state; O(log n).
func (s *Scheduler) SetNodeState(id string, state NodeState) error {
	idx, ok := s.byID[id]
	if !ok {
		return virtplane.Errorf(virtplane.ErrNotFound, "node %q", id)
	}
	switch state {
	case NodeActive, NodeMaintenance, NodeOffline:
	default:
		return invalid("state %q: want active, maintenance or offline", state)
	}
	s.nodes[idx].state = state
	s.nodes[idx].src.State = state
	s.updateLeaf(idx)
	return nil
}

// UpsertNode adds a node or replaces its definition (capacity, ratios,
// tags, pools, order). It rebuilds the index, O(n log n): node changes are
// rare next to decisions. A replacement that drops a pool still holding
// disks fails with virtplane.ErrConflict and changes nothing.
func (s *Scheduler) UpsertNode(def Node) error {
	if err := def.validate("node"); err != nil {
		return err
	}
	defs := s.nodeDefs()
	if idx, ok := s.byID[def.ID]; ok {
		defs[idx] = def
	} else {
		defs = append(defs, def)
	}
	return s.redefine(defs)
}

// RemoveNode removes a node that holds no VM or reservation.
func (s *Scheduler) RemoveNode(id string) error {
	idx, ok := s.byID[id]
	if !ok {
		return virtplane.Errorf(virtplane.ErrNotFound, "node %q", id)
	}
	for _, a := range s.allocations() {
		if a.node == idx {
			return virtplane.Errorf(virtplane.ErrConflict, "node %q holds %q", id, a.id)
		}
	}
	defs := s.nodeDefs()
	defs = append(defs[:idx], defs[idx+1:]...)
	return s.redefine(defs)
}

func (s *Scheduler) nodeDefs() []Node {
	defs := make([]Node, len(s.nodes))
	for i := range s.nodes {
		defs[i] = s.nodes[i].src
	}
	return defs
}

// allocations lists VMs and reservations in a stable order.
func (s *Scheduler) allocations() []*allocation {
	out := make([]*allocation, 0, len(s.vms)+len(s.reservations))
	for _, a := range s.vms {
		out = append(out, a)
	}
	for _, r := range s.reservations {
		out = append(out, &r.alloc)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// redefine rebuilds from defs and re-applies every allocation, by node ID
// and pool name; it checks first, so a failure changes nothing.
func (s *Scheduler) redefine(defs []Node) error {
	where := make(map[string]int, len(defs))
	for i := range defs {
		where[defs[i].ID] = i
	}
	type moved struct {
		a     *allocation
		node  string
		pools []string
	}
	var all []moved
	for _, a := range s.allocations() {
		n := &s.nodes[a.node]
		m := moved{a: a, node: n.id}
		di, ok := where[n.id]
		if !ok {
			return virtplane.Errorf(virtplane.ErrConflict, "node %q holds %q", n.id, a.id)
		}
		for _, pi := range a.pools {
			name := n.pools[pi].name
			found := false
			for _, p := range defs[di].Pools {
				found = found || p.Name == name
			}
			if !found {
				return virtplane.Errorf(virtplane.ErrConflict, "node %q: pool %q holds disks of %q", n.id, name, a.id)
			}
			m.pools = append(m.pools, name)
		}
		all = append(all, m)
	}
	s.rebuild(defs)
	s.groups = map[string]map[int32]int{}
	for _, m := range all {
		m.a.node = s.byID[m.node]
		n := &s.nodes[m.a.node]
		for i, name := range m.pools {
			m.a.pools[i] = int32(n.poolIndex(name))
		}
		s.apply(m.a, 1)
	}
	return nil
}

// NodeStatus is a node's current allocation as the scheduler accounts it.
type NodeStatus struct {
	ID    string
	State NodeState
	// VCPUs and VCPUCap: allocated vCPUs and floor(cores × CPU ratio).
	VCPUs, VCPUCap int64
	// RAM and RAMCap: allocated bytes and floor(RAM × RAM ratio).
	RAM, RAMCap int64
	VMs         int
	// Free is the free fraction K of the most constrained of CPU and RAM.
	Free float64
	// Pools: allocated and effective capacity per pool, by name.
	Pools map[string][2]int64
}

// Status reports a node's allocation.
func (s *Scheduler) Status(id string) (NodeStatus, error) {
	idx, ok := s.byID[id]
	if !ok {
		return NodeStatus{}, virtplane.Errorf(virtplane.ErrNotFound, "node %q", id)
	}
	n := &s.nodes[idx]
	st := NodeStatus{ID: n.id, State: n.state, VCPUs: n.cpuUsed, VCPUCap: n.cpuCap, RAM: n.ramUsed, RAMCap: n.ramCap,
		VMs: n.vms, Free: n.freeFraction(), Pools: map[string][2]int64{}}
	for _, p := range n.pools {
		st.Pools[p.name] = [2]int64{p.used, p.cap}
	}
	return st, nil
}

// Nodes lists node IDs in strategy order.
func (s *Scheduler) Nodes() []string {
	out := make([]string, len(s.byRank))
	for i, idx := range s.byRank {
		out[i] = s.nodes[idx].id
	}
	return out
}

// VMCount is the number of VMs and reservations the cluster holds, Used
// amounts included.
func (s *Scheduler) VMCount() int { return s.totalVMs }
