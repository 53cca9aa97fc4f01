package ha_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/virtplane/virtplane/ha"
	"github.com/virtplane/virtplane/ha/internal/sim"
)

// fault is one injected event of a trial.
type fault struct {
	at    time.Duration
	kind  string
	node  string
	dur   time.Duration
	level float64
}

// trial is one randomized run: its cluster and its faults.
type trial struct {
	seed   uint64
	cfg    sim.Config
	faults []fault
}

// newTrial draws a cluster of 3–5 nodes with room for every VM on any two
// of them, 4–12 VMs (mostly HA on shared storage), and 1–3 faults in the
// first 25 s: node crashes (one may be permanent), partitions (with or
// without the check address), slow hypervisors, lost heartbeats and a lost
// check address. Every fault is over by 45 s.
func newTrial(seed uint64) trial {
	r := rand.New(rand.NewPCG(seed, 1))
	nodes := 3 + r.IntN(3)
	cfg := sim.Config{Nodes: nodes, NodeCores: 32, NodeRAM: 256 << 30, Power: r.IntN(10) < 3, Seed: seed,
		StartLatency: time.Duration(r.IntN(500)) * time.Millisecond}
	for i := range 4 + r.IntN(9) {
		v := haVM(fmt.Sprintf("vm-%d", i), r.IntN(4))
		v.Request.VCPUs = 1 + r.IntN(4)
		switch x := r.IntN(20); {
		case x == 0:
			v.HA = false
		case x == 1:
			v.SharedDisks = false
		}
		cfg.VMs = append(cfg.VMs, v)
	}
	tr := trial{seed: seed, cfg: cfg}
	permanent := false
	for range 1 + r.IntN(3) {
		f := fault{at: 2*time.Second + time.Duration(r.Int64N(int64(23*time.Second))), node: fmt.Sprintf("node-%d", 1+r.IntN(nodes)),
			dur: 500*time.Millisecond + time.Duration(r.Int64N(int64(15*time.Second)))}
		switch r.IntN(6) {
		case 0, 1:
			f.kind = "crash"
			if !permanent && r.IntN(2) == 0 {
				permanent, f.dur = true, 0
			}
		case 2:
			f.kind = "partition"
			f.level = float64(r.IntN(2)) // 1: the check address goes too
		case 3:
			f.kind = "slow"
			f.level = float64(200+r.IntN(2800)) / 1000
		case 4:
			f.kind = "heartbeats"
			f.level = 0.3 + 0.7*r.Float64()
		default:
			f.kind = "check"
		}
		tr.faults = append(tr.faults, f)
	}
	sort.Slice(tr.faults, func(i, j int) bool { return tr.faults[i].at < tr.faults[j].at })
	return tr
}

func (tr trial) String() string {
	var fs []string
	for _, f := range tr.faults {
		fs = append(fs, fmt.Sprintf("%s %s at %s for %s (%.2f)", f.kind, f.node, f.at, f.dur, f.level))
	}
	return fmt.Sprintf("seed %d: %d nodes, %d VMs, power %v: %s", tr.seed, tr.cfg.Nodes, len(tr.cfg.VMs), tr.cfg.Power, strings.Join(fs, "; "))
}

// trialResult is what one run found.
type trialResult struct {
	violations []string
	notRunning []string
	// recoveries are, for each HA VM on a crashed node, the time from the
	// crash to its next start.
	recoveries []time.Duration
}

// run executes the trial; it must be called inside a synctest bubble.
func (tr trial) run(t *testing.T) trialResult {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	c, err := sim.New(ctx, tr.cfg)
	if err != nil {
		t.Fatalf("%s: %v", tr, err)
	}
	wait := c.Start(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); c.Watch(ctx, 50*time.Millisecond) }()

	start := time.Now()
	type crash struct {
		at  time.Time
		vms []string
	}
	var crashes []crash
	onNode := func(node string) []string {
		var out []string
		for vm, nodes := range c.Running() {
			if slices.Contains(nodes, node) && isHAShared(tr.cfg.VMs, vm) {
				out = append(out, vm)
			}
		}
		return out
	}
	// Undo actions, applied in time order with the faults.
	type action struct {
		at time.Duration
		do func()
	}
	var actions []action
	for _, f := range tr.faults {
		switch f.kind {
		case "crash":
			actions = append(actions, action{f.at, func() {
				crashes = append(crashes, crash{time.Now(), onNode(f.node)})
				c.Crash(f.node)
			}})
			if f.dur > 0 {
				actions = append(actions, action{f.at + f.dur, func() { c.Boot(f.node) }})
			}
		case "partition":
			actions = append(actions, action{f.at, func() { c.Partition(f.node, true, f.level == 1) }},
				action{f.at + f.dur, func() { c.Partition(f.node, false, false) }})
		case "slow":
			actions = append(actions, action{f.at, func() { c.Slow(f.node, time.Duration(f.level*float64(time.Second))) }},
				action{f.at + f.dur, func() { c.Slow(f.node, 0) }})
		case "heartbeats":
			actions = append(actions, action{f.at, func() { c.DropHeartbeats(f.node, f.level) }},
				action{f.at + f.dur, func() { c.DropHeartbeats(f.node, 0) }})
		case "check":
			actions = append(actions, action{f.at, func() { c.CheckLost(f.node, true) }},
				action{f.at + f.dur, func() { c.CheckLost(f.node, false) }})
		}
	}
	sort.SliceStable(actions, func(i, j int) bool { return actions[i].at < actions[j].at })
	for _, a := range actions {
		time.Sleep(time.Until(start.Add(a.at)))
		a.do()
	}
	// Faults are over; give the cluster RecoverAfter, a retry and slack.
	time.Sleep(time.Until(start.Add(90 * time.Second)))
	cancel()
	wait()
	wg.Wait()
	c.CheckInvariant("end")

	var res trialResult
	res.violations = c.Violations
	running := c.Running()
	for _, v := range tr.cfg.VMs {
		if v.HA && v.SharedDisks && len(running[v.ID]) != 1 {
			res.notRunning = append(res.notRunning, fmt.Sprintf("%s on %v", v.ID, running[v.ID]))
		}
	}
	for _, cr := range crashes {
		for _, vm := range cr.vms {
			for _, s := range c.Started[vm] {
				if s.After(cr.at) {
					res.recoveries = append(res.recoveries, s.Sub(cr.at))
					break
				}
			}
		}
	}
	return res
}

func isHAShared(vms []ha.VM, id string) bool {
	for _, v := range vms {
		if v.ID == id {
			return v.HA && v.SharedDisks
		}
	}
	return false
}

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(p*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// TestFaultTrials runs 1,000 randomized trials (100 with -short) and checks,
// at every start and every 50 ms, that no VM runs on two nodes, and at the
// end that every HA VM on shared storage runs exactly once (the trials keep
// enough capacity and at least two nodes up).
func TestFaultTrials(t *testing.T) {
	runs := 1000
	if testing.Short() {
		runs = 100
	}
	var all []time.Duration
	failures := 0
	for seed := range uint64(runs) {
		tr := newTrial(seed)
		var res trialResult
		synctest.Test(t, func(t *testing.T) { res = tr.run(t) })
		if len(res.violations) > 0 || len(res.notRunning) > 0 {
			failures++
			if failures <= 5 {
				t.Errorf("%s\n  violations: %v\n  HA VMs not running once: %v", tr, res.violations, res.notRunning)
			}
		}
		all = append(all, res.recoveries...)
	}
	assert.Zero(t, failures, "trials that broke an invariant")
	t.Logf("%d trials, %d VM recoveries after crashes: p50 %s, p99 %s, max %s",
		runs, len(all), percentile(all, 0.5), percentile(all, 0.99), percentile(all, 1))
}
