package ssh_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os/exec"
	"sync"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
	xssh "golang.org/x/crypto/ssh"
)

// passwordServer is a small SSH server inside the test process that accepts
// one user with a password and runs exec requests with /bin/sh -c, the way
// sshd does. It exists because the project's sshd accepts keys only.
type passwordServer struct {
	addr    string
	hostKey xssh.PublicKey
}

func startPasswordServer(t *testing.T, user, password string) passwordServer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	signer, err := xssh.NewSignerFromKey(priv)
	require.NoError(t, err)
	cfg := &xssh.ServerConfig{PasswordCallback: func(c xssh.ConnMetadata, p []byte) (*xssh.Permissions, error) {
		if c.User() == user && string(p) == password {
			return nil, nil
		}
		return nil, errors.New("denied")
	}}
	cfg.AddHostKey(signer)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); serveConn(conn, cfg) }()
		}
	}()
	return passwordServer{addr: ln.Addr().String(), hostKey: signer.PublicKey()}
}

func serveConn(conn net.Conn, cfg *xssh.ServerConfig) {
	defer conn.Close()
	sc, chans, reqs, err := xssh.NewServerConn(conn, cfg)
	if err != nil {
		return
	}
	defer sc.Close()
	go xssh.DiscardRequests(reqs)
	var wg sync.WaitGroup
	defer wg.Wait()
	for nc := range chans {
		if nc.ChannelType() != "session" {
			_ = nc.Reject(xssh.UnknownChannelType, "session only")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			return
		}
		wg.Add(1)
		go func() { defer wg.Done(); serveSession(ch, creqs) }()
	}
}

func serveSession(ch xssh.Channel, reqs <-chan *xssh.Request) {
	defer ch.Close()
	for req := range reqs {
		if req.Type != "exec" {
			_ = req.Reply(req.Type == "signal", nil)
			continue
		}
		var payload struct{ Command string }
		if err := xssh.Unmarshal(req.Payload, &payload); err != nil {
			_ = req.Reply(false, nil)
			continue
		}
		_ = req.Reply(true, nil)
		cmd := exec.Command("/bin/sh", "-c", payload.Command)
		cmd.Stdout, cmd.Stderr = ch, ch.Stderr()
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		stdin, _ := cmd.StdinPipe()
		if err := cmd.Start(); err != nil {
			return
		}
		go func() { _, _ = io.Copy(stdin, ch); _ = stdin.Close() }()
		go xssh.DiscardRequests(reqs)
		code := 0
		if err := cmd.Wait(); err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			}
		}
		status := make([]byte, 4)
		binary.BigEndian.PutUint32(status, uint32(code&0xff))
		_, _ = ch.SendRequest("exit-status", false, status)
		return
	}
}
