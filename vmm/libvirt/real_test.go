package libvirt_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/internal/testenv"
	"github.com/virtplane/virtplane/vmm"
	"github.com/virtplane/virtplane/vmm/cloudinit"
	"github.com/virtplane/virtplane/vmm/libvirt"
)

func virshXML(t *testing.T, name string, inactive bool) string {
	t.Helper()
	args := []string{"-c", "qemu:///system", "dumpxml", name}
	if inactive {
		args = append(args, "--inactive")
	}
	out, err := exec.Command("virsh", args...).CombinedOutput()
	require.NoError(t, err, string(out))
	return string(out)
}

func cleanupVM(t *testing.T, f *fixture, name string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = f.d.Stop(ctx, name)
		_ = f.d.Delete(ctx, name)
	})
}

// TestSeedAndLimitsInLiveDomain checks what libvirt itself reports for a
// running domain: the cloud-init seed on a CD-ROM with readable NoCloud
// files, and the limits in the live XML.
func TestSeedAndLimitsInLiveDomain(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	name := "vpt-seed-" + randHex(3)
	spec := f.spec(t, name)
	spec.CloudInit.NetworkConfig = "version: 2\n"
	// The guest mounts its seed CD-ROM and prints the files on its console
	// (hack/env/guest.sh ships the modules and /bin/vpt-seed).
	spec.Boot.Cmdline += " vpt.seed=1"
	cleanupVM(t, f, name)
	_, err := f.d.Create(ctx, spec)
	require.NoError(t, err)
	require.NoError(t, f.d.Start(ctx, name))
	limits := vmm.Limits{CPUWeight: 700, IOWeight: 300, Disks: map[string]vmm.DiskLimits{"vda": {ReadIOPS: 123, WriteBytesSec: 4 << 20}}}
	ioWeight := testenv.HostHasIOWeight()
	if !ioWeight {
		// This host's block I/O scheduler has no weights (no BFQ/CFQ):
		// libvirt refuses the weight, the driver says so, and nothing of
		// the limits is applied.
		err := f.d.SetLimits(ctx, name, limits)
		require.ErrorIs(t, err, virtplane.ErrNotImplemented)
		assert.Contains(t, err.Error(), "scheduler")
		assert.NotContains(t, virshXML(t, name, false), "<read_iops_sec>123</read_iops_sec>", "a refused SetLimits applies nothing")
		limits.IOWeight = 0
	}
	require.NoError(t, f.d.SetLimits(ctx, name, limits))

	live := virshXML(t, name, false)
	seed := filepath.Join(f.dir, "state", name, "seed.iso")
	assert.Contains(t, live, "<source file='"+seed+"'")
	assert.Contains(t, live, "device='cdrom'")
	assert.Contains(t, live, "<shares>700</shares>")
	if ioWeight {
		assert.Contains(t, live, "<weight>300</weight>")
	}
	assert.Contains(t, live, "<read_iops_sec>123</read_iops_sec>")
	assert.Contains(t, live, "<write_bytes_sec>4194304</write_bytes_sec>")
	assert.Contains(t, virshXML(t, name, true), "<read_iops_sec>123</read_iops_sec>", "limits persist")

	// What the guest itself read from the seed.
	require.NoError(t, f.console.WaitBooted(ctx, name))
	var console string
	require.Eventually(t, func() bool {
		_, _, console = f.console.scan(name)
		return strings.Contains(console, "VPT-SEED end") || strings.Contains(console, "VPT-SEED none")
	}, 90*time.Second, 250*time.Millisecond, "the guest never finished reading its seed")
	assert.Contains(t, console, "VPT-SEED meta-data: instance-id: "+name)
	assert.Contains(t, console, "VPT-SEED meta-data: local-hostname: "+name)
	assert.Contains(t, console, "VPT-SEED user-data: #cloud-config")
	assert.Contains(t, console, "VPT-SEED network-config: version: 2")

	img, err := os.ReadFile(seed)
	require.NoError(t, err)
	vol, err := cloudinit.ReadISO(bytes.NewReader(img), int64(len(img)))
	require.NoError(t, err)
	assert.Equal(t, "cidata", vol.Label)
	assert.Equal(t, spec.CloudInit.MetaData, string(vol.Files["meta-data"]))
	assert.Equal(t, spec.CloudInit.UserData, string(vol.Files["user-data"]))
	assert.Equal(t, "version: 2\n", string(vol.Files["network-config"]))

	require.NoError(t, f.d.Stop(ctx, name))
	require.NoError(t, f.d.Delete(ctx, name))
	_, err = os.Stat(seed)
	assert.True(t, os.IsNotExist(err), "delete removes the seed")
}

// TestDeadlineAndReconnect freezes libvirtd (a call must give up at its
// deadline), then kills it with SIGKILL and lets it be started again: the
// driver reconnects, the next call works and the event stream delivers
// again. The libvirtd is this test's own (a supervised host), never the
// shared one other packages use at the same moment.
func TestDeadlineAndReconnect(t *testing.T) {
	f := newFixture(t)
	h := testenv.StartLibvirtHost(t, "vpt-rc", "10.231", 0, testenv.Supervised())
	d, err := libvirt.New(libvirt.Config{Socket: h.Socket, StateDir: filepath.Join(f.dir, "state-rc")}, libvirt.WithValues(h.Values()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	name := "vpt-rc-" + randHex(3)
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = d.Stop(cctx, name)
		_ = d.Delete(cctx, name)
	})
	_, err = d.Create(ctx, f.spec(t, name))
	require.NoError(t, err)
	events, err := d.Events(ctx)
	require.NoError(t, err)

	libvirtdPID := func() int {
		pid, err := h.PIDFile("libvirtd.pid")
		require.NoError(t, err)
		return pid
	}
	pid := libvirtdPID()
	t.Run("deadline", func(t *testing.T) {
		require.NoError(t, syscall.Kill(pid, syscall.SIGSTOP))
		defer func() { _ = syscall.Kill(pid, syscall.SIGCONT) }()
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		start := time.Now()
		_, err := d.Get(cctx, name)
		took := time.Since(start)
		require.ErrorIs(t, err, virtplane.ErrTimeout)
		t.Logf("call against a frozen libvirtd gave up after %s", took)
	})
	_, err = d.Get(ctx, name)
	require.NoError(t, err, "libvirtd answers again after SIGCONT")

	t.Run("reconnect", func(t *testing.T) {
		require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
		// While it is down, calls fail with a typed error.
		require.Eventually(t, func() bool {
			cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			defer cancel()
			_, err := d.Get(cctx, name)
			return errors.Is(err, virtplane.ErrUnavailable) || errors.Is(err, virtplane.ErrTimeout)
		}, 10*time.Second, 100*time.Millisecond)
		// The host's supervisor starts a new libvirtd.
		require.Eventually(t, func() bool {
			p, err := h.PIDFile("libvirtd.pid")
			return err == nil && p != pid && syscall.Kill(p, 0) == nil
		}, 30*time.Second, 100*time.Millisecond, "no new libvirtd on the host")

		vm, err := d.Get(ctx, name)
		require.NoError(t, err, "the first call after the restart reconnects")
		assert.Equal(t, vmm.StateStopped, vm.State)

		require.NoError(t, d.Start(ctx, name))
		deadline := time.After(30 * time.Second)
		for {
			select {
			case ev := <-events:
				if ev.VM == name && ev.State == vmm.StateRunning {
					return
				}
			case <-deadline:
				t.Fatal("the event stream did not resume after the restart")
			}
		}
	})
}
