package libvirt_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane/internal/testenv"
	"github.com/virtplane/virtplane/vmm"
	"github.com/virtplane/virtplane/vmm/libvirt"
)

// startHost is the recipe's start-host.sh: inside a fresh mount and UTS
// namespace, give libvirt its own directories, then run virtlogd and libvirtd.
const startHost = `set -e
D=$1
hostname $2
for p in etc:/etc/libvirt run:/run/libvirt lib:/var/lib/libvirt log:/var/log/libvirt cache:/var/cache/libvirt; do
  mkdir -p ${p#*:}; mount --bind $D/${p%%:*} ${p#*:}
done
virtlogd -d --pid-file $D/virtlogd.pid
exec libvirtd --config /etc/libvirt/libvirtd.conf --pid-file $D/libvirtd.pid
`

// secondHost is a second libvirtd on this machine, in its own network,
// mount and UTS namespaces, reachable over a veth pair.
type secondHost struct {
	Socket  string // its unix socket, seen from the root mount namespace
	Address string // its address on the veth link
}

// startSecondHost starts the second libvirtd; it is stopped and its
// namespace removed when the test ends.
func startSecondHost(t *testing.T) secondHost {
	t.Helper()
	ns := testenv.NewNetns(t)
	// A /30 in 10.231.0.0/16 picked per process, to stay clear of other tests.
	n := os.Getpid() % 16000
	a, b := fmt.Sprintf("10.231.%d.%d", n/64, (n%64)*4+1), fmt.Sprintf("10.231.%d.%d", n/64, (n%64)*4+2)
	testenv.Veth(t, nil, "vpm"+randHex(4), a+"/30", ns, "eth0", b+"/30")

	d := t.TempDir()
	for _, sub := range []string{"etc", "run", "lib", "log/qemu", "cache"} {
		require.NoError(t, os.MkdirAll(filepath.Join(d, sub), 0o755))
	}
	uuid := fmt.Sprintf("%s-%s-4%s-8%s-%s", randHex(4), randHex(2), randHex(2)[1:], randHex(2)[1:], randHex(6))
	require.NoError(t, os.WriteFile(filepath.Join(d, "etc", "libvirtd.conf"), []byte(fmt.Sprintf(
		"unix_sock_group = \"root\"\nunix_sock_rw_perms = \"0770\"\nauth_unix_rw = \"none\"\nauth_unix_ro = \"none\"\nhost_uuid = %q\nlog_outputs = \"3:file:/var/log/libvirt/libvirtd.log\"\n", uuid)), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(d, "etc", "qemu.conf"), []byte("user = \"root\"\ngroup = \"root\"\n"), 0o644))
	script := filepath.Join(d, "start-host.sh")
	require.NoError(t, os.WriteFile(script, []byte(startHost), 0o755))

	cmd := exec.Command("tini", "-s", "--", "ip", "netns", "exec", ns.Name, "unshare", "-m", "-u", "--propagation", "private", "sh", script, d, "vpt-peer")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := os.Create(filepath.Join(d, "daemon.out"))
	require.NoError(t, err)
	cmd.Stdout, cmd.Stderr = out, out
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		// Every process of the host (libvirtd, virtlogd, QEMUs) lives in
		// the namespace; the namespace cleanup kills what survives this.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		_ = out.Close()
	})
	sock := filepath.Join(d, "run", "libvirt-sock")
	require.Eventually(t, func() bool {
		c, err := net.DialTimeout("unix", sock, time.Second)
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	}, 30*time.Second, 100*time.Millisecond, "second libvirtd did not open %s (see %s)", sock, out.Name())
	return secondHost{Socket: sock, Address: b}
}

// migration prepares the second host as a migration target of machines
// whose files live under stateDir.
func migration(stateDir string) func(t *testing.T) (vmm.MigrationTarget, vmm.Driver) {
	return func(t *testing.T) (vmm.MigrationTarget, vmm.Driver) {
		h := startSecondHost(t)
		peer, err := libvirt.New(libvirt.Config{Socket: h.Socket, StateDir: stateDir})
		require.NoError(t, err)
		t.Cleanup(func() { _ = peer.Close() })
		return vmm.MigrationTarget{
			URI:         "qemu+unix:///system?socket=" + h.Socket,
			Address:     h.Address,
			AllowUnsafe: true, // the disks are local files both "hosts" see
		}, peer
	}
}
