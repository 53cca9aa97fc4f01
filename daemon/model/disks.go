package model

import (
	"slices"

	"github.com/virtplane/virtplane"
)

// MaxDataDisks is how many data disks a VM may have beside its root: the
// targets vdb to vdi.
const MaxDataDisks = 8

// RootTarget is the device of a VM's root disk.
const RootTarget = "vda"

// Disk is a data disk of a VM: an empty volume of its own, made in a
// storage of the VM's cluster on the VM's node (or in the cluster's shared
// storage) when the VM is created or the disk attached.
type Disk struct {
	// Target is the device the guest sees: vdb, vdc, ... in attach order.
	Target  string `json:"target" doc:"the device in the guest: vdb, vdc, ..."`
	SizeGiB int64  `json:"size_gib" minimum:"1" maximum:"65536"`
	// Storage is the cluster storage the disk is on: the one asked for, or
	// the one placement chose by StorageTags, the default and room.
	Storage     string   `json:"storage,omitempty" doc:"the cluster storage the disk is on (empty: the node's own, in a cluster without storages)"`
	StorageTags []string `json:"storage_tags,omitempty" doc:"tags the disk's storage had to carry"`
	// Volume is the disk's volume in that storage, once made.
	Volume string `json:"volume,omitempty" doc:"the disk's volume in its storage"`
}

// DataDisk returns the data disk at target.
func (vm VM) DataDisk(target string) (Disk, bool) {
	i := slices.IndexFunc(vm.Disks, func(d Disk) bool { return d.Target == target })
	if i < 0 {
		return Disk{}, false
	}
	return vm.Disks[i], true
}

// NextDiskTarget is the first target from vdb on that vm does not use.
func (vm VM) NextDiskTarget() (string, error) {
	if len(vm.Disks) >= MaxDataDisks {
		return "", virtplane.Errorf(virtplane.ErrResourceExhausted, "vm %s has %d data disks, the most a VM may have", vm.ID, MaxDataDisks)
	}
	for c := byte('b'); c < 'b'+MaxDataDisks; c++ {
		t := "vd" + string(c)
		if _, used := vm.DataDisk(t); !used {
			return t, nil
		}
	}
	return "", virtplane.Errorf(virtplane.ErrResourceExhausted, "vm %s has no free disk target", vm.ID)
}

// DiskTargets are the devices of all of vm's disks, the root first.
func (vm VM) DiskTargets() []string {
	out := []string{RootTarget}
	for _, d := range vm.Disks {
		out = append(out, d.Target)
	}
	return out
}

// TotalDiskGiB is the size of all of vm's disks: what quotas count.
func (vm VM) TotalDiskGiB() int64 {
	n := vm.DiskGiB
	for _, d := range vm.Disks {
		n += d.SizeGiB
	}
	return n
}

// UsesStorage says whether any disk of vm is on the cluster storage name.
func (vm VM) UsesStorage(name string) bool {
	if vm.Storage == name {
		return true
	}
	return slices.ContainsFunc(vm.Disks, func(d Disk) bool { return d.Storage == name })
}
