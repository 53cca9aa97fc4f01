package smoke

import (
	"encoding/json"
	"os"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane/internal/testenv"
)

// TestLVMMetadataOnly creates, resizes and removes an inactive LV on the
// loop-device VG (no device-mapper here: activation is off) and reads the
// result from lvs' JSON report.
func TestLVMMetadataOnly(t *testing.T) {
	env := testenv.RequireLVM(t)
	run := func(args ...string) []byte {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), args[0], args[1:]...)
		cmd.Env = append(os.Environ(), env.Env()...)
		out, err := cmd.Output()
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("%v: %v\n%s", args, err, ee.Stderr)
		}
		require.NoError(t, err)
		return out
	}
	name := uniqueName("lv")
	lv := env.VG + "/" + name
	run("lvcreate", "-an", "-Zn", "-Wn", "-L", "64m", "-n", name, "--addtag", "owner=smoke", env.VG)
	t.Cleanup(func() {
		cmd := exec.Command("lvremove", "-y", lv)
		cmd.Env = append(os.Environ(), env.Env()...)
		_ = cmd.Run()
	})
	run("lvresize", "-L", "128m", lv)

	var report struct {
		Report []struct {
			LV []struct {
				Name string `json:"lv_name"`
				Size string `json:"lv_size"`
				Tags string `json:"lv_tags"`
			} `json:"lv"`
		} `json:"report"`
	}
	require.NoError(t, json.Unmarshal(run("lvs", "--reportformat", "json", "--units", "b", "--nosuffix",
		"-o", "lv_name,lv_size,lv_tags", lv), &report))
	require.Len(t, report.Report, 1)
	require.Len(t, report.Report[0].LV, 1)
	got := report.Report[0].LV[0]
	assert.Equal(t, name, got.Name)
	assert.Equal(t, "134217728", got.Size)
	assert.Equal(t, "owner=smoke", got.Tags)

	run("lvremove", "-y", lv)
	cmd := exec.Command("lvs", lv)
	cmd.Env = append(os.Environ(), env.Env()...)
	assert.Error(t, cmd.Run(), "LV must be gone")
}
