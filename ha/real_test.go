package ha_test

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane/ha"
	"github.com/virtplane/virtplane/internal/testenv"
	"github.com/virtplane/virtplane/scheduler"
	"github.com/virtplane/virtplane/vmm"
	"github.com/virtplane/virtplane/vmm/libvirt"
)

// TestRealHostFailure runs the controller over two real libvirtd "hosts",
// each in its own network, mount and UTS namespaces. An HA VM, its qcow2
// disk in a directory both hosts see (the shared file pool), boots on host
// A. Then host A is partitioned while its VM keeps running: its link is
// cut, so its agent's heartbeats and check-address probes fail, and the
// controller's connection to A's hypervisor is cut with it. A's own
// watchdog must stop the VM; the controller must declare A failed, find its
// hypervisor unreachable, count the self-fence timeout (there is no power
// fencer) and boot the VM on host B, whose console must show the guest's
// marker. The VM must never run on both hosts, judged from the hosts' QEMU
// processes themselves, not from libvirt lookups that may be slow.
// Default timings.
func TestRealHostFailure(t *testing.T) {
	r := runPartition(t, true, true)
	assert.Empty(t, r.violations, "the VM ran on both hosts at these times (%d samples)", r.samples)
	assert.Greater(t, r.samples, 10, "invariant samples")
	t.Logf("never on both hosts: %d samples of both hosts' QEMU processes, about every 50 ms from the cut to 1 s after the marker", r.samples)
	assert.False(t, r.qemuAAlive, "host A's watchdog stopped its QEMU")
	assert.Equal(t, ha.NodeFailed, r.stateA, "host A")
	assert.Equal(t, r.hostB, r.location)
	assert.Equal(t, vmm.StateRunning, r.stateOnB, "the VM on host B")

	at := map[ha.EventKind]time.Duration{}
	var fenced, restarted *ha.Event
	for i, e := range r.events {
		if e.Time.Before(r.cut) {
			continue
		}
		if _, ok := at[e.Kind]; !ok {
			at[e.Kind] = e.Time.Sub(r.cut)
		}
		switch {
		case e.Kind == ha.EventFenced && e.Node == r.hostA && fenced == nil:
			fenced = &r.events[i]
		case e.Kind == ha.EventVMRestarted && e.VM == r.vm && restarted == nil:
			restarted = &r.events[i]
		}
		t.Logf("+%6.2fs %s node=%s vm=%s target=%s method=%s: %s", e.Time.Sub(r.cut).Seconds(), e.Kind, e.Node, e.VM, e.Target, e.Method, e.Reason)
	}
	// Cut off from the controller, A's watchdog fired and stopped the VM
	// through A's own hypervisor; B's never fired.
	assert.True(t, r.agents[0].Fenced(), "host A's watchdog")
	assert.NotEmpty(t, r.agents[0].Log().Filter(ha.EventSelfFenced, r.hostA), "host A's self-fence is in its decision log")
	assert.False(t, r.agents[1].Fenced(), "host B's watchdog")
	assert.Empty(t, r.agents[1].Log().Filter(ha.EventSelfFenced, r.hostB), "host B's watchdog")
	require.NotNil(t, fenced, "host A fenced")
	require.NotNil(t, restarted, "VM restarted")
	assert.Equal(t, ha.FenceSelf, fenced.Method, "A's hypervisor is unreachable and there is no power fencer")
	assert.Equal(t, r.hostB, restarted.Target)
	assert.False(t, restarted.Time.Before(fenced.Time), "restart before the fence")
	require.False(t, r.qemuAStopped.IsZero(), "A's QEMU stop was seen")
	assert.True(t, r.qemuAStopped.Before(r.qemuBStarted), "A's QEMU stopped (+%.2fs) before B's started (+%.2fs)",
		r.qemuAStopped.Sub(r.cut).Seconds(), r.qemuBStarted.Sub(r.cut).Seconds())
	t.Logf("host A cut → its watchdog stopped the VM %.2fs, failed %.2fs, fenced %.2fs (%s), restart call done %.2fs, QEMU on B %.2fs, marker on host B's console %.2fs (default timings; the guest boots under %s)",
		r.qemuAStopped.Sub(r.cut).Seconds(), at[ha.EventNodeFailed].Seconds(), at[ha.EventFenced].Seconds(), fenced.Method,
		at[ha.EventVMRestarted].Seconds(), r.qemuBStarted.Sub(r.cut).Seconds(), r.recovered.Seconds(), r.domainType)
}

// TestRealHostFailureWithoutSelfFencing is the same partition with host
// A's watchdog told that the VM is not HA (self-fencing off for it): the
// controller still counts the self-fence timeout and restarts the VM on B
// while A runs it. The invariant check must see that, which shows it can
// fail. The VM has no disk here: QEMU's lock on a shared qcow2 image would
// itself keep B's QEMU from starting (a second guard, which the run with
// the disk also has), and only the watchdog is under test.
func TestRealHostFailureWithoutSelfFencing(t *testing.T) {
	r := runPartition(t, false, false)
	assert.True(t, r.qemuAAlive, "without self-fencing A's QEMU keeps running")
	assert.NotEmpty(t, r.violations, "the invariant check saw the VM on both hosts (%d samples)", r.samples)
	t.Logf("with self-fencing off the check caught the VM on both hosts in %d of %d samples", len(r.violations), r.samples)
}

// partitionResult is what runPartition saw.
type partitionResult struct {
	vm, hostA, hostB, domainType string
	cut                          time.Time
	recovered                    time.Duration // cut → marker on B's console
	qemuAStopped, qemuBStarted   time.Time
	qemuAAlive                   bool // at the end
	violations                   []string
	samples                      int
	events                       []ha.Event
	agents                       []*ha.Agent // A's, then B's
	stateA                       ha.NodeState
	location                     string
	stateOnB                     vmm.State
}

func runPartition(t *testing.T, selfFence, withDisk bool) partitionResult {
	testenv.RequireLibvirt(t) // libvirtd, virtlogd, tini and QEMU installed
	guest := testenv.RequireGuest(t)
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()

	shared := t.TempDir() // outside the directories each host rebinds: both see it
	require.NoError(t, os.Chmod(shared, 0o755))
	hostA := testenv.StartLibvirtHost(t, "vpt-ha-a", "10.232", 0)
	hostB := testenv.StartLibvirtHost(t, "vpt-ha-b", "10.232", 1)

	name := "vpt-ha-" + randHex(4)
	disk := filepath.Join(shared, name+".qcow2")
	out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", disk, "64M").CombinedOutput()
	require.NoError(t, err, string(out))
	spec := vmm.Spec{
		Name: name, VCPUs: 1, MemoryMiB: 160,
		Boot: vmm.Boot{Kernel: guest.Kernel, Initrd: guest.Initrd, Cmdline: "console=ttyS0 panic=-1"},
	}
	if withDisk {
		spec.Disks = []vmm.Disk{{Target: "vda", Source: vmm.DiskSource{Kind: "file", Path: disk, Format: "qcow2"}}}
	}

	// Each host's machine files (console log) live in its own directory of
	// the shared one. The agent reaches its host's libvirtd on the host's
	// own socket; the controller reaches A's over the control network,
	// which the partition cuts (partitionable), and B's directly.
	var ctlLinkA partitionable
	newDriver := func(h *testenv.LibvirtHost, dial func(context.Context) (net.Conn, error)) *libvirt.Driver {
		d, err := libvirt.New(libvirt.Config{Socket: h.Socket, Dial: dial, StateDir: filepath.Join(shared, "state-"+h.Name)}, libvirt.WithValues(h.Values()))
		require.NoError(t, err)
		t.Cleanup(func() { _ = d.Close() })
		return d
	}
	ctlA, ctlB := newDriver(hostA, ctlLinkA.dialer(hostA.Socket)), newDriver(hostB, nil)
	agentA, agentB := newDriver(hostA, nil), newDriver(hostB, nil)
	t.Cleanup(func() { // before the hosts stop: leave no machine defined
		for _, d := range []*libvirt.Driver{ctlB, agentA} {
			c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_ = d.Stop(c, name)
			_ = d.Delete(c, name)
			cancel()
		}
	})

	_, err = ctlA.Create(ctx, spec)
	require.NoError(t, err)
	require.NoError(t, ctlA.Start(ctx, name))
	require.NoError(t, waitMarker(ctx, ctlA.ConsoleLog(name), guest.Marker, 90*time.Second), "first boot on host A")
	require.True(t, qemuRunning(hostA, name), "host A's QEMU runs")

	sched, err := scheduler.New(scheduler.Cluster{Nodes: []scheduler.Node{
		{ID: hostA.Name, Cores: 2, RAM: 2 << 30}, {ID: hostB.Name, Cores: 2, RAM: 2 << 30}}})
	require.NoError(t, err)
	var (
		evMu   sync.Mutex
		events []ha.Event
	)
	timings := ha.DefaultTimings()
	ctl, err := ha.New(ha.Config{
		Nodes: []ha.Node{{ID: hostA.Name, Driver: ctlA}, {ID: hostB.Name, Driver: ctlB}},
		VMs: []ha.VM{{ID: name, Node: hostA.Name, HA: true, SharedDisks: true, Priority: 1,
			Request: scheduler.Request{VCPUs: 1, RAM: 160 << 20}, Spec: spec}},
		Scheduler: sched,
		Timings:   timings,
	}, ha.WithEventSink(func(e ha.Event) { evMu.Lock(); events = append(events, e); evMu.Unlock() }))
	require.NoError(t, err)
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait) // registered after the hosts: runs before they stop
	runCtx, stopRun := context.WithCancel(context.WithoutCancel(ctx))
	t.Cleanup(stopRun)
	wg.Add(1)
	go func() { defer wg.Done(); _ = ctl.Run(runCtx) }()

	var agents []*ha.Agent // A's, then B's
	for _, h := range []struct {
		host *testenv.LibvirtHost
		d    *libvirt.Driver
	}{{hostA, agentA}, {hostB, agentB}} {
		dialer := newNSDialer(t, h.host.NS)
		addr := heartbeatServer(t, runCtx, h.host.Gateway, ctl)
		isHA := func(n string) bool { return n == name }
		if h.host == hostA && !selfFence {
			isHA = func(string) bool { return false } // A's watchdog stops nothing
		}
		a, err := ha.NewAgent(ha.AgentConfig{Node: h.host.Name, Driver: h.d,
			Controllers: []ha.HeartbeatSink{netSink{dialer, addr}}, Check: netCheck{dialer, addr},
			IsHA: isHA, Timings: timings})
		require.NoError(t, err)
		agents = append(agents, a)
		wg.Add(1)
		go func() { defer wg.Done(); _ = a.Run(runCtx) }()
	}
	require.Eventually(t, func() bool {
		sa, errA := ctl.State(hostA.Name)
		sb, errB := ctl.State(hostB.Name)
		loc, settled, errL := ctl.Location(name)
		return errors.Join(errA, errB, errL) == nil && sa == ha.NodeHealthy && sb == ha.NodeHealthy && settled && loc == hostA.Name
	}, 20*time.Second, 100*time.Millisecond, "both hosts healthy, the VM settled on A")

	// The invariant, from the hosts' QEMU processes: never running on both.
	r := partitionResult{vm: name, hostA: hostA.Name, hostB: hostB.Name, domainType: hostA.DomainType}
	var invMu sync.Mutex
	monCtx, monStop := context.WithCancel(ctx)
	monDone := make(chan struct{})
	go func() {
		defer close(monDone)
		for monCtx.Err() == nil {
			onA, onB := qemuRunning(hostA, name), qemuRunning(hostB, name)
			now := time.Now()
			invMu.Lock()
			r.samples++
			if onA && onB {
				r.violations = append(r.violations, now.Format(time.RFC3339Nano))
			}
			if !onA && r.qemuAStopped.IsZero() && !r.cut.IsZero() {
				r.qemuAStopped = now
			}
			if onB && r.qemuBStarted.IsZero() {
				r.qemuBStarted = now
			}
			invMu.Unlock()
			time.Sleep(50 * time.Millisecond)
		}
	}()

	// Host A is partitioned; its VM keeps running.
	invMu.Lock()
	r.cut = time.Now()
	invMu.Unlock()
	ctlLinkA.Cut()
	out, err = exec.Command("ip", "link", "del", hostA.RootIf).CombinedOutput()
	require.NoError(t, err, string(out))

	err = waitMarker(ctx, ctlB.ConsoleLog(name), guest.Marker, 90*time.Second)
	r.recovered = time.Since(r.cut)
	if err == nil {
		time.Sleep(time.Second) // a few more invariant samples with the VM up on B
	}
	monStop()
	<-monDone
	require.NoError(t, err, "boot on host B after host A was cut off")

	r.qemuAAlive = qemuRunning(hostA, name)
	r.stateA, err = ctl.State(hostA.Name)
	require.NoError(t, err)
	r.location, _, err = ctl.Location(name)
	require.NoError(t, err)
	vm, err := ctlB.Get(ctx, name)
	require.NoError(t, err)
	r.stateOnB = vm.State
	stopRun()
	wg.Wait()
	evMu.Lock()
	r.events = append([]ha.Event(nil), events...)
	evMu.Unlock()
	r.agents = agents
	return r
}

// qemuRunning reports whether a host runs the machine's QEMU: its pid file
// (libvirt removes it once QEMU is gone) names a live process. No libvirt
// call: a slow answer must not count as "not running".
func qemuRunning(h *testenv.LibvirtHost, name string) bool {
	pid, err := h.PIDFile(filepath.Join("run", "qemu", name+".pid"))
	return err == nil && alive(pid)
}

// partitionable is the controller's network path to a host's hypervisor:
// connections dialled through it work until Cut, which drops them and
// refuses new ones, as a cut link would.
type partitionable struct {
	mu    sync.Mutex
	cut   bool
	conns []net.Conn
}

func (p *partitionable) dialer(socket string) func(context.Context) (net.Conn, error) {
	return func(ctx context.Context) (net.Conn, error) {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.cut {
			return nil, &net.OpError{Op: "dial", Net: "unix", Err: syscall.ENETUNREACH}
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, "unix", socket)
		if err == nil {
			p.conns = append(p.conns, c)
		}
		return c, err
	}
}

// Cut drops every connection and refuses new ones.
func (p *partitionable) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

// waitMarker waits until the console log holds the marker.
func waitMarker(ctx context.Context, path, marker string, timeout time.Duration) error {
	_, err := testenv.WaitConsole(ctx, path, marker, timeout)
	return err
}
