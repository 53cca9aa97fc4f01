//go:build ceph

package opener

import (
	"context"

	"github.com/virtplane/virtplane/storage"
	"github.com/virtplane/virtplane/storage/ceph"
)

// Ceph is the ceph driver (storage/ceph): RBD images in the RADOS pool
// Path, reached through librados.
func Ceph() Driver {
	return Driver{
		Name: "ceph", Shared: true, Path: "RADOS pool", CheckPath: storage.ValidateName, Options: cephOptions(),
		Open: func(ctx context.Context, spec Spec, _ storage.Executor) (storage.Pool, error) {
			o := spec.Options
			return ceph.New(ctx, ceph.Config{Name: spec.Name, Pool: spec.Path, Conf: o["conf"], User: o["user"],
				Monitors: splitList(o["monitors"]), Secret: o["secret"], Tags: spec.Tags})
		},
	}
}
