//go:build !ceph

package opener

import (
	"context"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/storage"
)

// Ceph is the ceph driver; this binary was built without the ceph tag
// (librados), so its specs validate but do not open.
func Ceph() Driver {
	return Driver{
		Name: "ceph", Shared: true, Path: "RADOS pool", CheckPath: storage.ValidateName, Options: cephOptions(),
		Open: func(context.Context, Spec, storage.Executor) (storage.Pool, error) {
			return nil, virtplane.Errorf(virtplane.ErrNotImplemented, "ceph storage: this binary was built without the ceph tag (librados)")
		},
	}
}
