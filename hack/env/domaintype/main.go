// Command domaintype decides, once per libvirtd, which domain type runs
// guests on this machine, the way the libvirt driver decides it (domain
// capabilities, then a kvm boot of the test guest), checks that the chosen
// type boots the test guest, and prints the result as KEY=VALUE lines for
// hack/env/domaintype.sh. It never decides from /dev/kvm.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/virtplane/virtplane/vmm/libvirt"
)

func main() {
	socket := flag.String("socket", "/run/libvirt/libvirt-sock", "libvirtd's socket")
	state := flag.String("state", "", "a directory libvirtd and QEMU can read (probe files)")
	kernel := flag.String("kernel", "", "the test guest's kernel")
	initrd := flag.String("initrd", "", "the test guest's initramfs")
	marker := flag.String("marker", "", "what the test guest prints once booted")
	timeout := flag.Duration("timeout", 30*time.Second, "how long one boot may take to print the marker")
	force := flag.String("force", "", "kvm or qemu: use this type (checked by a boot) instead of detecting")
	flag.Parse()
	if err := run(*socket, *state, *force, libvirt.BootProbe{Kernel: *kernel, Initrd: *initrd, Cmdline: "console=ttyS0 panic=-1", Marker: *marker, Timeout: *timeout}); err != nil {
		fmt.Fprintln(os.Stderr, "domaintype:", err)
		os.Exit(1)
	}
}

func run(socket, state, force string, probe libvirt.BootProbe) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	d, err := libvirt.New(libvirt.Config{Socket: socket, StateDir: state}, libvirt.WithBootProbe(probe),
		libvirt.WithValues(libvirt.Values{DomainType: force}))
	if err != nil {
		return err
	}
	defer d.Close()
	det, err := d.DetectDomainType(ctx)
	if err != nil {
		return err
	}
	// The chosen type must boot the test guest, or no real test can pass.
	booted, why, err := d.ProbeBoot(ctx, det.DomainType, det.CPUMode)
	if err != nil {
		return err
	}
	if !booted {
		return fmt.Errorf("the chosen domain type %s does not boot the test guest either: %s (detection: %s)", det.DomainType, why, det.Reason)
	}
	fmt.Printf("DOMAIN_TYPE=%s\nCPU_MODE=%s\nREASON=%s\n", det.DomainType, det.CPUMode, det.Reason)
	return nil
}
