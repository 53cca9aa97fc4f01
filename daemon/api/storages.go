package api

import (
	"context"
	"errors"
	"maps"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/flow"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/store"
)

// StorageAdmin is what checking cluster storages needs from the daemon:
// its storage drivers, and a way to reach a storage where VMs would use it.
type StorageAdmin interface {
	// Drivers lists the storage drivers with their settings.
	Drivers() []model.StorageDriver
	// Validate checks a storage's settings against its driver without
	// touching the backend; errors are *model.FieldError relative to the
	// storage (driver, path, options.NAME).
	Validate(ref model.StorageRef) error
	// Check opens the storage of cluster c on its nodes (a shared one
	// once) and reads its space; errors as Validate's.
	Check(ctx context.Context, c model.Cluster, ref model.StorageRef) error
	// CheckNode reaches the local storages of cluster c on node n before
	// it joins the cluster.
	CheckNode(ctx context.Context, n model.Node, c model.Cluster) error
	// Usage reads the space of every storage of cluster c.
	Usage(ctx context.Context, c model.Cluster) ([]model.StorageUsage, error)
}

// storageField places an error about storage i at its body field.
func storageField(i int, err error) error {
	var fe *model.FieldError
	if errors.As(err, &fe) {
		return field("body.storages["+itoa(i)+"]."+fe.Field, err)
	}
	return field("body.storages["+itoa(i)+"]", err)
}

// validateStorages checks a cluster's storages without touching them:
// names, tags and defaults (model), settings against the drivers.
func (s *Server) validateStorages(c model.Cluster) error {
	if err := c.ValidateStorages(); err != nil {
		return modelField(err)
	}
	if c.VirtType == model.VirtLXD && len(c.Storages) > 0 {
		return field("body.storages", virtplane.Errorf(virtplane.ErrInvalidArgument, "an lxd cluster's containers live in LXD's own storage: it takes no storages"))
	}
	for i, st := range c.Storages {
		if s.cfg.Storages == nil {
			if st.Driver != "file" {
				return storageField(i, &model.FieldError{Field: "driver", Err: virtplane.Errorf(virtplane.ErrNotImplemented, "storage driver %q: this daemon has only file storages", st.Driver)})
			}
			continue
		}
		if err := s.cfg.Storages.Validate(st); err != nil {
			return storageField(i, err)
		}
	}
	return nil
}

// changedStorages are the storages of c that are new or whose backend
// settings differ from old's (tags, default, enabled and overcommit change
// no backend).
func changedStorages(old, c model.Cluster) []int {
	var out []int
	for i, st := range c.Storages {
		if prev, ok := old.Storage(st.Name); !ok || !sameBackend(prev, st) {
			out = append(out, i)
		}
	}
	return out
}

func sameBackend(a, b model.StorageRef) bool {
	return a.Driver == b.Driver && a.Path == b.Path && maps.Equal(a.Options, b.Options)
}

// checkStorages reaches the storages of c that are new or changed since
// old, on the cluster's nodes (outside any transaction: it waits on
// backends).
func (s *Server) checkStorages(ctx context.Context, old, c model.Cluster) error {
	if s.cfg.Storages == nil {
		return nil
	}
	for _, i := range changedStorages(old, c) {
		if err := s.cfg.Storages.Check(ctx, c, c.Storages[i]); err != nil {
			return storageField(i, err)
		}
	}
	return nil
}

// storagesInUse refuses a change that removes a storage VMs have disks on,
// or changes where it keeps them: the disks would be lost to the daemon.
func storagesInUse(ctx context.Context, tx store.Reader, old, c model.Cluster) error {
	for _, prev := range old.Storages {
		now, kept := c.Storage(prev.Name)
		if kept && sameBackend(prev, now) {
			continue
		}
		n, err := countVMs(ctx, tx, func(vm model.VM) bool { return vm.ClusterID == c.ID && vm.UsesStorage(prev.Name) })
		if err != nil {
			return err
		}
		if n > 0 {
			what := "removed"
			if kept {
				what = "given another driver, path or options"
			}
			return field("body.storages", virtplane.Errorf(virtplane.ErrConflict, "storage %s has disks of %d VMs: it cannot be %s (disable it to take no new disks)", prev.Name, n, what))
		}
	}
	return nil
}

// validateDiskStorage checks a create's storage request for the root disk.
func validateDiskStorage(c model.Cluster, name string, tags []string) error {
	return validateStorageRequest("body.", c, name, tags)
}

func (s *Server) registerStorageDrivers() {
	huma.Register(s.api, huma.Operation{
		OperationID: "getClusterStorageUsage", Method: http.MethodGet, Path: "/v1/clusters/{id}/storage-usage", Tags: []string{"clusters"},
		Summary:     "The space of a cluster's storages: a local one per node, a shared one once (admin)",
		Description: "Capacity, what the backend allocated, the virtual sizes placement counts, and the VMs with a disk there; a backend that cannot be read says why.",
	}, func(ctx context.Context, in *IDInput) (*struct{ Body Page[model.StorageUsage] }, error) {
		if err := requireAdmin(ctx); err != nil {
			return nil, problem(err)
		}
		c, _, err := getObject[model.Cluster](ctx, s.st, store.KindCluster, in.ID, "path.id")
		if err != nil {
			return nil, problem(err)
		}
		out := Page[model.StorageUsage]{Items: []model.StorageUsage{}}
		if s.cfg.Storages != nil {
			if out.Items, err = s.cfg.Storages.Usage(ctx, c); err != nil {
				return nil, problem(err)
			}
		}
		return &struct{ Body Page[model.StorageUsage] }{out}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "listStorageDrivers", Method: http.MethodGet, Path: "/v1/storage-drivers", Tags: []string{"clusters"},
		Summary: "List the storage drivers a cluster storage may use, with their options (admin)",
	}, func(ctx context.Context, _ *struct{}) (*struct{ Body Page[model.StorageDriver] }, error) {
		if err := requireAdmin(ctx); err != nil {
			return nil, problem(err)
		}
		out := Page[model.StorageDriver]{Items: []model.StorageDriver{}}
		if s.cfg.Storages != nil {
			out.Items = s.cfg.Storages.Drivers()
		}
		return &struct{ Body Page[model.StorageDriver] }{out}, nil
	})
}

// registerDiskMoves serves the moves of a VM's disk between storages.
func (s *Server) registerDiskMoves(tags []string) {
	type moveDisk struct {
		IDInput
		Body struct {
			Storage string `json:"storage" minLength:"1" maxLength:"63" doc:"the storage of the VM's cluster the disk goes to"`
			Disk    string `json:"disk,omitempty" pattern:"^vd[a-z]$" doc:"the disk that moves: vda (the root disk, the default) or a data disk"`
		}
	}
	huma.Register(s.api, huma.Operation{
		OperationID: "moveVMDisk", Method: http.MethodPost, Path: "/v1/vms/{id}/disk/move", Tags: tags, DefaultStatus: http.StatusAccepted,
		Summary:     "Move a VM's root disk to another storage of its cluster, live when it runs (admin)",
		Description: "A task. A stopped VM's disk is copied and the VM defined again on the copy; a running VM's is mirrored by the hypervisor (libvirt's block copy) into an empty volume while the guest runs, and the VM switched to it once in step (progress in the task). Then the old disk is removed. A failure, or a daemon stopped half-way, leaves the VM on its old disk. The VM must have no snapshots.",
	}, func(ctx context.Context, in *moveDisk) (*VMTaskOutput, error) {
		if err := requireAdmin(ctx); err != nil {
			return nil, problem(err)
		}
		vm, _, err := s.vm(ctx, s.st, in.ID)
		if err != nil {
			return nil, problem(err)
		}
		c, _, err := getObject[model.Cluster](ctx, s.st, store.KindCluster, vm.ClusterID, "path.id")
		if err != nil {
			return nil, problem(err)
		}
		if err := validateDiskMove(c, vm, in.Body.Disk, in.Body.Storage); err != nil {
			return nil, problem(err)
		}
		return s.submitVM(ctx, in.ID, flow.KindVMDiskMove, func(now model.VM, input *flow.VMInput) error {
			if now.Storage != vm.Storage || now.State != vm.State {
				return field("path.id", virtplane.Errorf(virtplane.ErrConflict, "vm %s changed meanwhile: send the move again", vm.ID))
			}
			input.Storage, input.DiskTarget = in.Body.Storage, in.Body.Disk
			return nil
		})
	})
}

// validateDiskMove checks a move of vm's disk to storage target of its
// cluster c: a stopped VM without snapshots, an enabled storage that is
// not the disk's own.
func validateDiskMove(c model.Cluster, vm model.VM, disk, target string) error {
	st, ok := c.Storage(target)
	from := vm.Storage
	if disk == "" {
		disk = model.RootTarget
	}
	if disk != model.RootTarget {
		d, found := vm.DataDisk(disk)
		if !found {
			return field("body.disk", virtplane.Errorf(virtplane.ErrNotFound, "vm %s has no disk %s", vm.ID, disk))
		}
		from = d.Storage
	}
	switch {
	case !ok:
		return field("body.storage", virtplane.Errorf(virtplane.ErrNotFound, "storage %q: cluster %s has no storage of that name", target, c.Name))
	case target == from:
		return field("body.storage", virtplane.Errorf(virtplane.ErrInvalidArgument, "storage %s: disk %s of vm %s is there already", target, disk, vm.ID))
	case !st.IsEnabled():
		return field("body.storage", virtplane.Errorf(virtplane.ErrConflict, "storage %s is disabled: it takes no new disk", target))
	case vm.State != model.VMStopped && vm.State != model.VMRunning:
		return field("path.id", virtplane.Errorf(virtplane.ErrConflict, "vm %s is %s: disks move of running (live) or stopped VMs", vm.ID, vm.State))
	case len(vm.Snapshots) > 0:
		return field("path.id", virtplane.Errorf(virtplane.ErrConflict, "vm %s has snapshots, which stay with the old disk: delete them first", vm.ID))
	}
	return nil
}
