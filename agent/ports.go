package agent

import (
	"context"

	"github.com/virtplane/virtplane"
	netport "github.com/virtplane/virtplane/network/port"
)

type (
	portSetup    struct{ Spec netport.Spec }
	portTeardown struct{ Name string }
)

func (s *Server) ports() (netport.Ports, error) {
	if s.node.Ports == nil {
		return nil, virtplane.Errorf(virtplane.ErrNotImplemented, "agent: the node has no network ports")
	}
	return s.node.Ports, nil
}

func (s *Server) registerPorts() {
	s.addUnary("ports/Setup", unary(func(ctx context.Context, in portSetup) (done, error) {
		p, err := s.ports()
		if err != nil {
			return done{}, err
		}
		return done{}, p.Setup(ctx, in.Spec)
	}))
	s.addUnary("ports/Teardown", unary(func(ctx context.Context, in portTeardown) (done, error) {
		p, err := s.ports()
		if err != nil {
			return done{}, err
		}
		return done{}, p.Teardown(ctx, in.Name)
	}))
	s.addUnary("ports/List", unary(func(ctx context.Context, _ noArgs) ([]netport.Spec, error) {
		p, err := s.ports()
		if err != nil {
			return nil, err
		}
		return p.List(ctx)
	}))
}

// Ports returns the node's network ports.
func (c *Client) Ports() netport.Ports { return remotePorts{c: c} }

type remotePorts struct{ c *Client }

var _ netport.Ports = remotePorts{}

// Setup and Teardown are idempotent by the Ports contract: a call lost on
// the way is sent once more, like a read.
func (p remotePorts) Setup(ctx context.Context, s netport.Spec) error {
	return p.c.call(ctx, "ports/Setup", read, portSetup{Spec: s}, nil)
}

func (p remotePorts) Teardown(ctx context.Context, name string) error {
	return p.c.call(ctx, "ports/Teardown", read, portTeardown{Name: name}, nil)
}

func (p remotePorts) List(ctx context.Context) ([]netport.Spec, error) {
	var out []netport.Spec
	err := p.c.call(ctx, "ports/List", read, noArgs{}, &out)
	return out, err
}
