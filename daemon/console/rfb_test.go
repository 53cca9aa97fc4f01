package console

import (
	"context"
	"crypto/des"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
)

// vncServer plays a VNC server asking for VNC authentication with
// password, then sends a ServerInit and echoes what follows.
func vncServer(t *testing.T, c net.Conn, password string) {
	defer c.Close()
	buf := make([]byte, 16)
	_, _ = c.Write([]byte("RFB 003.008\n"))
	if _, err := io.ReadFull(c, buf[:12]); err != nil {
		return
	}
	_, _ = c.Write([]byte{1, secVNCAuth})
	if _, err := io.ReadFull(c, buf[:1]); err != nil {
		return
	}
	challenge := []byte("fedcba9876543210")
	_, _ = c.Write(challenge)
	resp := make([]byte, 16)
	if _, err := io.ReadFull(c, resp); err != nil {
		return
	}
	// The reference answer, computed the long way.
	key := make([]byte, 8)
	copy(key, password)
	for i := range key {
		var r byte
		for j := range 8 {
			if key[i]&(1<<j) != 0 {
				r |= 1 << (7 - j)
			}
		}
		key[i] = r
	}
	block, err := des.NewCipher(key)
	require.NoError(t, err)
	want := make([]byte, 16)
	block.Encrypt(want[:8], challenge[:8])
	block.Encrypt(want[8:], challenge[8:])
	if string(want) != string(resp) {
		msg := "password mismatch"
		_, _ = c.Write(binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 1), uint32(len(msg))))
		_, _ = c.Write([]byte(msg))
		return
	}
	_, _ = c.Write([]byte{0, 0, 0, 0})
	_, _ = io.ReadFull(c, buf[:1])
	_, _ = c.Write([]byte("SERVERINIT"))
	_, _ = io.Copy(c, c)
}

func browserSide(c net.Conn) (string, error) {
	buf := make([]byte, 12)
	if _, err := io.ReadFull(c, buf); err != nil {
		return "", err
	}
	_, _ = c.Write([]byte("RFB 003.008\n"))
	if _, err := io.ReadFull(c, buf[:2]); err != nil {
		return "", err
	}
	if buf[0] != 1 || buf[1] != secNone {
		return "", io.ErrUnexpectedEOF
	}
	_, _ = c.Write([]byte{secNone})
	if _, err := io.ReadFull(c, buf[:4]); err != nil {
		return "", err
	}
	_, _ = c.Write([]byte{1})
	init := make([]byte, 10)
	if _, err := io.ReadFull(c, init); err != nil {
		return "", err
	}
	_, _ = c.Write([]byte("ping"))
	echo := make([]byte, 4)
	_, err := io.ReadFull(c, echo)
	return string(init) + " " + string(echo), err
}

func TestProxyRFBAuthenticatesForTheBrowser(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	srvIn, srvOut := net.Pipe()
	brIn, brOut := net.Pipe()
	go vncServer(t, srvOut, "s3cret!")
	done := make(chan error, 1)
	go func() { done <- ProxyRFB(ctx, brIn, srvIn, "s3cret!") }()
	got, err := browserSide(brOut)
	require.NoError(t, err)
	assert.Equal(t, "SERVERINIT ping", got, "ServerInit and then bytes both ways")
	brOut.Close()
	require.NoError(t, <-done)
}

func TestProxyRFBWrongPassword(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	srvIn, srvOut := net.Pipe()
	brIn, _ := net.Pipe()
	go vncServer(t, srvOut, "right")
	err := ProxyRFB(ctx, brIn, srvIn, "wrong")
	require.ErrorIs(t, err, virtplane.ErrUnavailable)
	assert.Contains(t, err.Error(), "password mismatch")
}

func TestProxyRFBNotAVNCServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	srvIn, srvOut := net.Pipe()
	brIn, _ := net.Pipe()
	go func() { _, _ = srvOut.Write([]byte("SSH-2.0-OpenSSH\n")); srvOut.Close() }()
	err := ProxyRFB(ctx, brIn, srvIn, "x")
	require.ErrorIs(t, err, virtplane.ErrUnavailable)
	assert.Contains(t, err.Error(), "not a VNC server")
}
