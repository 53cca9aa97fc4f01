package smoke

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane/internal/testenv"
)

// TestDemoImageBoots boots the demo disk with QEMU alone (TCG, no network,
// a throw-away overlay) and reads its banner and heartbeat on the serial
// console.
func TestDemoImageBoots(t *testing.T) {
	img := testenv.RequireDemoImage(t)
	dir := t.TempDir()
	log := filepath.Join(dir, "serial.log")
	cmd := exec.Command("qemu-system-x86_64", "-display", "none", "-m", "192", "-nic", "none", "-monitor", "none", "-no-reboot",
		"-drive", "file="+img.Path+",format="+img.Format+",snapshot=on", "-serial", "file:"+log)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	waitFileContains(t, log, img.Banner, 90*time.Second)
	out := waitFileContains(t, log, img.Tick+" 2", 30*time.Second)
	require.Contains(t, out, img.Tick+" 1")
	_, err := os.Stat(img.Path)
	require.NoError(t, err)
}
