package libvirt

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"libvirt.org/go/libvirtxml"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/vmm"
)

// The domain types the driver renders.
const (
	DomainKVM  = "kvm"  // hardware acceleration through /dev/kvm
	DomainQEMU = "qemu" // software emulation (TCG): slower, runs everywhere
)

// Detection is the domain type (and, for kvm, the CPU mode) the driver
// renders, and why it chose them.
type Detection struct {
	DomainType string
	CPUMode    string
	// Explicit is true when the caller set the type (Values.DomainType);
	// nothing was detected then.
	Explicit bool
	Reason   string
}

// BootProbe is the guest the driver boots once as a kvm domain, when
// libvirt reports kvm, to learn whether kvm actually runs guests here: a
// /dev/kvm can exist and run nothing (nested virtualization, some clouds),
// and domain capabilities cannot tell. The zero value boots a built-in
// 512-byte boot sector that writes a marker on the serial port; a caller
// with a guest kernel of its own (the test environment) can give it.
type BootProbe struct {
	// Kernel, Initrd and Cmdline boot a kernel directly instead of the
	// built-in boot sector; Marker is what its console prints once up.
	Kernel, Initrd, Cmdline, Marker string
	// Timeout is how long the probe waits for the marker; default 15 s.
	Timeout time.Duration
	// Skip trusts the domain capabilities alone and boots nothing.
	Skip bool
}

// WithBootProbe sets how the driver checks that kvm runs guests before it
// chooses it; see BootProbe.
func WithBootProbe(p BootProbe) Option { return func(d *Driver) { d.probe = p } }

// probeMarker is what the built-in boot sector writes on COM1.
const probeMarker = "VPT-KVM-PROBE-OK"

// bootSector is a real-mode x86 boot sector: DS=0, then it writes
// probeMarker to the UART at 0x3f8 and halts. QEMU's UART passes bytes
// written to its transmit register without any setup.
func bootSector() []byte {
	code := []byte{
		0x31, 0xC0, // xor ax, ax
		0x8E, 0xD8, // mov ds, ax
		0xFC,             // cld
		0xBA, 0xF8, 0x03, // mov dx, 0x3f8
		0xBE, 0x00, 0x00, // mov si, msg (patched below)
		0xAC,       // loop: lodsb
		0x84, 0xC0, // test al, al
		0x74, 0x03, // jz halt
		0xEE,       // out dx, al
		0xEB, 0xF8, // jmp loop
		0xFA,       // halt: cli
		0xF4,       // hlt
		0xEB, 0xFC, // jmp halt
	}
	msg := 0x7C00 + len(code)
	code[9], code[10] = byte(msg), byte(msg>>8)
	code = append(code, probeMarker+"\r\n\x00"...)
	sector := make([]byte, 512)
	copy(sector, code)
	sector[510], sector[511] = 0x55, 0xAA
	return sector
}

// kvmCandidate reads libvirt's domain capabilities for virttype kvm (the
// document, or the error libvirt answered with) and says whether kvm may be
// used and with which CPU mode. Pure: the choice table is tested without a
// host.
//
// The CPU mode matters: with the default model (qemu64) some kvm hosts run
// a guest that never prints, and host-passthrough can make QEMU abort where
// the host CPU cannot be passed whole; host-model is the model libvirt
// computed from what this host's KVM accepts, so it comes first.
func kvmCandidate(capsXML string, capsErr error) (cpuMode string, ok bool, reason string) {
	if capsErr != nil {
		return "", false, fmt.Sprintf("libvirt reports no kvm: %v", capsErr)
	}
	var caps libvirtxml.DomainCaps
	if err := caps.Unmarshal(capsXML); err != nil {
		return "", false, fmt.Sprintf("unreadable kvm domain capabilities: %v", err)
	}
	if caps.Domain != DomainKVM {
		return "", false, fmt.Sprintf("libvirt offers domain type %q, not kvm", caps.Domain)
	}
	modes := map[string]libvirtxml.DomainCapsCPUMode{}
	if caps.CPU != nil {
		for _, m := range caps.CPU.Modes {
			modes[m.Name] = m
		}
	}
	switch {
	case modes["host-model"].Supported == "yes":
		return "host-model", true, "libvirt reports kvm with cpu mode host-model"
	case modes["host-passthrough"].Supported == "yes":
		return "host-passthrough", true, "libvirt reports kvm with cpu mode host-passthrough"
	case modes["custom"].Supported == "yes":
		for _, m := range modes["custom"].Models {
			if m.Usable == "yes" {
				return "", true, "libvirt reports kvm; no host cpu mode, default model"
			}
		}
		return "", false, "libvirt reports kvm but no usable cpu model"
	}
	return "", false, "libvirt reports kvm but no cpu mode it supports"
}

// DetectDomainType returns the domain type the driver renders: the one set
// in Values, or else the one detected once on this libvirtd (kvm when
// libvirt reports it and a kvm guest boots, qemu otherwise). A failure to
// reach libvirtd is returned and retried on the next call.
func (d *Driver) DetectDomainType(ctx context.Context) (Detection, error) {
	if d.values.DomainType != "" {
		return Detection{DomainType: d.values.DomainType, CPUMode: d.values.CPUMode, Explicit: true, Reason: "set by configuration"}, nil
	}
	d.detectMu.Lock()
	defer d.detectMu.Unlock()
	if d.detected != nil {
		return *d.detected, nil
	}
	caps, err := d.kvmCapabilities(ctx)
	if err != nil && (virtplaneIs(err, virtplane.ErrUnavailable) || virtplaneIs(err, virtplane.ErrTimeout) || virtplaneIs(err, virtplane.ErrCanceled)) {
		return Detection{}, err
	}
	mode, ok, reason := kvmCandidate(caps, err)
	det := Detection{DomainType: DomainQEMU, Reason: reason}
	if ok {
		det = Detection{DomainType: DomainKVM, CPUMode: mode, Reason: reason}
		if !d.probe.Skip {
			as := DomainKVM
			if d.kvmProbeAs != "" {
				as = d.kvmProbeAs
			}
			booted, why, err := d.bootProbe(ctx, as, mode)
			if err != nil {
				return Detection{}, err
			}
			if !booted {
				det = Detection{DomainType: DomainQEMU, Reason: reason + ", but " + why}
			} else {
				det.Reason += ", and a kvm guest booted"
			}
		}
	}
	if d.values.CPUMode != "" || det.DomainType != DomainKVM {
		det.CPUMode = d.values.CPUMode // a set mode wins; detection picks one for kvm only
	}
	d.log.Info("domain type chosen", "type", det.DomainType, "cpu_mode", det.CPUMode, "reason", det.Reason)
	d.detected = &det
	return det, nil
}

// kvmCapabilities asks libvirt for its domain capabilities of type kvm.
func (d *Driver) kvmCapabilities(ctx context.Context) (string, error) {
	if d.kvmCaps != nil {
		return d.kvmCaps(ctx)
	}
	return call(ctx, d, "domain capabilities", true, func(lv *golibvirt.Libvirt) (string, error) {
		return lv.ConnectGetDomainCapabilities(nil, nil, nil, golibvirt.OptString{DomainKVM}, 0)
	})
}

// resolvedValues returns the template values with the domain type resolved.
func (d *Driver) resolvedValues(ctx context.Context) (Values, error) {
	det, err := d.DetectDomainType(ctx)
	if err != nil {
		return Values{}, err
	}
	v := d.values
	v.DomainType, v.CPUMode = det.DomainType, det.CPUMode
	return v, nil
}

// ProbeBoot boots the probe guest (see WithBootProbe) once as a transient
// domain of type domType with the given CPU mode and reports whether its
// marker reached the serial console within the probe's timeout, and if
// not, why. A false answer is not an error; err is a failure to ask
// libvirtd. The test environment uses it to record what boots here.
func (d *Driver) ProbeBoot(ctx context.Context, domType, cpuMode string) (booted bool, why string, err error) {
	return d.bootProbe(ctx, domType, cpuMode)
}

// bootProbe starts a transient domain (of type domType) of the probe guest and waits for
// its marker on the serial console. booted=false with a reason is an
// answer (kvm does not run guests here); err is a failure to ask.
func (d *Driver) bootProbe(ctx context.Context, domType, cpuMode string) (booted bool, why string, err error) {
	p := d.probe
	if p.Timeout <= 0 {
		p.Timeout = 15 * time.Second
	}
	dir := filepath.Join(d.cfg.StateDir, ".probe-"+randHex(4))
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return false, "", err
	}
	defer os.RemoveAll(dir)
	spec := vmm.Spec{Name: "vpt-probe-" + randHex(4), VCPUs: 1, MemoryMiB: 64}
	marker := probeMarker
	if p.Kernel != "" {
		spec.MemoryMiB = 256
		spec.Boot = vmm.Boot{Kernel: p.Kernel, Initrd: p.Initrd, Cmdline: p.Cmdline}
		marker = p.Marker
	} else {
		img := filepath.Join(dir, "boot.img")
		if err := os.WriteFile(img, bootSector(), 0o640); err != nil {
			return false, "", err
		}
		spec.Disks = []vmm.Disk{{Target: "hda", Source: vmm.DiskSource{Kind: "file", Path: img, Format: "raw"}}}
	}
	if marker == "" {
		return false, "", virtplane.Errorf(virtplane.ErrInvalidArgument, "boot probe: a probe kernel needs its marker")
	}
	logPath := filepath.Join(dir, "console.log")
	v := d.values
	v.DomainType, v.CPUMode, v.NoGuestAgent = domType, cpuMode, true
	if d.values.CPUMode != "" {
		v.CPUMode = d.values.CPUMode
	}
	dom, err := render(spec.Normalize(), v, "", logPath)
	if err != nil {
		return false, "", err
	}
	x, err := dom.Marshal()
	if err != nil {
		return false, "", err
	}
	started, err := call(ctx, d, "boot probe", false, func(lv *golibvirt.Libvirt) (golibvirt.Domain, error) {
		return lv.DomainCreateXML(x, 0)
	})
	if err != nil {
		if virtplaneIs(err, virtplane.ErrUnavailable) || virtplaneIs(err, virtplane.ErrTimeout) || virtplaneIs(err, virtplane.ErrCanceled) {
			return false, "", err
		}
		return false, fmt.Sprintf("a %s domain (cpu mode %q) did not start: %v", domType, v.CPUMode, err), nil
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = do(cctx, d, "destroy boot probe", true, func(lv *golibvirt.Libvirt) error { return lv.DomainDestroy(started) })
	}()
	deadline := time.NewTimer(p.Timeout)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if b, _ := os.ReadFile(logPath); bytes.Contains(b, []byte(marker)) {
			return true, "", nil
		}
		select {
		case <-ctx.Done():
			return false, "", virtplane.Errorf(virtplane.ErrCanceled, "boot probe: %v", ctx.Err())
		case <-deadline.C:
			return false, fmt.Sprintf("a %s guest (cpu mode %q) printed nothing on its console in %s", domType, v.CPUMode, p.Timeout), nil
		case <-tick.C:
		}
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
