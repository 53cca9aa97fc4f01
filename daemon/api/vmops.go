package api

import (
	"context"
	"errors"
	"net/http"
	"slices"

	"github.com/danielgtaylor/huma/v2"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/flow"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/store"
)

// prefixed places a model validation error at its field under prefix
// ("body.limits.").
func prefixed(prefix string, err error) error {
	var fe *model.FieldError
	if errors.As(err, &fe) {
		return field(prefix+fe.Field, err)
	}
	return err
}

// ShutdownBody tunes a graceful shutdown or reboot.
type ShutdownBody struct {
	TimeoutSec int `json:"timeout_sec,omitempty" minimum:"0" maximum:"3600" doc:"how long the guest may take to stop after the ACPI request; 0: 60 s"`
	// Force is a pointer so that an absent field means yes.
	Force *bool `json:"force,omitempty" doc:"when the guest does not stop in time: power it off (shutdown) or reset it (reboot); default true. Without force the task fails with a timeout and the VM keeps running"`
}

func (b *ShutdownBody) apply(in *flow.VMInput) {
	if b == nil {
		in.Force = true
		return
	}
	in.TimeoutSec = b.TimeoutSec
	in.Force = b.Force == nil || *b.Force
}

// SnapshotBody asks for a snapshot.
type SnapshotBody struct {
	Name string `json:"name" minLength:"1" maxLength:"63"`
	// Memory is a pointer so that an absent field means the default.
	Memory *bool `json:"memory,omitempty" doc:"include the memory (the VM must run; a revert resumes it running); default: yes for a running VM, no for a stopped one. Disks only of a running VM is refused where the hypervisor cannot (libvirt: 501)"`
}

// running says whether a VM's record says it runs (a console, the guest
// agent and memory snapshots need that).
func running(vm model.VM) bool {
	return vm.State == model.VMRunning || vm.State == model.VMRescue || vm.State == model.VMPaused
}

func (s *Server) registerVMOps(tags []string) {
	s.vmTask(tags, "suspendVM", http.MethodPost, "/v1/vms/{id}/suspend", "Pause a running VM's CPUs (its memory stays)", flow.KindVMSuspend)
	s.vmTask(tags, "resumeVM", http.MethodPost, "/v1/vms/{id}/resume", "Continue a paused VM", flow.KindVMResume)
	s.vmTask(tags, "resetVM", http.MethodPost, "/v1/vms/{id}/reset", "Reset a running VM at once (the reset button)", flow.KindVMReset)
	for _, op := range []struct{ id, path, summary, kind string }{
		{"shutdownVM", "/v1/vms/{id}/shutdown", "Shut a VM down gracefully (ACPI), powering it off when it does not stop in time", flow.KindVMShutdown},
		{"rebootVM", "/v1/vms/{id}/reboot", "Reboot a VM gracefully (shut down, start), resetting it when it does not stop in time", flow.KindVMReboot},
	} {
		huma.Register(s.api, huma.Operation{
			OperationID: op.id, Method: http.MethodPost, Path: op.path, Tags: tags, Summary: op.summary, DefaultStatus: http.StatusAccepted,
		}, func(ctx context.Context, in *struct {
			IDInput
			Body *ShutdownBody
		}) (*VMTaskOutput, error) {
			return s.submitVM(ctx, in.ID, op.kind, func(vm model.VM, input *flow.VMInput) error {
				in.Body.apply(input)
				return nil
			})
		})
	}

	huma.Register(s.api, huma.Operation{
		OperationID: "setVMLimits", Method: http.MethodPut, Path: "/v1/vms/{id}/limits", Tags: tags, DefaultStatus: http.StatusAccepted,
		Summary: "Set a VM's CPU, disk and network limits",
		Description: "Starts a vm.limits task. The VM gets exactly the limits given (what is left out is removed): a CPU cap (cpu_percent of its vCPUs) and weights (cpu_weight, io_weight) through the hypervisor, IOPS and bytes/s per disk, network limits per direction, blocked TCP/UDP ports (block_in_ports, block_out_ports) and, in routed clusters, a connection cap (max_connections) on its port. " +
			"On a running VM they take effect live; on a stopped one at its next start. The VM's limits_applied says which.",
	}, func(ctx context.Context, in *struct {
		IDInput
		Body model.Limits
	}) (*VMTaskOutput, error) {
		if in.Body.MaxConnections > 0 {
			// The cluster's network mode decides whether a connection cap
			// holds; read before the write transaction.
			vm, _, err := s.vm(ctx, s.st, in.ID)
			if err != nil {
				return nil, problem(err)
			}
			c, _, err := getObject[model.Cluster](ctx, s.st, store.KindCluster, vm.ClusterID, "path.id")
			if err != nil {
				return nil, problem(err)
			}
			if err := in.Body.ValidateForNetwork(c.NetworkMode); err != nil {
				return nil, problem(prefixed("body.", err))
			}
		}
		return s.submitVM(ctx, in.ID, flow.KindVMLimits, func(vm model.VM, input *flow.VMInput) error {
			if err := in.Body.Validate(flow.DiskTargets(vm)); err != nil {
				return prefixed("body.", err)
			}
			l := in.Body
			input.Limits = &l
			return nil
		})
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "createSnapshot", Method: http.MethodPost, Path: "/v1/vms/{id}/snapshots", Tags: tags, DefaultStatus: http.StatusAccepted,
		Summary:     "Snapshot a VM: memory and disks of a running VM, disks of a stopped one",
		Description: "Starts a vm.snapshot.create task; the snapshot's kind (memory+disk or disk) is in the VM's snapshots once it ends.",
	}, func(ctx context.Context, in *struct {
		IDInput
		Body SnapshotBody
	}) (*VMTaskOutput, error) {
		return s.submitVM(ctx, in.ID, flow.KindVMSnapshotCreate, func(vm model.VM, input *flow.VMInput) error {
			if err := model.ValidName("name", in.Body.Name); err != nil {
				return field("body.name", err)
			}
			if slices.ContainsFunc(vm.Snapshots, func(sn model.Snapshot) bool { return sn.Name == in.Body.Name }) {
				return field("body.name", virtplane.Errorf(virtplane.ErrAlreadyExists, "snapshot %q", in.Body.Name))
			}
			if m := in.Body.Memory; m != nil && *m && !running(vm) {
				return field("body.memory", virtplane.Errorf(virtplane.ErrConflict, "vm %s is %s: a memory snapshot needs a running VM", vm.ID, vm.State))
			}
			input.Snapshot, input.Memory = in.Body.Name, in.Body.Memory
			return nil
		})
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "listSnapshots", Method: http.MethodGet, Path: "/v1/vms/{id}/snapshots", Tags: tags, Summary: "List a VM's snapshots",
	}, func(ctx context.Context, in *IDInput) (*struct{ Body Page[model.Snapshot] }, error) {
		vm, _, err := s.vm(ctx, s.st, in.ID)
		items := vm.Snapshots
		if items == nil {
			items = []model.Snapshot{}
		}
		return &struct{ Body Page[model.Snapshot] }{Page[model.Snapshot]{Items: items}}, problem(err)
	})
	snapshotTask := func(opID, method, path, summary, kind string) {
		huma.Register(s.api, huma.Operation{
			OperationID: opID, Method: method, Path: path, Tags: tags, DefaultStatus: http.StatusAccepted, Summary: summary,
		}, func(ctx context.Context, in *struct {
			IDInput
			Name string `path:"name"`
		}) (*VMTaskOutput, error) {
			return s.submitVM(ctx, in.ID, kind, func(vm model.VM, input *flow.VMInput) error {
				if !slices.ContainsFunc(vm.Snapshots, func(sn model.Snapshot) bool { return sn.Name == in.Name }) {
					return field("path.name", virtplane.Errorf(virtplane.ErrNotFound, "snapshot %q", in.Name))
				}
				input.Snapshot = in.Name
				return nil
			})
		})
	}
	snapshotTask("deleteSnapshot", http.MethodDelete, "/v1/vms/{id}/snapshots/{name}", "Delete a snapshot", flow.KindVMSnapshotDelete)
	snapshotTask("revertSnapshot", http.MethodPost, "/v1/vms/{id}/snapshots/{name}/revert",
		"Return a VM to a snapshot: running where it was (memory+disk) or stopped with the disks of then (disk)", flow.KindVMSnapshotRevert)

	huma.Register(s.api, huma.Operation{
		OperationID: "rescueVM", Method: http.MethodPost, Path: "/v1/vms/{id}/rescue", Tags: tags, DefaultStatus: http.StatusAccepted,
		Summary:     "Boot a VM into (or out of) rescue mode",
		Description: "enabled: boot the cluster's rescue image (PUT /v1/clusters/{id}/rescue) with the VM's disks attached; disabled: boot the VM from its own disk again.",
	}, func(ctx context.Context, in *struct {
		IDInput
		Body struct {
			Enabled bool `json:"enabled"`
		}
	}) (*VMTaskOutput, error) {
		return s.submitVM(ctx, in.ID, flow.KindVMRescue, func(vm model.VM, input *flow.VMInput) error {
			switch {
			case in.Body.Enabled && vm.State == model.VMRescue:
				return field("body.enabled", virtplane.Errorf(virtplane.ErrConflict, "vm %s is in rescue mode already", vm.ID))
			case !in.Body.Enabled && vm.State != model.VMRescue:
				return field("body.enabled", virtplane.Errorf(virtplane.ErrConflict, "vm %s is not in rescue mode (%s)", vm.ID, vm.State))
			case in.Body.Enabled:
				c, _, err := getObject[model.Cluster](ctx, s.st, store.KindCluster, vm.ClusterID, "path.id")
				if err != nil {
					return err
				}
				if c.Rescue == nil {
					return field("body.enabled", virtplane.Errorf(virtplane.ErrConflict, "cluster %s has no rescue image: an admin sets one with PUT /v1/clusters/%s/rescue", c.Name, c.ID))
				}
			}
			input.Rescue = in.Body.Enabled
			return nil
		})
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "migrateVM", Method: http.MethodPost, Path: "/v1/vms/{id}/migrate", Tags: tags, DefaultStatus: http.StatusAccepted,
		Summary: "Move a VM to another node, of its cluster or another (admin)",
		Description: "Starts a vm.migrate task: reserve capacity on the node given (or the one the scheduler picks, in the cluster given or the VM's), then move the VM: " +
			"a stopped VM cold (its disk copied to the target's storage unless both nodes share it, the domain defined there), " +
			"a running VM live through the hypervisor (its disk copied while it runs when the storages differ). A failure at any step puts the VM back where it was. " +
			"A move to another cluster needs the VM's IP pool attached to it and the same network settings. VMs with snapshots are refused.",
	}, func(ctx context.Context, in *struct {
		IDInput
		Body struct {
			NodeID    string `json:"node_id,omitempty" doc:"target node; empty lets the scheduler choose"`
			ClusterID string `json:"cluster_id,omitempty" doc:"target cluster, for a move to another cluster (default: the VM's)"`
		}
	}) (*VMTaskOutput, error) {
		if err := requireAdmin(ctx); err != nil {
			return nil, problem(err)
		}
		return s.submitVM(ctx, in.ID, flow.KindVMMigrate, func(vm model.VM, input *flow.VMInput) error {
			if vm.State != model.VMRunning && vm.State != model.VMStopped {
				return field("path.id", virtplane.Errorf(virtplane.ErrConflict, "vm %s is %s: only running or stopped VMs migrate", vm.ID, vm.State))
			}
			if len(vm.Snapshots) > 0 {
				return field("path.id", virtplane.Errorf(virtplane.ErrConflict, "vm %s has snapshots: delete them before migrating", vm.ID))
			}
			cluster := vm.ClusterID
			if in.Body.ClusterID != "" {
				if _, err := s.st.GetObject(ctx, store.KindCluster, in.Body.ClusterID); err != nil {
					return field("body.cluster_id", err)
				}
				cluster = in.Body.ClusterID
			}
			if in.Body.NodeID != "" {
				n, _, err := getObject[model.Node](ctx, s.st, store.KindNode, in.Body.NodeID, "body.node_id")
				if err != nil {
					return err
				}
				if in.Body.NodeID == vm.NodeID {
					return field("body.node_id", virtplane.Errorf(virtplane.ErrInvalidArgument, "vm %s is on node %s already", vm.ID, vm.NodeID))
				}
				if n.ClusterID != cluster {
					return field("body.node_id", virtplane.Errorf(virtplane.ErrInvalidArgument, "node %s is in cluster %s, not %s: name its cluster in cluster_id to move the VM there", n.ID, n.ClusterID, cluster))
				}
			}
			input.NodeID, input.ClusterID = in.Body.NodeID, in.Body.ClusterID
			return nil
		})
	})
}
