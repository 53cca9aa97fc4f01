//go:build !ceph

package main

import "github.com/virtplane/virtplane/agent"

// cephOpeners: without the ceph build tag (no librados), the agent opens
// no RBD pools; asking for one is ErrNotImplemented naming the drivers
// there are.
func cephOpeners() map[string]agent.PoolOpener { return nil }
