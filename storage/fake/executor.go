package fake

import (
	"context"
	"io"
	"strings"
	"sync"

	"github.com/virtplane/virtplane/storage"
)

// Executor is a recording storage.Executor. It remembers every command,
// answers from scripted responses, injects failures, and otherwise passes
// the command to Next (a real executor) or, when Next is nil, succeeds with
// empty output. Golden-file tests compare Transcript with a file.
type Executor struct {
	// Next runs commands no rule answers; nil answers them with empty output.
	Next storage.Executor

	mu    sync.Mutex
	cmds  []storage.Command
	rules []rule
}

type rule struct {
	prefix string
	stdout []byte
	err    error
	times  int // remaining uses; <0 = unlimited
}

var _ storage.Executor = (*Executor)(nil)

// On answers commands whose rendering (program and arguments, without
// environment) starts with prefix with stdout and err, every time.
func (e *Executor) On(prefix, stdout string, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.rules = append(e.rules, rule{prefix: prefix, stdout: []byte(stdout), err: err, times: -1})
}

// Once answers the next command starting with prefix with stdout and err.
// One-shot rules come before the rules of On and are used up in the order
// they were added, so a test can script a sequence of answers.
func (e *Executor) Once(prefix, stdout string, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.rules = append(e.rules, rule{prefix: prefix, stdout: []byte(stdout), err: err, times: 1})
}

// FailOnce makes the next command starting with prefix fail with err.
func (e *Executor) FailOnce(prefix string, err error) { e.Once(prefix, "", err) }

// Run implements storage.Executor.
func (e *Executor) Run(ctx context.Context, cmd storage.Command) ([]byte, error) {
	if cmd.Stdin != nil {
		// Drain stdin so a caller writing into a pipe does not block.
		_, _ = io.Copy(io.Discard, cmd.Stdin)
	}
	line := render(cmd)
	e.mu.Lock()
	e.cmds = append(e.cmds, cmd)
	// One-shot rules first, oldest first; then standing rules, newest first.
	for i := range e.rules {
		r := &e.rules[i]
		if r.times > 0 && strings.HasPrefix(line, r.prefix) {
			r.times--
			out, err := r.stdout, r.err
			e.mu.Unlock()
			return out, err
		}
	}
	for i := len(e.rules) - 1; i >= 0; i-- {
		r := &e.rules[i]
		if r.times < 0 && strings.HasPrefix(line, r.prefix) {
			out, err := r.stdout, r.err
			e.mu.Unlock()
			return out, err
		}
	}
	next := e.Next
	e.mu.Unlock()
	if next != nil {
		return next.Run(ctx, cmd)
	}
	return nil, ctx.Err()
}

func render(c storage.Command) string {
	return strings.Join(append([]string{c.Name}, c.Args...), " ")
}

// Commands returns the commands run so far.
func (e *Executor) Commands() []storage.Command {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]storage.Command(nil), e.cmds...)
}

// Transcript renders the commands run so far, one per line, with their
// environment, for golden files.
func (e *Executor) Transcript() string {
	var b strings.Builder
	for _, c := range e.Commands() {
		b.WriteString(c.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// Reset forgets the recorded commands (not the rules).
func (e *Executor) Reset() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.cmds = nil
}
