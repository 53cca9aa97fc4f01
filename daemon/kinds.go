package daemon

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/agent"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/node"
	"github.com/virtplane/virtplane/vmm"
)

// builtinKinds are the node kinds of every daemon; Config.NodeKinds adds
// kinds or replaces these by name.
func (s *Server) builtinKinds() []node.Kind {
	return []node.Kind{s.simKind(), s.localKind(), s.hostKind(), s.sshKind()}
}

// openedBackend is a node's backend as opened for one address and
// virtualization type (key): a node is opened again when either changes.
type openedBackend struct {
	key string
	b   *node.Backend
}

// Backend returns what node n of cluster c offers, opening it on first
// use. The open runs without s.mu held, so that a node slow to answer (an
// SSH node that cannot be reached waits for its timeout) holds up no
// other; two callers that raced keep the first backend made.
func (s *Server) Backend(ctx context.Context, n model.Node, c model.Cluster) (*node.Backend, error) {
	key := n.Address + " " + c.VirtType
	s.mu.Lock()
	e, ok := s.backends[n.ID]
	s.mu.Unlock()
	if ok && e.key == key {
		return e.b, nil
	}
	addr, err := s.kinds.Parse("address", n.Address)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", n.Name, err)
	}
	b, err := s.kinds.Open(ctx, node.Target{Node: n, Cluster: c, Address: addr})
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.backends[n.ID]; ok && e.key == key {
		closeBackend(b)
		return e.b, nil
	}
	s.backends[n.ID] = openedBackend{key: key, b: b}
	return b, nil
}

// remoteNode says whether n is of a kind that dials another machine
// (node.Kind.Remote). An address no kind reads is not remote: opening it
// fails without dialing anything.
func (s *Server) remoteNode(n model.Node) bool {
	addr, err := s.kinds.Parse("address", n.Address)
	if err != nil {
		return false
	}
	k, err := s.kinds.Kind(addr.Kind)
	return err == nil && k.Remote
}

// forget drops the backend of a removed node.
func (s *Server) forget(nodeID string) {
	s.mu.Lock()
	e, ok := s.backends[nodeID]
	delete(s.backends, nodeID)
	s.mu.Unlock()
	if ok {
		closeBackend(e.b)
	}
}

func closeBackend(b *node.Backend) {
	if b.Close != nil {
		_ = b.Close()
	}
}

// nodeAdmin is what the API needs to add and remove nodes.
type nodeAdmin struct{ s *Server }

func (a nodeAdmin) ParseAddress(field, raw string) (node.Address, error) {
	return a.s.kinds.Parse(field, raw)
}

func (a nodeAdmin) Prepare(ctx context.Context, name string, addr node.Address, virtType string, cred node.Credentials) (node.Facts, error) {
	return a.s.kinds.Prepare(ctx, name, addr, virtType, cred)
}

func (a nodeAdmin) Forget(ctx context.Context, n model.Node) { a.s.forget(n.ID) }

// Forms describes the node addresses this daemon reads.
func (a nodeAdmin) Forms() string { return a.s.kinds.Forms() }

// libvirtHere is the handle of a node whose libvirtd runs on this host:
// how another libvirtd here reaches it for a peer-to-peer migration.
type libvirtHere struct {
	URI, MigrationAddress string
}

// migrateHere is MigrateTo of nodes whose libvirtd runs on this host: to
// another such node, peer to peer over its socket.
func migrateHere(_ context.Context, dst *node.Backend) (vmm.MigrationTarget, error) {
	h, ok := dst.Handle.(libvirtHere)
	if !ok {
		return vmm.MigrationTarget{}, virtplane.Errorf(virtplane.ErrNotImplemented, "live migration from a libvirtd on the daemon's host to a %s node", dst.Kind)
	}
	return vmm.MigrationTarget{URI: h.URI, Address: h.MigrationAddress}, nil
}

// hostFacts reads this host's capacity: its CPUs, its memory and the size
// of the file system holding dir.
func hostFacts(dir string) (node.Facts, error) {
	f := node.Facts{Cores: runtime.NumCPU(), Addresses: agent.HostAddresses()}
	f.Hostname, _ = os.Hostname()
	mem, err := memTotal("/proc/meminfo")
	if err != nil {
		return f, virtplane.Errorf(virtplane.ErrUnavailable, "read this host's memory: %v", err)
	}
	f.MemoryMiB = mem >> 20
	for d := dir; d != ""; d = filepath.Dir(d) {
		var st syscall.Statfs_t
		if err := syscall.Statfs(d, &st); err == nil {
			f.DiskGiB = int64(st.Blocks) * st.Bsize >> 30
			break
		} else if !errors.Is(err, syscall.ENOENT) || d == "/" {
			return f, virtplane.Errorf(virtplane.ErrUnavailable, "read the size of %s: %v", dir, err)
		}
	}
	return f, nil
}

// memTotal reads MemTotal (bytes) from a meminfo file.
func memTotal(path string) (int64, error) {
	fh, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer fh.Close()
	return parseMemTotal(fh)
}

func parseMemTotal(r io.Reader) (int64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 3 && f[0] == "MemTotal:" && f[2] == "kB" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				return 0, err
			}
			return kb << 10, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("no MemTotal line")
}
