package flow

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/store"
	"github.com/virtplane/virtplane/daemon/tasks"
	"github.com/virtplane/virtplane/storage"
	"github.com/virtplane/virtplane/vmm"
)

// The backup task kinds.
const (
	// KindVMBackup copies a stopped VM's disk into a storage of its
	// cluster; the copy is a model.Backup once the task succeeded.
	KindVMBackup = "vm.backup"
	// KindVMRestore puts a backup back as the disk of its stopped VM.
	KindVMRestore = "vm.backup.restore"
	// KindBackupDelete removes a backup.
	KindBackupDelete = "backup.delete"
)

// undoRestoreAside copies a VM's disk set aside by a restore back in place.
const undoRestoreAside = "storage.restore-aside"

// BackupVolume is the storage name of a backup.
func BackupVolume(backupID string) string { return "vpt-backup-" + backupID }

// asideVolume is where a restore keeps the VM's disk until it is done.
func asideVolume(vmID string) string { return "vpt-" + vmID + "-aside" }

// backupResult is what a backup task made; finishBackup records it.
type backupResult struct {
	Backup model.Backup `json:"backup"`
}

func (f *Flow) registerBackups(e *tasks.Engine) {
	e.Handle(KindVMBackup, tasks.Handler{Run: f.backupVM, Finish: f.finishBackup, Retry: true})
	e.Handle(KindVMRestore, tasks.Handler{Run: f.restoreVM, Finish: f.finishVM})
	e.Handle(KindBackupDelete, tasks.Handler{Run: f.deleteBackup, Finish: f.finishBackupDelete, Retry: true})
	e.OnUndo(undoRestoreAside, f.undoRestoreAside)
	e.OnUndo(undoBackupVolume, func(ctx context.Context, raw json.RawMessage) error {
		var a vmArgs // VMID: the volume
		if err := json.Unmarshal(raw, &a); err != nil {
			return err
		}
		pool, err := f.vmPool(ctx, a.NodeID, a.Storage)
		if errors.Is(err, virtplane.ErrNotFound) {
			return nil // the node or the storage is gone, and the copy with it
		}
		if err != nil {
			return err
		}
		return deleteVolume(ctx, pool, a.VMID)
	})
}

// deleteBackupsOf removes the volumes of every backup of vm (a VM delete
// takes its backups with it); finishVM then removes their records.
func (f *Flow) deleteBackupsOf(ctx context.Context, r *tasks.Run, vm model.VM) error {
	return forEach(ctx, f.cfg.Store, store.KindBackup, store.ListOptions{Parent: vm.ID}, func(bk model.Backup) error {
		return r.Step(ctx, "remove backup "+bk.ID, tasks.NoUndo, func(ctx context.Context) error {
			pool, err := f.backupPool(ctx, vm, bk)
			if errors.Is(err, virtplane.ErrNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			return deleteBackupVolumes(ctx, pool, bk)
		})
	})
}

// deleteBackupVolumes removes the copies of a backup: the root disk's and
// the data disks'.
func deleteBackupVolumes(ctx context.Context, pool storage.Pool, bk model.Backup) error {
	for _, d := range bk.Disks {
		if err := deleteVolume(ctx, pool, d.Volume); err != nil {
			return err
		}
	}
	return deleteVolume(ctx, pool, bk.Volume)
}

// stoppedVM loads a VM for a backup or a restore, which copy its disk: it
// must be stopped, so the copy is of one moment.
func (f *Flow) stoppedVM(ctx context.Context, vmID string) (model.VM, vmm.Driver, error) {
	vm, err := f.loadVM(ctx, vmID)
	if err != nil {
		return vm, nil, err
	}
	if vm.NodeID == "" {
		return vm, nil, virtplane.Errorf(virtplane.ErrConflict, "vm %s is on no node", vm.ID)
	}
	drv, err := f.nodeDriver(ctx, vm.NodeID)
	if err != nil {
		return vm, nil, err
	}
	d, err := drv.Get(ctx, DomainName(vm.ID))
	if err != nil {
		return vm, nil, err
	}
	if d.State != vmm.StateStopped {
		return vm, nil, virtplane.Errorf(virtplane.ErrConflict, "vm %s is %s: stop it first (a backup or restore copies the disk of a stopped VM)", vm.ID, d.State)
	}
	return vm, drv, nil
}

// backupVM copies a stopped VM's disk into the storage in.Storage (a full,
// standalone copy: qemu-img convert flattens a linked clone). A failure
// removes the copy.
func (f *Flow) backupVM(ctx context.Context, r *tasks.Run) error {
	var in VMInput
	if err := r.Input(&in); err != nil {
		return err
	}
	vm, _, err := f.stoppedVM(ctx, in.VMID)
	if err != nil {
		return err
	}
	src, ex, err := f.poolAndExec(ctx, vm.NodeID, vm.Storage)
	if err != nil {
		return err
	}
	dst, err := f.vmPool(ctx, vm.NodeID, in.Storage)
	if err != nil {
		return err
	}
	n, b, err := f.backend(ctx, vm.NodeID)
	if err != nil {
		return err
	}
	id := r.Task().ID
	bk := model.Backup{ID: id, VMID: vm.ID, Owner: vm.Owner, Storage: in.Storage, Volume: BackupVolume(id),
		DiskGiB: vm.DiskGiB, TaskID: id, Created: time.Now().UTC()}
	c, err := f.cluster(ctx, n.ClusterID)
	if err != nil {
		return err
	}
	if ref, ok := c.Storage(in.Storage); !ok || !f.IsShared(b, ref.Driver) {
		bk.NodeID = vm.NodeID
	}
	at := vmArgs{VMID: bk.Volume, ClusterID: vm.ClusterID, NodeID: vm.NodeID, Storage: in.Storage}
	_ = r.Progress(ctx, 10, "copying the disk to storage "+in.Storage)
	if err := r.Step(ctx, "copy disk to storage "+in.Storage, tasks.UndoAction(undoBackupVolume, at), func(ctx context.Context) error {
		_, err := storage.CopyVolume(ctx, ex, src, VolumeName(vm.ID), dst, bk.Volume)
		return err
	}); err != nil {
		return err
	}
	for _, d := range vm.Disks {
		bd := model.BackupDisk{Target: d.Target, Volume: bk.Volume + "-" + d.Target, SizeGiB: d.SizeGiB}
		dat := at
		dat.VMID = bd.Volume
		if err := r.Step(ctx, "copy disk "+d.Target+" to storage "+in.Storage, tasks.UndoAction(undoBackupVolume, dat), func(ctx context.Context) error {
			from, err := f.vmPool(ctx, vm.NodeID, d.Storage)
			if err != nil {
				return err
			}
			_, err = storage.CopyVolume(ctx, ex, from, d.Volume, dst, bd.Volume)
			return err
		}); err != nil {
			return err
		}
		bk.Disks = append(bk.Disks, bd)
	}
	return r.SetResult(backupResult{Backup: bk})
}

// undoBackupVolume removes a backup's copy (vmArgs.VMID is the volume).
const undoBackupVolume = "storage.delete-backup"

// finishBackup records a succeeded backup, in the task's final transaction.
func (f *Flow) finishBackup(ctx context.Context, tx store.Tx, t *store.Task) error {
	if err := f.finishVM(ctx, tx, t); err != nil || t.State != store.TaskSucceeded {
		return err
	}
	var res backupResult
	if err := json.Unmarshal(t.Result, &res); err != nil {
		return err
	}
	data, err := json.Marshal(res.Backup)
	if err != nil {
		return err
	}
	err = tx.CreateObject(ctx, &store.Object{Kind: store.KindBackup, ID: res.Backup.ID, Name: res.Backup.ID, Owner: res.Backup.Owner, Parent: res.Backup.VMID, Data: data})
	if errors.Is(err, virtplane.ErrAlreadyExists) {
		return nil
	}
	return err
}

// backupPool opens the storage that holds a backup.
func (f *Flow) backupPool(ctx context.Context, vm model.VM, bk model.Backup) (storage.Pool, error) {
	nodeID := bk.NodeID
	if nodeID == "" {
		nodeID = vm.NodeID // a shared storage: any node of the cluster sees it
	}
	return f.vmPool(ctx, nodeID, bk.Storage)
}

// restoreVM puts backup in.BackupID back as the disk of its stopped VM. The
// VM's disk is set aside first and comes back if anything fails, so a
// restore never loses the disk it replaces; it is removed at the end.
func (f *Flow) restoreVM(ctx context.Context, r *tasks.Run) error {
	var in VMInput
	if err := r.Input(&in); err != nil {
		return err
	}
	vm, _, err := f.stoppedVM(ctx, in.VMID)
	if err != nil {
		return err
	}
	bk, err := load[model.Backup](ctx, f.cfg.Store, store.KindBackup, in.BackupID)
	if err != nil {
		return err
	}
	if bk.VMID != vm.ID {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "backup %s is of vm %s, not %s", bk.ID, bk.VMID, vm.ID)
	}
	if bk.NodeID != "" && bk.NodeID != vm.NodeID {
		return virtplane.Errorf(virtplane.ErrConflict, "backup %s is in a local storage of node %s, and vm %s is on node %s now", bk.ID, bk.NodeID, vm.ID, vm.NodeID)
	}
	from, err := f.backupPool(ctx, vm, bk)
	if err != nil {
		return err
	}
	// Every data disk the backup holds must still be there, at least as
	// large: checked before anything changes.
	for _, bd := range bk.Disks {
		if d, ok := vm.DataDisk(bd.Target); !ok || d.SizeGiB < bd.SizeGiB {
			return virtplane.Errorf(virtplane.ErrConflict, "backup %s holds data disk %s of %d GiB, which vm %s no longer has at that size: attach one before the restore", bk.ID, bd.Target, bd.SizeGiB, vm.ID)
		}
	}
	targets := []restoreTarget{{volume: VolumeName(vm.ID), aside: asideVolume(vm.ID), storage: vm.Storage, size: vm.DiskGiB << 30, from: bk.Volume}}
	for _, bd := range bk.Disks {
		d, _ := vm.DataDisk(bd.Target)
		targets = append(targets, restoreTarget{target: d.Target, volume: d.Volume, aside: d.Volume + "-aside", storage: d.Storage, size: d.SizeGiB << 30, from: bd.Volume})
	}
	for _, t := range targets {
		if err := f.restoreDisk(ctx, r, vm, from, t); err != nil {
			return err
		}
	}
	_ = r.Progress(ctx, 90, "backup copied in")
	// Only once every disk is back may the old ones go: until then a
	// failure brings them all back.
	for _, t := range targets {
		if err := r.Step(ctx, "remove the old "+t.what(), tasks.NoUndo, func(ctx context.Context) error {
			pool, err := f.vmPool(ctx, vm.NodeID, t.storage)
			if err != nil {
				return err
			}
			return deleteVolume(ctx, pool, t.aside)
		}); err != nil {
			return err
		}
	}
	return r.SetResult(vmPatch{State: model.VMStopped})
}

// restoreTarget is one disk a restore puts a backup's copy into.
type restoreTarget struct {
	target        string // "" for the root disk
	volume, aside string // the disk's volume, and where it is set aside
	storage       string
	size          int64
	from          string // the copy in the backup
}

func (t restoreTarget) what() string {
	if t.target == "" {
		return "disk"
	}
	return "disk " + t.target
}

// restoreDisk puts one copy of a backup back as a disk: the disk set
// aside, removed, the copy copied in; a failure brings the disk back
// (restoreVM removes the aside once all are in).
func (f *Flow) restoreDisk(ctx context.Context, r *tasks.Run, vm model.VM, from storage.Pool, t restoreTarget) error {
	pool, ex, err := f.poolAndExec(ctx, vm.NodeID, t.storage)
	if err != nil {
		return err
	}
	what := "the " + t.what()
	args := vmArgs{VMID: vm.ID, ClusterID: vm.ClusterID, NodeID: vm.NodeID, Storage: t.storage}
	if t.target != "" {
		args.Volume = t.volume
	}
	asideArgs := args
	asideArgs.VMID, asideArgs.Volume = t.aside, ""
	if err := r.Step(ctx, "set "+what+" aside", tasks.UndoAction(undoBackupVolume, asideArgs), func(ctx context.Context) error {
		_, err := storage.CopyVolume(ctx, ex, pool, t.volume, pool, t.aside)
		return err
	}); err != nil {
		return err
	}
	if err := r.Step(ctx, "remove "+what, tasks.UndoAction(undoRestoreAside, args), func(ctx context.Context) error {
		return deleteVolume(ctx, pool, t.volume)
	}); err != nil {
		return err
	}
	return r.Step(ctx, "copy the backup of "+what+" in", tasks.UndoAction(undoVolume, args), func(ctx context.Context) error {
		_, err := storage.CopyVolumeSized(ctx, ex, from, t.from, pool, t.volume, t.size)
		return err
	})
}

// undoRestoreAside copies the disk a restore set aside back in place, when
// the VM has none (the restore removed it and did not copy the backup in).
// vmArgs.Volume names a data disk's volume (aside: that name with
// "-aside"); empty, the root disk.
func (f *Flow) undoRestoreAside(ctx context.Context, raw json.RawMessage) error {
	var a vmArgs
	if err := json.Unmarshal(raw, &a); err != nil {
		return err
	}
	pool, ex, err := f.poolAndExec(ctx, a.NodeID, a.Storage)
	if err != nil {
		return err
	}
	volume, aside := VolumeName(a.VMID), asideVolume(a.VMID)
	if a.Volume != "" {
		volume, aside = a.Volume, a.Volume+"-aside"
	}
	if _, err := pool.Volume(ctx, volume); err == nil || !errors.Is(err, virtplane.ErrNotFound) {
		return err
	}
	_, err = storage.CopyVolume(ctx, ex, pool, aside, pool, volume)
	return err
}

// deleteBackup removes a backup's volume; finishBackupDelete its record.
func (f *Flow) deleteBackup(ctx context.Context, r *tasks.Run) error {
	var in VMInput
	if err := r.Input(&in); err != nil {
		return err
	}
	bk, err := load[model.Backup](ctx, f.cfg.Store, store.KindBackup, in.BackupID)
	if errors.Is(err, virtplane.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	vm, err := f.loadVM(ctx, bk.VMID)
	if err != nil {
		return err
	}
	return r.Step(ctx, "remove the backup's volume", tasks.NoUndo, func(ctx context.Context) error {
		pool, err := f.backupPool(ctx, vm, bk)
		if err != nil {
			return err
		}
		return deleteBackupVolumes(ctx, pool, bk)
	})
}

func (f *Flow) finishBackupDelete(ctx context.Context, tx store.Tx, t *store.Task) error {
	if t.State != store.TaskSucceeded {
		return nil
	}
	var in VMInput
	if err := json.Unmarshal(t.Input, &in); err != nil {
		return err
	}
	err := tx.DeleteObject(ctx, store.KindBackup, in.BackupID, 0)
	if errors.Is(err, virtplane.ErrNotFound) {
		return nil
	}
	return err
}
