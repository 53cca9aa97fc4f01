package libvirt_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/vmm"
	"github.com/virtplane/virtplane/vmm/libvirt"
)

func templateSpec() vmm.Spec {
	return vmm.Spec{Name: "t1", VCPUs: 1, MemoryMiB: 128,
		Disks: []vmm.Disk{{Target: "vda", Source: vmm.DiskSource{Kind: "file", Path: "/pool/t1.qcow2", Format: "qcow2"}}},
		NICs:  []vmm.NIC{{Bridge: "br0", MAC: "52:54:00:00:00:01"}}}
}

func TestTemplateValuesAndOverride(t *testing.T) {
	s := templateSpec()
	s.Template = &vmm.Template{Machine: "q35", CPUMode: "custom", CPUModel: "qemu64", DiskBus: "sata", NICModel: "e1000", Video: "vga",
		Override: `<domain><memoryBacking><nosharepages/></memoryBacking><devices>` +
			`<disk type='file' device='disk'><source file='/pool/extra.raw'/><target dev='vdb' bus='virtio'/></disk>` +
			`<input type='tablet' bus='usb'/></devices></domain>`}
	x, err := libvirt.RenderXML(s, libvirt.Values{DomainType: "qemu"}, "/state", nil)
	require.NoError(t, err)
	for _, want := range []string{`machine="q35"`, `<model fallback="allow">qemu64</model>`, `bus="sata"`, `<model type="e1000">`,
		`<model type="vga">`, `<nosharepages>`, `/pool/extra.raw`, `/pool/t1.qcow2`, `<input type="tablet" bus="usb">`} {
		assert.Contains(t, x, want)
	}
	assert.Equal(t, 1, strings.Count(x, "<devices>"))
}

func TestOverrideRefusedWithThePath(t *testing.T) {
	for _, tc := range []struct{ name, override, path string }{
		{"second devices", `<domain><devices><input type='tablet' bus='usb'/></devices><devices><video><model type='vga'/></video></devices></domain>`, "/domain/devices[2]"},
		{"disk outside the pools", `<domain><devices><disk type='file' device='disk'><source file='/etc/shadow'/><target dev='vdb'/></disk></devices></domain>`, "/domain/devices[1]/disk[1]/source"},
		{"unknown element", `<domain><devices><vidoe><model type='vga'/></vidoe></devices></domain>`, "/domain/devices[1]/vidoe[1]"},
		{"unknown attribute", `<domain><devices><video><model tpye='vga'/></video></devices></domain>`, "/domain/devices[1]/video[1]/model[1]/@tpye"},
		{"name", `<domain><name>other</name></domain>`, "/domain/name[1]"},
		{"not a domain", `<network/>`, "/"},
		{"not xml", `<domain>`, "/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := templateSpec()
			s.Template = &vmm.Template{Override: tc.override}
			_, err := libvirt.RenderXML(s, libvirt.Values{DomainType: "qemu"}, "/state", nil)
			require.ErrorIs(t, err, virtplane.ErrInvalidArgument)
			assert.Contains(t, err.Error(), tc.path+":")
		})
	}
}

func TestTemplateValuesValidated(t *testing.T) {
	s := templateSpec()
	s.Template = &vmm.Template{Video: "matrox"}
	_, err := libvirt.RenderXML(s, libvirt.Values{}, "/state", nil)
	require.ErrorIs(t, err, virtplane.ErrInvalidArgument)
	assert.Contains(t, err.Error(), "template.video")
}

func FuzzCheckOverride(f *testing.F) {
	f.Add(`<domain><devices><video><model type='vga'/></video></devices></domain>`)
	f.Add(`<domain><devices/><devices/></domain>`)
	f.Fuzz(func(t *testing.T, x string) {
		_, err := libvirt.CheckOverride(x, []string{"/pool"})
		if err != nil {
			require.ErrorIs(t, err, virtplane.ErrInvalidArgument)
		}
	})
}
