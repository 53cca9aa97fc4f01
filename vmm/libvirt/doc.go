// Package libvirt is the vmm.Driver for QEMU/KVM through libvirtd, spoken
// to with github.com/digitalocean/go-libvirt (pure Go RPC, no cgo) and with
// domains rendered by libvirt.org/go/libvirtxml.
//
// A spec becomes a domain with sane defaults: virtio disks and NICs, ACPI,
// a serial console logged to a file, a guest agent channel, an optional
// VNC/SPICE console on loopback and, when the spec has cloud-init data, a
// NoCloud seed ISO (written by vmm/cloudinit) on an IDE CD-ROM. Every value
// reaches the XML through the encoder, after vmm.Spec.Validate, so no spec
// field can inject markup. Two ways adapt the domain: Values for the
// built-in template (domain type kvm/qemu, machine, CPU mode, emulator) and
// a DomainEditor that edits the libvirtxml.Domain before it is defined.
//
// go-libvirt calls take no context: the driver runs each call in a
// goroutine and abandons it at the context's deadline, redials libvirtd when
// the connection drops (libvirtd restarts), retries idempotent calls once on
// the new connection, and resubscribes its event stream.
//
// Where this host cannot do something, the driver says so with an error
// wrapping virtplane.ErrNotImplemented: disk-only snapshots of a running
// domain (they need external snapshots), and live NIC bandwidth on kernels
// without the tc qdiscs libvirt uses.
//
// Example:
//
//	d, err := libvirt.New(libvirt.Config{StateDir: "/var/lib/virtplane/vmm"},
//		libvirt.WithValues(libvirt.Values{Machine: "q35", CPUMode: "host-passthrough"}),
//		libvirt.WithDomainEditor(func(spec vmm.Spec, dom *libvirtxml.Domain) error {
//			dom.Description = "managed by virtplane"
//			return nil
//		}))
//	if err != nil {
//		return err
//	}
//	defer d.Close()
//	if _, err := d.Create(ctx, spec); err != nil {
//		return err
//	}
//	err = d.Start(ctx, spec.Name)
package libvirt
