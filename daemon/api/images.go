package api

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/flow"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/store"
	"github.com/virtplane/virtplane/daemon/tasks"
)

// ImageBody registers an OS image.
type ImageBody struct {
	Name   string `json:"name" minLength:"1" maxLength:"63"`
	OSType string `json:"os_type,omitempty" enum:"linux,windows" default:"linux"`
	Source string `json:"source,omitempty" doc:"absolute path of the image file on the daemon's host, or an http(s) URL; required unless lxd_alias is given"`
	// LXDAlias names an image the nodes' LXD holds.
	LXDAlias string `json:"lxd_alias,omitempty" maxLength:"128" doc:"for lxd clusters: the alias of an image in the nodes' LXD image stores, which containers' root file systems are made from (nothing to import)"`
	Format   string `json:"format,omitempty" enum:"qcow2,raw" default:"qcow2"`
	SizeMiB  int64  `json:"size_mib,omitempty" minimum:"0" default:"0" doc:"virtual size; 0: learnt from the file on import"`
	// ClusterID starts the import at once, like POST /v1/images/{id}/import.
	ClusterID string `json:"cluster_id,omitempty" doc:"import into the storage of every node of this cluster right away (an image.import task)"`
}

// ImageImportBody says where an image goes: every node of a cluster, or one node.
type ImageImportBody struct {
	ClusterID string `json:"cluster_id,omitempty" doc:"import into the storage of every node of this cluster"`
	NodeID    string `json:"node_id,omitempty" doc:"import into this node's storage only"`
}

// ImageTaskOutput answers an image change: the image and the task doing it.
type ImageTaskOutput struct {
	Body struct {
		Image model.Image `json:"image"`
		Task  TaskView    `json:"task"`
	}
}

func (s *Server) registerImages() {
	tags := []string{"images"}
	huma.Register(s.api, huma.Operation{
		OperationID: "listImages", Method: http.MethodGet, Path: "/v1/images", Tags: tags, Summary: "List OS images",
	}, func(ctx context.Context, in *PageInput) (*struct{ Body Page[model.Image] }, error) {
		p, err := listObjects[model.Image](ctx, s.st, store.KindImage, store.ListOptions{After: in.After, Limit: in.Limit}, nil)
		return &struct{ Body Page[model.Image] }{p}, problem(err)
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "getImage", Method: http.MethodGet, Path: "/v1/images/{id}", Tags: tags, Summary: "Get an OS image",
	}, func(ctx context.Context, in *IDInput) (*struct{ Body model.Image }, error) {
		img, _, err := getObject[model.Image](ctx, s.st, store.KindImage, in.ID, "path.id")
		return &struct{ Body model.Image }{img}, problem(err)
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "createImage", Method: http.MethodPost, Path: "/v1/images", Tags: tags,
		Summary: "Register an OS image (admin)", DefaultStatus: http.StatusCreated,
		Description: "Records the image. With cluster_id it also starts its import into that cluster's nodes (see importImage); the image's task_id names the task.",
	}, func(ctx context.Context, in *struct{ Body ImageBody }) (*struct{ Body model.Image }, error) {
		if err := requireAdmin(ctx); err != nil {
			return nil, problem(err)
		}
		b := in.Body
		if err := model.ValidName("name", b.Name); err != nil {
			return nil, problem(field("body.name", err))
		}
		if b.Source != "" || b.LXDAlias == "" {
			if err := model.ValidImageSource("source", b.Source); err != nil {
				return nil, problem(field("body.source", err))
			}
		}
		if b.LXDAlias != "" {
			if err := model.ValidLXDAlias("lxd_alias", b.LXDAlias); err != nil {
				return nil, problem(field("body.lxd_alias", err))
			}
			if b.ClusterID != "" && b.Source == "" {
				return nil, problem(field("body.cluster_id", virtplane.Errorf(virtplane.ErrInvalidArgument, "cluster_id: an image with only an lxd_alias has nothing to import")))
			}
		}
		img := model.Image{ID: store.NewID(), Name: b.Name, OSType: b.OSType, Source: b.Source, LXDAlias: b.LXDAlias, Format: b.Format, SizeMiB: b.SizeMiB,
			State: model.ImageRegistered, Created: time.Now().UTC()}
		var task *TaskView
		err := s.st.Update(ctx, func(tx store.Tx) error {
			if b.ClusterID != "" {
				if _, err := tx.GetObject(ctx, store.KindCluster, b.ClusterID); err != nil {
					return field("body.cluster_id", err)
				}
				t, _, err := s.cfg.Tasks.SubmitTx(ctx, tx, imageSubmission(ctx, flow.KindImageImport, flow.ImageInput{ImageID: img.ID, ClusterID: b.ClusterID}))
				if err != nil {
					return err
				}
				img.State, img.TaskID = model.ImageImporting, t.ID
				tv := viewTask(t)
				task = &tv
			}
			data, err := encode(img)
			if err != nil {
				return err
			}
			return field("body.name", tx.CreateObject(ctx, &store.Object{Kind: store.KindImage, ID: img.ID, Name: img.Name, Data: data}))
		})
		if err != nil {
			return nil, problem(err)
		}
		s.publish("image", "created", img.ID, "", img.State)
		if task != nil {
			s.cfg.Tasks.Wake()
			s.publish("task", "created", task.ID, task.Owner, task.State)
		}
		return &struct{ Body model.Image }{img}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "importImage", Method: http.MethodPost, Path: "/v1/images/{id}/import", Tags: tags, DefaultStatus: http.StatusAccepted,
		Summary: "Import an image into the storage of a cluster's nodes or of one node (admin)",
		Description: "Starts an image.import task: fetch the source once when it is a URL (progress on the task), then convert it with qemu-img into " +
			"the base volume of each node's storage pool, which VMs are linked clones of. Nodes that hold the image already are skipped, so the " +
			"import can be repeated for nodes added later. A failure removes what the task imported.",
	}, func(ctx context.Context, in *struct {
		IDInput
		Body ImageImportBody
	}) (*ImageTaskOutput, error) {
		if err := requireAdmin(ctx); err != nil {
			return nil, problem(err)
		}
		b := in.Body
		if (b.ClusterID == "") == (b.NodeID == "") {
			return nil, problem(field("body", virtplane.Errorf(virtplane.ErrInvalidArgument, "give either cluster_id or node_id")))
		}
		return s.submitImage(ctx, in.ID, flow.KindImageImport, func(tx store.Tx, img model.Image) (flow.ImageInput, error) {
			if img.Source == "" {
				return flow.ImageInput{}, field("path.id", virtplane.Errorf(virtplane.ErrInvalidArgument, "image %s has no source to import from", img.ID))
			}
			if b.ClusterID != "" {
				if _, err := tx.GetObject(ctx, store.KindCluster, b.ClusterID); err != nil {
					return flow.ImageInput{}, field("body.cluster_id", err)
				}
			}
			if b.NodeID != "" {
				if _, err := tx.GetObject(ctx, store.KindNode, b.NodeID); err != nil {
					return flow.ImageInput{}, field("body.node_id", err)
				}
			}
			return flow.ImageInput{ImageID: img.ID, ClusterID: b.ClusterID, NodeID: b.NodeID}, nil
		})
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "deleteImage", Method: http.MethodDelete, Path: "/v1/images/{id}", Tags: tags, DefaultStatus: http.StatusAccepted,
		Summary:     "Delete an image no VM was cloned from (admin)",
		Description: "Starts an image.delete task that removes the image's base volumes from every node's storage and its fetched file, then the image.",
	}, func(ctx context.Context, in *IDInput) (*ImageTaskOutput, error) {
		if err := requireAdmin(ctx); err != nil {
			return nil, problem(err)
		}
		return s.submitImage(ctx, in.ID, flow.KindImageDelete, func(tx store.Tx, img model.Image) (flow.ImageInput, error) {
			// Linked clones read their base: the image stays while a VM uses it.
			if n, err := countVMs(ctx, tx, func(vm model.VM) bool { return vm.ImageID == img.ID }); err != nil || n > 0 {
				if err == nil {
					err = field("path.id", virtplane.Errorf(virtplane.ErrConflict, "image %s backs %d VMs", img.ID, n))
				}
				return flow.ImageInput{}, err
			}
			return flow.ImageInput{ImageID: img.ID}, nil
		})
	})
}

func imageSubmission(ctx context.Context, kind string, in flow.ImageInput) tasks.Submission {
	return tasks.Submission{Kind: kind, Owner: principal(ctx).UserID, Target: "image/" + in.ImageID, Resources: []string{"image/" + in.ImageID}, Input: in}
}

// submitImage starts a task on an image, in one transaction with the
// image's new state and task reference.
func (s *Server) submitImage(ctx context.Context, id, kind string, prepare func(store.Tx, model.Image) (flow.ImageInput, error)) (*ImageTaskOutput, error) {
	out := &ImageTaskOutput{}
	err := s.st.Update(ctx, func(tx store.Tx) error {
		img, o, err := getObject[model.Image](ctx, tx, store.KindImage, id, "path.id")
		if err != nil {
			return err
		}
		if img.State == model.ImageDeleting {
			return field("path.id", virtplane.Errorf(virtplane.ErrConflict, "image %s is being deleted", id))
		}
		input, err := prepare(tx, img)
		if err != nil {
			return err
		}
		t, _, err := s.cfg.Tasks.SubmitTx(ctx, tx, imageSubmission(ctx, kind, input))
		if err != nil {
			return err
		}
		img.TaskID, img.State = t.ID, model.ImageImporting
		if kind == flow.KindImageDelete {
			img.State = model.ImageDeleting
		}
		if o.Data, err = encode(img); err != nil {
			return err
		}
		if err := tx.UpdateObject(ctx, &o); err != nil {
			return err
		}
		out.Body.Image, out.Body.Task = img, viewTask(t)
		return nil
	})
	if err != nil {
		return nil, problem(err)
	}
	s.cfg.Tasks.Wake()
	s.publish("image", "changed", id, "", out.Body.Image.State)
	s.publish("task", "created", out.Body.Task.ID, out.Body.Task.Owner, out.Body.Task.State)
	return out, nil
}

// registerImageFromVM serves images made of a VM's disk (VMmanager's and
// Proxmox's "template from a VM").
func (s *Server) registerImageFromVM(tags []string) {
	type fromVM struct {
		IDInput
		Body struct {
			Name   string `json:"name" minLength:"1" maxLength:"63" doc:"the new image's name"`
			OSType string `json:"os_type,omitempty" enum:"linux,windows" default:"linux"`
		}
	}
	huma.Register(s.api, huma.Operation{
		OperationID: "imageFromVM", Method: http.MethodPost, Path: "/v1/vms/{id}/image", Tags: tags, DefaultStatus: http.StatusAccepted,
		Summary:     "Make an image of a stopped VM's disk (admin)",
		Description: "A task (image.from-vm) copies the disk, flattened, into the image storage of the VM's node; new VMs on that node are linked clones of it. The image has no source: it stays on that node.",
	}, func(ctx context.Context, in *fromVM) (*ImageTaskOutput, error) {
		if err := requireAdmin(ctx); err != nil {
			return nil, problem(err)
		}
		if err := model.ValidName("name", in.Body.Name); err != nil {
			return nil, problem(field("body.name", err))
		}
		osType := in.Body.OSType
		if osType == "" {
			osType = "linux"
		}
		out := &ImageTaskOutput{}
		err := s.st.Update(ctx, func(tx store.Tx) error {
			vm, _, err := s.vm(ctx, tx, in.ID)
			if err != nil {
				return err
			}
			if vm.State != model.VMStopped {
				return field("path.id", virtplane.Errorf(virtplane.ErrConflict, "vm %s is %s: stop it to make an image of its disk", vm.ID, vm.State))
			}
			img := model.Image{ID: store.NewID(), Name: in.Body.Name, OSType: osType, FromVM: vm.ID, State: model.ImageImporting, Created: time.Now().UTC()}
			sub := imageSubmission(ctx, flow.KindImageFromVM, flow.ImageInput{ImageID: img.ID, VMID: vm.ID})
			sub.Resources = append(sub.Resources, "vm/"+vm.ID)
			t, _, err := s.cfg.Tasks.SubmitTx(ctx, tx, sub)
			if err != nil {
				return err
			}
			img.TaskID = t.ID
			data, err := encode(img)
			if err != nil {
				return err
			}
			if err := field("body.name", tx.CreateObject(ctx, &store.Object{Kind: store.KindImage, ID: img.ID, Name: img.Name, Data: data})); err != nil {
				return err
			}
			out.Body.Image, out.Body.Task = img, viewTask(t)
			return nil
		})
		if err != nil {
			return nil, problem(err)
		}
		s.cfg.Tasks.Wake()
		s.publish("image", "created", out.Body.Image.ID, "", out.Body.Image.State)
		s.publish("task", "created", out.Body.Task.ID, out.Body.Task.Owner, out.Body.Task.State)
		return out, nil
	})
}
