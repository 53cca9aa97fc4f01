package sshnode

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/virtplane/virtplane"
	netport "github.com/virtplane/virtplane/network/port"
	"github.com/virtplane/virtplane/storage"
)

// The agent protocol: the daemon runs
//
//	AGENT port setup|teardown|list --state-dir DIR [--netns NAME]
//
// on the node with a PortRequest as JSON on standard input; the agent
// (virtplaned) answers with a PortResponse as JSON on standard output and
// exits 0, or 1 when the response carries an error.

// PortRequest is what the agent reads.
type PortRequest struct {
	Spec *netport.Spec `json:"spec,omitempty"` // setup
	Name string        `json:"name,omitempty"` // teardown
}

// PortResponse is what the agent writes.
type PortResponse struct {
	Ports []netport.Spec `json:"ports,omitempty"` // list
	Error *AgentError    `json:"error,omitempty"`
}

// AgentError carries an error and its virtplane class across the wire.
type AgentError struct {
	// Class is the text of the class (virtplane.ErrConflict.Error(), ...);
	// empty for an error of no class.
	Class   string `json:"class,omitempty"`
	Message string `json:"message"`
}

// classes are the error classes the protocol carries.
var classes = [...]error{
	virtplane.ErrNotFound, virtplane.ErrAlreadyExists, virtplane.ErrConflict, virtplane.ErrInvalidArgument,
	virtplane.ErrUnavailable, virtplane.ErrResourceExhausted, virtplane.ErrNotImplemented,
	virtplane.ErrPermissionDenied, virtplane.ErrUnauthenticated, virtplane.ErrCanceled, virtplane.ErrTimeout,
}

// EncodeError turns err into its wire form.
func EncodeError(err error) *AgentError {
	if err == nil {
		return nil
	}
	e := &AgentError{Message: err.Error()}
	if c := virtplane.Class(err); c != nil {
		e.Class = c.Error()
		e.Message = strings.TrimSuffix(e.Message, ": "+e.Class)
	}
	return e
}

// Err is the error e carries, of its class; nil for a nil e.
func (e *AgentError) Err(node string) error {
	if e == nil {
		return nil
	}
	for _, c := range classes {
		if c.Error() == e.Class {
			return virtplane.Errorf(c, "node %s: %s", node, e.Message)
		}
	}
	return fmt.Errorf("node %s: %s", node, e.Message)
}

// PortOps returns the operations of the agent's port command.
func PortOps() []string { return []string{"setup", "teardown", "list"} }

// ServePorts runs one operation of the agent's port command on p: it reads
// the request from in, writes the response to out, and returns the
// operation's error (already written to out), for the exit code.
func ServePorts(ctx context.Context, p netport.Ports, op string, in io.Reader, out io.Writer) error {
	var req PortRequest
	var resp PortResponse
	err := json.NewDecoder(io.LimitReader(in, 1<<20)).Decode(&req)
	if err != nil && !errors.Is(err, io.EOF) {
		err = virtplane.Errorf(virtplane.ErrInvalidArgument, "port %s: request: %v", op, err)
	} else {
		err = nil
		switch op {
		case "setup":
			if req.Spec == nil {
				err = virtplane.Errorf(virtplane.ErrInvalidArgument, "port setup: request: spec is required")
			} else {
				err = p.Setup(ctx, *req.Spec)
			}
		case "teardown":
			err = p.Teardown(ctx, req.Name)
		case "list":
			resp.Ports, err = p.List(ctx)
		default:
			err = virtplane.Errorf(virtplane.ErrInvalidArgument, "port: operation %q (one of %s)", op, strings.Join(PortOps(), ", "))
		}
	}
	resp.Error = EncodeError(err)
	if werr := json.NewEncoder(out).Encode(resp); werr != nil && err == nil {
		err = werr
	}
	return err
}

// PortsConfig says where the agent is and what it works on.
type PortsConfig struct {
	// Node names the node in errors.
	Node string
	// Agent is the virtplaned binary on the node.
	Agent string
	// StateDir is the agent's record of the ports, on the node.
	StateDir string
	// Netns is the network namespace the ports live in; empty for the
	// node's own.
	Netns string
}

// Ports are a node's network ports, made by the agent on the node: each
// call runs the agent once through Exec (an SSH Executor; any Executor
// works, the local one included).
type Ports struct {
	cfg  PortsConfig
	exec storage.Executor
	// mu serialises this daemon's calls: the agent also locks the state
	// directory, but waiting here costs no remote process.
	mu sync.Mutex
}

var _ netport.Ports = (*Ports)(nil)

// NewPorts returns the ports the agent manages on the node exec runs on.
func NewPorts(exec storage.Executor, cfg PortsConfig) (*Ports, error) {
	for _, f := range []struct{ name, v string }{{"agent", cfg.Agent}, {"state directory", cfg.StateDir}} {
		if !strings.HasPrefix(f.v, "/") {
			return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "node %s: ports: %s %q must be an absolute path", cfg.Node, f.name, f.v)
		}
	}
	return &Ports{cfg: cfg, exec: exec}, nil
}

// PortArgs are the agent's arguments for op.
func PortArgs(op, stateDir, netns string) []string {
	args := []string{"port", op, "--state-dir", stateDir}
	if netns != "" {
		args = append(args, "--netns", netns)
	}
	return args
}

func (p *Ports) call(ctx context.Context, op string, req PortRequest) (PortResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	body, err := json.Marshal(req)
	if err != nil {
		return PortResponse{}, err
	}
	out, runErr := p.exec.Run(ctx, storage.Command{Name: p.cfg.Agent, Args: PortArgs(op, p.cfg.StateDir, p.cfg.Netns), Stdin: bytes.NewReader(body)})
	var resp PortResponse
	var exit *storage.ExitError
	if runErr != nil && !errors.As(runErr, &exit) {
		return resp, runErr // connection, cancel
	}
	if err := json.Unmarshal(out, &resp); err != nil {
		// Not the agent speaking: missing binary, wrong version.
		if exit != nil {
			return resp, virtplane.Errorf(virtplane.ErrUnavailable, "node %s: port agent %s: exit %d: %s", p.cfg.Node, p.cfg.Agent, exit.Code, strings.TrimSpace(exit.Stderr))
		}
		return resp, virtplane.Errorf(virtplane.ErrUnavailable, "node %s: port agent %s: answer: %v", p.cfg.Node, p.cfg.Agent, err)
	}
	if err := resp.Error.Err(p.cfg.Node); err != nil {
		return resp, err
	}
	if exit != nil {
		return resp, virtplane.Errorf(virtplane.ErrUnavailable, "node %s: port agent %s: exit %d without an error: %s", p.cfg.Node, p.cfg.Agent, exit.Code, strings.TrimSpace(exit.Stderr))
	}
	return resp, nil
}

// Setup implements netport.Ports.
func (p *Ports) Setup(ctx context.Context, s netport.Spec) error {
	_, err := p.call(ctx, "setup", PortRequest{Spec: &s})
	return err
}

// Teardown implements netport.Ports.
func (p *Ports) Teardown(ctx context.Context, name string) error {
	_, err := p.call(ctx, "teardown", PortRequest{Name: name})
	return err
}

// List implements netport.Ports.
func (p *Ports) List(ctx context.Context) ([]netport.Spec, error) {
	resp, err := p.call(ctx, "list", PortRequest{})
	if err != nil {
		return nil, err
	}
	if resp.Ports == nil {
		resp.Ports = []netport.Spec{}
	}
	slices.SortFunc(resp.Ports, func(a, b netport.Spec) int { return strings.Compare(a.Name, b.Name) })
	return resp.Ports, nil
}
