// Package sim simulates a cluster for the ha tests, trials and benchmarks:
// nodes made of a vmm/fake driver, a node agent and links to the
// controllers that the test cuts, slows and drops, plus an invariant
// checker that looks at every start. It is meant to run inside a
// testing/synctest bubble, where its timers use the fake clock.
package sim

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/ha"
	"github.com/virtplane/virtplane/ha/fakepower"
	"github.com/virtplane/virtplane/scheduler"
	"github.com/virtplane/virtplane/vmm"
	"github.com/virtplane/virtplane/vmm/fake"
)

// Config describes a simulated cluster.
type Config struct {
	Nodes int
	// NodeCores and NodeRAM size each node (RAM in bytes).
	NodeCores int
	NodeRAM   int64
	// VMs are placed round-robin; their Node field is set by New when empty.
	VMs         []ha.VM
	Controllers int
	Timings     ha.Timings
	// Power adds a power fencer.
	Power bool
	// StartLatency is how long a start takes through a controller's link
	// (the hypervisor's boot call).
	StartLatency time.Duration
	// Seed drives dropped heartbeats.
	Seed uint64
}

// Node is one simulated host.
type Node struct {
	ID    string
	Local *fake.Driver
	c     *Cluster

	// guarded by c.mu
	crashed     bool
	partitioned bool
	checkLost   bool
	dropRate    float64
	slow        time.Duration
	agentStop   context.CancelFunc
	agentDone   chan struct{}
	agent       *ha.Agent
}

// Cluster is the simulation.
type Cluster struct {
	cfg         Config
	mu          sync.Mutex
	rng         *rand.Rand
	Nodes       []*Node
	byID        map[string]*Node
	Controllers []*ha.Controller
	Power       *fakepower.Power
	isHA        map[string]bool
	ctx         context.Context
	cut         map[cutKey]bool

	// Violations lists every moment a VM ran on two nodes.
	Violations []string
	// Started records, per VM name, the times it was started.
	Started map[string][]time.Time
	// AgentLog collects the agents' decisions.
	AgentLog *ha.DecisionLog
}

// Spec returns a valid machine spec for a VM with a disk in a shared directory.
func Spec(name string, vcpus int, memMiB int64) vmm.Spec {
	return vmm.Spec{Name: name, VCPUs: vcpus, MemoryMiB: memMiB,
		Disks: []vmm.Disk{{Target: "vda", Source: vmm.DiskSource{Kind: "file", Path: "/shared/" + name + ".qcow2", Format: "qcow2"}}}}
}

// New builds the cluster: every VM is created and running on its node. Call
// Start to run controllers and agents.
func New(ctx context.Context, cfg Config) (*Cluster, error) {
	if cfg.Controllers == 0 {
		cfg.Controllers = 1
	}
	c := &Cluster{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 7)), byID: map[string]*Node{},
		isHA: map[string]bool{}, Started: map[string][]time.Time{}, AgentLog: ha.NewDecisionLog(nil), ctx: ctx}
	var ids []string
	var snodes []scheduler.Node
	for i := range cfg.Nodes {
		id := fmt.Sprintf("node-%d", i+1)
		ids = append(ids, id)
		n := &Node{ID: id, Local: fake.New(), c: c}
		c.Nodes = append(c.Nodes, n)
		c.byID[id] = n
		snodes = append(snodes, scheduler.Node{ID: id, Cores: cfg.NodeCores, RAM: cfg.NodeRAM})
	}
	for _, n := range c.Nodes {
		for _, m := range c.Nodes {
			if m != n {
				n.Local.AddPeer("sim://"+m.ID, m.Local)
			}
		}
	}
	if cfg.Power {
		c.Power = fakepower.New(ids...)
		// A power fence is a power cycle: the node is back 20 s later.
		c.Power.OnPowerOff(func(node string) {
			c.Crash(node)
			time.AfterFunc(20*time.Second, func() { c.Boot(node) })
		})
	}
	for i := range cfg.VMs {
		v := &cfg.VMs[i]
		if v.Node == "" {
			v.Node = ids[i%len(ids)]
		}
		if v.Spec.Name == "" {
			v.Spec = Spec(v.ID, v.Request.VCPUs, max(16, v.Request.RAM>>20))
		}
		c.isHA[v.Spec.Name] = v.HA
		n := c.byID[v.Node]
		if _, err := n.Local.Create(ctx, v.Spec); err != nil {
			return nil, err
		}
		if err := n.Local.Start(ctx, v.Spec.Name); err != nil {
			return nil, err
		}
	}
	// Controller 0 acts; the others observe and answer its NodeView calls.
	c.Controllers = make([]*ha.Controller, cfg.Controllers)
	var others []ha.Peer
	for i := cfg.Controllers - 1; i >= 0; i-- {
		s, err := scheduler.New(scheduler.Cluster{Nodes: snodes})
		if err != nil {
			return nil, err
		}
		var nodes []ha.Node
		for _, n := range c.Nodes {
			nodes = append(nodes, ha.Node{ID: n.ID, Driver: &link{n: n, idx: i}, MigrationURI: "sim://" + n.ID})
		}
		var opts []ha.Option
		if c.Power != nil {
			opts = append(opts, ha.WithPower(c.Power))
		}
		if i > 0 {
			opts = append(opts, ha.AsObserver())
		} else {
			opts = append(opts, ha.WithPeers(others...))
		}
		ctl, err := ha.New(ha.Config{Nodes: nodes, VMs: slices.Clone(cfg.VMs), Scheduler: s, Timings: cfg.Timings}, opts...)
		if err != nil {
			return nil, err
		}
		c.Controllers[i] = ctl
		if i > 0 {
			others = append([]ha.Peer{ctl}, others...)
		}
	}
	return c, nil
}

// Leader is the acting controller.
func (c *Cluster) Leader() *ha.Controller { return c.Controllers[0] }

// Start runs the controllers and the agents until ctx ends; wait returns
// when they all stopped.
func (c *Cluster) Start(ctx context.Context) (wait func()) {
	c.mu.Lock()
	c.ctx = ctx
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, ctl := range c.Controllers {
		wg.Add(1)
		go func() { defer wg.Done(); _ = ctl.Run(ctx) }()
	}
	for _, n := range c.Nodes {
		c.startAgent(ctx, n)
	}
	return func() {
		wg.Wait()
		c.mu.Lock()
		var dones []chan struct{}
		for _, n := range c.Nodes {
			if n.agentDone != nil {
				dones = append(dones, n.agentDone)
			}
		}
		c.mu.Unlock()
		for _, d := range dones {
			<-d
		}
	}
}

func (c *Cluster) startAgent(ctx context.Context, n *Node) {
	var sinks []ha.HeartbeatSink
	for i, ctl := range c.Controllers {
		sinks = append(sinks, &hbLink{n: n, ctl: ctl, idx: i})
	}
	a, err := ha.NewAgent(ha.AgentConfig{Node: n.ID, Driver: n.Local, Controllers: sinks, Check: checkLink{n},
		IsHA: func(name string) bool { return c.isHA[name] }, Timings: c.cfg.Timings, Log: c.AgentLog})
	if err != nil {
		panic(err) // the sim's own configuration: a bug in the test
	}
	actx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	c.mu.Lock()
	n.agent, n.agentStop, n.agentDone = a, cancel, done
	c.mu.Unlock()
	go func() { defer close(done); _ = a.Run(actx) }()
}

// Crash kills a node: its machines die, its agent stops, its links go dark.
func (c *Cluster) Crash(node string) {
	c.mu.Lock()
	n := c.byID[node]
	if n.crashed {
		c.mu.Unlock()
		return
	}
	n.crashed = true
	stop := n.agentStop
	c.mu.Unlock()
	if stop != nil {
		stop()
	}
	list, _ := n.Local.List(context.Background())
	for _, vm := range list {
		n.Local.Crash(vm.Name)
	}
}

// Boot brings a crashed node back (its machines stay down); its agent runs
// until the context given to Start ends.
func (c *Cluster) Boot(node string) {
	c.mu.Lock()
	ctx := c.ctx
	n := c.byID[node]
	if !n.crashed {
		c.mu.Unlock()
		return
	}
	n.crashed = false
	c.mu.Unlock()
	if c.Power != nil {
		_ = c.Power.PowerOn(ctx, node)
	}
	c.startAgent(ctx, n)
}

// Partition cuts (or heals) the links between a node and the controllers;
// cutCheck also takes its check address away.
func (c *Cluster) Partition(node string, cut, cutCheck bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.byID[node].partitioned = cut
	c.byID[node].checkLost = cutCheck
}

// CheckLost takes the node's check address away (or gives it back).
func (c *Cluster) CheckLost(node string, lost bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.byID[node].checkLost = lost
}

// DropHeartbeats loses that fraction of the node's heartbeats.
func (c *Cluster) DropHeartbeats(node string, rate float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.byID[node].dropRate = rate
}

// Slow makes every call through the controllers' link to the node's
// hypervisor take d longer.
func (c *Cluster) Slow(node string, d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.byID[node].slow = d
}

// Running returns, per VM name, the nodes it runs on now.
func (c *Cluster) Running() map[string][]string {
	out := map[string][]string{}
	for _, n := range c.Nodes {
		list, _ := n.Local.List(context.Background())
		for _, vm := range list {
			if vm.State == vmm.StateRunning || vm.State == vmm.StatePaused {
				out[vm.Name] = append(out[vm.Name], n.ID)
			}
		}
	}
	return out
}

// CheckInvariant records a violation when a VM runs on two nodes.
func (c *Cluster) CheckInvariant(when string) {
	for vm, nodes := range c.Running() {
		if len(nodes) > 1 {
			c.mu.Lock()
			c.Violations = append(c.Violations, fmt.Sprintf("%s at %s: vm %s runs on %v", when, time.Now().Format("15:04:05.000"), vm, nodes))
			c.mu.Unlock()
		}
	}
}

// Watch checks the invariant every period until ctx ends.
func (c *Cluster) Watch(ctx context.Context, period time.Duration) {
	tk := time.NewTicker(period)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
			c.CheckInvariant("scan")
		}
	}
}

func (c *Cluster) reachable(n *Node, idx int) (time.Duration, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n.crashed || n.partitioned || c.cut[cutKey{n.ID, idx}] {
		return 0, virtplane.Errorf(virtplane.ErrUnavailable, "node %s unreachable", n.ID)
	}
	return n.slow, nil
}

func wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return virtplane.Errorf(virtplane.ErrTimeout, "sim: %v", ctx.Err())
	case <-t.C:
		return nil
	}
}

// link is a controller's connection to a node's hypervisor.
type link struct {
	n   *Node
	idx int
}

var _ vmm.Driver = (*link)(nil)
var _ vmm.Migrator = (*link)(nil)

func (l *link) enter(ctx context.Context, extra time.Duration) error {
	slow, err := l.n.c.reachable(l.n, l.idx)
	if err != nil {
		return err
	}
	if err := wait(ctx, slow+extra); err != nil {
		return err
	}
	_, err = l.n.c.reachable(l.n, l.idx)
	return err
}

func (l *link) Create(ctx context.Context, s vmm.Spec) (vmm.VM, error) {
	if err := l.enter(ctx, 0); err != nil {
		return vmm.VM{}, err
	}
	return l.n.Local.Create(ctx, s)
}

// Start boots a machine and checks, under the cluster lock so that no other
// start interleaves, that it runs nowhere else.
func (l *link) Start(ctx context.Context, name string) error {
	if err := l.enter(ctx, l.n.c.cfg.StartLatency); err != nil {
		return err
	}
	c := l.n.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := l.n.Local.Start(ctx, name); err != nil {
		return err
	}
	c.Started[name] = append(c.Started[name], time.Now())
	for _, other := range c.Nodes {
		if other == l.n {
			continue
		}
		if vm, err := other.Local.Get(context.Background(), name); err == nil && (vm.State == vmm.StateRunning || vm.State == vmm.StatePaused) {
			c.Violations = append(c.Violations, fmt.Sprintf("start at %s: vm %s started on %s while running on %s", time.Now().Format("15:04:05.000"), name, l.n.ID, other.ID))
		}
	}
	return nil
}

func (l *link) Shutdown(ctx context.Context, name string, timeout time.Duration) error {
	if err := l.enter(ctx, 0); err != nil {
		return err
	}
	return l.n.Local.Shutdown(ctx, name, timeout)
}
func (l *link) Stop(ctx context.Context, name string) error {
	if err := l.enter(ctx, 0); err != nil {
		return err
	}
	return l.n.Local.Stop(ctx, name)
}
func (l *link) Reboot(ctx context.Context, name string) error {
	if err := l.enter(ctx, 0); err != nil {
		return err
	}
	return l.n.Local.Reboot(ctx, name)
}
func (l *link) Suspend(ctx context.Context, name string) error {
	if err := l.enter(ctx, 0); err != nil {
		return err
	}
	return l.n.Local.Suspend(ctx, name)
}
func (l *link) Resume(ctx context.Context, name string) error {
	return virtplane.Errorf(virtplane.ErrNotImplemented, "sim: resume")
}
func (l *link) Delete(ctx context.Context, name string) error {
	if err := l.enter(ctx, 0); err != nil {
		return err
	}
	return l.n.Local.Delete(ctx, name)
}
func (l *link) Get(ctx context.Context, name string) (vmm.VM, error) {
	if err := l.enter(ctx, 0); err != nil {
		return vmm.VM{}, err
	}
	return l.n.Local.Get(ctx, name)
}
func (l *link) List(ctx context.Context) ([]vmm.VM, error) {
	if err := l.enter(ctx, 0); err != nil {
		return nil, err
	}
	return l.n.Local.List(ctx)
}
func (l *link) Migrate(ctx context.Context, name string, target vmm.MigrationTarget, progress func(vmm.MigrationProgress)) error {
	if err := l.enter(ctx, 0); err != nil {
		return err
	}
	return l.n.Local.Migrate(ctx, name, target, progress)
}

// hbLink carries a node's heartbeats to one controller.
type hbLink struct {
	n   *Node
	ctl *ha.Controller
	idx int
}

func (h *hbLink) Heartbeat(ctx context.Context, hb ha.Heartbeat) error {
	c := h.n.c
	c.mu.Lock()
	drop := h.n.crashed || h.n.partitioned || c.cut[cutKey{h.n.ID, h.idx}] || (h.n.dropRate > 0 && c.rng.Float64() < h.n.dropRate)
	c.mu.Unlock()
	if drop {
		return virtplane.Errorf(virtplane.ErrUnavailable, "heartbeat lost")
	}
	return h.ctl.Heartbeat(ctx, hb)
}

type checkLink struct{ n *Node }

func (k checkLink) ProbeCheck(ctx context.Context) error {
	c := k.n.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if k.n.checkLost || k.n.crashed {
		return virtplane.Errorf(virtplane.ErrUnavailable, "check address lost")
	}
	return nil
}

type cutKey struct {
	node string
	ctl  int
}

// CutController cuts node from controller idx only, heartbeats and
// hypervisor (a partial partition the controllers may disagree about).
func (c *Cluster) CutController(node string, idx int, cut bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cut == nil {
		c.cut = map[cutKey]bool{}
	}
	c.cut[cutKey{node, idx}] = cut
}
