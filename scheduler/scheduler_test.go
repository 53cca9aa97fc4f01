package scheduler

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/virtplane/virtplane"
)

func mkNode(id string, cores int, ramGiB int64) Node {
	return Node{ID: id, Cores: cores, RAM: ramGiB * gib}
}

func req(vcpus int, ramGiB float64) Request {
	return Request{VCPUs: vcpus, RAM: int64(ramGiB * gib)}
}

// placeBoth runs the index and the reference and insists they agree.
func placeBoth(t *testing.T, s *Scheduler, r Request) (Placement, error) {
	t.Helper()
	fast, fastErr := s.Place(r)
	naive, naiveErr := s.PlaceNaive(r)
	require.Equal(t, naive, fast)
	if naiveErr != nil || fastErr != nil {
		require.Error(t, fastErr)
		require.Error(t, naiveErr)
		require.Equal(t, naiveErr.Error(), fastErr.Error())
	}
	return fast, fastErr
}

func TestPlaceSettings(t *testing.T) {
	withUsed := func(n Node, vcpus int, ramGiB float64, vms int) Node {
		n.Used = Usage{VCPUs: vcpus, RAM: int64(ramGiB * gib), VMs: vms}
		return n
	}
	tests := []struct {
		name    string
		cluster Cluster
		req     Request
		want    string // node, or "" for no node
		pools   []string
	}{
		{
			name:    "even picks the largest free fraction",
			cluster: Cluster{Nodes: []Node{withUsed(mkNode("n1", 8, 16), 4, 4, 1), withUsed(mkNode("n2", 8, 16), 2, 2, 1), withUsed(mkNode("n3", 8, 16), 2, 12, 1)}},
			req:     req(1, 1), want: "n2",
		},
		{
			name:    "even ties go to the smallest ID",
			cluster: Cluster{Nodes: []Node{mkNode("n2", 8, 16), mkNode("n1", 8, 16), mkNode("n3", 8, 16)}},
			req:     req(1, 1), want: "n1",
		},
		{
			name:    "even ranks by the most constrained resource",
			cluster: Cluster{Nodes: []Node{withUsed(mkNode("cpu-busy", 8, 16), 7, 0, 0), withUsed(mkNode("ram-half", 8, 16), 0, 8, 0)}},
			req:     req(1, 1), want: "ram-half",
		},
		{
			name: "sequential fills in node order",
			cluster: Cluster{Settings: Settings{Strategy: StrategySequential}, Nodes: []Node{
				{ID: "a", Order: 2, Cores: 8, RAM: 16 * gib}, {ID: "b", Order: 1, Cores: 8, RAM: 16 * gib, Used: Usage{VCPUs: 7}}, {ID: "c", Order: 1, Cores: 8, RAM: 16 * gib}}},
			req: req(1, 1), want: "b",
		},
		{
			name: "sequential skips a full node",
			cluster: Cluster{Settings: Settings{Strategy: StrategySequential}, Nodes: []Node{
				{ID: "a", Order: 1, Cores: 8, RAM: 16 * gib, Used: Usage{VCPUs: 8}}, {ID: "b", Order: 2, Cores: 8, RAM: 16 * gib}}},
			req: req(1, 1), want: "b",
		},
		{
			name:    "CPU overcommit from the cluster",
			cluster: Cluster{Settings: Settings{CPURatio: 4}, Nodes: []Node{withUsed(mkNode("n1", 4, 64), 14, 0, 0)}},
			req:     req(2, 1), want: "n1",
		},
		{
			name:    "CPU overcommit exhausted",
			cluster: Cluster{Settings: Settings{CPURatio: 4}, Nodes: []Node{withUsed(mkNode("n1", 4, 64), 15, 0, 0)}},
			req:     req(2, 1), want: "",
		},
		{
			name: "node ratio overrides the cluster's",
			cluster: Cluster{Settings: Settings{CPURatio: 1}, Nodes: []Node{
				{ID: "n1", Cores: 4, RAM: 64 * gib, CPURatio: 2, Used: Usage{VCPUs: 6}}}},
			req: req(2, 1), want: "n1",
		},
		{
			name:    "RAM overcommit",
			cluster: Cluster{Settings: Settings{RAMRatio: 1.5}, Nodes: []Node{withUsed(mkNode("n1", 64, 16), 0, 20, 0)}},
			req:     req(1, 4), want: "n1",
		},
		{
			name: "node RAM ratio overrides",
			cluster: Cluster{Settings: Settings{RAMRatio: 1.5}, Nodes: []Node{
				{ID: "n1", Cores: 64, RAM: 16 * gib, RAMRatio: 1, Used: Usage{RAM: 14 * gib}}}},
			req: req(1, 4), want: "",
		},
		{
			name:    "maintenance and offline are never chosen",
			cluster: Cluster{Nodes: []Node{{ID: "a", State: NodeMaintenance, Cores: 64, RAM: 64 * gib}, {ID: "b", State: NodeOffline, Cores: 64, RAM: 64 * gib}, mkNode("c", 2, 2)}},
			req:     req(1, 1), want: "c",
		},
		{
			name:    "max VMs per node from the cluster",
			cluster: Cluster{Settings: Settings{MaxVMsPerNode: 2}, Nodes: []Node{withUsed(mkNode("a", 64, 64), 0, 0, 2), withUsed(mkNode("b", 8, 8), 6, 6, 1)}},
			req:     req(1, 1), want: "b",
		},
		{
			name: "max VMs per node overridden",
			cluster: Cluster{Settings: Settings{MaxVMsPerNode: 2}, Nodes: []Node{
				{ID: "a", Cores: 64, RAM: 64 * gib, MaxVMs: 5, Used: Usage{VMs: 2}}, withUsed(mkNode("b", 8, 8), 6, 6, 1)}},
			req: req(1, 1), want: "a",
		},
		{
			name:    "max VMs per cluster",
			cluster: Cluster{Settings: Settings{MaxVMs: 3}, Nodes: []Node{withUsed(mkNode("a", 64, 64), 0, 0, 2), withUsed(mkNode("b", 64, 64), 0, 0, 1)}},
			req:     req(1, 1), want: "",
		},
		{
			name:    "required and forbidden tags",
			cluster: Cluster{Nodes: []Node{{ID: "a", Tags: []string{"gpu"}, Cores: 64, RAM: 64 * gib}, {ID: "b", Tags: []string{"gpu", "old"}, Cores: 64, RAM: 64 * gib}, mkNode("c", 64, 64)}},
			req:     Request{VCPUs: 1, RAM: gib, RequireTags: []string{"gpu"}, ForbidTags: []string{"old"}}, want: "a",
		},
		{
			name:    "unknown required tag",
			cluster: Cluster{Nodes: []Node{mkNode("a", 64, 64)}},
			req:     Request{VCPUs: 1, RAM: gib, RequireTags: []string{"nope"}}, want: "",
		},
		{
			name: "disk tags choose the pool",
			cluster: Cluster{Nodes: []Node{{ID: "a", Cores: 8, RAM: 8 * gib, Pools: []Pool{
				{Name: "hdd", Tags: []string{"hdd"}, Size: 1000 * gib}, {Name: "nvme", Tags: []string{"ssd", "nvme"}, Size: 100 * gib}}}}},
			req:  Request{VCPUs: 1, RAM: gib, Disks: []Disk{{Size: 50 * gib, Tags: []string{"ssd"}}, {Size: 500 * gib}}},
			want: "a", pools: []string{"nvme", "hdd"},
		},
		{
			name: "disks share a pool",
			cluster: Cluster{Nodes: []Node{{ID: "a", Cores: 8, RAM: 8 * gib, Pools: []Pool{{Name: "p", Size: 100 * gib}}},
				{ID: "b", Cores: 8, RAM: 8 * gib, Pools: []Pool{{Name: "p", Size: 50 * gib}, {Name: "q", Size: 50 * gib}}}}},
			req:  Request{VCPUs: 1, RAM: gib, Disks: []Disk{{Size: 40 * gib}, {Size: 40 * gib}}},
			want: "a", pools: []string{"p", "p"},
		},
		{
			name:    "two disks do not fit one pool",
			cluster: Cluster{Nodes: []Node{{ID: "a", Cores: 8, RAM: 8 * gib, Pools: []Pool{{Name: "p", Size: 70 * gib}}}}},
			req:     Request{VCPUs: 1, RAM: gib, Disks: []Disk{{Size: 40 * gib}, {Size: 40 * gib}}},
			want:    "",
		},
		{
			name: "disk overcommit per storage",
			cluster: Cluster{Settings: Settings{DiskRatios: map[string]float64{"thin": 3}}, Nodes: []Node{{ID: "a", Cores: 8, RAM: 8 * gib,
				Pools: []Pool{{Name: "thin", Size: 100 * gib, Used: 250 * gib}}}}},
			req:  Request{VCPUs: 1, RAM: gib, Disks: []Disk{{Size: 40 * gib}}},
			want: "a", pools: []string{"thin"},
		},
		{
			name: "pool ratio overrides",
			cluster: Cluster{Settings: Settings{DiskRatios: map[string]float64{"thin": 3}}, Nodes: []Node{{ID: "a", Cores: 8, RAM: 8 * gib,
				Pools: []Pool{{Name: "thin", Size: 100 * gib, Used: 250 * gib, Ratio: 1}}}}},
			req:  Request{VCPUs: 1, RAM: gib, Disks: []Disk{{Size: 40 * gib}}},
			want: "",
		},
		{
			name:    "pinned node",
			cluster: Cluster{Nodes: []Node{mkNode("a", 64, 64), mkNode("b", 2, 2)}},
			req:     Request{VCPUs: 1, RAM: gib, Node: "b"}, want: "b",
		},
		{
			name:    "pinned node that is full",
			cluster: Cluster{Nodes: []Node{mkNode("a", 64, 64), mkNode("b", 1, 1)}},
			req:     Request{VCPUs: 2, RAM: gib, Node: "b"}, want: "",
		},
		{
			name: "hard anti-affinity",
			cluster: Cluster{Nodes: []Node{mkNode("a", 64, 64), mkNode("b", 2, 2)},
				VMs: []VM{{ID: "web-1", Node: "a", Request: Request{VCPUs: 1, RAM: gib, AntiAffinity: AntiAffinity{Group: "web", Hard: true}}}}},
			req: Request{VCPUs: 1, RAM: gib, AntiAffinity: AntiAffinity{Group: "web", Hard: true}}, want: "b",
		},
		{
			name: "hard anti-affinity with nowhere left",
			cluster: Cluster{Nodes: []Node{mkNode("a", 64, 64)},
				VMs: []VM{{ID: "web-1", Node: "a", Request: Request{VCPUs: 1, RAM: gib, AntiAffinity: AntiAffinity{Group: "web", Hard: true}}}}},
			req: Request{VCPUs: 1, RAM: gib, AntiAffinity: AntiAffinity{Group: "web", Hard: true}}, want: "",
		},
		{
			name: "soft anti-affinity prefers other nodes",
			cluster: Cluster{Nodes: []Node{mkNode("a", 64, 64), mkNode("b", 2, 2)},
				VMs: []VM{{ID: "web-1", Node: "a", Request: Request{VCPUs: 1, RAM: gib, AntiAffinity: AntiAffinity{Group: "web"}}}}},
			req: Request{VCPUs: 1, RAM: gib, AntiAffinity: AntiAffinity{Group: "web"}}, want: "b",
		},
		{
			name: "soft anti-affinity falls back",
			cluster: Cluster{Nodes: []Node{mkNode("a", 64, 64), mkNode("b", 2, 2)},
				VMs: []VM{{ID: "web-1", Node: "a", Request: Request{VCPUs: 1, RAM: gib, AntiAffinity: AntiAffinity{Group: "web"}}}}},
			req: Request{VCPUs: 4, RAM: gib, AntiAffinity: AntiAffinity{Group: "web"}}, want: "a",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(tt.cluster)
			require.NoError(t, err)
			p, err := placeBoth(t, s, tt.req)
			if tt.want == "" {
				require.Error(t, err)
				assert.ErrorIs(t, err, virtplane.ErrResourceExhausted)
				var pe *PlacementError
				assert.True(t, errors.As(err, &pe))
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, p.Node)
			assert.Equal(t, tt.pools, p.Pools)
		})
	}
}

func TestPlaceExplanations(t *testing.T) {
	tests := []struct {
		name    string
		cluster Cluster
		req     Request
		want    string
	}{
		{
			name:    "RAM",
			cluster: Cluster{Nodes: []Node{{ID: "node-3", Cores: 8, RAM: 16 * gib, Used: Usage{RAM: 15*gib + gib/2}}}},
			req:     req(1, 1),
			want:    "no node can take the request: node-3: RAM 15.5/16 GiB at ratio 1.0, need 1 GiB: resource exhausted",
		},
		{
			name:    "CPU at a ratio",
			cluster: Cluster{Settings: Settings{CPURatio: 4}, Nodes: []Node{{ID: "n1", Cores: 8, RAM: 16 * gib, Used: Usage{VCPUs: 30}}}},
			req:     req(4, 1),
			want:    "no node can take the request: n1: CPU 30/32 vCPUs at ratio 4.0, need 4: resource exhausted",
		},
		{
			name:    "states",
			cluster: Cluster{Nodes: []Node{{ID: "a", State: NodeMaintenance, Cores: 8, RAM: 8 * gib}, {ID: "b", State: NodeOffline, Cores: 8, RAM: 8 * gib}}},
			req:     req(1, 1),
			want:    "no node can take the request: a: in maintenance; b: offline: resource exhausted",
		},
		{
			name:    "tags",
			cluster: Cluster{Nodes: []Node{{ID: "a", Tags: []string{"old"}, Cores: 8, RAM: 8 * gib}}},
			req:     Request{VCPUs: 1, RAM: gib, RequireTags: []string{"gpu"}, ForbidTags: []string{"old"}},
			want:    `no node can take the request: a: missing tag "gpu", has forbidden tag "old": resource exhausted`,
		},
		{
			name:    "VMs per node",
			cluster: Cluster{Settings: Settings{MaxVMsPerNode: 4}, Nodes: []Node{{ID: "a", Cores: 8, RAM: 8 * gib, Used: Usage{VMs: 4}}}},
			req:     req(1, 1),
			want:    "no node can take the request: a: VMs 4/4 (max per node): resource exhausted",
		},
		{
			name:    "VMs per cluster",
			cluster: Cluster{Settings: Settings{MaxVMs: 4}, Nodes: []Node{{ID: "a", Cores: 8, RAM: 8 * gib, Used: Usage{VMs: 4}}}},
			req:     req(1, 1),
			want:    "no node can take the request: cluster: 4/4 VMs (max per cluster): resource exhausted",
		},
		{
			name: "disk pool full",
			cluster: Cluster{Settings: Settings{DiskRatios: map[string]float64{"local": 1.5}}, Nodes: []Node{{ID: "a", Cores: 8, RAM: 8 * gib,
				Pools: []Pool{{Name: "local", Size: 100 * gib, Used: 140 * gib}}}}},
			req:  Request{VCPUs: 1, RAM: gib, Disks: []Disk{{Size: 20 * gib}}},
			want: `no node can take the request: a: disk 0 (20 GiB): pool "local" 140/150 GiB at ratio 1.5: resource exhausted`,
		},
		{
			name:    "disk tags",
			cluster: Cluster{Nodes: []Node{{ID: "a", Cores: 8, RAM: 8 * gib, Pools: []Pool{{Name: "local", Tags: []string{"hdd"}, Size: 100 * gib}}}}},
			req:     Request{VCPUs: 1, RAM: gib, Disks: []Disk{{Size: 20 * gib, Tags: []string{"ssd"}}}},
			want:    `no node can take the request: a: disk 0 (20 GiB): no pool with tags [ssd]: resource exhausted`,
		},
		{
			name: "anti-affinity",
			cluster: Cluster{Nodes: []Node{{ID: "a", Cores: 8, RAM: 8 * gib}},
				VMs: []VM{{ID: "db-1", Node: "a", Request: Request{VCPUs: 1, RAM: gib, AntiAffinity: AntiAffinity{Group: "db", Hard: true}}}}},
			req:  Request{VCPUs: 1, RAM: gib, AntiAffinity: AntiAffinity{Group: "db", Hard: true}},
			want: `no node can take the request: a: hosts a member of anti-affinity group "db": resource exhausted`,
		},
		{
			name:    "pinned lists only its node",
			cluster: Cluster{Nodes: []Node{{ID: "a", Cores: 8, RAM: 8 * gib}, {ID: "b", Cores: 1, RAM: 8 * gib}}},
			req:     Request{VCPUs: 2, RAM: gib, Node: "b"},
			want:    "no node can take the request: b: CPU 0/1 vCPUs at ratio 1.0, need 2: resource exhausted",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(tt.cluster)
			require.NoError(t, err)
			_, err = placeBoth(t, s, tt.req)
			require.Error(t, err)
			assert.ErrorIs(t, err, virtplane.ErrResourceExhausted)
			assert.Equal(t, tt.want, err.Error())
		})
	}
}

func TestExplanationListsAtMostTenNodes(t *testing.T) {
	var nodes []Node
	for i := range 25 {
		nodes = append(nodes, Node{ID: string(rune('a'+i)) + "-node", Cores: 1, RAM: gib})
	}
	s, err := New(Cluster{Nodes: nodes})
	require.NoError(t, err)
	_, err = s.Place(req(2, 1))
	var pe *PlacementError
	require.ErrorAs(t, err, &pe)
	assert.Len(t, pe.Refusals, 25)
	assert.Contains(t, err.Error(), "… and 15 more nodes")
}

func TestInvalidInput(t *testing.T) {
	good := []Node{mkNode("a", 8, 8)}
	clusters := []struct {
		name    string
		cluster Cluster
		field   string
	}{
		{"strategy", Cluster{Settings: Settings{Strategy: "random"}, Nodes: good}, "settings.Strategy"},
		{"cpu ratio", Cluster{Settings: Settings{CPURatio: -1}, Nodes: good}, "settings.CPURatio"},
		{"ram ratio", Cluster{Settings: Settings{RAMRatio: -1}, Nodes: good}, "settings.RAMRatio"},
		{"disk ratio", Cluster{Settings: Settings{DiskRatios: map[string]float64{"p": -2}}, Nodes: good}, `settings.DiskRatios["p"]`},
		{"max VMs", Cluster{Settings: Settings{MaxVMs: -1}, Nodes: good}, "settings.MaxVMs"},
		{"max VMs per node", Cluster{Settings: Settings{MaxVMsPerNode: -1}, Nodes: good}, "settings.MaxVMsPerNode"},
		{"node ID", Cluster{Nodes: []Node{{Cores: 1}}}, "nodes[0].ID"},
		{"duplicate node", Cluster{Nodes: []Node{mkNode("a", 1, 1), mkNode("a", 1, 1)}}, `nodes[1].ID "a"`},
		{"node state", Cluster{Nodes: []Node{{ID: "a", State: "broken"}}}, "nodes[0].State"},
		{"node cores", Cluster{Nodes: []Node{{ID: "a", Cores: -1}}}, "nodes[0].Cores"},
		{"node ratio", Cluster{Nodes: []Node{{ID: "a", CPURatio: -1}}}, "nodes[0].CPURatio"},
		{"pool name", Cluster{Nodes: []Node{{ID: "a", Pools: []Pool{{Size: 1}}}}}, "nodes[0].Pools[0].Name"},
		{"duplicate pool", Cluster{Nodes: []Node{{ID: "a", Pools: []Pool{{Name: "p"}, {Name: "p"}}}}}, "nodes[0].Pools[1].Name"},
		{"vm pools", Cluster{Nodes: good, VMs: []VM{{ID: "v", Node: "a", Request: Request{VCPUs: 1, RAM: 1, Disks: []Disk{{Size: 1}}}}}}, "vm.Pools"},
	}
	for _, tt := range clusters {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cluster)
			require.ErrorIs(t, err, virtplane.ErrInvalidArgument)
			assert.Contains(t, err.Error(), tt.field)
		})
	}
	requests := []struct {
		name  string
		req   Request
		field string
	}{
		{"vcpus", Request{RAM: 1}, "request.VCPUs"},
		{"ram", Request{VCPUs: 1}, "request.RAM"},
		{"disk size", Request{VCPUs: 1, RAM: 1, Disks: []Disk{{}}}, "request.Disks[0].Size"},
		{"disk tag", Request{VCPUs: 1, RAM: 1, Disks: []Disk{{Size: 1, Tags: []string{""}}}}, "request.Disks[0].Tags[0]"},
		{"required tag", Request{VCPUs: 1, RAM: 1, RequireTags: []string{""}}, "request.RequireTags[0]"},
		{"contradiction", Request{VCPUs: 1, RAM: 1, RequireTags: []string{"x"}, ForbidTags: []string{"x"}}, "request.ForbidTags[0]"},
		{"hard group", Request{VCPUs: 1, RAM: 1, AntiAffinity: AntiAffinity{Hard: true}}, "request.AntiAffinity.Group"},
	}
	s, err := New(Cluster{Nodes: good})
	require.NoError(t, err)
	for _, tt := range requests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Place(tt.req)
			require.ErrorIs(t, err, virtplane.ErrInvalidArgument)
			assert.Contains(t, err.Error(), tt.field)
			_, err = s.PlaceNaive(tt.req)
			require.ErrorIs(t, err, virtplane.ErrInvalidArgument)
		})
	}
	_, err = s.Place(Request{VCPUs: 1, RAM: 1, Node: "zz"})
	require.ErrorIs(t, err, virtplane.ErrNotFound)
	assert.Contains(t, err.Error(), "request.Node")
}

func TestBatchAndReservations(t *testing.T) {
	s, err := New(Cluster{Nodes: []Node{mkNode("a", 4, 8), mkNode("b", 4, 8)}})
	require.NoError(t, err)

	t.Run("batch counts earlier members", func(t *testing.T) {
		ps, err := s.PlaceBatch([]Request{req(3, 1), req(3, 1), req(1, 1)})
		require.NoError(t, err)
		assert.Equal(t, []string{"a", "b", "a"}, []string{ps[0].Node, ps[1].Node, ps[2].Node})
		st, _ := s.Status("a")
		assert.Zero(t, st.VCPUs, "PlaceBatch changes nothing")
	})
	t.Run("batch is all or nothing", func(t *testing.T) {
		_, err := s.PlaceBatch([]Request{req(4, 1), req(4, 1), req(1, 1)})
		require.ErrorIs(t, err, virtplane.ErrResourceExhausted)
		assert.Contains(t, err.Error(), "requests[2]")
		_, err = s.ReserveBatch([]Request{req(4, 1), req(4, 1), req(1, 1)}, time.Time{})
		require.Error(t, err)
		assert.Equal(t, 0, s.VMCount())
	})
	t.Run("reserve, commit, release, expire", func(t *testing.T) {
		now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		r1, err := s.Reserve(req(4, 1), now.Add(time.Minute))
		require.NoError(t, err)
		r2, err := s.Reserve(req(4, 1), time.Time{})
		require.NoError(t, err)
		assert.NotEqual(t, r1.Placement.Node, r2.Placement.Node)
		_, err = s.Place(req(1, 1))
		require.ErrorIs(t, err, virtplane.ErrResourceExhausted, "reservations hold capacity")

		assert.Empty(t, s.ExpireReservations(now))
		assert.Equal(t, []string{r1.ID}, s.ExpireReservations(now.Add(time.Minute)))
		p, err := s.Place(req(1, 1))
		require.NoError(t, err)
		assert.Equal(t, r1.Placement.Node, p.Node)

		require.NoError(t, s.Commit(r2.ID, "vm-1"))
		require.ErrorIs(t, s.Commit(r2.ID, "vm-1"), virtplane.ErrNotFound)
		assert.Empty(t, s.ExpireReservations(now.Add(time.Hour)))
		st, _ := s.Status(r2.Placement.Node)
		assert.Equal(t, int64(4), st.VCPUs)
		require.ErrorIs(t, s.Release(r1.ID), virtplane.ErrNotFound)

		r3, err := s.Reserve(req(1, 1), time.Time{})
		require.NoError(t, err)
		require.ErrorIs(t, s.Commit(r3.ID, "vm-1"), virtplane.ErrAlreadyExists)
		require.NoError(t, s.Release(r3.ID))
		require.NoError(t, s.RemoveVM("vm-1"))
		assert.Equal(t, 0, s.VMCount())
	})
}

func TestNodeChanges(t *testing.T) {
	s, err := New(Cluster{Nodes: []Node{mkNode("a", 4, 8)}, VMs: []VM{{ID: "v1", Node: "a", Request: req(2, 2)}}})
	require.NoError(t, err)
	require.NoError(t, s.UpsertNode(mkNode("b", 16, 32)))
	p, err := placeBoth(t, s, Request{VCPUs: 8, RAM: gib})
	require.NoError(t, err)
	assert.Equal(t, "b", p.Node)
	require.NoError(t, s.UpsertNode(Node{ID: "a", Cores: 32, RAM: 64 * gib, Tags: []string{"big"}}))
	st, _ := s.Status("a")
	assert.Equal(t, int64(2), st.VCPUs, "allocations survive a redefinition")
	p, err = placeBoth(t, s, Request{VCPUs: 8, RAM: gib, RequireTags: []string{"big"}})
	require.NoError(t, err)
	assert.Equal(t, "a", p.Node)
	require.ErrorIs(t, s.RemoveNode("a"), virtplane.ErrConflict)
	require.NoError(t, s.RemoveNode("b"))
	require.NoError(t, s.SetNodeState("a", NodeMaintenance))
	_, err = placeBoth(t, s, req(1, 1))
	require.ErrorIs(t, err, virtplane.ErrResourceExhausted)
	require.ErrorIs(t, s.SetNodeState("zz", NodeActive), virtplane.ErrNotFound)
	require.ErrorIs(t, s.SetNodeState("a", "x"), virtplane.ErrInvalidArgument)
}
