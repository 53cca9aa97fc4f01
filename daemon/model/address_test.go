package model_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/model"
)

func TestParseLibvirtAddress(t *testing.T) {
	for _, tc := range []struct {
		in       string
		ok       bool
		socket   string
		migrate  string
		bad      bool
		errMatch string
	}{
		{in: "local"},
		{in: "sim"},
		{in: "10.0.0.1:7443"},
		{in: "qemu+unix:///system?socket=/run/libvirt/libvirt-sock", ok: true, socket: "/run/libvirt/libvirt-sock"},
		{in: "qemu+unix:///system?socket=/srv/h2/sock&migration_address=10.0.0.2", ok: true, socket: "/srv/h2/sock", migrate: "10.0.0.2"},
		{in: "qemu+unix:///system?socket=/srv/h2/sock&migration_address=fd00::2", ok: true, socket: "/srv/h2/sock", migrate: "fd00::2"},
		{in: "qemu+unix:///system", bad: true, errMatch: "socket"},
		{in: "qemu+unix:///session?socket=/s", bad: true},
		{in: "qemu+unix://host/system?socket=/s", bad: true},
		{in: "qemu+unix:///system?socket=relative/s", bad: true},
		{in: "qemu+unix:///system?socket=/a/../s", bad: true},
		{in: "qemu+unix:///system?socket=/s&socket=/t", bad: true},
		{in: "qemu+unix:///system?socket=/s&no_verify=1", bad: true, errMatch: "no_verify"},
		{in: "qemu+unix:///system?socket=/s&migration_address=host.example", bad: true, errMatch: "migration_address"},
		{in: "qemu+unix:///system?socket=/s%0Ax", bad: true},
		{in: "qemu+unix:///system?socket=/s&netns=vpt-h2", ok: true, socket: "/s"},
		{in: "qemu+unix:///system?socket=/s&netns=../x", bad: true, errMatch: "netns"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			a, ok, err := model.ParseLibvirtAddress("address", tc.in)
			if tc.bad {
				require.ErrorIs(t, err, virtplane.ErrInvalidArgument)
				assert.True(t, ok, "it is a libvirt address, a bad one")
				assert.Contains(t, err.Error(), "address")
				assert.Contains(t, err.Error(), tc.errMatch)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.ok, ok)
			assert.Equal(t, tc.socket, a.Socket)
			assert.Equal(t, tc.migrate, a.MigrationAddress)
			if ok {
				assert.Equal(t, "qemu+unix:///system?socket="+tc.socket, a.URI)
			}
		})
	}
}

// FuzzParseLibvirtAddress: any input is refused cleanly or parsed into an
// address whose URI parses back to the same socket.
func FuzzParseLibvirtAddress(f *testing.F) {
	for _, s := range []string{"local", "qemu+unix:///system?socket=/run/libvirt/libvirt-sock",
		"qemu+unix:///system?socket=/s&migration_address=10.0.0.2", "qemu+unix:///system?socket=%2Fs", "qemu+unix://"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		a, ok, err := model.ParseLibvirtAddress("address", in)
		if err != nil || !ok {
			return
		}
		b, ok2, err := model.ParseLibvirtAddress("address", a.URI)
		if err != nil || !ok2 || b.Socket != a.Socket || b.URI != a.URI {
			t.Fatalf("%q parsed to %+v, whose URI gives %+v, %v", in, a, b, err)
		}
	})
}
