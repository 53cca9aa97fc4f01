package agent_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane/agent"
	"github.com/virtplane/virtplane/vmm"
)

// BenchmarkGet measures vmm Get of one machine through the agent — over a
// unix socket, and over SSH to the agent's socket as a controller reaches a
// node — beside the same call on the local libvirt driver the agent serves.
// Each iteration makes the three calls in turn (rotating which goes first),
// so that a machine busy with other work slows all of them alike; it
// reports each one's latency and the ratios to the local call (goal for
// the unix socket: ≤ 1.5).
func BenchmarkGet(b *testing.B) {
	f := newLibvirtFixture(b)
	ctx := context.Background()
	name := "vpt-ag-bget-" + randHex(3)
	_, err := f.d.Create(ctx, f.benchSpec(b, name))
	require.NoError(b, err)
	b.Cleanup(func() { _ = f.d.Delete(context.Background(), name) })
	n := serve(b, agent.Node{VMM: f.d})
	// Over SSH: the environment's sshd (RequireSSH skips or fails without it).
	viaSSH, err := agent.NewClient(agent.ClientConfig{Dial: sshDial(b, n.socket), Version: "test-1"})
	require.NoError(b, err)
	b.Cleanup(func() { _ = viaSSH.Close() })
	drivers := []struct {
		name string
		d    vmm.Driver
	}{{"local", f.d}, {"agent", n.client.VMM()}, {"agent-ssh", viaSSH.VMM()}}
	for _, d := range drivers {
		_, err := d.d.Get(ctx, name) // connect outside the timing
		require.NoError(b, err)
	}
	spent := make([]time.Duration, len(drivers))
	i := 0
	for b.Loop() {
		for k := range drivers {
			j := (i + k) % len(drivers)
			start := time.Now()
			if _, err := drivers[j].d.Get(ctx, name); err != nil {
				b.Fatal(err)
			}
			spent[j] += time.Since(start)
		}
		i++
	}
	for j, d := range drivers {
		b.ReportMetric(float64(spent[j].Microseconds())/float64(b.N), d.name+"-µs/op")
		if j > 0 {
			b.ReportMetric(float64(spent[j])/float64(spent[0]), d.name+"/local")
		}
	}
}

// BenchmarkCreateToRunning compares create → running through the agent
// with the same two calls on the local libvirt driver the agent serves,
// alternating the two in one run (each machine torn down before the other
// side runs, so that a booting guest does not steal its CPU), and reports
// both latencies and their ratio (overhead-x; goal ≤ 1.1).
func BenchmarkCreateToRunning(b *testing.B) {
	f := newLibvirtFixture(b)
	ctx := context.Background()
	remote := serve(b, agent.Node{VMM: f.d}).client.VMM()
	_, err := remote.List(ctx) // connect outside the timing
	require.NoError(b, err)
	var agentTime, localTime time.Duration
	run := func(d vmm.Driver, spent *time.Duration, spec vmm.Spec) {
		b.Cleanup(func() {
			_ = f.d.Stop(context.Background(), spec.Name)
			_ = f.d.Delete(context.Background(), spec.Name)
		})
		start := time.Now()
		_, err := d.Create(ctx, spec)
		require.NoError(b, err)
		require.NoError(b, d.Start(ctx, spec.Name))
		*spent += time.Since(start)
		b.StopTimer()
		require.NoError(b, f.d.Stop(ctx, spec.Name))
		require.NoError(b, f.d.Delete(ctx, spec.Name))
		b.StartTimer()
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		viaAgent := f.benchSpec(b, "vpt-ag-ba-"+randHex(3))
		viaLocal := f.benchSpec(b, "vpt-ag-bl-"+randHex(3))
		b.StartTimer()
		if i%2 == 0 {
			run(remote, &agentTime, viaAgent)
			run(f.d, &localTime, viaLocal)
		} else {
			run(f.d, &localTime, viaLocal)
			run(remote, &agentTime, viaAgent)
		}
	}
	b.ReportMetric(float64(agentTime.Microseconds())/1000/float64(b.N), "agent-ms/op")
	b.ReportMetric(float64(localTime.Microseconds())/1000/float64(b.N), "local-ms/op")
	b.ReportMetric(float64(agentTime)/float64(localTime), "overhead-x")
}
