package ha

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/internal/revert"
	"github.com/virtplane/virtplane/scheduler"
	"github.com/virtplane/virtplane/vmm"
)

// Node is one hypervisor host as the controller reaches it.
type Node struct {
	// ID names the node; the scheduler knows it by the same ID.
	ID string
	// Driver is the controller's connection to the node's hypervisor: it is
	// probed for the hypervisor signal, used to fence, and to start VMs
	// restarted on the node.
	Driver vmm.Driver
	// MigrationURI is how other nodes' drivers reach this one for live
	// migration (vmm.MigrationTarget.URI).
	MigrationURI string
}

// VM is a machine the controller looks after.
type VM struct {
	// ID names the VM in the scheduler; the machine's name on its node is
	// Spec.Name (ID when empty).
	ID string
	// Node is where it runs now.
	Node string
	// HA says it is restarted elsewhere when its node fails (it may be a
	// sold option); non-HA VMs are reported, not restarted.
	HA bool
	// Priority orders restarts: higher first.
	Priority int
	// SharedDisks says every disk of the VM lives on shared storage (Ceph,
	// a SAN, a shared file pool), so another node can boot it. An HA VM
	// without it is reported, not restarted.
	SharedDisks bool
	// Request is what the scheduler places; Pools the pools on Node holding
	// its disks, as in scheduler.VM.
	Request scheduler.Request
	Pools   []string
	// Spec defines the machine on the node that restarts it.
	Spec vmm.Spec
}

func (v VM) name() string {
	if v.Spec.Name != "" {
		return v.Spec.Name
	}
	return v.ID
}

// Heartbeat is what a node agent sends every HeartbeatInterval.
type Heartbeat struct {
	Node string
	// CheckOK says whether the node reaches the cluster's check address.
	CheckOK bool
}

// HeartbeatSink receives heartbeats; a nil error is the acknowledgement the
// node's watchdog counts. Controller implements it; across hosts a
// transport (the daemon's agent API) carries it.
type HeartbeatSink interface {
	Heartbeat(ctx context.Context, hb Heartbeat) error
}

// NodeView is one controller's opinion of a node.
type NodeView struct {
	State         NodeState
	LastHeartbeat time.Time
}

// Peer is another controller asked for its view before a node is fenced.
// Controller implements it.
type Peer interface {
	NodeView(ctx context.Context, node string) (NodeView, error)
}

// Config holds what a Controller needs.
type Config struct {
	Nodes []Node
	// VMs are the machines to look after, on Nodes.
	VMs []VM
	// Scheduler places restarted and drained VMs. The controller adds the
	// VMs it does not know yet and keeps it up to date; it must not be used
	// by others while the controller runs.
	Scheduler *scheduler.Scheduler
	Timings   Timings
}

// Option configures a Controller.
type Option func(*Controller)

// WithPower adds an out-of-band power fencer.
func WithPower(p Power) Option { return func(c *Controller) { c.power = p } }

// WithPeers makes the controller one of several: a node is fenced only when
// a majority of all controllers (this one and the peers) sees it failed.
func WithPeers(peers ...Peer) Option { return func(c *Controller) { c.peers = peers } }

// AsObserver makes the controller detect and answer NodeView and heartbeats
// without fencing or restarting anything (a controller that is not leader).
func AsObserver() Option { return func(c *Controller) { c.observer = true } }

// WithEventSink receives every event of the decision log as it happens.
func WithEventSink(f func(Event)) Option { return func(c *Controller) { c.sink = f } }

// WithLogger sets the logger; the default discards.
func WithLogger(l *slog.Logger) Option { return func(c *Controller) { c.logger = l } }

type vmPhase int

const (
	vmPlaced   vmPhase = iota // runs (or should) on vm.Node
	vmFencing                 // its node is being fenced
	vmMoving                  // a restart or migration is under way
	vmPending                 // fenced, waiting for a node
	vmStarting                // an in-place start is under way
)

type vmRecord struct {
	VM
	phase vmPhase
	// drainedFrom is the node a drain moved it from, for Return.
	drainedFrom string
	// unplacedLogged keeps retries of an unplaced VM out of the log.
	unplacedLogged bool
}

type nodePhase int

const (
	nodeIdle nodePhase = iota
	nodeFencing
	nodeFenced
)

type nodeRecord struct {
	Node
	phase   nodePhase
	nextTry time.Time
	// waitedMajority is set once "no majority" was logged, to log it once.
	waitedMajority bool
}

// Controller watches the nodes, fences failed ones and restarts their HA
// VMs elsewhere; it also drains nodes for maintenance. Create it with New
// and run it with Run. Its methods are safe for concurrent use.
type Controller struct {
	t        Timings
	power    Power
	peers    []Peer
	observer bool
	sink     func(Event)
	logger   *slog.Logger
	log      *DecisionLog

	mu    sync.Mutex
	det   *Detector
	sched *scheduler.Scheduler
	nodes map[string]*nodeRecord
	vms   map[string]*vmRecord

	restartSlots chan struct{}
	wg           sync.WaitGroup
	retryNow     chan struct{}
}

// New checks cfg and returns a controller.
func New(cfg Config, opts ...Option) (*Controller, error) {
	t := cfg.Timings.WithDefaults()
	if err := t.Validate(); err != nil {
		return nil, err
	}
	if cfg.Scheduler == nil {
		return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "config.Scheduler: nil")
	}
	c := &Controller{
		t: t, det: NewDetector(t), sched: cfg.Scheduler,
		nodes: map[string]*nodeRecord{}, vms: map[string]*vmRecord{},
		restartSlots: make(chan struct{}, t.RestartParallelism),
		retryNow:     make(chan struct{}, 1),
	}
	for _, o := range opts {
		o(c)
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	c.log = NewDecisionLog(c.sink)
	now := time.Now()
	for i, n := range cfg.Nodes {
		if n.ID == "" {
			return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "config.Nodes[%d].ID: empty", i)
		}
		if n.Driver == nil {
			return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "config.Nodes[%d].Driver: nil", i)
		}
		if _, dup := c.nodes[n.ID]; dup {
			return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "config.Nodes[%d].ID %q: listed twice", i, n.ID)
		}
		c.nodes[n.ID] = &nodeRecord{Node: n}
		c.det.AddNode(n.ID, now)
	}
	r := revert.New()
	defer r.Fail()
	for i, v := range cfg.VMs {
		if v.ID == "" {
			return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "config.VMs[%d].ID: empty", i)
		}
		if _, ok := c.nodes[v.Node]; !ok {
			return nil, virtplane.Errorf(virtplane.ErrNotFound, "config.VMs[%d].Node %q: no such node", i, v.Node)
		}
		if _, dup := c.vms[v.ID]; dup {
			return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "config.VMs[%d].ID %q: listed twice", i, v.ID)
		}
		err := c.sched.AddVM(v.schedVM())
		switch {
		case err == nil:
			id := v.ID
			r.Add(func() { _ = c.sched.RemoveVM(id) })
		case errors.Is(err, virtplane.ErrAlreadyExists):
		default:
			return nil, fmt.Errorf("config.VMs[%d]: %w", i, err)
		}
		c.vms[v.ID] = &vmRecord{VM: v}
	}
	r.Success()
	return c, nil
}

func (v VM) schedVM() scheduler.VM {
	return scheduler.VM{ID: v.ID, Node: v.Node, Request: v.Request, Pools: v.Pools, Priority: v.Priority}
}

// Log returns the decision log.
func (c *Controller) Log() *DecisionLog { return c.log }

// Location returns where the controller believes a VM runs, and whether it
// is settled there (false while it is being fenced, moved or waits for a node).
func (c *Controller) Location(vm string) (node string, settled bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.vms[vm]
	if !ok {
		return "", false, virtplane.Errorf(virtplane.ErrNotFound, "vm %q", vm)
	}
	return v.Node, v.phase == vmPlaced, nil
}

// State returns the controller's state of a node.
func (c *Controller) State(node string) (NodeState, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, ok := c.det.State(node)
	if !ok {
		return "", virtplane.Errorf(virtplane.ErrNotFound, "node %q", node)
	}
	return st, nil
}

// Heartbeat records a node's heartbeat (HeartbeatSink).
func (c *Controller) Heartbeat(ctx context.Context, hb Heartbeat) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.nodes[hb.Node]; !ok {
		return virtplane.Errorf(virtplane.ErrNotFound, "heartbeat from unknown node %q", hb.Node)
	}
	c.det.Heartbeat(hb.Node, time.Now(), hb.CheckOK)
	return nil
}

// NodeView answers a peer controller (Peer).
func (c *Controller) NodeView(ctx context.Context, node string) (NodeView, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, ok := c.det.State(node)
	if !ok {
		return NodeView{}, virtplane.Errorf(virtplane.ErrNotFound, "node %q", node)
	}
	return NodeView{State: st, LastHeartbeat: c.det.LastHeartbeat(node)}, nil
}

// RetryUnplaced asks the controller to try placing waiting VMs now, for
// example after capacity was added (the controller also retries every
// RetryInterval).
func (c *Controller) RetryUnplaced() {
	select {
	case c.retryNow <- struct{}{}:
	default:
	}
}

// Run watches the nodes until ctx ends, then waits for the work it started.
func (c *Controller) Run(ctx context.Context) error {
	for _, id := range slices.Sorted(maps.Keys(c.nodes)) {
		n := c.nodes[id]
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.probeLoop(ctx, n.ID, n.Driver)
		}()
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.tickLoop(ctx)
	}()
	if !c.observer {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.retryLoop(ctx)
		}()
	}
	<-ctx.Done()
	c.wg.Wait()
	return nil
}

func (c *Controller) tickLoop(ctx context.Context) {
	tk := time.NewTicker(c.t.TickInterval)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
		c.tick(ctx)
	}
}

func (c *Controller) tick(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	for _, tr := range c.det.Tick(now) {
		switch tr.To {
		case NodeSuspect:
			c.log.Record(Event{Time: now, Kind: EventNodeSuspect, Node: tr.Node, Reason: tr.Reason})
		case NodeFailed:
			c.log.Record(Event{Time: now, Kind: EventNodeFailed, Node: tr.Node, Reason: tr.Reason})
			_ = c.sched.SetNodeState(tr.Node, scheduler.NodeOffline)
		case NodeHealthy:
			c.log.Record(Event{Time: now, Kind: EventNodeHealthy, Node: tr.Node, Reason: tr.Reason})
			if tr.From == NodeFailed {
				if n := c.nodes[tr.Node]; n.phase == nodeFenced {
					n.phase = nodeIdle
				}
				_ = c.sched.SetNodeState(tr.Node, scheduler.NodeActive)
				c.RetryUnplaced()
			}
		}
	}
	if c.observer {
		return
	}
	for _, id := range slices.Sorted(maps.Keys(c.nodes)) {
		n := c.nodes[id]
		st, _ := c.det.State(id)
		if st == NodeFailed && n.phase == nodeIdle && !now.Before(n.nextTry) {
			n.phase = nodeFencing
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				c.handleFailed(ctx, id)
			}()
		}
	}
}

// handleFailed asks the peers, fences the node and evacuates its HA VMs.
func (c *Controller) handleFailed(ctx context.Context, node string) {
	agreeing, voters, votes := c.votes(ctx, node)
	c.mu.Lock()
	n := c.nodes[node]
	if !Majority(agreeing, voters) {
		if !n.waitedMajority {
			c.log.Record(Event{Time: time.Now(), Kind: EventFenceFailed, Node: node,
				Reason: fmt.Sprintf("no majority sees the node failed (%d of %d: %s); waiting", agreeing, voters, votes)})
			n.waitedMajority = true
		}
		n.phase, n.nextTry = nodeIdle, time.Now().Add(c.t.TickInterval)
		c.mu.Unlock()
		return
	}
	n.waitedMajority = false
	var restart []*vmRecord
	var names []string
	for _, id := range slices.Sorted(maps.Keys(c.vms)) {
		v := c.vms[id]
		if v.Node != node || v.phase != vmPlaced {
			continue
		}
		switch {
		case !v.HA:
			c.log.Record(Event{Time: time.Now(), Kind: EventVMNotRestart, Node: node, VM: v.ID, Reason: "not an HA VM"})
		case !v.SharedDisks:
			c.log.Record(Event{Time: time.Now(), Kind: EventVMNotRestart, Node: node, VM: v.ID, Reason: "disks not on shared storage"})
		default:
			v.phase = vmFencing
			restart = append(restart, v)
			names = append(names, v.name())
		}
	}
	if len(restart) == 0 {
		n.phase = nodeFenced
		c.mu.Unlock()
		return
	}
	c.log.Record(Event{Time: time.Now(), Kind: EventFenceStarted, Node: node,
		Reason: fmt.Sprintf("%d of %d controllers see it failed (%s); %d HA VMs to restart", agreeing, voters, votes, len(restart))})
	c.mu.Unlock()

	method, detail, err := fence(ctx, fenceRequest{
		node: node, driver: n.Driver, power: c.power, vms: names, t: c.t,
		lastHeartbeat: func(ctx context.Context) (time.Time, error) { return c.lastHeartbeat(ctx, node) },
	})

	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.log.Record(Event{Time: time.Now(), Kind: EventFenceFailed, Node: node, Reason: err.Error() + "; nothing restarted, retrying"})
		for _, v := range restart {
			v.phase = vmPlaced
		}
		n.phase, n.nextTry = nodeIdle, time.Now().Add(c.t.RetryInterval)
		return
	}
	c.log.Record(Event{Time: time.Now(), Kind: EventFenced, Node: node, Method: method, Reason: detail})
	n.phase = nodeFenced
	for _, v := range restart {
		v.phase = vmPending
	}
	c.evacuateLocked(ctx, node, restart)
}

// votes collects this controller's and the peers' views of node.
func (c *Controller) votes(ctx context.Context, node string) (agreeing, voters int, summary string) {
	c.mu.Lock()
	own, _ := c.det.State(node)
	c.mu.Unlock()
	voters = 1 + len(c.peers)
	if own == NodeFailed {
		agreeing++
	}
	summary = "self: " + string(own)
	for i, p := range c.peers {
		pctx, cancel := context.WithTimeout(ctx, c.t.ProbeTimeout)
		v, err := p.NodeView(pctx, node)
		cancel()
		switch {
		case err != nil:
			summary += fmt.Sprintf(", peer %d: unreachable", i)
		default:
			summary += fmt.Sprintf(", peer %d: %s", i, v.State)
			if v.State == NodeFailed {
				agreeing++
			}
		}
	}
	return agreeing, voters, summary
}

// lastHeartbeat is the latest heartbeat of node that this controller or a
// peer that sees it failed received. The node's watchdog counts from the
// start of its last heartbeat round that a majority acknowledged; that
// majority and the majority that agreed to fence share a controller, so
// this time is never earlier than the watchdog's.
func (c *Controller) lastHeartbeat(ctx context.Context, node string) (time.Time, error) {
	c.mu.Lock()
	last := c.det.LastHeartbeat(node)
	c.mu.Unlock()
	agreeing := 1
	for _, p := range c.peers {
		pctx, cancel := context.WithTimeout(ctx, c.t.ProbeTimeout)
		v, err := p.NodeView(pctx, node)
		cancel()
		if err != nil || v.State != NodeFailed {
			continue
		}
		agreeing++
		if v.LastHeartbeat.After(last) {
			last = v.LastHeartbeat
		}
	}
	if !Majority(agreeing, 1+len(c.peers)) {
		return time.Time{}, virtplane.Errorf(virtplane.ErrUnavailable, "no majority of controllers answers for node %q", node)
	}
	return last, nil
}

// evacuateLocked plans the pending VMs of node and starts their restarts
// (c.mu held).
func (c *Controller) evacuateLocked(ctx context.Context, node string, vms []*vmRecord) {
	list := make([]scheduler.VM, len(vms))
	byID := map[string]*vmRecord{}
	for i, v := range vms {
		list[i] = v.schedVM()
		byID[v.ID] = v
	}
	plan, err := c.sched.PlanEvacuation(node, list)
	if err != nil {
		for _, v := range vms {
			c.log.Record(Event{Time: time.Now(), Kind: EventVMUnplaced, Node: node, VM: v.ID, Reason: err.Error()})
		}
		return
	}
	for _, u := range plan.Unplaced {
		if v := byID[u.VM]; v.unplacedLogged {
			continue
		} else {
			v.unplacedLogged = true
		}
		c.log.Record(Event{Time: time.Now(), Kind: EventVMUnplaced, Node: node, VM: u.VM,
			Reason: fmt.Sprintf("priority %d: %v; retried when capacity appears", u.Priority, u.Err)})
	}
	type job struct {
		v      *vmRecord
		moved  VM
		target *nodeRecord
	}
	var jobs []job
	for _, m := range plan.Moves {
		v := byID[m.VM]
		// Book the capacity now so that the next plan counts it.
		moved := v.VM
		moved.Node, moved.Pools = m.To, m.Pools
		if err := c.moveInScheduler(v.VM, moved); err != nil {
			c.log.Record(Event{Time: time.Now(), Kind: EventVMUnplaced, Node: node, VM: v.ID, Reason: err.Error()})
			continue
		}
		v.phase = vmMoving
		jobs = append(jobs, job{v, moved, c.nodes[m.To]})
	}
	if len(jobs) == 0 {
		return
	}
	// One dispatcher hands out restart slots in plan order, so that high
	// priorities start first; the restarts themselves run in parallel.
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for _, j := range jobs {
			select {
			case c.restartSlots <- struct{}{}:
			case <-ctx.Done():
				c.mu.Lock()
				_ = c.moveInScheduler(j.moved, j.v.VM)
				j.v.phase = vmPending
				c.mu.Unlock()
				continue
			}
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				defer func() { <-c.restartSlots }()
				c.restart(ctx, j.v, j.moved, j.target)
			}()
		}
	}()
}

// moveInScheduler replaces from by to in the scheduler, all or nothing.
func (c *Controller) moveInScheduler(from, to VM) error {
	if err := c.sched.RemoveVM(from.ID); err != nil && !errors.Is(err, virtplane.ErrNotFound) {
		return err
	}
	if err := c.sched.AddVM(to.schedVM()); err != nil {
		_ = c.sched.AddVM(from.schedVM())
		return err
	}
	return nil
}

// restart defines and boots v on target (holding a restart slot).
func (c *Controller) restart(ctx context.Context, v *vmRecord, moved VM, target *nodeRecord) {
	rctx, cancel := context.WithTimeout(ctx, c.t.RestartTimeout)
	defer cancel()
	err := startOn(rctx, target.Driver, v.Spec, v.name())
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.log.Record(Event{Time: time.Now(), Kind: EventVMRestartFail, Node: v.Node, VM: v.ID, Target: target.ID, Reason: err.Error() + "; retried"})
		_ = c.moveInScheduler(moved, v.VM)
		v.phase = vmPending
		return
	}
	from := v.Node
	v.Node, v.Pools = moved.Node, moved.Pools
	v.phase = vmPlaced
	v.unplacedLogged = false
	c.log.Record(Event{Time: time.Now(), Kind: EventVMRestarted, Node: from, VM: v.ID, Target: target.ID,
		Reason: fmt.Sprintf("priority %d, placed by the scheduler's evacuation plan", v.Priority)})
}

// startOn defines (when needed) and boots a machine, undoing the definition
// when the boot fails. A start whose outcome is unknown (the call failed but
// the machine may run) counts as done: restarting it elsewhere could run it
// twice.
func startOn(ctx context.Context, d vmm.Driver, spec vmm.Spec, name string) error {
	spec.Name = name
	r := revert.New()
	defer r.Fail()
	if _, err := d.Create(ctx, spec); err == nil {
		r.Add(func() { _ = d.Delete(context.WithoutCancel(ctx), name) })
	} else if !errors.Is(err, virtplane.ErrAlreadyExists) {
		return err
	}
	err := d.Start(ctx, name)
	if err == nil || errors.Is(err, virtplane.ErrConflict) {
		vm, gerr := d.Get(context.WithoutCancel(ctx), name)
		if gerr == nil && vm.State == vmm.StateRunning {
			r.Success()
			return nil
		}
		if err == nil {
			err = virtplane.Errorf(virtplane.ErrConflict, "vm %q not running after start", name)
		}
		return err
	}
	vm, gerr := d.Get(context.WithoutCancel(ctx), name)
	if gerr != nil || vm.State == vmm.StateRunning {
		r.Success() // it may run: keep it where it is
		return nil
	}
	return err
}

func (c *Controller) retryLoop(ctx context.Context) {
	tk := time.NewTicker(c.t.RetryInterval)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		case <-c.retryNow:
		}
		c.retryPending(ctx)
	}
}

// retryPending plans the VMs waiting for a node again.
func (c *Controller) retryPending(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	bySource := map[string][]*vmRecord{}
	for _, id := range slices.Sorted(maps.Keys(c.vms)) {
		if v := c.vms[id]; v.phase == vmPending {
			bySource[v.Node] = append(bySource[v.Node], v)
		}
	}
	for _, src := range slices.Sorted(maps.Keys(bySource)) {
		if st, _ := c.det.State(src); st == NodeHealthy {
			// The node is back: its VMs, fenced, can start where they are
			// (the evacuation plan never targets its own source).
			for _, v := range bySource[src] {
				moved := v.VM
				v.phase = vmMoving
				target := c.nodes[src]
				c.wg.Add(1)
				go func() {
					defer c.wg.Done()
					select {
					case c.restartSlots <- struct{}{}:
					case <-ctx.Done():
						c.mu.Lock()
						v.phase = vmPending
						c.mu.Unlock()
						return
					}
					defer func() { <-c.restartSlots }()
					c.restart(ctx, v, moved, target)
				}()
			}
			continue
		}
		c.evacuateLocked(ctx, src, bySource[src])
	}
}

// probeLoop asks a node's hypervisor for its machines every ProbeInterval.
func (c *Controller) probeLoop(ctx context.Context, node string, d vmm.Driver) {
	tk := time.NewTicker(c.t.ProbeInterval)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
		pctx, cancel := context.WithTimeout(ctx, c.t.ProbeTimeout)
		list, err := d.List(pctx)
		cancel()
		if err != nil {
			continue
		}
		c.mu.Lock()
		c.det.HypervisorOK(node, time.Now())
		if !c.observer {
			c.reconcileLocked(ctx, node, list)
		}
		c.mu.Unlock()
	}
}

// reconcileLocked handles HA VMs found stopped on a node that answers: on a
// healthy node they are started in place; on a suspect node (whose watchdog
// may have stopped them) the hypervisor has just shown them stopped, which
// is a fence of that VM, so they are restarted elsewhere.
func (c *Controller) reconcileLocked(ctx context.Context, node string, list []vmm.VM) {
	st, _ := c.det.State(node)
	if st == NodeFailed || c.nodes[node].phase != nodeIdle {
		return
	}
	byName := map[string]vmm.VM{}
	for _, vm := range list {
		byName[vm.Name] = vm
	}
	if st == NodeHealthy {
		c.removeStaleLocked(ctx, node, list)
	}
	var relocate []*vmRecord
	for _, id := range slices.Sorted(maps.Keys(c.vms)) {
		v := c.vms[id]
		if v.Node != node || v.phase != vmPlaced || !v.HA || !v.SharedDisks {
			continue
		}
		vm, ok := byName[v.name()]
		if !ok || (vm.State != vmm.StateStopped && vm.State != vmm.StateCrashed) {
			continue
		}
		if st == NodeHealthy {
			v.phase = vmStarting
			drv := c.nodes[node].Driver
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				rctx, cancel := context.WithTimeout(ctx, c.t.RestartTimeout)
				err := startOn(rctx, drv, v.Spec, v.name())
				cancel()
				c.mu.Lock()
				defer c.mu.Unlock()
				v.phase = vmPlaced
				if err != nil {
					c.log.Record(Event{Time: time.Now(), Kind: EventVMRestartFail, Node: node, VM: v.ID, Target: node, Reason: "in place: " + err.Error()})
					return
				}
				c.log.Record(Event{Time: time.Now(), Kind: EventVMRestarted, Node: node, VM: v.ID, Target: node, Reason: fmt.Sprintf("found %s on its healthy node; started in place", vm.State)})
			}()
			continue
		}
		c.log.Record(Event{Time: time.Now(), Kind: EventFenced, Node: node, VM: v.ID, Method: FenceHypervisor,
			Reason: fmt.Sprintf("node suspect and the hypervisor shows the VM %s", vm.State)})
		v.phase = vmPending
		relocate = append(relocate, v)
	}
	if len(relocate) > 0 {
		c.evacuateLocked(ctx, node, relocate)
	}
}

// removeStaleLocked deletes, on a healthy node, the stopped definitions of
// VMs that were restarted elsewhere while the node was away, so that nobody
// boots the old copy by hand (c.mu held). Their disks belong to storage and
// stay.
func (c *Controller) removeStaleLocked(ctx context.Context, node string, list []vmm.VM) {
	byName := map[string]*vmRecord{}
	for _, v := range c.vms {
		byName[v.name()] = v
	}
	drv := c.nodes[node].Driver
	for _, vm := range list {
		v, ok := byName[vm.Name]
		if !ok || v.Node == node || v.phase != vmPlaced || (vm.State != vmm.StateStopped && vm.State != vmm.StateCrashed) {
			continue
		}
		name, id, now := vm.Name, v.ID, v.Node
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			dctx, cancel := context.WithTimeout(ctx, c.t.ProbeTimeout)
			defer cancel()
			if err := drv.Delete(dctx, name); err != nil {
				return // tried again on the next probe
			}
			c.log.Record(Event{Time: time.Now(), Kind: EventStaleRemoved, Node: node, VM: id,
				Reason: fmt.Sprintf("stopped copy removed; the VM runs on %s", now)})
		}()
	}
}
