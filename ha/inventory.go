package ha

import (
	"errors"

	"github.com/virtplane/virtplane"
)

// AddVM starts looking after a VM created while the controller runs. The
// scheduler learns about it too unless it knows it already.
func (c *Controller) AddVM(v VM) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v.ID == "" {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "vm.ID: empty")
	}
	if _, ok := c.nodes[v.Node]; !ok {
		return virtplane.Errorf(virtplane.ErrNotFound, "vm.Node %q: no such node", v.Node)
	}
	if _, dup := c.vms[v.ID]; dup {
		return virtplane.Errorf(virtplane.ErrAlreadyExists, "vm %q", v.ID)
	}
	if err := c.sched.AddVM(v.schedVM()); err != nil && !errors.Is(err, virtplane.ErrAlreadyExists) {
		return err
	}
	c.vms[v.ID] = &vmRecord{VM: v}
	return nil
}

// RemoveVM stops looking after a VM (deleted, or handed to someone else).
// A VM being fenced or moved gives ErrConflict: try again when it settled.
func (c *Controller) RemoveVM(id string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.vms[id]
	if !ok {
		return virtplane.Errorf(virtplane.ErrNotFound, "vm %q", id)
	}
	if v.phase != vmPlaced && v.phase != vmPending {
		return virtplane.Errorf(virtplane.ErrConflict, "vm %q is being fenced or moved", id)
	}
	_ = c.sched.RemoveVM(id)
	delete(c.vms, id)
	return nil
}

// SetHA turns HA on or off for a VM and sets its restart priority (HA may
// be a sold option). It applies to the next failure of its node.
func (c *Controller) SetHA(id string, enabled bool, priority int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.vms[id]
	if !ok {
		return virtplane.Errorf(virtplane.ErrNotFound, "vm %q", id)
	}
	v.HA, v.Priority = enabled, priority
	return nil
}
