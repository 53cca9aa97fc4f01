package daemon_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane/internal/testenv"
)

// guestNet is a network namespace standing in for a VM's network: a veth
// from the root namespace, the VM's gateway on the host end and the VM's
// address on the guest end (a /30 each).
type guestNet struct {
	ns      *testenv.Netns
	gateway string
	addr    string
}

// guestNets makes n of them in 10.215.X.0/24, X random; guest i has
// 10.215.X.(4i+2) behind gateway 10.215.X.(4i+1).
func guestNets(t *testing.T, n int) (prefix string, nets []guestNet) {
	x := 1 + rand.IntN(250)
	prefix = fmt.Sprintf("10.215.%d", x)
	for i := range n {
		g := guestNet{ns: testenv.NewNetns(t), gateway: fmt.Sprintf("%s.%d", prefix, 4*i+1), addr: fmt.Sprintf("%s.%d", prefix, 4*i+2)}
		testenv.Veth(t, nil, fmt.Sprintf("vpg%04x%d", rand.IntN(1<<16), i), g.gateway+"/30", g.ns, "eth0", g.addr+"/30")
		nets = append(nets, g)
	}
	return prefix, nets
}

// startGuestSSHD starts an sshd on the guest's address inside its
// namespace that takes authorizedKey for root, as cloud-init would have
// set it up from the VM's meta-data. setup, when not empty, runs first in
// a mount namespace of the guest's own (a shell snippet), so the "VM" can
// have files of its own over the host's. The sshd is killed at cleanup.
func startGuestSSHD(t *testing.T, g guestNet, authorizedKey, setup string) (hostKey string, stop func()) {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, "hostkey")).CombinedOutput()
	require.NoError(t, err, string(out))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "authorized_keys"), []byte(authorizedKey+"\n"), 0o600))
	cfg := fmt.Sprintf(`ListenAddress %s:22
HostKey %s/hostkey
PidFile %s/sshd.pid
AuthorizedKeysFile %s/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
MaxSessions 64
MaxStartups 64:30:128
`, g.addr, dir, dir, dir)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "sshd_config"), []byte(cfg), 0o600))
	require.NoError(t, os.MkdirAll("/run/sshd", 0o755))
	script := "exec /usr/sbin/sshd -D -e -f " + filepath.Join(dir, "sshd_config")
	if setup != "" {
		script = "set -e\n" + setup + "\n" + script
	}
	cmd := g.ns.Command(context.Background(), "unshare", "-m", "--propagation", "private", "sh", "-c", script)
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	require.NoError(t, cmd.Start())
	var once sync.Once
	stop = func() {
		once.Do(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			if t.Failed() {
				t.Logf("guest sshd on %s:\n%s", g.addr, log.String())
			}
		})
	}
	t.Cleanup(stop)
	require.Eventually(t, func() bool {
		c, err := net.DialTimeout("tcp", g.addr+":22", time.Second)
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	}, 20*time.Second, 50*time.Millisecond, "the guest sshd on %s never listened", g.addr)
	pub, err := os.ReadFile(filepath.Join(dir, "hostkey.pub"))
	require.NoError(t, err)
	f := strings.Fields(string(pub))
	return f[0] + " " + f[1], stop
}

// inGuest runs a command in the guest's network namespace.
func inGuest(g guestNet, args ...string) (string, error) {
	out, err := g.ns.Command(context.Background(), args[0], args[1:]...).CombinedOutput()
	return string(out), err
}
