//go:build ceph

package main

import (
	"context"
	"strings"

	"github.com/virtplane/virtplane/agent"
	"github.com/virtplane/virtplane/storage"
	"github.com/virtplane/virtplane/storage/ceph"
)

// cephOpeners: with the ceph build tag, the agent opens RBD pools. Path is
// the RADOS pool; options: conf (ceph.conf), user (cephx, without
// "client."), monitors ("host:port,host:port", handed to QEMU), secret (the
// libvirt secret UUID of the user's key).
func cephOpeners() map[string]agent.PoolOpener {
	return map[string]agent.PoolOpener{
		"ceph": func(ctx context.Context, spec agent.PoolSpec, _ storage.Executor) (storage.Pool, error) {
			opts, err := options(spec, "conf", "user", "monitors", "secret")
			if err != nil {
				return nil, err
			}
			var mons []string
			if opts["monitors"] != "" {
				mons = strings.Split(opts["monitors"], ",")
			}
			return ceph.New(ctx, ceph.Config{Name: spec.Name, Pool: spec.Path, Conf: opts["conf"], User: opts["user"],
				Monitors: mons, Secret: opts["secret"], Tags: spec.Tags})
		},
	}
}
