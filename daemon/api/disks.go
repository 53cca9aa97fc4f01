package api

import (
	"context"
	"net/http"
	"slices"

	"github.com/danielgtaylor/huma/v2"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/flow"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/store"
)

// DiskRequest asks for a data disk: its size, and the storage it goes to
// (named, or by tags; default: the cluster's default storage, else the
// first enabled one with room).
type DiskRequest struct {
	SizeGiB     int64    `json:"size_gib" minimum:"1" maximum:"65536"`
	Storage     string   `json:"storage,omitempty" maxLength:"63" doc:"the cluster storage of the disk"`
	StorageTags []string `json:"storage_tags,omitempty" maxItems:"16" doc:"the disk goes to an enabled storage carrying every one of these tags that has room"`
}

// validateStorageRequest checks a disk's storage request (at location
// prefix: "body." or "body.disks[1].") against its cluster: a named
// storage exists and is enabled, some enabled storage carries the tags.
// Whether one has room is the task's to find.
func validateStorageRequest(prefix string, c model.Cluster, name string, tags []string) error {
	if slices.Contains(tags, "") {
		return field(prefix+"storage_tags", virtplane.Errorf(virtplane.ErrInvalidArgument, "an empty tag"))
	}
	if c.VirtType == model.VirtLXD && (name != "" || len(tags) > 0) {
		return field(prefix+"storage", virtplane.Errorf(virtplane.ErrInvalidArgument, "cluster %s is an lxd cluster: containers live in LXD's own storage", c.Name))
	}
	if _, _, err := c.StorageCandidates(name, tags); err != nil {
		return prefixed(prefix, err)
	}
	return nil
}

// createDisks turns a create's disk requests into the VM's data disks,
// at vdb, vdc, ... in order.
func createDisks(c model.Cluster, reqs []DiskRequest) ([]model.Disk, error) {
	if len(reqs) == 0 {
		return nil, nil
	}
	if c.VirtType == model.VirtLXD {
		return nil, field("body.disks", virtplane.Errorf(virtplane.ErrInvalidArgument, "cluster %s is an lxd cluster: containers have no data disks", c.Name))
	}
	if len(reqs) > model.MaxDataDisks {
		return nil, field("body.disks", virtplane.Errorf(virtplane.ErrInvalidArgument, "%d data disks: at most %d", len(reqs), model.MaxDataDisks))
	}
	var vm model.VM
	for i, r := range reqs {
		at := "body.disks[" + itoa(i) + "]."
		if r.SizeGiB < 1 {
			return nil, field(at+"size_gib", virtplane.Errorf(virtplane.ErrInvalidArgument, "%d: want at least 1", r.SizeGiB))
		}
		if err := validateStorageRequest(at, c, r.Storage, r.StorageTags); err != nil {
			return nil, err
		}
		t, err := vm.NextDiskTarget()
		if err != nil {
			return nil, field("body.disks", err)
		}
		vm.Disks = append(vm.Disks, model.Disk{Target: t, SizeGiB: r.SizeGiB, Storage: r.Storage, StorageTags: r.StorageTags})
	}
	return vm.Disks, nil
}

// DiskTargetInput names a data disk of a VM.
type DiskTargetInput struct {
	IDInput
	Target string `path:"target" pattern:"^vd[b-z]$" doc:"the data disk's device (vdb, vdc, ...)"`
}

// registerDisks serves a VM's data disks.
func (s *Server) registerDisks(tags []string) {
	type attach struct {
		IDInput
		Body DiskRequest
	}
	huma.Register(s.api, huma.Operation{
		OperationID: "attachVMDisk", Method: http.MethodPost, Path: "/v1/vms/{id}/disks", Tags: tags, DefaultStatus: http.StatusAccepted,
		Summary:     "Add a data disk to a VM, stopped or running",
		Description: "A task (vm.disk.attach): an empty volume is made in the storage asked for (or chosen by tags, default and room) and plugged in at the next free device from vdb on, live when the VM runs. The VM's disk limits hold for it. Quotas count its size.",
	}, func(ctx context.Context, in *attach) (*VMTaskOutput, error) {
		vm, _, err := s.vm(ctx, s.st, in.ID)
		if err != nil {
			return nil, problem(err)
		}
		c, _, err := getObject[model.Cluster](ctx, s.st, store.KindCluster, vm.ClusterID, "path.id")
		if err != nil {
			return nil, problem(err)
		}
		if c.VirtType == model.VirtLXD {
			return nil, problem(field("path.id", virtplane.Errorf(virtplane.ErrNotImplemented, "vm %s is a container: containers have no data disks", vm.ID)))
		}
		if err := validateStorageRequest("body.", c, in.Body.Storage, in.Body.StorageTags); err != nil {
			return nil, problem(err)
		}
		return s.submitVM(ctx, in.ID, flow.KindVMDiskAttach, func(now model.VM, input *flow.VMInput) error {
			if err := diskChangeable(now); err != nil {
				return err
			}
			t, err := now.NextDiskTarget()
			if err != nil {
				return field("path.id", err)
			}
			input.Disk = &model.Disk{Target: t, SizeGiB: in.Body.SizeGiB, Storage: in.Body.Storage, StorageTags: in.Body.StorageTags}
			return nil
		})
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "detachVMDisk", Method: http.MethodDelete, Path: "/v1/vms/{id}/disks/{target}", Tags: tags, DefaultStatus: http.StatusAccepted,
		Summary:     "Remove a data disk from a VM, stopped or running",
		Description: "A task (vm.disk.detach): the disk is unplugged (a running guest must release it) and its volume deleted with its data. A failure before the deletion plugs it back in.",
	}, func(ctx context.Context, in *DiskTargetInput) (*VMTaskOutput, error) {
		return s.submitVM(ctx, in.ID, flow.KindVMDiskDetach, func(now model.VM, input *flow.VMInput) error {
			if _, ok := now.DataDisk(in.Target); !ok {
				return field("path.target", virtplane.Errorf(virtplane.ErrNotFound, "vm %s has no data disk %s", now.ID, in.Target))
			}
			if err := diskChangeable(now); err != nil {
				return err
			}
			input.DiskTarget = in.Target
			return nil
		})
	})
	type resize struct {
		DiskTargetInput
		Body struct {
			SizeGiB int64 `json:"size_gib" minimum:"1" maximum:"65536" doc:"the new size; disks only grow"`
		}
	}
	huma.Register(s.api, huma.Operation{
		OperationID: "resizeVMDisk", Method: http.MethodPost, Path: "/v1/vms/{id}/disks/{target}/resize", Tags: tags, DefaultStatus: http.StatusAccepted,
		Summary:     "Grow a data disk of a VM, stopped or running",
		Description: "A task (vm.disk.resize), as POST /v1/vms/{id}/resize grows the root disk: live where the hypervisor can, in storage otherwise. Disks only grow.",
	}, func(ctx context.Context, in *resize) (*VMTaskOutput, error) {
		return s.submitVM(ctx, in.ID, flow.KindVMDiskResize, func(now model.VM, input *flow.VMInput) error {
			d, ok := now.DataDisk(in.Target)
			if !ok {
				return field("path.target", virtplane.Errorf(virtplane.ErrNotFound, "vm %s has no data disk %s", now.ID, in.Target))
			}
			if in.Body.SizeGiB < d.SizeGiB {
				return field("body.size_gib", virtplane.Errorf(virtplane.ErrInvalidArgument, "%d GiB is below the disk's %d: disks only grow", in.Body.SizeGiB, d.SizeGiB))
			}
			input.DiskTarget, input.DiskGiB = in.Target, in.Body.SizeGiB
			return nil
		})
	})
}

// diskChangeable refuses disk changes of a VM that is not stopped or
// running, or has snapshots (they record the disk set they were taken with).
func diskChangeable(vm model.VM) error {
	switch {
	case vm.State != model.VMRunning && vm.State != model.VMStopped:
		return field("path.id", virtplane.Errorf(virtplane.ErrConflict, "vm %s is %s: disks change on running or stopped VMs", vm.ID, vm.State))
	case len(vm.Snapshots) > 0:
		return field("path.id", virtplane.Errorf(virtplane.ErrConflict, "vm %s has %d snapshots: delete them before changing its disks (a revert would bring back the old disk set)", vm.ID, len(vm.Snapshots)))
	}
	return nil
}
