package sshnode_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	xssh "golang.org/x/crypto/ssh"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/sshnode"
	"github.com/virtplane/virtplane/internal/testenv"
	"github.com/virtplane/virtplane/storage"
	"github.com/virtplane/virtplane/vmm/libvirt"
)

// dialRecorder dials TCP and keeps the connections, so a test can cut them.
type dialRecorder struct {
	mu    sync.Mutex
	conns []net.Conn
}

func (d *dialRecorder) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var nd net.Dialer
	c, err := nd.DialContext(ctx, network, addr)
	if err == nil {
		d.mu.Lock()
		d.conns = append(d.conns, c)
		d.mu.Unlock()
	}
	return c, err
}

func (d *dialRecorder) cut() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.conns {
		_ = c.Close()
	}
}

func (d *dialRecorder) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.conns)
}

// sshConfig is the loopback sshd's login.
func sshConfig(t *testing.T) sshnode.Config {
	env := testenv.RequireSSH(t)
	key, err := os.ReadFile(env.KeyFile)
	require.NoError(t, err)
	return sshnode.Config{Name: "n1", Addr: env.Addr, User: env.User, PrivateKey: key, KnownHostsFile: env.KnownHosts}
}

func connect(t *testing.T, opts ...sshnode.Option) *sshnode.Conn {
	t.Helper()
	c, err := sshnode.New(sshConfig(t), opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestExecutorPassesHostileArgumentsLiterally(t *testing.T) {
	ex := connect(t).Executor()
	canary := filepath.Join(t.TempDir(), "pwned")
	args := []string{
		"plain", "", " leading and trailing ", "it's", `"double"`, `back\slash`, "$HOME", "${HOME}",
		"$(touch " + canary + ")", "`touch " + canary + "`", "; touch " + canary, "&& touch " + canary,
		"| touch " + canary, "line1\nline2", "tab\there", "*", "?", "~", "-n", "--", "'; touch " + canary + "; '",
		"'\\''", "\x01\x7f", "ünïcødé", "#comment", "a=b", ">" + canary, "<" + canary,
	}
	out, err := ex.Run(t.Context(), storage.Command{Name: "printf", Args: append([]string{"%s\\0"}, args...)})
	require.NoError(t, err)
	got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	assert.Equal(t, args, got)
	assert.NoFileExists(t, canary, "an argument ran as a command")

	// Environment values are as literal as arguments.
	out, err = ex.Run(t.Context(), storage.Command{Name: "printenv", Args: []string{"VPT_X"}, Env: []string{"VPT_X=$(touch " + canary + ")'\""}})
	require.NoError(t, err)
	assert.Equal(t, "$(touch "+canary+")'\"\n", string(out))
	assert.NoFileExists(t, canary)
}

func TestExecutorStdin(t *testing.T) {
	ex := connect(t).Executor()
	in := make([]byte, 3<<20+17) // binary, with NULs, larger than a channel window
	_, _ = rand.Read(in)
	out, err := ex.Run(t.Context(), storage.Command{Name: "cat", Stdin: bytes.NewReader(in)})
	require.NoError(t, err)
	assert.True(t, bytes.Equal(in, out), "stdin came back changed: %d bytes in, %d out", len(in), len(out))

	out, err = ex.Run(t.Context(), storage.Command{Name: "cat"})
	require.NoError(t, err, "no stdin: the command reads EOF")
	assert.Empty(t, out)
}

func TestExecutorExitCodes(t *testing.T) {
	ex := connect(t).Executor()
	for _, tc := range []struct {
		script string
		code   int
		stderr string
	}{
		{"echo out; echo oops >&2; exit 7", 7, "oops"},
		{"exit 1", 1, ""},
		{"printf 'no newline' >&2; exit 255", 255, "no newline"},
		{"kill -KILL $$", 128 + 9, ""},
		{"kill -TERM $$", 128 + 15, ""},
	} {
		t.Run(tc.script, func(t *testing.T) {
			out, err := ex.Run(t.Context(), storage.Command{Name: "sh", Args: []string{"-c", tc.script}})
			var ee *storage.ExitError
			require.ErrorAs(t, err, &ee)
			assert.Equal(t, tc.code, ee.Code)
			assert.Equal(t, tc.stderr, strings.TrimSpace(ee.Stderr), "stderr without the PID line")
			assert.Equal(t, "sh", ee.Command.Name)
			if tc.code == 7 {
				assert.Equal(t, "out\n", string(out))
			}
		})
	}
	_, err := ex.Run(t.Context(), storage.Command{Name: "/nonexistent/program"})
	var ee *storage.ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, 127, ee.Code)
}

func TestExecutorRefusesBadCommands(t *testing.T) {
	ex := connect(t).Executor()
	for _, cmd := range []storage.Command{
		{Name: ""}, {Name: "-oProxyCommand=x"}, {Name: "A=B"},
		{Name: "echo", Args: []string{"a\x00b"}}, {Name: "echo", Env: []string{"1X=y"}}, {Name: "echo", Env: []string{"novalue"}}, {Name: "echo", Env: []string{"X=a\x00b"}},
	} {
		_, err := ex.Run(t.Context(), cmd)
		assert.ErrorIs(t, err, virtplane.ErrInvalidArgument, "%q", cmd.String())
	}
}

// gone reports whether pid has ended (a zombie has: this host's PID 1
// reaps late).
func gone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(f) > 0 && f[0] == "Z"
}

func TestExecutorCancelKillsTheRemoteCommand(t *testing.T) {
	ex := connect(t).Executor()
	pids := filepath.Join(t.TempDir(), "pids")
	for _, tc := range []struct {
		name  string
		class error
		ctx   func() (context.Context, context.CancelFunc)
	}{
		{"timeout", virtplane.ErrTimeout, func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(t.Context(), time.Second)
		}},
		{"cancel", virtplane.ErrCanceled, func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(t.Context())
			time.AfterFunc(time.Second, cancel)
			return ctx, cancel
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_ = os.Remove(pids)
			ctx, cancel := tc.ctx()
			defer cancel()
			start := time.Now()
			// The shell and a child of it (what qemu-img's helpers would be).
			_, err := ex.Run(ctx, storage.Command{Name: "sh", Args: []string{"-c", `sleep 300 & echo $$ $! >` + pids + `; wait`}})
			require.ErrorIs(t, err, tc.class)
			assert.Less(t, time.Since(start), 20*time.Second)
			b, err := os.ReadFile(pids)
			require.NoError(t, err)
			f := strings.Fields(string(b))
			require.Len(t, f, 2)
			for _, p := range f {
				pid, err := strconv.Atoi(p)
				require.NoError(t, err)
				assert.True(t, gone(pid), "process %d still runs after Run returned", pid)
			}
		})
	}
}

func TestReconnectAfterTheConnectionDrops(t *testing.T) {
	var d dialRecorder
	conn := connect(t, sshnode.WithDialer(d.dial))
	ex := conn.Executor()
	out, err := ex.Run(t.Context(), storage.Command{Name: "echo", Args: []string{"one"}})
	require.NoError(t, err)
	assert.Equal(t, "one\n", string(out))
	require.Equal(t, 1, d.count())

	// A command running while the connection drops fails as unavailable.
	go func() { time.Sleep(500 * time.Millisecond); d.cut() }()
	_, err = ex.Run(t.Context(), storage.Command{Name: "sleep", Args: []string{"5"}})
	require.ErrorIs(t, err, virtplane.ErrUnavailable)

	// The next use dials again.
	require.Eventually(t, func() bool {
		out, err = ex.Run(t.Context(), storage.Command{Name: "echo", Args: []string{"two"}})
		return err == nil
	}, 10*time.Second, 100*time.Millisecond, "last error: %v", err)
	assert.Equal(t, "two\n", string(out))
	assert.Equal(t, 2, d.count(), "one new connection")
}

func TestUnreachableNodeIsUnavailable(t *testing.T) {
	cfg := sshConfig(t)
	reject := func(string, net.Addr, xssh.PublicKey) error { return errors.New("not this key") }
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := ln.Addr().String()
	require.NoError(t, ln.Close())
	_, otherKey := testenv.NewSSHKey(t) // a host key the node does not have
	for _, tc := range []struct {
		name  string
		edit  func(*sshnode.Config)
		class error
		msg   string
	}{
		{"nothing listens", func(c *sshnode.Config) { c.Addr = closed }, virtplane.ErrUnavailable, "refused"},
		{"unknown host key", func(c *sshnode.Config) { c.KnownHostsFile = ""; c.HostKeyCallback = reject }, virtplane.ErrUnavailable, "handshake"},
		// Refusals say so: retrying cannot help, an operator must act.
		{"wrong user", func(c *sshnode.Config) { c.User = "vpt-no-such-user" }, virtplane.ErrPermissionDenied, "the key of user vpt-no-such-user was refused"},
		{"wrong password", func(c *sshnode.Config) { c.Password = "not-the-password" }, virtplane.ErrPermissionDenied, "the password of user root was refused"},
		{"host key changed", func(c *sshnode.Config) { c.KnownHostsFile = ""; c.HostKey = otherKey }, virtplane.ErrPermissionDenied, "is not the pinned"},
		{"fingerprint not the node's", func(c *sshnode.Config) {
			c.KnownHostsFile = ""
			c.HostKeyCallback = sshnode.TrustOnFirstUse("SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").Callback
		}, virtplane.ErrPermissionDenied, "is not the pinned SHA256:AAAA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := cfg
			tc.edit(&c)
			conn, err := sshnode.New(c)
			require.NoError(t, err)
			defer conn.Close()
			err = conn.Connect(t.Context())
			require.ErrorIs(t, err, tc.class)
			assert.Contains(t, err.Error(), "node n1")
			assert.Contains(t, err.Error(), tc.msg)
			_, err = conn.Executor().Run(t.Context(), storage.Command{Name: "true"})
			assert.ErrorIs(t, err, tc.class)
		})
	}
	t.Run("trust on first use", func(t *testing.T) {
		c := cfg
		c.KnownHostsFile = ""
		first := sshnode.TrustOnFirstUse("")
		c.HostKeyCallback = first.Callback
		conn, err := sshnode.New(c)
		require.NoError(t, err)
		defer conn.Close()
		require.NoError(t, conn.Connect(t.Context()))
		key, fp := first.Key()
		require.NotEmpty(t, key)
		// The key learnt pins the node from then on, with or without
		// the fingerprint the operator gave.
		c.HostKeyCallback, c.HostKey = nil, key
		pinnedConn, err := sshnode.New(c)
		require.NoError(t, err)
		defer pinnedConn.Close()
		require.NoError(t, pinnedConn.Connect(t.Context()))
		c.HostKeyCallback = sshnode.TrustOnFirstUse(fp).Callback
		byPrint, err := sshnode.New(c)
		require.NoError(t, err)
		defer byPrint.Close()
		require.NoError(t, byPrint.Connect(t.Context()))
	})
	// A known_hosts file without the node's key.
	empty := filepath.Join(t.TempDir(), "known_hosts")
	require.NoError(t, os.WriteFile(empty, nil, 0o600))
	c := cfg
	c.KnownHostsFile = empty
	conn, err := sshnode.New(c)
	require.NoError(t, err)
	defer conn.Close()
	err = conn.Connect(t.Context())
	require.ErrorIs(t, err, virtplane.ErrUnavailable)
	assert.Contains(t, err.Error(), "host key not in known hosts")
}

func TestNewChecksConfig(t *testing.T) {
	key := []byte("-----BEGIN OPENSSH PRIVATE KEY-----\nnot a key\n-----END OPENSSH PRIVATE KEY-----\n")
	for _, tc := range []struct {
		cfg sshnode.Config
		msg string
	}{
		{sshnode.Config{Name: "n", Addr: "host", User: "root", PrivateKey: key, KnownHostsFile: "/k"}, "address"},
		{sshnode.Config{Name: "n", Addr: "host:22", PrivateKey: key, KnownHostsFile: "/k"}, "user"},
		{sshnode.Config{Name: "n", Addr: "host:22", User: "root", KnownHostsFile: "/k"}, "private key"},
		{sshnode.Config{Name: "n", Addr: "host:22", User: "root", PrivateKey: key, KnownHostsFile: "/k"}, "private key"},
	} {
		_, err := sshnode.New(tc.cfg)
		require.ErrorIs(t, err, virtplane.ErrInvalidArgument)
		assert.Contains(t, err.Error(), tc.msg)
		assert.NotContains(t, err.Error(), "not a key", "no key material in errors")
	}
}

// The libvirt driver reaches the node's libvirtd through the connection.
func TestLibvirtThroughTheConnection(t *testing.T) {
	lv := testenv.RequireLibvirt(t)
	var d dialRecorder
	conn := connect(t, sshnode.WithDialer(d.dial))
	drv, err := libvirt.New(libvirt.Config{StateDir: t.TempDir(), URI: lv.URI,
		Dial: func(ctx context.Context) (net.Conn, error) { return conn.DialUnix(ctx, lv.Socket) }},
		libvirt.WithValues(lv.Values()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = drv.Close() })
	got, err := drv.List(t.Context())
	require.NoError(t, err)
	// The same answer as over the socket directly.
	direct, err := libvirt.New(libvirt.Config{StateDir: t.TempDir(), URI: lv.URI, Socket: lv.Socket}, libvirt.WithValues(lv.Values()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = direct.Close() })
	want, err := direct.List(t.Context())
	require.NoError(t, err)
	assert.Len(t, got, len(want))
	assert.Equal(t, 1, d.count(), "through the SSH connection")

	// After the connection drops, the driver reconnects through a new one.
	d.cut()
	require.Eventually(t, func() bool { _, err = drv.List(t.Context()); return err == nil }, 20*time.Second, 200*time.Millisecond, "last error: %v", err)
	assert.Equal(t, 2, d.count())

	_, err = conn.DialUnix(t.Context(), "/nonexistent/libvirt-sock")
	assert.ErrorIs(t, err, virtplane.ErrUnavailable)
}
