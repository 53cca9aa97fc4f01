package testenv

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	xssh "golang.org/x/crypto/ssh"
)

// TestNodeHosts starts two node hosts on one underlay: each takes root
// over SSH (by password on one, by key on the other) with its pinned host
// key, has a private /root and /var/lib/virtplane, and reaches the other.
func TestNodeHosts(t *testing.T) {
	u := NewUnderlay(t)
	priv, pub := NewSSHKey(t)
	a := StartLibvirtHost(t, "vpt-nh-a", "", 0, OnUnderlay(u), WithSSH(SSHLogin{Password: "s3cret-a"}))
	b := StartLibvirtHost(t, "vpt-nh-b", "", 1, OnUnderlay(u), WithSSH(SSHLogin{AuthorizedKeys: []string{pub}}))

	signer, err := xssh.ParsePrivateKey([]byte(priv))
	if err != nil {
		t.Fatal(err)
	}
	run := func(h *LibvirtHost, auth xssh.AuthMethod, cmd string) string {
		t.Helper()
		hostKey, _, _, _, err := xssh.ParseAuthorizedKey([]byte(h.SSH.HostKey))
		if err != nil {
			t.Fatal(err)
		}
		c, err := xssh.Dial("tcp", h.SSH.Addr, &xssh.ClientConfig{User: "root", Auth: []xssh.AuthMethod{auth},
			HostKeyCallback: xssh.FixedHostKey(hostKey), Timeout: 10 * time.Second})
		if err != nil {
			log, _ := os.ReadFile(filepath.Join(h.Dir, "ssh", "sshd.log"))
			t.Fatalf("ssh to %s: %v\nsshd log:\n%s", h.Name, err, log)
		}
		defer c.Close()
		s, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		// Two buffers: one shared by both streams lost the output now and
		// then (bytes.Buffer.ReadFrom, which io.Copy of the empty stderr
		// uses, sets the length it began with back when it ends).
		var out, errOut bytes.Buffer
		s.Stdout, s.Stderr = &out, &errOut
		if err := s.Run(cmd); err != nil {
			t.Fatalf("%s on %s: %v: %s%s", cmd, h.Name, err, out.String(), errOut.String())
		}
		return strings.TrimSpace(out.String())
	}
	if got := run(a, xssh.Password("s3cret-a"), "hostname"); got != "vpt-nh-a" {
		t.Errorf("host a calls itself %q", got)
	}
	if got := run(b, xssh.PublicKeys(signer), "hostname"); got != "vpt-nh-b" {
		t.Errorf("host b calls itself %q", got)
	}
	// A file the node writes in its own directories stays there.
	run(a, xssh.Password("s3cret-a"), "echo x > /var/lib/virtplane/probe && echo y > /root/probe")
	for _, p := range []string{"/var/lib/virtplane/probe", "/root/probe"} {
		if fileExists(p) {
			t.Errorf("%s written on the node host shows in the test's view", p)
		}
	}
	if !fileExists(filepath.Join(a.Dir, "vpt-lib", "probe")) {
		t.Error("the node host's /var/lib/virtplane is not its own directory")
	}
	// The hosts reach each other on the underlay.
	run(a, xssh.Password("s3cret-a"), "ping -c1 -W2 "+b.Addr)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
