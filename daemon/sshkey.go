package daemon

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	xssh "golang.org/x/crypto/ssh"

	"github.com/virtplane/virtplane"
)

// sshKey is the key the daemon logs in to its nodes with.
type sshKey struct {
	private    []byte // PEM
	authorized string // its public half, authorized_keys form
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
	return sshKey{private: pemBytes, authorized: pub}, nil
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
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return virtplane.Errorf(virtplane.ErrUnavailable, "ssh key directory: %v", err)
	}
	tmp := file + ".new"
	if err := os.WriteFile(tmp, pem.EncodeToMemory(blk), 0o600); err != nil {
		return virtplane.Errorf(virtplane.ErrUnavailable, "ssh key file: %v", err)
	}
	return os.Rename(tmp, file)
}
