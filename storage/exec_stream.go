package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/virtplane/virtplane"
)

// StreamExecutor is an optional capability of an Executor: it hands the
// command's output to writers as it arrives instead of collecting it, and
// on a canceled context it kills the command's whole process group, not
// only the program it started. Long programs whose output a person
// follows (scripts on a node) use it when the executor has it:
//
//	if se, ok := ex.(storage.StreamExecutor); ok { err = se.Stream(ctx, cmd, stdout, stderr) }
type StreamExecutor interface {
	Executor
	// Stream runs cmd with its standard output and error going to stdout
	// and stderr as they arrive. A non-zero exit is an *ExitError (its
	// Stderr empty: the text went to stderr; a nil stderr collects the
	// text into the ExitError instead); a canceled or timed-out
	// context is ErrCanceled or ErrTimeout, returned once the process
	// group is gone.
	Stream(ctx context.Context, cmd Command, stdout, stderr io.Writer) error
}

var _ StreamExecutor = LocalExecutor{}

// streamKillGrace is how long a canceled Stream waits after SIGKILL for the
// command's output pipes to close.
const streamKillGrace = 5 * time.Second

// Stream implements StreamExecutor: the command runs in a process group of
// its own, which a canceled ctx kills whole.
func (l LocalExecutor) Stream(ctx context.Context, c Command, stdout, stderr io.Writer) error {
	if c.Name == "" || strings.HasPrefix(c.Name, "-") {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "command name %q", c.Name)
	}
	if err := ctx.Err(); err != nil {
		return streamCtxError(c, err)
	}
	cmd := exec.CommandContext(ctx, c.Name, c.Args...)
	cmd.Env = append(append(os.Environ(), l.Env...), c.Env...)
	cmd.Stdin = c.Stdin
	var collected bytes.Buffer
	if stderr == nil {
		stderr = &collected
	}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = streamKillGrace
	err := cmd.Run()
	if ctx.Err() != nil {
		return streamCtxError(c, ctx.Err())
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ee) && ee.ExitCode() >= 0:
		return &ExitError{Command: c, Code: ee.ExitCode(), Stderr: collected.String()}
	case errors.As(err, &ee):
		// Killed by a signal that was not ours: the shell's convention.
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return &ExitError{Command: c, Code: 128 + int(ws.Signal()), Stderr: collected.String()}
		}
	}
	return fmt.Errorf("%s: %w: %w", c.Name, virtplane.ErrUnavailable, err)
}

func streamCtxError(c Command, err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w: %w", c.Name, virtplane.ErrTimeout, err)
	}
	return fmt.Errorf("%s: %w: %w", c.Name, virtplane.ErrCanceled, err)
}
