package testenv

import (
	"os"
	"os/exec"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// MarkedDisk writes a 64 MiB qcow2 image at path whose data holds marker
// at offset, for tests that follow data through copies and migrations.
func MarkedDisk(t testing.TB, path, marker string, offset int64) {
	t.Helper()
	raw := path + ".raw"
	data := make([]byte, 64<<20)
	copy(data[offset:], marker)
	require.NoError(t, os.WriteFile(raw, data, 0o644))
	defer os.Remove(raw)
	out, err := exec.Command("qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", raw, path).CombinedOutput()
	require.NoError(t, err, string(out))
}

// DiskHolds reads an image (while QEMU may hold it: -U) and tells whether
// marker is at offset.
func DiskHolds(t testing.TB, path, marker string, offset int64) bool {
	t.Helper()
	raw := path + ".read.raw"
	out, err := exec.Command("qemu-img", "convert", "-U", "-q", "-O", "raw", path, raw).CombinedOutput()
	require.NoError(t, err, string(out))
	defer os.Remove(raw)
	f, err := os.Open(raw)
	require.NoError(t, err)
	defer f.Close()
	b := make([]byte, len(marker))
	_, err = f.ReadAt(b, offset)
	require.NoError(t, err)
	return string(b) == marker
}

// MarkedGuestDisk writes a 64 MiB qcow2 image at path that boots the test
// guest (its bootable disk, which fills the first 48 MiB) and holds marker
// at offset, past the guest's file system (offset ≥ 48 MiB).
func MarkedGuestDisk(t testing.TB, g Guest, path, marker string, offset int64) {
	t.Helper()
	require.GreaterOrEqual(t, offset, int64(48<<20), "the marker would land in the guest's file system")
	require.LessOrEqual(t, offset+int64(len(marker)), int64(64<<20))
	raw := path + ".raw"
	out, err := exec.Command("qemu-img", "convert", "-q", "-O", "raw", g.Disk, raw).CombinedOutput()
	require.NoError(t, err, string(out))
	defer os.Remove(raw)
	f, err := os.OpenFile(raw, os.O_RDWR, 0)
	require.NoError(t, err)
	require.NoError(t, f.Truncate(64<<20))
	_, err = f.WriteAt([]byte(marker), offset)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	out, err = exec.Command("qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", raw, path).CombinedOutput()
	require.NoError(t, err, string(out))
}

// EmptyDisk makes an empty disk image of size bytes in dir, readable by
// QEMU: a sparse raw file, or a qcow2 image made by qemu-img.
func EmptyDisk(t testing.TB, dir, format string, size int64) string {
	t.Helper()
	f, err := os.CreateTemp(dir, "disk-*."+format)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	if format == "raw" {
		require.NoError(t, os.Truncate(f.Name(), size))
	} else {
		out, err := exec.Command("qemu-img", "create", "-q", "-f", format, f.Name(), strconv.FormatInt(size, 10)).CombinedOutput()
		require.NoError(t, err, string(out))
	}
	require.NoError(t, os.Chmod(f.Name(), 0o644))
	return f.Name()
}
