package ssh_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	xssh "golang.org/x/crypto/ssh"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/internal/testenv"
	"github.com/virtplane/virtplane/scripts"
	"github.com/virtplane/virtplane/scripts/scripttest"
	"github.com/virtplane/virtplane/scripts/ssh"
)

func loopback(t *testing.T) (*ssh.Runner, scripts.Target, testenv.SSH) {
	env := testenv.RequireSSH(t)
	key, err := os.ReadFile(env.KeyFile)
	require.NoError(t, err)
	r, err := ssh.New(ssh.Config{Credentials: ssh.Credentials{User: env.User, PrivateKey: key}, KnownHostsFile: env.KnownHosts})
	require.NoError(t, err)
	return r, scripts.Target{Name: "loopback", Address: env.Addr}, env
}

func harness(r *ssh.Runner, target scripts.Target) scripttest.Harness {
	return scripttest.Harness{Runner: r, Target: target,
		ProcessAlive: func(ctx context.Context, pattern string) (bool, error) {
			return r.ProcessAlive(ctx, target, pattern)
		}}
}

func TestConformanceLoopback(t *testing.T) {
	r, target, _ := loopback(t)
	scripttest.Run(t, func(t *testing.T) scripttest.Harness { return harness(r, target) })
}

// TestConformanceNetns runs the suite against an sshd of its own inside a
// network namespace, reached from the root namespace over a veth pair.
func TestConformanceNetns(t *testing.T) {
	ns := testenv.NewNetns(t)
	octet := 1 + rand.IntN(250)
	hostAddr, nsAddr := fmt.Sprintf("10.213.%d.1", octet), fmt.Sprintf("10.213.%d.2", octet)
	testenv.Veth(t, nil, fmt.Sprintf("vps%04x", rand.IntN(1<<16)), hostAddr+"/30", ns, "eth0", nsAddr+"/30")

	dir := t.TempDir()
	for _, k := range []string{"hostkey", "client"} {
		out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, k)).CombinedOutput()
		require.NoError(t, err, string(out))
	}
	pub, err := os.ReadFile(filepath.Join(dir, "client.pub"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "authorized_keys"), pub, 0o600))
	hostPub, err := os.ReadFile(filepath.Join(dir, "hostkey.pub"))
	require.NoError(t, err)
	fields := strings.Fields(string(hostPub))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "known_hosts"), []byte(nsAddr+" "+fields[0]+" "+fields[1]+"\n"), 0o600))
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
`, nsAddr, dir, dir, dir)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "sshd_config"), []byte(cfg), 0o600))
	require.NoError(t, os.MkdirAll("/run/sshd", 0o755))
	sshd := ns.Command(context.Background(), "/usr/sbin/sshd", "-D", "-e", "-f", filepath.Join(dir, "sshd_config"))
	var log strings.Builder
	sshd.Stderr = &log
	require.NoError(t, sshd.Start())
	t.Cleanup(func() {
		_ = sshd.Process.Kill()
		_ = sshd.Wait()
		if t.Failed() {
			t.Logf("sshd log:\n%s", log.String())
		}
	})
	require.Eventually(t, func() bool {
		c, err := net.DialTimeout("tcp", nsAddr+":22", time.Second)
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	}, 10*time.Second, 50*time.Millisecond, "sshd in %s never listened", ns.Name)

	key, err := os.ReadFile(filepath.Join(dir, "client"))
	require.NoError(t, err)
	r, err := ssh.New(ssh.Config{Credentials: ssh.Credentials{User: "root", PrivateKey: key}, KnownHostsFile: filepath.Join(dir, "known_hosts")})
	require.NoError(t, err)
	target := scripts.Target{Name: "in-netns", Address: nsAddr}
	scripttest.Run(t, func(t *testing.T) scripttest.Harness { return harness(r, target) })
}

func TestPasswordLogin(t *testing.T) {
	srv := startPasswordServer(t, "admin", "correct horse")
	target := scripts.Target{Name: "pw", Address: srv.addr}
	for _, tc := range []struct {
		name     string
		password string
		wantErr  error
	}{
		{"right password", "correct horse", nil},
		{"wrong password", "battery staple", virtplane.ErrUnauthenticated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ssh.New(ssh.Config{Credentials: ssh.Credentials{User: "admin", Password: tc.password},
				HostKeyCallback: xssh.FixedHostKey(srv.hostKey)})
			require.NoError(t, err)
			var out strings.Builder
			rendered, err := scripts.Render(scripts.Script{Name: "pw", Owner: "o", Visibility: scripts.Private, Kind: scripts.Shell,
				Body: "echo \"hi $WHO\"\nexit 7\n", Params: []scripts.Param{{Name: "WHO", Type: scripts.String, Default: "there"}}}, scripts.RenderInput{})
			require.NoError(t, err)
			code, err := r.Run(t.Context(), scripts.Job{Target: target, Script: rendered, Timeout: time.Minute, Stdout: &out})
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				assert.NotContains(t, err.Error(), tc.password)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, 7, code)
			assert.Equal(t, "hi there\n", out.String())
		})
	}
}

func TestPasswordServerConformance(t *testing.T) {
	srv := startPasswordServer(t, "admin", "pw")
	r, err := ssh.New(ssh.Config{Credentials: ssh.Credentials{User: "admin", Password: "pw"}, HostKeyCallback: xssh.FixedHostKey(srv.hostKey)})
	require.NoError(t, err)
	scripttest.Run(t, func(t *testing.T) scripttest.Harness {
		return harness(r, scripts.Target{Name: "local", Address: srv.addr})
	})
}

func TestHostKeyChecking(t *testing.T) {
	_, target, env := loopback(t)
	key, err := os.ReadFile(env.KeyFile)
	require.NoError(t, err)
	dir := t.TempDir()
	out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, "other")).CombinedOutput()
	require.NoError(t, err, string(out))
	otherPub, err := os.ReadFile(filepath.Join(dir, "other.pub"))
	require.NoError(t, err)
	f := strings.Fields(string(otherPub))
	host, port, _ := net.SplitHostPort(env.Addr)
	for _, tc := range []struct {
		name, knownHosts string
	}{
		{"wrong key", fmt.Sprintf("[%s]:%s %s %s\n", host, port, f[0], f[1])},
		{"unknown host", fmt.Sprintf("[192.0.2.1]:22 %s %s\n", f[0], f[1])},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kh := filepath.Join(t.TempDir(), "known_hosts")
			require.NoError(t, os.WriteFile(kh, []byte(tc.knownHosts), 0o600))
			r, err := ssh.New(ssh.Config{Credentials: ssh.Credentials{User: env.User, PrivateKey: key}, KnownHostsFile: kh})
			require.NoError(t, err)
			_, _, err = r.Output(t.Context(), target, "true")
			require.ErrorIs(t, err, virtplane.ErrUnauthenticated)
		})
	}
}

func TestErrors(t *testing.T) {
	srv := startPasswordServer(t, "admin", "pw")
	r, err := ssh.New(ssh.Config{Credentials: ssh.Credentials{User: "admin", Password: "pw"}, HostKeyCallback: xssh.FixedHostKey(srv.hostKey)})
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := ln.Addr().String()
	require.NoError(t, ln.Close())

	shell, err := scripts.Render(scripts.Script{Name: "s", Owner: "o", Visibility: scripts.Private, Kind: scripts.Shell, Body: "true\n"}, scripts.RenderInput{})
	require.NoError(t, err)
	playbook := shell
	playbook.Kind = scripts.Ansible
	for _, tc := range []struct {
		name   string
		target scripts.Target
		script scripts.Rendered
		want   error
	}{
		{"unreachable", scripts.Target{Name: "gone", Address: closed}, shell, virtplane.ErrUnavailable},
		{"ansible kind", scripts.Target{Name: "ok", Address: srv.addr}, playbook, virtplane.ErrInvalidArgument},
		{"bad target", scripts.Target{Name: "bad name!", Address: srv.addr}, shell, virtplane.ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, err := r.Run(t.Context(), scripts.Job{Target: tc.target, Script: tc.script, Timeout: 10 * time.Second})
			require.ErrorIs(t, err, tc.want)
			assert.Equal(t, -1, code)
		})
	}

	_, err = ssh.New(ssh.Config{Credentials: ssh.Credentials{User: "u", Password: "p"}})
	require.ErrorIs(t, err, virtplane.ErrInvalidArgument, "a runner without host key checking is refused")
	_, err = ssh.New(ssh.Config{Credentials: ssh.Credentials{User: "u", PrivateKey: []byte("not a key")}, HostKeyCallback: xssh.FixedHostKey(srv.hostKey)})
	require.ErrorIs(t, err, virtplane.ErrInvalidArgument)
}

func TestCommandCarriesNoValues(t *testing.T) {
	secret := "hunter2-" + fmt.Sprint(rand.Int())
	for _, kind := range []scripts.Kind{scripts.Shell, scripts.PowerShell} {
		r, err := scripts.Render(scripts.Script{Name: "s", Owner: "o", Visibility: scripts.Private, Kind: kind, Body: "body-marker\n",
			Params: []scripts.Param{{Name: "P", Type: scripts.Password}}}, scripts.RenderInput{Args: map[string]string{"P": secret}})
		require.NoError(t, err)
		cmd, err := ssh.Command(r)
		require.NoError(t, err)
		assert.NotContains(t, cmd, secret, "values travel on stdin, never on the command line")
		assert.NotContains(t, cmd, "body-marker")
	}
}
