package libvirt_test

import (
	"bytes"
	"context"
	"encoding/binary"
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
	"github.com/virtplane/virtplane/vmm/libvirt"
)

// domcaps builds a domain capabilities document with the given <domain>
// and <cpu> contents.
func domcaps(domain, cpu string) string {
	return `<domainCapabilities><path>/usr/bin/qemu-system-x86_64</path><domain>` + domain +
		`</domain><machine>pc-i440fx-7.2</machine><arch>x86_64</arch><cpu>` + cpu + `</cpu></domainCapabilities>`
}

func TestKVMCandidate(t *testing.T) {
	const (
		passthrough   = `<mode name='host-passthrough' supported='yes'/>`
		noPassthrough = `<mode name='host-passthrough' supported='no'/>`
		hostModel     = `<mode name='host-model' supported='yes'><model fallback='forbid'>EPYC-Rome</model></mode>`
		noHostModel   = `<mode name='host-model' supported='no'/>`
		custom        = `<mode name='custom' supported='yes'><model usable='no'>Icelake-Server</model><model usable='yes'>qemu64</model></mode>`
		customNone    = `<mode name='custom' supported='yes'><model usable='no'>Icelake-Server</model></mode>`
	)
	for _, tc := range []struct {
		name, caps string
		err        error
		ok         bool
		mode       string
	}{
		{"kvm with host-model and passthrough prefers host-model", domcaps("kvm", passthrough+hostModel+custom), nil, true, "host-model"},
		{"kvm with passthrough only", domcaps("kvm", passthrough+noHostModel+customNone), nil, true, "host-passthrough"},
		{"kvm with a usable custom model only", domcaps("kvm", noPassthrough+noHostModel+custom), nil, true, ""},
		{"kvm with no usable model", domcaps("kvm", noPassthrough+noHostModel+customNone), nil, false, ""},
		{"kvm with no cpu modes", domcaps("kvm", ""), nil, false, ""},
		{"libvirt answers for qemu only", domcaps("qemu", passthrough+hostModel), nil, false, ""},
		{"libvirt refuses kvm (no /dev/kvm, or the accel is missing)", "", errors.New("invalid argument: the accel 'kvm' is not supported"), false, ""},
		{"garbage", "<domainCapabilities", nil, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mode, ok, reason := libvirt.KVMCandidate(tc.caps, tc.err)
			assert.Equal(t, tc.ok, ok, reason)
			assert.Equal(t, tc.mode, mode)
			assert.NotEmpty(t, reason)
		})
	}
}

// TestExplicitDomainTypeWins: a set domain type is used as is; the driver
// asks libvirt nothing (the socket here does not exist).
func TestExplicitDomainTypeWins(t *testing.T) {
	for _, typ := range []string{libvirt.DomainKVM, libvirt.DomainQEMU} {
		d, err := libvirt.New(libvirt.Config{Socket: "/nonexistent/libvirt-sock", StateDir: t.TempDir()},
			libvirt.WithValues(libvirt.Values{DomainType: typ, CPUMode: "host-passthrough"}))
		require.NoError(t, err)
		det, err := d.DetectDomainType(t.Context())
		require.NoError(t, err)
		assert.Equal(t, libvirt.Detection{DomainType: typ, CPUMode: "host-passthrough", Explicit: true, Reason: "set by configuration"}, det)
	}
	_, err := libvirt.New(libvirt.Config{StateDir: t.TempDir()}, libvirt.WithValues(libvirt.Values{DomainType: "xen"}))
	assert.ErrorIs(t, err, virtplane.ErrInvalidArgument)
}

// TestBootSector checks the probe's boot sector: one sector with the boot
// signature, whose string pointer (mov si, imm16) points at the marker
// where the BIOS loads it (0x7c00).
func TestBootSector(t *testing.T) {
	b, marker := libvirt.BootSector()
	require.Len(t, b, 512)
	assert.Equal(t, []byte{0x55, 0xAA}, b[510:])
	require.Equal(t, byte(0xBE), b[8], "mov si, imm16 at offset 8")
	ptr := int(binary.LittleEndian.Uint16(b[9:11])) - 0x7C00
	require.Greater(t, ptr, 0)
	assert.True(t, bytes.HasPrefix(b[ptr:], []byte(marker+"\r\n\x00")), "the pointer lands on the marker")
}

// TestDomainTypeOnThisHost: the driver's own detection on this libvirtd
// agrees with what the test environment recorded by booting the test
// guest; the built-in boot sector boots with the recorded type; and a
// domain the test fixture defines has that type in libvirt's own XML.
func TestDomainTypeOnThisHost(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()

	auto, err := libvirt.New(libvirt.Config{Socket: f.env.Socket, URI: f.env.URI, StateDir: filepath.Join(f.dir, "auto")})
	require.NoError(t, err)
	t.Cleanup(func() { _ = auto.Close() })
	det, err := auto.DetectDomainType(ctx)
	require.NoError(t, err)
	t.Logf("detected %s (cpu mode %q): %s; recorded %s", det.DomainType, det.CPUMode, det.Reason, f.env.DomainType)
	assert.False(t, det.Explicit)
	if !f.env.DomainTypeForced {
		assert.Equal(t, f.env.DomainType, det.DomainType, "detection disagrees with what booted here: %s", det.Reason)
	}

	booted, why, err := auto.ProbeBoot(ctx, f.env.DomainType, f.env.CPUMode)
	require.NoError(t, err)
	assert.True(t, booted, "the built-in boot sector does not boot as %s: %s", f.env.DomainType, why)

	name := "vpt-dt-" + randHex(3)
	cleanupVM(t, f, name)
	_, err = f.d.Create(ctx, f.spec(t, name))
	require.NoError(t, err)
	assert.Contains(t, virshXML(t, name, true), "<domain type='"+f.env.DomainType+"'>")
}

// TestDetectionBootsBeforeChoosingKVM walks the kvm branch of detection
// on this libvirtd with libvirt's kvm answer replaced and the probe booted
// with the recorded (working) type: a probe guest that boots makes kvm the
// choice; one that never prints its marker, or cannot start, makes it
// qemu, with the reason. This is the host where /dev/kvm exists and runs
// nothing.
func TestDetectionBootsBeforeChoosingKVM(t *testing.T) {
	lv := testenv.RequireLibvirt(t)
	g := testenv.RequireGuest(t)
	dir := t.TempDir()
	require.NoError(t, os.Chmod(dir, 0o755))
	kvmCaps := domcaps("kvm", `<mode name='host-passthrough' supported='yes'/><mode name='host-model' supported='yes'><model>qemu64</model></mode>`)
	detect := func(t *testing.T, probe libvirt.BootProbe, cpuMode string) libvirt.Detection {
		t.Helper()
		d, err := libvirt.New(libvirt.Config{Socket: lv.Socket, URI: lv.URI, StateDir: filepath.Join(dir, randHex(3))},
			libvirt.WithBootProbe(probe), libvirt.WithValues(libvirt.Values{CPUMode: cpuMode}), libvirt.PretendKVM(kvmCaps, lv.DomainType))
		require.NoError(t, err)
		t.Cleanup(func() { _ = d.Close() })
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		defer cancel()
		det, err := d.DetectDomainType(ctx)
		require.NoError(t, err)
		t.Logf("%s (cpu mode %q): %s", det.DomainType, det.CPUMode, det.Reason)
		return det
	}
	// On a TCG host "host-model" means the emulated model, which boots.
	t.Run("the probe boots: kvm", func(t *testing.T) {
		det := detect(t, libvirt.BootProbe{Timeout: time.Minute}, "")
		assert.Equal(t, libvirt.DomainKVM, det.DomainType)
		assert.Equal(t, "host-model", det.CPUMode)
	})
	t.Run("the guest prints nothing: qemu", func(t *testing.T) {
		det := detect(t, libvirt.BootProbe{Kernel: g.Kernel, Initrd: g.Initrd, Cmdline: "console=ttyS0", Marker: "NEVER-PRINTED-" + randHex(4), Timeout: 3 * time.Second}, "")
		assert.Equal(t, libvirt.DomainQEMU, det.DomainType)
		assert.Empty(t, det.CPUMode)
		assert.Contains(t, det.Reason, "printed nothing")
	})
	t.Run("the domain does not start: qemu", func(t *testing.T) {
		// host-passthrough is refused where the CPU cannot be passed (TCG
		// here; a nested host where QEMU aborts).
		det := detect(t, libvirt.BootProbe{Timeout: 10 * time.Second}, "host-passthrough")
		if det.DomainType == libvirt.DomainKVM {
			// A real kvm host passes its CPU: then the probe booted.
			assert.Contains(t, det.Reason, "booted")
			return
		}
		assert.Equal(t, libvirt.DomainQEMU, det.DomainType)
		assert.Equal(t, "host-passthrough", det.CPUMode, "a set cpu mode stays")
		assert.Contains(t, det.Reason, "did not start")
	})
	out, err := exec.Command("virsh", "-c", lv.URI, "list", "--all", "--name").CombinedOutput()
	require.NoError(t, err, string(out))
	assert.NotContains(t, string(out), "vpt-probe-", "probe domains are gone")
}
