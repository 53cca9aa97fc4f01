package sshnode

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	xssh "golang.org/x/crypto/ssh"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/storage"
)

// Executor runs storage commands on the node over its SSH connection.
type Executor struct {
	conn *Conn
	// killGrace is how long a canceled Run waits for the remote command
	// to be gone.
	killGrace time.Duration
}

var _ storage.Executor = (*Executor)(nil)

// Executor returns what runs commands on the node.
func (c *Conn) Executor() *Executor { return &Executor{conn: c, killGrace: 5 * time.Second} }

// envName is the name part of a Command.Env entry.
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)

// Quote makes s one word for a POSIX shell, taken literally: single quotes
// around it, and each single quote in it closed, escaped and reopened.
// Nothing inside single quotes is special to the shell, not even a newline.
func Quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// CommandLine returns the line the node's login shell runs for cmd. It
// first writes the shell's PID, which sshd made the leader of a session
// and process group of its own, as the first line of standard error, then
// execs the program: that PID names the process group a cancel kills.
func CommandLine(cmd storage.Command) (string, error) {
	bad := func(format string, args ...any) (string, error) {
		return "", virtplane.Errorf(virtplane.ErrInvalidArgument, "command "+format, args...)
	}
	if cmd.Name == "" || strings.HasPrefix(cmd.Name, "-") || strings.ContainsAny(cmd.Name, "=\x00") {
		return bad("name %q", cmd.Name)
	}
	words := []string{"exec"}
	if len(cmd.Env) > 0 {
		words = append(words, "env")
		for _, e := range cmd.Env {
			if !envName.MatchString(e) || strings.ContainsRune(e, 0) {
				return bad("environment entry %q: must be NAME=VALUE without NUL bytes", e)
			}
			words = append(words, Quote(e))
		}
	}
	words = append(words, Quote(cmd.Name))
	for i, a := range cmd.Args {
		// A NUL cannot be in an argument of any program (exec ends it there).
		if strings.ContainsRune(a, 0) {
			return bad("%s argument %d: contains a NUL byte", cmd.Name, i)
		}
		words = append(words, Quote(a))
	}
	return `printf '%s\n' "$$" >&2; ` + strings.Join(words, " "), nil
}

// pidWriter takes the first line of the remote standard error (the PID
// the command line writes) and passes the rest on.
type pidWriter struct {
	mu   sync.Mutex
	head []byte
	pid  int
	got  bool
	rest bytes.Buffer
	// out, when set, receives the rest instead of the buffer (Stream).
	out io.Writer
}

func (w *pidWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(b)
	if !w.got {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			w.head = append(w.head, b...)
			return n, nil
		}
		w.head = append(w.head, b[:i]...)
		w.got = true
		w.pid, _ = strconv.Atoi(string(w.head))
		b = b[i+1:]
	}
	if w.out != nil {
		if len(b) > 0 {
			if _, err := w.out.Write(b); err != nil {
				return 0, err
			}
		}
		return n, nil
	}
	w.rest.Write(b)
	return n, nil
}

func (w *pidWriter) result() (pid int, stderr string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.got {
		return 0, string(w.head)
	}
	return w.pid, w.rest.String()
}

// Run implements storage.Executor: cmd runs on the node with cmd.Stdin as
// its standard input. When ctx ends first, the command's whole process
// group on the node is killed (TERM, then KILL) before Run returns.
func (e *Executor) Run(ctx context.Context, cmd storage.Command) ([]byte, error) {
	var stdout bytes.Buffer
	err := e.run(ctx, cmd, &stdout, &pidWriter{})
	return stdout.Bytes(), err
}

// Stream implements storage.StreamExecutor: Run with the command's output
// handed on as it arrives.
func (e *Executor) Stream(ctx context.Context, cmd storage.Command, stdout, stderr io.Writer) error {
	return e.run(ctx, cmd, stdout, &pidWriter{out: stderr})
}

var _ storage.StreamExecutor = (*Executor)(nil)

func (e *Executor) run(ctx context.Context, cmd storage.Command, stdout io.Writer, stderr *pidWriter) error {
	line, err := CommandLine(cmd)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		// As exec.CommandContext: a command whose context ended never starts.
		return e.ctxError(cmd, err)
	}
	cl, err := e.conn.Client(ctx)
	if err != nil {
		return err
	}
	sess, err := cl.NewSession()
	if err != nil {
		return e.conn.unavailable("open session: %v", err)
	}
	defer sess.Close()
	sess.Stdout, sess.Stderr = stdout, stderr
	if cmd.Stdin != nil {
		sess.Stdin = cmd.Stdin
	}
	if err := sess.Start(line); err != nil {
		return e.conn.unavailable("start %s: %v", cmd.Name, err)
	}
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()
	select {
	case err := <-done:
		return e.result(cmd, err, stderr)
	case <-ctx.Done():
	}
	// The session's end does not stop the command (sshd only closes its
	// pipes): kill its process group from a second session.
	// A command canceled right after it started may not have told its
	// PID yet: wait for it (or for the command's end) a little.
	pid, _ := stderr.result()
	for deadline := time.Now().Add(e.killGrace); pid == 0 && time.Now().Before(deadline); {
		select {
		case err := <-done:
			done <- err
			deadline = time.Time{}
		case <-time.After(10 * time.Millisecond):
			pid, _ = stderr.result()
		}
	}
	if pid > 1 {
		e.kill(cl, pid)
	}
	_ = sess.Signal(xssh.SIGKILL) // for servers that forward signals
	select {
	case <-done:
	case <-time.After(e.killGrace):
	}
	return e.ctxError(cmd, ctx.Err())
}

// ctxError is the error of a command whose context ended.
func (e *Executor) ctxError(cmd storage.Command, err error) error {
	class := virtplane.ErrCanceled
	if errors.Is(err, context.DeadlineExceeded) {
		class = virtplane.ErrTimeout
	}
	return fmt.Errorf("node %s: %s: %w: %w", e.conn.cfg.Name, cmd.Name, class, err)
}

// killScript ends process group $1: TERM, up to two seconds to go, KILL.
const killScript = `kill -TERM "-$1" 2>/dev/null || exit 0
i=0; while [ $i -lt 20 ] && kill -0 "-$1" 2>/dev/null; do sleep 0.1; i=$((i+1)); done
kill -KILL "-$1" 2>/dev/null; exit 0`

// kill ends the process group pid on the node, waiting at most killGrace.
func (e *Executor) kill(cl *xssh.Client, pid int) {
	sess, err := cl.NewSession()
	if err != nil {
		e.conn.log.Warn("ssh: cannot kill a canceled command", "node", e.conn.cfg.Name, "pid", pid, "err", err)
		return
	}
	defer sess.Close()
	done := make(chan error, 1)
	go func() { done <- sess.Run("exec sh -c " + Quote(killScript) + " kill " + strconv.Itoa(pid)) }()
	select {
	case err = <-done:
	case <-time.After(e.killGrace):
		err = errors.New("no answer")
	}
	if err != nil {
		e.conn.log.Warn("ssh: kill of a canceled command", "node", e.conn.cfg.Name, "pid", pid, "err", err)
	}
}

func (e *Executor) result(cmd storage.Command, err error, stderr *pidWriter) error {
	_, text := stderr.result()
	var exitErr *xssh.ExitError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &exitErr) && exitErr.Signal() != "":
		return &storage.ExitError{Command: cmd, Code: 128 + signalNumber(exitErr.Signal()), Stderr: text}
	case errors.As(err, &exitErr):
		return &storage.ExitError{Command: cmd, Code: exitErr.ExitStatus(), Stderr: text}
	default:
		// The connection dropped, or the session ended without a status.
		return e.conn.unavailable("%s: %v", cmd.Name, err)
	}
}

func signalNumber(sig string) int {
	return map[string]int{"HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "ABRT": 6, "FPE": 8, "KILL": 9,
		"USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14, "TERM": 15}[sig]
}
