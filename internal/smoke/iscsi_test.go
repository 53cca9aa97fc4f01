package smoke

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane/internal/testenv"
)

// TestQemuImgWritesISCSILUN converts a qcow2 image onto the scratch LUN of
// the tgt target through QEMU's libiscsi initiator and checks the bytes in
// the file behind the LUN.
func TestQemuImgWritesISCSILUN(t *testing.T) {
	env := testenv.RequireISCSI(t)
	require.NotEmpty(t, env.ScratchURL, "iscsi state lacks the scratch LUN; rerun `make env-iscsi`")
	run := func(args ...string) {
		t.Helper()
		out, err := exec.CommandContext(t.Context(), args[0], args[1:]...).CombinedOutput()
		require.NoError(t, err, "%v: %s", args, out)
	}
	src := filepath.Join(t.TempDir(), "src.qcow2")
	run("qemu-img", "create", "-q", "-f", "qcow2", src, "4M")
	pattern := byte(0x40 + os.Getpid()%64) // differs run to run, so a stale LUN cannot pass
	run("qemu-io", "-f", "qcow2", "-c", fmt.Sprintf("write -q -P %d 0 1M", pattern), src)

	run("qemu-img", "convert", "-n", "-O", "raw", src, env.ScratchURL)

	f, err := os.Open(env.ScratchFile)
	require.NoError(t, err)
	defer f.Close()
	got := make([]byte, 1<<20)
	_, err = f.ReadAt(got, 0)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(got, bytes.Repeat([]byte{pattern}, 1<<20)), "LUN does not hold the written pattern")
}
