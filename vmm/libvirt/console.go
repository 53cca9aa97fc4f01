package libvirt

import (
	"context"

	golibvirt "github.com/digitalocean/go-libvirt"
	"libvirt.org/go/libvirtxml"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/vmm"
)

// Console returns the graphics endpoint of the running domain.
func (d *Driver) Console(ctx context.Context, name string) (vmm.Console, error) {
	dom, err := d.lookup(ctx, name)
	if err != nil {
		return vmm.Console{}, err
	}
	x, err := d.domainXML(ctx, dom, false)
	if err != nil {
		return vmm.Console{}, err
	}
	var def libvirtxml.Domain
	if err := def.Unmarshal(x); err != nil {
		return vmm.Console{}, err
	}
	if def.ID == nil {
		return vmm.Console{}, virtplane.Errorf(virtplane.ErrConflict, "vm %q is not running: no console", name)
	}
	if def.Devices != nil {
		for _, g := range def.Devices.Graphics {
			switch {
			case g.VNC != nil:
				return vmm.Console{Type: "vnc", Host: g.VNC.Listen, Port: g.VNC.Port, Password: g.VNC.Passwd}, nil
			case g.Spice != nil:
				return vmm.Console{Type: "spice", Host: g.Spice.Listen, Port: g.Spice.Port, Password: g.Spice.Passwd}, nil
			}
		}
	}
	return vmm.Console{}, virtplane.Errorf(virtplane.ErrNotFound, "vm %q has no console", name)
}

// SetConsolePassword changes the graphics password live and persistently.
func (d *Driver) SetConsolePassword(ctx context.Context, name, password string) error {
	if err := vmm.CheckPassword("password", password); err != nil {
		return err
	}
	dom, err := d.lookup(ctx, name)
	if err != nil {
		return err
	}
	st, err := d.state(ctx, dom)
	if err != nil {
		return err
	}
	live := st == vmm.StateRunning || st == vmm.StatePaused
	for _, inactive := range []bool{true, false} {
		if !inactive && !live {
			continue
		}
		x, err := d.domainXML(ctx, dom, inactive)
		if err != nil {
			return err
		}
		var def libvirtxml.Domain
		if err := def.Unmarshal(x); err != nil {
			return err
		}
		if def.Devices == nil || len(def.Devices.Graphics) == 0 {
			return virtplane.Errorf(virtplane.ErrNotFound, "vm %q has no console", name)
		}
		g := def.Devices.Graphics[0]
		switch {
		case g.VNC != nil:
			g.VNC.Passwd = password
		case g.Spice != nil:
			g.Spice.Passwd = password
		}
		gx, err := g.Marshal()
		if err != nil {
			return err
		}
		flags := golibvirt.DomainDeviceModifyConfig
		if !inactive {
			flags = golibvirt.DomainDeviceModifyLive
		}
		if err := do(ctx, d, "set console password of "+name, true, func(lv *golibvirt.Libvirt) error {
			return lv.DomainUpdateDeviceFlags(dom, gx, flags)
		}); err != nil {
			return err
		}
	}
	return nil
}
