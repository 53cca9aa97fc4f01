package cloudinit_test

import (
	"github.com/virtplane/virtplane/internal/testenv"

	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane/vmm/cloudinit"
)

func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name  string
		seed  cloudinit.Seed
		names []string
	}{
		{"minimal", cloudinit.Seed{MetaData: "instance-id: a\n"}, []string{"meta-data", "user-data"}},
		{"all", cloudinit.Seed{UserData: "#cloud-config\n", MetaData: "instance-id: b\n", NetworkConfig: "version: 2\n"}, []string{"meta-data", "network-config", "user-data"}},
		{"large and unicode", cloudinit.Seed{UserData: string(bytes.Repeat([]byte("é<x>&"), 3000)), MetaData: "x"}, []string{"meta-data", "user-data"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img, err := cloudinit.ISO(tc.seed)
			require.NoError(t, err)
			assert.Zero(t, len(img)%2048)
			vol, err := cloudinit.ReadISO(bytes.NewReader(img), int64(len(img)))
			require.NoError(t, err)
			assert.Equal(t, cloudinit.Label, vol.Label)
			assert.Equal(t, tc.names, vol.Names())
			assert.Equal(t, tc.seed.UserData, string(vol.Files["user-data"]))
			assert.Equal(t, tc.seed.MetaData, string(vol.Files["meta-data"]))
			assert.Equal(t, tc.seed.NetworkConfig, string(vol.Files["network-config"]))
		})
	}
}

// TestBlkidSeesLabel cross-checks the image with util-linux's blkid: the
// label is what cloud-init's NoCloud source searches for.
func TestBlkidSeesLabel(t *testing.T) {
	blkid, err := exec.LookPath("blkid")
	if err != nil {
		testenv.Missing(t, "blkid (util-linux)", "env-net", err)
	}
	p := filepath.Join(t.TempDir(), "seed.iso")
	f, err := os.Create(p)
	require.NoError(t, err)
	require.NoError(t, cloudinit.WriteISO(f, cloudinit.Seed{MetaData: "instance-id: z\n"}))
	require.NoError(t, f.Close())
	out, err := exec.Command(blkid, "-p", "-o", "export", p).CombinedOutput()
	require.NoError(t, err, string(out))
	assert.Contains(t, string(out), "TYPE=iso9660")
	assert.Contains(t, string(out), "LABEL=cidata")
}

func FuzzReadISO(f *testing.F) {
	img, err := cloudinit.ISO(cloudinit.Seed{UserData: "u", MetaData: "m", NetworkConfig: "n"})
	require.NoError(f, err)
	f.Add(img)
	f.Add(img[:40000])
	f.Add([]byte("CD001"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = cloudinit.ReadISO(bytes.NewReader(b), int64(len(b))) // must not panic
	})
}

func FuzzWriteRead(f *testing.F) {
	f.Add("#cloud-config\n", "instance-id: a\n", "")
	f.Add("", "", "version: 2")
	f.Fuzz(func(t *testing.T, u, m, n string) {
		img, err := cloudinit.ISO(cloudinit.Seed{UserData: u, MetaData: m, NetworkConfig: n})
		require.NoError(t, err)
		vol, err := cloudinit.ReadISO(bytes.NewReader(img), int64(len(img)))
		require.NoError(t, err)
		assert.Equal(t, u, string(vol.Files["user-data"]))
		assert.Equal(t, m, string(vol.Files["meta-data"]))
		assert.Equal(t, n, string(vol.Files["network-config"]))
	})
}
