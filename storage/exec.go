package storage

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"github.com/virtplane/virtplane"
)

// Command is one program invocation. It is never interpreted by a shell:
// Args go to the program as they are.
type Command struct {
	Name  string   // program, looked up in PATH
	Args  []string // arguments
	Env   []string // extra KEY=VALUE pairs added to the executor's environment
	Stdin io.Reader
}

// String renders the command for logs and golden files: environment, program
// and arguments separated by spaces (arguments are not quoted; it is not for a shell).
func (c Command) String() string {
	parts := append(append([]string{}, c.Env...), c.Name)
	return strings.Join(append(parts, c.Args...), " ")
}

// Executor runs commands on a node. The local executor runs them on this
// host; a remote one (SSH, node agent) implements the same interface so the
// drivers do not change.
type Executor interface {
	// Run runs cmd and returns its standard output. A non-zero exit is an
	// error of type *ExitError carrying the standard error text.
	Run(ctx context.Context, cmd Command) ([]byte, error)
}

// ExitError is a command that ran and failed.
type ExitError struct {
	Command Command
	Code    int
	Stderr  string
}

func (e *ExitError) Error() string {
	return fmt.Sprintf("%s %s: exit %d: %s", e.Command.Name, strings.Join(e.Command.Args, " "), e.Code, strings.TrimSpace(e.Stderr))
}

// LocalExecutor runs commands on this host with exec.CommandContext.
type LocalExecutor struct {
	// Env is added to every command's environment (after os.Environ).
	Env []string
}

// Run implements Executor.
func (l LocalExecutor) Run(ctx context.Context, c Command) ([]byte, error) {
	if c.Name == "" || strings.HasPrefix(c.Name, "-") {
		return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "command name %q", c.Name)
	}
	cmd := exec.CommandContext(ctx, c.Name, c.Args...)
	cmd.Env = append(append(os.Environ(), l.Env...), c.Env...)
	cmd.Stdin = c.Stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.Bytes(), l.result(ctx, c, err, &stderr)
}
