package scripts

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/virtplane/virtplane"
)

// Runner runs one rendered script on one target. Implementations: ssh.Runner
// (shell and PowerShell over SSH), ansible.Runner (playbooks) and
// fake.Runner; every one passes scripttest.Run.
type Runner interface {
	// Run executes job and streams the script's output to job.Stdout and
	// job.Stderr as it arrives. It returns the script's exit code once the
	// script ended, whatever the code. It returns an error when the script
	// could not run to its end: the error wraps virtplane.ErrTimeout when
	// job.Timeout passed, virtplane.ErrCanceled when ctx was canceled (in
	// both cases the remote process is killed before Run returns),
	// ErrUnavailable when the target cannot be reached, ErrUnauthenticated
	// when it refused the credentials and ErrInvalidArgument when the runner
	// does not run that kind of script. Errors never contain values or body.
	Run(ctx context.Context, job Job) (exitCode int, err error)
}

// Job is one script on one target.
type Job struct {
	Target Target
	Script Rendered
	// Timeout bounds the run when positive.
	Timeout time.Duration
	// Stdout and Stderr receive the output as it streams (nil: discarded).
	Stdout, Stderr io.Writer
}

// Writers returns the job's writers with nil replaced by io.Discard.
func (j Job) Writers() (stdout, stderr io.Writer) {
	stdout, stderr = j.Stdout, j.Stderr
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	return stdout, stderr
}

// WithTimeout derives the job's context: the deadline is tagged so that
// RunError can tell a timeout from a cancel of the caller's context.
func (j Job) WithTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if j.Timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeoutCause(ctx, j.Timeout, errJobTimeout)
}

var errJobTimeout = errors.New("job timeout")

// RunError classifies why a run stopped early from the job's context: a
// timeout (the job's own or the caller's deadline) wraps ErrTimeout, any
// other end of the context wraps ErrCanceled. It returns nil while ctx is
// live.
func RunError(ctx context.Context, target string) error {
	if ctx.Err() == nil {
		return nil
	}
	if errors.Is(context.Cause(ctx), errJobTimeout) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return virtplane.Errorf(virtplane.ErrTimeout, "run on %s: timed out", target)
	}
	return virtplane.Errorf(virtplane.ErrCanceled, "run on %s: canceled", target)
}

// Status sums up how a run on one target ended.
type Status string

const (
	Succeeded Status = "succeeded" // exit code 0
	Failed    Status = "failed"    // non-zero exit code
	TimedOut  Status = "timeout"   // killed after Job.Timeout
	Canceled  Status = "canceled"  // killed because the run was canceled
	Errored   Status = "error"     // could not run (unreachable, refused, bad input)
)

// StatusOf derives the status from Runner.Run's answer.
func StatusOf(exitCode int, err error) Status {
	switch {
	case errors.Is(err, virtplane.ErrTimeout):
		return TimedOut
	case errors.Is(err, virtplane.ErrCanceled):
		return Canceled
	case err != nil:
		return Errored
	case exitCode == 0:
		return Succeeded
	default:
		return Failed
	}
}

func errorText(m *Masker, err error) string {
	if err == nil {
		return ""
	}
	return m.String(err.Error())
}
