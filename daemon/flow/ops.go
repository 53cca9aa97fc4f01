package flow

import (
	"context"
	"net/http"

	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/node"
	"github.com/virtplane/virtplane/daemon/tasks"
	netport "github.com/virtplane/virtplane/network/port"
	"github.com/virtplane/virtplane/storage"
	"github.com/virtplane/virtplane/vmm"
)

// Option sets an optional part of the flows: what image imports from URLs
// need beyond the nodes of Config.
type Option func(*options)

type options struct {
	cache *storage.ImageCache
	http  *http.Client
}

// WithImageCache sets where images given by URL are fetched to before they
// are imported; without it URL sources are refused.
func WithImageCache(c *storage.ImageCache) Option { return func(o *options) { o.cache = c } }

// WithHTTPClient sets the client that fetches images given by URL (default:
// a client without an overall timeout; the task's context bounds it).
func WithHTTPClient(c *http.Client) Option { return func(o *options) { o.http = c } }

// registerOps installs the handlers and undo actions of disk resize, image
// import and migration (resize.go, image.go, migrate.go).
func (f *Flow) registerOps(e *tasks.Engine) {
	e.OnUndo(undoResources, f.undoResources)
	img := func(run func(context.Context, *tasks.Run) error) tasks.Handler {
		return tasks.Handler{Run: run, Finish: f.finishImage}
	}
	e.Handle(KindImageImport, img(f.importImage))
	e.Handle(KindImageDelete, img(f.deleteImage))
	e.OnUndo(undoRemoveBase, f.undoRemoveBase)
	e.OnUndo(undoUncache, f.undoUncache)
	e.OnUndo(undoRedefine, f.undoRedefine)
	e.OnUndo(undoMigrateBack, f.undoMigrateBack)
	e.OnUndo(undoPortSetup, f.undoPortSetup)
}

// NodeDriver returns the hypervisor driver of a node, as the tasks use it
// (for checks and tools that look at a node directly).
func (f *Flow) NodeDriver(ctx context.Context, nodeID string) (vmm.Driver, error) {
	return f.nodeDriver(ctx, nodeID)
}

// NodePool returns the storage pool of a node, as the tasks use it.
func (f *Flow) NodePool(ctx context.Context, nodeID string) (storage.Pool, error) {
	return f.nodePool(ctx, nodeID)
}

// VMPool returns the storage pool that holds a VM's root disk.
func (f *Flow) VMPool(ctx context.Context, vm model.VM) (storage.Pool, error) {
	return f.vmPool(ctx, vm.NodeID, vm.Storage)
}

// NodePorts returns the network ports of a node, as the tasks use them.
func (f *Flow) NodePorts(ctx context.Context, nodeID string) (netport.Ports, error) {
	return f.nodePorts(ctx, nodeID)
}

func (f *Flow) nodeExec(ctx context.Context, n model.Node) (storage.Executor, error) {
	b, err := f.open(ctx, n)
	if err != nil {
		return nil, err
	}
	if b.Exec == nil {
		return nil, node.NotOffered(n, "no storage command executor")
	}
	return b.Exec, nil
}

// migrationTarget tells the hypervisor of node from how to reach the one of
// node to for a live migration.
func (f *Flow) migrationTarget(ctx context.Context, from, to model.Node) (vmm.MigrationTarget, error) {
	src, err := f.open(ctx, from)
	if err != nil {
		return vmm.MigrationTarget{}, err
	}
	dst, err := f.open(ctx, to)
	if err != nil {
		return vmm.MigrationTarget{}, err
	}
	if src.MigrateTo == nil {
		return vmm.MigrationTarget{}, node.NotOffered(from, "no live migration")
	}
	return src.MigrateTo(ctx, dst)
}
