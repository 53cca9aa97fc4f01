package flow

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/node"
	"github.com/virtplane/virtplane/daemon/store"
	"github.com/virtplane/virtplane/storage"
)

// SharedStorages opens the shared storages of clusters (Ceph, a SAN): one
// backend for every node of the cluster, which the daemon reaches itself,
// so that a disk made there is the same volume on every node.
type SharedStorages interface {
	// Shared reports whether a storage driver keeps one backend for a
	// whole cluster.
	Shared(driver string) bool
	// OpenShared opens storage ref of cluster c.
	OpenShared(ctx context.Context, c model.Cluster, ref model.StorageRef) (storage.Pool, error)
}

// storagePool opens storage ref of cluster c for node n: a shared storage
// through the daemon, a local one on the node. A simulated node simulates
// every storage.
func (f *Flow) storagePool(ctx context.Context, n model.Node, b *node.Backend, c model.Cluster, ref model.StorageRef) (storage.Pool, error) {
	if f.IsShared(b, ref.Driver) {
		return f.cfg.Shared.OpenShared(ctx, c, ref)
	}
	if b.Pool == nil {
		return nil, node.NotOffered(n, "no storage pool")
	}
	return b.Pool(ctx, ref)
}

// OpenStorage opens storage ref of cluster c for node n whose backend is b,
// as the tasks do (a shared storage through the daemon).
func (f *Flow) OpenStorage(ctx context.Context, n model.Node, b *node.Backend, c model.Cluster, ref model.StorageRef) (storage.Pool, error) {
	return f.storagePool(ctx, n, b, c, ref)
}

// IsShared reports whether a storage has one backend for its whole cluster.
func (f *Flow) IsShared(b *node.Backend, driver string) bool {
	return f.cfg.Shared != nil && !b.Simulated && f.cfg.Shared.Shared(driver)
}

// vmPool is the pool of a VM's root disk on node nodeID: its cluster
// storage named storageName, or, for a VM made before storages were chosen
// (storageName empty), the node's disk pool.
func (f *Flow) vmPool(ctx context.Context, nodeID, storageName string) (storage.Pool, error) {
	n, b, err := f.backend(ctx, nodeID)
	if err != nil {
		return nil, err
	}
	if storageName == "" {
		return f.diskPool(ctx, n, b)
	}
	c, err := f.cluster(ctx, n.ClusterID)
	if err != nil {
		return nil, err
	}
	ref, ok := c.Storage(storageName)
	if !ok {
		return nil, virtplane.Errorf(virtplane.ErrNotFound, "storage %s is no longer a storage of cluster %s", storageName, c.Name)
	}
	return f.storagePool(ctx, n, b, c, ref)
}

// poolAndExec is the pool of a VM disk in storage storageName on node
// nodeID and the node's executor, which copies disks there.
func (f *Flow) poolAndExec(ctx context.Context, nodeID, storageName string) (storage.Pool, storage.Executor, error) {
	pool, err := f.vmPool(ctx, nodeID, storageName)
	if err != nil {
		return nil, nil, err
	}
	n, err := f.node(ctx, nodeID)
	if err != nil {
		return nil, nil, err
	}
	ex, err := f.nodeExec(ctx, n)
	return pool, ex, err
}

// chooseStorage picks the storage of a new root disk of size bytes on node
// nodeID: the first candidate (model.Cluster.StorageCandidates) that has
// room, its virtual sizes counted against its capacity times its disk
// overcommit (the storage's, else the cluster's). A cluster without
// storages gives "" (the node's own pool). When none has room the error
// says, storage by storage, why not.
func (f *Flow) chooseStorage(ctx context.Context, vm model.VM, nodeID string, size int64) (string, error) {
	return f.chooseStorageFor(ctx, nodeID, vm.Storage, vm.StorageTags, size)
}

// chooseStorageFor is chooseStorage for a disk that names its storage
// (name) or the tags its storage must carry.
func (f *Flow) chooseStorageFor(ctx context.Context, nodeID, name string, tags []string, size int64) (string, error) {
	n, b, err := f.backend(ctx, nodeID)
	if err != nil {
		return "", err
	}
	c, err := f.cluster(ctx, n.ClusterID)
	if err != nil {
		return "", err
	}
	cands, why, err := c.StorageCandidates(name, tags)
	if err != nil || len(cands) == 0 {
		return "", err
	}
	for _, ref := range cands {
		pool, err := f.storagePool(ctx, n, b, c, ref)
		if err != nil {
			why = append(why, fmt.Sprintf("%s: %v", ref.Name, err))
			continue
		}
		info, err := pool.Info(ctx)
		if err != nil {
			why = append(why, fmt.Sprintf("%s: %v", ref.Name, err))
			continue
		}
		if reason := room(info, overcommit(ref, c), size); reason != "" {
			why = append(why, ref.Name+": "+reason)
			continue
		}
		return ref.Name, nil
	}
	return "", virtplane.Errorf(virtplane.ErrResourceExhausted, "no storage of cluster %s on node %s can hold a %d GiB disk: %s", c.Name, n.Name, size>>30, strings.Join(why, "; "))
}

// overcommit is the disk overcommit of a storage: its own, else its
// cluster's, else none.
func overcommit(ref model.StorageRef, c model.Cluster) float64 {
	switch {
	case ref.DiskOvercommit >= 1:
		return ref.DiskOvercommit
	case c.DiskOvercommit >= 1:
		return c.DiskOvercommit
	}
	return 1
}

// room says why a pool cannot take another size bytes of virtual disk, or
// "" when it can. A pool that does not know its capacity takes any.
func room(info storage.PoolInfo, over float64, size int64) string {
	if info.Capacity <= 0 {
		return ""
	}
	limit := int64(float64(info.Capacity) * over)
	if info.Allocated+size <= limit {
		return ""
	}
	return fmt.Sprintf("%d GiB of %d GiB taken (capacity %d GiB, overcommit %g)", info.Allocated>>30, limit>>30, info.Capacity>>30, over)
}

// imageLocks serialises the copies of one image into one pool, so that
// two creates do not both copy it, or clone one half copied.
type imageLocks struct {
	mu    sync.Mutex
	locks map[string]*sync.Mutex
}

func (l *imageLocks) lock(key string) func() {
	l.mu.Lock()
	if l.locks == nil {
		l.locks = map[string]*sync.Mutex{}
	}
	m, ok := l.locks[key]
	if !ok {
		m = &sync.Mutex{}
		l.locks[key] = m
	}
	l.mu.Unlock()
	m.Lock()
	return m.Unlock
}

// baseIn makes sure pool holds the image's base volume, copying it from
// the node's image pool (where imports put it) when pool is another one.
// A copy is recorded (store.KindImageBase) once whole: a base volume
// found without its record is a copy a crashed daemon left half done,
// deleted and copied again. (One that linked clones depend on was whole:
// it only predates the records, and gets one.)
func (f *Flow) baseIn(ctx context.Context, ex storage.Executor, images, pool storage.Pool, same bool, nodeID, storageName, imageID string) error {
	if same {
		return f.ensureImage(ctx, pool, imageID)
	}
	info, err := pool.Info(ctx)
	if err != nil {
		return err
	}
	defer f.images.lock(info.Name + "/" + imageID)()
	name := ImageVolume(imageID)
	key := baseKey(nodeID, storageName, imageID)
	whole := func() error { return f.recordBase(ctx, key, imageID) }
	if v, err := pool.Volume(ctx, name); err == nil {
		if _, err := f.cfg.Store.GetObject(ctx, store.KindImageBase, key); err == nil || !errors.Is(err, virtplane.ErrNotFound) {
			return err
		}
		// Two storages may be one backend: then this is the image's own
		// base, which imports make whole.
		if iv, err := images.Volume(ctx, name); err == nil && reflect.DeepEqual(iv.Attachment, v.Attachment) {
			return whole()
		}
		switch err := pool.Delete(ctx, name); {
		case errors.Is(err, virtplane.ErrConflict):
			return whole() // clones depend on it: it was whole
		case err != nil && !errors.Is(err, virtplane.ErrNotFound):
			return fmt.Errorf("delete the half copied base of image %s in storage %s: %w", imageID, storageName, err)
		}
	} else if !errors.Is(err, virtplane.ErrNotFound) {
		return err
	}
	if err := f.ensureImage(ctx, images, imageID); err != nil {
		return err
	}
	if ex == nil {
		return virtplane.Errorf(virtplane.ErrNotImplemented, "the node has no storage command executor to copy image %s into storage %s", imageID, info.Name)
	}
	if _, err := storage.CopyVolume(ctx, ex, images, name, pool, name); err != nil {
		return err
	}
	return whole()
}

// baseKey names the record of an image's base in a storage: of the node,
// or, for a shared storage (nodeID empty), of the cluster.
func baseKey(nodeID, storageName, imageID string) string {
	return cmp.Or(nodeID, "shared") + "/" + storageName + "/" + imageID
}

// recordBase records a whole base copy; recorded already is fine.
func (f *Flow) recordBase(ctx context.Context, key, imageID string) error {
	err := f.cfg.Store.Update(ctx, func(tx store.Tx) error {
		return tx.CreateObject(ctx, &store.Object{Kind: store.KindImageBase, ID: key, Name: key, Parent: imageID, Data: []byte("{}")})
	})
	if errors.Is(err, virtplane.ErrAlreadyExists) {
		return nil
	}
	return err
}
