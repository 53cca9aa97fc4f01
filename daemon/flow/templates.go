package flow

import (
	"context"

	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/vmm"
)

// vmmTemplate is a domain template as the hypervisor driver takes it.
func vmmTemplate(t model.DomainTemplate) *vmm.Template {
	return &vmm.Template{Machine: t.Machine, CPUMode: t.CPUMode, CPUModel: t.CPUModel, DiskBus: t.DiskBus,
		NICModel: t.NICModel, Video: t.Video, Override: t.Override}
}

// applyTemplate puts the domain template a create was submitted with (a
// copy of its version then, kept in the task's input) on the spec.
func (f *Flow) applyTemplate(_ context.Context, spec *vmm.Spec, t *model.DomainTemplate) error {
	if t == nil {
		return nil
	}
	spec.Template = vmmTemplate(*t)
	return nil
}
