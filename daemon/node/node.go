package node

import (
	"context"
	"fmt"
	"io"
	"net"
	"sort"
	"strings"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/model"
	netport "github.com/virtplane/virtplane/network/port"
	"github.com/virtplane/virtplane/storage"
	"github.com/virtplane/virtplane/storage/opener"
	"github.com/virtplane/virtplane/vmm"
)

// Address is a node address parsed once: the kind that reads it and the
// kind's own form of it.
type Address struct {
	// Kind is the name of the registered kind that read the address.
	Kind string
	// Raw is the address as the operator wrote it (canonical when the
	// kind rewrites it).
	Raw string
	// Parsed is the kind's own reading (a model.SSHAddress, a
	// model.LibvirtAddress, nil for an address without parts).
	Parsed any
}

// Target is what opens a node: its record, its cluster (whose
// virtualization type picks the hypervisor driver) and its parsed address.
type Target struct {
	Node    model.Node
	Cluster model.Cluster
	Address Address
}

// Facts is what a node reports of itself when it is added and when asked.
type Facts struct {
	Cores     int
	MemoryMiB int64
	// DiskGiB is the capacity of the node's own storage for VM disks.
	DiskGiB  int64
	Hostname string
	// HostKey is the SSH host key the daemon pinned (authorized_keys
	// form), for nodes reached over SSH.
	HostKey string
	// HostKeyFingerprint is its SHA256 fingerprint, shown to the operator.
	HostKeyFingerprint string
	// AgentVersion is the version of the node agent running there.
	AgentVersion string
	// Nominal says the capacity is a default, not read from hardware (a
	// simulated node): an operator may set any.
	Nominal bool
	// Addresses are the node's own addresses: never given to a VM there.
	Addresses []string
	// Warnings are what is wrong with the node without keeping it out (a
	// hostname that does not resolve): shown to the operator on the node.
	Warnings []string
}

// Credentials are what the operator gives once to add a node (VMmanager's
// "add node": an SSH password or key); the daemon logs in with them to
// prepare the node and never stores them.
type Credentials struct {
	Password   string
	PrivateKey string // PEM
	// HostKeyFingerprint, when set, is the SHA256 fingerprint the node's
	// host key must have; when empty the key seen on first contact is
	// pinned (and shown).
	HostKeyFingerprint string
}

// Backend is an opened node: what it offers. Fields a kind cannot offer
// are nil, and their users say so with ErrNotImplemented.
type Backend struct {
	// Kind is the name of the node's kind (for logs and errors only).
	Kind string
	// Simulated is true for nodes made of fakes: their VMs never move to
	// or from real nodes.
	Simulated bool
	// VMM runs the node's machines; the cluster's virtualization type
	// chose it (libvirt for kvm, LXD for lxd).
	VMM vmm.Driver
	// Pool opens a storage of the node's cluster on this node.
	Pool func(ctx context.Context, ref model.StorageRef) (storage.Pool, error)
	// OwnPool is the node's own pool, for VM disks of clusters without
	// storages.
	OwnPool func(ctx context.Context) (storage.Pool, error)
	// Ports makes the network ports of the node's VM NICs.
	Ports netport.Ports
	// Exec runs storage commands (qemu-img) on the node.
	Exec storage.Executor
	// Upload streams a file (an image) onto the node and returns its path
	// there; nil means the node sees the daemon's own files.
	Upload func(ctx context.Context, name string, r io.Reader, size int64) (path string, err error)
	// MigrateTo tells this node's hypervisor how to reach dst's for a live
	// migration; nil: the node's VMs only move cold.
	MigrateTo func(ctx context.Context, dst *Backend) (vmm.MigrationTarget, error)
	// Facts reads the node's capacity and identity.
	Facts func(ctx context.Context) (Facts, error)
	// Dial opens a connection to an address on the node (a console port
	// its hypervisor listens on at 127.0.0.1).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Handle is the kind's own handle, for MigrateTo between two nodes of
	// one kind.
	Handle any
	// Close releases what the backend holds (connections); may be nil.
	Close func() error
}

// Kind is one kind of node.
type Kind struct {
	// Name names the kind ("sim", "local", "ssh").
	Name string
	// Forms describes the addresses the kind reads, for error messages
	// and the API documentation ("ssh://USER@HOST[:PORT]").
	Forms string
	// Parse reads an address: ok is false, with no error, when the
	// address is not of this kind. The error names field.
	Parse func(field, raw string) (parsed any, canonical string, ok bool, err error)
	// Prepare makes a new node of this kind ready before it is recorded
	// (connect, pin the host key, install and start the agent) and reads
	// its facts. nil: nothing to prepare; Open's Facts are read.
	Prepare func(ctx context.Context, name string, addr Address, virtType string, cred Credentials) (Facts, error)
	// Open opens a recorded node of this kind.
	Open func(ctx context.Context, t Target) (*Backend, error)
	// Remote is true for a kind whose Open dials another machine (SSH,
	// the node's agent): a metrics scrape then reports the node only
	// when it is already open instead of dialing, so that a scrape of many
	// nodes stays a read of what the daemon knows.
	Remote bool
}

// Kinds is the set of registered node kinds.
type Kinds struct {
	kinds  []Kind
	byName map[string]Kind
}

// NewKinds registers kinds; a later kind with the name of an earlier one
// replaces it (a daemon's Config overrides a built-in kind that way).
func NewKinds(kinds ...Kind) (*Kinds, error) {
	k := &Kinds{byName: map[string]Kind{}}
	for _, kd := range kinds {
		if kd.Name == "" || kd.Parse == nil || kd.Open == nil {
			return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "node kind %q: needs a name, Parse and Open", kd.Name)
		}
		if _, dup := k.byName[kd.Name]; dup {
			for i := range k.kinds {
				if k.kinds[i].Name == kd.Name {
					k.kinds[i] = kd
				}
			}
		} else {
			k.kinds = append(k.kinds, kd)
		}
		k.byName[kd.Name] = kd
	}
	return k, nil
}

// Names lists the registered kinds, sorted.
func (k *Kinds) Names() []string {
	names := make([]string, 0, len(k.kinds))
	for _, kd := range k.kinds {
		names = append(names, kd.Name)
	}
	sort.Strings(names)
	return names
}

// Forms describes every address form the kinds read.
func (k *Kinds) Forms() string {
	forms := make([]string, 0, len(k.kinds))
	for _, kd := range k.kinds {
		forms = append(forms, kd.Forms)
	}
	return strings.Join(forms, ", ")
}

// Parse reads an address with the first kind that takes it. An address no
// kind takes is ErrInvalidArgument naming field and the forms there are.
func (k *Kinds) Parse(field, raw string) (Address, error) {
	for _, kd := range k.kinds {
		parsed, canonical, ok, err := kd.Parse(field, raw)
		if err != nil {
			return Address{}, err
		}
		if ok {
			if canonical == "" {
				canonical = raw
			}
			return Address{Kind: kd.Name, Raw: canonical, Parsed: parsed}, nil
		}
	}
	return Address{}, virtplane.Errorf(virtplane.ErrInvalidArgument, "%s %q: not a node address (%s)", field, raw, k.Forms())
}

// Kind returns the registered kind named name.
func (k *Kinds) Kind(name string) (Kind, error) {
	kd, ok := k.byName[name]
	if !ok {
		return Kind{}, virtplane.Errorf(virtplane.ErrNotFound, "node kind %q is not registered", name)
	}
	return kd, nil
}

// Prepare prepares a new node at addr and returns its facts.
func (k *Kinds) Prepare(ctx context.Context, name string, addr Address, virtType string, cred Credentials) (Facts, error) {
	kd, err := k.Kind(addr.Kind)
	if err != nil {
		return Facts{}, err
	}
	if kd.Prepare == nil {
		if cred != (Credentials{}) {
			return Facts{}, virtplane.Errorf(virtplane.ErrInvalidArgument, "node %s: %s nodes take no credentials", name, kd.Name)
		}
		return Facts{}, nil
	}
	return kd.Prepare(ctx, name, addr, virtType, cred)
}

// Open opens the node t names with its kind.
func (k *Kinds) Open(ctx context.Context, t Target) (*Backend, error) {
	kd, err := k.Kind(t.Address.Kind)
	if err != nil {
		return nil, err
	}
	b, err := kd.Open(ctx, t)
	if err != nil {
		return nil, err
	}
	b.Kind = kd.Name
	return b, nil
}

// PoolSpec is the pool spec of a cluster storage (storage/opener's, and
// the node agent's wire form): its tags become the pool's labels.
func PoolSpec(ref model.StorageRef) opener.Spec {
	spec := opener.Spec{Name: ref.Name, Driver: ref.Driver, Path: ref.Path, Options: ref.Options}
	if len(ref.Tags) > 0 {
		spec.Tags = map[string]string{}
		for _, t := range ref.Tags {
			spec.Tags[t] = ""
		}
	}
	return spec
}

// ErrNotOffered is the class of NotOffered's errors: nothing was ever made
// on the node with a part it does not have, so there is nothing to undo.
// It wraps virtplane.ErrNotImplemented.
var ErrNotOffered = fmt.Errorf("not offered by the node: %w", virtplane.ErrNotImplemented)

// NotOffered is the error of a backend part a node does not have.
func NotOffered(n model.Node, what string) error {
	return fmt.Errorf("node %s: %s: %w", n.Name, what, ErrNotOffered)
}
