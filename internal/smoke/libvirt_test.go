package smoke

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/digitalocean/go-libvirt"
	"github.com/digitalocean/go-libvirt/socket/dialers"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"libvirt.org/go/libvirtxml"

	"github.com/virtplane/virtplane/internal/testenv"
)

// TestLibvirtBootsGuest defines and starts a domain that boots the guest
// kernel with the domain type the test environment found to boot here
// (testenv.Libvirt.DomainType), reads the guest's marker from its serial
// console log, then destroys and undefines it.
func TestLibvirtBootsGuest(t *testing.T) {
	env := testenv.RequireLibvirt(t)
	guest := testenv.RequireGuest(t)

	l := libvirt.NewWithDialer(dialers.NewLocal(dialers.WithSocket(env.Socket), dialers.WithLocalTimeout(5*time.Second)))
	require.NoError(t, l.ConnectToURI(libvirt.QEMUSystem))
	t.Cleanup(func() { _ = l.Disconnect() })

	name := uniqueName("smoke")
	console := filepath.Join(t.TempDir(), "console.log")
	dom := &libvirtxml.Domain{
		Type:   env.DomainType,
		Name:   name,
		Memory: &libvirtxml.DomainMemory{Value: 128, Unit: "MiB"},
		VCPU:   &libvirtxml.DomainVCPU{Value: 1},
		OS: &libvirtxml.DomainOS{
			Type:    &libvirtxml.DomainOSType{Arch: "x86_64", Type: "hvm"},
			Kernel:  guest.Kernel,
			Initrd:  guest.Initrd,
			Cmdline: "console=ttyS0 panic=-1 quiet",
		},
		OnPoweroff: "destroy",
		CPU:        cpu(env.CPUMode),
		Devices: &libvirtxml.DomainDeviceList{
			Serials: []libvirtxml.DomainSerial{{
				Source: &libvirtxml.DomainChardevSource{Pty: &libvirtxml.DomainChardevSourcePty{}},
				Log:    &libvirtxml.DomainChardevLog{File: console, Append: "off"},
			}},
		},
	}
	xml, err := dom.Marshal()
	require.NoError(t, err)

	d, err := l.DomainDefineXML(xml)
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = l.DomainDestroy(d)
		_ = l.DomainUndefine(d)
	})
	require.NoError(t, l.DomainCreate(d))

	out := waitFileContains(t, console, guest.Marker, 120*time.Second)
	assert.Contains(t, out, guest.Marker)

	state, _, err := l.DomainGetState(d, 0)
	require.NoError(t, err)
	assert.Equal(t, int32(libvirt.DomainRunning), state, "domain should be running after boot")

	require.NoError(t, l.DomainDestroy(d))
	require.NoError(t, l.DomainUndefine(d))
	_, err = l.DomainLookupByName(name)
	assert.Error(t, err, "domain must be gone after undefine")
}

func cpu(mode string) *libvirtxml.DomainCPU {
	if mode == "" {
		return nil
	}
	return &libvirtxml.DomainCPU{Mode: mode}
}
