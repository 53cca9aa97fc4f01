package api

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/store"
	"github.com/virtplane/virtplane/vmm"
)

// TemplateBody is what an admin sets on a domain template.
type TemplateBody struct {
	Name     string `json:"name" minLength:"1" maxLength:"63"`
	Machine  string `json:"machine,omitempty" maxLength:"64"`
	CPUMode  string `json:"cpu_mode,omitempty" enum:"host-passthrough,host-model,custom,"`
	CPUModel string `json:"cpu_model,omitempty" maxLength:"64"`
	DiskBus  string `json:"disk_bus,omitempty" enum:"virtio,sata,scsi,ide,"`
	NICModel string `json:"nic_model,omitempty" enum:"virtio,e1000,rtl8139,"`
	Video    string `json:"video,omitempty" enum:"vga,cirrus,virtio,qxl,bochs,none,"`
	Override string `json:"override_xml,omitempty" maxLength:"65536" doc:"a partial libvirt <domain> document merged on top (see DomainTemplate)"`
}

// apply validates the body and puts it on t. Values are checked as the
// hypervisor driver checks them; the override by Config.CheckOverride,
// which names the path of a bad element.
func (s *Server) applyTemplate(ctx context.Context, b TemplateBody, t *model.DomainTemplate) error {
	if err := model.ValidName("name", b.Name); err != nil {
		return field("body.name", err)
	}
	vt := vmm.Template{Machine: b.Machine, CPUMode: b.CPUMode, CPUModel: b.CPUModel, DiskBus: b.DiskBus, NICModel: b.NICModel, Video: b.Video, Override: b.Override}
	if err := vt.Validate(); err != nil {
		return field("body", err)
	}
	if b.Override != "" {
		if s.cfg.CheckOverride == nil {
			return field("body.override_xml", virtplane.Errorf(virtplane.ErrNotImplemented, "template overrides: no hypervisor checks them in this daemon"))
		}
		if err := s.cfg.CheckOverride(ctx, b.Override); err != nil {
			return field("body.override_xml", err)
		}
	}
	t.Name, t.Machine, t.CPUMode, t.CPUModel, t.DiskBus, t.NICModel, t.Video, t.Override =
		b.Name, b.Machine, b.CPUMode, b.CPUModel, b.DiskBus, b.NICModel, b.Video, b.Override
	t.Updated = time.Now().UTC()
	return nil
}

// templateFor returns the template a new VM gets: the one named, else the
// cluster's, else none (the built-in).
func (s *Server) templateFor(ctx context.Context, id string, c model.Cluster) (*model.DomainTemplate, error) {
	loc := "body.template_id"
	if id == "" {
		id, loc = c.TemplateID, "body.cluster_id"
	}
	if id == "" {
		return nil, nil
	}
	t, _, err := getObject[model.DomainTemplate](ctx, s.st, store.KindTemplate, id, loc)
	if err != nil {
		return nil, err
	}
	return &t, nil
}

func (s *Server) registerTemplates() {
	tags := []string{"templates"}
	huma.Register(s.api, huma.Operation{
		OperationID: "listTemplates", Method: http.MethodGet, Path: "/v1/templates", Tags: tags, Summary: "List domain templates",
	}, func(ctx context.Context, in *PageInput) (*struct{ Body Page[model.DomainTemplate] }, error) {
		p, err := listObjects[model.DomainTemplate](ctx, s.st, store.KindTemplate, store.ListOptions{After: in.After, Limit: in.Limit}, nil)
		return &struct{ Body Page[model.DomainTemplate] }{p}, problem(err)
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "getTemplate", Method: http.MethodGet, Path: "/v1/templates/{id}", Tags: tags, Summary: "Get a domain template",
	}, func(ctx context.Context, in *IDInput) (*struct{ Body model.DomainTemplate }, error) {
		t, _, err := getObject[model.DomainTemplate](ctx, s.st, store.KindTemplate, in.ID, "path.id")
		return &struct{ Body model.DomainTemplate }{t}, problem(err)
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "createTemplate", Method: http.MethodPost, Path: "/v1/templates", Tags: tags, DefaultStatus: http.StatusCreated,
		Summary: "Create a domain template (admin)",
	}, func(ctx context.Context, in *struct{ Body TemplateBody }) (*struct{ Body model.DomainTemplate }, error) {
		if err := requireAdmin(ctx); err != nil {
			return nil, problem(err)
		}
		t := model.DomainTemplate{ID: store.NewID(), Version: 1, Created: time.Now().UTC()}
		if err := s.applyTemplate(ctx, in.Body, &t); err != nil {
			return nil, problem(err)
		}
		data, err := encode(t)
		if err != nil {
			return nil, problem(err)
		}
		err = s.st.Update(ctx, func(tx store.Tx) error {
			return field("body.name", tx.CreateObject(ctx, &store.Object{Kind: store.KindTemplate, ID: t.ID, Name: t.Name, Data: data}))
		})
		return &struct{ Body model.DomainTemplate }{t}, problem(err)
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "updateTemplate", Method: http.MethodPut, Path: "/v1/templates/{id}", Tags: tags,
		Summary:     "Change a domain template (admin): a new version, for VMs defined from now on",
		Description: "A full replacement: the template becomes exactly the body sent, and a field left out takes its default (as at create), not its old value. Read it first to change one field.",
	}, func(ctx context.Context, in *struct {
		IDInput
		Body TemplateBody
	}) (*struct{ Body model.DomainTemplate }, error) {
		if err := requireAdmin(ctx); err != nil {
			return nil, problem(err)
		}
		var t model.DomainTemplate
		err := s.st.Update(ctx, func(tx store.Tx) error {
			var o store.Object
			var err error
			if t, o, err = getObject[model.DomainTemplate](ctx, tx, store.KindTemplate, in.ID, "path.id"); err != nil {
				return err
			}
			if err := s.applyTemplate(ctx, in.Body, &t); err != nil {
				return err
			}
			t.Version++
			if o.Data, err = encode(t); err != nil {
				return err
			}
			o.Name = t.Name
			return field("body.name", tx.UpdateObject(ctx, &o))
		})
		return &struct{ Body model.DomainTemplate }{t}, problem(err)
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "deleteTemplate", Method: http.MethodDelete, Path: "/v1/templates/{id}", Tags: tags, DefaultStatus: http.StatusNoContent,
		Summary: "Delete a domain template no cluster uses (admin); VMs defined from it keep their domains",
	}, func(ctx context.Context, in *IDInput) (*struct{}, error) {
		if err := requireAdmin(ctx); err != nil {
			return nil, problem(err)
		}
		err := s.st.Update(ctx, func(tx store.Tx) error {
			if _, err := tx.GetObject(ctx, store.KindTemplate, in.ID); err != nil {
				return field("path.id", err)
			}
			objs, err := tx.ListObjects(ctx, store.KindCluster, store.ListOptions{Limit: 10000})
			if err != nil {
				return err
			}
			for _, o := range objs {
				c, err := decode[model.Cluster](o)
				if err != nil {
					return err
				}
				if c.TemplateID == in.ID {
					return field("path.id", virtplane.Errorf(virtplane.ErrConflict, "cluster %s uses template %s: choose another there first", c.Name, in.ID))
				}
			}
			return tx.DeleteObject(ctx, store.KindTemplate, in.ID, 0)
		})
		return nil, problem(err)
	})
}
