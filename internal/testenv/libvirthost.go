package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/virtplane/virtplane/vmm/libvirt"
)

// startLibvirtHost is the shared recipe's start-host.sh: inside a fresh mount
// and UTS namespace, give libvirt its own directories, then run virtlogd and
// libvirtd.
const startLibvirtHost = `set -e
D=$1
hostname $2
# The host's name resolves without DNS (none is reachable from here):
# libvirt looks its own hostname up on both ends of every migration, and an
# unresolvable one cost each migration the resolver's timeouts (about 50 s).
printf '127.0.0.1 localhost\n::1 localhost\n127.0.1.1 %s\n' "$2" > $D/hosts
mount --bind $D/hosts /etc/hosts
# And nothing a host looks up leaves the machine: its resolver is loopback,
# where nothing answers.
printf 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n' > $D/resolv.conf
mount --bind $D/resolv.conf /etc/resolv.conf
for p in etc:/etc/libvirt run:/run/libvirt lib:/var/lib/libvirt log:/var/log/libvirt cache:/var/cache/libvirt; do
  mkdir -p ${p#*:}; mount --bind $D/${p%%:*} ${p#*:}
done
if [ -f $D/ssh/sshd_config ]; then
  # A node host: a home, a shadow file and virtplane directories of its
  # own (nothing shared with the daemon), and an sshd.
  for p in root:/root vpt-lib:/var/lib/virtplane vpt-run:/run/virtplane; do
    mkdir -p ${p#*:}; mount --bind $D/${p%%:*} ${p#*:}
  done
  mount --bind $D/ssh/shadow /etc/shadow
  mkdir -p /run/sshd
  /usr/sbin/sshd -f $D/ssh/sshd_config -E $D/ssh/sshd.log
fi
virtlogd -d --pid-file $D/virtlogd.pid
[ "$3" = supervised ] || exec libvirtd --config /etc/libvirt/libvirtd.conf --pid-file $D/libvirtd.pid
# Supervised: a libvirtd that dies is started again, as systemd would.
while :; do
  libvirtd --config /etc/libvirt/libvirtd.conf --pid-file $D/libvirtd.pid || true
  sleep 1
done
`

// HostOption changes how StartLibvirtHost runs a host.
type HostOption func(*hostOptions)

type hostOptions struct {
	supervised bool
	underlay   *Underlay
	ssh        *SSHLogin
}

// OnUnderlay joins the host to an underlay (a bridge in the root
// namespace) instead of a link of its own: hosts on one underlay reach
// each other directly (live migration between them), and the test process
// reaches them all at the underlay's gateway.
func OnUnderlay(u *Underlay) HostOption { return func(o *hostOptions) { o.underlay = u } }

// WithSSH runs an sshd on the host (port 22 at its address) that takes
// root with the login's password or key: the machine a daemon adds as an
// ssh:// node. The host has its own /root, /etc/shadow, /var/lib/virtplane
// and /run/virtplane, so nothing a daemon puts there lands in the test
// process's view.
func WithSSH(login SSHLogin) HostOption { return func(o *hostOptions) { o.ssh = &login } }

// Supervised restarts the host's libvirtd whenever it dies, as an init
// system would: for tests that kill libvirtd and watch clients reconnect.
func Supervised() HostOption { return func(o *hostOptions) { o.supervised = true } }

// LibvirtHost is an extra libvirtd "host" on this machine, for migration
// and failover tests: its own network, mount and UTS namespaces, its own
// libvirt directories and host_uuid, joined to the root namespace by a veth
// pair. It runs under tini so its QEMUs are reaped at once.
type LibvirtHost struct {
	Name    string
	NS      *Netns
	Dir     string // its libvirt directories; run/ is its /run/libvirt
	Socket  string // libvirtd's unix socket, seen from the root mount namespace
	Gateway string // the root namespace's end of the link
	Addr    string // the host's end of the link
	RootIf  string // the root namespace's veth
	// DomainType and CPUMode are what boots guests on this machine (see
	// Libvirt), the same for every host on it.
	DomainType, CPUMode string
	// SSH is the host's sshd (WithSSH), or nil.
	SSH *SSHHost
}

// Values are the libvirt driver's template values for this host.
func (h *LibvirtHost) Values() libvirt.Values {
	return libvirt.Values{DomainType: h.DomainType, CPUMode: h.CPUMode}
}

// PIDFile reads a pid file of the host: "libvirtd.pid", or
// "run/qemu/NAME.pid" for a domain's QEMU.
func (h *LibvirtHost) PIDFile(rel string) (int, error) {
	b, err := os.ReadFile(filepath.Join(h.Dir, rel))
	if err != nil {
		return 0, err
	}
	var pid int
	_, err = fmt.Sscanf(string(b), "%d", &pid)
	return pid, err
}

// StartLibvirtHost starts a host named name. Its link is a /30 in
// prefix16 (for example "10.231"), picked from the process ID and index so
// that hosts of one test, and tests of other packages using another
// prefix16, never collide. Everything is stopped and removed when the test
// ends.
func StartLibvirtHost(t testing.TB, name, prefix16 string, index int, opts ...HostOption) *LibvirtHost {
	t.Helper()
	var o hostOptions
	for _, opt := range opts {
		opt(&o)
	}
	mode := "once"
	if o.supervised {
		mode = "supervised"
	}
	lv := RequireLibvirt(t) // the packages, the domain type, and -short / CI handling
	ns := NewNetns(t)
	rootIf := "vph" + randomHex(4)
	var gw, addr string
	if u := o.underlay; u != nil {
		gw, addr = u.Gateway, u.next()
		Veth(t, nil, rootIf, "", ns, "eth0", addr+"/24")
		mustRun(t, "ip", "link", "set", rootIf, "master", u.Bridge)
		mustRun(t, "ip", "-n", ns.Name, "route", "add", "default", "via", gw)
	} else {
		n := (os.Getpid()%4000)*4 + index%4
		gw = fmt.Sprintf("%s.%d.%d", prefix16, n/64, (n%64)*4+1)
		addr = fmt.Sprintf("%s.%d.%d", prefix16, n/64, (n%64)*4+2)
		Veth(t, nil, rootIf, gw+"/30", ns, "eth0", addr+"/30")
	}

	d := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("libvirt host %s: %v", name, err)
		}
	}
	must(os.Chmod(d, 0o755))
	for _, sub := range []string{"etc", "run", "lib", "log/qemu", "cache"} {
		must(os.MkdirAll(filepath.Join(d, sub), 0o755))
	}
	uuid := fmt.Sprintf("%s-%s-4%s-8%s-%s", randomHex(4), randomHex(2), randomHex(2)[1:], randomHex(2)[1:], randomHex(6))
	must(os.WriteFile(filepath.Join(d, "etc", "libvirtd.conf"), []byte(fmt.Sprintf(
		"unix_sock_group = \"root\"\nunix_sock_rw_perms = \"0770\"\nauth_unix_rw = \"none\"\nauth_unix_ro = \"none\"\nhost_uuid = %q\nlog_outputs = \"3:file:/var/log/libvirt/libvirtd.log\"\n", uuid)), 0o644))
	must(os.WriteFile(filepath.Join(d, "etc", "qemu.conf"), []byte("user = \"root\"\ngroup = \"root\"\n"), 0o644))
	script := filepath.Join(d, "start-host.sh")
	must(os.WriteFile(script, []byte(startLibvirtHost), 0o755))
	var sshd *SSHHost
	if o.ssh != nil {
		var err error
		sshd, err = prepareSSHHost(d, addr, *o.ssh)
		must(err)
	}

	cmd := exec.Command("tini", "-s", "--", "ip", "netns", "exec", ns.Name, "unshare", "-m", "-u", "--propagation", "private", "sh", script, d, name, mode)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := os.Create(filepath.Join(d, "daemon.out"))
	must(err)
	cmd.Stdout, cmd.Stderr = out, out
	must(cmd.Start())
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
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if dialUnix(sock) == nil {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(out.Name())
			t.Fatalf("libvirtd of %s did not open %s within 30s:\n%s", name, sock, log)
		}
	}
	h := &LibvirtHost{Name: name, NS: ns, Dir: d, Socket: sock, Gateway: gw, Addr: addr, RootIf: rootIf,
		DomainType: lv.DomainType, CPUMode: lv.CPUMode, SSH: sshd}
	if sshd != nil {
		for deadline := time.Now().Add(15 * time.Second); dialTCP(sshd.Addr) != nil; time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				log, _ := os.ReadFile(filepath.Join(d, "ssh", "sshd.log"))
				t.Fatalf("sshd of %s did not listen on %s within 15s:\n%s", name, sshd.Addr, log)
			}
		}
	}
	return h
}
