package libvirt

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"sort"
	"strings"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"libvirt.org/go/libvirtxml"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/internal/revert"
	"github.com/virtplane/virtplane/vmm"
)

// CreateSnapshot takes an internal (qcow2) snapshot. With Memory it records
// the memory of a running domain; without, it snapshots a stopped domain's
// disks. A disk-only snapshot of a running domain would need external
// overlay files and returns ErrNotImplemented.
func (d *Driver) CreateSnapshot(ctx context.Context, name string, spec vmm.SnapshotSpec) error {
	if err := vmm.CheckName("snapshot name", spec.Name); err != nil {
		return err
	}
	if len(spec.Description) > 1024 {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "snapshot description: %d bytes, want at most 1024", len(spec.Description))
	}
	dom, err := d.lookup(ctx, name)
	if err != nil {
		return err
	}
	st, err := d.state(ctx, dom)
	if err != nil {
		return err
	}
	live := st == vmm.StateRunning || st == vmm.StatePaused
	switch {
	case spec.Memory && !live:
		return virtplane.Errorf(virtplane.ErrConflict, "vm %q is %s: a memory snapshot needs a running machine", name, st)
	case !spec.Memory && live:
		return virtplane.Errorf(virtplane.ErrNotImplemented, "vm %q is %s: disk-only snapshots of a running libvirt domain need external snapshots, which the driver does not manage; stop it or include memory", name, st)
	}
	if _, err := d.snapshot(ctx, dom, spec.Name); err == nil {
		return virtplane.Errorf(virtplane.ErrAlreadyExists, "snapshot %q of vm %q", spec.Name, name)
	}
	sx := libvirtxml.DomainSnapshot{Name: spec.Name, Description: spec.Description}
	x, err := sx.Marshal()
	if err != nil {
		return err
	}
	return do(ctx, d, "snapshot "+name, false, func(lv *golibvirt.Libvirt) error {
		_, err := lv.DomainSnapshotCreateXML(dom, x, 0)
		return err
	})
}

func (d *Driver) snapshot(ctx context.Context, dom golibvirt.Domain, snap string) (golibvirt.DomainSnapshot, error) {
	if !vmm.ValidName(snap) {
		return golibvirt.DomainSnapshot{}, virtplane.Errorf(virtplane.ErrNotFound, "snapshot %q", snap)
	}
	return call(ctx, d, "lookup snapshot "+snap, true, func(lv *golibvirt.Libvirt) (golibvirt.DomainSnapshot, error) {
		return lv.DomainSnapshotLookupByName(dom, snap, 0)
	})
}

// ListSnapshots returns the snapshots oldest first.
func (d *Driver) ListSnapshots(ctx context.Context, name string) ([]vmm.Snapshot, error) {
	dom, err := d.lookup(ctx, name)
	if err != nil {
		return nil, err
	}
	snaps, err := call(ctx, d, "list snapshots of "+name, true, func(lv *golibvirt.Libvirt) ([]golibvirt.DomainSnapshot, error) {
		s, _, err := lv.DomainListAllSnapshots(dom, 1, 0)
		return s, err
	})
	if err != nil {
		return nil, err
	}
	type entry struct {
		vmm.Snapshot
		parent string
	}
	var list []entry
	for _, s := range snaps {
		x, err := call(ctx, d, "snapshot xml", true, func(lv *golibvirt.Libvirt) (string, error) { return lv.DomainSnapshotGetXMLDesc(s, 0) })
		if err != nil {
			return nil, err
		}
		var sx libvirtxml.DomainSnapshot
		if err := sx.Unmarshal(x); err != nil {
			return nil, err
		}
		e := entry{Snapshot: vmm.Snapshot{Name: sx.Name}}
		if sx.Parent != nil {
			e.parent = sx.Parent.Name
		}
		if sec, err := parseInt(sx.CreationTime); err == nil {
			e.Created = time.Unix(sec, 0)
		}
		switch sx.State {
		case "running", "paused":
			e.Memory = true
			e.State = vmm.State(sx.State)
		default:
			e.State = vmm.StateStopped
		}
		list = append(list, e)
	}
	depth := func(e entry) int {
		n := 0
		for p := e.parent; p != "" && n < len(list); n++ {
			next := ""
			for _, o := range list {
				if o.Name == p {
					next = o.parent
				}
			}
			p = next
		}
		return n
	}
	sort.SliceStable(list, func(i, j int) bool {
		if !list[i].Created.Equal(list[j].Created) {
			return list[i].Created.Before(list[j].Created)
		}
		return depth(list[i]) < depth(list[j])
	})
	out := make([]vmm.Snapshot, len(list))
	for i, e := range list {
		out[i] = e.Snapshot
	}
	return out, nil
}

func parseInt(s string) (int64, error) {
	var v int64
	_, err := fmt.Sscan(s, &v)
	return v, err
}

// RevertSnapshot returns the domain to the snapshot: definition, disks and,
// for memory snapshots, the running guest.
func (d *Driver) RevertSnapshot(ctx context.Context, name, snap string) error {
	dom, err := d.lookup(ctx, name)
	if err != nil {
		return err
	}
	s, err := d.snapshot(ctx, dom, snap)
	if err != nil {
		return err
	}
	return do(ctx, d, "revert "+name+" to "+snap, false, func(lv *golibvirt.Libvirt) error {
		return lv.DomainRevertToSnapshot(s, uint32(golibvirt.DomainSnapshotRevertForce))
	})
}

// DeleteSnapshot deletes a snapshot and its data in the qcow2 images.
func (d *Driver) DeleteSnapshot(ctx context.Context, name, snap string) error {
	dom, err := d.lookup(ctx, name)
	if err != nil {
		return err
	}
	s, err := d.snapshot(ctx, dom, snap)
	if err != nil {
		return err
	}
	return do(ctx, d, "delete snapshot "+snap, false, func(lv *golibvirt.Libvirt) error { return lv.DomainSnapshotDelete(s, 0) })
}

// editInactive reads the persistent definition, lets edit change it and
// defines the result.
func (d *Driver) editInactive(ctx context.Context, dom golibvirt.Domain, edit func(*libvirtxml.Domain, *meta) error) error {
	x, err := d.domainXML(ctx, dom, true)
	if err != nil {
		return err
	}
	_, def, m, err := parse(x)
	if err != nil {
		return err
	}
	if err := edit(def, &m); err != nil {
		return err
	}
	md, err := encodeMeta(m)
	if err != nil {
		return err
	}
	def.Metadata = md
	nx, err := def.Marshal()
	if err != nil {
		return err
	}
	return d.define(ctx, nx)
}

// Resize changes the persistent CPU count and memory; a running domain
// picks them up at its next boot (live resize would need hot-plug limits
// set at boot: maxvcpus and maxMemory, which the driver does not reserve).
func (d *Driver) Resize(ctx context.Context, name string, r vmm.Resources) error {
	dom, err := d.lookup(ctx, name)
	if err != nil {
		return err
	}
	probe := vmm.Spec{Name: name, VCPUs: r.VCPUs, MemoryMiB: r.MemoryMiB}
	if err := probe.Validate(); err != nil {
		return err
	}
	return d.editInactive(ctx, dom, func(def *libvirtxml.Domain, _ *meta) error {
		def.VCPU = &libvirtxml.DomainVCPU{Value: uint(r.VCPUs)}
		def.Memory = &libvirtxml.DomainMemory{Value: uint(r.MemoryMiB), Unit: "MiB"}
		def.CurrentMemory = &libvirtxml.DomainCurrentMemory{Value: uint(r.MemoryMiB), Unit: "MiB"}
		return nil
	})
}

// ResizeDisk grows a disk of a running domain with virDomainBlockResize:
// QEMU grows the image file (or RBD image) it holds open, or takes up the
// new size of a block device, and the guest sees the new capacity at once.
// The size is rounded up to 512 bytes (QEMU's granularity); libvirt would
// shrink as readily as grow, so a smaller size is refused here.
func (d *Driver) ResizeDisk(ctx context.Context, name, target string, size int64) error {
	if size <= 0 {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "disk %q of vm %q: size %d must be positive", target, name, size)
	}
	dom, err := d.lookup(ctx, name)
	if err != nil {
		return err
	}
	vm, err := d.get(ctx, dom)
	if err != nil {
		return err
	}
	// The target is looked up in the definition rather than handed to
	// libvirt, which would also accept a path and report an unknown disk as
	// a generic invalid argument.
	found := false
	for _, dk := range vm.Spec.Disks {
		found = found || dk.Target == target
	}
	if !found {
		return virtplane.Errorf(virtplane.ErrNotFound, "disk %q of vm %q", target, name)
	}
	if vm.State != vmm.StateRunning && vm.State != vmm.StatePaused {
		return virtplane.Errorf(virtplane.ErrConflict, "vm %q is %s: cannot resize a disk", name, vm.State)
	}
	size = (size + 511) &^ 511
	capacity, err := call(ctx, d, "block info of "+name, true, func(lv *golibvirt.Libvirt) (uint64, error) {
		_, c, _, err := lv.DomainGetBlockInfo(dom, target, 0)
		return c, err
	})
	if err != nil {
		return err
	}
	switch {
	case uint64(size) < capacity:
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "disk %q of vm %q: %d bytes is below the current %d: disks only grow", target, name, size, capacity)
	case uint64(size) == capacity:
		return nil
	}
	return do(ctx, d, "resize disk "+target+" of "+name, true, func(lv *golibvirt.Libvirt) error {
		return lv.DomainBlockResize(dom, target, uint64(size), golibvirt.DomainBlockResizeBytes)
	})
}

func typed(field string, v golibvirt.TypedParamValue) golibvirt.TypedParam {
	return golibvirt.TypedParam{Field: field, Value: v}
}

// SetLimits applies limits to the persistent definition and, when the
// domain runs, to the live one.
func (d *Driver) SetLimits(ctx context.Context, name string, l vmm.Limits) error {
	if err := l.Validate(); err != nil {
		return err
	}
	dom, err := d.lookup(ctx, name)
	if err != nil {
		return err
	}
	vm, err := d.get(ctx, dom)
	if err != nil {
		return err
	}
	targets, macs := map[string]bool{}, map[string]bool{}
	for _, disk := range vm.Spec.Disks {
		targets[disk.Target] = true
	}
	for _, n := range vm.Spec.NICs {
		macs[n.MAC] = true
	}
	for t := range l.Disks {
		if !targets[t] {
			return virtplane.Errorf(virtplane.ErrInvalidArgument, "limits.disks[%q]: vm %q has no such disk", t, name)
		}
	}
	for m := range l.NICs {
		if !macs[strings.ToLower(m)] {
			return virtplane.Errorf(virtplane.ErrInvalidArgument, "limits.nics[%q]: vm %q has no NIC with that MAC", m, name)
		}
	}
	flags := uint32(golibvirt.DomainAffectConfig)
	if vm.State == vmm.StateRunning || vm.State == vmm.StatePaused {
		flags |= uint32(golibvirt.DomainAffectLive)
	}
	// NIC bandwidth goes first: it is what a host is likeliest to refuse
	// (missing tc qdiscs), and nothing else has changed by then.
	for m, nl := range l.NICs {
		params := []golibvirt.TypedParam{
			typed("inbound.average", *golibvirt.NewTypedParamValueUint(uint32(min(nl.InboundKiBs, 1<<32-1)))),
			typed("outbound.average", *golibvirt.NewTypedParamValueUint(uint32(min(nl.OutboundKiBs, 1<<32-1)))),
		}
		if err := do(ctx, d, "set bandwidth of "+name+"/"+m, true, func(lv *golibvirt.Libvirt) error {
			return lv.DomainSetInterfaceParameters(dom, strings.ToLower(m), params, flags)
		}); err != nil {
			if strings.Contains(err.Error(), "qdisc kind is unknown") {
				return virtplane.Errorf(virtplane.ErrNotImplemented, "bandwidth of %s/%s: the host kernel lacks the tc qdiscs libvirt shapes with (%v)", name, m, err)
			}
			return err
		}
	}
	if l.CPUWeight > 0 {
		if err := do(ctx, d, "set cpu weight of "+name, true, func(lv *golibvirt.Libvirt) error {
			return lv.DomainSetSchedulerParametersFlags(dom, []golibvirt.TypedParam{typed("cpu_shares", *golibvirt.NewTypedParamValueUllong(l.CPUWeight))}, flags)
		}); err != nil {
			return err
		}
	}
	if l.IOWeight > 0 {
		if err := do(ctx, d, "set io weight of "+name, true, func(lv *golibvirt.Libvirt) error {
			return lv.DomainSetBlkioParameters(dom, []golibvirt.TypedParam{typed("weight", *golibvirt.NewTypedParamValueUint(uint32(l.IOWeight)))}, flags)
		}); err != nil {
			return err
		}
	}
	for t, dl := range l.Disks {
		params := []golibvirt.TypedParam{
			typed("read_iops_sec", *golibvirt.NewTypedParamValueUllong(dl.ReadIOPS)),
			typed("write_iops_sec", *golibvirt.NewTypedParamValueUllong(dl.WriteIOPS)),
			typed("read_bytes_sec", *golibvirt.NewTypedParamValueUllong(dl.ReadBytesSec)),
			typed("write_bytes_sec", *golibvirt.NewTypedParamValueUllong(dl.WriteBytesSec)),
		}
		if err := do(ctx, d, "set io limits of "+name+"/"+t, true, func(lv *golibvirt.Libvirt) error {
			return lv.DomainSetBlockIOTune(dom, t, params, flags)
		}); err != nil {
			return err
		}
	}
	return nil
}

// EnterRescue powers the domain off, boots it from the rescue kernel or ISO
// with its disks attached, and remembers how it booted before.
func (d *Driver) EnterRescue(ctx context.Context, name string, r vmm.RescueSpec) error {
	if err := vmm.CheckRescue(r); err != nil {
		return err
	}
	return d.rescueSwitch(ctx, name, func(def *libvirtxml.Domain, m *meta) error {
		if m.Rescue != nil {
			return virtplane.Errorf(virtplane.ErrConflict, "vm %q is in rescue mode already", name)
		}
		saved := &rescue{Kernel: def.OS.Kernel, Initrd: def.OS.Initrd, Cmdline: def.OS.Cmdline}
		for _, b := range def.OS.BootDevices {
			saved.Boot = append(saved.Boot, b.Dev)
		}
		def.OS.BootDevices = nil
		def.OS.Kernel, def.OS.Initrd, def.OS.Cmdline = r.Kernel, r.Initrd, r.Cmdline
		if r.ISO != "" {
			used := vmm.Spec{}
			for _, dd := range def.Devices.Disks {
				if dd.Target != nil {
					used.Disks = append(used.Disks, vmm.Disk{Target: dd.Target.Dev})
				}
			}
			t := seedTarget(used)
			if t == "" {
				return virtplane.Errorf(virtplane.ErrConflict, "vm %q has no free IDE slot for the rescue ISO", name)
			}
			dd, _ := renderDisk(vmm.Disk{Target: t, CDROM: true, Source: vmm.DiskSource{Kind: "file", Path: r.ISO, Format: "raw"}}, vmm.DiskLimits{})
			def.Devices.Disks = append(def.Devices.Disks, dd)
			def.OS.BootDevices = []libvirtxml.DomainBootDevice{{Dev: "cdrom"}}
			saved.CDROM = t
		}
		m.Rescue = saved
		return nil
	})
}

// ExitRescue powers the domain off and boots it the way it booted before.
func (d *Driver) ExitRescue(ctx context.Context, name string) error {
	return d.rescueSwitch(ctx, name, func(def *libvirtxml.Domain, m *meta) error {
		saved := m.Rescue
		if saved == nil {
			return virtplane.Errorf(virtplane.ErrConflict, "vm %q is not in rescue mode", name)
		}
		def.OS.Kernel, def.OS.Initrd, def.OS.Cmdline = saved.Kernel, saved.Initrd, saved.Cmdline
		def.OS.BootDevices = nil
		for _, b := range saved.Boot {
			def.OS.BootDevices = append(def.OS.BootDevices, libvirtxml.DomainBootDevice{Dev: b})
		}
		if saved.CDROM != "" {
			kept := def.Devices.Disks[:0]
			for _, dd := range def.Devices.Disks {
				if dd.Target == nil || dd.Target.Dev != saved.CDROM {
					kept = append(kept, dd)
				}
			}
			def.Devices.Disks = kept
		}
		m.Rescue = nil
		return nil
	})
}

// rescueSwitch stops the domain, redefines it with edit and starts it; on a
// failure it puts the old definition (and run state) back.
func (d *Driver) rescueSwitch(ctx context.Context, name string, edit func(*libvirtxml.Domain, *meta) error) error {
	dom, err := d.lookup(ctx, name)
	if err != nil {
		return err
	}
	old, err := d.domainXML(ctx, dom, true)
	if err != nil {
		return err
	}
	_, def, m, err := parse(old)
	if err != nil {
		return err
	}
	if err := edit(def, &m); err != nil {
		return err
	}
	st, err := d.state(ctx, dom)
	if err != nil {
		return err
	}
	r := revert.New()
	defer r.Fail()
	undo := context.WithoutCancel(ctx)
	if st != vmm.StateStopped {
		if err := d.Stop(ctx, name); err != nil {
			return err
		}
		r.Add(func() { _ = d.Start(undo, name) })
	}
	md, err := encodeMeta(m)
	if err != nil {
		return err
	}
	def.Metadata = md
	nx, err := def.Marshal()
	if err != nil {
		return err
	}
	if err := d.define(ctx, nx); err != nil {
		return err
	}
	r.Add(func() { _ = d.define(undo, old) })
	if err := d.Start(ctx, name); err != nil {
		return err
	}
	r.Success()
	return nil
}

// Console returns the graphics endpoint of the running domain.
func (d *Driver) Console(ctx context.Context, name string) (vmm.Console, error) {
	dom, err := d.lookup(ctx, name)
	if err != nil {
		return vmm.Console{}, err
	}
	x, err := d.domainXML(ctx, dom, false)
	if err != nil {
		return vmm.Console{}, err
	}
	var def libvirtxml.Domain
	if err := def.Unmarshal(x); err != nil {
		return vmm.Console{}, err
	}
	if def.ID == nil {
		return vmm.Console{}, virtplane.Errorf(virtplane.ErrConflict, "vm %q is not running: no console", name)
	}
	if def.Devices != nil {
		for _, g := range def.Devices.Graphics {
			switch {
			case g.VNC != nil:
				return vmm.Console{Type: "vnc", Host: g.VNC.Listen, Port: g.VNC.Port, Password: g.VNC.Passwd}, nil
			case g.Spice != nil:
				return vmm.Console{Type: "spice", Host: g.Spice.Listen, Port: g.Spice.Port, Password: g.Spice.Passwd}, nil
			}
		}
	}
	return vmm.Console{}, virtplane.Errorf(virtplane.ErrNotFound, "vm %q has no console", name)
}

// SetConsolePassword changes the graphics password live and persistently.
func (d *Driver) SetConsolePassword(ctx context.Context, name, password string) error {
	if err := vmm.CheckPassword("password", password); err != nil {
		return err
	}
	dom, err := d.lookup(ctx, name)
	if err != nil {
		return err
	}
	st, err := d.state(ctx, dom)
	if err != nil {
		return err
	}
	live := st == vmm.StateRunning || st == vmm.StatePaused
	for _, inactive := range []bool{true, false} {
		if !inactive && !live {
			continue
		}
		x, err := d.domainXML(ctx, dom, inactive)
		if err != nil {
			return err
		}
		var def libvirtxml.Domain
		if err := def.Unmarshal(x); err != nil {
			return err
		}
		if def.Devices == nil || len(def.Devices.Graphics) == 0 {
			return virtplane.Errorf(virtplane.ErrNotFound, "vm %q has no console", name)
		}
		g := def.Devices.Graphics[0]
		switch {
		case g.VNC != nil:
			g.VNC.Passwd = password
		case g.Spice != nil:
			g.Spice.Passwd = password
		}
		gx, err := g.Marshal()
		if err != nil {
			return err
		}
		flags := golibvirt.DomainDeviceModifyConfig
		if !inactive {
			flags = golibvirt.DomainDeviceModifyLive
		}
		if err := do(ctx, d, "set console password of "+name, true, func(lv *golibvirt.Libvirt) error {
			return lv.DomainUpdateDeviceFlags(dom, gx, flags)
		}); err != nil {
			return err
		}
	}
	return nil
}

// Migrate moves a running domain to the libvirtd at target.URI (a libvirt
// URI that the source libvirtd can open: peer-to-peer migration), polling
// the job for progress. Cancelling ctx aborts the migration. Disks listed
// in target.Disks are copied while the domain runs (QEMU mirrors them over
// NBD into the target sources, backing chains flattened); the domain is
// defined on the target with those sources.
func (d *Driver) Migrate(ctx context.Context, name string, target vmm.MigrationTarget, progress func(vmm.MigrationProgress)) error {
	if target.URI == "" || strings.ContainsAny(target.URI, "\x00\n\r") {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "migration target uri %q", target.URI)
	}

	params := []golibvirt.TypedParam{typed("destination_name", *golibvirt.NewTypedParamValueString(name))}
	if target.Address != "" {
		ip := net.ParseIP(target.Address)
		if ip == nil {
			return virtplane.Errorf(virtplane.ErrInvalidArgument, "migration target address %q: want an IP address", target.Address)
		}
		host := ip.String()
		if ip.To4() == nil {
			host = "[" + host + "]"
		}
		// No port: the target libvirtd picks one from its migration range.
		params = append(params,
			typed("migrate_uri", *golibvirt.NewTypedParamValueString("tcp://" + host)),
			typed("listen_address", *golibvirt.NewTypedParamValueString(ip.String())))
	}
	if target.BandwidthMiBs > 0 {
		params = append(params, typed("bandwidth", *golibvirt.NewTypedParamValueUllong(target.BandwidthMiBs)))
	}
	dom, err := d.lookup(ctx, name)
	if err != nil {
		return err
	}
	if st, err := d.state(ctx, dom); err != nil {
		return err
	} else if st != vmm.StateRunning {
		return virtplane.Errorf(virtplane.ErrConflict, "vm %q is %s: cannot migrate", name, st)
	}
	flags := golibvirt.MigrateLive | golibvirt.MigratePeer2peer | golibvirt.MigratePersistDest | golibvirt.MigrateUndefineSource
	if target.AllowUnsafe {
		flags |= golibvirt.MigrateUnsafe
	}
	if len(target.Disks) > 0 {
		xml, err := d.destinationXML(ctx, dom, name, target.Disks)
		if err != nil {
			return err
		}
		// QEMU mirrors the listed disks into the target's volumes over NBD
		// while memory is copied; the others (the cloud-init seed) must be
		// where the domain says on the target too.
		flags |= golibvirt.MigrateNonSharedDisk
		params = append(params, typed("destination_xml", *golibvirt.NewTypedParamValueString(xml)))
		for _, t := range slices.Sorted(maps.Keys(target.Disks)) {
			params = append(params, typed("migrate_disks", *golibvirt.NewTypedParamValueString(t)))
		}
	}
	lv, err := d.conn(ctx)
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := lv.DomainMigratePerform3Params(dom, golibvirt.OptString{target.URI}, params, nil, flags)
		done <- err
	}()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			return classify("migrate "+name, err, lv)
		case <-ctx.Done():
			_ = do(context.WithoutCancel(ctx), d, "abort migration of "+name, false, func(lv *golibvirt.Libvirt) error { return lv.DomainAbortJob(dom) })
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return virtplane.Errorf(virtplane.ErrTimeout, "migration of %q aborted at the deadline", name)
			}
			return virtplane.Errorf(virtplane.ErrCanceled, "migration of %q aborted: %v", name, ctx.Err())
		case <-tick.C:
			if progress == nil {
				continue
			}
			jctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			p, err := call(jctx, d, "job info", true, func(lv *golibvirt.Libvirt) (vmm.MigrationProgress, error) {
				typ, _, _, total, processed, remaining, _, _, _, _, _, _, err := lv.DomainGetJobInfo(dom)
				if typ == 0 { // no job (not started yet, or finished)
					return vmm.MigrationProgress{}, errNoJob
				}
				return vmm.MigrationProgress{DataTotal: total, DataProcessed: processed, DataRemaining: remaining}, err
			})
			cancel()
			if err == nil {
				p.Elapsed = time.Since(start)
				progress(p)
			}
		}
	}
}

var errNoJob = errors.New("no job")

// AbortMigration aborts the domain's outgoing migration job
// (virDomainAbortJob) and waits until libvirt reports it ended. A job of
// another kind (a save, a dump) is left alone. The abort is repeated every
// second while the job runs: an abort that arrives before QEMU started to
// migrate can be lost. A domain that disappears meanwhile completed its
// migration before the abort took hold (it was undefined here).
func (d *Driver) AbortMigration(ctx context.Context, name string) error {
	dom, err := d.lookup(ctx, name)
	if err != nil {
		return err
	}
	ctx, cancel := d.withDeadline(ctx)
	defer cancel()
	var aborted time.Time
	for {
		out, err := d.migratingOut(ctx, dom)
		switch {
		case errors.Is(err, virtplane.ErrNotFound):
			return nil
		case err != nil:
			return err
		case !out:
			return nil
		}
		if time.Since(aborted) >= time.Second {
			err := do(ctx, d, "abort migration of "+name, false, func(lv *golibvirt.Libvirt) error { return lv.DomainAbortJob(dom) })
			// "no job is active" (it ended meanwhile) is an invalid
			// operation, and a domain gone completed its migration: the
			// next look tells.
			if err != nil && !errors.Is(err, virtplane.ErrConflict) && !errors.Is(err, virtplane.ErrNotFound) {
				return err
			}
			aborted = time.Now()
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return virtplane.Errorf(virtplane.ErrTimeout, "migration of %q still runs at the deadline after an abort", name)
			}
			return virtplane.Errorf(virtplane.ErrCanceled, "abort migration of %q: %v", name, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// migratingOut tells whether the domain has an active outgoing migration
// job. A libvirt too old to name the job's operation (before 3.3) has every
// active job taken for one.
func (d *Driver) migratingOut(ctx context.Context, dom golibvirt.Domain) (bool, error) {
	return call(ctx, d, "job stats of "+dom.Name, true, func(lv *golibvirt.Libvirt) (bool, error) {
		typ, params, err := lv.DomainGetJobStats(dom, 0)
		if err != nil {
			return false, err
		}
		if typ != int32(golibvirt.DomainJobBounded) && typ != int32(golibvirt.DomainJobUnbounded) {
			return false, nil
		}
		for _, p := range params {
			if p.Field == golibvirt.DomainJobOperationStr {
				op, ok := p.Value.I.(int32)
				return !ok || op == int32(golibvirt.DomainJobOperationStrMigrationOut), nil
			}
		}
		return true, nil
	})
}

// destinationXML is the running domain's definition with the disks in
// moved on their new sources, for a migration that copies them.
func (d *Driver) destinationXML(ctx context.Context, dom golibvirt.Domain, name string, moved map[string]vmm.DiskSource) (string, error) {
	x, err := call(ctx, d, "get migratable xml of "+name, true, func(lv *golibvirt.Libvirt) (string, error) {
		return lv.DomainGetXMLDesc(dom, golibvirt.DomainXMLSecure|golibvirt.DomainXMLMigratable)
	})
	if err != nil {
		return "", err
	}
	var def libvirtxml.Domain
	if err := def.Unmarshal(x); err != nil {
		return "", fmt.Errorf("libvirt: parse domain xml of %s: %w", name, err)
	}
	for t, src := range moved {
		if err := src.Validate("migration disks[" + t + "]"); err != nil {
			return "", err
		}
		var dd *libvirtxml.DomainDisk
		if def.Devices != nil {
			for i := range def.Devices.Disks {
				if tg := def.Devices.Disks[i].Target; tg != nil && tg.Dev == t {
					dd = &def.Devices.Disks[i]
				}
			}
		}
		if dd == nil {
			return "", virtplane.Errorf(virtplane.ErrInvalidArgument, "migration disks: vm %q has no disk %q", name, t)
		}
		rd, err := renderDisk(vmm.Disk{Target: t, Source: src}, vmm.DiskLimits{})
		if err != nil {
			return "", err
		}
		// The copy is a whole disk: it has no backing chain of its own.
		dd.Source, dd.BackingStore = rd.Source, nil
		if dd.Driver == nil {
			dd.Driver = rd.Driver
		}
		dd.Driver.Type = rd.Driver.Type
	}
	return def.Marshal()
}

func (d *Driver) agent(ctx context.Context, dom golibvirt.Domain, cmd any) (json.RawMessage, error) {
	b, err := json.Marshal(cmd)
	if err != nil {
		return nil, err
	}
	out, err := call(ctx, d, "guest agent", false, func(lv *golibvirt.Libvirt) (golibvirt.OptString, error) {
		return lv.QEMUDomainAgentCommand(dom, string(b), 5, 0)
	})
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, virtplane.Errorf(virtplane.ErrUnavailable, "guest agent: empty answer")
	}
	var resp struct {
		Return json.RawMessage `json:"return"`
	}
	if err := json.Unmarshal([]byte(out[0]), &resp); err != nil {
		return nil, fmt.Errorf("guest agent: %w", err)
	}
	return resp.Return, nil
}

// GuestExec runs argv through the guest agent and waits for it to exit.
func (d *Driver) GuestExec(ctx context.Context, name string, argv []string) (vmm.ExecResult, error) {
	if len(argv) == 0 || argv[0] == "" {
		return vmm.ExecResult{}, virtplane.Errorf(virtplane.ErrInvalidArgument, "argv: empty")
	}
	dom, err := d.lookup(ctx, name)
	if err != nil {
		return vmm.ExecResult{}, err
	}
	raw, err := d.agent(ctx, dom, map[string]any{"execute": "guest-exec", "arguments": map[string]any{"path": argv[0], "arg": argv[1:], "capture-output": true}})
	if err != nil {
		return vmm.ExecResult{}, err
	}
	var started struct {
		PID int `json:"pid"`
	}
	if err := json.Unmarshal(raw, &started); err != nil {
		return vmm.ExecResult{}, fmt.Errorf("guest-exec: %w", err)
	}
	for {
		raw, err := d.agent(ctx, dom, map[string]any{"execute": "guest-exec-status", "arguments": map[string]any{"pid": started.PID}})
		if err != nil {
			return vmm.ExecResult{}, err
		}
		var st struct {
			Exited   bool   `json:"exited"`
			ExitCode int    `json:"exitcode"`
			OutData  string `json:"out-data"`
			ErrData  string `json:"err-data"`
		}
		if err := json.Unmarshal(raw, &st); err != nil {
			return vmm.ExecResult{}, fmt.Errorf("guest-exec-status: %w", err)
		}
		if st.Exited {
			res := vmm.ExecResult{ExitCode: st.ExitCode}
			res.Stdout, _ = base64.StdEncoding.DecodeString(st.OutData)
			res.Stderr, _ = base64.StdEncoding.DecodeString(st.ErrData)
			return res, nil
		}
		select {
		case <-ctx.Done():
			return vmm.ExecResult{}, virtplane.Errorf(virtplane.ErrTimeout, "guest-exec %s: %v", argv[0], ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// GuestAddresses asks the guest agent for the guest's interfaces.
func (d *Driver) GuestAddresses(ctx context.Context, name string) ([]vmm.GuestInterface, error) {
	dom, err := d.lookup(ctx, name)
	if err != nil {
		return nil, err
	}
	ifs, err := call(ctx, d, "guest addresses of "+name, true, func(lv *golibvirt.Libvirt) ([]golibvirt.DomainInterface, error) {
		return lv.DomainInterfaceAddresses(dom, uint32(golibvirt.DomainInterfaceAddressesSrcAgent), 0)
	})
	if err != nil {
		return nil, err
	}
	out := make([]vmm.GuestInterface, 0, len(ifs))
	for _, i := range ifs {
		gi := vmm.GuestInterface{Name: i.Name}
		if len(i.Hwaddr) > 0 {
			gi.MAC = i.Hwaddr[0]
		}
		for _, a := range i.Addrs {
			gi.Addresses = append(gi.Addresses, fmt.Sprintf("%s/%d", a.Addr, a.Prefix))
		}
		out = append(out, gi)
	}
	return out, nil
}

// SetGuestPassword sets a guest user's password through the agent.
func (d *Driver) SetGuestPassword(ctx context.Context, name, user, password string) error {
	if err := vmm.CheckName("user", user); err != nil {
		return err
	}
	if err := vmm.CheckPassword("password", password); err != nil {
		return err
	}
	dom, err := d.lookup(ctx, name)
	if err != nil {
		return err
	}
	return do(ctx, d, "set guest password on "+name, false, func(lv *golibvirt.Libvirt) error {
		return lv.DomainSetUserPassword(dom, golibvirt.OptString{user}, golibvirt.OptString{password}, 0)
	})
}

// Usage reads CPU time, memory and per-device counters of a running domain.
func (d *Driver) Usage(ctx context.Context, name string) (vmm.Usage, error) {
	dom, err := d.lookup(ctx, name)
	if err != nil {
		return vmm.Usage{}, err
	}
	type info struct {
		cpu, mem uint64
		rss      uint64
	}
	in, err := call(ctx, d, "usage of "+name, true, func(lv *golibvirt.Libvirt) (info, error) {
		_, _, mem, _, cpu, err := lv.DomainGetInfo(dom)
		if err != nil {
			return info{}, err
		}
		out := info{cpu: cpu, mem: mem}
		if stats, err := lv.DomainMemoryStats(dom, 13, 0); err == nil {
			for _, s := range stats {
				if s.Tag == int32(golibvirt.DomainMemoryStatRss) {
					out.rss = s.Val
				}
			}
		}
		return out, nil
	})
	if err != nil {
		return vmm.Usage{}, err
	}
	u := vmm.Usage{CPUTime: time.Duration(in.cpu), MemoryBytes: in.mem << 10}
	if in.rss > 0 {
		u.MemoryBytes = in.rss << 10
	}
	x, err := d.domainXML(ctx, dom, false)
	if err != nil {
		return vmm.Usage{}, err
	}
	var def libvirtxml.Domain
	if err := def.Unmarshal(x); err != nil {
		return vmm.Usage{}, err
	}
	if def.ID == nil || def.Devices == nil {
		return u, nil
	}
	for _, dd := range def.Devices.Disks {
		if dd.Target == nil || dd.Device == "cdrom" {
			continue
		}
		t := dd.Target.Dev
		du, err := call(ctx, d, "block stats", true, func(lv *golibvirt.Libvirt) (vmm.DiskUsage, error) {
			rr, rb, wr, wb, _, err := lv.DomainBlockStats(dom, t)
			return vmm.DiskUsage{Target: t, ReadRequests: uint64(rr), ReadBytes: uint64(rb), WriteRequests: uint64(wr), WriteBytes: uint64(wb)}, err
		})
		if err != nil {
			return vmm.Usage{}, err
		}
		u.Disks = append(u.Disks, du)
	}
	for _, iface := range def.Devices.Interfaces {
		if iface.Target == nil || iface.MAC == nil {
			continue
		}
		dev, mac := iface.Target.Dev, strings.ToLower(iface.MAC.Address)
		nu, err := call(ctx, d, "interface stats", true, func(lv *golibvirt.Libvirt) (vmm.NICUsage, error) {
			rb, rp, _, _, tb, tp, _, _, err := lv.DomainInterfaceStats(dom, dev)
			return vmm.NICUsage{MAC: mac, RxBytes: uint64(rb), RxPackets: uint64(rp), TxBytes: uint64(tb), TxPackets: uint64(tp)}, err
		})
		if err != nil {
			return vmm.Usage{}, err
		}
		u.NICs = append(u.NICs, nu)
	}
	return u, nil
}
