package ha_test

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane/ha"
	"github.com/virtplane/virtplane/ha/internal/sim"
	"github.com/virtplane/virtplane/scheduler"
)

func haVM(id string, prio int) ha.VM {
	return ha.VM{ID: id, HA: true, SharedDisks: true, Priority: prio,
		Request: scheduler.Request{VCPUs: 2, RAM: 2 << 30}}
}

// running starts the cluster and returns a stop function that ends every
// goroutine and waits for them.
func running(t *testing.T, cfg sim.Config) (*sim.Cluster, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	c, err := sim.New(ctx, cfg)
	require.NoError(t, err)
	wait := c.Start(ctx)
	watchDone := make(chan struct{})
	go func() { defer close(watchDone); c.Watch(ctx, 50*time.Millisecond) }()
	return c, func() {
		cancel()
		wait()
		<-watchDone
		assert.Empty(t, c.Violations, "a VM ran on two nodes")
	}
}

func eventsOf(c *sim.Cluster, k ha.EventKind) []ha.Event { return c.Leader().Log().Filter(k, "") }

func TestCrashDetectionAndEvacuationTimings(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		vms := []ha.VM{haVM("a", 1), haVM("b", 1), haVM("c", 1), haVM("d", 1), haVM("e", 3), haVM("f", 2)}
		c, stop := running(t, sim.Config{Nodes: 3, NodeCores: 32, NodeRAM: 64 << 30, VMs: vms, StartLatency: 200 * time.Millisecond})
		time.Sleep(5 * time.Second)
		crash := time.Now()
		c.Crash("node-1") // holds a, d
		time.Sleep(20 * time.Second)
		stop()

		failed := c.Leader().Log().Filter(ha.EventNodeFailed, "node-1")
		require.Len(t, failed, 1)
		detect := failed[0].Time.Sub(crash)
		assert.LessOrEqual(t, detect, ha.DefaultTimings().FailAfter+300*time.Millisecond)
		assert.GreaterOrEqual(t, detect, ha.DefaultTimings().FailAfter-300*time.Millisecond)
		fenced := c.Leader().Log().Filter(ha.EventFenced, "node-1")
		require.Len(t, fenced, 1)
		assert.Equal(t, ha.FenceSelf, fenced[0].Method, "nothing but the self-fence timeout can confirm a crashed node without power fencing")
		restarted := eventsOf(c, ha.EventVMRestarted)
		require.Len(t, restarted, 2)
		for _, e := range restarted {
			assert.Less(t, e.Time.Sub(crash), 10*time.Second, "vm %s back after %s", e.VM, e.Time.Sub(crash))
			assert.False(t, e.Time.Before(fenced[0].Time), "restart before the fence")
			assert.NotEqual(t, "node-1", e.Target)
		}
		for _, id := range []string{"a", "d"} {
			node, settled, err := c.Leader().Location(id)
			require.NoError(t, err)
			assert.True(t, settled)
			assert.NotEqual(t, "node-1", node)
			assert.Len(t, c.Running()[id], 1)
		}
		t.Logf("detected after %s, fenced after %s, last VM back after %s", detect, fenced[0].Time.Sub(crash), restarted[len(restarted)-1].Time.Sub(crash))
	})
}

func TestPowerFenceIsFaster(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, stop := running(t, sim.Config{Nodes: 3, NodeCores: 32, NodeRAM: 64 << 30, Power: true,
			VMs: []ha.VM{haVM("a", 0), haVM("b", 0), haVM("c", 0)}})
		time.Sleep(3 * time.Second)
		crash := time.Now()
		c.Crash("node-2")
		time.Sleep(15 * time.Second)
		stop()
		fenced := c.Leader().Log().Filter(ha.EventFenced, "node-2")
		require.Len(t, fenced, 1)
		assert.Equal(t, ha.FencePower, fenced[0].Method)
		assert.Less(t, fenced[0].Time.Sub(crash), 3*time.Second)
		assert.Len(t, c.Running()["b"], 1)
	})
}

func TestPartitionedNodeSelfFencesBeforeAnyRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, stop := running(t, sim.Config{Nodes: 3, NodeCores: 32, NodeRAM: 64 << 30,
			VMs: []ha.VM{haVM("a", 0), haVM("b", 0), haVM("c", 0), haVM("d", 0)}})
		time.Sleep(3 * time.Second)
		cut := time.Now()
		// The node is alive and still reaches the check address: only the
		// controllers are gone. It must still stop its VMs.
		c.Partition("node-1", true, false)
		time.Sleep(15 * time.Second)
		selfFenced := c.AgentLog.Filter(ha.EventSelfFenced, "node-1")
		require.NotEmpty(t, selfFenced)
		restarted := eventsOf(c, ha.EventVMRestarted)
		require.Len(t, restarted, 2)
		for _, e := range restarted {
			assert.True(t, selfFenced[0].Time.Before(e.Time), "self-fence at %s, restart of %s at %s",
				selfFenced[0].Time.Sub(cut), e.VM, e.Time.Sub(cut))
		}
		assert.Contains(t, selfFenced[0].Reason, "check address reachable: true")
		c.Partition("node-1", false, false)
		time.Sleep(15 * time.Second)
		stop()
		st, err := c.Leader().State("node-1")
		require.NoError(t, err)
		assert.Equal(t, ha.NodeHealthy, st, "healed node comes back after RecoverAfter")
		for _, id := range []string{"a", "b", "c", "d"} {
			assert.Len(t, c.Running()[id], 1, id)
		}
		stale := c.Leader().Log().Filter(ha.EventStaleRemoved, "node-1")
		assert.Len(t, stale, 2, "the stopped copies on the healed node are removed")
		left, err := c.Nodes[0].Local.List(t.Context())
		require.NoError(t, err)
		assert.Empty(t, left)
	})
}

func TestFlappingNodeIsNeverFailed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, stop := running(t, sim.Config{Nodes: 2, NodeCores: 32, NodeRAM: 64 << 30,
			VMs: []ha.VM{haVM("a", 0), haVM("b", 0)}})
		time.Sleep(2 * time.Second)
		for range 10 {
			c.Partition("node-1", true, false)
			time.Sleep(1500 * time.Millisecond)
			c.Partition("node-1", false, false)
			time.Sleep(1500 * time.Millisecond)
		}
		stop()
		assert.NotEmpty(t, c.Leader().Log().Filter(ha.EventNodeSuspect, "node-1"), "the misses are noticed")
		assert.Empty(t, c.Leader().Log().Filter(ha.EventNodeFailed, "node-1"))
		assert.Empty(t, eventsOf(c, ha.EventVMRestarted))
		assert.Empty(t, c.AgentLog.Events(), "the watchdog never fires")
		assert.Equal(t, []string{"node-1"}, c.Running()["a"], "the VM never stopped")
	})
}

func TestControllerDisagreement(t *testing.T) {
	t.Run("one of three sees the node failed: nothing happens", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			c, stop := running(t, sim.Config{Nodes: 3, NodeCores: 32, NodeRAM: 64 << 30, Controllers: 3,
				VMs: []ha.VM{haVM("a", 0), haVM("b", 0), haVM("c", 0)}})
			time.Sleep(2 * time.Second)
			c.CutController("node-1", 0, true) // the leader loses the node
			time.Sleep(20 * time.Second)
			stop()
			st, _ := c.Leader().State("node-1")
			assert.Equal(t, ha.NodeFailed, st, "the leader alone thinks it failed")
			for _, obs := range c.Controllers[1:] {
				st, _ := obs.State("node-1")
				assert.Equal(t, ha.NodeHealthy, st)
			}
			waits := c.Leader().Log().Filter(ha.EventFenceFailed, "node-1")
			require.NotEmpty(t, waits)
			assert.Contains(t, waits[0].Reason, "no majority")
			assert.Empty(t, c.Leader().Log().Filter(ha.EventFenced, "node-1"))
			assert.Empty(t, c.AgentLog.Events(), "the node reaches a majority: no self-fence")
			assert.Equal(t, []string{"node-1"}, c.Running()["a"])
		})
	})
	t.Run("two of three: the node self-fences and its VMs move", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			c, stop := running(t, sim.Config{Nodes: 3, NodeCores: 32, NodeRAM: 64 << 30, Controllers: 3,
				VMs: []ha.VM{haVM("a", 0), haVM("b", 0), haVM("c", 0)}})
			time.Sleep(2 * time.Second)
			c.CutController("node-1", 0, true)
			c.CutController("node-1", 1, true)
			time.Sleep(20 * time.Second)
			stop()
			fenced := c.Leader().Log().Filter(ha.EventFenced, "node-1")
			require.Len(t, fenced, 1)
			assert.Equal(t, ha.FenceSelf, fenced[0].Method)
			self := c.AgentLog.Filter(ha.EventSelfFenced, "node-1")
			require.NotEmpty(t, self, "one controller of three is no majority: the node fences itself")
			assert.True(t, self[0].Time.Before(fenced[0].Time))
			nodes := c.Running()["a"]
			require.Len(t, nodes, 1)
			assert.NotEqual(t, "node-1", nodes[0])
		})
	})
}

func TestCapacityTooSmallForAllVMs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Each node takes 4 VMs of 2 vCPUs; node-1 holds 4, node-2 holds 2:
		// only 2 of node-1's fit on node-2.
		var vms []ha.VM
		for i, prio := range []int{1, 5, 3, 2} {
			v := haVM(fmt.Sprintf("p%d", i), prio)
			v.Node = "node-1"
			vms = append(vms, v)
		}
		for i := range 2 {
			v := haVM(fmt.Sprintf("q%d", i), 0)
			v.Node = "node-2"
			vms = append(vms, v)
		}
		c, stop := running(t, sim.Config{Nodes: 2, NodeCores: 8, NodeRAM: 64 << 30, VMs: vms})
		time.Sleep(2 * time.Second)
		c.Crash("node-1")
		time.Sleep(10 * time.Second)
		restarted := eventsOf(c, ha.EventVMRestarted)
		require.Len(t, restarted, 2)
		got := []string{restarted[0].VM, restarted[1].VM}
		assert.ElementsMatch(t, []string{"p1", "p2"}, got, "the two highest priorities (5 and 3) win the room")
		unplaced := eventsOf(c, ha.EventVMUnplaced)
		require.Len(t, unplaced, 2)
		assert.ElementsMatch(t, []string{"p0", "p3"}, []string{unplaced[0].VM, unplaced[1].VM})
		assert.Contains(t, unplaced[0].Reason, "retried when capacity appears")

		// Capacity appears: node-1 comes back and, after RecoverAfter, takes
		// the waiting VMs again.
		c.Boot("node-1")
		time.Sleep(25 * time.Second)
		stop()
		for _, id := range []string{"p0", "p1", "p2", "p3", "q0", "q1"} {
			assert.Len(t, c.Running()[id], 1, id)
		}
	})
}

func TestNotRestartedVMsAreReported(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		local := haVM("local-disk", 0)
		local.SharedDisks = false
		plain := haVM("no-ha", 0)
		plain.HA = false
		ok := haVM("ok", 0)
		for _, v := range []*ha.VM{&local, &plain, &ok} {
			v.Node = "node-1"
		}
		c, stop := running(t, sim.Config{Nodes: 2, NodeCores: 32, NodeRAM: 64 << 30, VMs: []ha.VM{local, plain, ok}})
		time.Sleep(2 * time.Second)
		c.Crash("node-1")
		time.Sleep(10 * time.Second)
		stop()
		reasons := map[string]string{}
		for _, e := range eventsOf(c, ha.EventVMNotRestart) {
			reasons[e.VM] = e.Reason
		}
		assert.Equal(t, map[string]string{"local-disk": "disks not on shared storage", "no-ha": "not an HA VM"}, reasons)
		assert.Len(t, c.Running()["ok"], 1)
		assert.Empty(t, c.Running()["local-disk"])
	})
}

func TestIsolatedNodeFencedThroughItsHypervisor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, stop := running(t, sim.Config{Nodes: 2, NodeCores: 32, NodeRAM: 64 << 30,
			VMs: []ha.VM{haVM("a", 0), haVM("b", 0)}})
		time.Sleep(2 * time.Second)
		c.CheckLost("node-1", true)
		time.Sleep(10 * time.Second)
		stop()
		failed := c.Leader().Log().Filter(ha.EventNodeFailed, "node-1")
		require.Len(t, failed, 1)
		assert.Contains(t, failed[0].Reason, "isolated")
		fenced := c.Leader().Log().Filter(ha.EventFenced, "node-1")
		require.Len(t, fenced, 1)
		assert.Equal(t, ha.FenceHypervisor, fenced[0].Method)
		assert.Equal(t, []string{"node-2"}, c.Running()["a"])
	})
}

func TestSlowHypervisorAloneIsNotAFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, stop := running(t, sim.Config{Nodes: 2, NodeCores: 32, NodeRAM: 64 << 30, VMs: []ha.VM{haVM("a", 0)}})
		time.Sleep(2 * time.Second)
		c.Slow("node-1", 2*time.Second) // probes time out
		time.Sleep(20 * time.Second)
		stop()
		assert.NotEmpty(t, c.Leader().Log().Filter(ha.EventNodeSuspect, "node-1"))
		assert.Empty(t, c.Leader().Log().Filter(ha.EventNodeFailed, "node-1"))
		assert.Equal(t, []string{"node-1"}, c.Running()["a"])
	})
}

func TestDrainAndReturn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		plain := haVM("c", 0)
		plain.HA = false
		c, stop := running(t, sim.Config{Nodes: 3, NodeCores: 32, NodeRAM: 64 << 30,
			VMs: []ha.VM{haVM("a", 0), haVM("b", 0), plain, haVM("d", 0)}})
		defer stop()
		time.Sleep(time.Second)
		rep, err := c.Leader().Drain(t.Context(), "node-1") // a, d
		require.NoError(t, err)
		require.Len(t, rep.Moves, 2)
		for _, m := range rep.Moves {
			require.NoError(t, m.Err)
			assert.Equal(t, []string{m.To}, c.Running()[m.VM])
		}
		assert.Empty(t, rep.Unplaced)
		running := c.Running()
		for vm, nodes := range running {
			assert.NotContains(t, nodes, "node-1", vm)
		}
		rep, err = c.Leader().Return(t.Context(), "node-1")
		require.NoError(t, err)
		require.Len(t, rep.Moves, 2)
		assert.Equal(t, []string{"node-1"}, c.Running()["a"])
		assert.Equal(t, []string{"node-1"}, c.Running()["d"])
		assert.Len(t, c.Leader().Log().Filter(ha.EventVMMigrated, ""), 4)

		_, err = c.Leader().Drain(t.Context(), "nope")
		assert.Error(t, err)
	})
}

func TestNoRestartOnUnconfirmedFence(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, stop := running(t, sim.Config{Nodes: 2, NodeCores: 32, NodeRAM: 64 << 30, VMs: []ha.VM{haVM("a", 0), haVM("b", 0)}})
		time.Sleep(2 * time.Second)
		// Isolated (failed), its hypervisor too slow to answer, and its
		// heartbeats still arrive: neither the hypervisor nor the
		// self-fence timeout can confirm a fence.
		c.CheckLost("node-1", true)
		c.Slow("node-1", 10*time.Second)
		time.Sleep(60 * time.Second)
		stop()
		require.NotEmpty(t, c.Leader().Log().Filter(ha.EventNodeFailed, "node-1"))
		failed := c.Leader().Log().Filter(ha.EventFenceFailed, "node-1")
		require.NotEmpty(t, failed)
		assert.Contains(t, failed[0].Reason, "nothing restarted")
		assert.Empty(t, c.Leader().Log().Filter(ha.EventFenced, "node-1"))
		assert.Empty(t, eventsOf(c, ha.EventVMRestarted))
		assert.Equal(t, []string{"node-1"}, c.Running()["a"])
	})
}

func TestRestartsBoundedAndInPriorityOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var vms []ha.VM
		for i := range 20 {
			v := haVM(fmt.Sprintf("v%02d", i), i%5)
			v.Node = "node-1"
			vms = append(vms, v)
		}
		c, stop := running(t, sim.Config{Nodes: 3, NodeCores: 64, NodeRAM: 256 << 30, VMs: vms,
			StartLatency: time.Second, Timings: ha.Timings{RestartParallelism: 2}})
		time.Sleep(2 * time.Second)
		c.Crash("node-1")
		time.Sleep(30 * time.Second)
		stop()
		fenced := c.Leader().Log().Filter(ha.EventFenced, "node-1")
		require.Len(t, fenced, 1)
		restarted := eventsOf(c, ha.EventVMRestarted)
		require.Len(t, restarted, 20)
		took := restarted[19].Time.Sub(fenced[0].Time)
		assert.GreaterOrEqual(t, took, 10*time.Second, "20 starts of 1 s, 2 at a time")
		assert.Less(t, took, 11*time.Second)
		prio := map[string]int{}
		for _, v := range vms {
			prio[v.ID] = v.Priority
		}
		for i := 1; i < len(restarted); i++ {
			assert.GreaterOrEqual(t, prio[restarted[i-1].VM], prio[restarted[i].VM], "restart %d (%s) after %s", i, restarted[i].VM, restarted[i-1].VM)
		}
	})
}
