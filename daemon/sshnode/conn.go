package sshnode

import (
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
	// User logs in with PrivateKey (PEM, as OpenSSH writes it).
	User       string
	PrivateKey []byte
	// KnownHostsFile is an OpenSSH known_hosts file that holds the node's
	// host key. Required unless HostKeyCallback is set.
	KnownHostsFile string
	// HostKeyCallback replaces KnownHostsFile.
	HostKeyCallback xssh.HostKeyCallback
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
	if len(cfg.PrivateKey) == 0 {
		return bad("private key: required")
	}
	signer, err := xssh.ParsePrivateKey(cfg.PrivateKey)
	if err != nil {
		// The parser's message never contains key material.
		return bad("private key: %v", err)
	}
	c := &Conn{cfg: cfg, auth: []xssh.AuthMethod{xssh.PublicKeys(signer)}, hostKey: cfg.HostKeyCallback,
		keepalive: 15 * time.Second, log: slog.New(slog.DiscardHandler)}
	if c.hostKey == nil {
		if cfg.KnownHostsFile == "" {
			return bad("known hosts file: required")
		}
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
		switch {
		case ctx.Err() != nil:
			return nil, c.unavailable("handshake: %v", ctx.Err())
		case errors.As(err, &keyErr) && len(keyErr.Want) > 0:
			return nil, c.unavailable("host key does not match known hosts")
		case errors.As(err, &keyErr):
			return nil, c.unavailable("host key not in known hosts")
		case strings.Contains(err.Error(), "unable to authenticate"):
			return nil, c.unavailable("key of user %s refused", c.cfg.User)
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
