package daemon

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	xssh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/scriptrun"
)

// sshKey is the key the daemon logs in to its nodes with.
type sshKey struct {
	private    []byte // PEM
	authorized string // its public half, authorized_keys form
	file       string // where it is kept (OpenSSH and Ansible read it there)
}

// daemonKey returns the daemon's SSH key: Config.SSHKeyFile, else one it
// made in its data directory (kept there, so that nodes added before a
// restart still take it).
func (s *Server) daemonKey() (sshKey, error) {
	s.keyOnce.Do(func() { s.key, s.keyErr = loadDaemonKey(s.cfg.SSHKeyFile, s.cfg.DataDir) })
	return s.key, s.keyErr
}

func loadDaemonKey(file, dataDir string) (sshKey, error) {
	if file == "" {
		if dataDir == "" {
			return sshKey{}, virtplane.Errorf(virtplane.ErrNotImplemented, "ssh:// nodes need the daemon's SSH key (ssh_key_file) or a data directory to keep one in, and this daemon has neither")
		}
		file = filepath.Join(dataDir, "ssh", "id_ed25519")
		if err := makeKeyFile(file); err != nil {
			return sshKey{}, err
		}
	}
	pemBytes, err := os.ReadFile(file)
	if err != nil {
		return sshKey{}, virtplane.Errorf(virtplane.ErrUnavailable, "ssh key file: %v", err)
	}
	signer, err := xssh.ParsePrivateKey(pemBytes)
	if err != nil {
		return sshKey{}, virtplane.Errorf(virtplane.ErrInvalidArgument, "ssh key file %s: %v", file, err)
	}
	pub := strings.TrimSpace(string(xssh.MarshalAuthorizedKey(signer.PublicKey()))) + " virtplaned"
	return sshKey{private: pemBytes, authorized: pub, file: file}, nil
}

// makeKeyFile writes a new ed25519 key to file unless it exists.
func makeKeyFile(file string) error {
	if _, err := os.Stat(file); err == nil {
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return virtplane.Errorf(virtplane.ErrUnavailable, "ssh key file: %v", err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	blk, err := xssh.MarshalPrivateKey(priv, "virtplaned")
	if err != nil {
		return err
	}
	// writeFileAtomic's temporary file is 0600, as a private key must be.
	if err := writeFileAtomic(file, pem.EncodeToMemory(blk)); err != nil {
		return virtplane.Errorf(virtplane.ErrUnavailable, "ssh key file: %v", err)
	}
	return nil
}

// nodeLogin is what OpenSSH clients the daemon runs (Ansible) log in to an
// ssh:// node with: the daemon's key file and a known_hosts file that holds
// the node's pinned host key only, written under the data directory
// (ssh/known_hosts.d/<node id>). A node recorded without a pinned key uses
// the configured known_hosts file.
func (s *Server) nodeLogin(_ context.Context, n model.Node) (scriptrun.NodeLogin, error) {
	key, err := s.daemonKey()
	if err != nil {
		return scriptrun.NodeLogin{}, fmt.Errorf("node %s: %w", n.Name, err)
	}
	login := scriptrun.NodeLogin{PrivateKeyFile: key.file, KnownHostsFile: s.cfg.SSHKnownHostsFile}
	if n.HostKey == "" {
		if login.KnownHostsFile == "" {
			return scriptrun.NodeLogin{}, virtplane.Errorf(virtplane.ErrConflict, "node %s: no pinned host key and no known_hosts file (ssh_known_hosts_file): add the node again", n.Name)
		}
		return login, nil
	}
	sa, ok, err := model.ParseSSHAddress("address", n.Address)
	if err != nil || !ok {
		return scriptrun.NodeLogin{}, virtplane.Errorf(virtplane.ErrInvalidArgument, "node %s: %s is no ssh:// address", n.Name, n.Address)
	}
	pub, _, _, _, err := xssh.ParseAuthorizedKey([]byte(n.HostKey))
	if err != nil {
		return scriptrun.NodeLogin{}, virtplane.Errorf(virtplane.ErrInvalidArgument, "node %s: pinned host key: %v", n.Name, err)
	}
	if s.cfg.DataDir == "" {
		return scriptrun.NodeLogin{}, virtplane.Errorf(virtplane.ErrNotImplemented, "node %s: Ansible needs a data directory to keep the node's known_hosts in", n.Name)
	}
	file := filepath.Join(s.cfg.DataDir, "ssh", "known_hosts.d", n.ID)
	line := knownhosts.Line([]string{knownhosts.Normalize(sa.HostPort())}, pub) + "\n"
	if err := writeFileAtomic(file, []byte(line)); err != nil {
		return scriptrun.NodeLogin{}, virtplane.Errorf(virtplane.ErrUnavailable, "node %s: known_hosts: %v", n.Name, err)
	}
	login.KnownHostsFile = file
	return login, nil
}

// writeFileAtomic replaces file with data (a reader sees the old or the new
// content, never a part).
func writeFileAtomic(file string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), file)
}
