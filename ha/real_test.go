package ha_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
// A. Then host A dies: its libvirtd and its QEMU are killed with SIGKILL and
// its link is cut, which silences its agent (still running, like a node
// whose control plane died but which does not know it yet). The controller
// must declare A failed, confirm the fence by the self-fence timeout (A's
// hypervisor does not answer and there is no power fencer), and boot the VM
// on host B, whose console must show the guest's marker. The VM must never
// run on both hosts. Default timings.
func TestRealHostFailure(t *testing.T) {
	testenv.RequireLibvirt(t) // libvirtd, virtlogd, tini and QEMU installed
	guest := testenv.RequireGuest(t)
	ctx, cancel := context.WithCancel(t.Context())
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
		Disks: []vmm.Disk{{Target: "vda", Source: vmm.DiskSource{Kind: "file", Path: disk, Format: "qcow2"}}},
		Boot:  vmm.Boot{Kernel: guest.Kernel, Initrd: guest.Initrd, Cmdline: "console=ttyS0 panic=-1"},
	}

	// Each host's machine files (console log) live in its own directory of
	// the shared one; the controller and the host's agent each have their
	// own connection to the host's libvirtd.
	newDriver := func(h *testenv.LibvirtHost) *libvirt.Driver {
		d, err := libvirt.New(libvirt.Config{Socket: h.Socket, StateDir: filepath.Join(shared, "state-"+h.Name)}, libvirt.WithValues(h.Values()))
		require.NoError(t, err)
		t.Cleanup(func() { _ = d.Close() })
		return d
	}
	ctlA, ctlB := newDriver(hostA), newDriver(hostB)
	agentA, agentB := newDriver(hostA), newDriver(hostB)
	t.Cleanup(func() { // before the hosts stop: leave no machine defined
		for _, d := range []*libvirt.Driver{ctlB, ctlA} {
			// A dead libvirtd is redialled until the context ends: keep it short.
			c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = d.Stop(c, name)
			_ = d.Delete(c, name)
			cancel()
		}
	})

	_, err = ctlA.Create(ctx, spec)
	require.NoError(t, err)
	require.NoError(t, ctlA.Start(ctx, name))
	require.NoError(t, waitMarker(ctx, ctlA.ConsoleLog(name), guest.Marker, 90*time.Second), "first boot on host A")
	qemuA, err := hostA.PIDFile(filepath.Join("run", "qemu", name+".pid"))
	require.NoError(t, err)
	libvirtdA, err := hostA.PIDFile("libvirtd.pid")
	require.NoError(t, err)

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
	t.Cleanup(cancel)
	wg.Add(1)
	go func() { defer wg.Done(); _ = ctl.Run(ctx) }()

	var agents []*ha.Agent // A's, then B's
	for _, h := range []struct {
		host *testenv.LibvirtHost
		d    *libvirt.Driver
	}{{hostA, agentA}, {hostB, agentB}} {
		dialer := newNSDialer(t, h.host.NS)
		addr := heartbeatServer(t, ctx, h.host.Gateway, ctl)
		a, err := ha.NewAgent(ha.AgentConfig{Node: h.host.Name, Driver: h.d,
			Controllers: []ha.HeartbeatSink{netSink{dialer, addr}}, Check: netCheck{dialer, addr},
			IsHA: func(n string) bool { return n == name }, Timings: timings})
		require.NoError(t, err)
		agents = append(agents, a)
		wg.Add(1)
		go func() { defer wg.Done(); _ = a.Run(ctx) }()
	}
	require.Eventually(t, func() bool {
		sa, errA := ctl.State(hostA.Name)
		sb, errB := ctl.State(hostB.Name)
		loc, settled, errL := ctl.Location(name)
		return errors.Join(errA, errB, errL) == nil && sa == ha.NodeHealthy && sb == ha.NodeHealthy && settled && loc == hostA.Name
	}, 20*time.Second, 100*time.Millisecond, "both hosts healthy, the VM settled on A")

	// The invariant: never running on both. A runs it while its QEMU lives
	// (or, while A's libvirtd lives, when it says so); B when its libvirtd
	// says so.
	var (
		invMu      sync.Mutex
		violations []string
		samples    int
	)
	monCtx, monStop := context.WithCancel(ctx)
	monDone := make(chan struct{})
	go func() {
		defer close(monDone)
		for monCtx.Err() == nil {
			runningOn := func(d vmm.Driver) bool {
				c, cancel := context.WithTimeout(monCtx, 300*time.Millisecond)
				defer cancel()
				vm, err := d.Get(c, name)
				return err == nil && (vm.State == vmm.StateRunning || vm.State == vmm.StatePaused)
			}
			onA := alive(qemuA) || (alive(libvirtdA) && runningOn(ctlA))
			onB := runningOn(ctlB)
			invMu.Lock()
			samples++
			if onA && onB {
				violations = append(violations, time.Now().Format(time.RFC3339Nano))
			}
			invMu.Unlock()
			time.Sleep(100 * time.Millisecond)
		}
	}()

	// Host A dies.
	require.NoError(t, syscall.Kill(libvirtdA, syscall.SIGKILL))
	require.NoError(t, syscall.Kill(qemuA, syscall.SIGKILL))
	out, err = exec.Command("ip", "link", "del", hostA.RootIf).CombinedOutput()
	require.NoError(t, err, string(out))
	killed := time.Now()

	require.NoError(t, waitMarker(ctx, ctlB.ConsoleLog(name), guest.Marker, 90*time.Second), "boot on host B after host A died")
	recovered := time.Since(killed)
	time.Sleep(time.Second) // a few more invariant samples with the VM up on B
	monStop()
	<-monDone

	assert.False(t, alive(qemuA), "host A's QEMU")
	assert.False(t, alive(libvirtdA), "host A's libvirtd")
	st, err := ctl.State(hostA.Name)
	require.NoError(t, err)
	assert.Equal(t, ha.NodeFailed, st, "host A")
	loc, _, err := ctl.Location(name)
	require.NoError(t, err)
	assert.Equal(t, hostB.Name, loc)
	vm, err := ctlB.Get(ctx, name)
	require.NoError(t, err)
	assert.Equal(t, vmm.StateRunning, vm.State, "the VM on host B")
	invMu.Lock()
	assert.Empty(t, violations, "the VM ran on both hosts at these times (%d samples)", samples)
	assert.Greater(t, samples, 10, "invariant samples")
	t.Logf("never on both hosts: %d samples of both hosts, about every 100 ms from the kill to 1 s after the marker", samples)
	invMu.Unlock()

	evMu.Lock()
	defer evMu.Unlock()
	at := map[ha.EventKind]time.Duration{}
	var fenced, restarted *ha.Event
	for i, e := range events {
		if e.Time.Before(killed) {
			continue
		}
		if _, ok := at[e.Kind]; !ok {
			at[e.Kind] = e.Time.Sub(killed)
		}
		switch {
		case e.Kind == ha.EventFenced && e.Node == hostA.Name && fenced == nil:
			fenced = &events[i]
		case e.Kind == ha.EventVMRestarted && e.VM == name && restarted == nil:
			restarted = &events[i]
		}
		t.Logf("+%6.2fs %s node=%s vm=%s target=%s method=%s: %s", e.Time.Sub(killed).Seconds(), e.Kind, e.Node, e.VM, e.Target, e.Method, e.Reason)
	}
	// A's agent outlived its libvirtd: cut off from the controller, its
	// watchdog fired (with nothing left it could stop); B's never did.
	assert.True(t, agents[0].Fenced(), "host A's watchdog")
	assert.NotEmpty(t, agents[0].Log().Filter(ha.EventSelfFenced, hostA.Name),
		"host A's self-fence is in its decision log even though its hypervisor was dead")
	assert.False(t, agents[1].Fenced(), "host B's watchdog")
	assert.Empty(t, agents[1].Log().Filter(ha.EventSelfFenced, hostB.Name), "host B's watchdog")
	require.NotNil(t, fenced, "host A fenced")
	require.NotNil(t, restarted, "VM restarted")
	assert.Equal(t, ha.FenceSelf, fenced.Method, "A's hypervisor is dead and there is no power fencer")
	assert.Equal(t, hostB.Name, restarted.Target)
	assert.False(t, restarted.Time.Before(fenced.Time), "restart before the fence")
	t.Logf("host A killed → failed %.2fs, fenced %.2fs (%s), restart call done %.2fs, marker on host B's console %.2fs (default timings; the guest boots under TCG)",
		at[ha.EventNodeFailed].Seconds(), at[ha.EventFenced].Seconds(), fenced.Method, at[ha.EventVMRestarted].Seconds(), recovered.Seconds())
}

// waitMarker waits until the console log holds the marker.
func waitMarker(ctx context.Context, path, marker string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		b, _ := os.ReadFile(path)
		if strings.Contains(string(b), marker) {
			return nil
		}
		select {
		case <-ctx.Done():
			if len(b) > 2000 {
				b = b[len(b)-2000:]
			}
			return fmt.Errorf("no %q in %s: %w\n%s", marker, path, ctx.Err(), b)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
