package libvirt

import "context"

// CountElements exposes countElements to the external tests.
var CountElements = countElements

// MigratingOut exposes migratingOut to the external tests.
func (d *Driver) MigratingOut(ctx context.Context, name string) (bool, error) {
	dom, err := d.lookup(ctx, name)
	if err != nil {
		return false, err
	}
	return d.migratingOut(ctx, dom)
}

// KVMCandidate exposes kvmCandidate to the external tests.
var KVMCandidate = kvmCandidate

// BootSector exposes the boot probe's boot sector and its marker.
func BootSector() ([]byte, string) { return bootSector(), probeMarker }

// PretendKVM makes the driver's detection read caps as libvirt's kvm
// domain capabilities and boot its kvm probe as domain type probeAs: the
// kvm branch of detection on a host without kvm.
func PretendKVM(caps, probeAs string) Option {
	return func(d *Driver) {
		d.kvmCaps = func(context.Context) (string, error) { return caps, nil }
		d.kvmProbeAs = probeAs
	}
}
