package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"

	"github.com/virtplane/virtplane"
)

// Stream runs cmd on ex with its standard output going to stdout as the
// command produces it (for output too large to hold, such as a volume
// piped from one node's qemu-img into another node's), and its standard
// error collected into the *ExitError of a failure: through ex's Stream
// when ex is a StreamExecutor, else through Run and one write of the
// collected output.
func Stream(ctx context.Context, ex Executor, cmd Command, stdout io.Writer) error {
	if s, ok := ex.(StreamExecutor); ok {
		return s.Stream(ctx, cmd, stdout, nil)
	}
	out, err := ex.Run(ctx, cmd)
	if len(out) > 0 {
		if _, werr := stdout.Write(out); werr != nil && err == nil {
			err = fmt.Errorf("%s: writing its output: %w", cmd.Name, werr)
		}
	}
	return err
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
