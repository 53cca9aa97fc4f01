package scripts

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"text/template"
	"time"

	"github.com/virtplane/virtplane"
)

// Result is the outcome of one run of a script on its targets. It holds no
// hidden value and no hidden body: output and errors are masked.
type Result struct {
	ScriptID   string
	ScriptName string
	User       string
	Started    time.Time
	Duration   time.Duration
	Targets    []TargetResult
	// Delivered tells whether the result was mailed; DeliveryError says
	// why not when mailing was asked for and failed.
	Delivered     bool
	DeliveryError string
}

// Succeeded reports whether every target succeeded.
func (r Result) Succeeded() bool {
	for _, t := range r.Targets {
		if t.Status != Succeeded {
			return false
		}
	}
	return len(r.Targets) > 0
}

// TargetResult is the outcome on one target.
type TargetResult struct {
	Target   string
	Status   Status
	ExitCode int // -1 when the script did not run to its end
	Stdout   string
	Stderr   string
	// Truncated is set when output beyond the executor's limit was dropped.
	Truncated bool
	Duration  time.Duration
	Error     string
}

// Delivery is a message about a run for the user who started it.
type Delivery struct {
	To      string
	Subject string
	Body    string
}

// Deliverer sends a Delivery (scripts/mail sends it by email).
type Deliverer interface {
	Deliver(ctx context.Context, d Delivery) error
}

// OutputChunk is a piece of streamed output, already masked.
type OutputChunk struct {
	Target string
	Stream string // "stdout" or "stderr"
	Data   []byte
}

// ExecutorConfig holds what an Executor needs.
type ExecutorConfig struct {
	Runner Runner
}

// ExecutorOption sets an optional part of an Executor.
type ExecutorOption func(*Executor)

// WithLogger sets the logger (silent by default). Log lines carry names,
// statuses and masked errors, never values or bodies.
func WithLogger(l *slog.Logger) ExecutorOption { return func(e *Executor) { e.log = l } }

// WithParallel bounds how many targets run at once (default 8).
func WithParallel(n int) ExecutorOption { return func(e *Executor) { e.parallel = max(n, 1) } }

// WithMaxOutput bounds the output kept per stream and target (default 1 MiB).
func WithMaxOutput(n int) ExecutorOption { return func(e *Executor) { e.maxOutput = max(n, 0) } }

// WithDeliverer enables delivery of results (see RunRequest.NotifyEmail).
func WithDeliverer(d Deliverer) ExecutorOption { return func(e *Executor) { e.deliver = d } }

// WithClock replaces time.Now, for tests.
func WithClock(now func() time.Time) ExecutorOption { return func(e *Executor) { e.now = now } }

// Executor renders a script, checks who may run it where, runs it on every
// target through a Runner and collects masked results.
type Executor struct {
	runner    Runner
	log       *slog.Logger
	parallel  int
	maxOutput int
	deliver   Deliverer
	now       func() time.Time
}

// NewExecutor returns an Executor.
func NewExecutor(cfg ExecutorConfig, opts ...ExecutorOption) (*Executor, error) {
	if cfg.Runner == nil {
		return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "executor runner: must not be nil")
	}
	e := &Executor{
		runner:    cfg.Runner,
		log:       slog.New(slog.DiscardHandler),
		parallel:  8,
		maxOutput: 1 << 20,
		now:       time.Now,
	}
	for _, o := range opts {
		o(e)
	}
	return e, nil
}

// RunRequest is one run asked by a user.
type RunRequest struct {
	Script  Script
	User    string
	Args    map[string]string
	Globals []Variable
	Locals  []Variable
	Targets []Target
	Timeout time.Duration
	// NotifyEmail, when set, receives the result (and the script's notice
	// on success) through the executor's Deliverer.
	NotifyEmail string
	// OnOutput, when set, receives masked output as it streams. It is called
	// from one goroutine per target.
	OnOutput func(OutputChunk)
	// Random feeds password generation (crypto/rand when nil).
	Random io.Reader
}

// Run checks, renders and runs the request. The error is about the request
// (permission, bad input, target not allowed); how each target fared is in
// the Result.
func (e *Executor) Run(ctx context.Context, req RunRequest) (Result, error) {
	s := req.Script
	if !s.CanRun(req.User) {
		return Result{}, virtplane.Errorf(virtplane.ErrPermissionDenied, "user %q may not run script %q", req.User, s.Name)
	}
	if len(req.Targets) == 0 {
		return Result{}, virtplane.Errorf(virtplane.ErrInvalidArgument, "run of script %q: no targets", s.Name)
	}
	seen := map[string]bool{}
	for _, t := range req.Targets {
		if err := t.Validate(); err != nil {
			return Result{}, err
		}
		if seen[t.Name] {
			return Result{}, virtplane.Errorf(virtplane.ErrInvalidArgument, "target %q: listed twice", t.Name)
		}
		seen[t.Name] = true
		if !s.Targets.Matches(t.Tags) {
			return Result{}, virtplane.Errorf(virtplane.ErrPermissionDenied, "target %q: its tags do not admit script %q", t.Name, s.Name)
		}
	}
	r, err := Render(s, RenderInput{Args: req.Args, Globals: req.Globals, Locals: req.Locals, Random: req.Random})
	if err != nil {
		return Result{}, err
	}
	masker := NewMasker(r.Secrets...)
	res := Result{ScriptID: s.ID, ScriptName: s.Name, User: req.User, Started: e.now(), Targets: make([]TargetResult, len(req.Targets))}
	e.log.InfoContext(ctx, "script run started", "script", s.Name, "id", s.ID, "user", req.User, "targets", len(req.Targets))

	sem := make(chan struct{}, e.parallel)
	var wg sync.WaitGroup
	for i, t := range req.Targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
			case <-ctx.Done():
			}
			res.Targets[i] = e.runOne(ctx, t, r, masker, req)
		}()
	}
	wg.Wait()
	res.Duration = e.now().Sub(res.Started)
	e.log.InfoContext(ctx, "script run finished", "script", s.Name, "id", s.ID, "succeeded", res.Succeeded(), "duration", res.Duration)

	if req.NotifyEmail != "" && e.deliver != nil {
		d, err := composeDelivery(req.NotifyEmail, res, r, hosts(req.Targets))
		if err == nil {
			err = e.deliver.Deliver(ctx, d)
		}
		if err != nil {
			res.DeliveryError = masker.String(err.Error())
			e.log.WarnContext(ctx, "script result delivery failed", "script", s.Name, "error", res.DeliveryError)
		} else {
			res.Delivered = true
		}
	}
	return res, nil
}

func (e *Executor) runOne(ctx context.Context, t Target, r Rendered, m *Masker, req RunRequest) TargetResult {
	start := e.now()
	out := &captureWriter{limit: e.maxOutput, target: t.Name, stream: "stdout", on: req.OnOutput}
	errOut := &captureWriter{limit: e.maxOutput, target: t.Name, stream: "stderr", on: req.OnOutput}
	stdout, stderr := NewMaskingWriter(out, m), NewMaskingWriter(errOut, m)
	code, err := -1, RunError(ctx, t.Name)
	if err == nil {
		code, err = e.runner.Run(ctx, Job{Target: t, Script: r, Timeout: req.Timeout, Stdout: stdout, Stderr: stderr})
	}
	_ = stdout.Close()
	_ = stderr.Close()
	tr := TargetResult{
		Target: t.Name, Status: StatusOf(code, err), ExitCode: code,
		Stdout: out.buf.String(), Stderr: errOut.buf.String(), Truncated: out.truncated || errOut.truncated,
		Duration: e.now().Sub(start), Error: errorText(m, err),
	}
	if err != nil {
		tr.ExitCode = -1
	}
	e.log.InfoContext(ctx, "script run on target", "script", r.ScriptName, "target", t.Name,
		"status", string(tr.Status), "exit", tr.ExitCode, "duration", tr.Duration, "error", tr.Error)
	return tr
}

// captureWriter keeps up to limit bytes and forwards every chunk to on.
type captureWriter struct {
	mu        sync.Mutex
	buf       bytes.Buffer
	limit     int
	truncated bool
	target    string
	stream    string
	on        func(OutputChunk)
}

func (c *captureWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	room := c.limit - c.buf.Len()
	switch {
	case room >= len(p):
		c.buf.Write(p)
	case room > 0:
		c.buf.Write(p[:room])
		c.truncated = true
	default:
		c.truncated = c.truncated || len(p) > 0
	}
	if c.on != nil && len(p) > 0 {
		c.on(OutputChunk{Target: c.target, Stream: c.stream, Data: bytes.Clone(p)})
	}
	return len(p), nil
}

// hosts are the targets' hosts as a person connects to them: the host part
// of each address (the name when there is no address).
func hosts(ts []Target) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Name
		if t.Address != "" {
			out[i] = t.Address
			if h, _, err := net.SplitHostPort(t.Address); err == nil {
				out[i] = h
			}
		}
	}
	return out
}

// composeDelivery writes the mail: the masked result and, after a fully
// successful run, the script's notice rendered with the real values. The
// notice sees .Values (by name), .Targets (names) and .Hosts (the targets'
// hosts, in the same order).
func composeDelivery(to string, res Result, r Rendered, hosts []string) (Delivery, error) {
	var b strings.Builder
	status := "failed"
	if res.Succeeded() {
		status = "succeeded"
	}
	fmt.Fprintf(&b, "Script %q %s on %d target(s) in %s.\n", res.ScriptName, status, len(res.Targets), res.Duration.Round(time.Millisecond))
	if r.Notice != "" && res.Succeeded() {
		tmpl, err := template.New("notice").Option("missingkey=error").Parse(r.Notice)
		if err != nil {
			return Delivery{}, virtplane.Errorf(virtplane.ErrInvalidArgument, "script %q notice: does not parse", r.ScriptName)
		}
		vals := map[string]string{}
		for _, v := range r.Values {
			vals[v.Name] = v.Value
		}
		targets := make([]string, len(res.Targets))
		for i, t := range res.Targets {
			targets[i] = t.Target
		}
		b.WriteString("\n")
		if err := tmpl.Execute(&b, map[string]any{"Values": vals, "Targets": targets, "Hosts": hosts}); err != nil {
			return Delivery{}, virtplane.Errorf(virtplane.ErrInvalidArgument, "script %q notice: does not render", r.ScriptName)
		}
		b.WriteString("\n")
	}
	for _, t := range res.Targets {
		fmt.Fprintf(&b, "\n== %s: %s (exit %d, %s)\n", t.Target, t.Status, t.ExitCode, t.Duration.Round(time.Millisecond))
		if t.Error != "" {
			fmt.Fprintf(&b, "error: %s\n", t.Error)
		}
		if t.Stdout != "" {
			fmt.Fprintf(&b, "-- stdout\n%s\n", strings.TrimRight(t.Stdout, "\n"))
		}
		if t.Stderr != "" {
			fmt.Fprintf(&b, "-- stderr\n%s\n", strings.TrimRight(t.Stderr, "\n"))
		}
	}
	return Delivery{To: to, Subject: fmt.Sprintf("Script %s %s", res.ScriptName, status), Body: b.String()}, nil
}
