package san_test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"errors"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/internal/testenv"
	"github.com/virtplane/virtplane/storage"
	"github.com/virtplane/virtplane/storage/fake"
	"github.com/virtplane/virtplane/storage/file"
	"github.com/virtplane/virtplane/storage/san"
	"github.com/virtplane/virtplane/storage/storagetest"
)

// controlPort reads tgtd's control port from the state file of `make
// env-iscsi` (testenv.ISCSI does not carry it yet); 77 is what it uses.
func controlPort(t *testing.T) int {
	f, err := os.Open(filepath.Join(testenv.StateDir(), "iscsi.env"))
	if err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "CONTROL_PORT="); ok {
				if n, err := strconv.Atoi(v); err == nil {
					return n
				}
			}
		}
	}
	return 77
}

// testTarget makes a target of the test's own on the shared tgtd (the
// shared target and its LUNs are not touched) and removes it at the end.
func testTarget(t *testing.T) (*san.ISCSIPool, *san.TGT, testenv.ISCSI) {
	t.Helper()
	env := testenv.RequireISCSI(t)
	cp := controlPort(t)
	n, err := rand.Int(rand.Reader, big.NewInt(9000))
	require.NoError(t, err)
	tid := 1000 + int(n.Int64())
	iqn := "iqn.2026-01.io.virtplane:" + storagetest.RandomName()
	tgtadm := func(args ...string) {
		out, err := exec.Command("tgtadm", append([]string{"-C", strconv.Itoa(cp), "--lld", "iscsi"}, args...)...).CombinedOutput()
		require.NoError(t, err, string(out))
	}
	tgtadm("--op", "new", "--mode", "target", "--tid", strconv.Itoa(tid), "-T", iqn)
	t.Cleanup(func() {
		_ = exec.Command("tgtadm", "-C", strconv.Itoa(cp), "--lld", "iscsi", "--op", "delete", "--force", "--mode", "target", "--tid", strconv.Itoa(tid)).Run()
	})
	tgtadm("--op", "bind", "--mode", "target", "--tid", strconv.Itoa(tid), "-I", "ALL")
	prov := &san.TGT{ControlPort: cp, TID: tid, Dir: t.TempDir()}
	p, err := san.NewISCSI(san.ISCSIConfig{Name: "san", Portal: env.Portal, Target: iqn, Provisioner: prov})
	require.NoError(t, err)
	return p, prov, env
}

func TestISCSIConformance(t *testing.T) {
	p, _, _ := testTarget(t)
	storagetest.Run(t, func(t *testing.T) storage.Pool { return p })
}

// A volume is copied from a file pool onto a LUN through QEMU's iSCSI
// initiator and the LUN's backing file holds the same bytes.
func TestCopyFileToISCSI(t *testing.T) {
	ctx := t.Context()
	p, prov, _ := testTarget(t)
	fp, err := file.New(file.Config{Name: "local", Dir: t.TempDir()})
	require.NoError(t, err)
	src, err := fp.Create(ctx, storage.VolumeSpec{Name: "src", Size: 8 << 20, Format: storage.FormatQcow2})
	require.NoError(t, err)
	want := make([]byte, 8<<20)
	_, _ = rand.Read(want[:4<<20])
	raw := filepath.Join(t.TempDir(), "pattern.raw")
	require.NoError(t, os.WriteFile(raw, want, 0o600))
	out, err := exec.CommandContext(ctx, "qemu-img", "convert", "-n", "-f", "raw", "-O", "qcow2", raw, src.Attachment.Path).CombinedOutput()
	require.NoError(t, err, string(out))

	v, err := storage.CopyVolume(ctx, storage.LocalExecutor{}, fp, "src", p, "lun-copy")
	require.NoError(t, err)
	assert.Equal(t, storage.KindISCSI, v.Attachment.Kind)
	got, err := os.ReadFile(filepath.Join(prov.Dir, "lun-copy.img"))
	require.NoError(t, err)
	assert.True(t, bytes.Equal(want, got), "the LUN holds the volume byte for byte")

	// And back again through the initiator.
	back, err := storage.CopyVolume(ctx, storage.LocalExecutor{}, p, "lun-copy", fp, "back")
	require.NoError(t, err)
	rawBack := filepath.Join(t.TempDir(), "back.raw")
	out, err = exec.CommandContext(ctx, "qemu-img", "convert", "-O", "raw", back.Attachment.Path, rawBack).CombinedOutput()
	require.NoError(t, err, string(out))
	gotBack, err := os.ReadFile(rawBack)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(want, gotBack))
	require.NoError(t, p.Delete(ctx, "lun-copy"))
}

// A LUN creation whose tgtadm step fails leaves no backing file.
func TestTGTCreateFailureLeavesNothing(t *testing.T) {
	ex := &fake.Executor{}
	ex.On("tgtadm -C 77 --lld iscsi --op show", showOutput, nil)
	ex.FailOnce("tgtadm -C 77 --lld iscsi --op new", errors.New("injected"))
	prov := &san.TGT{Exec: ex, ControlPort: 77, TID: 5, Dir: t.TempDir()}
	_, err := prov.CreateLUN(t.Context(), "vol", 1<<20)
	require.ErrorContains(t, err, "injected")
	entries, err := os.ReadDir(prov.Dir)
	require.NoError(t, err)
	assert.Empty(t, entries)
	assert.Equal(t, "tgtadm -C 77 --lld iscsi --op show --mode target\n"+
		"tgtadm -C 77 --lld iscsi --op new --mode logicalunit --tid 5 --lun 2 -b "+filepath.Join(prov.Dir, "vol.img")+"\n", ex.Transcript(),
		"LUN 1 is taken on target 5, so the new one is 2")
}

const showOutput = `Target 1: iqn.2026-01.io.virtplane:test
    LUN information:
        LUN: 0
            Backing store path: None
        LUN: 1
            Backing store path: /other/lun1.img
        LUN: 3
            Backing store path: /other/lun3.img
Target 5: iqn.2026-01.io.virtplane:five
    LUN information:
        LUN: 0
            Type: controller
            Backing store path: None
        LUN: 1
            Type: disk
            Backing store path: /x/a.img
`

func FuzzParseTargetLUNs(f *testing.F) {
	f.Add([]byte(showOutput), 5)
	f.Add([]byte("Target x:\n LUN: -1\n"), 1)
	f.Fuzz(func(t *testing.T, b []byte, tid int) {
		luns, err := san.ParseTargetLUNs(b, tid)
		if err != nil {
			return
		}
		for _, l := range luns {
			if l < 0 {
				t.Fatalf("negative LUN %d", l)
			}
		}
	})
}

// LVM on a shared LUN. No kernel initiator here, so the "LUN" is the block
// device under the test VG (a loop device); the pool adopts the existing VG.
func TestSharedLVMConformance(t *testing.T) {
	env := testenv.RequireLVM(t)
	p, err := san.NewSharedLVM(t.Context(), san.SharedLVMConfig{Name: "san-lvm", Device: env.PV, VG: env.VG, Env: env.Env(), NoActivation: true})
	require.NoError(t, err)
	storagetest.Run(t, func(t *testing.T) storage.Pool { return p })

	_, err = san.NewSharedLVM(t.Context(), san.SharedLVMConfig{Name: "x", Device: env.PV, VG: "vpt-other", Env: env.Env()})
	assert.ErrorIs(t, err, virtplane.ErrConflict, "the device carries another VG")
}

func TestSharedLVMInitGolden(t *testing.T) {
	notPV := &storage.ExitError{Code: 5, Stderr: "Failed to find physical volume \"/dev/sdb\"."}
	t.Run("Init", func(t *testing.T) {
		ex := &fake.Executor{}
		ex.On("pvs", "", notPV)
		_, err := san.NewSharedLVM(t.Context(), san.SharedLVMConfig{Name: "s", Device: "/dev/sdb", VG: "vgsan", Exec: ex, Init: true, Shared: true})
		require.NoError(t, err)
		assert.Equal(t, `pvs --reportformat json -o pv_name,vg_name /dev/sdb
pvcreate -y /dev/sdb
vgcreate -y --shared vgsan /dev/sdb
vgchange --lockstart vgsan
`, ex.Transcript())
	})
	t.Run("InitFailsHalfway", func(t *testing.T) {
		ex := &fake.Executor{}
		ex.On("pvs", "", notPV)
		ex.FailOnce("vgchange", errors.New("injected: lvmlockd not running"))
		_, err := san.NewSharedLVM(t.Context(), san.SharedLVMConfig{Name: "s", Device: "/dev/sdb", VG: "vgsan", Exec: ex, Init: true, Shared: true})
		require.ErrorContains(t, err, "injected")
		assert.Equal(t, `pvs --reportformat json -o pv_name,vg_name /dev/sdb
pvcreate -y /dev/sdb
vgcreate -y --shared vgsan /dev/sdb
vgchange --lockstart vgsan
vgremove -y vgsan
pvremove -y /dev/sdb
`, ex.Transcript(), "the VG and PV are removed again")
	})
	t.Run("NoInit", func(t *testing.T) {
		ex := &fake.Executor{}
		ex.On("pvs", "", notPV)
		_, err := san.NewSharedLVM(t.Context(), san.SharedLVMConfig{Name: "s", Device: "/dev/sdb", VG: "vgsan", Exec: ex})
		assert.ErrorIs(t, err, virtplane.ErrNotFound)
	})
	t.Run("BadDevice", func(t *testing.T) {
		_, err := san.NewSharedLVM(t.Context(), san.SharedLVMConfig{Name: "s", Device: "/dev/../etc/x", VG: "vgsan", Exec: &fake.Executor{}})
		assert.ErrorIs(t, err, virtplane.ErrInvalidArgument)
	})
	t.Run("ExclusiveActivation", func(t *testing.T) {
		ex := &fake.Executor{}
		ex.On("pvs", `{"report":[{"pv":[{"pv_name":"/dev/sdb","vg_name":"vgsan"}]}]}`, nil)
		ex.On("lvs", `{"report":[{"lv":[{"lv_name":"vm1","lv_size":"4194304","lv_tags":"virtplane"}]}]}`, nil)
		p, err := san.NewSharedLVM(t.Context(), san.SharedLVMConfig{Name: "s", Device: "/dev/sdb", VG: "vgsan", Exec: ex})
		require.NoError(t, err)
		require.NoError(t, p.Activate(t.Context(), "vm1"))
		assert.Contains(t, ex.Transcript(), "lvchange -aey -K vgsan/vm1\n")
	})
}
