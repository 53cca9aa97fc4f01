// Package simnode is a simulated node whose hypervisor survives the
// daemon: the vmm/fake driver, with every machine's definition and power
// state written to the daemon's store after each change and read back when
// the node is opened again. A daemon killed with SIGKILL and restarted finds
// the machines its simulated nodes had, the way a restarted daemon finds the
// domains of a real libvirtd. `make run` uses one when no libvirtd answers;
// the crash test and the benchmarks use many. Storage and Ports do the same
// for the node's storage pool (storage/fake) and network ports
// (netport.Fake).
//
// A change is durable once its record is written, right after the fake
// acted; a kill in between loses the change as if the hypervisor had never
// done it, which is one of the outcomes a real crash can have too.
//
//	n, err := simnode.Open(ctx, st, nodeID)
//	_, err = n.Create(ctx, spec) // recorded in the store
package simnode

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/store"
	"github.com/virtplane/virtplane/vmm"
	"github.com/virtplane/virtplane/vmm/fake"
)

// Node is a durable simulated hypervisor.
type Node struct {
	*fake.Driver
	st store.Store
	id string

	mu    sync.Mutex
	peers map[string]*Node // migration targets by URI
}

var (
	_ vmm.Driver           = (*Node)(nil)
	_ vmm.Migrator         = (*Node)(nil)
	_ vmm.MigrationAborter = (*Node)(nil)
	_ vmm.DiskResizer      = (*Node)(nil)
	_ vmm.DiskAttacher     = (*Node)(nil)
	_ vmm.DiskCopier       = (*Node)(nil)
)

type record struct {
	Spec  vmm.Spec  `json:"spec"`
	State vmm.State `json:"state"`
	// Migration is the target of the machine's outgoing migration job
	// while one runs: a job the daemon that started it left behind, which
	// the hypervisor still runs when the node is opened again.
	Migration *vmm.MigrationTarget `json:"migration,omitempty"`
}

// update records a change of a simulated node in st. With no store the
// node keeps its state in memory only, and forgets it when the daemon stops.
func update(ctx context.Context, st store.Store, f func(tx store.Tx) error) error {
	if st == nil {
		return nil
	}
	return st.Update(ctx, f)
}

// Open returns the simulated node nodeID with the machines recorded for it
// in st (nil: a node in memory only).
func Open(ctx context.Context, st store.Store, nodeID string) (*Node, error) {
	n := &Node{Driver: fake.New(), st: st, id: nodeID, peers: map[string]*Node{}}
	if st == nil {
		return n, nil
	}
	after := ""
	for {
		objs, err := st.ListObjects(ctx, store.KindSimState, store.ListOptions{Parent: nodeID, After: after, Limit: 1000})
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			var r record
			if err := json.Unmarshal(o.Data, &r); err != nil {
				return nil, virtplane.Errorf(virtplane.ErrUnavailable, "simulated node %s machine %s: %v", nodeID, o.Name, err)
			}
			if _, err := n.Driver.Create(ctx, r.Spec); err != nil {
				return nil, err
			}
			if r.State == vmm.StateRunning {
				if err := n.Driver.Start(ctx, r.Spec.Name); err != nil {
					return nil, err
				}
			}
			if r.Migration != nil && r.State == vmm.StateRunning {
				if err := n.Driver.AddMigrationJob(r.Spec.Name, *r.Migration); err != nil {
					return nil, err
				}
			}
		}
		if len(objs) < 1000 {
			return n, nil
		}
		after = objs[len(objs)-1].ID
	}
}

// ID is the node's ID.
func (n *Node) ID() string { return n.id }

func (n *Node) key(name string) string { return n.id + "/" + name }

// save records a machine's definition and state, or its absence.
func (n *Node) save(ctx context.Context, name string) error {
	ctx = context.WithoutCancel(ctx)
	vm, err := n.Driver.Get(ctx, name)
	gone := errors.Is(err, virtplane.ErrNotFound)
	if err != nil && !gone {
		return err
	}
	return update(ctx, n.st, func(tx store.Tx) error {
		o, gerr := tx.GetObject(ctx, store.KindSimState, n.key(name))
		if gone {
			if gerr != nil {
				return nil
			}
			return tx.DeleteObject(ctx, store.KindSimState, o.ID, 0)
		}
		spec := vm.Spec
		if prev, err := decode(o); gerr == nil && err == nil {
			// Boot and CloudInit are not read back by drivers: keep them.
			spec.Boot, spec.CloudInit = prev.Spec.Boot, prev.Spec.CloudInit
		}
		rec := record{Spec: spec, State: vm.State}
		if job, ok := n.Driver.MigrationJob(name); ok {
			rec.Migration = &job
		}
		data, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		if gerr != nil {
			return tx.CreateObject(ctx, &store.Object{Kind: store.KindSimState, ID: n.key(name), Name: name, Parent: n.id, Data: data})
		}
		o.Data = data
		return tx.UpdateObject(ctx, &o)
	})
}

func decode(o store.Object) (record, error) {
	var r record
	err := json.Unmarshal(o.Data, &r)
	return r, err
}

func (n *Node) after(ctx context.Context, name string, err error) error {
	if err != nil {
		return err
	}
	return n.save(ctx, name)
}

// Create defines a machine and records it.
func (n *Node) Create(ctx context.Context, spec vmm.Spec) (vmm.VM, error) {
	vm, err := n.Driver.Create(ctx, spec)
	if err != nil {
		return vm, err
	}
	ctx = context.WithoutCancel(ctx)
	return vm, update(ctx, n.st, func(tx store.Tx) error {
		data, err := json.Marshal(record{Spec: spec, State: vmm.StateStopped})
		if err != nil {
			return err
		}
		return tx.CreateObject(ctx, &store.Object{Kind: store.KindSimState, ID: n.key(spec.Name), Name: spec.Name, Parent: n.id, Data: data})
	})
}

// Start boots a machine and records it.
func (n *Node) Start(ctx context.Context, name string) error {
	return n.after(ctx, name, n.Driver.Start(ctx, name))
}

// Stop powers a machine off and records it.
func (n *Node) Stop(ctx context.Context, name string) error {
	return n.after(ctx, name, n.Driver.Stop(ctx, name))
}

// Shutdown stops a machine gracefully and records it.
func (n *Node) Shutdown(ctx context.Context, name string, timeout time.Duration) error {
	return n.after(ctx, name, n.Driver.Shutdown(ctx, name, timeout))
}

// Delete removes a machine and its record.
func (n *Node) Delete(ctx context.Context, name string) error {
	return n.after(ctx, name, n.Driver.Delete(ctx, name))
}

// Resize changes a machine's resources and records it.
func (n *Node) Resize(ctx context.Context, name string, r vmm.Resources) error {
	return n.after(ctx, name, n.Driver.Resize(ctx, name, r))
}

// AttachDisk adds a disk to a machine and records it.
func (n *Node) AttachDisk(ctx context.Context, name string, disk vmm.Disk) error {
	return n.after(ctx, name, n.Driver.AttachDisk(ctx, name, disk))
}

// DetachDisk removes a disk from a machine and records it.
func (n *Node) DetachDisk(ctx context.Context, name, target string) error {
	return n.after(ctx, name, n.Driver.DetachDisk(ctx, name, target))
}

// CopyDisk switches a machine's disk to dest and records it.
func (n *Node) CopyDisk(ctx context.Context, name, target string, dest vmm.DiskSource, progress func(done, total int64)) error {
	return n.after(ctx, name, n.Driver.CopyDisk(ctx, name, target, dest, progress))
}

// AddPeer makes uri a live migration target that moves machines, and their
// records, to the simulated node peer.
func (n *Node) AddPeer(uri string, peer *Node) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.peers[uri] = peer
	n.Driver.AddPeer(uri, peer.Driver)
}

// Migrate moves a running machine to a peer (see AddPeer) and moves its
// record in one transaction: a crash leaves the machine on exactly one
// node, as the store says. A held migration (HoldMigrations) whose caller
// goes away runs on: the machine's record then names the job, and the node
// opened again has it running (see AbortMigration, ReleaseMigrations).
func (n *Node) Migrate(ctx context.Context, name string, target vmm.MigrationTarget, progress func(vmm.MigrationProgress)) error {
	n.mu.Lock()
	peer, ok := n.peers[target.URI]
	n.mu.Unlock()
	if !ok {
		return virtplane.Errorf(virtplane.ErrUnavailable, "migration target %q unknown", target.URI)
	}
	if err := n.Driver.Migrate(ctx, name, target, progress); err != nil {
		if _, running := n.Driver.MigrationJob(name); running {
			if serr := n.save(ctx, name); serr != nil {
				return errors.Join(err, serr)
			}
		}
		return err
	}
	return n.moveRecord(ctx, name, peer)
}

// AbortMigration ends a machine's outgoing migration job, if one runs, and
// records that it no longer does.
func (n *Node) AbortMigration(ctx context.Context, name string) error {
	return n.after(ctx, name, n.Driver.AbortMigration(ctx, name))
}

// ReleaseMigrations completes every migration job that runs, as the
// hypervisor would, and moves the records of the machines that moved. It
// returns the machines that moved; their targets must be peers (AddPeer).
func (n *Node) ReleaseMigrations(ctx context.Context) ([]string, error) {
	n.mu.Lock()
	peers := maps.Clone(n.peers)
	n.mu.Unlock()
	moved := n.Driver.ReleaseMigrations()
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(moved)) {
		errs = append(errs, n.moveRecord(ctx, name, peers[moved[name].URI]))
	}
	return slices.Sorted(maps.Keys(moved)), errors.Join(errs...)
}

// moveRecord moves the record of a machine that migrated to peer; a record
// moved already is left alone.
func (n *Node) moveRecord(ctx context.Context, name string, peer *Node) error {
	if peer == nil {
		return virtplane.Errorf(virtplane.ErrUnavailable, "vm %q migrated to a node that is not a peer: its record stays", name)
	}
	ctx = context.WithoutCancel(ctx)
	vm, err := peer.Driver.Get(ctx, name)
	if err != nil {
		return err
	}
	return update(ctx, n.st, func(tx store.Tx) error {
		o, err := tx.GetObject(ctx, store.KindSimState, n.key(name))
		if errors.Is(err, virtplane.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		r, err := decode(o)
		if err != nil {
			return err
		}
		// Boot and CloudInit are not read back by drivers: they travel
		// from the old record.
		spec := vm.Spec
		spec.Boot, spec.CloudInit = r.Spec.Boot, r.Spec.CloudInit
		data, err := json.Marshal(record{Spec: spec, State: vm.State})
		if err != nil {
			return err
		}
		if err := tx.DeleteObject(ctx, store.KindSimState, o.ID, 0); err != nil {
			return err
		}
		return tx.CreateObject(ctx, &store.Object{Kind: store.KindSimState, ID: peer.key(name), Name: name, Parent: peer.id, Data: data})
	})
}
