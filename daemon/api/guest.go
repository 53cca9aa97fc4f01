package api

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/vmm"
)

// GuestInterfaceView is a network interface as the guest agent reports it.
type GuestInterfaceView struct {
	Name      string   `json:"name"`
	MAC       string   `json:"mac,omitempty"`
	Addresses []string `json:"addresses" doc:"CIDR notation"`
}

// GuestExecBody is a command to run in the guest.
type GuestExecBody struct {
	Argv       []string `json:"argv" minItems:"1" maxItems:"256" doc:"program and arguments, not a shell line"`
	TimeoutSec int      `json:"timeout_sec,omitempty" minimum:"0" maximum:"300" doc:"how long to wait for the command; 0: 30 s"`
}

// GuestExecResult is what the command did.
type GuestExecResult struct {
	ExitCode int    `json:"exit_code"`
	Stdout   string `json:"stdout"`
	Stderr   string `json:"stderr"`
}

// GuestPasswordBody sets a guest user's password.
type GuestPasswordBody struct {
	User     string `json:"user" minLength:"1" maxLength:"63"`
	Password string `json:"password" minLength:"1" maxLength:"64"`
}

// The guest agent endpoints answer at once rather than through a task:
// they change nothing the daemon keeps, and a password must not sit in a
// durable task input. A guest without an agent is 503 (ErrUnavailable).
func (s *Server) registerGuest() {
	tags := []string{"guest agent"}
	backend := func() (Backend, error) {
		if s.cfg.Backend == nil {
			return nil, virtplane.Errorf(virtplane.ErrNotImplemented, "guest agent access")
		}
		return s.cfg.Backend, nil
	}
	huma.Register(s.api, huma.Operation{
		OperationID: "guestInterfaces", Method: http.MethodGet, Path: "/v1/vms/{id}/guest/interfaces", Tags: tags,
		Summary: "The VM's network interfaces and addresses as its guest agent reports them",
	}, func(ctx context.Context, in *IDInput) (*struct{ Body Page[GuestInterfaceView] }, error) {
		if _, _, err := s.vm(ctx, s.st, in.ID); err != nil {
			return nil, problem(err)
		}
		b, err := backend()
		if err != nil {
			return nil, problem(err)
		}
		ifs, err := b.GuestInterfaces(ctx, in.ID)
		if err != nil {
			return nil, problem(err)
		}
		out := Page[GuestInterfaceView]{Items: []GuestInterfaceView{}}
		for _, i := range ifs {
			out.Items = append(out.Items, GuestInterfaceView{Name: i.Name, MAC: i.MAC, Addresses: append([]string{}, i.Addresses...)})
		}
		return &struct{ Body Page[GuestInterfaceView] }{out}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "guestExec", Method: http.MethodPost, Path: "/v1/vms/{id}/guest/exec", Tags: tags,
		Summary: "Run a command in the VM through its guest agent and wait for it",
	}, func(ctx context.Context, in *struct {
		IDInput
		Body GuestExecBody
	}) (*struct{ Body GuestExecResult }, error) {
		if _, _, err := s.vm(ctx, s.st, in.ID); err != nil {
			return nil, problem(err)
		}
		b, err := backend()
		if err != nil {
			return nil, problem(err)
		}
		if in.Body.Argv[0] == "" {
			return nil, problem(field("body.argv[0]", virtplane.Errorf(virtplane.ErrInvalidArgument, "argv[0]: empty program")))
		}
		timeout := 30 * time.Second
		if in.Body.TimeoutSec > 0 {
			timeout = time.Duration(in.Body.TimeoutSec) * time.Second
		}
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		res, err := b.GuestExec(ctx, in.ID, in.Body.Argv)
		if err != nil {
			return nil, problem(err)
		}
		return &struct{ Body GuestExecResult }{GuestExecResult{ExitCode: res.ExitCode, Stdout: string(res.Stdout), Stderr: string(res.Stderr)}}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "setGuestPassword", Method: http.MethodPost, Path: "/v1/vms/{id}/guest/password", Tags: tags, DefaultStatus: http.StatusNoContent,
		Summary: "Set a guest user's password through the guest agent",
	}, func(ctx context.Context, in *struct {
		IDInput
		Body GuestPasswordBody
	}) (*struct{}, error) {
		if _, _, err := s.vm(ctx, s.st, in.ID); err != nil {
			return nil, problem(err)
		}
		b, err := backend()
		if err != nil {
			return nil, problem(err)
		}
		if err := vmm.CheckName("user", in.Body.User); err != nil {
			return nil, problem(field("body.user", err))
		}
		if err := vmm.CheckPassword("password", in.Body.Password); err != nil {
			return nil, problem(field("body.password", err))
		}
		return nil, problem(b.SetGuestPassword(ctx, in.ID, in.Body.User, in.Body.Password))
	})
}
