package agent

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/storage"
)

// An exec call is a POST to /v1/exec/Run whose headers carry the command
// and whose body is the command's standard input, streamed while the
// command runs (full duplex). The answer is the command's standard output
// and standard error, streamed as they come in frames (execFrame), with
// the outcome in a trailer: a command's exit status arrives after its
// output, which is already on its way.

func (s *Server) registerExec() { s.addRaw("exec/Run", s.serveExec) }

func encodeCommand(c storage.Command) (string, error) {
	b, err := json.Marshal(toWireCommand(c))
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func decodeCommand(h string) (storage.Command, error) {
	b, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		return storage.Command{}, virtplane.Errorf(virtplane.ErrInvalidArgument, "agent: header %s: %v", headerCommand, err)
	}
	var c wireCommand
	if err := decodeJSON(b, &c); err != nil {
		return storage.Command{}, err
	}
	return c.command(), nil
}

func (s *Server) serveExec(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	if s.node.Exec == nil {
		writeError(w, virtplane.Errorf(virtplane.ErrNotImplemented, "agent: the node runs no commands"))
		return
	}
	cmd, err := decodeCommand(r.Header.Get(headerCommand))
	if err != nil {
		writeError(w, err)
		return
	}
	if r.Header.Get(headerStdin) != "" {
		cmd.Stdin = r.Body
	}
	rc := http.NewResponseController(w)
	// The command's output goes out while its input still comes in.
	if err := rc.EnableFullDuplex(); err != nil {
		writeError(w, virtplane.Errorf(virtplane.ErrUnavailable, "agent: exec: %v", err))
		return
	}
	w.Header().Set("Trailer", trailerError)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.WriteHeader(http.StatusOK)
	_ = rc.Flush()
	frames := &frameWriter{w: w, rc: rc}
	if se, ok := s.node.Exec.(storage.StreamExecutor); ok {
		err = se.Stream(ctx, cmd, frames.stream(frameStdout), frames.stream(frameStderr))
	} else {
		err = storage.Stream(ctx, s.node.Exec, cmd, frames.stream(frameStdout))
	}
	if err != nil {
		b, merr := json.Marshal(encodeError(err))
		if merr != nil {
			b, _ = json.Marshal(&wireError{Message: err.Error()})
		}
		w.Header().Set(trailerError, base64.RawURLEncoding.EncodeToString(b))
	}
}

// An execFrame is one write of a command's output on the wire: a byte
// naming the stream, the length (4 bytes, big endian), the bytes.
const (
	frameStdout   byte = 1
	frameStderr   byte = 2
	frameHeader        = 5
	maxFrameBytes      = 1 << 20 // a larger write goes in several frames
)

// frameWriter sends every write of a command's output at once, framed;
// the command's two streams write from two goroutines.
type frameWriter struct {
	mu sync.Mutex
	w  io.Writer
	rc *http.ResponseController
}

func (f *frameWriter) stream(kind byte) io.Writer {
	return writerFunc(func(b []byte) (int, error) { return f.write(kind, b) })
}

func (f *frameWriter) write(kind byte, b []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for len(b) > 0 {
		chunk := b[:min(len(b), maxFrameBytes)]
		var h [frameHeader]byte
		h[0] = kind
		binary.BigEndian.PutUint32(h[1:], uint32(len(chunk)))
		if _, err := f.w.Write(h[:]); err != nil {
			return n, err
		}
		m, err := f.w.Write(chunk)
		n += m
		if err != nil {
			return n, err
		}
		b = b[len(chunk):]
	}
	return n, f.rc.Flush()
}

type writerFunc func([]byte) (int, error)

func (w writerFunc) Write(b []byte) (int, error) { return w(b) }

// readFrames hands each frame of r to stdout or stderr until r ends; a
// writer's failure ends it (kept in that recordingWriter: the caller tells
// it from a broken connection, and the call's end stops the command).
func readFrames(r io.Reader, stdout, stderr *recordingWriter) error {
	var h [frameHeader]byte
	for {
		if _, err := io.ReadFull(r, h[:]); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
		n := binary.BigEndian.Uint32(h[1:])
		if n > maxFrameBytes {
			return fmt.Errorf("exec frame of %d bytes", n)
		}
		to := stdout
		switch h[0] {
		case frameStdout:
		case frameStderr:
			to = stderr
		default:
			return fmt.Errorf("exec frame of kind %d", h[0])
		}
		if _, err := io.CopyN(to, r, int64(n)); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
}

// Exec returns the node's command executor. Its Stream
// (storage.StreamExecutor) streams standard input to the node and standard
// output back as they come, so that a volume can be piped from one node's executor into
// another's; its standard error goes to the stderr writer as it comes (a
// nil one collects it into the *storage.ExitError of a failed command, as
// on the node). Commands are never sent twice.
func (c *Client) Exec() storage.Executor { return remoteExec{c: c} }

type remoteExec struct{ c *Client }

var (
	_ storage.Executor       = remoteExec{}
	_ storage.StreamExecutor = remoteExec{}
)

// Run implements storage.Executor.
func (e remoteExec) Run(ctx context.Context, cmd storage.Command) ([]byte, error) {
	var out bytes.Buffer
	err := e.Stream(ctx, cmd, &out, nil)
	return out.Bytes(), err
}

// Stream implements storage.StreamExecutor.
func (e remoteExec) Stream(ctx context.Context, cmd storage.Command, stdout, stderr io.Writer) error {
	var collected bytes.Buffer
	to := stderr
	if to == nil {
		to = &collected
	}
	err := e.stream(ctx, cmd, stdout, to)
	var ee *storage.ExitError
	switch {
	case !errors.As(err, &ee):
	case stderr == nil && ee.Stderr == "":
		ee.Stderr = collected.String()
	case stderr != nil && ee.Stderr != "":
		// A node executor that only collects: its text, once it ended.
		if _, werr := io.WriteString(stderr, ee.Stderr); werr == nil {
			ee.Stderr = ""
		}
	}
	return err
}

func (e remoteExec) stream(ctx context.Context, cmd storage.Command, stdout, stderr io.Writer) error {
	const method = "exec/Run"
	ctx, cancel := e.c.callContext(ctx, true)
	defer cancel()
	header, err := encodeCommand(cmd)
	if err != nil {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "%s: %s: %v", e.c.prefix(), method, err)
	}
	var body io.Reader = http.NoBody
	var in *stdinBody
	if cmd.Stdin != nil {
		in = &stdinBody{r: cmd.Stdin, closed: make(chan struct{})}
		body = in
	}
	req, err := e.c.request(ctx, http.MethodPost, method, body)
	if err != nil {
		return err
	}
	req.Header.Set(headerCommand, header)
	if in != nil {
		req.Header.Set(headerStdin, "1")
		// The transport reads the caller's Stdin until it closes the
		// body, which may be after the answer came: wait for that, so
		// that the caller has its reader back when Stream returns.
		defer func() {
			select {
			case <-in.closed:
			case <-ctx.Done():
			}
		}()
	}
	resp, err := e.c.roundTrip(ctx, method, req, false)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	out, errOut := &recordingWriter{w: stdout}, &recordingWriter{w: stderr}
	if err := readFrames(resp.Body, out, errOut); err != nil {
		for _, w := range []*recordingWriter{out, errOut} {
			if w.err != nil {
				return fmt.Errorf("%s: %s: %s: writing its output: %w", e.c.prefix(), method, cmd.Name, w.err)
			}
		}
		return e.c.lost(ctx, method, err)
	}
	t := resp.Trailer.Get(trailerError)
	if t == "" {
		return nil
	}
	b, err := base64.RawURLEncoding.DecodeString(t)
	var we wireError
	if err == nil {
		err = json.Unmarshal(b, &we)
	}
	if err != nil {
		return &callError{msg: fmt.Sprintf("%s: %s: trailer: %v", e.c.prefix(), method, err), class: virtplane.ErrUnavailable, cause: err}
	}
	return e.c.decodeError(&we)
}

// stdinBody is a command's standard input as a request body: it tells
// when the transport is done with it.
type stdinBody struct {
	r      io.Reader
	once   sync.Once
	closed chan struct{}
}

func (s *stdinBody) Read(b []byte) (int, error) { return s.r.Read(b) }

func (s *stdinBody) Close() error {
	s.once.Do(func() { close(s.closed) })
	return nil
}

// recordingWriter keeps the error of the caller's writer, to tell it from
// a broken connection.
type recordingWriter struct {
	w   io.Writer
	err error
}

func (r *recordingWriter) Write(b []byte) (int, error) {
	n, err := r.w.Write(b)
	if err != nil && r.err == nil {
		r.err = err
	}
	if err == nil && n < len(b) {
		r.err = io.ErrShortWrite
		err = r.err
	}
	return n, err
}
