package libvirt

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/vmm"
)

func (d *Driver) agent(ctx context.Context, dom golibvirt.Domain, cmd any) (json.RawMessage, error) {
	b, err := json.Marshal(cmd)
	if err != nil {
		return nil, err
	}
	out, err := call(ctx, d, "guest agent", false, func(lv *golibvirt.Libvirt) (golibvirt.OptString, error) {
		return lv.QEMUDomainAgentCommand(dom, string(b), 5, 0)
	})
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, virtplane.Errorf(virtplane.ErrUnavailable, "guest agent: empty answer")
	}
	var resp struct {
		Return json.RawMessage `json:"return"`
	}
	if err := json.Unmarshal([]byte(out[0]), &resp); err != nil {
		return nil, fmt.Errorf("guest agent: %w", err)
	}
	return resp.Return, nil
}

// GuestExec runs argv through the guest agent and waits for it to exit.
func (d *Driver) GuestExec(ctx context.Context, name string, argv []string) (vmm.ExecResult, error) {
	if len(argv) == 0 || argv[0] == "" {
		return vmm.ExecResult{}, virtplane.Errorf(virtplane.ErrInvalidArgument, "argv: empty")
	}
	dom, err := d.lookup(ctx, name)
	if err != nil {
		return vmm.ExecResult{}, err
	}
	raw, err := d.agent(ctx, dom, map[string]any{"execute": "guest-exec", "arguments": map[string]any{"path": argv[0], "arg": argv[1:], "capture-output": true}})
	if err != nil {
		return vmm.ExecResult{}, err
	}
	var started struct {
		PID int `json:"pid"`
	}
	if err := json.Unmarshal(raw, &started); err != nil {
		return vmm.ExecResult{}, fmt.Errorf("guest-exec: %w", err)
	}
	for {
		raw, err := d.agent(ctx, dom, map[string]any{"execute": "guest-exec-status", "arguments": map[string]any{"pid": started.PID}})
		if err != nil {
			return vmm.ExecResult{}, err
		}
		var st struct {
			Exited   bool   `json:"exited"`
			ExitCode int    `json:"exitcode"`
			OutData  string `json:"out-data"`
			ErrData  string `json:"err-data"`
		}
		if err := json.Unmarshal(raw, &st); err != nil {
			return vmm.ExecResult{}, fmt.Errorf("guest-exec-status: %w", err)
		}
		if st.Exited {
			res := vmm.ExecResult{ExitCode: st.ExitCode}
			res.Stdout, _ = base64.StdEncoding.DecodeString(st.OutData)
			res.Stderr, _ = base64.StdEncoding.DecodeString(st.ErrData)
			return res, nil
		}
		select {
		case <-ctx.Done():
			return vmm.ExecResult{}, virtplane.Errorf(virtplane.ErrTimeout, "guest-exec %s: %v", argv[0], ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// GuestAddresses asks the guest agent for the guest's interfaces.
func (d *Driver) GuestAddresses(ctx context.Context, name string) ([]vmm.GuestInterface, error) {
	dom, err := d.lookup(ctx, name)
	if err != nil {
		return nil, err
	}
	ifs, err := call(ctx, d, "guest addresses of "+name, true, func(lv *golibvirt.Libvirt) ([]golibvirt.DomainInterface, error) {
		return lv.DomainInterfaceAddresses(dom, uint32(golibvirt.DomainInterfaceAddressesSrcAgent), 0)
	})
	if err != nil {
		return nil, err
	}
	out := make([]vmm.GuestInterface, 0, len(ifs))
	for _, i := range ifs {
		gi := vmm.GuestInterface{Name: i.Name}
		if len(i.Hwaddr) > 0 {
			gi.MAC = i.Hwaddr[0]
		}
		for _, a := range i.Addrs {
			gi.Addresses = append(gi.Addresses, fmt.Sprintf("%s/%d", a.Addr, a.Prefix))
		}
		out = append(out, gi)
	}
	return out, nil
}

// SetGuestPassword sets a guest user's password through the agent.
func (d *Driver) SetGuestPassword(ctx context.Context, name, user, password string) error {
	if err := vmm.CheckName("user", user); err != nil {
		return err
	}
	if err := vmm.CheckPassword("password", password); err != nil {
		return err
	}
	dom, err := d.lookup(ctx, name)
	if err != nil {
		return err
	}
	return do(ctx, d, "set guest password on "+name, false, func(lv *golibvirt.Libvirt) error {
		return lv.DomainSetUserPassword(dom, golibvirt.OptString{user}, golibvirt.OptString{password}, 0)
	})
}
