package console

import (
	"context"
	"crypto/des"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/virtplane/virtplane"
)

// The RFB security types the proxy speaks.
const (
	secNone    = 1
	secVNCAuth = 2
)

// handshakeTimeout bounds each side's RFB handshake.
const handshakeTimeout = 15 * time.Second

// ProxyRFB joins a browser's VNC client to a VNC server: it authenticates
// to the server (with password when the server asks for VNC
// authentication), offers the client a session without authentication
// (the ticket was its authentication), then copies both ways until either
// side closes or ctx ends. Both connections are closed when it returns.
func ProxyRFB(ctx context.Context, client, server net.Conn, password string) error {
	defer client.Close()
	defer server.Close()
	if err := serverHandshake(server, password); err != nil {
		return err
	}
	if err := clientHandshake(client); err != nil {
		return err
	}
	return pipe(ctx, client, server)
}

func serverHandshake(c net.Conn, password string) error {
	_ = c.SetDeadline(time.Now().Add(handshakeTimeout))
	defer c.SetDeadline(time.Time{})
	fail := func(format string, args ...any) error {
		return virtplane.Errorf(virtplane.ErrUnavailable, "console: vnc server: "+format, args...)
	}
	ver := make([]byte, 12)
	if _, err := io.ReadFull(c, ver); err != nil {
		return fail("no protocol version: %v", err)
	}
	if string(ver[:4]) != "RFB " {
		return fail("not a VNC server (%q)", ver)
	}
	if _, err := c.Write([]byte("RFB 003.008\n")); err != nil {
		return fail("%v", err)
	}
	var n [1]byte
	if _, err := io.ReadFull(c, n[:]); err != nil {
		return fail("no security types: %v", err)
	}
	if n[0] == 0 {
		return fail("refused the connection: %s", readReason(c))
	}
	types := make([]byte, n[0])
	if _, err := io.ReadFull(c, types); err != nil {
		return fail("no security types: %v", err)
	}
	choice := byte(0)
	for _, t := range types {
		if t == secVNCAuth && password != "" || t == secNone && choice == 0 {
			choice = t
		}
	}
	if choice == 0 {
		return fail("offers security types %v, none of which the proxy speaks (%d, %d)", types, secNone, secVNCAuth)
	}
	if _, err := c.Write([]byte{choice}); err != nil {
		return fail("%v", err)
	}
	if choice == secVNCAuth {
		challenge := make([]byte, 16)
		if _, err := io.ReadFull(c, challenge); err != nil {
			return fail("no challenge: %v", err)
		}
		resp, err := vncResponse(password, challenge)
		if err != nil {
			return fail("%v", err)
		}
		if _, err := c.Write(resp); err != nil {
			return fail("%v", err)
		}
	}
	var result [4]byte
	if _, err := io.ReadFull(c, result[:]); err != nil {
		return fail("no security result: %v", err)
	}
	if binary.BigEndian.Uint32(result[:]) != 0 {
		return fail("authentication failed: %s", readReason(c))
	}
	return nil
}

func readReason(r io.Reader) string {
	var l [4]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return "no reason given"
	}
	msg := make([]byte, min(binary.BigEndian.Uint32(l[:]), 1024))
	_, _ = io.ReadFull(r, msg)
	return string(msg)
}

// vncResponse is VNC authentication's answer to a challenge: the challenge
// encrypted with DES, keyed by the password (8 bytes, zero-padded) with
// each byte's bits reversed, as RFB 6.2.2 has it.
func vncResponse(password string, challenge []byte) ([]byte, error) {
	key := make([]byte, 8)
	copy(key, password)
	for i, b := range key {
		var r byte
		for j := 0; j < 8; j++ {
			r = r<<1 | (b>>j)&1
		}
		key[i] = r
	}
	block, err := des.NewCipher(key)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 16)
	block.Encrypt(out[:8], challenge[:8])
	block.Encrypt(out[8:], challenge[8:])
	return out, nil
}

func clientHandshake(c net.Conn) error {
	_ = c.SetDeadline(time.Now().Add(handshakeTimeout))
	defer c.SetDeadline(time.Time{})
	fail := func(format string, args ...any) error {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "console: browser: "+format, args...)
	}
	if _, err := c.Write([]byte("RFB 003.008\n")); err != nil {
		return fail("%v", err)
	}
	ver := make([]byte, 12)
	if _, err := io.ReadFull(c, ver); err != nil {
		return fail("no protocol version: %v", err)
	}
	if string(ver) != "RFB 003.008\n" {
		return fail("protocol version %q: the proxy speaks 3.8", ver)
	}
	if _, err := c.Write([]byte{1, secNone}); err != nil {
		return fail("%v", err)
	}
	var choice [1]byte
	if _, err := io.ReadFull(c, choice[:]); err != nil {
		return fail("no security type: %v", err)
	}
	if choice[0] != secNone {
		return fail("security type %d: only %d (none) is offered", choice[0], secNone)
	}
	_, err := c.Write([]byte{0, 0, 0, 0})
	return err
}

// pipe copies both ways until one side ends or ctx does.
func pipe(ctx context.Context, a, b net.Conn) error {
	errs := make(chan error, 2)
	cp := func(dst, src net.Conn) {
		_, err := io.Copy(dst, src)
		errs <- err
	}
	go cp(a, b)
	go cp(b, a)
	var err error
	select {
	case err = <-errs:
	case <-ctx.Done():
	}
	_ = a.Close()
	_ = b.Close()
	if errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("console: %w", err)
	}
	return nil
}
