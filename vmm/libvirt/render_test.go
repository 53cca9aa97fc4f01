package libvirt_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"libvirt.org/go/libvirtxml"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/vmm"
	"github.com/virtplane/virtplane/vmm/libvirt"
)

func renderSpec(name, path, bridge, tap, mac, cmdline, userData, password string) vmm.Spec {
	return vmm.Spec{
		Name: name, VCPUs: 2, MemoryMiB: 512,
		Disks: []vmm.Disk{
			{Target: "vda", Source: vmm.DiskSource{Kind: "file", Path: path, Format: "qcow2"}},
			{Target: "vdb", Source: vmm.DiskSource{Kind: "rbd", Pool: "rbd", Image: "img-1", Monitors: []string{"10.0.0.1:6789"}, User: "admin"}},
		},
		NICs:      []vmm.NIC{{Bridge: bridge, Tap: tap, MAC: mac, Limits: vmm.NICLimits{InboundKiBs: 100}}},
		Boot:      vmm.Boot{Kernel: "/boot/vmlinuz", Cmdline: cmdline},
		CloudInit: &vmm.CloudInit{UserData: userData, MetaData: "instance-id: x\n"},
		Console:   vmm.ConsoleSpec{Type: "vnc", Password: password},
		Limits:    vmm.Limits{CPUWeight: 100, Disks: map[string]vmm.DiskLimits{"vda": {ReadIOPS: 10}}},
	}
}

func TestRenderDefaultsAndCustomisation(t *testing.T) {
	spec := renderSpec("vpt-r", "/var/lib/vm/a.qcow2", "br0", "", "52:54:00:00:00:01", "console=ttyS0", "#cloud-config\n", "pw")
	for _, tc := range []struct {
		name   string
		values libvirt.Values
		editor libvirt.DomainEditor
		check  func(t *testing.T, dom *libvirtxml.Domain)
	}{
		{"defaults", libvirt.Values{}, nil, func(t *testing.T, dom *libvirtxml.Domain) {
			assert.Equal(t, "kvm", dom.Type)
			assert.Equal(t, "virtio", dom.Devices.Disks[0].Target.Bus)
			assert.Equal(t, "cdrom", dom.Devices.Disks[2].Device, "the seed is a CD-ROM")
			assert.Equal(t, "virtio", dom.Devices.Interfaces[0].Model.Type)
			assert.Equal(t, "org.qemu.guest_agent.0", dom.Devices.Channels[0].Target.VirtIO.Name)
			assert.NotNil(t, dom.Features.ACPI)
			assert.Equal(t, "127.0.0.1", dom.Devices.Graphics[0].VNC.Listen)
			assert.Equal(t, uint64(10), dom.Devices.Disks[0].IOTune.ReadIopsSec)
			assert.Equal(t, 100, *dom.Devices.Interfaces[0].Bandwidth.Inbound.Average)
			assert.Equal(t, "rbd/img-1", dom.Devices.Disks[1].Source.Network.Name)
			// A user without a secret renders no <auth>: libvirt's schema
			// wants the secret, and librbd goes without (no cephx).
			assert.Nil(t, dom.Devices.Disks[1].Source.Network.Auth)
		}},
		{"values", libvirt.Values{DomainType: "qemu", Machine: "q35", CPUMode: "host-model", ConsoleListen: "0.0.0.0", NoGuestAgent: true}, nil, func(t *testing.T, dom *libvirtxml.Domain) {
			assert.Equal(t, "qemu", dom.Type)
			assert.Equal(t, "q35", dom.OS.Type.Machine)
			assert.Equal(t, "host-model", dom.CPU.Mode)
			assert.Equal(t, "0.0.0.0", dom.Devices.Graphics[0].VNC.Listen)
			assert.Empty(t, dom.Devices.Channels)
		}},
		{"editor", libvirt.Values{}, func(spec vmm.Spec, dom *libvirtxml.Domain) error {
			dom.Description = "owner </description><evil/>"
			dom.Devices.Watchdogs = append(dom.Devices.Watchdogs, libvirtxml.DomainWatchdog{Model: "i6300esb", Action: "reset"})
			return nil
		}, func(t *testing.T, dom *libvirtxml.Domain) {
			assert.Equal(t, "owner </description><evil/>", dom.Description, "editor values are escaped too")
			require.Len(t, dom.Devices.Watchdogs, 1)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x, err := libvirt.RenderXML(spec, tc.values, "/var/lib/virtplane/vmm", tc.editor)
			require.NoError(t, err)
			var dom libvirtxml.Domain
			require.NoError(t, dom.Unmarshal(x))
			tc.check(t, &dom)
		})
	}
	_, err := libvirt.RenderXML(spec, libvirt.Values{}, "/s", func(vmm.Spec, *libvirtxml.Domain) error { return errors.New("no") })
	require.ErrorIs(t, err, virtplane.ErrInvalidArgument)
}

// FuzzRenderXML feeds arbitrary strings into every free-text spec field: the
// result is either a typed validation error, or XML whose element structure
// equals that of a benign spec and whose values read back unchanged.
func FuzzRenderXML(f *testing.F) {
	f.Add("vpt-a", "/var/lib/vm/a.qcow2", "br0", "", "52:54:00:00:00:01", "console=ttyS0", "#cloud-config\n", "pw")
	f.Add("a</name><evil/>", "/x'\"/<disk>", "br0\"/><x", "tap0", "52:54:00:00:00:02", "a]]><b/>&amp;", "</metadata>", "<p>")
	f.Add("x", "/a/../b", "br 0", "t\n", "ff:ff:ff:ff:ff:ff", "\x00", "\xff", "\u2028")
	f.Add("ok", "/dir/file with spaces & <tags>.img", "b-r.0", "", "", "root=/dev/vda quiet <x> & 'y'", "]]>", "p&w\"'<>")
	base, err := libvirt.RenderXML(renderSpec("vpt-a", "/a", "br0", "", "52:54:00:00:00:01", "c", "u", "p"), libvirt.Values{}, "/state", nil)
	require.NoError(f, err)
	want, err := libvirt.CountElements(base)
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, name, path, bridge, tap, mac, cmdline, userData, password string) {
		if mac == "" {
			mac = "52:54:00:00:00:01" // keep the <mac> element in the structure
		}
		spec := renderSpec(name, path, bridge, tap, mac, cmdline, userData, password)
		x, err := libvirt.RenderXML(spec, libvirt.Values{}, "/state", nil)
		if err != nil {
			require.ErrorIs(t, err, virtplane.ErrInvalidArgument, "a rejected spec gets a typed error")
			return
		}
		got, err := libvirt.CountElements(x)
		require.NoError(t, err, "rendered XML must parse")
		if tap != "" {
			got["target"]-- // a tap adds <target dev=...> to the interface
		}
		if cmdline == "" {
			got["cmdline"]++ // an empty command line is left out
		}
		var dom libvirtxml.Domain
		require.NoError(t, dom.Unmarshal(x))
		assert.Equal(t, name, dom.Name)
		assert.Equal(t, path, dom.Devices.Disks[0].Source.File.File)
		assert.Equal(t, cmdline, dom.OS.Cmdline)
		if bridge != "" {
			assert.Equal(t, bridge, dom.Devices.Interfaces[0].Source.Bridge.Bridge)
		} else {
			assert.Equal(t, tap, dom.Devices.Interfaces[0].Target.Dev)
			got["source"]++ // an unmanaged tap has no <source bridge=...>
		}
		assert.Equal(t, strings.ToLower(mac), dom.Devices.Interfaces[0].MAC.Address)
		assert.Equal(t, password, dom.Devices.Graphics[0].VNC.Passwd)
		assert.Equal(t, want, got, "values must never become elements")
	})
}

func TestRenderNetworkDisks(t *testing.T) {
	spec := vmm.Spec{Name: "vpt-n", VCPUs: 1, MemoryMiB: 64, Disks: []vmm.Disk{
		{Target: "vda", Source: vmm.DiskSource{Kind: "rbd", Pool: "rbd", Image: "a", Monitors: []string{"10.0.0.1:6789", "[fd00::1]:3300"}, User: "vm", Secret: "0a1b2c3d-0000-4000-8000-000000000001"}},
		{Target: "vdb", Source: vmm.DiskSource{Kind: "iscsi", URL: "iscsi://127.0.0.1:3260/iqn.2026-01.dev.virtplane:t1/1"}},
		{Target: "sda", Source: vmm.DiskSource{Kind: "block", Path: "/dev/vg/a", Format: "raw"}},
	}}
	x, err := libvirt.RenderXML(spec, libvirt.Values{}, "/s", nil)
	require.NoError(t, err)
	var dom libvirtxml.Domain
	require.NoError(t, dom.Unmarshal(x))
	rbd := dom.Devices.Disks[0].Source.Network
	assert.Equal(t, []libvirtxml.DomainDiskSourceHost{{Name: "10.0.0.1", Port: "6789"}, {Name: "fd00::1", Port: "3300"}}, rbd.Hosts)
	assert.Equal(t, "vm", rbd.Auth.Username)
	assert.Equal(t, "0a1b2c3d-0000-4000-8000-000000000001", rbd.Auth.Secret.UUID)
	iscsi := dom.Devices.Disks[1].Source.Network
	assert.Equal(t, "iscsi", iscsi.Protocol)
	assert.Equal(t, "iqn.2026-01.dev.virtplane:t1/1", iscsi.Name)
	assert.Equal(t, "/dev/vg/a", dom.Devices.Disks[2].Source.Block.Dev)
	assert.Equal(t, "sata", dom.Devices.Disks[2].Target.Bus)
}
