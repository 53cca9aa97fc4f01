//go:build ceph

package ceph_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/storage"
)

// deleteOrReport removes a volume at the end of a test. It must not use
// t.Context(), which is canceled before cleanups run.
func deleteOrReport(t testing.TB, p storage.Pool, name string) {
	t.Helper()
	if err := p.Delete(context.Background(), name); err != nil && !errors.Is(err, virtplane.ErrNotFound) {
		t.Errorf("cleanup: delete %q: %v", name, err)
	}
}

// failConvert runs every command but makes qemu-img convert fail for real
// (an unknown cache mode), so the failure comes from the tool itself.
type failConvert struct{ next storage.Executor }

func (f failConvert) Run(ctx context.Context, c storage.Command) ([]byte, error) {
	if c.Name == "qemu-img" && len(c.Args) > 0 && c.Args[0] == "convert" {
		c.Args = slices.Insert(slices.Clone(c.Args), 1, "-t", "no-such-cache-mode")
	}
	return f.next.Run(ctx, c)
}
