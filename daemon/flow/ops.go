package flow

import (
	"context"

	"github.com/virtplane/virtplane/daemon/tasks"
	"github.com/virtplane/virtplane/storage"
	"github.com/virtplane/virtplane/vmm"
)

// registerOps installs the handlers and undo actions of disk resize, image
// import and migration (resize.go, image.go, migrate.go).
func (f *Flow) registerOps(e *tasks.Engine) {
	e.OnUndo(undoResources, f.undoResources)
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
