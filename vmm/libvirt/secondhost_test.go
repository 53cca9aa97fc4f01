package libvirt_test

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/internal/testenv"
	"github.com/virtplane/virtplane/vmm"
	"github.com/virtplane/virtplane/vmm/libvirt"
)

// migration prepares the second host as a migration target of machines
// whose files live under stateDir.
func migration(stateDir string) func(t *testing.T) (vmm.MigrationTarget, vmm.Driver) {
	return func(t *testing.T) (vmm.MigrationTarget, vmm.Driver) {
		h := testenv.StartLibvirtHost(t, "vpt-peer", "10.231", 0)
		peer, err := libvirt.New(libvirt.Config{Socket: h.Socket, StateDir: stateDir}, libvirt.WithValues(h.Values()))
		require.NoError(t, err)
		t.Cleanup(func() { _ = peer.Close() })
		return vmm.MigrationTarget{
			URI:         "qemu+unix:///system?socket=" + h.Socket,
			Address:     h.Addr,
			AllowUnsafe: true, // the disks are local files both "hosts" see
		}, peer
	}
}

// TestMigrateCopiesDisks: a live migration whose target names new disk
// sources mirrors the disk into them (storage the hosts do not share), and
// the machine runs on the target from the copy.
func TestMigrateCopiesDisks(t *testing.T) {
	env := testenv.RequireLibvirt(t)
	h := testenv.StartLibvirtHost(t, "vpt-peer-disks", "10.231", 1)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	require.NoError(t, os.Chmod(dir, 0o755))
	state, here, there := filepath.Join(dir, "state"), filepath.Join(dir, "here"), filepath.Join(dir, "there")
	for _, d := range []string{state, here, there} {
		require.NoError(t, os.MkdirAll(d, 0o755))
	}
	src, err := libvirt.New(libvirt.Config{Socket: env.Socket, URI: env.URI, StateDir: state}, libvirt.WithValues(env.Values()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = src.Close() })
	dst, err := libvirt.New(libvirt.Config{Socket: h.Socket, StateDir: state}, libvirt.WithValues(h.Values()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = dst.Close() })

	const marker, offset = "VIRTPLANE-MIGRATED-DATA", 40 << 20
	name := "vpt-mig-" + randHex(4)
	disk := filepath.Join(here, name+".qcow2")
	testenv.MarkedDisk(t, disk, marker, offset)
	copyTo := filepath.Join(there, name+".qcow2")
	qcow2(t, copyTo) // empty, as large as the source
	require.False(t, testenv.DiskHolds(t, copyTo, marker, offset))
	for _, d := range []vmm.Driver{src, dst} {
		t.Cleanup(func() {
			_ = d.Stop(context.Background(), name)
			_ = d.Delete(context.Background(), name)
		})
	}
	_, err = src.Create(ctx, vmm.Spec{Name: name, VCPUs: 1, MemoryMiB: 128,
		Disks:     []vmm.Disk{{Target: "vda", Source: vmm.DiskSource{Kind: "file", Path: disk, Format: "qcow2"}}},
		CloudInit: &vmm.CloudInit{MetaData: "instance-id: " + name + "\n", UserData: "#cloud-config\n"}})
	require.NoError(t, err)
	require.NoError(t, src.Start(ctx, name))

	target := vmm.MigrationTarget{URI: "qemu+unix:///system?socket=" + h.Socket, Address: h.Addr,
		Disks: map[string]vmm.DiskSource{"vda": {Kind: "file", Path: copyTo, Format: "qcow2"}}}
	require.NoError(t, src.Migrate(ctx, name, target, nil))
	vm, err := dst.Get(ctx, name)
	require.NoError(t, err)
	assert.Equal(t, vmm.StateRunning, vm.State)
	require.NotEmpty(t, vm.Spec.Disks)
	assert.Equal(t, copyTo, vm.Spec.Disks[0].Source.Path, "runs on the copy")
	_, err = src.Get(ctx, name)
	assert.ErrorIs(t, err, virtplane.ErrNotFound, "gone from the source")
	assert.True(t, testenv.DiskHolds(t, copyTo, marker, offset), "the data was mirrored into the copy")
}

// TestAbortMigration: a live migration that takes a while (its disk is
// mirrored at 1 MiB/s) is aborted from a second connection, as a restarted
// daemon does for a migration its killed predecessor started: the machine
// keeps running on the source, and nothing is left on the target.
func TestAbortMigration(t *testing.T) {
	env := testenv.RequireLibvirt(t)
	h := testenv.StartLibvirtHost(t, "vpt-peer-abort", "10.231", 1)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	require.NoError(t, os.Chmod(dir, 0o755))
	state, here, there := filepath.Join(dir, "state"), filepath.Join(dir, "here"), filepath.Join(dir, "there")
	for _, d := range []string{state, here, there} {
		require.NoError(t, os.MkdirAll(d, 0o755))
	}
	open := func(socket, uri string) *libvirt.Driver {
		d, err := libvirt.New(libvirt.Config{Socket: socket, URI: uri, StateDir: state}, libvirt.WithValues(env.Values()))
		require.NoError(t, err)
		t.Cleanup(func() { _ = d.Close() })
		return d
	}
	src, other, dst := open(env.Socket, env.URI), open(env.Socket, env.URI), open(h.Socket, "")

	name := "vpt-abort-" + randHex(4)
	disk := filepath.Join(here, name+".qcow2")
	randomDisk(t, disk) // 64 MiB of data: a minute at 1 MiB/s
	copyTo := filepath.Join(there, name+".qcow2")
	qcow2(t, copyTo)
	for _, d := range []vmm.Driver{src, dst} {
		t.Cleanup(func() {
			_ = d.Stop(context.Background(), name)
			_ = d.Delete(context.Background(), name)
		})
	}
	_, err := src.Create(ctx, vmm.Spec{Name: name, VCPUs: 1, MemoryMiB: 128,
		Disks: []vmm.Disk{{Target: "vda", Source: vmm.DiskSource{Kind: "file", Path: disk, Format: "qcow2"}}}})
	require.NoError(t, err)
	require.NoError(t, src.Start(ctx, name))
	require.NoError(t, other.AbortMigration(ctx, name), "no migration runs: not an error")

	target := vmm.MigrationTarget{URI: "qemu+unix:///system?socket=" + h.Socket, Address: h.Addr, BandwidthMiBs: 1,
		Disks: map[string]vmm.DiskSource{"vda": {Kind: "file", Path: copyTo, Format: "qcow2"}}}
	migrated := make(chan error, 1)
	go func() { migrated <- src.Migrate(ctx, name, target, nil) }()
	require.Eventually(t, func() bool {
		out, err := other.MigratingOut(ctx, name)
		return err == nil && out
	}, time.Minute, 100*time.Millisecond, "the migration job starts")
	require.Eventually(t, func() bool {
		_, err := dst.Get(ctx, name)
		return err == nil
	}, 30*time.Second, 100*time.Millisecond, "the target holds the incoming domain while the job runs")
	time.Sleep(time.Second) // well into the copy
	out, err := other.MigratingOut(ctx, name)
	require.NoError(t, err)
	require.True(t, out, "the migration still runs")

	start := time.Now()
	require.NoError(t, other.AbortMigration(ctx, name))
	t.Logf("abort took %s", time.Since(start))
	out, err = other.MigratingOut(ctx, name)
	require.NoError(t, err)
	assert.False(t, out, "no migration job after the abort")
	select {
	case err := <-migrated:
		assert.Error(t, err, "the migration's caller learns it did not happen")
	case <-ctx.Done():
		t.Fatal("Migrate did not return after the abort")
	}
	vm, err := src.Get(ctx, name)
	require.NoError(t, err)
	assert.Equal(t, vmm.StateRunning, vm.State, "still running on the source")
	require.Eventually(t, func() bool {
		_, err := dst.Get(ctx, name)
		return errors.Is(err, virtplane.ErrNotFound)
	}, 30*time.Second, 100*time.Millisecond, "nothing left on the target")
	require.NoError(t, other.AbortMigration(ctx, name), "again: no job")
	assert.ErrorIs(t, other.AbortMigration(ctx, "vpt-no-such-vm"), virtplane.ErrNotFound)
}

// randomDisk writes a 64 MiB qcow2 image full of random data, which a disk
// copy cannot skip.
func randomDisk(t *testing.T, path string) {
	t.Helper()
	raw := path + ".raw"
	data := make([]byte, 64<<20)
	_, _ = rand.Read(data)
	require.NoError(t, os.WriteFile(raw, data, 0o644))
	defer os.Remove(raw)
	out, err := exec.Command("qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", raw, path).CombinedOutput()
	require.NoError(t, err, string(out))
}
