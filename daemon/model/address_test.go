package model_test

import (
	"errors"
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

func TestParseSSHAddress(t *testing.T) {
	def := func(user, host string, port int) model.SSHAddress {
		return model.SSHAddress{User: user, Host: host, Port: port, Socket: model.DefaultLibvirtSocket, Agent: model.DefaultAgent}
	}
	full := def("root", "node1.example", 2222)
	full.Socket, full.Agent, full.Netns = "/srv/lv/sock", "/opt/vp/virtplaned", "vms"
	for _, tc := range []struct {
		in   string
		ok   bool
		want model.SSHAddress
		bad  string // the part the error names; "" for no error
	}{
		{in: "local"},
		{in: "sim"},
		{in: "qemu+unix:///system?socket=/s"},
		{in: "10.0.0.1:7443"},
		{in: "ssh://root@node1", ok: true, want: def("root", "node1", 22)},
		{in: "ssh://root@node1/", ok: true, want: def("root", "node1", 22)},
		{in: "ssh://admin@10.0.0.5:2222", ok: true, want: def("admin", "10.0.0.5", 2222)},
		{in: "ssh://root@[fd00::5]:22", ok: true, want: def("root", "fd00::5", 22)},
		{in: "ssh://root@node1.example:2222?socket=/srv/lv/sock&agent=/opt/vp/virtplaned&netns=vms", ok: true, want: full},
		{in: "ssh://node1", bad: "user"},
		{in: "ssh://@node1", bad: "user"},
		{in: "ssh://root:secret@node1", bad: "password"},
		{in: "ssh://ro%20ot@node1", bad: "user"},
		{in: "ssh://-oProxyCommand=x@node1", bad: "user"},
		{in: "ssh://root@", bad: "host"},
		{in: "ssh://root@-node", bad: "host"},
		{in: "ssh://root@node_1", bad: "host"},
		{in: "ssh://root@[fe80::1%25eth0]", bad: "zone"},
		{in: "ssh://root@node1:0", bad: "port"},
		{in: "ssh://root@node1:65536", bad: "port"},
		{in: "ssh://root@node1:022", bad: "port"},
		{in: "ssh://root@node1:", bad: "port"},
		{in: "ssh://root@node1:x", bad: "port"},
		{in: "ssh://root@node1/var", bad: "path"},
		{in: "ssh://root@node1#frag", bad: "path"},
		{in: "ssh://root@node1?socket=relative", bad: "socket"},
		{in: "ssh://root@node1?socket=/a/../b", bad: "socket"},
		{in: "ssh://root@node1?socket=/a;rm", bad: "socket"},
		{in: "ssh://root@node1?agent=/bin/x%20y", bad: "agent"},
		{in: "ssh://root@node1?agent=/bin/$(id)", bad: "agent"},
		{in: "ssh://root@node1?netns=../x", bad: "netns"},
		{in: "ssh://root@node1?socket=/a&socket=/b", bad: "more than once"},
		{in: "ssh://root@node1?migration_address=10.0.0.1", bad: "migration_address"},
		{in: "ssh://root@node1?a=%zz", bad: "query"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			a, ok, err := model.ParseSSHAddress("address", tc.in)
			if tc.bad != "" {
				require.ErrorIs(t, err, virtplane.ErrInvalidArgument)
				assert.True(t, ok, "it is an ssh address, a bad one")
				assert.Contains(t, err.Error(), "address")
				assert.Contains(t, err.Error(), tc.bad)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.ok, ok)
			assert.Equal(t, tc.want, a)
			if ok {
				b, ok, err := model.ParseSSHAddress("address", a.String())
				require.NoError(t, err)
				assert.True(t, ok)
				assert.Equal(t, a, b, "String parses back")
			}
		})
	}
}

// FuzzParseSSHAddress: any input is refused cleanly or parsed into an
// address whose canonical form parses back to the same address.
func FuzzParseSSHAddress(f *testing.F) {
	for _, s := range []string{"local", "ssh://root@node1", "ssh://root@[fd00::5]:2222?netns=vms",
		"ssh://root@h:22?socket=/s&agent=/a", "ssh://", "ssh://a:b@c", "ssh://root@node1?socket=%2Fs"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		a, ok, err := model.ParseSSHAddress("address", in)
		if err != nil {
			if !errors.Is(err, virtplane.ErrInvalidArgument) || !ok {
				t.Fatalf("%q: %v (ok %v)", in, err, ok)
			}
			return
		}
		if !ok {
			return
		}
		b, ok2, err := model.ParseSSHAddress("address", a.String())
		if err != nil || !ok2 || b != a {
			t.Fatalf("%q parsed to %+v, whose String %q gives %+v, %v", in, a, a.String(), b, err)
		}
	})
}
