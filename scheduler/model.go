package scheduler

import (
	"fmt"
	"math"
	"sort"

	"github.com/virtplane/virtplane"
)

// Strategy decides which of the feasible nodes a new VM goes to.
type Strategy string

const (
	// StrategyEven puts a VM on the least loaded feasible node: the one with
	// the largest free fraction K = (T−U)/T of its most constrained resource
	// (CPU or RAM, T = capacity × ratio, U = allocated). Ties go to the
	// smallest node ID, so the same input always gives the same answer.
	StrategyEven Strategy = "even"
	// StrategySequential fills nodes one after another in node order
	// (Node.Order, then node ID): a VM goes to the first node in that order
	// that can take it.
	StrategySequential Strategy = "sequential"
)

// NodeState says whether a node takes new VMs.
type NodeState string

const (
	// NodeActive nodes take new VMs. The empty state means active.
	NodeActive NodeState = "active"
	// NodeMaintenance nodes keep their VMs but take no new ones.
	NodeMaintenance NodeState = "maintenance"
	// NodeOffline nodes are down; they take nothing.
	NodeOffline NodeState = "offline"
)

// Settings are the cluster-wide placement rules.
type Settings struct {
	// Strategy is StrategyEven (the default when empty) or StrategySequential.
	Strategy Strategy
	// CPURatio is the CPU overcommit: vCPUs that may be allocated per
	// physical core. Zero means 1.0. A node may override it.
	CPURatio float64
	// RAMRatio is the RAM overcommit. Zero means 1.0. A node may override it.
	RAMRatio float64
	// DiskRatios is the disk overcommit per storage pool name (thin
	// provisioning); a pool without an entry uses 1.0. A pool may override it.
	DiskRatios map[string]float64
	// MaxVMs caps the VMs in the cluster; zero means unlimited.
	MaxVMs int
	// MaxVMsPerNode caps the VMs on each node; zero means unlimited. A node
	// may override it.
	MaxVMsPerNode int
}

// Node is one hypervisor host as the scheduler sees it.
type Node struct {
	// ID names the node; unique in the cluster.
	ID string
	// State is NodeActive (or empty), NodeMaintenance or NodeOffline.
	State NodeState
	// Order is the node's place for StrategySequential (lower first; ties by ID).
	Order int
	// Tags are free-form labels that requests can require or forbid.
	Tags []string
	// Cores is the number of physical CPU cores (or threads) offered to VMs.
	Cores int
	// RAM is the memory offered to VMs, in bytes.
	RAM int64
	// Pools are the node's storage pools.
	Pools []Pool
	// CPURatio overrides Settings.CPURatio when non-zero.
	CPURatio float64
	// RAMRatio overrides Settings.RAMRatio when non-zero.
	RAMRatio float64
	// MaxVMs overrides Settings.MaxVMsPerNode when non-zero.
	MaxVMs int
	// Used is allocation on the node that no VM in the snapshot accounts
	// for (host overhead, VMs the caller does not list). The node's total
	// allocation is Used plus the VMs placed on it.
	Used Usage
}

// Usage is an amount of allocated compute.
type Usage struct {
	VCPUs int
	RAM   int64 // bytes
	VMs   int
}

// Pool is a storage pool on a node.
type Pool struct {
	// Name names the pool; unique on its node. Settings.DiskRatios is keyed by it.
	Name string
	// Tags describe the pool (ssd, nvme, local …); disks can require them.
	Tags []string
	// Size is the pool's capacity in bytes.
	Size int64
	// Used is the space allocated outside the snapshot's VMs, in bytes.
	Used int64
	// Ratio overrides Settings.DiskRatios[Name] when non-zero.
	Ratio float64
}

// Disk is one disk a VM needs.
type Disk struct {
	// Size in bytes.
	Size int64
	// Tags the pool holding the disk must carry (all of them).
	Tags []string
}

// AntiAffinity keeps the VMs of one group on different nodes.
type AntiAffinity struct {
	// Group names the group; empty means no anti-affinity.
	Group string
	// Hard refuses a node that already hosts a member. Soft (false) only
	// prefers nodes without one and falls back to the others. Hardness
	// belongs to the request: a hard request avoids every member, soft or
	// hard; a soft request may still land beside a hard member, so give all
	// members of a group the same hardness.
	Hard bool
}

// Request is what a VM needs.
type Request struct {
	// VCPUs the VM gets; at least 1.
	VCPUs int
	// RAM in bytes; at least 1.
	RAM int64
	// Disks are placed on the chosen node's pools.
	Disks []Disk
	// RequireTags must all be on the node.
	RequireTags []string
	// ForbidTags must all be absent from the node.
	ForbidTags []string
	// AntiAffinity spreads a group of VMs over nodes.
	AntiAffinity AntiAffinity
	// Node pins the VM to one node when non-empty.
	Node string
}

// VM is a VM that exists (or is being evacuated or moved).
type VM struct {
	// ID names the VM; unique in the cluster.
	ID string
	// Node is where the VM is now.
	Node string
	// Request is what the VM needs; it is used again when the VM moves.
	Request Request
	// Pools names, for each disk of Request.Disks, the pool on Node that holds it.
	Pools []string
	// Priority orders evacuation: higher priorities are placed first.
	Priority int
}

// Cluster is a snapshot the scheduler starts from.
type Cluster struct {
	Settings Settings
	Nodes    []Node
	VMs      []VM
}

// Placement is a decision: the node and, for each disk of the request, the pool.
type Placement struct {
	Node  string
	Pools []string
}

func invalid(format string, args ...any) error {
	return virtplane.Errorf(virtplane.ErrInvalidArgument, format, args...)
}

func validRatio(r float64) bool { return r >= 0 && !math.IsInf(r, 0) && !math.IsNaN(r) }

func ratioOr(r, def float64) float64 {
	if r != 0 {
		return r
	}
	if def != 0 {
		return def
	}
	return 1
}

func (s *Settings) validate() error {
	switch s.Strategy {
	case "", StrategyEven, StrategySequential:
	default:
		return invalid("settings.Strategy %q: want %q or %q", s.Strategy, StrategyEven, StrategySequential)
	}
	if !validRatio(s.CPURatio) {
		return invalid("settings.CPURatio %v: want a finite ratio ≥ 0", s.CPURatio)
	}
	if !validRatio(s.RAMRatio) {
		return invalid("settings.RAMRatio %v: want a finite ratio ≥ 0", s.RAMRatio)
	}
	names := make([]string, 0, len(s.DiskRatios))
	for name := range s.DiskRatios {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if r := s.DiskRatios[name]; !validRatio(r) {
			return invalid("settings.DiskRatios[%q] %v: want a finite ratio ≥ 0", name, r)
		}
	}
	if s.MaxVMs < 0 {
		return invalid("settings.MaxVMs %d: want ≥ 0", s.MaxVMs)
	}
	if s.MaxVMsPerNode < 0 {
		return invalid("settings.MaxVMsPerNode %d: want ≥ 0", s.MaxVMsPerNode)
	}
	return nil
}

func (n *Node) validate(field string) error {
	if n.ID == "" {
		return invalid("%s.ID: empty", field)
	}
	switch n.State {
	case "", NodeActive, NodeMaintenance, NodeOffline:
	default:
		return invalid("%s.State %q: want active, maintenance or offline", field, n.State)
	}
	if n.Cores < 0 {
		return invalid("%s.Cores %d: want ≥ 0", field, n.Cores)
	}
	if n.RAM < 0 {
		return invalid("%s.RAM %d: want ≥ 0", field, n.RAM)
	}
	if !validRatio(n.CPURatio) {
		return invalid("%s.CPURatio %v: want a finite ratio ≥ 0", field, n.CPURatio)
	}
	if !validRatio(n.RAMRatio) {
		return invalid("%s.RAMRatio %v: want a finite ratio ≥ 0", field, n.RAMRatio)
	}
	if n.MaxVMs < 0 {
		return invalid("%s.MaxVMs %d: want ≥ 0", field, n.MaxVMs)
	}
	if n.Used.VCPUs < 0 || n.Used.RAM < 0 || n.Used.VMs < 0 {
		return invalid("%s.Used %+v: want no negative amount", field, n.Used)
	}
	for i, t := range n.Tags {
		if t == "" {
			return invalid("%s.Tags[%d]: empty tag", field, i)
		}
	}
	seen := make(map[string]bool, len(n.Pools))
	for i, p := range n.Pools {
		pf := fmt.Sprintf("%s.Pools[%d]", field, i)
		if p.Name == "" {
			return invalid("%s.Name: empty", pf)
		}
		if seen[p.Name] {
			return invalid("%s.Name %q: duplicate pool", pf, p.Name)
		}
		seen[p.Name] = true
		if p.Size < 0 || p.Used < 0 {
			return invalid("%s: Size %d, Used %d: want ≥ 0", pf, p.Size, p.Used)
		}
		if !validRatio(p.Ratio) {
			return invalid("%s.Ratio %v: want a finite ratio ≥ 0", pf, p.Ratio)
		}
		for j, t := range p.Tags {
			if t == "" {
				return invalid("%s.Tags[%d]: empty tag", pf, j)
			}
		}
	}
	return nil
}

// Validate reports the first malformed field of r as an error wrapping
// virtplane.ErrInvalidArgument. field prefixes the field names ("request").
func (r *Request) Validate(field string) error {
	if r.VCPUs < 1 {
		return invalid("%s.VCPUs %d: want ≥ 1", field, r.VCPUs)
	}
	if r.RAM < 1 {
		return invalid("%s.RAM %d: want ≥ 1 byte", field, r.RAM)
	}
	for i, d := range r.Disks {
		if d.Size < 1 {
			return invalid("%s.Disks[%d].Size %d: want ≥ 1 byte", field, i, d.Size)
		}
		for j, t := range d.Tags {
			if t == "" {
				return invalid("%s.Disks[%d].Tags[%d]: empty tag", field, i, j)
			}
		}
	}
	for i, t := range r.RequireTags {
		if t == "" {
			return invalid("%s.RequireTags[%d]: empty tag", field, i)
		}
	}
	for i, t := range r.ForbidTags {
		if t == "" {
			return invalid("%s.ForbidTags[%d]: empty tag", field, i)
		}
		for _, req := range r.RequireTags {
			if req == t {
				return invalid("%s.ForbidTags[%d] %q: also required", field, i, t)
			}
		}
	}
	if r.AntiAffinity.Hard && r.AntiAffinity.Group == "" {
		return invalid("%s.AntiAffinity.Group: empty for a hard rule", field)
	}
	return nil
}
