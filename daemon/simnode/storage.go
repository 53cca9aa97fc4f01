package simnode

import (
	"context"
	"encoding/json"
	"errors"
	"sort"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/store"
	"github.com/virtplane/virtplane/storage"
	storagefake "github.com/virtplane/virtplane/storage/fake"
)

// Storage is a simulated node's storage pool: storage/fake with its volumes
// recorded in the store after each change, like Node does for machines.
type Storage struct {
	*storagefake.Pool
	st     store.Store
	parent string
}

var (
	_ storage.Pool    = (*Storage)(nil)
	_ storage.Cloner  = (*Storage)(nil)
	_ storage.Resizer = (*Storage)(nil)
)

type volumeRecord struct {
	Volume storage.Volume `json:"volume"`
}

// OpenStorage returns the storage pool of simulated node nodeID with the
// volumes recorded for it in st (nil: a pool in memory only).
func OpenStorage(ctx context.Context, st store.Store, nodeID string) (*Storage, error) {
	return openStorage(ctx, st, "sim-"+nodeID, "storage/"+nodeID)
}

// OpenNamedStorage returns the pool of the cluster storage name on
// simulated node nodeID: a pool of its own, so that disks move between a
// simulated node's storages as between a real one's.
func OpenNamedStorage(ctx context.Context, st store.Store, nodeID, name string) (*Storage, error) {
	return openStorage(ctx, st, "sim-"+nodeID+"-"+name, "storage/"+nodeID+"@"+name)
}

func openStorage(ctx context.Context, st store.Store, poolName, parent string) (*Storage, error) {
	s := &Storage{Pool: storagefake.New(poolName, nil), st: st, parent: parent}
	if st == nil {
		return s, nil
	}
	var recs []storage.Volume
	after := ""
	for {
		objs, err := st.ListObjects(ctx, store.KindSimState, store.ListOptions{Parent: s.parent, After: after, Limit: 1000})
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			var r volumeRecord
			if err := json.Unmarshal(o.Data, &r); err != nil {
				return nil, virtplane.Errorf(virtplane.ErrUnavailable, "simulated volume %s: %v", o.Name, err)
			}
			recs = append(recs, r.Volume)
		}
		if len(objs) < 1000 {
			break
		}
		after = objs[len(objs)-1].ID
	}
	// Bases before the linked clones that read through them.
	sort.SliceStable(recs, func(i, j int) bool { return recs[i].Parent == "" && recs[j].Parent != "" })
	for _, v := range recs {
		var err error
		if v.Parent == "" {
			_, err = s.Pool.Create(ctx, storage.VolumeSpec{Name: v.Name, Size: v.Capacity, Format: v.Format})
		} else {
			_, err = s.Pool.Clone(ctx, v.Parent, v.Name, storage.CloneLinked)
			if err == nil {
				_, err = s.Pool.Resize(ctx, v.Name, v.Capacity, storage.ResizeOptions{AllowShrink: true})
			}
		}
		if err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Records lists the volumes recorded for a simulated node (for checks).
func Records(ctx context.Context, r store.Reader, nodeID string) ([]store.Object, error) {
	return r.ListObjects(ctx, store.KindSimState, store.ListOptions{Parent: "storage/" + nodeID})
}

func (s *Storage) key(name string) string { return s.parent + "/" + name }

func (s *Storage) save(ctx context.Context, name string) error {
	ctx = context.WithoutCancel(ctx)
	v, err := s.Pool.Volume(ctx, name)
	gone := errors.Is(err, virtplane.ErrNotFound)
	if err != nil && !gone {
		return err
	}
	return update(ctx, s.st, func(tx store.Tx) error {
		o, gerr := tx.GetObject(ctx, store.KindSimState, s.key(name))
		if gone {
			if gerr != nil {
				return nil
			}
			return tx.DeleteObject(ctx, store.KindSimState, o.ID, 0)
		}
		data, err := json.Marshal(volumeRecord{Volume: v})
		if err != nil {
			return err
		}
		if gerr != nil {
			return tx.CreateObject(ctx, &store.Object{Kind: store.KindSimState, ID: s.key(name), Name: name, Parent: s.parent, Data: data})
		}
		o.Data = data
		return tx.UpdateObject(ctx, &o)
	})
}

// Create makes a volume and records it.
func (s *Storage) Create(ctx context.Context, spec storage.VolumeSpec) (storage.Volume, error) {
	v, err := s.Pool.Create(ctx, spec)
	if err != nil {
		return v, err
	}
	return v, s.save(ctx, spec.Name)
}

// Clone copies a volume and records the copy.
func (s *Storage) Clone(ctx context.Context, src, dst string, mode storage.CloneMode) (storage.Volume, error) {
	v, err := s.Pool.Clone(ctx, src, dst, mode)
	if err != nil {
		return v, err
	}
	return v, s.save(ctx, dst)
}

// Resize changes a volume's size and records it.
func (s *Storage) Resize(ctx context.Context, name string, size int64, opts storage.ResizeOptions) (storage.Volume, error) {
	v, err := s.Pool.Resize(ctx, name, size, opts)
	if err != nil {
		return v, err
	}
	return v, s.save(ctx, name)
}

// Delete removes a volume and its record.
func (s *Storage) Delete(ctx context.Context, name string) error {
	if err := s.Pool.Delete(ctx, name); err != nil {
		return err
	}
	return s.save(ctx, name)
}
