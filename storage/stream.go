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

	"github.com/virtplane/virtplane"
)

// Streamer is an Executor that writes a command's standard output to a
// writer as the command produces it instead of collecting it: for output
// too large to hold, such as a volume piped from one node's qemu-img into
// another node's (a node agent's executor streams both ways).
type Streamer interface {
	// Stream runs cmd like Run, writing its standard output to stdout. A
	// non-zero exit is an *ExitError, as with Run; output written before
	// the failure stays written.
	Stream(ctx context.Context, cmd Command, stdout io.Writer) error
}

// Stream runs cmd on ex with its standard output going to stdout: through
// ex's Stream when ex is a Streamer, else through Run and one write of the
// collected output.
func Stream(ctx context.Context, ex Executor, cmd Command, stdout io.Writer) error {
	if s, ok := ex.(Streamer); ok {
		return s.Stream(ctx, cmd, stdout)
	}
	out, err := ex.Run(ctx, cmd)
	if len(out) > 0 {
		if _, werr := stdout.Write(out); werr != nil && err == nil {
			err = fmt.Errorf("%s: writing its output: %w", cmd.Name, werr)
		}
	}
	return err
}

var _ Streamer = LocalExecutor{}

// Stream implements Streamer.
func (l LocalExecutor) Stream(ctx context.Context, c Command, stdout io.Writer) error {
	if c.Name == "" || strings.HasPrefix(c.Name, "-") {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "command name %q", c.Name)
	}
	cmd := exec.CommandContext(ctx, c.Name, c.Args...)
	cmd.Env = append(append(os.Environ(), l.Env...), c.Env...)
	cmd.Stdin = c.Stdin
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = stdout, &stderr
	return l.result(ctx, c, cmd.Run(), &stderr)
}

// result turns the outcome of a local command into the executor's errors.
func (l LocalExecutor) result(ctx context.Context, c Command, err error, stderr *bytes.Buffer) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("%s: %w: %w", c.Name, virtplane.ErrTimeout, ctx.Err())
		}
		return fmt.Errorf("%s: %w: %w", c.Name, virtplane.ErrCanceled, ctx.Err())
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return &ExitError{Command: c, Code: ee.ExitCode(), Stderr: stderr.String()}
	}
	return fmt.Errorf("%s: %w: %w", c.Name, virtplane.ErrUnavailable, err)
}
