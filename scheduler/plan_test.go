package scheduler

import (
	"fmt"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/virtplane/virtplane"
	"pgregory.net/rapid"
)

func vm(id, node string, vcpus int, ramGiB float64, group string, hard bool, prio int) VM {
	return VM{ID: id, Node: node, Priority: prio, Request: Request{VCPUs: vcpus, RAM: int64(ramGiB * gib), AntiAffinity: AntiAffinity{Group: group, Hard: hard}}}
}

// statusSnapshot records every node's allocation, to prove a plan changed nothing.
func statusSnapshot(t require.TestingT, s *Scheduler) []NodeStatus {
	var out []NodeStatus
	for _, id := range s.Nodes() {
		st, err := s.Status(id)
		require.NoError(t, err)
		out = append(out, st)
	}
	return out
}

func TestPlanEvacuation(t *testing.T) {
	c := Cluster{
		Nodes: []Node{mkNode("failed", 16, 32), mkNode("b", 4, 8), mkNode("c", 4, 8), {ID: "d", State: NodeMaintenance, Cores: 64, RAM: 64 * gib}},
		VMs: []VM{
			vm("db-1", "failed", 2, 4, "db", true, 10),
			vm("db-2", "c", 1, 1, "db", true, 10),
			vm("web-1", "failed", 2, 2, "", false, 5),
			vm("batch-1", "failed", 4, 8, "", false, 0),
			{ID: "pinned", Node: "failed", Request: Request{VCPUs: 1, RAM: gib, Node: "failed"}},
		},
	}
	s, err := New(c)
	require.NoError(t, err)
	before := statusSnapshot(t, s)
	plan, err := s.PlanEvacuation("failed", nil)
	require.NoError(t, err)
	assert.Equal(t, before, statusSnapshot(t, s), "planning changes nothing")

	assert.Equal(t, []Move{
		{VM: "db-1", From: "failed", To: "b"}, // db-2 is on c: hard anti-affinity
		{VM: "web-1", From: "failed", To: "c"},
	}, plan.Moves)
	require.Len(t, plan.Unplaced, 2)
	assert.Equal(t, "batch-1", plan.Unplaced[0].VM)
	assert.ErrorIs(t, plan.Unplaced[0].Err, virtplane.ErrResourceExhausted)
	assert.Contains(t, plan.Unplaced[0].Err.Error(), "d: in maintenance")
	assert.Equal(t, "pinned", plan.Unplaced[1].VM)
	assert.ErrorIs(t, plan.Unplaced[1].Err, virtplane.ErrConflict)

	t.Run("VMs passed by the caller", func(t *testing.T) {
		plan, err := s.PlanEvacuation("failed", []VM{vm("web-1", "failed", 2, 2, "", false, 5), vm("unknown", "", 1, 1, "", false, 99)})
		require.NoError(t, err)
		assert.Equal(t, []Move{{VM: "unknown", From: "failed", To: "b"}, {VM: "web-1", From: "failed", To: "b"}}, plan.Moves, "b and c tie at K=0.75; b has the smaller ID")
		assert.Empty(t, plan.Unplaced)
	})
	t.Run("bad input", func(t *testing.T) {
		_, err := s.PlanEvacuation("nope", nil)
		assert.ErrorIs(t, err, virtplane.ErrNotFound)
		_, err = s.PlanEvacuation("failed", []VM{vm("db-2", "", 1, 1, "", false, 0)})
		assert.ErrorIs(t, err, virtplane.ErrInvalidArgument)
		assert.Contains(t, err.Error(), `vm "db-2" is on "c"`)
		_, err = s.PlanEvacuation("failed", []VM{{ID: "x", Request: Request{VCPUs: 1}}})
		assert.ErrorIs(t, err, virtplane.ErrInvalidArgument)
		assert.Contains(t, err.Error(), "vms[0].Request.RAM")
		assert.Equal(t, before, statusSnapshot(t, s))
	})
}

func TestPlanRebalance(t *testing.T) {
	var vms []VM
	for i := range 8 {
		vms = append(vms, vm(fmt.Sprintf("vm-%d", i), "hot", 2, 4, "", false, 0))
	}
	vms = append(vms, VM{ID: "pinned", Node: "hot", Request: Request{VCPUs: 2, RAM: 4 * gib, Node: "hot"}})
	s, err := New(Cluster{Nodes: []Node{mkNode("hot", 20, 40), mkNode("cold-1", 20, 40), mkNode("cold-2", 20, 40)}, VMs: vms})
	require.NoError(t, err)
	before := statusSnapshot(t, s)
	assert.InDelta(t, 0.9, s.Imbalance(), 1e-9)

	plan, err := s.PlanRebalance(RebalanceOptions{Threshold: 0.15})
	require.NoError(t, err)
	assert.Equal(t, before, statusSnapshot(t, s), "planning changes nothing")
	assert.True(t, plan.Reached)
	assert.InDelta(t, 0.9, plan.Before, 1e-9)
	assert.LessOrEqual(t, plan.After, 0.15)
	// 18 vCPUs on hot, 0 elsewhere: the fewest moves that reach 0.15 is 6
	// (6/6/6 → imbalance 0); 5 moves leave 8/6/4 → 0.2.
	assert.Len(t, plan.Moves, 6)
	for _, m := range plan.Moves {
		assert.NotEqual(t, "pinned", m.VM)
		assert.Equal(t, "hot", m.From)
	}

	t.Run("max moves", func(t *testing.T) {
		plan, err := s.PlanRebalance(RebalanceOptions{Threshold: 0.15, MaxMoves: 2})
		require.NoError(t, err)
		assert.Len(t, plan.Moves, 2)
		assert.False(t, plan.Reached)
	})
	t.Run("already balanced", func(t *testing.T) {
		plan, err := s.PlanRebalance(RebalanceOptions{Threshold: 0.95})
		require.NoError(t, err)
		assert.Empty(t, plan.Moves)
		assert.True(t, plan.Reached)
	})
	t.Run("bad threshold", func(t *testing.T) {
		_, err := s.PlanRebalance(RebalanceOptions{Threshold: 2})
		assert.ErrorIs(t, err, virtplane.ErrInvalidArgument)
		assert.Contains(t, err.Error(), "opts.Threshold")
	})
	t.Run("hard anti-affinity blocks moves", func(t *testing.T) {
		s, err := New(Cluster{Nodes: []Node{mkNode("a", 8, 8), mkNode("b", 8, 8)}, VMs: []VM{
			vm("g-1", "a", 4, 1, "g", true, 0), vm("g-2", "b", 1, 1, "g", true, 0), vm("x", "a", 2, 1, "", false, 0)}})
		require.NoError(t, err)
		plan, err := s.PlanRebalance(RebalanceOptions{Threshold: 0})
		require.NoError(t, err)
		// g-1 may not join g-2; x can move (a 6/8 → 4/8, b 1/8 → 3/8).
		assert.Equal(t, []Move{{VM: "x", From: "a", To: "b"}}, plan.Moves)
		assert.False(t, plan.Reached)
	})
}

// applyMoves rebuilds the cluster with the VMs moved, so the rules are
// checked by a fresh scheduler, not the one that planned.
func applyMoves(c Cluster, moves []Move, drop map[string]bool) Cluster {
	out := c
	out.VMs = nil
	to := map[string]Move{}
	for _, m := range moves {
		to[m.VM] = m
	}
	for _, v := range c.VMs {
		if m, ok := to[v.ID]; ok {
			v.Node, v.Pools = m.To, m.Pools
		} else if drop[v.ID] {
			continue
		}
		out.VMs = append(out.VMs, v)
	}
	return out
}

// genPopulated is a random cluster with VMs placed by the scheduler itself.
func genPopulated(t *rapid.T) Cluster {
	c := genCluster(t)
	c.Settings.MaxVMs = 0
	s, err := New(c)
	require.NoError(t, err)
	for i := range rapid.IntRange(0, 40).Draw(t, "vms") {
		r := genRequest(t, c.Nodes)
		res, err := s.Reserve(r, zeroTime())
		if err != nil {
			continue
		}
		c.VMs = append(c.VMs, VM{ID: fmt.Sprintf("vm-%d", i), Node: res.Placement.Node, Request: r, Pools: res.Placement.Pools,
			Priority: rapid.IntRange(0, 3).Draw(t, "priority")})
	}
	return c
}

func checkRules(t *rapid.T, c Cluster) {
	s, err := New(c)
	require.NoError(t, err)
	for _, st := range statusSnapshot(t, s) {
		require.LessOrEqual(t, st.VCPUs, st.VCPUCap, st.ID)
		require.LessOrEqual(t, st.RAM, st.RAMCap, st.ID)
		for name, p := range st.Pools {
			require.LessOrEqual(t, p[0], p[1], "%s/%s", st.ID, name)
		}
	}
	hosts := map[string]map[string]int{}
	for _, v := range c.VMs {
		if g := v.Request.AntiAffinity.Group; g != "" {
			if hosts[g] == nil {
				hosts[g] = map[string]int{}
			}
			hosts[g][v.Node]++
		}
	}
	for _, v := range c.VMs {
		if aa := v.Request.AntiAffinity; aa.Hard {
			require.Equal(t, 1, hosts[aa.Group][v.Node], "hard group %s doubled on %s", aa.Group, v.Node)
		}
		if v.Request.Node != "" {
			require.Equal(t, v.Request.Node, v.Node)
		}
	}
}

func TestPropertyEvacuation(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		c := genPopulated(t)
		s, err := New(c)
		require.NoError(t, err)
		source := rapid.SampledFrom(c.Nodes).Draw(t, "source").ID
		before := statusSnapshot(t, s)
		plan, err := s.PlanEvacuation(source, nil)
		require.NoError(t, err)
		require.Equal(t, before, statusSnapshot(t, s))

		var onSource []string
		for _, v := range c.VMs {
			if v.Node == source {
				onSource = append(onSource, v.ID)
			}
		}
		var got []string
		for _, m := range plan.Moves {
			require.NotEqual(t, source, m.To)
			got = append(got, m.VM)
		}
		for _, u := range plan.Unplaced {
			got = append(got, u.VM)
			require.Error(t, u.Err)
		}
		slices.Sort(onSource)
		slices.Sort(got)
		require.Equal(t, onSource, got, "every VM of the source is moved or reported")

		// The moved VMs land only on active nodes, and the result keeps every
		// rule once the source (failed) holds nothing that moved.
		for _, m := range plan.Moves {
			st, _ := s.Status(m.To)
			require.Equal(t, NodeActive, st.State)
		}
		unplaced := map[string]bool{}
		for _, u := range plan.Unplaced {
			unplaced[u.VM] = true
		}
		checkRules(t, applyMoves(c, plan.Moves, unplaced))
	})
}

func TestPropertyRebalance(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		c := genPopulated(t)
		s, err := New(c)
		require.NoError(t, err)
		threshold := rapid.Float64Range(0, 0.5).Draw(t, "threshold")
		before := statusSnapshot(t, s)
		plan, err := s.PlanRebalance(RebalanceOptions{Threshold: threshold})
		require.NoError(t, err)
		require.Equal(t, before, statusSnapshot(t, s))
		require.InDelta(t, s.Imbalance(), plan.Before, 1e-12)

		after := applyMoves(c, plan.Moves, nil)
		checkRules(t, after)
		s2, err := New(after)
		require.NoError(t, err)
		require.InDelta(t, plan.After, s2.Imbalance(), 1e-12)
		require.Equal(t, plan.After <= threshold, plan.Reached)
		if len(plan.Moves) > 0 {
			require.Less(t, plan.After, plan.Before+1e-12)
		}
		seen := map[string]bool{}
		for _, m := range plan.Moves {
			require.False(t, seen[m.VM], "vm %s moved twice", m.VM)
			seen[m.VM] = true
			st, _ := s.Status(m.To)
			require.Equal(t, NodeActive, st.State)
		}
	})
}
