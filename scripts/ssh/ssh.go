package ssh

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"

	xssh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/scripts"
)

// Credentials log a runner in: a private key (PEM), a password, or both.
type Credentials struct {
	User       string
	PrivateKey []byte
	// Passphrase decrypts PrivateKey when it is encrypted.
	Passphrase []byte
	Password   string
}

// Config holds what a Runner needs.
type Config struct {
	// Credentials are used for every target unless CredentialsFor is set.
	Credentials Credentials
	// CredentialsFor, when set, returns the credentials of one target (a
	// VM's own root password, a node's key).
	CredentialsFor func(ctx context.Context, t scripts.Target) (Credentials, error)
	// KnownHostsFile is an OpenSSH known_hosts file; the host key of every
	// target must be in it. Required unless HostKeyCallback is set.
	KnownHostsFile string
	// HostKeyCallback replaces KnownHostsFile.
	HostKeyCallback xssh.HostKeyCallback
}

// Option sets an optional part of a Runner.
type Option func(*Runner)

// WithDialer replaces the TCP dialer (for tunnels or tests).
func WithDialer(dial func(ctx context.Context, network, addr string) (net.Conn, error)) Option {
	return func(r *Runner) { r.dial = dial }
}

// WithKillGrace sets how long Run waits, after a timeout or cancel, for the
// remote side to report that it killed the script (default 5 s).
func WithKillGrace(d time.Duration) Option { return func(r *Runner) { r.killGrace = d } }

// Runner runs shell and PowerShell scripts over SSH.
type Runner struct {
	cfg       Config
	hostKey   xssh.HostKeyCallback
	dial      func(ctx context.Context, network, addr string) (net.Conn, error)
	killGrace time.Duration
}

var _ scripts.Runner = (*Runner)(nil)

// New checks cfg and returns a Runner.
func New(cfg Config, opts ...Option) (*Runner, error) {
	r := &Runner{cfg: cfg, hostKey: cfg.HostKeyCallback, killGrace: 5 * time.Second}
	if r.hostKey == nil {
		if cfg.KnownHostsFile == "" {
			return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "ssh runner: known hosts file or host key callback required")
		}
		cb, err := knownhosts.New(cfg.KnownHostsFile)
		if err != nil {
			return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "ssh runner: known hosts file %q: %v", cfg.KnownHostsFile, err)
		}
		r.hostKey = cb
	}
	if cfg.CredentialsFor == nil {
		if _, err := authMethods(cfg.Credentials); err != nil {
			return nil, err
		}
	}
	var d net.Dialer
	r.dial = d.DialContext
	for _, o := range opts {
		o(r)
	}
	return r, nil
}

func authMethods(c Credentials) ([]xssh.AuthMethod, error) {
	var methods []xssh.AuthMethod
	if len(c.PrivateKey) > 0 {
		var signer xssh.Signer
		var err error
		if len(c.Passphrase) > 0 {
			signer, err = xssh.ParsePrivateKeyWithPassphrase(c.PrivateKey, c.Passphrase)
		} else {
			signer, err = xssh.ParsePrivateKey(c.PrivateKey)
		}
		if err != nil {
			// The parser's message never contains key material.
			return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "ssh credentials private key: %v", err)
		}
		methods = append(methods, xssh.PublicKeys(signer))
	}
	if c.Password != "" {
		methods = append(methods, xssh.Password(c.Password))
	}
	if len(methods) == 0 {
		return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "ssh credentials: need a private key or a password")
	}
	if c.User == "" {
		return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "ssh credentials user: must not be empty")
	}
	return methods, nil
}

// connect dials and authenticates; the handshake is bounded by ctx.
func (r *Runner) connect(ctx context.Context, t scripts.Target) (*xssh.Client, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	creds := r.cfg.Credentials
	if r.cfg.CredentialsFor != nil {
		c, err := r.cfg.CredentialsFor(ctx, t)
		if err != nil {
			return nil, fmt.Errorf("credentials for %s: %w", t.Name, err)
		}
		creds = c
	}
	if t.User != "" {
		creds.User = t.User
	}
	methods, err := authMethods(creds)
	if err != nil {
		return nil, err
	}
	addr := t.Address
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(addr, "22")
	}
	conn, err := r.dial(ctx, "tcp", addr)
	if err != nil {
		if e := scripts.RunError(ctx, t.Name); e != nil {
			return nil, e
		}
		return nil, virtplane.Errorf(virtplane.ErrUnavailable, "ssh to %s (%s): %v", t.Name, addr, err)
	}
	// x/crypto/ssh's handshake takes no context: closing the connection
	// when ctx ends is what bounds it.
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	cc, chans, reqs, err := xssh.NewClientConn(conn, addr, &xssh.ClientConfig{
		User: creds.User, Auth: methods, HostKeyCallback: r.hostKey, Timeout: 30 * time.Second,
	})
	if err != nil {
		_ = conn.Close()
		if e := scripts.RunError(ctx, t.Name); e != nil {
			return nil, e
		}
		var keyErr *knownhosts.KeyError
		switch {
		case errors.As(err, &keyErr) && len(keyErr.Want) > 0:
			return nil, virtplane.Errorf(virtplane.ErrUnauthenticated, "ssh to %s: host key does not match known hosts", t.Name)
		case errors.As(err, &keyErr):
			return nil, virtplane.Errorf(virtplane.ErrUnauthenticated, "ssh to %s: host key not in known hosts", t.Name)
		case strings.Contains(err.Error(), "unable to authenticate"):
			return nil, virtplane.Errorf(virtplane.ErrUnauthenticated, "ssh to %s as %s: credentials refused", t.Name, creds.User)
		default:
			return nil, virtplane.Errorf(virtplane.ErrUnavailable, "ssh to %s: handshake: %v", t.Name, err)
		}
	}
	return xssh.NewClient(cc, chans, reqs), nil
}

// shellWrapper runs on the target. It reads exactly the script's bytes from
// stdin into a private temporary file (never the command line, which other
// users can read in /proc), starts the script in its own session and
// process group, and keeps a watchdog reading the rest of stdin: when stdin
// ends — the runner closed it on timeout or cancel, or the connection
// dropped — the watchdog kills the script's whole process group.
const shellWrapper = `umask 077
d=$(mktemp -d) || exit 96
trap 'rm -rf "$d"' EXIT
head -c %d >"$d/s" || exit 96
[ "$(wc -c <"$d/s")" -eq %d ] || { echo "virtplane: script truncated in transfer" >&2; exit 96; }
setsid %s "$d/s" </dev/null & p=$!
exec 3<&0
setsid sh -c 'cat >/dev/null; kill -TERM -"$1" 2>/dev/null; sleep 2; kill -KILL -"$1" 2>/dev/null' watchdog "$p" <&3 >/dev/null 2>&1 & w=$!
exec 3<&-
wait "$p"; rc=$?
kill -KILL -"$w" 2>/dev/null
exit "$rc"
`

// powerShellBootstrap reads the script's bytes from stdin and runs them. It
// travels base64-encoded in -EncodedCommand and holds no value.
const powerShellBootstrap = `$ErrorActionPreference = 'Stop'
$n = %d; $in = [Console]::OpenStandardInput(); $b = New-Object byte[] $n; $o = 0
while ($o -lt $n) { $k = $in.Read($b, $o, $n - $o); if ($k -le 0) { exit 96 }; $o += $k }
& ([ScriptBlock]::Create([Text.Encoding]::UTF8.GetString($b)))
exit $LASTEXITCODE
`

// Command returns the remote command line that runs r; the script itself
// goes to the command's stdin. It holds no value and no body.
func Command(r scripts.Rendered) (string, error) {
	n := len(r.Text())
	switch r.Kind {
	case scripts.Shell:
		return "exec sh -c " + scripts.ShellQuote(fmt.Sprintf(shellWrapper, n, n, "bash --noprofile --norc")), nil
	case scripts.PowerShell:
		u := utf16.Encode([]rune(fmt.Sprintf(powerShellBootstrap, n)))
		b := make([]byte, 2*len(u))
		for i, c := range u {
			b[2*i], b[2*i+1] = byte(c), byte(c>>8)
		}
		return "powershell.exe -NoProfile -NonInteractive -EncodedCommand " + base64.StdEncoding.EncodeToString(b), nil
	default:
		return "", virtplane.Errorf(virtplane.ErrInvalidArgument, "ssh runner: cannot run %s script %q (use the ansible runner)", r.Kind, r.ScriptName)
	}
}

// Run implements scripts.Runner.
func (r *Runner) Run(ctx context.Context, job scripts.Job) (int, error) {
	cmd, err := Command(job.Script)
	if err != nil {
		return -1, err
	}
	ctx, cancel := job.WithTimeout(ctx)
	defer cancel()
	stdout, stderr := job.Writers()
	return r.exec(ctx, job.Target, cmd, []byte(job.Script.Text()), stdout, stderr)
}

// exec runs cmd with input written to its stdin, which then stays open
// until the command ends or ctx ends; closing it is what tells the wrapper
// to kill the script.
func (r *Runner) exec(ctx context.Context, t scripts.Target, cmd string, input []byte, stdout, stderr io.Writer) (int, error) {
	client, err := r.connect(ctx, t)
	if err != nil {
		return -1, err
	}
	defer client.Close()
	sess, err := client.NewSession()
	if err != nil {
		return -1, virtplane.Errorf(virtplane.ErrUnavailable, "ssh to %s: open session: %v", t.Name, err)
	}
	defer sess.Close()
	sess.Stdout, sess.Stderr = stdout, stderr
	stdin, err := sess.StdinPipe()
	if err != nil {
		return -1, virtplane.Errorf(virtplane.ErrUnavailable, "ssh to %s: stdin: %v", t.Name, err)
	}
	if err := sess.Start(cmd); err != nil {
		return -1, virtplane.Errorf(virtplane.ErrUnavailable, "ssh to %s: start: %v", t.Name, err)
	}
	go func() {
		// Leave stdin open after the script: its end is the kill signal.
		_, _ = io.Copy(stdin, bytes.NewReader(input))
	}()
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()
	select {
	case err := <-done:
		return exitStatus(t, err)
	case <-ctx.Done():
	}
	// Stop: EOF on stdin makes the wrapper kill the process group; the
	// signal covers servers that forward it. Then wait for the wrapper to
	// report, so that the kill happened before Run returns.
	_ = stdin.Close()
	_ = sess.Signal(xssh.SIGTERM)
	select {
	case <-done:
	case <-time.After(r.killGrace):
	}
	return -1, scripts.RunError(ctx, t.Name)
}

func exitStatus(t scripts.Target, err error) (int, error) {
	var exitErr *xssh.ExitError
	var missing *xssh.ExitMissingError
	switch {
	case err == nil:
		return 0, nil
	case errors.As(err, &exitErr):
		if exitErr.Signal() != "" {
			return 128 + signalNumber(exitErr.Signal()), nil
		}
		return exitErr.ExitStatus(), nil
	case errors.As(err, &missing):
		return -1, virtplane.Errorf(virtplane.ErrUnavailable, "ssh to %s: session ended without an exit status", t.Name)
	default:
		return -1, virtplane.Errorf(virtplane.ErrUnavailable, "ssh to %s: %v", t.Name, err)
	}
}

func signalNumber(sig string) int {
	n := map[string]int{"HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "ABRT": 6, "FPE": 8, "KILL": 9, "SEGV": 11, "PIPE": 13, "ALRM": 14, "TERM": 15, "USR1": 10, "USR2": 12}[sig]
	if n == 0 {
		return 0
	}
	return n
}

// Output runs a plain command on a target (no script, no values) and
// returns its stdout and exit code: for probes such as `pgrep -f`.
func (r *Runner) Output(ctx context.Context, t scripts.Target, command string) (string, int, error) {
	var out bytes.Buffer
	code, err := r.exec(ctx, t, command, nil, &out, io.Discard)
	return out.String(), code, err
}

// ProcessAlive reports whether a process whose command line matches the
// pgrep -f pattern runs on t.
func (r *Runner) ProcessAlive(ctx context.Context, t scripts.Target, pattern string) (bool, error) {
	_, code, err := r.Output(ctx, t, "pgrep -f "+scripts.ShellQuote(pattern)+" </dev/null")
	if err != nil {
		return false, err
	}
	switch code {
	case 0:
		return true, nil
	case 1:
		return false, nil
	default:
		return false, virtplane.Errorf(virtplane.ErrUnavailable, "pgrep on %s: exit %s", t.Name, strconv.Itoa(code))
	}
}
