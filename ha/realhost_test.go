package ha_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netns"

	"github.com/virtplane/virtplane/ha"
	"github.com/virtplane/virtplane/internal/testenv"
)

// startHostScript is the recipe's start-host.sh (as in
// vmm/libvirt/secondhost_test.go): inside a fresh mount and UTS namespace,
// give libvirt its own directories, then run virtlogd and libvirtd.
const startHostScript = `set -e
D=$1
hostname $2
for p in etc:/etc/libvirt run:/run/libvirt lib:/var/lib/libvirt log:/var/log/libvirt cache:/var/cache/libvirt; do
  mkdir -p ${p#*:}; mount --bind $D/${p%%:*} ${p#*:}
done
virtlogd -d --pid-file $D/virtlogd.pid
exec libvirtd --config /etc/libvirt/libvirtd.conf --pid-file $D/libvirtd.pid
`

// realHost is a libvirtd "host" on this machine: its own network, mount and
// UTS namespaces, joined to the root namespace (where the controller runs)
// by a veth pair.
type realHost struct {
	Name    string
	NS      *testenv.Netns
	Dir     string // its libvirt directories; run/ is its /run/libvirt
	Socket  string // libvirtd's unix socket, seen from the root mount namespace
	Gateway string // the root namespace's end of the link: check address and controller
	Addr    string // the host's end of the link
	RootIf  string // the root namespace's veth
}

// startRealHost starts a host; index picks its /30 so two hosts of one test
// do not collide. Everything is stopped and removed when the test ends.
func startRealHost(t *testing.T, name string, index int) *realHost {
	t.Helper()
	ns := testenv.NewNetns(t)
	// A /30 in 10.232.0.0/16 picked per process and host, clear of the
	// 10.231/16 the vmm/libvirt tests use.
	n := (os.Getpid()%8000)*2 + index
	gw, addr := fmt.Sprintf("10.232.%d.%d", n/64, (n%64)*4+1), fmt.Sprintf("10.232.%d.%d", n/64, (n%64)*4+2)
	rootIf := "vph" + randHex(4)
	testenv.Veth(t, nil, rootIf, gw+"/30", ns, "eth0", addr+"/30")

	d := t.TempDir()
	require.NoError(t, os.Chmod(d, 0o755))
	for _, sub := range []string{"etc", "run", "lib", "log/qemu", "cache"} {
		require.NoError(t, os.MkdirAll(filepath.Join(d, sub), 0o755))
	}
	uuid := fmt.Sprintf("%s-%s-4%s-8%s-%s", randHex(4), randHex(2), randHex(2)[1:], randHex(2)[1:], randHex(6))
	require.NoError(t, os.WriteFile(filepath.Join(d, "etc", "libvirtd.conf"), []byte(fmt.Sprintf(
		"unix_sock_group = \"root\"\nunix_sock_rw_perms = \"0770\"\nauth_unix_rw = \"none\"\nauth_unix_ro = \"none\"\nhost_uuid = %q\nlog_outputs = \"3:file:/var/log/libvirt/libvirtd.log\"\n", uuid)), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(d, "etc", "qemu.conf"), []byte("user = \"root\"\ngroup = \"root\"\n"), 0o644))
	script := filepath.Join(d, "start-host.sh")
	require.NoError(t, os.WriteFile(script, []byte(startHostScript), 0o755))

	cmd := exec.Command("tini", "-s", "--", "ip", "netns", "exec", ns.Name, "unshare", "-m", "-u", "--propagation", "private", "sh", script, d, name)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := os.Create(filepath.Join(d, "daemon.out"))
	require.NoError(t, err)
	cmd.Stdout, cmd.Stderr = out, out
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		// libvirtd, virtlogd and the QEMUs all live in the namespace, whose
		// cleanup (registered earlier, so run later) kills what survives.
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
	}, 30*time.Second, 100*time.Millisecond, "libvirtd of %s did not open %s (see %s)", name, sock, out.Name())
	return &realHost{Name: name, NS: ns, Dir: d, Socket: sock, Gateway: gw, Addr: addr, RootIf: rootIf}
}

// pidFile reads a pid file of the host (libvirtd.pid, or run/qemu/NAME.pid
// for a domain's QEMU).
func (h *realHost) pidFile(rel string) (int, error) {
	b, err := os.ReadFile(filepath.Join(h.Dir, rel))
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// alive says whether pid is a live process (not a zombie).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] != 'Z'
}

// nsDialer opens TCP connections from inside a network namespace: one
// goroutine, locked to an OS thread that joined the namespace, creates the
// sockets (a socket belongs to the namespace of the thread that created it;
// the connection is then usable from any goroutine). The thread is never
// unlocked, so it dies with the goroutine instead of returning to the pool
// in the wrong namespace.
type nsDialer struct {
	reqs chan nsDial
}

type nsDial struct {
	ctx  context.Context
	addr string
	res  chan nsDialResult
}

type nsDialResult struct {
	c   net.Conn
	err error
}

func newNSDialer(t *testing.T, ns *testenv.Netns) *nsDialer {
	t.Helper()
	d := &nsDialer{reqs: make(chan nsDial)}
	ready := make(chan error, 1)
	stop := make(chan struct{})
	var spawn func()
	onThread := make(chan struct{}) // closed once a worker holds a thread other than the main one
	spawn = func() {
		go func() {
			runtime.LockOSThread() // never unlocked once in the namespace: see nsDialer
			if syscall.Gettid() == os.Getpid() {
				// The main thread: moved into the namespace it would make
				// `ip netns pids` list (and the namespace cleanup kill) this
				// process. Hold it until a worker runs on another thread.
				spawn()
				<-onThread
				runtime.UnlockOSThread()
				return
			}
			close(onThread)
			h, err := netns.GetFromName(ns.Name)
			if err == nil {
				err = netns.Set(h)
				_ = h.Close()
			}
			ready <- err
			if err != nil {
				return
			}
			for {
				select {
				case <-stop:
					return
				case r := <-d.reqs:
					var nd net.Dialer
					c, err := nd.DialContext(r.ctx, "tcp", r.addr)
					r.res <- nsDialResult{c, err}
				}
			}
		}()
	}
	spawn()
	require.NoError(t, <-ready, "join namespace %s", ns.Name)
	t.Cleanup(func() { close(stop) })
	return d
}

func (d *nsDialer) Dial(ctx context.Context, addr string) (net.Conn, error) {
	r := nsDial{ctx: ctx, addr: addr, res: make(chan nsDialResult, 1)}
	select {
	case d.reqs <- r:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case res := <-r.res:
		return res.c, res.err
	case <-ctx.Done():
		go func() {
			if res := <-r.res; res.c != nil {
				_ = res.c.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

// heartbeatServer is the controller's end of the agents' heartbeat
// transport: one line "NODE CHECKOK" in, "ok" out when the controller took
// it. It listens on the root namespace's end of a host's link, so a cut
// link silences the host's agent.
func heartbeatServer(t *testing.T, ctx context.Context, ip string, sink ha.HeartbeatSink) string {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(2 * time.Second))
				line, err := bufio.NewReader(c).ReadString('\n')
				if err != nil {
					return // a check-address probe: connect and close
				}
				f := strings.Fields(line)
				if len(f) != 2 {
					return
				}
				if sink.Heartbeat(ctx, ha.Heartbeat{Node: f[0], CheckOK: f[1] == "true"}) == nil {
					_, _ = c.Write([]byte("ok\n"))
				}
			}()
		}
	}()
	return l.Addr().String()
}

// netSink is the agent's end: it sends each heartbeat over a TCP
// connection opened inside the host's namespace.
type netSink struct {
	d    *nsDialer
	addr string
}

func (s netSink) Heartbeat(ctx context.Context, hb ha.Heartbeat) error {
	c, err := s.d.Dial(ctx, s.addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if _, err := fmt.Fprintf(c, "%s %v\n", hb.Node, hb.CheckOK); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "ok" {
		return fmt.Errorf("heartbeat not acknowledged: %q", line)
	}
	return nil
}

// netCheck probes the check address (the root namespace's end of the link)
// from inside the host's namespace.
type netCheck struct {
	d    *nsDialer
	addr string
}

func (c netCheck) ProbeCheck(ctx context.Context) error {
	conn, err := c.d.Dial(ctx, c.addr)
	if err != nil {
		return err
	}
	return conn.Close()
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
