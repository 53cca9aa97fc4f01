package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/storage"
)

// ListenUnix listens on the unix socket path for Serve: the only way the
// agent is reached. The socket is 0600 in a directory of mode 0700 (made
// when missing; an existing directory that others may enter is refused),
// so that only the node's root, and a controller coming in over SSH as
// root, can connect: the SSH login authenticates the controller, the host
// key the node. A stale socket of an agent that died is replaced; a socket
// an agent still answers on is ErrConflict.
func ListenUnix(path string) (net.Listener, error) {
	if err := storage.ValidatePath("agent socket", path); err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, virtplane.Errorf(virtplane.ErrUnavailable, "agent socket directory %s: %v", dir, err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		return nil, virtplane.Errorf(virtplane.ErrUnavailable, "agent socket directory %s: %v", dir, err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, virtplane.Errorf(virtplane.ErrPermissionDenied, "agent socket directory %s has mode %04o: want 0700, a directory of the agent's own", dir, st.Mode().Perm())
	}
	if _, err := os.Lstat(path); err == nil {
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			_ = c.Close()
			return nil, virtplane.Errorf(virtplane.ErrConflict, "agent socket %s: an agent answers there already", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, virtplane.Errorf(virtplane.ErrUnavailable, "agent socket %s: removing the stale socket: %v", path, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, virtplane.Errorf(virtplane.ErrUnavailable, "agent socket %s: %v", path, err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, virtplane.Errorf(virtplane.ErrUnavailable, "agent socket %s: %v", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		_ = l.Close()
		return nil, fmt.Errorf("agent socket %s: %w", path, err)
	}
	return l, nil
}
