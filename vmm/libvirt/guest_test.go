package libvirt_test

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane/internal/testenv"
	"github.com/virtplane/virtplane/vmm"
	"github.com/virtplane/virtplane/vmm/libvirt"
)

// guestInit replaces the testenv initramfs's /init: it prints the boot
// marker and then a heartbeat every second, so a test can see that the
// guest keeps running (across suspend, snapshot revert and migration).
const guestInit = `#!/bin/busybox sh
/bin/busybox --install -s
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
echo "%s uptime=$(cut -d' ' -f1 /proc/uptime) cmdline=$(cat /proc/cmdline)"
case "$(cat /proc/cmdline)" in *vpt.seed=1*) /bin/vpt-seed ;; esac
i=0
while true; do i=$((i+1)); echo "VPT-TICK $i"; sleep 1; done
`

// newc writes a cpio "newc" archive holding the given files (mode 0755).
func newc(files map[string][]byte) []byte {
	var b bytes.Buffer
	ino := 1
	pad := func() {
		for b.Len()%4 != 0 {
			b.WriteByte(0)
		}
	}
	write := func(name string, mode int, data []byte) {
		fmt.Fprintf(&b, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X", ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name)+1, 0)
		b.WriteString(name)
		b.WriteByte(0)
		pad()
		b.Write(data)
		pad()
		ino++
	}
	for name, data := range files {
		write(name, 0o100755, data)
	}
	write("TRAILER!!!", 0, nil)
	return b.Bytes()
}

// testGuest is the kernel and an initramfs with the heartbeat init.
type testGuest struct {
	kernel, initrd, marker string
}

func buildGuest(t testing.TB, dir string) testGuest {
	t.Helper()
	g := testenv.RequireGuest(t)
	base, err := os.ReadFile(g.Initrd)
	require.NoError(t, err)
	// The kernel unpacks concatenated archives in order; later files win.
	img := append(base, newc(map[string][]byte{"init": []byte(fmt.Sprintf(guestInit, g.Marker))})...)
	p := filepath.Join(dir, "initrd-heartbeat.img")
	require.NoError(t, os.WriteFile(p, img, 0o644))
	return testGuest{kernel: g.Kernel, initrd: p, marker: g.Marker}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func qcow2(t testing.TB, path string) {
	t.Helper()
	out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", path, "64M").CombinedOutput()
	require.NoError(t, err, string(out))
}

// consoleWatcher reads serial console logs and counts boots and ticks.
type consoleWatcher struct {
	marker string
	log    func(name string) string
	mu     sync.Mutex
	seen   map[string]int // boots seen per machine at the last WaitBooted
}

var tickRE = regexp.MustCompile(`VPT-TICK (\d+)`)

func (w *consoleWatcher) scan(name string) (boots, lastTick int, text string) {
	b, _ := os.ReadFile(w.log(name))
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if bytes.Contains([]byte(line), []byte(w.marker)) {
			boots++
			lastTick = 0
		}
		if m := tickRE.FindStringSubmatch(line); m != nil {
			lastTick, _ = strconv.Atoi(m[1])
		}
	}
	return boots, lastTick, string(b)
}

func (w *consoleWatcher) WaitBooted(ctx context.Context, name string) error {
	ctx, cancel := bootDeadline(ctx)
	defer cancel()
	w.mu.Lock()
	prev := w.seen[name]
	w.mu.Unlock()
	for {
		boots, _, _ := w.scan(name)
		if boots > prev {
			w.mu.Lock()
			w.seen[name] = boots
			w.mu.Unlock()
			return nil
		}
		select {
		case <-ctx.Done():
			_, _, text := w.scan(name)
			return fmt.Errorf("no new %q on the console of %s (%d boots so far): %w\n%s", w.marker, name, prev, ctx.Err(), tail(text, 2000))
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// Alive waits for a heartbeat newer than the last one logged so far.
func (w *consoleWatcher) Alive(ctx context.Context, _ vmm.Driver, name string) error {
	ctx, cancel := bootDeadline(ctx)
	defer cancel()
	_, first, _ := w.scan(name)
	for {
		_, tick, _ := w.scan(name)
		if tick > first || (first == 0 && tick > 0) {
			return nil
		}
		select {
		case <-ctx.Done():
			_, _, text := w.scan(name)
			return fmt.Errorf("no heartbeat after %d on the console of %s: %w\n%s", first, name, ctx.Err(), tail(text, 2000))
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// bootDeadline gives a wait on a guest a deadline when its caller set
// none: a guest that never boots fails its test, not the package.
func bootDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, 2*time.Minute)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// fixture is a driver against the shared libvirtd plus what its guests need.
type fixture struct {
	d       *libvirt.Driver
	env     testenv.Libvirt
	guest   testGuest
	dir     string
	console *consoleWatcher
}

func newFixture(t *testing.T, opts ...libvirt.Option) *fixture {
	t.Helper()
	return newFixtureTB(t, opts...)
}

func newFixtureTB(t testing.TB, opts ...libvirt.Option) *fixture {
	t.Helper()
	env := testenv.RequireLibvirt(t)
	dir := t.TempDir()
	require.NoError(t, os.Chmod(dir, 0o755))
	f := &fixture{env: env, dir: dir, guest: buildGuest(t, dir)}
	// The machine's recorded domain type first: a test's own values win.
	opts = append([]libvirt.Option{libvirt.WithValues(env.Values())}, opts...)
	d, err := libvirt.New(libvirt.Config{Socket: env.Socket, URI: env.URI, StateDir: filepath.Join(dir, "state")}, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close() })
	f.d = d
	f.console = &consoleWatcher{marker: f.guest.marker, log: d.ConsoleLog, seen: map[string]int{}}
	return f
}

// spec is a bootable machine: the test kernel, a qcow2 disk (so internal
// snapshots work), a tap NIC, a VNC console and a cloud-init seed.
func (f *fixture) spec(t *testing.T, name string) vmm.Spec {
	t.Helper()
	disk := filepath.Join(f.dir, name+".qcow2")
	qcow2(t, disk)
	mac := "52:54:00:" + randHex(1) + ":" + randHex(1) + ":" + randHex(1)
	return vmm.Spec{
		Name: name, VCPUs: 1, MemoryMiB: 192,
		Disks: []vmm.Disk{{Target: "vda", Source: vmm.DiskSource{Kind: "file", Path: disk, Format: "qcow2"}}},
		NICs:  []vmm.NIC{{Tap: "vpt" + randHex(4), MAC: mac}},
		Boot:  vmm.Boot{Kernel: f.guest.kernel, Initrd: f.guest.initrd, Cmdline: "console=ttyS0 panic=-1"},
		CloudInit: &vmm.CloudInit{
			MetaData: "instance-id: " + name + "\nlocal-hostname: " + name + "\n",
			UserData: "#cloud-config\n",
		},
		Console: vmm.ConsoleSpec{Type: "vnc", Password: "s3cret"},
	}
}

// extraDisk is a small sparse raw file to hotplug.
func (f *fixture) extraDisk(t *testing.T) vmm.DiskSource {
	return vmm.DiskSource{Kind: "file", Path: testenv.EmptyDisk(t, f.dir, "raw", 16<<20), Format: "raw"}
}

// copyTarget is an empty qcow2 volume of size bytes (0: as large as the
// spec's disk, 64 MiB).
func (f *fixture) copyTarget(t *testing.T, size int64) vmm.DiskSource {
	return vmm.DiskSource{Kind: "file", Path: testenv.EmptyDisk(t, f.dir, "qcow2", cmp.Or(size, 64<<20)), Format: "qcow2"}
}
