// Command ha-controller shows the HA controller (package ha) keeping VMs
// running over three simulated nodes, without the daemon: node agents send
// heartbeats, node-1 crashes, the controller detects it, fences it through
// a power fencer (the ha/fakepower fake), and restarts its HA VMs on the
// other nodes in priority order, where the scheduler has room; the VM sold
// without HA is reported, not restarted.
//
//	go run ./examples/ha-controller
//
// The nodes are vmm/fake drivers: swap in vmm/libvirt drivers and an IPMI
// fencer and the same controller runs a real cluster.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/ha"
	"github.com/virtplane/virtplane/ha/fakepower"
	"github.com/virtplane/virtplane/scheduler"
	"github.com/virtplane/virtplane/vmm"
	"github.com/virtplane/virtplane/vmm/fake"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := run(ctx, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "ha-controller:", err)
		os.Exit(1)
	}
}

// host is a simulated node: its hypervisor (a fake driver) and whether it
// is up. The controller reaches it through link, which fails while it is down.
type host struct {
	id   string
	hv   *fake.Driver
	down atomic.Bool
	stop context.CancelFunc // its agent
}

// crash powers the node off: its machines stop and nothing answers.
func (h *host) crash() {
	if h.down.Swap(true) {
		return
	}
	if h.stop != nil {
		h.stop()
	}
	list, _ := h.hv.List(context.Background())
	for _, m := range list {
		h.hv.Crash(m.Name)
	}
}

type vmSpec struct {
	id, node string
	ha       bool
	priority int
}

func run(ctx context.Context, out io.Writer) error {
	var hosts []*host
	byID := map[string]*host{}
	var snodes []scheduler.Node
	for i := 1; i <= 3; i++ {
		h := &host{id: fmt.Sprintf("node-%d", i), hv: fake.New()}
		hosts = append(hosts, h)
		byID[h.id] = h
		snodes = append(snodes, scheduler.Node{ID: h.id, Cores: 8, RAM: 16 << 30})
	}
	// What runs where: node-1 holds two HA VMs and one without HA.
	specs := []vmSpec{{"db-1", "node-1", true, 20}, {"web-1", "node-1", true, 10}, {"batch-1", "node-1", false, 0}, {"web-2", "node-2", true, 10}}
	var vms []ha.VM
	for _, s := range specs {
		spec := vmm.Spec{Name: s.id, VCPUs: 2, MemoryMiB: 2048,
			Disks: []vmm.Disk{{Target: "vda", Source: vmm.DiskSource{Kind: "file", Path: "/shared/" + s.id + ".qcow2", Format: "qcow2"}}}}
		hv := byID[s.node].hv
		if _, err := hv.Create(ctx, spec); err != nil {
			return err
		}
		if err := hv.Start(ctx, s.id); err != nil {
			return err
		}
		vms = append(vms, ha.VM{ID: s.id, Node: s.node, HA: s.ha, Priority: s.priority, SharedDisks: true,
			Request: scheduler.Request{VCPUs: 2, RAM: 2 << 30}, Spec: spec})
	}
	sched, err := scheduler.New(scheduler.Cluster{Nodes: snodes})
	if err != nil {
		return err
	}
	power := fakepower.New("node-1", "node-2", "node-3")
	power.OnPowerOff(func(node string) { byID[node].crash() })

	var mu sync.Mutex
	var lines []string
	say := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		lines = append(lines, fmt.Sprintf(format, args...))
	}
	var nodes []ha.Node
	for _, h := range hosts {
		nodes = append(nodes, ha.Node{ID: h.id, Driver: link{h}, MigrationURI: "sim://" + h.id})
	}
	ctl, err := ha.New(ha.Config{Nodes: nodes, VMs: vms, Scheduler: sched, Timings: ha.DefaultTimings()},
		ha.WithPower(power), ha.WithEventSink(func(e ha.Event) {
			switch e.Kind {
			case ha.EventNodeFailed:
				say("%s failed", e.Node)
			case ha.EventFenced:
				say("%s fenced (%s)", e.Node, e.Method)
			case ha.EventVMRestarted:
				say("%s restarted on %s", e.VM, e.Target)
			case ha.EventVMNotRestart:
				say("%s not restarted: %s", e.VM, e.Reason)
			}
		}))
	if err != nil {
		return err
	}
	runCtx, stopAll := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stopAll(); wg.Wait() }()
	wg.Add(1)
	go func() { defer wg.Done(); _ = ctl.Run(runCtx) }()
	for _, h := range hosts {
		a, err := ha.NewAgent(ha.AgentConfig{Node: h.id, Driver: h.hv, Controllers: []ha.HeartbeatSink{ctl}, Check: okCheck{h},
			IsHA: func(name string) bool { return name != "batch-1" }, Timings: ha.DefaultTimings()})
		if err != nil {
			return err
		}
		actx, stop := context.WithCancel(runCtx)
		h.stop = stop
		wg.Add(1)
		go func() { defer wg.Done(); _ = a.Run(actx) }()
	}

	fmt.Fprintln(out, "3 nodes up; node-1 runs db-1 (HA, priority 20), web-1 (HA, priority 10) and batch-1 (no HA)")
	time.Sleep(2 * time.Second) // heartbeats flow
	crashed := time.Now()
	fmt.Fprintln(out, "node-1 crashes")
	byID["node-1"].crash()

	// Until both HA VMs of node-1 run elsewhere.
	for {
		done := true
		for _, id := range []string{"db-1", "web-1"} {
			node, settled, err := ctl.Location(id)
			if err != nil {
				return err
			}
			if !settled || node == "node-1" || !running(ctx, byID[node], id) {
				done = false
			}
		}
		if done {
			break
		}
		select {
		case <-ctx.Done():
			return virtplane.Errorf(virtplane.ErrTimeout, "the HA VMs of node-1 did not come back: %v", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	back := time.Since(crashed)
	mu.Lock()
	for _, l := range lines {
		fmt.Fprintln(out, l)
	}
	mu.Unlock()
	var where []string
	for _, h := range hosts {
		list, err := link{h}.List(ctx)
		if err != nil {
			where = append(where, h.id+": down")
			continue
		}
		var names []string
		for _, m := range list {
			if m.State == vmm.StateRunning {
				names = append(names, m.Name)
			}
		}
		sort.Strings(names)
		where = append(where, h.id+": "+strings.Join(names, " "))
	}
	fmt.Fprintf(out, "running now: %s\n", strings.Join(where, "; "))
	fmt.Fprintf(out, "HA VMs back %.1fs after the crash\n", back.Seconds())
	return nil
}

func running(ctx context.Context, h *host, name string) bool {
	vm, err := h.hv.Get(ctx, name)
	return err == nil && vm.State == vmm.StateRunning
}

// okCheck is the node's probe of the check address: fine while it is up.
type okCheck struct{ h *host }

func (c okCheck) ProbeCheck(context.Context) error {
	if c.h.down.Load() {
		return virtplane.Errorf(virtplane.ErrUnavailable, "%s is down", c.h.id)
	}
	return nil
}

// link is the controller's connection to a node's hypervisor: it fails
// while the node is down, as a TCP connection to a dead host would.
type link struct{ h *host }

var _ vmm.Driver = link{}

func (l link) up() error {
	if l.h.down.Load() {
		return virtplane.Errorf(virtplane.ErrUnavailable, "%s does not answer", l.h.id)
	}
	return nil
}

func (l link) Create(ctx context.Context, s vmm.Spec) (vmm.VM, error) {
	if err := l.up(); err != nil {
		return vmm.VM{}, err
	}
	return l.h.hv.Create(ctx, s)
}

func (l link) Start(ctx context.Context, name string) error {
	if err := l.up(); err != nil {
		return err
	}
	return l.h.hv.Start(ctx, name)
}

func (l link) Shutdown(ctx context.Context, name string, timeout time.Duration) error {
	if err := l.up(); err != nil {
		return err
	}
	return l.h.hv.Shutdown(ctx, name, timeout)
}

func (l link) Stop(ctx context.Context, name string) error {
	if err := l.up(); err != nil {
		return err
	}
	return l.h.hv.Stop(ctx, name)
}

func (l link) Reboot(ctx context.Context, name string) error {
	if err := l.up(); err != nil {
		return err
	}
	return l.h.hv.Reboot(ctx, name)
}

func (l link) Suspend(ctx context.Context, name string) error {
	if err := l.up(); err != nil {
		return err
	}
	return l.h.hv.Suspend(ctx, name)
}

func (l link) Resume(ctx context.Context, name string) error {
	if err := l.up(); err != nil {
		return err
	}
	return l.h.hv.Resume(ctx, name)
}

func (l link) Delete(ctx context.Context, name string) error {
	if err := l.up(); err != nil {
		return err
	}
	return l.h.hv.Delete(ctx, name)
}

func (l link) Get(ctx context.Context, name string) (vmm.VM, error) {
	if err := l.up(); err != nil {
		return vmm.VM{}, err
	}
	return l.h.hv.Get(ctx, name)
}

func (l link) List(ctx context.Context) ([]vmm.VM, error) {
	if err := l.up(); err != nil {
		return nil, err
	}
	return l.h.hv.List(ctx)
}
