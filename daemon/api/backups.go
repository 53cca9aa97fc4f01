package api

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/flow"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/store"
)

// BackupInput names a backup of a VM.
type BackupInput struct {
	IDInput
	BackupID string `path:"backup_id" maxLength:"64"`
}

// registerBackups serves the backups of VMs: take one into a storage of
// the VM's cluster, list them, restore one, delete one. The VM's owner
// does all of it; taking and restoring need the VM stopped.
func (s *Server) registerBackups(tags []string) {
	type take struct {
		IDInput
		Body struct {
			Storage string `json:"storage" minLength:"1" maxLength:"63" doc:"the storage of the VM's cluster that keeps the backup"`
		}
	}
	huma.Register(s.api, huma.Operation{
		OperationID: "backupVM", Method: http.MethodPost, Path: "/v1/vms/{id}/backups", Tags: tags, DefaultStatus: http.StatusAccepted,
		Summary:     "Back a stopped VM's disk up into a storage of its cluster",
		Description: "A task: a full, standalone copy of the disk; the backup is listed once it succeeded.",
	}, func(ctx context.Context, in *take) (*VMTaskOutput, error) {
		vm, _, err := s.vm(ctx, s.st, in.ID)
		if err != nil {
			return nil, problem(err)
		}
		c, _, err := getObject[model.Cluster](ctx, s.st, store.KindCluster, vm.ClusterID, "path.id")
		if err != nil {
			return nil, problem(err)
		}
		st, ok := c.Storage(in.Body.Storage)
		switch {
		case !ok:
			return nil, problem(field("body.storage", virtplane.Errorf(virtplane.ErrNotFound, "storage %q: cluster %s has no storage of that name", in.Body.Storage, c.Name)))
		case !st.IsEnabled():
			return nil, problem(field("body.storage", virtplane.Errorf(virtplane.ErrConflict, "storage %s is disabled: it takes nothing new", st.Name)))
		}
		return s.submitVM(ctx, in.ID, flow.KindVMBackup, func(now model.VM, input *flow.VMInput) error {
			if now.State != model.VMStopped {
				return field("path.id", virtplane.Errorf(virtplane.ErrConflict, "vm %s is %s: stop it to back it up", now.ID, now.State))
			}
			input.Storage = in.Body.Storage
			return nil
		})
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "listBackups", Method: http.MethodGet, Path: "/v1/vms/{id}/backups", Tags: tags, Summary: "List a VM's backups",
	}, func(ctx context.Context, in *IDInput) (*struct{ Body Page[model.Backup] }, error) {
		if _, _, err := s.vm(ctx, s.st, in.ID); err != nil {
			return nil, problem(err)
		}
		p, err := listObjects[model.Backup](ctx, s.st, store.KindBackup, store.ListOptions{Parent: in.ID, Limit: 1000}, nil)
		return &struct{ Body Page[model.Backup] }{p}, problem(err)
	})
	backup := func(ctx context.Context, in *BackupInput) error {
		if _, _, err := s.vm(ctx, s.st, in.ID); err != nil {
			return err
		}
		bk, _, err := getObject[model.Backup](ctx, s.st, store.KindBackup, in.BackupID, "path.backup_id")
		if err != nil {
			return err
		}
		if bk.VMID != in.ID {
			return field("path.backup_id", virtplane.Errorf(virtplane.ErrNotFound, "backup %q of vm %s", in.BackupID, in.ID))
		}
		return nil
	}
	huma.Register(s.api, huma.Operation{
		OperationID: "restoreBackup", Method: http.MethodPost, Path: "/v1/vms/{id}/backups/{backup_id}/restore", Tags: tags, DefaultStatus: http.StatusAccepted,
		Summary:     "Put a backup back as its stopped VM's disk",
		Description: "A task: the VM's disk is set aside, the backup copied in, the old disk removed; a failure puts the old disk back. Never on a running VM.",
	}, func(ctx context.Context, in *BackupInput) (*VMTaskOutput, error) {
		if err := backup(ctx, in); err != nil {
			return nil, problem(err)
		}
		return s.submitVM(ctx, in.ID, flow.KindVMRestore, func(now model.VM, input *flow.VMInput) error {
			if now.State != model.VMStopped {
				return field("path.id", virtplane.Errorf(virtplane.ErrConflict, "vm %s is %s: a restore never overwrites a running VM's disk; stop it first", now.ID, now.State))
			}
			input.BackupID = in.BackupID
			return nil
		})
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "deleteBackup", Method: http.MethodDelete, Path: "/v1/vms/{id}/backups/{backup_id}", Tags: tags, DefaultStatus: http.StatusAccepted,
		Summary: "Delete a backup (a task removes its volume)",
	}, func(ctx context.Context, in *BackupInput) (*VMTaskOutput, error) {
		if err := backup(ctx, in); err != nil {
			return nil, problem(err)
		}
		return s.submitVM(ctx, in.ID, flow.KindBackupDelete, func(_ model.VM, input *flow.VMInput) error {
			input.BackupID = in.BackupID
			return nil
		})
	})
}
