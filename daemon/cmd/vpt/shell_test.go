package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestShellVMCreateWait builds vpt and runs testdata/vm-create-wait.sh, a
// bash script that creates a VM with --wait and checks exit codes, against
// a daemon on a simulated node.
func TestShellVMCreateWait(t *testing.T) {
	bash, err := exec.LookPath("bash")
	require.NoError(t, err, "bash is needed for the shell test")
	dir := t.TempDir()
	bin := filepath.Join(dir, "vpt")
	build := exec.Command("go", "build", "-o", bin, ".")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)

	c := newCLI(t)
	cmd := exec.CommandContext(t.Context(), bash, "--noprofile", "--norc", "testdata/vm-create-wait.sh")
	cmd.Env = append(os.Environ(), "VPT="+bin, "URL="+c.url, "VPT_CONFIG="+filepath.Join(dir, "config.json"), "WORK="+dir)
	out, err = cmd.CombinedOutput()
	require.NoError(t, err, "vm-create-wait.sh:\n%s", out)
	assert.True(t, strings.HasSuffix(strings.TrimSpace(string(out)), "OK"), "%s", out)
	t.Logf("%s", out)
}
