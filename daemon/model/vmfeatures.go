package model

import "time"

// Snapshot kinds: with the memory of a running VM (a revert resumes it
// where it was), or of its disks only (a stopped VM).
const (
	SnapshotMemory = "memory+disk"
	SnapshotDisk   = "disk"
)

// Snapshot is a point-in-time copy of a VM.
type Snapshot struct {
	Name    string    `json:"name"`
	Kind    string    `json:"kind,omitempty" enum:"memory+disk,disk" doc:"memory+disk: taken of the running VM, a revert resumes it running; disk: of the stopped VM's disks"`
	Created time.Time `json:"created"`
}

// AntiAffinity puts a VM in a group whose members run on different nodes.
type AntiAffinity struct {
	Group string `json:"group" minLength:"1" maxLength:"63" doc:"group name, shared by the members"`
	Hard  bool   `json:"hard,omitempty" doc:"hard: refuse a node that hosts a member; soft: prefer another node and fall back"`
}

// RescueImage is what a cluster's VMs boot in rescue mode: a kernel (with
// an initrd and command line) at a path every node of the cluster has, or
// an ISO image registered and imported like OS images.
type RescueImage struct {
	Kernel     string `json:"kernel,omitempty" doc:"absolute path of the rescue kernel on the nodes"`
	Initrd     string `json:"initrd,omitempty" doc:"absolute path of its initrd on the nodes"`
	Cmdline    string `json:"cmdline,omitempty" maxLength:"2048"`
	ISOImageID string `json:"iso_image_id,omitempty" doc:"an image (format raw) holding a bootable ISO, imported into the nodes"`
}

// DomainTemplate is a named, versioned set of virtual hardware choices
// (VMmanager's "configurations"; the libvirt template's values) and an
// optional libvirt XML override applied on top, chosen per cluster or per
// VM. Each change makes a new version; a VM records the version it was
// defined with.
type DomainTemplate struct {
	ID       string    `json:"id"`
	Name     string    `json:"name"`
	Version  int       `json:"version"`
	Machine  string    `json:"machine,omitempty" doc:"machine type: pc, q35, pc-i440fx-7.2, ..."`
	CPUMode  string    `json:"cpu_mode,omitempty" enum:"host-passthrough,host-model,custom"`
	CPUModel string    `json:"cpu_model,omitempty" doc:"with cpu_mode custom: qemu64, Haswell, ..."`
	DiskBus  string    `json:"disk_bus,omitempty" enum:"virtio,sata,scsi,ide"`
	NICModel string    `json:"nic_model,omitempty" enum:"virtio,e1000,rtl8139"`
	Video    string    `json:"video,omitempty" enum:"vga,cirrus,virtio,qxl,bochs,none"`
	Override string    `json:"override_xml,omitempty" maxLength:"65536" doc:"a partial libvirt <domain> document merged on top of the rendered domain: elements it sets replace the rendered ones, device lists replace the rendered lists, except disks and interfaces, which it adds (disk sources must lie in the storage pools)"`
	Created  time.Time `json:"created"`
	Updated  time.Time `json:"updated"`
}
