package scheduler

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/virtplane/virtplane"
	"pgregory.net/rapid"
)

const mib = 1 << 20

func nodeTagPool() []string { return []string{"a", "b", "c"} }
func diskTagPool() []string { return []string{"ssd", "hdd", "nvme"} }

func genTags(t *rapid.T, label string, from []string) []string {
	var out []string
	for _, tag := range from {
		if rapid.Bool().Draw(t, label+"-"+tag) {
			out = append(out, tag)
		}
	}
	return out
}

func genCluster(t *rapid.T) Cluster {
	c := Cluster{Settings: Settings{
		Strategy:      rapid.SampledFrom([]Strategy{"", StrategyEven, StrategySequential}).Draw(t, "strategy"),
		CPURatio:      rapid.SampledFrom([]float64{0, 1, 1.5, 4}).Draw(t, "cpuRatio"),
		RAMRatio:      rapid.SampledFrom([]float64{0, 1, 1.25}).Draw(t, "ramRatio"),
		DiskRatios:    map[string]float64{"p0": rapid.SampledFrom([]float64{0, 1, 2}).Draw(t, "diskRatio")},
		MaxVMs:        rapid.SampledFrom([]int{0, 0, 10, 30}).Draw(t, "maxVMs"),
		MaxVMsPerNode: rapid.SampledFrom([]int{0, 0, 3}).Draw(t, "maxVMsPerNode"),
	}}
	n := rapid.IntRange(1, 24).Draw(t, "nodes")
	for i := range n {
		nd := Node{
			ID:       fmt.Sprintf("node-%02d", rapid.IntRange(0, 99).Filter(func(int) bool { return true }).Draw(t, "id")),
			State:    rapid.SampledFrom([]NodeState{"", NodeActive, NodeActive, NodeActive, NodeMaintenance, NodeOffline}).Draw(t, "state"),
			Order:    rapid.IntRange(0, 3).Draw(t, "order"),
			Tags:     genTags(t, "tag", nodeTagPool()),
			Cores:    rapid.IntRange(0, 16).Draw(t, "cores"),
			RAM:      int64(rapid.IntRange(0, 64).Draw(t, "ram512")) * 512 * mib,
			CPURatio: rapid.SampledFrom([]float64{0, 0, 2}).Draw(t, "nodeCPURatio"),
			RAMRatio: rapid.SampledFrom([]float64{0, 0, 1.5}).Draw(t, "nodeRAMRatio"),
			MaxVMs:   rapid.SampledFrom([]int{0, 0, 2}).Draw(t, "nodeMaxVMs"),
		}
		nd.ID = fmt.Sprintf("node-%03d", i*7%101)      // unique, not sorted by index
		pools := rapid.IntRange(0, 6).Draw(t, "pools") // up to 8 tag sets: more than maxPoolSets
		for p := range pools {
			nd.Pools = append(nd.Pools, Pool{
				Name:  fmt.Sprintf("p%d", p),
				Tags:  genTags(t, "ptag", diskTagPool()),
				Size:  int64(rapid.IntRange(0, 100).Draw(t, "poolGiB")) * gib,
				Ratio: rapid.SampledFrom([]float64{0, 0, 1.5}).Draw(t, "poolRatio"),
			})
		}
		c.Nodes = append(c.Nodes, nd)
	}
	return c
}

func genRequest(t *rapid.T, nodes []Node) Request {
	r := Request{
		VCPUs:       rapid.IntRange(1, 8).Draw(t, "vcpus"),
		RAM:         int64(rapid.IntRange(1, 16).Draw(t, "ram512")) * 512 * mib,
		RequireTags: genTags(t, "req", []string{"a", "b", "zz"}[:rapid.IntRange(0, 3).Draw(t, "reqN")]),
	}
	for _, tag := range genTags(t, "forbid", nodeTagPool()) {
		if !slices.Contains(r.RequireTags, tag) {
			r.ForbidTags = append(r.ForbidTags, tag)
		}
	}
	for range rapid.IntRange(0, 2).Draw(t, "disks") {
		r.Disks = append(r.Disks, Disk{Size: int64(rapid.IntRange(1, 60).Draw(t, "diskGiB")) * gib, Tags: genTags(t, "dtag", diskTagPool())})
	}
	// Groups keep one hardness, as real ones do: a soft member may share a
	// node with a hard one, which the rule checks would flag.
	if g := rapid.SampledFrom([]string{"", "", "hard-1", "hard-2", "soft-1"}).Draw(t, "group"); g != "" {
		r.AntiAffinity = AntiAffinity{Group: g, Hard: strings.HasPrefix(g, "hard")}
	}
	if rapid.IntRange(0, 9).Draw(t, "pin") == 0 {
		r.Node = rapid.SampledFrom(nodes).Draw(t, "pinned").ID
	}
	return r
}

// model is the test's own record of what it placed, to check the rules
// without trusting the scheduler's bookkeeping.
type model struct {
	defs   map[string]Node
	state  map[string]NodeState
	groups map[string]map[string]int // group → node → members
	res    map[string]Request        // reservation → request
	resAt  map[string]string         // reservation → node
}

func TestPropertyPlacement(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		c := genCluster(t)
		s, err := New(c)
		require.NoError(t, err)
		m := model{defs: map[string]Node{}, state: map[string]NodeState{}, groups: map[string]map[string]int{}, res: map[string]Request{}, resAt: map[string]string{}}
		for _, n := range c.Nodes {
			m.defs[n.ID] = n
			st := n.State
			if st == "" {
				st = NodeActive
			}
			m.state[n.ID] = st
		}
		t.Repeat(map[string]func(*rapid.T){
			"place": func(t *rapid.T) {
				r := genRequest(t, c.Nodes)
				checkPlace(t, s, &m, r)
			},
			"release": func(t *rapid.T) {
				if len(m.res) == 0 {
					t.Skip("nothing reserved")
				}
				ids := make([]string, 0, len(m.res))
				for id := range m.res {
					ids = append(ids, id)
				}
				slices.Sort(ids)
				id := rapid.SampledFrom(ids).Draw(t, "res")
				require.NoError(t, s.Release(id))
				if g := m.res[id].AntiAffinity.Group; g != "" {
					m.groups[g][m.resAt[id]]--
				}
				delete(m.res, id)
				delete(m.resAt, id)
			},
			"state": func(t *rapid.T) {
				n := rapid.SampledFrom(c.Nodes).Draw(t, "node")
				st := rapid.SampledFrom([]NodeState{NodeActive, NodeMaintenance, NodeOffline}).Draw(t, "newState")
				require.NoError(t, s.SetNodeState(n.ID, st))
				m.state[n.ID] = st
			},
			"grow": func(t *rapid.T) {
				// Redefine a node with more capacity and other tags: the
				// index is rebuilt and allocations carried over.
				id := rapid.SampledFrom(c.Nodes).Draw(t, "node").ID
				def := m.defs[id]
				def.Cores += rapid.IntRange(0, 8).Draw(t, "moreCores")
				def.RAM += int64(rapid.IntRange(0, 8).Draw(t, "moreRAM")) * gib
				def.Tags = genTags(t, "newTag", nodeTagPool())
				def.State = m.state[id]
				require.NoError(t, s.UpsertNode(def))
				m.defs[id] = def
			},
			"commit": func(t *rapid.T) {
				if len(m.res) == 0 {
					t.Skip("nothing reserved")
				}
				ids := make([]string, 0, len(m.res))
				for id := range m.res {
					ids = append(ids, id)
				}
				slices.Sort(ids)
				id := rapid.SampledFrom(ids).Draw(t, "res")
				before := s.VMCount()
				require.NoError(t, s.Commit(id, "vm-"+id))
				require.Equal(t, before, s.VMCount())
				// A committed VM is gone from the model's releasable set but
				// keeps its capacity and group membership.
				delete(m.res, id)
				delete(m.resAt, id)
			},
			"batch": func(t *rapid.T) {
				// PlaceBatch answers what reserving one by one would, and
				// changes nothing.
				reqs := make([]Request, rapid.IntRange(1, 4).Draw(t, "batch"))
				for i := range reqs {
					reqs[i] = genRequest(t, c.Nodes)
				}
				got, err := s.PlaceBatch(reqs)
				var want []Placement
				var ids []string
				var wantErr error
				for _, r := range reqs {
					res, err := s.Reserve(r, time.Time{})
					if err != nil {
						wantErr = err
						break
					}
					want = append(want, res.Placement)
					ids = append(ids, res.ID)
				}
				for _, id := range ids {
					require.NoError(t, s.Release(id))
				}
				if wantErr != nil {
					require.Error(t, err)
					return
				}
				require.NoError(t, err)
				require.Equal(t, want, got)
			},
			"": func(t *rapid.T) { checkCapacity(t, s, &m) },
		})
	})
}

func checkCapacity(t *rapid.T, s *Scheduler, m *model) {
	total := 0
	for id, def := range m.defs {
		st, err := s.Status(id)
		require.NoError(t, err)
		require.LessOrEqual(t, st.VCPUs, st.VCPUCap, "node %s CPU", id)
		require.LessOrEqual(t, st.RAM, st.RAMCap, "node %s RAM", id)
		for name, p := range st.Pools {
			require.LessOrEqual(t, p[0], p[1], "node %s pool %s", id, name)
		}
		if limit := def.MaxVMs; limit > 0 {
			require.LessOrEqual(t, st.VMs, limit, "node %s VMs", id)
		} else if limit := s.settings.MaxVMsPerNode; limit > 0 {
			require.LessOrEqual(t, st.VMs, limit, "node %s VMs", id)
		}
		total += st.VMs
	}
	require.Equal(t, total, s.VMCount())
	if s.settings.MaxVMs > 0 {
		require.LessOrEqual(t, total, s.settings.MaxVMs)
	}
}

// pinnedFits asks the reference whether r fits on node id alone.
func pinnedFits(s *Scheduler, r Request, id string) (Placement, bool) {
	r.Node = id
	p, err := s.PlaceNaive(r)
	return p, err == nil
}

func checkPlace(t *rapid.T, s *Scheduler, m *model, r Request) {
	fast, fastErr := s.Place(r)
	naive, naiveErr := s.PlaceNaive(r)
	require.Equal(t, naive, fast, "index and reference disagree")
	require.Equal(t, naiveErr == nil, fastErr == nil)
	if fastErr != nil {
		require.True(t, errors.Is(fastErr, virtplane.ErrResourceExhausted), "%v", fastErr)
		require.Equal(t, naiveErr.Error(), fastErr.Error())
		// Nothing fits: no node may accept the request when pinned to it.
		if r.Node == "" && !s.clusterFull() {
			for id := range m.defs {
				_, ok := pinnedFits(s, r, id)
				require.False(t, ok || (r.AntiAffinity.Group != "" && !r.AntiAffinity.Hard && softFits(s, r, id)), "node %s fits but placement failed", id)
			}
		}
		return
	}
	chosen := fast.Node
	def := m.defs[chosen]
	require.Equal(t, NodeActive, m.state[chosen], "chosen node %s is not active", chosen)
	if r.Node != "" {
		require.Equal(t, r.Node, chosen)
	}
	for _, tag := range r.RequireTags {
		require.Contains(t, def.Tags, tag)
	}
	for _, tag := range r.ForbidTags {
		require.NotContains(t, def.Tags, tag)
	}
	if r.AntiAffinity.Hard {
		require.Zero(t, m.groups[r.AntiAffinity.Group][chosen], "hard anti-affinity broken on %s", chosen)
	}
	st, _ := s.Status(chosen)
	require.LessOrEqual(t, st.VCPUs+int64(r.VCPUs), st.VCPUCap)
	require.LessOrEqual(t, st.RAM+r.RAM, st.RAMCap)
	require.Len(t, fast.Pools, len(r.Disks))
	for i, name := range fast.Pools {
		idx := slices.IndexFunc(def.Pools, func(p Pool) bool { return p.Name == name })
		require.GreaterOrEqual(t, idx, 0)
		for _, tag := range r.Disks[i].Tags {
			require.Contains(t, def.Pools[idx].Tags, tag)
		}
	}
	// Strategy order among the nodes that would take the request.
	if r.Node == "" && (r.AntiAffinity.Group == "" || r.AntiAffinity.Hard) {
		for id := range m.defs {
			if id == chosen {
				continue
			}
			if _, ok := pinnedFits(s, r, id); !ok {
				continue
			}
			other, _ := s.Status(id)
			if s.even {
				require.True(t, other.Free < st.Free || (other.Free == st.Free && id > chosen),
					"even chose %s (K=%v) over feasible %s (K=%v)", chosen, st.Free, id, other.Free)
			} else {
				od := m.defs[id]
				require.True(t, od.Order > def.Order || (od.Order == def.Order && id > chosen),
					"sequential chose %s (order %d) over feasible %s (order %d)", chosen, def.Order, id, od.Order)
			}
		}
	}
	res, err := s.Reserve(r, time.Time{})
	require.NoError(t, err)
	require.Equal(t, fast, res.Placement)
	m.res[res.ID] = r
	m.resAt[res.ID] = chosen
	if g := r.AntiAffinity.Group; g != "" {
		if m.groups[g] == nil {
			m.groups[g] = map[string]int{}
		}
		m.groups[g][chosen]++
	}
}

// softFits: with soft anti-affinity the pinned check ignores the group, so
// a node that fits only when the group is ignored still counts.
func softFits(s *Scheduler, r Request, id string) bool {
	r.AntiAffinity = AntiAffinity{}
	_, ok := pinnedFits(s, r, id)
	return ok
}

func zeroTime() time.Time { return time.Time{} }
