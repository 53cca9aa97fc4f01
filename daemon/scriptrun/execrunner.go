package scriptrun

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/scripts"
	"github.com/virtplane/virtplane/storage"
)

// ExecRunner runs shell scripts on nodes through the executor the daemon
// already has for each node (storage.Executor: the SSH connection of an
// ssh:// node, this host for the local one, later the node agent). It is a
// scripts.Runner and passes scripttest.Run on every executor that is a
// storage.StreamExecutor; on one that is not, output arrives when the
// script ends and a cancel kills only what the executor kills.
type ExecRunner struct {
	// Executor returns the executor of a target.
	Executor func(ctx context.Context, t scripts.Target) (storage.Executor, error)
}

var _ scripts.Runner = ExecRunner{}

// execWrapper runs on the node as `sh -c`. The script comes on stdin,
// exactly n bytes, into a private temporary file, so that neither values nor
// body are ever on a command line, and the script's own stdin is
// /dev/null. The executor runs the wrapper as the leader of a process group
// and kills the group on cancel; the TERM trap lets the wrapper remove the
// file on its way out.
const execWrapper = `umask 077
d=$(mktemp -d) || exit 96
trap 'rm -rf "$d"' EXIT
trap 'exit 143' TERM INT HUP
head -c %d >"$d/s" || exit 96
[ "$(wc -c <"$d/s")" -eq %d ] || { echo "virtplane: script truncated in transfer" >&2; exit 96; }
bash --noprofile --norc "$d/s" </dev/null
`

// ExecCommand is the command that runs r through an executor; r's text is
// its stdin.
func ExecCommand(r scripts.Rendered) (storage.Command, error) {
	if r.Kind != scripts.Shell {
		return storage.Command{}, virtplane.Errorf(virtplane.ErrInvalidArgument,
			"node runner: cannot run %s script %q on a node (shell scripts, or Ansible on ssh:// nodes)", r.Kind, r.ScriptName)
	}
	text := r.Text()
	n := len(text)
	return storage.Command{Name: "sh", Args: []string{"-c", fmt.Sprintf(execWrapper, n, n)}, Stdin: bytes.NewReader([]byte(text))}, nil
}

// Run implements scripts.Runner.
func (r ExecRunner) Run(ctx context.Context, job scripts.Job) (int, error) {
	if err := job.Target.Validate(); err != nil {
		return -1, err
	}
	cmd, err := ExecCommand(job.Script)
	if err != nil {
		return -1, err
	}
	ctx, cancel := job.WithTimeout(ctx)
	defer cancel()
	ex, err := r.Executor(ctx, job.Target)
	if err != nil {
		if e := scripts.RunError(ctx, job.Target.Name); e != nil {
			return -1, e
		}
		return -1, fmt.Errorf("node %s: %w", job.Target.Name, err)
	}
	stdout, stderr := job.Writers()
	if se, ok := ex.(storage.StreamExecutor); ok {
		err = se.Stream(ctx, cmd, stdout, stderr)
	} else {
		var out []byte
		out, err = ex.Run(ctx, cmd)
		if len(out) > 0 {
			_, _ = stdout.Write(out)
		}
		var exit *storage.ExitError
		if errors.As(err, &exit) && exit.Stderr != "" {
			_, _ = io.WriteString(stderr, exit.Stderr)
		}
	}
	if e := scripts.RunError(ctx, job.Target.Name); e != nil {
		return -1, e
	}
	var exit *storage.ExitError
	switch {
	case err == nil:
		return 0, nil
	case errors.As(err, &exit):
		return exit.Code, nil
	case virtplane.Class(err) != nil:
		return -1, fmt.Errorf("node %s: %w", job.Target.Name, err)
	default:
		return -1, virtplane.Errorf(virtplane.ErrUnavailable, "node %s: %v", job.Target.Name, err)
	}
}

// ProcessAlive reports whether a process matching the pgrep -f pattern runs
// on the target (for tests and the conformance suite).
func (r ExecRunner) ProcessAlive(ctx context.Context, t scripts.Target, pattern string) (bool, error) {
	ex, err := r.Executor(ctx, t)
	if err != nil {
		return false, err
	}
	_, err = ex.Run(ctx, storage.Command{Name: "pgrep", Args: []string{"-f", pattern}})
	var exit *storage.ExitError
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &exit) && exit.Code == 1:
		return false, nil
	case errors.As(err, &exit):
		return false, virtplane.Errorf(virtplane.ErrUnavailable, "pgrep on %s: exit %s", t.Name, strconv.Itoa(exit.Code))
	default:
		return false, err
	}
}
