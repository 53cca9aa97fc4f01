package libvirt

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/internal/revert"
	"github.com/virtplane/virtplane/vmm"
	"github.com/virtplane/virtplane/vmm/cloudinit"
)

func stateOf(s int32) vmm.State {
	switch golibvirt.DomainState(s) {
	case golibvirt.DomainRunning, golibvirt.DomainBlocked, golibvirt.DomainShutdown:
		return vmm.StateRunning
	case golibvirt.DomainPaused, golibvirt.DomainPmsuspended:
		return vmm.StatePaused
	case golibvirt.DomainShutoff:
		return vmm.StateStopped
	case golibvirt.DomainCrashed:
		return vmm.StateCrashed
	}
	return vmm.StateUnknown
}

func (d *Driver) lookup(ctx context.Context, name string) (golibvirt.Domain, error) {
	if !vmm.ValidName(name) {
		// An invalid name cannot exist; say so without asking libvirt.
		return golibvirt.Domain{}, virtplane.Errorf(virtplane.ErrNotFound, "vm %q", name)
	}
	return call(ctx, d, "lookup "+name, true, func(lv *golibvirt.Libvirt) (golibvirt.Domain, error) {
		return lv.DomainLookupByName(name)
	})
}

func (d *Driver) state(ctx context.Context, dom golibvirt.Domain) (vmm.State, error) {
	return call(ctx, d, "get state of "+dom.Name, true, func(lv *golibvirt.Libvirt) (vmm.State, error) {
		s, _, err := lv.DomainGetState(dom, 0)
		return stateOf(s), err
	})
}

// domainXML returns the live definition (or, with inactive, the persistent one).
func (d *Driver) domainXML(ctx context.Context, dom golibvirt.Domain, inactive bool) (string, error) {
	flags := golibvirt.DomainXMLSecure
	if inactive {
		flags |= golibvirt.DomainXMLInactive
	}
	return call(ctx, d, "get xml of "+dom.Name, true, func(lv *golibvirt.Libvirt) (string, error) {
		return lv.DomainGetXMLDesc(dom, flags)
	})
}

// Create writes the seed (when the spec has cloud-init data) and defines
// the domain.
func (d *Driver) Create(ctx context.Context, spec vmm.Spec) (vmm.VM, error) {
	if err := spec.Validate(); err != nil {
		return vmm.VM{}, err
	}
	if spec.Image != "" {
		return vmm.VM{}, virtplane.Errorf(virtplane.ErrInvalidArgument, "image %q: the libvirt driver boots from disks, not images", spec.Image)
	}
	spec = spec.Normalize()
	if _, err := d.lookup(ctx, spec.Name); err == nil {
		return vmm.VM{}, virtplane.Errorf(virtplane.ErrAlreadyExists, "vm %q", spec.Name)
	} else if !virtplaneIs(err, virtplane.ErrNotFound) {
		return vmm.VM{}, err
	}
	r := revert.New()
	defer r.Fail()
	dir := d.vmDir(spec.Name)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return vmm.VM{}, err
	}
	r.Add(func() { _ = os.RemoveAll(dir) })
	seed, err := writeSeed(dir, spec.CloudInit)
	if err != nil {
		return vmm.VM{}, err
	}
	values, err := d.resolvedValues(ctx)
	if err != nil {
		return vmm.VM{}, err
	}
	dom, err := render(spec, values, seed, d.ConsoleLog(spec.Name))
	if err != nil {
		return vmm.VM{}, err
	}
	roots := d.diskRoots
	if len(roots) == 0 {
		roots = diskRootsOf(spec)
	}
	if err := applyTemplate(spec.Template, dom, roots); err != nil {
		return vmm.VM{}, err
	}
	if d.editor != nil {
		if err := d.editor(spec, dom); err != nil {
			return vmm.VM{}, virtplane.Errorf(virtplane.ErrInvalidArgument, "domain editor: %v", err)
		}
	}
	x, err := dom.Marshal()
	if err != nil {
		return vmm.VM{}, err
	}
	if err := d.define(ctx, x); err != nil {
		return vmm.VM{}, err
	}
	r.Success()
	return d.Get(ctx, spec.Name)
}

func (d *Driver) define(ctx context.Context, x string) error {
	return do(ctx, d, "define", false, func(lv *golibvirt.Libvirt) error {
		_, err := lv.DomainDefineXMLFlags(x, golibvirt.DomainDefineValidate)
		return err
	})
}

// Start boots the domain.
func (d *Driver) Start(ctx context.Context, name string) error {
	dom, err := d.lookup(ctx, name)
	if err != nil {
		return err
	}
	return do(ctx, d, "start "+name, false, func(lv *golibvirt.Libvirt) error { return lv.DomainCreate(dom) })
}

// Shutdown sends an ACPI power-button press and polls until the domain is
// off or timeout passes.
func (d *Driver) Shutdown(ctx context.Context, name string, timeout time.Duration) error {
	dom, err := d.lookup(ctx, name)
	if err != nil {
		return err
	}
	if err := do(ctx, d, "shutdown "+name, false, func(lv *golibvirt.Libvirt) error { return lv.DomainShutdown(dom) }); err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	for {
		st, err := d.state(ctx, dom)
		if err != nil && !virtplaneIs(err, virtplane.ErrNotFound) {
			return err
		}
		if st == vmm.StateStopped || err != nil {
			return nil
		}
		if time.Now().After(deadline) {
			return virtplane.Errorf(virtplane.ErrTimeout, "vm %q did not shut down within %s", name, timeout)
		}
		select {
		case <-ctx.Done():
			return virtplane.Errorf(virtplane.ErrCanceled, "shutdown of %q: %v", name, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Stop destroys (powers off) the domain.
func (d *Driver) Stop(ctx context.Context, name string) error {
	dom, err := d.lookup(ctx, name)
	if err != nil {
		return err
	}
	return do(ctx, d, "stop "+name, false, func(lv *golibvirt.Libvirt) error { return lv.DomainDestroyFlags(dom, 0) })
}

// Reboot resets the domain like the reset button: it works for every guest,
// including those that ignore ACPI. A guest-aware restart is Shutdown + Start.
func (d *Driver) Reboot(ctx context.Context, name string) error {
	dom, err := d.lookup(ctx, name)
	if err != nil {
		return err
	}
	return do(ctx, d, "reset "+name, false, func(lv *golibvirt.Libvirt) error { return lv.DomainReset(dom, 0) })
}

// Suspend pauses the domain's CPUs.
func (d *Driver) Suspend(ctx context.Context, name string) error {
	dom, err := d.lookup(ctx, name)
	if err != nil {
		return err
	}
	if st, err := d.state(ctx, dom); err != nil {
		return err
	} else if st != vmm.StateRunning {
		return virtplane.Errorf(virtplane.ErrConflict, "vm %q is %s: cannot suspend", name, st)
	}
	return do(ctx, d, "suspend "+name, false, func(lv *golibvirt.Libvirt) error { return lv.DomainSuspend(dom) })
}

// Resume continues a paused domain.
func (d *Driver) Resume(ctx context.Context, name string) error {
	dom, err := d.lookup(ctx, name)
	if err != nil {
		return err
	}
	if st, err := d.state(ctx, dom); err != nil {
		return err
	} else if st != vmm.StatePaused {
		return virtplane.Errorf(virtplane.ErrConflict, "vm %q is %s: cannot resume", name, st)
	}
	return do(ctx, d, "resume "+name, false, func(lv *golibvirt.Libvirt) error { return lv.DomainResume(dom) })
}

// Delete removes the snapshots (from the qcow2 images too), the definition
// and the driver's files of a stopped domain.
func (d *Driver) Delete(ctx context.Context, name string) error {
	dom, err := d.lookup(ctx, name)
	if err != nil {
		return err
	}
	st, err := d.state(ctx, dom)
	if err != nil {
		return err
	}
	if st != vmm.StateStopped && st != vmm.StateCrashed {
		return virtplane.Errorf(virtplane.ErrConflict, "vm %q is %s: cannot delete", name, st)
	}
	snaps, err := d.ListSnapshots(ctx, name)
	if err != nil {
		return err
	}
	for i := len(snaps) - 1; i >= 0; i-- {
		if err := d.DeleteSnapshot(ctx, name, snaps[i].Name); err != nil {
			return err
		}
	}
	if err := do(ctx, d, "undefine "+name, false, func(lv *golibvirt.Libvirt) error {
		return lv.DomainUndefineFlags(dom, golibvirt.DomainUndefineSnapshotsMetadata|golibvirt.DomainUndefineManagedSave|golibvirt.DomainUndefineNvram)
	}); err != nil {
		return err
	}
	return os.RemoveAll(d.vmDir(name))
}

// Get returns the domain's state and its definition (live when running).
func (d *Driver) Get(ctx context.Context, name string) (vmm.VM, error) {
	dom, err := d.lookup(ctx, name)
	if err != nil {
		return vmm.VM{}, err
	}
	return d.get(ctx, dom)
}

func (d *Driver) get(ctx context.Context, dom golibvirt.Domain) (vmm.VM, error) {
	st, err := d.state(ctx, dom)
	if err != nil {
		return vmm.VM{}, err
	}
	x, err := d.domainXML(ctx, dom, false)
	if err != nil {
		return vmm.VM{}, err
	}
	vm, _, _, err := parse(x)
	if err != nil {
		return vmm.VM{}, err
	}
	vm.State = st
	return vm, nil
}

// List returns every domain of the connection.
func (d *Driver) List(ctx context.Context) ([]vmm.VM, error) {
	doms, err := call(ctx, d, "list", true, func(lv *golibvirt.Libvirt) ([]golibvirt.Domain, error) {
		doms, _, err := lv.ConnectListAllDomains(1, 0)
		return doms, err
	})
	if err != nil {
		return nil, err
	}
	out := make([]vmm.VM, 0, len(doms))
	for _, dom := range doms {
		vm, err := d.get(ctx, dom)
		if virtplaneIs(err, virtplane.ErrNotFound) {
			continue // undefined meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, vm)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// writeSeed writes the cloud-init seed of a machine into its directory dir
// and returns its path; "" when the machine has no cloud-init data.
func writeSeed(dir string, ci *vmm.CloudInit) (string, error) {
	if ci == nil {
		return "", nil
	}
	seed := filepath.Join(dir, "seed.iso")
	img, err := cloudinit.ISO(cloudinit.Seed{UserData: ci.UserData, MetaData: ci.MetaData, NetworkConfig: ci.NetworkConfig})
	if err != nil {
		return "", err
	}
	return seed, os.WriteFile(seed, img, 0o640)
}

// incomingMark is the file PrepareIncoming leaves in a machine directory
// it made: only such a directory is DiscardIncoming's to remove.
const incomingMark = ".incoming"

// PrepareIncoming implements vmm.IncomingPreparer: the machine's directory
// (where QEMU on this node writes its console log) and its seed. A
// directory that is there already (drivers of one host sharing a state
// directory: the source's own files) is left as it is.
func (d *Driver) PrepareIncoming(ctx context.Context, spec vmm.Spec) error {
	if err := spec.Validate(); err != nil {
		return err
	}
	spec = spec.Normalize()
	if _, err := d.lookup(ctx, spec.Name); err == nil {
		return virtplane.Errorf(virtplane.ErrAlreadyExists, "vm %q", spec.Name)
	} else if !virtplaneIs(err, virtplane.ErrNotFound) {
		return err
	}
	dir := d.vmDir(spec.Name)
	if err := os.Mkdir(dir, 0o750); errors.Is(err, fs.ErrExist) {
		return nil
	} else if err != nil {
		return virtplane.Errorf(virtplane.ErrUnavailable, "vm %q: %v", spec.Name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, incomingMark), nil, 0o640); err != nil {
		_ = os.RemoveAll(dir)
		return virtplane.Errorf(virtplane.ErrUnavailable, "vm %q: %v", spec.Name, err)
	}
	if _, err := writeSeed(dir, spec.CloudInit); err != nil {
		_ = os.RemoveAll(dir)
		return err
	}
	return nil
}

// DiscardIncoming implements vmm.IncomingPreparer: it removes a directory
// PrepareIncoming made, while no machine of that name is defined here.
func (d *Driver) DiscardIncoming(ctx context.Context, name string) error {
	if _, err := d.lookup(ctx, name); err == nil {
		return virtplane.Errorf(virtplane.ErrConflict, "vm %q arrived: its files stay", name)
	} else if !virtplaneIs(err, virtplane.ErrNotFound) {
		return err
	}
	dir := d.vmDir(name)
	if _, err := os.Stat(filepath.Join(dir, incomingMark)); err != nil {
		return nil // not made by PrepareIncoming
	}
	return os.RemoveAll(dir)
}
