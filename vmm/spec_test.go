package vmm_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/vmm"
)

func validSpec() vmm.Spec {
	return vmm.Spec{
		Name: "web-1", VCPUs: 2, MemoryMiB: 1024,
		Disks: []vmm.Disk{
			{Target: "vda", Source: vmm.DiskSource{Kind: "file", Path: "/var/lib/vm/web-1.qcow2", Format: "qcow2"}},
			{Target: "vdb", Source: vmm.DiskSource{Kind: "rbd", Pool: "rbd", Image: "web-1-data", Monitors: []string{"10.0.0.1:6789", "[fd00::1]:6789"}, User: "admin", Secret: "0a1b2c3d-0000-4000-8000-000000000001"}},
			{Target: "vdc", Source: vmm.DiskSource{Kind: "iscsi", URL: "iscsi://127.0.0.1:3260/iqn.2026-01.dev.virtplane:t1/1"}},
			{Target: "sda", Source: vmm.DiskSource{Kind: "block", Path: "/dev/vg0/web-1", Format: "raw"}},
		},
		NICs:   []vmm.NIC{{Bridge: "br0", MAC: "52:54:00:AB:CD:EF", Limits: vmm.NICLimits{InboundKiBs: 10}}},
		Limits: vmm.Limits{CPUWeight: 100, Disks: map[string]vmm.DiskLimits{"vda": {ReadIOPS: 100}}},
	}
}

func TestValidate(t *testing.T) {
	require.NoError(t, validSpec().Validate())
	for _, tc := range []struct {
		name   string
		field  string // the error message must name it
		mutate func(*vmm.Spec)
	}{
		{"name", "name", func(s *vmm.Spec) { s.Name = "-x" }},
		{"vcpus", "vcpus", func(s *vmm.Spec) { s.VCPUs = 1000 }},
		{"memory", "memory_mib", func(s *vmm.Spec) { s.MemoryMiB = 0 }},
		{"image", "image", func(s *vmm.Spec) { s.Image = "a b" }},
		{"duplicate target", "disks[1].target", func(s *vmm.Spec) { s.Disks[1].Target = "vda" }},
		{"format", "disks[0].source.format", func(s *vmm.Spec) { s.Disks[0].Source.Format = "vmdk" }},
		{"unclean path", "disks[0].source.path", func(s *vmm.Spec) { s.Disks[0].Source.Path = "/var/../etc/shadow" }},
		{"rbd pool", "disks[1].source.pool", func(s *vmm.Spec) { s.Disks[1].Source.Pool = "a/b" }},
		{"rbd monitor", "disks[1].source.monitors[0]", func(s *vmm.Spec) { s.Disks[1].Source.Monitors[0] = "host" }},
		{"rbd secret", "disks[1].source.secret", func(s *vmm.Spec) { s.Disks[1].Source.Secret = "x" }},
		{"iscsi url", "disks[2].source.url", func(s *vmm.Spec) { s.Disks[2].Source.URL = "http://x/iqn.2026-01.a:b/1" }},
		{"iscsi lun", "disks[2].source.url", func(s *vmm.Spec) { s.Disks[2].Source.URL = "iscsi://h:3260/iqn.2026-01.a:b/x" }},
		{"multicast mac", "nics[0].mac", func(s *vmm.Spec) { s.NICs[0].MAC = "01:00:5e:00:00:01" }},
		{"duplicate mac", "nics[1].mac", func(s *vmm.Spec) {
			s.NICs = append(s.NICs, vmm.NIC{Bridge: "br1", MAC: "52:54:00:ab:cd:ef"})
		}},
		{"long bridge", "nics[0].bridge", func(s *vmm.Spec) { s.NICs[0].Bridge = strings.Repeat("b", 16) }},
		{"initrd without kernel", "boot.kernel", func(s *vmm.Spec) { s.Boot.Initrd = "/boot/initrd" }},
		{"cmdline control char", "boot.cmdline", func(s *vmm.Spec) { s.Boot = vmm.Boot{Kernel: "/k", Cmdline: "a\x1bb"} }},
		{"cloud-init NUL", "cloud_init.user_data", func(s *vmm.Spec) { s.CloudInit = &vmm.CloudInit{UserData: "a\x00"} }},
		{"console password", "console.password", func(s *vmm.Spec) { s.Console = vmm.ConsoleSpec{Type: "vnc", Password: "a\nb"} }},
		{"cpu weight", "limits.cpu_weight", func(s *vmm.Spec) { s.Limits.CPUWeight = 10001 }},
		{"nic limit for unknown mac", "limits.nics", func(s *vmm.Spec) {
			s.Limits.NICs = map[string]vmm.NICLimits{"52:54:00:00:00:99": {InboundKiBs: 1}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := validSpec()
			tc.mutate(&s)
			err := s.Validate()
			require.ErrorIs(t, err, virtplane.ErrInvalidArgument)
			assert.Contains(t, err.Error(), tc.field)
		})
	}
}

func TestNormalize(t *testing.T) {
	s := validSpec().Normalize()
	assert.Equal(t, "virtio", s.NICs[0].Model)
	assert.Equal(t, "52:54:00:ab:cd:ef", s.NICs[0].MAC)
	assert.Equal(t, vmm.NICLimits{InboundKiBs: 10}, s.Limits.NICs["52:54:00:ab:cd:ef"], "per-NIC limits merge into Limits.NICs")
	orig := validSpec()
	orig.Normalize().Disks[0].Target = "vdz"
	assert.Equal(t, "vda", orig.Disks[0].Target, "Normalize copies")
}

func FuzzValidate(f *testing.F) {
	f.Add("web-1", "/var/lib/a.img", "br0", "52:54:00:00:00:01", "iscsi://h:1/iqn.2026-01.a:b/0", "10.0.0.1:6789")
	f.Add("", "relative", "", "zz", "iscsi://", ":")
	f.Fuzz(func(t *testing.T, name, path, bridge, mac, url, mon string) {
		s := vmm.Spec{Name: name, VCPUs: 1, MemoryMiB: 64,
			Disks: []vmm.Disk{
				{Target: "vda", Source: vmm.DiskSource{Kind: "file", Path: path, Format: "raw"}},
				{Target: "vdb", Source: vmm.DiskSource{Kind: "iscsi", URL: url}},
				{Target: "vdc", Source: vmm.DiskSource{Kind: "rbd", Pool: "p", Image: "i", Monitors: []string{mon}}},
			},
			NICs: []vmm.NIC{{Bridge: bridge, MAC: mac}},
		}
		if err := s.Validate(); err != nil {
			require.ErrorIs(t, err, virtplane.ErrInvalidArgument)
			return
		}
		// Paths may hold any printable character (the XML encoder escapes
		// them); names, bridges and MACs come from closed alphabets.
		for _, v := range []string{name, bridge, mac} {
			assert.NotContains(t, v, "<", "accepted values carry no markup")
			assert.NotContains(t, v, "\n")
		}
	})
}
