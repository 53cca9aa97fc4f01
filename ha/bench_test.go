package ha_test

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/virtplane/virtplane/ha"
	"github.com/virtplane/virtplane/ha/internal/sim"
)

// recovery is the outcome of one simulated node crash.
type recovery struct {
	p99, detect, fence, restart time.Duration
	restarted                   int
	violations                  int
}

// crashRecovery crashes a node holding vms HA VMs in an 11-node simulated
// cluster (each start takes startLatency) and measures, on the fake clock,
// how long each VM takes to run again and how that splits into detection
// (crash → node failed), fencing (→ fence confirmed) and restarts (→ last
// VM running).
func crashRecovery(t *testing.T, timings ha.Timings, vms int, startLatency time.Duration) recovery {
	var out recovery
	synctest.Test(t, func(t *testing.T) {
		cfg := sim.Config{Nodes: 11, NodeCores: 256, NodeRAM: 1 << 40, Timings: timings, StartLatency: startLatency}
		for i := range vms {
			v := haVM(fmt.Sprintf("vm-%03d", i), i%4)
			v.Node = "node-1"
			cfg.VMs = append(cfg.VMs, v)
		}
		ctx, cancel := context.WithCancel(t.Context())
		c, err := sim.New(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		wait := c.Start(ctx)
		time.Sleep(5 * time.Second)
		crash := time.Now()
		c.Crash("node-1")
		limit := crash.Add(30 * time.Minute)
		for time.Now().Before(limit) && len(c.Leader().Log().Filter(ha.EventVMRestarted, "")) < vms {
			time.Sleep(100 * time.Millisecond)
		}
		cancel()
		wait()
		log := c.Leader().Log()
		var per []time.Duration
		var last time.Time
		for _, e := range log.Filter(ha.EventVMRestarted, "") {
			per = append(per, e.Time.Sub(crash))
			last = e.Time
		}
		out.restarted = len(per)
		out.violations = len(c.Violations)
		out.p99 = percentile(per, 0.99)
		if f := log.Filter(ha.EventNodeFailed, "node-1"); len(f) > 0 {
			out.detect = f[0].Time.Sub(crash)
			if fe := log.Filter(ha.EventFenced, "node-1"); len(fe) > 0 {
				out.fence = fe[0].Time.Sub(f[0].Time)
				out.restart = last.Sub(fe[0].Time)
			}
		}
	})
	return out
}

// proxmoxLikeTimings resemble a Proxmox VE cluster's HA defaults: about a
// minute to declare a node dead and a minute of watchdog before recovery,
// with one restart at a time.
func proxmoxLikeTimings() ha.Timings {
	return ha.Timings{
		HeartbeatInterval: 10 * time.Second, ProbeInterval: 10 * time.Second, ProbeTimeout: 5 * time.Second,
		CheckInterval: 10 * time.Second, TickInterval: time.Second,
		SuspectAfter: 30 * time.Second, FailAfter: 60 * time.Second,
		SelfFenceTimeout: 60 * time.Second, FenceMargin: 60 * time.Second,
		RestartParallelism: 1,
	}
}

// runSynctest runs f as a test from a benchmark: synctest needs a
// *testing.T. RunTests ignores -test.run here because the matcher we pass
// accepts every name.
func runSynctest(b *testing.B, name string, f func(t *testing.T)) {
	ok := testing.RunTests(func(_, _ string) (bool, error) { return true, nil },
		[]testing.InternalTest{{Name: name, F: f}})
	if !ok {
		b.Fatalf("%s failed", name)
	}
}

// BenchmarkRecovery100HAVMs: 100 HA VMs on a node that crashes, default
// timings (no power fencer: the fence is confirmed by waiting out the
// self-fence timeout, the slowest path), 300 ms per start; beside it the
// same crash with Proxmox-like timings and sequential restarts. Metrics are
// seconds of the fake clock.
func BenchmarkRecovery100HAVMs(b *testing.B) {
	const vms, startLatency = 100, 300 * time.Millisecond
	var ours, ref recovery
	for b.Loop() {
		runSynctest(b, b.Name()+"/ours", func(t *testing.T) { ours = crashRecovery(t, ha.Timings{}, vms, startLatency) })
		runSynctest(b, b.Name()+"/reference", func(t *testing.T) { ref = crashRecovery(t, proxmoxLikeTimings(), vms, startLatency) })
	}
	if ours.restarted != vms || ref.restarted != vms || ours.violations+ref.violations > 0 {
		b.Fatalf("restarted %d and %d of %d, %d violations", ours.restarted, ref.restarted, vms, ours.violations+ref.violations)
	}
	b.ReportMetric(ours.p99.Seconds(), "p99-s")
	b.ReportMetric(ours.detect.Seconds(), "detect-s")
	b.ReportMetric(ours.fence.Seconds(), "fence-s")
	b.ReportMetric(ours.restart.Seconds(), "restart-s")
	b.ReportMetric(ref.p99.Seconds(), "ref-p99-s")
	b.ReportMetric(ref.p99.Seconds()/ours.p99.Seconds(), "speedup-x")
}

// BenchmarkRecoveryParallelVsSequential isolates the restart stage: the
// same default timings with one restart at a time as the reference.
func BenchmarkRecoveryParallelVsSequential(b *testing.B) {
	const vms, startLatency = 100, 300 * time.Millisecond
	seq := ha.Timings{RestartParallelism: 1}
	var ours, ref recovery
	for b.Loop() {
		runSynctest(b, b.Name()+"/parallel", func(t *testing.T) { ours = crashRecovery(t, ha.Timings{}, vms, startLatency) })
		runSynctest(b, b.Name()+"/sequential", func(t *testing.T) { ref = crashRecovery(t, seq, vms, startLatency) })
	}
	b.ReportMetric(ours.restart.Seconds(), "restart-s")
	b.ReportMetric(ref.restart.Seconds(), "seq-restart-s")
	b.ReportMetric(ours.p99.Seconds(), "p99-s")
	b.ReportMetric(ref.p99.Seconds(), "seq-p99-s")
	b.ReportMetric(ref.p99.Seconds()/ours.p99.Seconds(), "speedup-x")
}

// BenchmarkFaultTrials runs 100 of the randomized fault trials per
// iteration and reports the distribution of VM recovery times after node
// crashes (fake-clock seconds) and the trials that broke an invariant.
func BenchmarkFaultTrials(b *testing.B) {
	var all []time.Duration
	broken := 0
	for b.Loop() {
		all, broken = all[:0], 0
		runSynctest(b, b.Name()+"/trials", func(t *testing.T) {
			for seed := range uint64(100) {
				tr := newTrial(seed)
				var res trialResult
				t.Run(fmt.Sprint(seed), func(t *testing.T) {
					synctest.Test(t, func(t *testing.T) { res = tr.run(t) })
				})
				if len(res.violations)+len(res.notRunning) > 0 {
					broken++
				}
				all = append(all, res.recoveries...)
			}
		})
	}
	b.ReportMetric(percentile(all, 0.5).Seconds(), "p50-s")
	b.ReportMetric(percentile(all, 0.99).Seconds(), "p99-s")
	b.ReportMetric(float64(broken), "broken-trials")
}
