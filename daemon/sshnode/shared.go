package sshnode

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/storage"
)

// SharedDir makes dir on the node (through ex) and checks that the daemon
// sees the same directory at the same path: it creates a file of a random
// name there on the node and looks for it here. A node whose directory the
// daemon does not see is refused with ErrNotImplemented: storage/file and
// vmm/libvirt reach their files through the daemon's file system.
func SharedDir(ctx context.Context, ex storage.Executor, node, dir string) error {
	if !path.IsAbs(dir) || path.Clean(dir) != dir {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "node %s: directory %q must be an absolute, clean path", node, dir)
	}
	if _, err := ex.Run(ctx, storage.Command{Name: "mkdir", Args: []string{"-p", "--", dir}}); err != nil {
		return unavailable(node, "make "+dir, err)
	}
	out, err := ex.Run(ctx, storage.Command{Name: "mktemp", Args: []string{"-p", dir, ".virtplane-shared-XXXXXXXXXX"}})
	if err != nil {
		return unavailable(node, "probe "+dir, err)
	}
	probe := strings.TrimSpace(string(out))
	defer func() {
		_, _ = ex.Run(context.WithoutCancel(ctx), storage.Command{Name: "rm", Args: []string{"-f", "--", probe}})
	}()
	if path.Dir(probe) != dir {
		return virtplane.Errorf(virtplane.ErrUnavailable, "node %s: probe of %s: mktemp answered %q", node, dir, probe)
	}
	if _, err := os.Stat(probe); errors.Is(err, fs.ErrNotExist) {
		return virtplane.Errorf(virtplane.ErrNotImplemented,
			"node %s: its directory %s is not the daemon's %s (no shared storage): nodes whose disks and VM files only they can see are not supported yet", node, dir, dir)
	} else if err != nil {
		return virtplane.Errorf(virtplane.ErrUnavailable, "node %s: %s here: %v", node, dir, err)
	}
	return nil
}

// unavailable keeps the class of err when it has one (unavailable,
// canceled) and makes it unavailable otherwise (a command that failed).
func unavailable(node, what string, err error) error {
	if virtplane.Class(err) != nil {
		return err
	}
	return virtplane.Errorf(virtplane.ErrUnavailable, "node %s: %s: %v", node, what, err)
}
