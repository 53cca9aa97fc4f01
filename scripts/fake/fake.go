package fake

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/scripts"
)

// Call records one Run.
type Call struct {
	Target  scripts.Target
	Script  scripts.Rendered // redacted when printed
	Timeout time.Duration
	// Exit and Err are what Run returned.
	Exit int
	Err  error
}

// Handler replaces the interpreter for a target: it writes output and
// returns the exit code. It must return when ctx ends.
type Handler func(ctx context.Context, job scripts.Job, stdout, stderr io.Writer) (int, error)

// Runner is an in-memory scripts.Runner. By default it interprets a small
// shell subset (see the package doc); SetHandler replaces that per target,
// Fail injects errors, Calls records every run, Running lists the "processes"
// alive now.
type Runner struct {
	mu       sync.Mutex
	calls    []Call
	faults   map[string][]error
	handlers map[string]Handler
	running  map[string]int
}

var _ scripts.Runner = (*Runner)(nil)

// New returns a fake runner with no faults.
func New() *Runner {
	return &Runner{faults: map[string][]error{}, handlers: map[string]Handler{}, running: map[string]int{}}
}

// Fail makes the next runs on target return errs, one per run, in order
// (before any output). Use virtplane.Errorf(virtplane.ErrUnavailable, ...)
// for an unreachable target.
func (r *Runner) Fail(target string, errs ...error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.faults[target] = append(r.faults[target], errs...)
}

// SetHandler makes runs on target call h instead of the interpreter
// (nil restores the interpreter).
func (r *Runner) SetHandler(target string, h Handler) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if h == nil {
		delete(r.handlers, target)
	} else {
		r.handlers[target] = h
	}
}

// Calls returns the runs so far, oldest first.
func (r *Runner) Calls() []Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Call(nil), r.calls...)
}

// Running reports whether a "process" whose command line contains substr
// runs now (a sleep of the interpreter, like pgrep -f on a real host).
func (r *Runner) Running(substr string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for cmd, n := range r.running {
		if n > 0 && strings.Contains(cmd, substr) {
			return true
		}
	}
	return false
}

// Run implements scripts.Runner.
func (r *Runner) Run(ctx context.Context, job scripts.Job) (int, error) {
	code, err := r.run(ctx, job)
	r.mu.Lock()
	r.calls = append(r.calls, Call{Target: job.Target, Script: job.Script, Timeout: job.Timeout, Exit: code, Err: err})
	r.mu.Unlock()
	return code, err
}

func (r *Runner) run(ctx context.Context, job scripts.Job) (int, error) {
	if err := job.Target.Validate(); err != nil {
		return -1, err
	}
	if job.Script.Kind != scripts.Shell {
		return -1, virtplane.Errorf(virtplane.ErrInvalidArgument, "fake runner: %s scripts are not interpreted (set a handler)", job.Script.Kind)
	}
	r.mu.Lock()
	var fault error
	if q := r.faults[job.Target.Name]; len(q) > 0 {
		fault, r.faults[job.Target.Name] = q[0], q[1:]
	}
	h := r.handlers[job.Target.Name]
	r.mu.Unlock()
	if fault != nil {
		return -1, fault
	}
	ctx, cancel := job.WithTimeout(ctx)
	defer cancel()
	stdout, stderr := job.Writers()
	if h == nil {
		h = r.interpret
	}
	code, err := h(ctx, job, stdout, stderr)
	if e := scripts.RunError(ctx, job.Target.Name); e != nil {
		return -1, e
	}
	return code, err
}

// interpret runs the body line by line. Supported: empty lines and
// comments, `echo WORDS` (with `>&2`), `printf '%s\n' "$NAME"` (with
// `>&2`), `sleep SECONDS`, `exit N`. Anything else fails with exit 127, the
// way a shell reports an unknown command.
func (r *Runner) interpret(ctx context.Context, job scripts.Job, stdout, stderr io.Writer) (int, error) {
	values := map[string]string{}
	for _, v := range job.Script.Values {
		values[v.Name] = v.Value
	}
	for n, line := range strings.Split(job.Script.Body, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		w := stdout
		if l, ok := strings.CutSuffix(line, ">&2"); ok {
			line, w = strings.TrimSpace(l), stderr
		}
		cmd, arg, _ := strings.Cut(line, " ")
		switch cmd {
		case "echo":
			fmt.Fprintln(w, arg)
		case "printf":
			name, ok := strings.CutPrefix(arg, `'%s\n' "$`)
			name, ok2 := strings.CutSuffix(name, `"`)
			if !ok || !ok2 {
				fmt.Fprintf(stderr, "fake: line %d: unsupported printf form\n", n+1)
				return 127, nil
			}
			fmt.Fprintln(w, values[name])
		case "sleep":
			d, err := strconv.ParseFloat(arg, 64)
			if err != nil {
				fmt.Fprintf(stderr, "sleep: invalid time interval\n")
				return 1, nil
			}
			if !r.sleep(ctx, line, time.Duration(d*float64(time.Second))) {
				return -1, nil
			}
		case "exit":
			code, err := strconv.Atoi(arg)
			if err != nil {
				return 2, nil
			}
			return code & 0xff, nil
		default:
			fmt.Fprintf(stderr, "fake: line %d: %s: command not found\n", n+1, cmd)
			return 127, nil
		}
	}
	return 0, nil
}

// sleep waits like a sleeping process that the run's end kills.
func (r *Runner) sleep(ctx context.Context, cmdline string, d time.Duration) bool {
	r.mu.Lock()
	r.running[cmdline]++
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.running[cmdline]--
		r.mu.Unlock()
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
