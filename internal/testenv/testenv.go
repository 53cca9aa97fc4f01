// Package testenv hands tests the real components that `make env` starts
// (libvirtd, LXD, sshd, PostgreSQL, Ceph, lvm2, tgt, BIRD, FRR, a guest
// kernel) and makes network namespaces joined by veth links on demand.
//
// The setup scripts under hack/env write one KEY=VALUE file per component into
// the state directory ($VIRTPLANE_TESTENV, default /var/tmp/virtplane-testenv).
// A test asks for a component; when it is missing or not answering, the test
// fails under CI=true and is skipped otherwise, with a message naming the make
// target that starts the component.
package testenv

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/virtplane/virtplane/vmm/libvirt"
)

// StateDir is where the hack/env scripts record what they started.
func StateDir() string {
	if d := os.Getenv("VIRTPLANE_TESTENV"); d != "" {
		return d
	}
	return "/var/tmp/virtplane-testenv"
}

// InCI reports whether the tests run under CI, where a missing component is a failure.
func InCI() bool { return os.Getenv("CI") == "true" }

// Missing fails the test under CI and skips it elsewhere, naming the make target.
func Missing(t testing.TB, component, target string, cause error) {
	t.Helper()
	msg := fmt.Sprintf("%s is not available (%v); start it with `make %s`", component, cause, target)
	if InCI() {
		t.Fatal(msg)
	} else {
		t.Skip(msg)
	}
}

// SkipShort skips a test that needs a real component when -short is given
// (`make test-unit`); `make test` runs without -short.
func SkipShort(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs a real component; skipped with -short (run `make test`)")
	}
}

// load reads the KEY=VALUE file a setup script wrote for component.
func load(component string) (map[string]string, error) {
	f, err := os.Open(filepath.Join(StateDir(), component+".env"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	kv := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if ok {
			kv[k] = v
		}
	}
	return kv, sc.Err()
}

// component loads the state of a component and checks it with ready; on any
// failure the test is failed or skipped through Missing.
func component(t testing.TB, name, target string, ready func(map[string]string) error) map[string]string {
	t.Helper()
	SkipShort(t)
	kv, err := load(name)
	if err == nil {
		err = ready(kv)
	}
	if err != nil {
		Missing(t, name, target, err)
	}
	return kv
}

func dialUnix(path string) error {
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		return err
	}
	return c.Close()
}

func dialTCP(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return err
	}
	return c.Close()
}

// need returns an error naming the keys of kv that are empty.
func need(kv map[string]string, keys ...string) error {
	var missing []string
	for _, k := range keys {
		if kv[k] == "" {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("state file lacks %s", strings.Join(missing, ", "))
	}
	return nil
}

// Libvirt is a running libvirtd with the QEMU driver.
type Libvirt struct {
	URI    string // qemu:///system
	Socket string // the read-write unix socket
	// DomainType is the domain type that boots guests on this machine
	// ("kvm" or "qemu"), decided once by hack/env/domaintype.sh by booting
	// the test guest; CPUMode goes with it (empty: the default). Real
	// tests render their domains with these, never from /dev/kvm.
	DomainType, CPUMode string
	// DomainTypeForced is set when VIRTPLANE_DOMAIN_TYPE chose the type
	// instead of detection.
	DomainTypeForced bool
}

// RequireLibvirt returns the local libvirtd started by `make env-libvirt`
// and the domain type `make env-domaintype` recorded for it.
func RequireLibvirt(t testing.TB) Libvirt {
	t.Helper()
	kv := component(t, "libvirt", "env-libvirt", func(kv map[string]string) error {
		if err := need(kv, "URI", "SOCKET"); err != nil {
			return err
		}
		return dialUnix(kv["SOCKET"])
	})
	dt := component(t, "domaintype", "env-domaintype", func(kv map[string]string) error {
		switch kv["DOMAIN_TYPE"] {
		case "kvm", "qemu":
			return nil
		}
		return fmt.Errorf("DOMAIN_TYPE %q: want kvm or qemu", kv["DOMAIN_TYPE"])
	})
	return Libvirt{URI: kv["URI"], Socket: kv["SOCKET"], DomainType: dt["DOMAIN_TYPE"], CPUMode: dt["CPU_MODE"],
		DomainTypeForced: dt["FORCED"] != ""}
}

// Guest is a kernel and a busybox initramfs that boots to init and prints
// Marker on its serial console, then "VPT-TICK n" every second; with
// vpt.seed=1 on the kernel command line it first prints the files of its
// cloud-init seed ("VPT-SEED meta-data: …", ending "VPT-SEED end"). Disk is
// a bootable qcow2 disk of the same (syslinux; vpt.seed=1 set), for VMs
// made from an OS image.
type Guest struct {
	Kernel, Initrd, Disk, Marker string
}

// RequireGuest returns the guest kernel built by `make env-guest`.
func RequireGuest(t testing.TB) Guest {
	t.Helper()
	kv := component(t, "guest", "env-guest", func(kv map[string]string) error {
		if err := need(kv, "KERNEL", "INITRD", "DISK", "MARKER"); err != nil {
			return err
		}
		for _, k := range []string{"KERNEL", "INITRD", "DISK"} {
			if _, err := os.Stat(kv[k]); err != nil {
				return err
			}
		}
		return nil
	})
	return Guest{Kernel: kv["KERNEL"], Initrd: kv["INITRD"], Disk: kv["DISK"], Marker: kv["MARKER"]}
}

// LXD is a running LXD daemon with a dir storage pool, no managed network
// and a busybox image.
type LXD struct {
	Socket string // unix socket of the REST API
	Pool   string // storage pool name
	Image  string // image alias of the busybox image
}

// RequireLXD returns the LXD daemon started by `make env-lxd`.
func RequireLXD(t testing.TB) LXD {
	t.Helper()
	kv := component(t, "lxd", "env-lxd", func(kv map[string]string) error {
		if err := need(kv, "SOCKET", "POOL", "IMAGE"); err != nil {
			return err
		}
		return dialUnix(kv["SOCKET"])
	})
	return LXD{Socket: kv["SOCKET"], Pool: kv["POOL"], Image: kv["IMAGE"]}
}

// SSH is an sshd on loopback that accepts User with the private key KeyFile;
// KnownHosts is a known_hosts file holding its host key.
type SSH struct {
	Addr, User, KeyFile, KnownHosts string
}

// RequireSSH returns the sshd started by `make env-ssh`.
func RequireSSH(t testing.TB) SSH {
	t.Helper()
	kv := component(t, "ssh", "env-ssh", func(kv map[string]string) error {
		if err := need(kv, "ADDR", "USER", "KEY", "KNOWN_HOSTS"); err != nil {
			return err
		}
		return dialTCP(kv["ADDR"])
	})
	return SSH{Addr: kv["ADDR"], User: kv["USER"], KeyFile: kv["KEY"], KnownHosts: kv["KNOWN_HOSTS"]}
}

// Postgres is a private PostgreSQL cluster on loopback. AdminDSN connects as
// a superuser so tests can create and drop their own databases.
type Postgres struct {
	DSN, AdminDSN string
}

// RequirePostgres returns the PostgreSQL cluster started by `make env-postgres`.
func RequirePostgres(t testing.TB) Postgres {
	t.Helper()
	kv := component(t, "postgres", "env-postgres", func(kv map[string]string) error {
		if err := need(kv, "DSN", "ADMIN_DSN", "ADDR"); err != nil {
			return err
		}
		return dialTCP(kv["ADDR"])
	})
	return Postgres{DSN: kv["DSN"], AdminDSN: kv["ADMIN_DSN"]}
}

// Ceph is a single-node Ceph cluster (one mon, one memstore OSD) on loopback.
type Ceph struct {
	Conf     string // path of ceph.conf
	Pool     string // an RBD pool
	Monitors string // monitor address list, as librbd and QEMU take it
	User     string // client name without "client."
}

// RequireCeph returns the Ceph cluster started by `make env-ceph`.
func RequireCeph(t testing.TB) Ceph {
	t.Helper()
	kv := component(t, "ceph", "env-ceph", func(kv map[string]string) error {
		if err := need(kv, "CONF", "POOL", "MON_ADDR", "USER"); err != nil {
			return err
		}
		return dialTCP(kv["MON_ADDR"])
	})
	return Ceph{Conf: kv["CONF"], Pool: kv["POOL"], Monitors: kv["MON_ADDR"], User: kv["USER"]}
}

// LVM is lvm2 configured for metadata-only use (global/activation=0) with a
// volume group on a loop device. Commands must run with LVM_SYSTEM_DIR=SystemDir.
type LVM struct {
	SystemDir string // directory of the lvm.conf to use
	VG        string // volume group for tests
	PV        string // the loop device under it
}

// Env returns the environment lvm2 commands need.
func (l LVM) Env() []string {
	return []string{"LVM_SYSTEM_DIR=" + l.SystemDir, "LVM_SUPPRESS_FD_WARNINGS=1"}
}

// RequireLVM returns the volume group made by `make env-lvm`.
func RequireLVM(t testing.TB) LVM {
	t.Helper()
	kv := component(t, "lvm", "env-lvm", func(kv map[string]string) error {
		if err := need(kv, "SYSTEM_DIR", "VG", "PV"); err != nil {
			return err
		}
		cmd := exec.Command("vgs", "--noheadings", kv["VG"])
		cmd.Env = append(os.Environ(), "LVM_SYSTEM_DIR="+kv["SYSTEM_DIR"], "LVM_SUPPRESS_FD_WARNINGS=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("vgs %s: %v: %s", kv["VG"], err, strings.TrimSpace(string(out)))
		}
		return nil
	})
	return LVM{SystemDir: kv["SYSTEM_DIR"], VG: kv["VG"], PV: kv["PV"]}
}

// ISCSI is a tgt iSCSI target on loopback with one file-backed LUN.
type ISCSI struct {
	Portal string // host:port
	Target string // IQN
	LUN    int
	URL    string // iscsi://portal/target/lun, as QEMU and qemu-img take it
	File   string // the file behind the LUN, for checking what was written

	// A second, small LUN (2) that only the environment's smoke test writes.
	ScratchURL, ScratchFile string
	// ControlPort selects tgtd's management socket (tgtadm -C PORT), for
	// tests that add targets of their own.
	ControlPort string
}

// RequireISCSI returns the target started by `make env-iscsi`.
func RequireISCSI(t testing.TB) ISCSI {
	t.Helper()
	kv := component(t, "iscsi", "env-iscsi", func(kv map[string]string) error {
		if err := need(kv, "PORTAL", "TARGET", "URL", "FILE"); err != nil {
			return err
		}
		return dialTCP(kv["PORTAL"])
	})
	return ISCSI{Portal: kv["PORTAL"], Target: kv["TARGET"], LUN: 1, URL: kv["URL"], File: kv["FILE"],
		ScratchURL: kv["SCRATCH_URL"], ScratchFile: kv["SCRATCH_FILE"], ControlPort: kv["CONTROL_PORT"]}
}

// Routing holds the paths of the routing daemons `make env-bgp` installs.
// Tests start their own instances inside namespaces they create.
type Routing struct {
	Bird, Birdc string // BIRD 2
	FRRBgpd     string // FRR's bgpd
	Vtysh       string
}

// RequireRouting returns the BIRD and FRR binaries installed by `make env-bgp`.
func RequireRouting(t testing.TB) Routing {
	t.Helper()
	kv := component(t, "bgp", "env-bgp", func(kv map[string]string) error {
		if err := need(kv, "BIRD", "BIRDC", "BGPD", "VTYSH"); err != nil {
			return err
		}
		for _, k := range []string{"BIRD", "BIRDC", "BGPD", "VTYSH"} {
			if _, err := os.Stat(kv[k]); err != nil {
				return err
			}
		}
		return nil
	})
	return Routing{Bird: kv["BIRD"], Birdc: kv["BIRDC"], FRRBgpd: kv["BGPD"], Vtysh: kv["VTYSH"]}
}

// Values are the libvirt driver's template values for this machine: the
// recorded domain type and CPU mode.
func (l Libvirt) Values() libvirt.Values {
	return libvirt.Values{DomainType: l.DomainType, CPUMode: l.CPUMode}
}

// Chromium is Debian's chromium for headless browser tests: Bin with the
// start flags Flags (headless, no sandbox, no background traffic); each
// test starts its own instance with a fresh profile directory.
type Chromium struct {
	Bin   string
	Flags []string
}

// RequireChromium returns the browser installed by `make env-chromium`.
func RequireChromium(t testing.TB) Chromium {
	t.Helper()
	kv := component(t, "chromium", "env-chromium", func(kv map[string]string) error {
		if err := need(kv, "BIN", "FLAGS"); err != nil {
			return err
		}
		_, err := os.Stat(kv["BIN"])
		return err
	})
	return Chromium{Bin: kv["BIN"], Flags: strings.Fields(kv["FLAGS"])}
}

// DemoImage is a bootable raw disk (SYSLINUX, the guest kernel, busybox)
// whose guest prints Banner on its screen and serial console, then a
// heartbeat "Tick N" on the serial console every second.
type DemoImage struct {
	Path, Format, Banner, Tick string
}

// RequireDemoImage returns the image built by `make env-demo`.
func RequireDemoImage(t testing.TB) DemoImage {
	t.Helper()
	kv := component(t, "demo", "env-demo", func(kv map[string]string) error {
		if err := need(kv, "IMAGE", "FORMAT", "BANNER", "TICK"); err != nil {
			return err
		}
		_, err := os.Stat(kv["IMAGE"])
		return err
	})
	return DemoImage{Path: kv["IMAGE"], Format: kv["FORMAT"], Banner: kv["BANNER"], Tick: kv["TICK"]}
}

// LDAP is a private OpenLDAP slapd on loopback: URL takes StartTLS,
// LDAPSURL is TLS from the start; CA is the PEM certificate both present.
// AdminDN (the directory's root) may add and delete entries under Base,
// whose ou=people and ou=groups exist.
type LDAP struct {
	URL, LDAPSURL, Base, AdminDN, AdminPassword, CA string
}

// RequireLDAP returns the slapd started by `make env-ldap`.
func RequireLDAP(t testing.TB) LDAP {
	t.Helper()
	kv := component(t, "ldap", "env-ldap", func(kv map[string]string) error {
		if err := need(kv, "URL", "LDAPS_URL", "BASE", "ADMIN_DN", "ADMIN_PASSWORD", "CA"); err != nil {
			return err
		}
		for _, u := range []string{kv["URL"], kv["LDAPS_URL"]} {
			_, hostport, _ := strings.Cut(u, "://")
			if err := dialTCP(strings.TrimSuffix(hostport, "/")); err != nil {
				return err
			}
		}
		return nil
	})
	return LDAP{URL: kv["URL"], LDAPSURL: kv["LDAPS_URL"], Base: kv["BASE"], AdminDN: kv["ADMIN_DN"], AdminPassword: kv["ADMIN_PASSWORD"], CA: kv["CA"]}
}

// HostHasIOWeight says whether this host's cgroups weigh block I/O (what
// an IO weight of a VM needs): cgroup v1's blkio with CFQ or BFQ
// (blkio.weight, blkio.bfq.weight), cgroup v2's io.weight or io.bfq.weight
// in a child group. Conformance harnesses set NoIOWeight from it: the
// scheduler is the host's choice, not the driver's.
func HostHasIOWeight() bool {
	for _, pattern := range []string{
		"/sys/fs/cgroup/blkio/blkio.weight", "/sys/fs/cgroup/blkio/blkio.bfq.weight",
		"/sys/fs/cgroup/blkio/*/blkio.weight", "/sys/fs/cgroup/blkio/*/blkio.bfq.weight",
		"/sys/fs/cgroup/*/io.weight", "/sys/fs/cgroup/*/io.bfq.weight",
	} {
		if m, _ := filepath.Glob(pattern); len(m) > 0 {
			return true
		}
	}
	return false
}
