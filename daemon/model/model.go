// Package model holds the daemon's objects as the API shows them and the
// store keeps them (as JSON documents): users, tokens, clusters, nodes, IP
// pools, images and VMs, with the validation each needs before it is stored.
//
//	c := model.Cluster{Name: "fra1", VirtType: model.VirtKVM, Strategy: model.StrategyEven}
//	if err := c.Validate(); err != nil { ... } // names the bad field
package model

import (
	"fmt"
	"net/netip"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/virtplane/virtplane"
)

// Role is what a user may do: admins manage infrastructure and every
// user's objects; users manage only their own VMs, tokens and tasks.
type Role string

// The roles.
const (
	RoleAdmin Role = "admin"
	RoleUser  Role = "user"
)

// User is an account.
type User struct {
	ID           string    `json:"id"`
	Name         string    `json:"name"`
	Role         Role      `json:"role" enum:"admin,user"`
	Source       string    `json:"source" doc:"where the account is authenticated: local or ldap"`
	Email        string    `json:"email,omitempty" doc:"where mails to the user go (script results, notifications); set with PUT /v1/users/{id}/email"`
	PasswordHash string    `json:"-"`
	Disabled     bool      `json:"disabled"`
	Created      time.Time `json:"created"`
}

// Token is an API token; the secret itself is shown once and only its
// SHA-256 is stored (the token's store ID).
type Token struct {
	ID      string    `json:"id"`
	UserID  string    `json:"user_id"`
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires,omitzero"`
}

// Virtualization types of a cluster.
const (
	VirtKVM = "kvm"
	VirtLXD = "lxd"
)

// Placement strategies of a cluster.
const (
	StrategyEven       = "even"
	StrategySequential = "sequential"
)

// StorageRef is a storage of a cluster: a driver, where it keeps data and
// the driver's options. A local storage (file, lvm) is one backend on each
// node at the same path; a shared one (ceph, san-lvm, san-iscsi) is one
// backend every node reaches.
type StorageRef struct {
	Name    string            `json:"name" minLength:"1" maxLength:"63"`
	Driver  string            `json:"driver" doc:"storage driver: file, lvm, ceph, san-lvm, san-iscsi (GET /v1/storage-drivers lists them with their options)"`
	Path    string            `json:"path,omitempty" doc:"driver location: directory (file), volume group (lvm, san-lvm), RADOS pool (ceph), target IQN (san-iscsi)"`
	Options map[string]string `json:"options,omitempty" doc:"the driver's settings (lvm: thin_pool; ceph: conf, user, monitors, secret; san-iscsi: portal, tid, dir)"`
	// Tags select the storage for a disk that asks for them.
	Tags []string `json:"tags,omitempty" doc:"labels a disk's storage_tags select by (ssd, nvme)"`
	// Default is the storage of disks that name neither a storage nor tags.
	Default bool `json:"default,omitempty" doc:"disks naming neither storage nor tags go here; at most one storage is the default (none: the first enabled)"`
	// Enabled: a disabled storage takes no new disk; its disks stay.
	Enabled *bool `json:"enabled,omitempty" doc:"false: takes no new disk (its disks stay); default true"`
	// DiskOvercommit is the ratio of virtual disk sizes to the storage's
	// capacity; 0 takes the cluster's.
	DiskOvercommit float64 `json:"disk_overcommit,omitempty" minimum:"0" maximum:"16" doc:"virtual size of the disks per byte of capacity; 0 or absent: the cluster's"`
}

// StorageDriver describes a storage driver the daemon has.
type StorageDriver struct {
	Name string `json:"name"`
	// Shared drivers keep one backend for a whole cluster.
	Shared  bool            `json:"shared" doc:"one backend for the whole cluster (ceph, san): VMs move between its nodes without copying disks"`
	Path    string          `json:"path,omitempty" doc:"what a storage's path is for this driver; empty: no path"`
	Options []StorageOption `json:"options"`
}

// Backup is a copy of a VM's disk taken at one moment, kept in a storage of
// its cluster until deleted (or the VM is).
type Backup struct {
	ID      string `json:"id"`
	VMID    string `json:"vm_id"`
	Owner   string `json:"owner"`
	Storage string `json:"storage" doc:"the cluster storage that holds it"`
	// NodeID is the node whose local storage holds it; empty for a shared
	// storage.
	NodeID  string `json:"node_id,omitempty" doc:"the node of a local storage that holds it; empty for a shared storage"`
	Volume  string `json:"volume" doc:"its volume in the storage"`
	DiskGiB int64  `json:"disk_gib" doc:"the size of the disk it copies"`
	// Disks are the copies of the VM's data disks, in the same storage.
	Disks   []BackupDisk `json:"disks,omitempty" doc:"copies of the VM's data disks, beside the root disk's"`
	TaskID  string       `json:"task_id" doc:"the task that took it"`
	Created time.Time    `json:"created"`
}

// BackupDisk is the copy of one data disk in a backup.
type BackupDisk struct {
	Target  string `json:"target"`
	Volume  string `json:"volume"`
	SizeGiB int64  `json:"size_gib"`
}

// StorageUsage is the space of one cluster storage on one node (a local
// storage) or in all (a shared one, Node empty).
type StorageUsage struct {
	Storage string `json:"storage"`
	Driver  string `json:"driver"`
	Node    string `json:"node,omitempty" doc:"the node ID of a local storage's backend; empty for a shared storage"`
	// CapacityBytes is 0 when the backend does not say.
	CapacityBytes  int64  `json:"capacity_bytes" doc:"what the backend can hold; 0 when it does not say (then it takes any disk)"`
	UsedBytes      int64  `json:"used_bytes" doc:"what the backend has allocated"`
	AllocatedBytes int64  `json:"allocated_bytes" doc:"the virtual sizes of its volumes, which placement counts against capacity times overcommit"`
	VMs            int    `json:"vms" doc:"VMs whose disk is there"`
	Error          string `json:"error,omitempty" doc:"why the backend could not be read"`
}

// StorageOption is one setting of a storage driver.
type StorageOption struct {
	Name     string `json:"name"`
	Doc      string `json:"doc"`
	Required bool   `json:"required,omitempty"`
	Flag     bool   `json:"flag,omitempty" doc:"takes true or false"`
}

// IsEnabled reports whether the storage takes new disks.
func (r StorageRef) IsEnabled() bool { return r.Enabled == nil || *r.Enabled }

// HasTags reports whether the storage carries every tag of want.
func (r StorageRef) HasTags(want []string) bool {
	for _, t := range want {
		if !slices.Contains(r.Tags, t) {
			return false
		}
	}
	return true
}

// ValidateStorages checks the cluster's storages apart from their drivers:
// names (DNS label rules) and tags well formed and unique, at most one
// default. Errors are *FieldError (storages[i].name, .tags, .default).
func (c Cluster) ValidateStorages() error {
	seen := map[string]bool{}
	def := -1
	for i, st := range c.Storages {
		f := "storages[" + strconv.Itoa(i) + "]"
		if err := ValidName(f+".name", st.Name); err != nil {
			return &FieldError{Field: f + ".name", Err: err}
		}
		if seen[st.Name] {
			return invalidField(f+".name", "%q: the cluster has a storage of that name already", st.Name)
		}
		seen[st.Name] = true
		for j, t := range st.Tags {
			if err := ValidName(f+".tags["+strconv.Itoa(j)+"]", t); err != nil {
				return &FieldError{Field: f + ".tags", Err: err}
			}
		}
		if st.Default {
			if def >= 0 {
				return invalidField(f+".default", "storage %s: storage %s is the default already", st.Name, c.Storages[def].Name)
			}
			def = i
		}
		if st.DiskOvercommit != 0 && (st.DiskOvercommit < 1 || st.DiskOvercommit > 16) {
			return invalidField(f+".disk_overcommit", "%v: want 1..16, or 0 for the cluster's", st.DiskOvercommit)
		}
	}
	return nil
}

// StorageCandidates lists the storages of the cluster a new disk may go
// to, in the order to try them: the one named, else the enabled ones that
// carry every tag of tags, the default first, then in the cluster's order.
// why says of every other storage why not. A named storage that is
// missing or disabled is a *FieldError on "storage"; tags that no enabled
// storage carries, one on "storage_tags".
func (c Cluster) StorageCandidates(name string, tags []string) (cands []StorageRef, why []string, err error) {
	if name != "" {
		st, ok := c.Storage(name)
		switch {
		case !ok:
			return nil, nil, &FieldError{Field: "storage", Err: virtplane.Errorf(virtplane.ErrNotFound, "storage %q: cluster %s has no storage of that name", name, c.Name)}
		case !st.IsEnabled():
			return nil, nil, &FieldError{Field: "storage", Err: virtplane.Errorf(virtplane.ErrConflict, "storage %q of cluster %s is disabled: it takes no new disk", name, c.Name)}
		case !st.HasTags(tags):
			return nil, nil, invalidField("storage_tags", "%v: storage %s does not carry them all (it has %v)", tags, name, st.Tags)
		}
		return []StorageRef{st}, nil, nil
	}
	for _, st := range c.Storages {
		switch {
		case !st.IsEnabled():
			why = append(why, st.Name+": disabled")
		case !st.HasTags(tags):
			why = append(why, fmt.Sprintf("%s: lacks tags %v (has %v)", st.Name, missing(st.Tags, tags), st.Tags))
		case st.Default:
			cands = append([]StorageRef{st}, cands...)
		default:
			cands = append(cands, st)
		}
	}
	if len(cands) == 0 && len(c.Storages) > 0 {
		return nil, why, invalidField("storage_tags", "%v: no enabled storage of cluster %s carries them (%s)", tags, c.Name, strings.Join(why, "; "))
	}
	if len(c.Storages) == 0 && len(tags) > 0 {
		return nil, nil, invalidField("storage_tags", "%v: cluster %s has no storages", tags, c.Name)
	}
	return cands, why, nil
}

func missing(have, want []string) []string {
	var out []string
	for _, t := range want {
		if !slices.Contains(have, t) {
			out = append(out, t)
		}
	}
	return out
}

// Storage returns the cluster's storage named name.
func (c Cluster) Storage(name string) (StorageRef, bool) {
	for _, st := range c.Storages {
		if st.Name == name {
			return st, true
		}
	}
	return StorageRef{}, false
}

// Cluster is a group of nodes with one virtualization type and one set of
// placement rules.
type Cluster struct {
	ID             string       `json:"id"`
	Name           string       `json:"name" minLength:"1" maxLength:"63"`
	VirtType       string       `json:"virt_type" enum:"kvm,lxd"`
	Strategy       string       `json:"strategy" enum:"even,sequential"`
	CPUOvercommit  float64      `json:"cpu_overcommit" minimum:"1" maximum:"64"`
	RAMOvercommit  float64      `json:"ram_overcommit" minimum:"1" maximum:"8"`
	DiskOvercommit float64      `json:"disk_overcommit" minimum:"1" maximum:"16"`
	MaxVMs         int          `json:"max_vms" minimum:"0" doc:"cluster VM limit; 0 means none"`
	MaxVMsPerNode  int          `json:"max_vms_per_node" minimum:"0" doc:"per-node VM limit; 0 means none"`
	NetworkMode    string       `json:"network_mode" enum:"bridge,vxlan,routed"`
	Bridge         string       `json:"bridge,omitempty" doc:"host bridge VMs attach to in bridge mode"`
	VNI            int          `json:"vni,omitempty" minimum:"0" maximum:"16777215" doc:"VxLAN network identifier of the cluster's VMs, 1..16777215; required in vxlan mode, unset otherwise"`
	Storages       []StorageRef `json:"storages"`
	Created        time.Time    `json:"created"`
	// Rescue is the image the cluster's VMs boot from in rescue mode.
	Rescue *RescueImage `json:"rescue,omitempty" doc:"set with PUT /v1/clusters/{id}/rescue"`
	// TemplateID is the domain template of the cluster's new VMs that name none.
	TemplateID string `json:"template_id,omitempty" doc:"domain template of new VMs that name none; set with PUT /v1/clusters/{id}/template"`
}

// Network modes of a cluster.
const (
	NetworkBridge = "bridge"
	NetworkVXLAN  = "vxlan"
	NetworkRouted = "routed"
)

// MaxVNI is the largest VxLAN network identifier (24 bits).
const MaxVNI = 1<<24 - 1

// FieldError is a validation error of one field of an object: Field is
// its JSON name, Err wraps the virtplane class.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

func invalidField(field, format string, args ...any) error {
	return &FieldError{Field: field, Err: virtplane.Errorf(virtplane.ErrInvalidArgument, field+" "+format, args...)}
}

// ValidateNetwork checks the cluster's network settings: a known mode, a
// VNI in range in vxlan mode and none in the others, a bridge in bridge
// mode only. Errors are *FieldError (network_mode, vni, bridge) wrapping
// ErrInvalidArgument.
func (c Cluster) ValidateNetwork() error {
	switch c.NetworkMode {
	case "", NetworkBridge, NetworkRouted, NetworkVXLAN:
	default:
		return invalidField("network_mode", "%q: want bridge, vxlan or routed", c.NetworkMode)
	}
	if c.NetworkMode == NetworkVXLAN {
		if c.VNI < 1 || c.VNI > MaxVNI {
			return invalidField("vni", "%d: a vxlan cluster needs a vni in 1..%d", c.VNI, MaxVNI)
		}
	} else if c.VNI != 0 {
		return invalidField("vni", "%d: only a vxlan cluster has a vni, not a %s one", c.VNI, c.NetworkMode)
	}
	if c.NetworkMode != "" && c.NetworkMode != NetworkBridge && c.Bridge != "" {
		return invalidField("bridge", "%q: only a bridge cluster names a bridge, not a %s one", c.Bridge, c.NetworkMode)
	}
	return nil
}

// VTEP returns the node's tunnel endpoint address, checked: a unicast
// IPv4 or IPv6 address without zone. The error is a *FieldError
// (vtep_address) wrapping ErrInvalidArgument; empty is an error too.
func (n Node) VTEP() (netip.Addr, error) {
	a, err := netip.ParseAddr(n.VTEPAddress)
	if n.VTEPAddress == "" {
		return netip.Addr{}, invalidField("vtep_address", "of node %s is empty", n.Name)
	}
	if err != nil || a.IsUnspecified() || a.IsMulticast() || a.Zone() != "" || a.Is4In6() {
		return netip.Addr{}, invalidField("vtep_address", "%q of node %s: want a unicast IPv4 or IPv6 address", n.VTEPAddress, n.Name)
	}
	return a, nil
}

// Node states.
const (
	NodeActive      = "active"
	NodeMaintenance = "maintenance"
	NodeUnreachable = "unreachable"
)

// Node is one host of a cluster.
type Node struct {
	ID          string `json:"id"`
	ClusterID   string `json:"cluster_id"`
	Name        string `json:"name"`
	Address     string `json:"address" doc:"where the node is, read by the daemon's node kinds: local (this host), sim (a simulated node), qemu+unix:///system?socket=PATH (another libvirtd on this host), ssh://USER@HOST[:PORT] (a machine reached over SSH that runs the node agent)"`
	Maintenance bool   `json:"maintenance" doc:"in maintenance a node takes no new VMs"`
	State       string `json:"state" enum:"active,maintenance,unreachable"`
	Cores       int    `json:"cores"`
	MemoryMiB   int64  `json:"memory_mib"`
	DiskGiB     int64  `json:"disk_gib"`
	VTEPAddress string `json:"vtep_address,omitempty" doc:"underlay address of the node's VxLAN tunnel endpoint; required in a vxlan cluster"`
	// HostKey is the node's SSH host key the daemon pinned when the node
	// was added (authorized_keys form); only that key is accepted after.
	HostKey            string    `json:"host_key,omitempty" readOnly:"true" doc:"the SSH host key pinned when the node was added"`
	HostKeyFingerprint string    `json:"host_key_fingerprint,omitempty" readOnly:"true" doc:"its SHA256 fingerprint"`
	AgentVersion       string    `json:"agent_version,omitempty" readOnly:"true" doc:"version of the node agent the daemon installed"`
	Addresses          []string  `json:"addresses,omitempty" readOnly:"true" doc:"the node's own addresses, read when it was added: never given to a VM on it"`
	Warnings           []string  `json:"warnings,omitempty" readOnly:"true" doc:"what the daemon found wrong with the node when it was added, without refusing it (a hostname that does not resolve there slows every live migration)"`
	Tags               []string  `json:"tags,omitempty" doc:"tags scripts select nodes by (PUT /v1/nodes/{id}/tags)"`
	Created            time.Time `json:"created"`
}

// IPBlock is a range of addresses in a pool.
type IPBlock struct {
	ID      string `json:"id"`
	Range   string `json:"range" doc:"CIDR or first-last range"`
	Gateway string `json:"gateway,omitempty"`
	// Family follows from Range; it is stored so that lists can show it.
	Family   string   `json:"family" enum:"ipv4,ipv6" readOnly:"true" doc:"the address family of the range"`
	Excluded []string `json:"excluded,omitempty" doc:"addresses, CIDRs or first-last ranges inside the block that are never handed out"`
	Reserved []string `json:"reserved,omitempty" doc:"addresses handed out only when a VM create asks for them (address)"`
}

// IPPool is a set of address blocks attached to clusters.
type IPPool struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	ClusterIDs []string  `json:"cluster_ids"`
	Blocks     []IPBlock `json:"blocks"`
	Created    time.Time `json:"created"`
}

// Image states.
const (
	// ImageRegistered: known, imported nowhere yet (simulated nodes make a
	// placeholder base on first use; real nodes need an import).
	ImageRegistered = "registered"
	ImageImporting  = "importing"
	// ImageReady: imported into the storage of the nodes in Nodes.
	ImageReady    = "ready"
	ImageFailed   = "failed"
	ImageDeleting = "deleting"
)

// Image is an OS image VMs are cloned from.
type Image struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	OSType string `json:"os_type" doc:"linux or windows"`
	Source string `json:"source" doc:"absolute path of the image file on the daemon's host, or an http(s) URL"`
	// FromVM is the VM whose disk the image was made of (a template from a
	// VM); such an image has no source and lives on that VM's node.
	FromVM string `json:"from_vm,omitempty" doc:"the VM whose disk the image was made of (POST /v1/vms/{id}/image); it is on that VM's node only"`
	// LXDAlias is the image's name in the nodes' LXD, for lxd clusters.
	LXDAlias string `json:"lxd_alias,omitempty" doc:"alias of the image in the nodes' LXD image stores (lxd clusters)"`
	Format   string `json:"format" enum:"qcow2,raw"`
	SizeMiB  int64  `json:"size_mib"`
	State    string `json:"state,omitempty" enum:"registered,importing,ready,failed,deleting" doc:"registered: imported nowhere yet; ready: imported into the nodes listed in nodes"`
	// Nodes are the nodes whose storage holds the image's base volume.
	Nodes   []string  `json:"nodes,omitempty" doc:"nodes whose storage holds the imported image"`
	TaskID  string    `json:"task_id,omitempty" doc:"the last task that changed the image (import, delete)"`
	Error   string    `json:"error,omitempty" doc:"why the last import or delete failed"`
	Created time.Time `json:"created"`
}

// lxdAlias is an LXD image alias: no slash (LXD reads "remote:alias"
// otherwise), no spaces or control characters.
var lxdAlias = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// ValidLXDAlias checks an LXD image alias; it names the field at fault.
func ValidLXDAlias(field, a string) error {
	if !lxdAlias.MatchString(a) {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "%s %q: want 1-128 letters, digits, '.', '_' or '-'", field, a)
	}
	return nil
}

// ValidImageSource checks an image source: an absolute, clean file path or
// an http(s) URL with a host; it names the field at fault.
func ValidImageSource(field, src string) error {
	bad := func(why string) error {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "%s %q: %s", field, src, why)
	}
	if strings.ContainsAny(src, "\x00\n\r") {
		return bad("control characters")
	}
	if strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://") {
		u, err := url.Parse(src)
		if err != nil || u.Host == "" || u.User != nil {
			return bad("an http(s) URL with a host and without credentials")
		}
		return nil
	}
	if !path.IsAbs(src) || path.Clean(src) != src {
		return bad("an absolute, clean path or an http(s) URL")
	}
	return nil
}

// VM states.
const (
	VMCreating = "creating"
	VMRunning  = "running"
	VMStopped  = "stopped"
	VMFailed   = "failed"
	VMDeleting = "deleting"
	VMRescue   = "rescue"
	VMPaused   = "paused"
)

// VM is a virtual machine.
type VM struct {
	ID        string   `json:"id"`
	Name      string   `json:"name"`
	Owner     string   `json:"owner"`
	ClusterID string   `json:"cluster_id"`
	NodeID    string   `json:"node_id,omitempty"`
	ImageID   string   `json:"image_id"`
	PoolID    string   `json:"pool_id"`
	CPUs      int      `json:"cpus"`
	MemoryMiB int64    `json:"memory_mib"`
	DiskGiB   int64    `json:"disk_gib"`
	State     string   `json:"state"`
	Addresses []string `json:"addresses"`
	// DualStack VMs hold an IPv4 and an IPv6 address of their pool.
	DualStack bool   `json:"dual_stack,omitempty" doc:"the VM holds an IPv4 and an IPv6 address of its pool"`
	Volume    string `json:"volume,omitempty" doc:"the VM's disk volume in the node's storage"`
	// Storage is the cluster storage of the root disk: the one the create
	// named, or the one placement chose (by StorageTags, default, space).
	Storage     string   `json:"storage,omitempty" doc:"the cluster storage the root disk is on (empty: the node's own, in a cluster without storages)"`
	StorageTags []string `json:"storage_tags,omitempty" doc:"tags the root disk's storage had to carry"`
	// Disks are the VM's data disks, beyond the root disk (vda).
	Disks []Disk `json:"disks,omitempty" doc:"data disks beyond the root disk (vda): attached at create or later (POST /v1/vms/{id}/disks)"`
	// CloneOf is the VM whose disk this one's was copied from.
	CloneOf   string     `json:"clone_of,omitempty" doc:"the VM whose disk was copied into this one's (POST /v1/vms/{id}/clone)"`
	Limits    Limits     `json:"limits"`
	Snapshots []Snapshot `json:"snapshots"`
	SSHKeys   []string   `json:"ssh_keys,omitempty"`
	Tags      []string   `json:"tags,omitempty" doc:"tags scripts select VMs by"`
	// ScriptKey and SSHHostKey are how the daemon runs scripts on the VM
	// over SSH: its own key, authorized in the guest by cloud-init, and the
	// guest's host key, pinned at the first run.
	ScriptKey  string    `json:"script_key,omitempty" doc:"public key the daemon logs in to the VM with to run scripts; cloud-init authorizes it with ssh_keys"`
	SSHHostKey string    `json:"ssh_host_key,omitempty" doc:"the VM's SSH host key as the first script run found it; later runs require it"`
	TaskID     string    `json:"task_id,omitempty" doc:"the last task that changed the VM"`
	Error      string    `json:"error,omitempty"`
	Created    time.Time `json:"created"`
	// LimitsApplied says how the last limits change took effect.
	LimitsApplied string `json:"limits_applied,omitempty" enum:"live,next_start" doc:"how the last limits change took effect: live on the running VM, or at its next start"`
	// Console is the graphical console the VM was created with.
	Console string `json:"console,omitempty" enum:"vnc,spice,none" doc:"graphical console: vnc (the web console), spice, or none"`
	// AntiAffinity keeps the VM off the nodes of the other members of its group.
	AntiAffinity *AntiAffinity `json:"anti_affinity,omitempty"`
	// TemplateID and TemplateVersion name the domain template the VM was
	// defined with (empty: the built-in one).
	TemplateID      string `json:"template_id,omitempty"`
	TemplateVersion int    `json:"template_version,omitempty"`
}

var namePattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// ValidName checks an object name (DNS label rules: they become host and
// domain names) and names the field at fault.
func ValidName(field, name string) error {
	if !namePattern.MatchString(name) {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "%s %q: lower-case letters, digits and inner dashes, at most 63", field, name)
	}
	return nil
}

// ConsoleInfo tells a client what console a VM has; it is opened with a
// ticket (POST /v1/vms/{id}/console), never at the node's address.
type ConsoleInfo struct {
	Type string `json:"type" doc:"vnc or spice"`
	// Open says whether a console can be opened now (the VM runs).
	Open bool `json:"open"`
}
