// Command single-host drives one host directly with the SDK's packages, no
// daemon: IPAM gives the VM an address, a file storage pool imports an OS
// image and makes the VM's disk as a linked clone of it, network/port puts
// the VM's NIC on a bridge with anti-spoofing, and the libvirt driver
// defines and boots the domain with a cloud-init seed; then everything is
// taken down again, in reverse order.
//
//	go run ./examples/single-host -disk /var/lib/images/debian-12.qcow2 -dir /var/tmp/single-host
//
// It needs root (the bridge, nftables) and a libvirtd with the QEMU driver.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/network/ipam"
	"github.com/virtplane/virtplane/network/port"
	"github.com/virtplane/virtplane/storage"
	"github.com/virtplane/virtplane/storage/file"
	"github.com/virtplane/virtplane/vmm"
	"github.com/virtplane/virtplane/vmm/libvirt"
)

// Options say which libvirtd, image and directory to use.
type Options struct {
	Socket, URI string
	// DomainType and CPUMode are the domain template's values (qemu or kvm;
	// empty: the driver's defaults).
	DomainType, CPUMode string
	// Disk is a bootable qcow2 image; Dir a directory QEMU may read and
	// write (the pool and the driver's per-domain files go there).
	Disk, Dir string
	// Wait is what the guest prints on its serial console once it runs.
	Wait string
}

func main() {
	var o Options
	flag.StringVar(&o.Socket, "socket", "/run/libvirt/libvirt-sock", "libvirtd's socket")
	flag.StringVar(&o.URI, "uri", "qemu:///system", "libvirt URI")
	flag.StringVar(&o.DomainType, "domain-type", "", "qemu (software) or kvm; empty: the driver's default")
	flag.StringVar(&o.CPUMode, "cpu-mode", "", "CPU mode of the domain; empty: the driver's default")
	flag.StringVar(&o.Disk, "disk", "", "bootable qcow2 OS image")
	flag.StringVar(&o.Dir, "dir", "/var/tmp/virtplane-single-host", "working directory (QEMU must read it)")
	flag.StringVar(&o.Wait, "wait", "login:", "text the guest prints on its console when it runs")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := run(ctx, os.Stdout, o); err != nil {
		fmt.Fprintln(os.Stderr, "single-host:", err)
		os.Exit(1)
	}
}

// undo runs the recorded steps backwards; every step's error is kept.
type undo []func(context.Context) error

func (u *undo) add(f func(context.Context) error) { *u = append(*u, f) }

func (u undo) run(ctx context.Context) error {
	var errs []error
	for i := len(u) - 1; i >= 0; i-- {
		errs = append(errs, u[i](ctx))
	}
	return errors.Join(errs...)
}

func run(ctx context.Context, out io.Writer, o Options) (err error) {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	id := "vpt-ex-" + hex.EncodeToString(b) // vpt-: `make env-clean` knows it
	var down undo
	defer func() {
		// Whatever was made goes, also when a step failed.
		if uerr := down.run(context.WithoutCancel(ctx)); uerr != nil && err == nil {
			err = uerr
		}
	}()

	// 1. An address from IPAM (in memory here; the daemon keeps it in its store).
	addrs, err := ipam.New(ipam.Config{Store: ipam.NewMemoryStore()})
	if err != nil {
		return err
	}
	blk, err := ipam.ParseBlock(ipam.BlockSpec{ID: "b1", Range: "198.51.100.0/28", Gateway: "198.51.100.1"})
	if err != nil {
		return err
	}
	if _, err := addrs.CreatePool(ctx, ipam.Pool{ID: "public", Blocks: []ipam.Block{blk}}); err != nil {
		return err
	}
	alloc, err := addrs.Allocate(ctx, "public", ipam.Request{Owner: ipam.Owner{VM: id, Interface: "eth0"}})
	if err != nil {
		return err
	}
	down.add(func(ctx context.Context) error { return addrs.Release(ctx, "public", alloc.Prefix) })
	fmt.Fprintf(out, "address %s (gateway %s) from pool public\n", alloc.Addr(), alloc.Gateway)

	// 2. The OS image imported into a file pool, and the VM's disk as a
	// linked clone of it (O(1) whatever the image's size).
	poolDir := filepath.Join(o.Dir, "pool")
	if err := os.MkdirAll(poolDir, 0o755); err != nil {
		return err
	}
	pool, err := file.New(file.Config{Name: "local", Dir: poolDir})
	if err != nil {
		return err
	}
	base, err := storage.Importer{}.Import(ctx, pool, id+"-base", storage.Image{Key: "os", Path: o.Disk}, nil)
	if err != nil {
		return err
	}
	down.add(func(ctx context.Context) error { return pool.Delete(ctx, base.Name) })
	disk, err := pool.Clone(ctx, base.Name, id+"-root", storage.CloneLinked)
	if err != nil {
		return err
	}
	down.add(func(ctx context.Context) error { return pool.Delete(ctx, disk.Name) })
	fmt.Fprintf(out, "disk %s: linked clone of %s (%d MiB)\n", strings.TrimPrefix(disk.Name, id+"-"), strings.TrimPrefix(base.Name, id+"-"), base.Capacity>>20)

	// 3. The NIC's port: a bridge of its own (no uplink: traffic goes
	// nowhere but between the VM and the bridge), the anti-spoofing table.
	nl, err := netlink.NewHandle()
	if err != nil {
		return err
	}
	defer nl.Close()
	nft, err := nftables.New()
	if err != nil {
		return err
	}
	ports, err := port.NewKernelHost(filepath.Join(o.Dir, "ports"), nl, nft)
	if err != nil {
		return err
	}
	bridge := "vpt-br-" + hex.EncodeToString(b)
	ps := port.ForVM(id, bridge, []netip.Addr{alloc.Addr()})
	if err := ports.Setup(ctx, ps); err != nil {
		return err
	}
	down.add(func(ctx context.Context) error { return ports.Teardown(ctx, ps.Name) })
	fmt.Fprintf(out, "port: MAC %s on bridge vpt-br-*, only %s may send from it\n", ps.MAC, alloc.Addr())

	// 4. The domain, with a cloud-init seed naming it and its address.
	stateDir := filepath.Join(o.Dir, "vmm")
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return err
	}
	drv, err := libvirt.New(libvirt.Config{Socket: o.Socket, URI: o.URI, StateDir: stateDir},
		libvirt.WithValues(libvirt.Values{DomainType: o.DomainType, CPUMode: o.CPUMode}))
	if err != nil {
		return err
	}
	spec := vmm.Spec{Name: id, VCPUs: 1, MemoryMiB: 192,
		Disks: []vmm.Disk{{Target: "vda", Source: vmm.DiskSource(disk.Attachment)}},
		NICs:  []vmm.NIC{{Bridge: ps.Bridge, Tap: ps.Name, MAC: ps.MAC}},
		CloudInit: &vmm.CloudInit{UserData: "#cloud-config\n", MetaData: "instance-id: " + id + "\nlocal-hostname: web1\n",
			NetworkConfig: fmt.Sprintf("version: 2\nethernets:\n  eth0:\n    addresses: [%s/28]\n    gateway4: %s\n", alloc.Addr(), alloc.Gateway)}}
	if _, err := drv.Create(ctx, spec); err != nil {
		return err
	}
	down.add(func(ctx context.Context) error { return drv.Delete(ctx, id) })
	if err := drv.Start(ctx, id); err != nil {
		return err
	}
	down.add(func(ctx context.Context) error {
		if err := drv.Stop(ctx, id); err != nil && !errors.Is(err, virtplane.ErrConflict) {
			return err
		}
		return nil
	})
	// The tap exists now: the port enslaves it.
	if err := ports.Setup(ctx, ps); err != nil {
		return err
	}
	started := time.Now()
	console, err := waitConsole(ctx, drv.ConsoleLog(id), o.Wait, 3*time.Minute)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "web1 booted: its console printed %q after %.1fs\n", o.Wait, time.Since(started).Seconds())
	for _, l := range strings.Split(console, "\n") {
		if strings.Contains(l, "local-hostname") || strings.Contains(l, alloc.Addr().String()) {
			fmt.Fprintf(out, "  console| %s\n", strings.TrimSpace(l))
		}
	}

	// 5. Delete: the deferred undo takes it all down, last made first.
	if err := down.run(ctx); err != nil {
		return err
	}
	down = nil
	if _, err := drv.Get(ctx, id); !errors.Is(err, virtplane.ErrNotFound) {
		return fmt.Errorf("domain %s still there after delete: %v", id, err)
	}
	if _, err := netlink.LinkByName(bridge); err == nil {
		return fmt.Errorf("bridge %s still there after delete", bridge)
	}
	fmt.Fprintln(out, "deleted: domain, port and bridge, disk and image, address")
	return nil
}

// waitConsole waits until the console log holds want.
func waitConsole(ctx context.Context, path, want string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		b, _ := os.ReadFile(path)
		if strings.Contains(string(b), want) {
			return string(b), nil
		}
		select {
		case <-ctx.Done():
			tail := string(b)
			if len(tail) > 2000 {
				tail = tail[len(tail)-2000:]
			}
			return tail, virtplane.Errorf(virtplane.ErrTimeout, "no %q on the console within %v:\n%s", want, timeout, tail)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
