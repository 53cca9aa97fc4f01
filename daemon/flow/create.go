package flow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/virtplane/virtplane/network/ipam"
	"github.com/virtplane/virtplane/scheduler"
	"github.com/virtplane/virtplane/storage"
	"github.com/virtplane/virtplane/vmm"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/node"
	"github.com/virtplane/virtplane/daemon/store"
	"github.com/virtplane/virtplane/daemon/tasks"
	netport "github.com/virtplane/virtplane/network/port"
)

// ensureImage makes sure the node's pool holds the image's base volume.
// On a simulated node the base is an empty volume of the image's size; on a
// real node the image must have been imported into the pool (the storage
// Importer), and a missing base is an error.
func (f *Flow) ensureImage(ctx context.Context, pool storage.Pool, imageID string) error {
	name := ImageVolume(imageID)
	_, err := pool.Volume(ctx, name)
	if err == nil || !errors.Is(err, virtplane.ErrNotFound) {
		return err
	}
	info, err := pool.Info(ctx)
	if err != nil {
		return err
	}
	if info.Driver != "fake" {
		return virtplane.Errorf(virtplane.ErrNotFound, "image %s is not imported into pool %s (volume %s): import it into the node first (POST /v1/images/%s/import)", imageID, info.Name, name, imageID)
	}
	img, err := load[model.Image](ctx, f.cfg.Store, store.KindImage, imageID)
	if err != nil {
		return err
	}
	size := max(img.SizeMiB, 1024) << 20
	_, err = pool.Create(ctx, storage.VolumeSpec{Name: name, Size: size, Format: storage.FormatQcow2})
	if errors.Is(err, virtplane.ErrAlreadyExists) {
		return nil // a concurrent create made it
	}
	return err
}

func (f *Flow) createVM(ctx context.Context, r *tasks.Run) error {
	var in VMInput
	if err := r.Input(&in); err != nil {
		return err
	}
	vm, err := f.loadVM(ctx, in.VMID)
	if err != nil {
		return err
	}
	if f.cfg.IPAM == nil {
		return virtplane.Errorf(virtplane.ErrNotImplemented, "no IPAM is configured")
	}
	args := vmArgs{VMID: vm.ID, ClusterID: vm.ClusterID}

	var placement scheduler.Placement
	// The reservation lives in this process only: its undo need not be stored.
	if err := r.Step(ctx, "reserve capacity", tasks.VolatileUndo(func(ctx context.Context) error { return f.releaseReservation(args) }), func(ctx context.Context) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		s, err := f.schedulerFor(ctx, vm.ClusterID)
		if err != nil {
			return err
		}
		req := request(vm)
		if vm.CloneOf != "" {
			// A clone's disk is copied on its source's node.
			src, err := f.loadVM(ctx, vm.CloneOf)
			if err != nil {
				return err
			}
			req.Node = src.NodeID
		}
		res, err := s.Reserve(req, time.Now().Add(time.Hour))
		if err != nil {
			return err
		}
		f.pending[vm.ID] = res.ID
		placement = res.Placement
		return nil
	}); err != nil {
		return err
	}
	args.NodeID = placement.Node
	_ = r.Progress(ctx, 20, "placed on node "+placement.Node)
	var dataDisks []model.Disk
	// The root disk's storage, before the undos are journaled: the
	// volume's undo names it. A container's root is its hypervisor's.
	if err := r.Step(ctx, "choose storage", tasks.NoUndo, func(ctx context.Context) error {
		drv, err := f.nodeDriver(ctx, placement.Node)
		if err != nil {
			return err
		}
		if _, rooted := vmm.As[vmm.ImageRooted](drv); rooted {
			if len(vm.Disks) > 0 {
				return virtplane.Errorf(virtplane.ErrNotImplemented, "node %s keeps containers: data disks are for virtual machines", placement.Node)
			}
			return nil
		}
		if args.Storage, err = f.chooseStorage(ctx, vm, placement.Node, vm.DiskGiB<<30); err != nil {
			return err
		}
		dataDisks, err = f.placeDataDisks(ctx, vm, placement.Node)
		return err
	}); err != nil {
		return err
	}

	// The undos of the steps below, recorded in one write: each is
	// idempotent and does nothing for a step that never acted.
	undos := []tasks.Undo{tasks.UndoAction(undoAddresses, args), tasks.UndoAction(undoVolume, args)}
	for _, d := range dataDisks {
		undos = append(undos, tasks.UndoAction(undoVolume, vmArgs{VMID: vm.ID, ClusterID: vm.ClusterID, NodeID: placement.Node, Storage: d.Storage, Volume: d.Volume}))
	}
	undos = append(undos, tasks.UndoAction(undoPort, args), tasks.UndoAction(undoDomain, args))
	if err := r.Journal(ctx, undos...); err != nil {
		return err
	}
	var addrs []ipam.Allocation
	if err := r.Step(ctx, "allocate address", tasks.NoUndo, func(ctx context.Context) error {
		var err error
		addrs, err = f.allocate(ctx, r, vm, placement.Node, in.Address)
		return err
	}); err != nil {
		return err
	}
	_ = r.Progress(ctx, 40, "address "+allocationsString(addrs))

	// The port is known before the disk is made: a cluster or node whose
	// network settings cannot give the VM a port fails the create here.
	cluster, err := f.cluster(ctx, vm.ClusterID)
	if err != nil {
		return err
	}
	node, err := f.node(ctx, placement.Node)
	if err != nil {
		return err
	}
	nodes, err := f.clusterNodes(ctx, cluster)
	if err != nil {
		return err
	}
	port, err := portSpec(vm, cluster, node, nodes, addrs...)
	if err != nil {
		return err
	}

	drv, err := f.nodeDriver(ctx, placement.Node)
	if err != nil {
		return err
	}
	spec := vmm.Spec{Name: DomainName(vm.ID), VCPUs: vm.CPUs, MemoryMiB: vm.MemoryMiB, Limits: specLimits(vm)}
	var disk storage.Volume
	if _, rooted := vmm.As[vmm.ImageRooted](drv); rooted {
		// A container: the hypervisor makes its root from the image.
		img, err := load[model.Image](ctx, f.cfg.Store, store.KindImage, vm.ImageID)
		if err != nil {
			return err
		}
		if img.LXDAlias == "" {
			return virtplane.Errorf(virtplane.ErrInvalidArgument, "image %s has no lxd_alias: node %s makes containers from images its LXD holds", img.ID, node.Name)
		}
		spec.Image = img.LXDAlias
	} else if disk, err = f.cloneRoot(ctx, r, vm, placement.Node, args.Storage); err != nil {
		return err
	} else {
		spec.Disks = []vmm.Disk{{Target: rootTarget, Source: vmm.DiskSource(disk.Attachment)}}
		for _, d := range dataDisks {
			if err := r.Step(ctx, fmt.Sprintf("make volume %s (%d GiB) in storage %s", d.Volume, d.SizeGiB, d.Storage), tasks.NoUndo, func(ctx context.Context) error {
				dd, err := f.makeDataVolume(ctx, placement.Node, d, vm.CloneOf)
				if err == nil {
					spec.Disks = append(spec.Disks, dd)
				}
				return err
			}); err != nil {
				return err
			}
		}
		// A machine's graphics and domain template; containers have neither.
		spec.Console = consoleSpec(vm)
		if err := f.applyTemplate(ctx, &spec, in.Template); err != nil {
			return err
		}
		_ = r.Progress(ctx, 60, "disk "+disk.Name+" in storage "+args.Storage)
	}

	ports, err := f.nodePorts(ctx, placement.Node)
	if err != nil {
		return err
	}
	// The port is ready before the domain exists: its bridge, and its
	// firewall, which the kernel hooks to the tap once the hypervisor
	// makes it. What needs the tap (shaping, routes) follows the start.
	if err := r.Step(ctx, "prepare network port", tasks.NoUndo, func(ctx context.Context) error {
		return ports.Setup(ctx, port)
	}); err != nil {
		return err
	}
	_ = r.Progress(ctx, 70, port.String())

	spec.CloudInit = cloudInit(vm, in.UserData, addrs, port.Mode)
	spec.NICs = []vmm.NIC{nic(port)}
	if err := r.Step(ctx, "define domain", tasks.NoUndo, func(ctx context.Context) error {
		_, err := drv.Create(ctx, spec)
		return err
	}); err != nil {
		return err
	}
	_ = r.Progress(ctx, 80, "defined")
	if err := r.Step(ctx, "start domain", tasks.NoUndo, func(ctx context.Context) error {
		if err := drv.Start(ctx, spec.Name); err != nil {
			return err
		}
		// The tap exists now: the port completes (enslaved, shaped). One
		// step with the start, whose undo is the domain's and the port's.
		return ports.Setup(ctx, port)
	}); err != nil {
		return err
	}
	p := vmPatch{State: model.VMRunning, NodeID: placement.Node, Volume: disk.Name, Storage: args.Storage, Addresses: addressStrings(addrs)}
	if len(dataDisks) > 0 {
		p.Disks = &dataDisks
	}
	return r.SetResult(p)
}

// cloneRoot makes a VM's root disk on its node, in the storage chosen for
// it: a linked clone of its image's base where the storage clones (the
// base copied into it first when the image was imported elsewhere), a full
// copy of the base where it does not; then grown to the VM's disk size.
func (f *Flow) cloneRoot(ctx context.Context, r *tasks.Run, vm model.VM, nodeID, storageName string) (storage.Volume, error) {
	n, b, err := f.backend(ctx, nodeID)
	if err != nil {
		return storage.Volume{}, err
	}
	images, err := f.diskPool(ctx, n, b)
	if err != nil {
		return storage.Volume{}, err
	}
	c, err := f.cluster(ctx, n.ClusterID)
	if err != nil {
		return storage.Volume{}, err
	}
	pool, same := images, storageName == "" || storageName == imageStorage(c)
	if !same {
		if pool, err = f.vmPool(ctx, nodeID, storageName); err != nil {
			return storage.Volume{}, err
		}
	}
	want := vm.DiskGiB << 30
	var disk storage.Volume
	if vm.CloneOf != "" {
		err = r.Step(ctx, "copy the disk of vm "+vm.CloneOf, tasks.NoUndo, func(ctx context.Context) error {
			src, _, err := f.stoppedVM(ctx, vm.CloneOf)
			if err != nil {
				return err
			}
			if !sameDisks(src, vm) {
				return virtplane.Errorf(virtplane.ErrConflict, "vm %s changed its data disks meanwhile: clone it again", src.ID)
			}
			if src.NodeID != nodeID {
				return virtplane.Errorf(virtplane.ErrConflict, "vm %s moved to node %s meanwhile", src.ID, src.NodeID)
			}
			from, err := f.vmPool(ctx, src.NodeID, src.Storage)
			if err != nil {
				return err
			}
			if b.Exec == nil {
				return node.NotOffered(n, "no storage command executor")
			}
			disk, err = storage.CopyVolumeSized(ctx, b.Exec, from, VolumeName(src.ID), pool, VolumeName(vm.ID), max(want, src.DiskGiB<<30))
			return err
		})
		return disk, err
	}
	err = r.Step(ctx, "clone image", tasks.NoUndo, func(ctx context.Context) error {
		cl, linked := storage.As[storage.Cloner](pool)
		if !linked {
			// No linked clones here (thick LVM, a LUN): a full copy.
			if err := f.ensureImage(ctx, images, vm.ImageID); err != nil {
				return err
			}
			if b.Exec == nil {
				return node.NotOffered(n, "no storage command executor")
			}
			base, err := images.Volume(ctx, ImageVolume(vm.ImageID))
			if err != nil {
				return err
			}
			disk, err = storage.CopyVolumeSized(ctx, b.Exec, images, base.Name, pool, VolumeName(vm.ID), max(want, base.Capacity))
			return err
		}
		baseNode := nodeID
		if ref, ok := c.Storage(storageName); ok && f.IsShared(b, ref.Driver) {
			baseNode = "" // one base for the cluster
		}
		if err := f.baseIn(ctx, b.Exec, images, pool, same, baseNode, storageName, vm.ImageID); err != nil {
			return err
		}
		var err error
		if disk, err = cl.Clone(ctx, ImageVolume(vm.ImageID), VolumeName(vm.ID), storage.CloneLinked); err != nil {
			return err
		}
		if want > disk.Capacity {
			rz, ok := storage.As[storage.Resizer](pool)
			if !ok {
				return virtplane.Errorf(virtplane.ErrNotImplemented, "the node's storage cannot grow the disk to %d GiB", vm.DiskGiB)
			}
			disk, err = rz.Resize(ctx, disk.Name, want, storage.ResizeOptions{})
		}
		return err
	})
	return disk, err
}

// allocate takes the VM's addresses from its pool: one of any family, or
// with DualStack one IPv4 and one IPv6, IPv4 first. asked (an admin's
// choice) is the address of its family. Each is the VM's (owner), so the
// create's undo releases them all. An address of the node the VM goes to
// (one its facts listed when it was added) is never handed out: found on
// the way, it is excluded from the pool for good, and the next one taken.
func (f *Flow) allocate(ctx context.Context, r *tasks.Run, vm model.VM, nodeID, asked string) ([]ipam.Allocation, error) {
	n, err := f.node(ctx, nodeID)
	if err != nil {
		return nil, err
	}
	own := map[netip.Addr]bool{}
	for _, s := range n.Addresses {
		if a, err := netip.ParseAddr(s); err == nil {
			own[a.Unmap()] = true
		}
	}
	var want netip.Addr
	if asked != "" {
		// Checked by the API; parsed again for a task of an older daemon.
		if want, err = netip.ParseAddr(asked); err != nil {
			return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "address %q: %v", asked, err)
		}
		if own[want.Unmap()] {
			return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "address %s is node %s's own", want, n.Name)
		}
	}
	reqs := []ipam.Request{{Owner: ipam.Owner{VM: vm.ID, Interface: "eth0"}, Addr: want}}
	if vm.DualStack {
		reqs = []ipam.Request{
			{Owner: ipam.Owner{VM: vm.ID, Interface: "eth0"}, Family: ipam.IPv4},
			{Owner: ipam.Owner{VM: vm.ID, Interface: "eth0"}, Family: ipam.IPv6},
		}
		if want.IsValid() {
			reqs[map[bool]int{true: 0, false: 1}[want.Unmap().Is4()]].Addr = want
		}
	}
	var out []ipam.Allocation
	for _, req := range reqs {
		for tries := 0; ; tries++ {
			a, err := f.cfg.IPAM.Allocate(ctx, vm.PoolID, req)
			if err != nil {
				return nil, err
			}
			if !own[a.Addr()] {
				out = append(out, a)
				break
			}
			if tries == len(own) {
				return nil, virtplane.Errorf(virtplane.ErrConflict, "pool %s keeps handing out node %s's own address %s", vm.PoolID, n.Name, a.Addr())
			}
			if err := f.excludeOwn(ctx, vm.PoolID, a); err != nil {
				return nil, err
			}
			_ = r.Log(ctx, fmt.Sprintf("address %s is node %s's own: excluded from pool %s", a.Addr(), n.Name, vm.PoolID))
		}
	}
	return out, nil
}

// excludeOwn gives back an allocation of a node's own address and keeps
// the address out of the pool for good, in IPAM and in the pool's record
// (its block's excluded list shows it).
func (f *Flow) excludeOwn(ctx context.Context, poolID string, a ipam.Allocation) error {
	if err := f.cfg.IPAM.Release(ctx, poolID, a.Prefix); err != nil {
		return err
	}
	if err := f.cfg.IPAM.Exclude(ctx, poolID, a.Addr()); err != nil {
		return err
	}
	return f.cfg.Store.Update(ctx, func(tx store.Tx) error {
		o, err := tx.GetObject(ctx, store.KindPool, poolID)
		if err != nil {
			return err
		}
		var p model.IPPool
		if err := json.Unmarshal(o.Data, &p); err != nil {
			return err
		}
		if !p.ExcludeAddress(a.Addr()) {
			return nil // the block left the pool meanwhile
		}
		if o.Data, err = json.Marshal(p); err != nil {
			return err
		}
		return tx.UpdateObject(ctx, &o)
	})
}

func allocationsString(as []ipam.Allocation) string {
	return strings.Join(addressStrings(as), ", ")
}

func addressStrings(as []ipam.Allocation) []string {
	out := make([]string, 0, len(as))
	for _, a := range as {
		out = append(out, a.Addr().String())
	}
	return out
}

// cloudInit gives the guest its name, keys and static addresses (one, or
// an IPv4 and an IPv6 one), each family with its block's gateway. A routed
// guest gets its address alone (a /32 or /128) and its gateway on-link:
// every packet goes to the host, which holds the gateway on the tap and
// routes; neighbours in the block are not on the guest's link.
func cloudInit(vm model.VM, userData string, addrs []ipam.Allocation, mode string) *vmm.CloudInit {
	meta := fmt.Sprintf("instance-id: %s\nlocal-hostname: %s\n", vm.ID, vm.Name)
	if keys := vm.AuthorizedKeys(); len(keys) > 0 {
		meta += "public-keys:\n"
		for _, k := range keys {
			meta += "  - " + k + "\n"
		}
	}
	var list, routes, gateways []string
	for _, a := range addrs {
		routed := mode == netport.ModeRouted && a.Gateway.IsValid()
		addr := hostPrefix(a)
		if routed {
			addr = a.Prefix.String()
		}
		list = append(list, addr)
		switch {
		case routed:
			def := map[bool]string{true: "0.0.0.0/0", false: "::/0"}[a.Gateway.Is4()]
			routes = append(routes, "      - {to: "+def+", via: "+a.Gateway.String()+", on-link: true}\n")
		case a.Gateway.IsValid():
			gateways = append(gateways, "    gateway"+map[bool]string{true: "4", false: "6"}[a.Gateway.Is4()]+": "+a.Gateway.String()+"\n")
		}
	}
	netcfg := fmt.Sprintf("version: 2\nethernets:\n  eth0:\n    match: {name: \"e*\"}\n    addresses: [%s]\n", strings.Join(list, ", "))
	if len(routes) > 0 {
		netcfg += "    routes:\n" + strings.Join(routes, "")
	}
	netcfg += strings.Join(gateways, "")
	if userData == "" {
		userData = "#cloud-config\n"
	}
	return &vmm.CloudInit{UserData: userData, MetaData: meta, NetworkConfig: netcfg}
}

func hostPrefix(a ipam.Allocation) string {
	if a.Network.IsValid() {
		return netip.PrefixFrom(a.Addr(), a.Network.Bits()).String()
	}
	return a.Prefix.String()
}

func (f *Flow) undoAddresses(ctx context.Context, raw json.RawMessage) error {
	var a vmArgs
	if err := json.Unmarshal(raw, &a); err != nil {
		return err
	}
	return f.releaseAddresses(ctx, a.VMID)
}

func (f *Flow) releaseAddresses(ctx context.Context, vmID string) error {
	if f.cfg.IPAM == nil {
		return nil
	}
	allocs, err := f.cfg.IPAM.LookupOwner(ctx, ipam.Owner{VM: vmID})
	if err != nil {
		return err
	}
	for _, al := range allocs {
		if err := f.cfg.IPAM.Release(ctx, al.Pool, al.Prefix); err != nil && !errors.Is(err, virtplane.ErrNotFound) {
			return err
		}
	}
	return nil
}
