package sshnode_test

import (
	"context"
	"net"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane/daemon/sshnode"
	"github.com/virtplane/virtplane/internal/testenv"
	"github.com/virtplane/virtplane/vmm/libvirt"
)

// BenchmarkLibvirtThroughSSH measures a libvirt call (List) made through
// the SSH tunnel beside the same call on the socket directly, and reports
// what the tunnel costs as a ratio.
func BenchmarkLibvirtThroughSSH(b *testing.B) {
	lv := testenv.RequireLibvirt(b)
	env := testenv.RequireSSH(b)
	key, err := os.ReadFile(env.KeyFile)
	require.NoError(b, err)
	conn, err := sshnode.New(sshnode.Config{Name: "bench", Addr: env.Addr, User: env.User, PrivateKey: key, KnownHostsFile: env.KnownHosts})
	require.NoError(b, err)
	b.Cleanup(func() { _ = conn.Close() })
	tunnel, err := libvirt.New(libvirt.Config{StateDir: b.TempDir(), URI: lv.URI,
		Dial: func(ctx context.Context) (net.Conn, error) { return conn.DialUnix(ctx, lv.Socket) }},
		libvirt.WithValues(lv.Values()))
	require.NoError(b, err)
	b.Cleanup(func() { _ = tunnel.Close() })
	direct, err := libvirt.New(libvirt.Config{StateDir: b.TempDir(), URI: lv.URI, Socket: lv.Socket}, libvirt.WithValues(lv.Values()))
	require.NoError(b, err)
	b.Cleanup(func() { _ = direct.Close() })
	ctx := context.Background()
	per := map[string]time.Duration{}
	for _, d := range []struct {
		name string
		drv  *libvirt.Driver
	}{{"direct", direct}, {"ssh", tunnel}} {
		_, err := d.drv.List(ctx) // connect outside the timing
		require.NoError(b, err)
		b.Run(d.name, func(b *testing.B) {
			start := time.Now()
			for b.Loop() {
				if _, err := d.drv.List(ctx); err != nil {
					b.Fatal(err)
				}
			}
			per[d.name] = time.Since(start) / time.Duration(b.N)
			if d.name == "ssh" && per["direct"] > 0 {
				b.ReportMetric(float64(per["ssh"])/float64(per["direct"]), "ssh/direct")
			}
		})
	}
}
