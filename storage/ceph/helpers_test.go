//go:build ceph

package ceph_test

import (
	"context"
	"slices"

	"github.com/virtplane/virtplane/storage"
)

// failConvert runs every command but makes qemu-img convert fail for real
// (an unknown cache mode), so the failure comes from the tool itself.
type failConvert struct{ next storage.Executor }

func (f failConvert) Run(ctx context.Context, c storage.Command) ([]byte, error) {
	if c.Name == "qemu-img" && len(c.Args) > 0 && c.Args[0] == "convert" {
		c.Args = slices.Insert(slices.Clone(c.Args), 1, "-t", "no-such-cache-mode")
	}
	return f.next.Run(ctx, c)
}
