package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/storage"
)

// Protocol is the number of the wire protocol this package speaks. It
// changes whenever a request or answer changes shape; a client and an
// agent of different protocols refuse each other (VersionError).
const Protocol = 1

// MaxRequestBytes bounds the JSON body of a call. The largest legitimate
// one is a machine spec with its cloud-init data (three fields of at most
// 1 MiB each); uploads and command input are streamed and not bounded by it.
const MaxRequestBytes = 8 << 20

// The headers of the protocol.
const (
	// headerProtocol and headerVersion carry the caller's protocol number
	// and version on every request: the agent refuses a request of another
	// protocol or version, so a controller never drives an agent it does
	// not match (it upgrades it instead).
	headerProtocol = "Virtplane-Protocol"
	headerVersion  = "Virtplane-Version"
	// headerTimeout is the time the caller still waits for the answer (a
	// Go duration, "1.5s"): the agent cancels the work when it has passed.
	// A duration rather than a point in time, so that the clocks of the
	// two machines need not agree.
	headerTimeout = "Virtplane-Timeout"
	// headerCommand is the command of an exec call (base64url of its JSON):
	// the request body is the command's standard input.
	headerCommand = "Virtplane-Command"
	// headerStdin says that the body of an exec call is the command's
	// standard input; without it the command reads end of file.
	headerStdin = "Virtplane-Stdin"
	// trailerError is the outcome of an exec call whose output was already
	// streamed (base64url of a wire error's JSON; empty: success).
	trailerError = "Virtplane-Error"
	// headerRefused marks an answer that is the agent's error rather than
	// an extra service's own.
	headerRefused = "Virtplane-Refused"
)

// The reasons a wire error may carry besides its class, for the client to
// act on.
const (
	// reasonVersion: the request came from another protocol or version.
	reasonVersion = "version"
	// reasonPoolNotOpen: the pool a call names is not open on the agent (an
	// agent restarted since the client opened it).
	reasonPoolNotOpen = "pool_not_open"
)

// wireError is an error on the wire: its class by name and its message,
// and what else survives the trip (a command's exit, a context's end).
type wireError struct {
	Class   string `json:"class,omitempty"`
	Message string `json:"message"`
	// Context is "deadline_exceeded" or "canceled" when the error wrapped
	// the context's error.
	Context string    `json:"context,omitempty"`
	Exit    *wireExit `json:"exit,omitempty"`
	Reason  string    `json:"reason,omitempty"`
	// AgentVersion and AgentProtocol come with reasonVersion.
	AgentVersion  string `json:"agent_version,omitempty"`
	AgentProtocol int    `json:"agent_protocol,omitempty"`
}

// wireExit is a storage.ExitError.
type wireExit struct {
	Command wireCommand `json:"command"`
	Code    int         `json:"code"`
	Stderr  string      `json:"stderr"`
}

// wireCommand is a storage.Command without its input.
type wireCommand struct {
	Name string   `json:"name"`
	Args []string `json:"args,omitempty"`
	Env  []string `json:"env,omitempty"`
}

func (c wireCommand) command() storage.Command {
	return storage.Command{Name: c.Name, Args: c.Args, Env: c.Env}
}

func toWireCommand(c storage.Command) wireCommand {
	return wireCommand{Name: c.Name, Args: c.Args, Env: c.Env}
}

// classNames names the error classes on the wire. Every class of the root
// package is here (TestEveryClassCrossesTheWire checks it).
func classNames() map[string]error {
	return map[string]error{
		"not_found":          virtplane.ErrNotFound,
		"already_exists":     virtplane.ErrAlreadyExists,
		"conflict":           virtplane.ErrConflict,
		"invalid_argument":   virtplane.ErrInvalidArgument,
		"unavailable":        virtplane.ErrUnavailable,
		"resource_exhausted": virtplane.ErrResourceExhausted,
		"not_implemented":    virtplane.ErrNotImplemented,
		"permission_denied":  virtplane.ErrPermissionDenied,
		"unauthenticated":    virtplane.ErrUnauthenticated,
		"canceled":           virtplane.ErrCanceled,
		"timeout":            virtplane.ErrTimeout,
	}
}

func className(class error) string {
	for name, c := range classNames() {
		if c == class {
			return name
		}
	}
	return ""
}

// encodeError puts err on the wire.
func encodeError(err error) *wireError {
	w := &wireError{Class: className(virtplane.Class(err)), Message: err.Error()}
	// A driver that returned its context's error as it was: the class
	// of it, as the caller's own deadline would have given.
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		w.Context = "deadline_exceeded"
		if w.Class == "" {
			w.Class = className(virtplane.ErrTimeout)
		}
	case errors.Is(err, context.Canceled):
		w.Context = "canceled"
		if w.Class == "" {
			w.Class = className(virtplane.ErrCanceled)
		}
	}
	var ee *storage.ExitError
	if errors.As(err, &ee) {
		w.Exit = &wireExit{Command: toWireCommand(ee.Command), Code: ee.Code, Stderr: ee.Stderr}
	}
	var re *RemoteError
	if errors.As(err, &re) {
		w.Reason = re.reason
	}
	return w
}

// status is the HTTP status of an error class: for people reading the
// traffic; the client goes by the class in the body.
func status(class error) int {
	switch class {
	case virtplane.ErrNotFound:
		return http.StatusNotFound
	case virtplane.ErrAlreadyExists, virtplane.ErrConflict:
		return http.StatusConflict
	case virtplane.ErrInvalidArgument:
		return http.StatusBadRequest
	case virtplane.ErrUnavailable:
		return http.StatusServiceUnavailable
	case virtplane.ErrResourceExhausted:
		return http.StatusInsufficientStorage
	case virtplane.ErrNotImplemented:
		return http.StatusNotImplemented
	case virtplane.ErrPermissionDenied:
		return http.StatusForbidden
	case virtplane.ErrUnauthenticated:
		return http.StatusUnauthorized
	case virtplane.ErrCanceled:
		return 499
	case virtplane.ErrTimeout:
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}

// RemoteError is an error the agent returned, as the client sees it: the
// message the agent's driver wrote and the same error class, so that
// errors.Is(err, virtplane.ErrNotFound) holds on this side as it did there
// (and errors.Is(err, context.DeadlineExceeded) when the agent's work ran
// out of time). A command's failure arrives as a *storage.ExitError instead.
type RemoteError struct {
	// Node names the node (ClientConfig.Node), when set.
	Node string
	// Message is the error text on the agent.
	Message string
	// Class is the virtplane error class, nil when the error had none.
	Class  error
	ctx    error
	reason string
}

func (e *RemoteError) Error() string {
	if e.Node != "" {
		return "node " + e.Node + ": " + e.Message
	}
	return e.Message
}

// Unwrap returns the class and the context error the agent's error wrapped.
func (e *RemoteError) Unwrap() []error {
	var out []error
	if e.Class != nil {
		out = append(out, e.Class)
	}
	if e.ctx != nil {
		out = append(out, e.ctx)
	}
	return out
}

// decode turns a wire error back into an error.
func (w *wireError) decode(node string) error {
	if w.Exit != nil {
		return &storage.ExitError{Command: w.Exit.Command.command(), Code: w.Exit.Code, Stderr: w.Exit.Stderr}
	}
	e := &RemoteError{Node: node, Message: w.Message, Class: classNames()[w.Class], reason: w.Reason}
	switch w.Context {
	case "deadline_exceeded":
		e.ctx = context.DeadlineExceeded
	case "canceled":
		e.ctx = context.Canceled
	}
	return e
}

// reasoned returns an error of class that carries a reason for the client.
func reasoned(reason string, class error, format string, args ...any) error {
	return &RemoteError{Class: class, Message: virtplane.Errorf(class, format, args...).Error(), reason: reason}
}

// VersionError is the refusal of a client and an agent that do not match:
// another protocol, or another version of the software. It wraps
// virtplane.ErrConflict. The controller answers it by installing its own
// agent on the node.
type VersionError struct {
	Node                        string
	AgentVersion, ClientVersion string
	AgentProtocol               int
	ClientProtocol              int
}

func (e *VersionError) Error() string {
	node := ""
	if e.Node != "" {
		node = "node " + e.Node + ": "
	}
	return fmt.Sprintf("%sagent version %q (protocol %d) does not match the controller's version %q (protocol %d): upgrade the agent: %v",
		node, e.AgentVersion, e.AgentProtocol, e.ClientVersion, e.ClientProtocol, virtplane.ErrConflict)
}

// Unwrap returns virtplane.ErrConflict.
func (e *VersionError) Unwrap() error { return virtplane.ErrConflict }

// compatible is the rule both sides apply: the same protocol, and the same
// version when both name one.
func compatible(agentVersion string, agentProtocol int, clientVersion string, clientProtocol int) bool {
	return agentProtocol == clientProtocol && (agentVersion == "" || clientVersion == "" || agentVersion == clientVersion)
}

// formatTimeout writes the time left until deadline for headerTimeout.
func formatTimeout(deadline time.Time) string {
	left := time.Until(deadline).Round(time.Microsecond)
	if left <= 0 {
		left = time.Microsecond // already over: the agent ends the work at once
	}
	return left.String()
}

// parseTimeout reads headerTimeout; ok is false when the header is absent.
func parseTimeout(s string) (d time.Duration, ok bool, err error) {
	if s == "" {
		return 0, false, nil
	}
	d, err = time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, false, virtplane.Errorf(virtplane.ErrInvalidArgument, "agent: header %s %q: want a positive duration", headerTimeout, s)
	}
	return d, true, nil
}

// parseProtocol reads headerProtocol.
func parseProtocol(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return 0, virtplane.Errorf(virtplane.ErrInvalidArgument, "agent: header %s %q: want the protocol number", headerProtocol, s)
	}
	return n, nil
}

// decodeJSON reads exactly one JSON value into v, refusing fields v does
// not have (nothing a request holds is silently ignored).
func decodeJSON(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "agent: request body: %v", err)
	}
	if err := dec.Decode(new(json.RawMessage)); err != io.EOF {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "agent: request body: data after the JSON value")
	}
	return nil
}
