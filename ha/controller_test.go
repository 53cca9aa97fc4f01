package ha_test

import (
	"net"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/ha"
	"github.com/virtplane/virtplane/scheduler"
	"github.com/virtplane/virtplane/vmm/fake"
)

func TestNewRejectsBadConfig(t *testing.T) {
	sched := func() *scheduler.Scheduler {
		s, err := scheduler.New(scheduler.Cluster{Nodes: []scheduler.Node{{ID: "n1", Cores: 8, RAM: 8 << 30}}})
		require.NoError(t, err)
		return s
	}
	d := fake.New()
	vm := ha.VM{ID: "a", Node: "n1", Request: scheduler.Request{VCPUs: 1, RAM: 1 << 30}}
	for _, tt := range []struct {
		name  string
		cfg   ha.Config
		class error
		field string
	}{
		{"no scheduler", ha.Config{}, virtplane.ErrInvalidArgument, "Scheduler"},
		{"node without ID", ha.Config{Scheduler: sched(), Nodes: []ha.Node{{Driver: d}}}, virtplane.ErrInvalidArgument, "Nodes[0].ID"},
		{"node without driver", ha.Config{Scheduler: sched(), Nodes: []ha.Node{{ID: "n1"}}}, virtplane.ErrInvalidArgument, "Nodes[0].Driver"},
		{"node twice", ha.Config{Scheduler: sched(), Nodes: []ha.Node{{ID: "n1", Driver: d}, {ID: "n1", Driver: d}}}, virtplane.ErrInvalidArgument, "Nodes[1].ID"},
		{"vm on unknown node", ha.Config{Scheduler: sched(), Nodes: []ha.Node{{ID: "n1", Driver: d}}, VMs: []ha.VM{{ID: "a", Node: "n9"}}}, virtplane.ErrNotFound, "VMs[0].Node"},
		{"vm twice", ha.Config{Scheduler: sched(), Nodes: []ha.Node{{ID: "n1", Driver: d}}, VMs: []ha.VM{vm, vm}}, virtplane.ErrInvalidArgument, "VMs[1].ID"},
		{"bad timings", ha.Config{Scheduler: sched(), Timings: ha.Timings{FailAfter: -1}}, virtplane.ErrInvalidArgument, "FailAfter"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ha.New(tt.cfg)
			require.ErrorIs(t, err, tt.class)
			assert.Contains(t, err.Error(), tt.field)
		})
	}
}

func TestNewUndoesSchedulerChangesOnError(t *testing.T) {
	s, err := scheduler.New(scheduler.Cluster{Nodes: []scheduler.Node{{ID: "n1", Cores: 8, RAM: 8 << 30}}})
	require.NoError(t, err)
	ok := ha.VM{ID: "a", Node: "n1", Request: scheduler.Request{VCPUs: 1, RAM: 1 << 30}}
	bad := ha.VM{ID: "b", Node: "n1"} // invalid request
	_, err = ha.New(ha.Config{Scheduler: s, Nodes: []ha.Node{{ID: "n1", Driver: fake.New()}}, VMs: []ha.VM{ok, bad}})
	require.ErrorIs(t, err, virtplane.ErrInvalidArgument)
	assert.ErrorIs(t, s.RemoveVM("a"), virtplane.ErrNotFound, "vm a was added and must be removed again")
}

func TestNewAgentRejectsBadConfig(t *testing.T) {
	_, err := ha.NewAgent(ha.AgentConfig{})
	require.ErrorIs(t, err, virtplane.ErrInvalidArgument)
	assert.Contains(t, err.Error(), "Node")
	_, err = ha.NewAgent(ha.AgentConfig{Node: "n1", Driver: fake.New()})
	require.ErrorIs(t, err, virtplane.ErrInvalidArgument)
	assert.Contains(t, err.Error(), "Controllers")
}

func TestTCPCheck(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	require.NoError(t, ha.TCPCheck{Address: l.Addr().String()}.ProbeCheck(t.Context()))
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	assert.ErrorIs(t, ha.TCPCheck{Address: addr}.ProbeCheck(t.Context()), virtplane.ErrUnavailable)
}

func TestHeartbeatFromUnknownNode(t *testing.T) {
	s, err := scheduler.New(scheduler.Cluster{Nodes: []scheduler.Node{{ID: "n1", Cores: 8, RAM: 8 << 30}}})
	require.NoError(t, err)
	c, err := ha.New(ha.Config{Scheduler: s, Nodes: []ha.Node{{ID: "n1", Driver: fake.New()}}})
	require.NoError(t, err)
	assert.ErrorIs(t, c.Heartbeat(t.Context(), ha.Heartbeat{Node: "n9"}), virtplane.ErrNotFound)
	require.NoError(t, c.Heartbeat(t.Context(), ha.Heartbeat{Node: "n1", CheckOK: true}))
	v, err := c.NodeView(t.Context(), "n1")
	require.NoError(t, err)
	assert.Equal(t, ha.NodeHealthy, v.State)
	_, _, err = c.Location("zz")
	assert.ErrorIs(t, err, virtplane.ErrNotFound)
}

func TestInventoryChanges(t *testing.T) {
	s, err := scheduler.New(scheduler.Cluster{Nodes: []scheduler.Node{{ID: "n1", Cores: 8, RAM: 8 << 30}}})
	require.NoError(t, err)
	c, err := ha.New(ha.Config{Scheduler: s, Nodes: []ha.Node{{ID: "n1", Driver: fake.New()}}})
	require.NoError(t, err)
	vm := ha.VM{ID: "a", Node: "n1", Request: scheduler.Request{VCPUs: 1, RAM: 1 << 30}}
	require.NoError(t, c.AddVM(vm))
	assert.ErrorIs(t, c.AddVM(vm), virtplane.ErrAlreadyExists)
	assert.ErrorIs(t, c.AddVM(ha.VM{ID: "b", Node: "n9"}), virtplane.ErrNotFound)
	assert.ErrorIs(t, c.AddVM(ha.VM{Node: "n1"}), virtplane.ErrInvalidArgument)
	require.NoError(t, c.SetHA("a", true, 7))
	assert.ErrorIs(t, c.SetHA("zz", true, 0), virtplane.ErrNotFound)
	node, settled, err := c.Location("a")
	require.NoError(t, err)
	assert.Equal(t, "n1", node)
	assert.True(t, settled)
	require.NoError(t, c.RemoveVM("a"))
	assert.ErrorIs(t, c.RemoveVM("a"), virtplane.ErrNotFound)
	assert.ErrorIs(t, s.RemoveVM("a"), virtplane.ErrNotFound, "the scheduler forgot it too")
}
