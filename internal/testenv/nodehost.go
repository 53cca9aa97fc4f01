package testenv

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	xssh "golang.org/x/crypto/ssh"
)

// Underlay is a bridge in the root namespace that node hosts join: one
// /24, the test process at Gateway (.1), hosts from .2 on.
type Underlay struct {
	Bridge  string
	Prefix  string // "10.238.7" of 10.238.7.0/24
	Gateway string
	hosts   int
}

// NewUnderlay makes an underlay bridge, removed when the test ends. Its
// /24 is one no route of this host covers yet.
func NewUnderlay(t testing.TB) *Underlay {
	t.Helper()
	RequireNetns(t)
	u := &Underlay{Bridge: "vptu" + randomHex(4)}
	for i := range 250 {
		third := (os.Getpid() + i*37) % 250
		prefix := fmt.Sprintf("10.238.%d", third)
		out, err := exec.Command("ip", "route", "show", prefix+".0/24").Output()
		if err == nil && strings.TrimSpace(string(out)) == "" {
			u.Prefix = prefix
			break
		}
	}
	if u.Prefix == "" {
		t.Fatal("underlay: no free /24 in 10.238.0.0/16")
	}
	u.Gateway = u.Prefix + ".1"
	mustRun(t, "ip", "link", "add", u.Bridge, "type", "bridge")
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", u.Bridge).Run() })
	mustRun(t, "ip", "addr", "add", u.Gateway+"/24", "dev", u.Bridge)
	mustRun(t, "ip", "link", "set", u.Bridge, "up")
	return u
}

func (u *Underlay) next() string {
	u.hosts++
	return fmt.Sprintf("%s.%d", u.Prefix, u.hosts+1)
}

// SSHLogin is how a node host's sshd lets root in: a password (empty: none)
// and authorized keys (authorized_keys lines).
type SSHLogin struct {
	Password       string
	AuthorizedKeys []string
}

// SSHHost is a node host's sshd.
type SSHHost struct {
	Addr string // ip:22
	// HostKey is its host key (authorized_keys form) and HostKeyFingerprint
	// its SHA256 fingerprint, as ssh-keygen -l prints it.
	HostKey, HostKeyFingerprint string
	// HostKeyFile is the private host key; replacing it (and restarting
	// sshd) gives the host a new identity.
	HostKeyFile string
	Login       SSHLogin
}

// NewSSHKey makes an ed25519 key pair: the private key (OpenSSH PEM) and
// its authorized_keys line.
func NewSSHKey(t testing.TB) (privatePEM, authorized string) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	blk, err := xssh.MarshalPrivateKey(priv, "virtplane-test")
	if err != nil {
		t.Fatal(err)
	}
	sp, err := xssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(blk)), strings.TrimSpace(string(xssh.MarshalAuthorizedKey(sp)))
}

// prepareSSHHost writes a node host's sshd configuration, host key, root
// home (with the authorized keys) and shadow file (root's password) into
// its directory d; the start script mounts and starts them.
func prepareSSHHost(d, addr string, login SSHLogin) (*SSHHost, error) {
	dir := filepath.Join(d, "ssh")
	for _, sub := range []string{dir, filepath.Join(d, "root", ".ssh"), filepath.Join(d, "vpt-lib"), filepath.Join(d, "vpt-run")} {
		if err := os.MkdirAll(sub, 0o700); err != nil {
			return nil, err
		}
	}
	keyFile := filepath.Join(dir, "host_ed25519")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", keyFile).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ssh-keygen: %v: %s", err, out)
	}
	pubLine, err := os.ReadFile(keyFile + ".pub")
	if err != nil {
		return nil, err
	}
	pub, _, _, _, err := xssh.ParseAuthorizedKey(pubLine)
	if err != nil {
		return nil, err
	}
	auth := strings.Join(login.AuthorizedKeys, "\n")
	if auth != "" {
		auth += "\n"
	}
	if err := os.WriteFile(filepath.Join(d, "root", ".ssh", "authorized_keys"), []byte(auth), 0o600); err != nil {
		return nil, err
	}
	if err := writeShadow(filepath.Join(dir, "shadow"), login.Password); err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf(`ListenAddress %s:22
HostKey %s
PidFile %s/sshd.pid
PermitRootLogin yes
PasswordAuthentication %s
KbdInteractiveAuthentication no
PubkeyAuthentication yes
UsePAM no
StrictModes no
AuthorizedKeysFile .ssh/authorized_keys
AllowStreamLocalForwarding yes
StreamLocalBindUnlink yes
MaxSessions 128
MaxStartups 64:30:128
Subsystem sftp internal-sftp
LogLevel VERBOSE
`, addr, keyFile, dir, map[bool]string{true: "yes", false: "no"}[login.Password != ""])
	if err := os.WriteFile(filepath.Join(dir, "sshd_config"), []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	return &SSHHost{Addr: net.JoinHostPort(addr, "22"), HostKey: strings.TrimSpace(string(pubLine)),
		HostKeyFingerprint: xssh.FingerprintSHA256(pub), HostKeyFile: keyFile, Login: login}, nil
}

// writeShadow writes a copy of /etc/shadow whose root entry has password
// (none: no password login), for the host's own /etc/shadow.
func writeShadow(path, password string) error {
	b, err := os.ReadFile("/etc/shadow")
	if err != nil {
		return err
	}
	hash := "*" // no password; "!" would lock the account for keys too
	if password != "" {
		out, err := exec.Command("openssl", "passwd", "-6", password).Output()
		if err != nil {
			return fmt.Errorf("openssl passwd: %v", err)
		}
		hash = strings.TrimSpace(string(out))
	}
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		if f := strings.SplitN(l, ":", 3); len(f) == 3 && f[0] == "root" {
			lines[i] = "root:" + hash + ":" + f[2]
		}
	}
	return os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o600)
}
