package sshnode

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	xssh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/virtplane/virtplane"
)

// Config says which node to reach and how to log in.
type Config struct {
	// Name is the node's name, used in errors.
	Name string
	// Addr is the node's SSH server, host:port.
	Addr string
	// User logs in with PrivateKey (PEM, as OpenSSH writes it) or, when
	// set, Password (adding a node: once, to install the daemon's key).
	User       string
	PrivateKey []byte
	Password   string
	// HostKey is the node's pinned host key (authorized_keys form): only
	// it is accepted.
	HostKey string
	// KnownHostsFile is an OpenSSH known_hosts file that holds the node's
	// host key, when HostKey is not set.
	KnownHostsFile string
	// HostKeyCallback replaces HostKey and KnownHostsFile.
	HostKeyCallback xssh.HostKeyCallback
}

// errHostKeyChanged is the handshake error of a node whose host key is not
// the pinned one.
type errHostKeyChanged struct{ want, got string }

func (e *errHostKeyChanged) Error() string {
	return "host key " + e.got + " is not the pinned " + e.want
}

// pinned accepts only the host key want.
func pinned(want xssh.PublicKey) xssh.HostKeyCallback {
	return func(_ string, _ net.Addr, key xssh.PublicKey) error {
		if bytes.Equal(key.Marshal(), want.Marshal()) {
			return nil
		}
		return &errHostKeyChanged{want: xssh.FingerprintSHA256(want), got: xssh.FingerprintSHA256(key)}
	}
}

// FirstUse pins a node's host key on first contact (or checks it against a
// fingerprint the operator gave) and remembers it, for adding a node.
type FirstUse struct {
	fingerprint string
	mu          sync.Mutex
	key         xssh.PublicKey
}

// TrustOnFirstUse accepts the host key whose SHA256 fingerprint is
// fingerprint ("SHA256:…"), or, with "", the first key offered.
func TrustOnFirstUse(fingerprint string) *FirstUse { return &FirstUse{fingerprint: fingerprint} }

// Callback is the HostKeyCallback to dial with.
func (f *FirstUse) Callback(_ string, _ net.Addr, key xssh.PublicKey) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fingerprint != "" && xssh.FingerprintSHA256(key) != f.fingerprint {
		return &errHostKeyChanged{want: f.fingerprint, got: xssh.FingerprintSHA256(key)}
	}
	if f.key != nil && !bytes.Equal(f.key.Marshal(), key.Marshal()) {
		return &errHostKeyChanged{want: xssh.FingerprintSHA256(f.key), got: xssh.FingerprintSHA256(key)}
	}
	f.key = key
	return nil
}

// Key returns the key accepted (authorized_keys form) and its fingerprint;
// empty before the first handshake.
func (f *FirstUse) Key() (key, fingerprint string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.key == nil {
		return "", ""
	}
	return strings.TrimSpace(string(xssh.MarshalAuthorizedKey(f.key))), xssh.FingerprintSHA256(f.key)
}

// Option sets an optional part of a Conn.
type Option func(*Conn)

// WithDialer replaces the TCP dialer (for jump hosts, or tests that cut
// the connection).
func WithDialer(dial func(ctx context.Context, network, addr string) (net.Conn, error)) Option {
	return func(c *Conn) { c.dial = dial }
}

// WithKeepalive sets how often an idle connection is probed, so that a
// node that went away is noticed before the next command waits on it
// (default 15 s; 0 turns probing off).
func WithKeepalive(d time.Duration) Option { return func(c *Conn) { c.keepalive = d } }

// WithLogger sets the logger; the default discards.
func WithLogger(l *slog.Logger) Option { return func(c *Conn) { c.log = l } }

// Conn is the one SSH connection the daemon keeps to a node. Everything the
// daemon does there (libvirt, qemu-img, network ports) runs over it as
// channels. It connects on first use and again on the first use after the
// connection dropped.
type Conn struct {
	cfg       Config
	auth      []xssh.AuthMethod
	hostKey   xssh.HostKeyCallback
	dial      func(ctx context.Context, network, addr string) (net.Conn, error)
	keepalive time.Duration
	log       *slog.Logger

	// mu is held while connecting, so that callers arriving together share
	// one new connection.
	mu     sync.Mutex
	client *xssh.Client
	closed bool
}

// New checks cfg and returns a Conn; it does not connect yet.
func New(cfg Config, opts ...Option) (*Conn, error) {
	bad := func(format string, args ...any) (*Conn, error) {
		return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "node %s: ssh "+format, append([]any{cfg.Name}, args...)...)
	}
	if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
		return bad("address %q: %v", cfg.Addr, err)
	}
	if cfg.User == "" {
		return bad("user: must not be empty")
	}
	var auth []xssh.AuthMethod
	switch {
	case cfg.Password != "":
		auth = []xssh.AuthMethod{xssh.Password(cfg.Password)}
	case len(cfg.PrivateKey) == 0:
		return bad("private key: required")
	default:
		signer, err := xssh.ParsePrivateKey(cfg.PrivateKey)
		if err != nil {
			// The parser's message never contains key material.
			return bad("private key: %v", err)
		}
		auth = []xssh.AuthMethod{xssh.PublicKeys(signer)}
	}
	c := &Conn{cfg: cfg, auth: auth, hostKey: cfg.HostKeyCallback,
		keepalive: 15 * time.Second, log: slog.New(slog.DiscardHandler)}
	var err error
	switch {
	case c.hostKey != nil:
	case cfg.HostKey != "":
		want, _, _, _, err := xssh.ParseAuthorizedKey([]byte(cfg.HostKey))
		if err != nil {
			return bad("host key: %v", err)
		}
		c.hostKey = pinned(want)
	case cfg.KnownHostsFile == "":
		return bad("host key or known hosts file: required")
	default:
		if c.hostKey, err = knownhosts.New(cfg.KnownHostsFile); err != nil {
			return bad("known hosts file %q: %v", cfg.KnownHostsFile, err)
		}
	}
	var d net.Dialer
	c.dial = d.DialContext
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// unavailable is the error of a node that cannot be reached.
func (c *Conn) unavailable(format string, args ...any) error {
	return virtplane.Errorf(virtplane.ErrUnavailable, "node %s: ssh to %s: "+format, append([]any{c.cfg.Name, c.cfg.Addr}, args...)...)
}

// connectTimeout bounds a dial and handshake.
const connectTimeout = 20 * time.Second

// Client returns the live SSH client, connecting when there is none.
func (c *Conn) Client(ctx context.Context) (*xssh.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, c.unavailable("connection closed")
	}
	if c.client != nil {
		return c.client, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, c.unavailable("%v", err)
	}
	// Callers queue on mu meanwhile: a node that does not answer holds
	// them up for connectTimeout at most.
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	conn, err := c.dial(ctx, "tcp", c.cfg.Addr)
	if err != nil {
		return nil, c.unavailable("%v", err)
	}
	// x/crypto/ssh's handshake takes no context: closing the connection
	// when ctx ends is what bounds it.
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	cc, chans, reqs, err := xssh.NewClientConn(conn, c.cfg.Addr, &xssh.ClientConfig{
		User: c.cfg.User, Auth: c.auth, HostKeyCallback: c.hostKey, Timeout: 30 * time.Second,
	})
	if err != nil {
		_ = conn.Close()
		var keyErr *knownhosts.KeyError
		var changed *errHostKeyChanged
		switch {
		case ctx.Err() != nil:
			return nil, c.unavailable("handshake: %v", ctx.Err())
		case errors.As(err, &changed):
			// Another machine answers for the node, or it was reinstalled:
			// refused until an operator says which key is right.
			return nil, virtplane.Errorf(virtplane.ErrPermissionDenied, "node %s: ssh to %s: %s", c.cfg.Name, c.cfg.Addr, changed.Error())
		case errors.As(err, &keyErr) && len(keyErr.Want) > 0:
			return nil, virtplane.Errorf(virtplane.ErrPermissionDenied, "node %s: ssh to %s: host key does not match known hosts", c.cfg.Name, c.cfg.Addr)
		case errors.As(err, &keyErr):
			return nil, c.unavailable("host key not in known hosts")
		case strings.Contains(err.Error(), "unable to authenticate") && c.cfg.Password != "":
			return nil, virtplane.Errorf(virtplane.ErrPermissionDenied, "node %s: ssh to %s: the password of user %s was refused", c.cfg.Name, c.cfg.Addr, c.cfg.User)
		case strings.Contains(err.Error(), "unable to authenticate"):
			return nil, virtplane.Errorf(virtplane.ErrPermissionDenied, "node %s: ssh to %s: the key of user %s was refused", c.cfg.Name, c.cfg.Addr, c.cfg.User)
		default:
			return nil, c.unavailable("handshake: %v", err)
		}
	}
	cl := xssh.NewClient(cc, chans, reqs)
	c.client = cl
	go c.watch(cl)
	return cl, nil
}

// watch forgets cl when its connection ends, so that the next use
// reconnects, and probes it while it lives: a peer that vanished without
// closing (a node that lost power) is cut after one unanswered probe.
func (c *Conn) watch(cl *xssh.Client) {
	ended := make(chan struct{})
	go func() {
		err := cl.Wait()
		c.log.Info("ssh connection ended", "node", c.cfg.Name, "err", err)
		c.mu.Lock()
		if c.client == cl {
			c.client = nil
		}
		c.mu.Unlock()
		close(ended)
	}()
	if c.keepalive <= 0 {
		return
	}
	tick := time.NewTicker(c.keepalive)
	defer tick.Stop()
	for {
		select {
		case <-ended:
			return
		case <-tick.C:
		}
		answered := make(chan struct{})
		go func() {
			_, _, _ = cl.SendRequest("keepalive@openssh.com", true, nil)
			close(answered)
		}()
		select {
		case <-answered:
		case <-ended:
			return
		case <-time.After(c.keepalive):
			c.log.Warn("ssh keepalive unanswered, reconnecting on next use", "node", c.cfg.Name)
			_ = cl.Close()
			return
		}
	}
}

// Connect makes sure the connection is up: for checking a node before
// using it.
func (c *Conn) Connect(ctx context.Context) error {
	_, err := c.Client(ctx)
	return err
}

// DialUnix opens a stream to a unix socket on the node (a direct-streamlocal
// channel, which OpenSSH's sshd allows unless AllowStreamLocalForwarding is
// off): how the daemon talks to the node's libvirtd.
func (c *Conn) DialUnix(ctx context.Context, socket string) (net.Conn, error) {
	cl, err := c.Client(ctx)
	if err != nil {
		return nil, err
	}
	conn, err := cl.DialContext(ctx, "unix", socket)
	if err != nil {
		return nil, c.unavailable("open %s: %v", socket, err)
	}
	return conn, nil
}

// DialTCP opens a stream to a TCP address as the node sees it (a
// direct-tcpip channel): a console port its hypervisor listens on at
// 127.0.0.1.
func (c *Conn) DialTCP(ctx context.Context, addr string) (net.Conn, error) {
	cl, err := c.Client(ctx)
	if err != nil {
		return nil, err
	}
	conn, err := cl.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, c.unavailable("open %s: %v", addr, err)
	}
	return conn, nil
}

// ListenUnix listens on a unix socket on the node (OpenSSH's
// streamlocal-forward; sshd must allow it): the node's processes connect
// to it and the daemon accepts the connections. It stops with the
// connection it was made on.
func (c *Conn) ListenUnix(ctx context.Context, socket string) (net.Listener, error) {
	cl, err := c.Client(ctx)
	if err != nil {
		return nil, err
	}
	l, err := cl.ListenUnix(socket)
	if err != nil {
		return nil, c.unavailable("listen on %s: %v", socket, err)
	}
	return l, nil
}

// Close drops the connection; the Conn cannot be used afterwards.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.client == nil {
		return nil
	}
	err := c.client.Close()
	c.client = nil
	return err
}
