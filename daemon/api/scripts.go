package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/notify"
	"github.com/virtplane/virtplane/daemon/scriptrun"
	"github.com/virtplane/virtplane/daemon/store"
)

// maxScriptRequest bounds the requests of the script and notification
// endpoints: a body of 256 KiB, parameters and JSON around it. Larger
// requests are refused with 413 before they are read.
const maxScriptRequest = 512 << 10

// ScriptRunOutput answers a run: the run and its task.
type ScriptRunOutput struct {
	Body struct {
		Run  scriptrun.Run `json:"run"`
		Task TaskView      `json:"task"`
	}
}

// bodyField places a service's field error at its body field.
func bodyField(err error) error {
	var se *scriptrun.FieldError
	var ne *notify.FieldError
	switch {
	case errors.As(err, &se):
		return field("body."+se.Field, err)
	case errors.As(err, &ne):
		return field("body."+ne.Field, err)
	}
	return err
}

func (s *Server) scripts() (*scriptrun.Service, error) {
	if s.cfg.Scripts == nil {
		return nil, virtplane.Errorf(virtplane.ErrNotImplemented, "scripts are not wired into this daemon")
	}
	return s.cfg.Scripts, nil
}

func (s *Server) registerScripts() {
	tags := []string{"scripts"}
	huma.Register(s.api, huma.Operation{
		OperationID: "listScripts", Method: http.MethodGet, Path: "/v1/scripts", Tags: tags,
		Summary: "List the scripts the caller may run: the built-ins, their own and everyone's (admins: all); hidden bodies are left out for others",
	}, func(ctx context.Context, in *PageInput) (*struct{ Body Page[scriptrun.Script] }, error) {
		sv, err := s.scripts()
		if err != nil {
			return nil, problem(err)
		}
		items, next, err := sv.Scripts(ctx, principal(ctx), in.After, in.Limit)
		if items == nil {
			items = []scriptrun.Script{}
		}
		return &struct{ Body Page[scriptrun.Script] }{Page[scriptrun.Script]{Items: items, Next: next}}, problem(err)
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "getScript", Method: http.MethodGet, Path: "/v1/scripts/{id}", Tags: tags,
		Summary: "Get a script (its body only for its owner and admins when hidden)",
	}, func(ctx context.Context, in *IDInput) (*struct{ Body scriptrun.Script }, error) {
		sv, err := s.scripts()
		if err != nil {
			return nil, problem(err)
		}
		sc, err := sv.Script(ctx, principal(ctx), in.ID)
		return &struct{ Body scriptrun.Script }{sc}, problem(field("path.id", err))
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "createScript", Method: http.MethodPost, Path: "/v1/scripts", Tags: tags, DefaultStatus: http.StatusCreated,
		Summary: "Add a script to the catalog, owned by the caller", MaxBodyBytes: maxScriptRequest,
	}, func(ctx context.Context, in *struct{ Body scriptrun.ScriptBody }) (*struct{ Body scriptrun.Script }, error) {
		sv, err := s.scripts()
		if err != nil {
			return nil, problem(err)
		}
		sc, err := sv.CreateScript(ctx, principal(ctx), in.Body)
		if err != nil {
			return nil, problem(bodyField(err))
		}
		s.publish("script", "created", sc.ID, sc.Owner, "")
		return &struct{ Body scriptrun.Script }{sc}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "updateScript", Method: http.MethodPut, Path: "/v1/scripts/{id}", Tags: tags,
		Summary: "Change a script (its owner or an admin; built-ins cannot change)", MaxBodyBytes: maxScriptRequest,
		Description: "A full replacement: the script becomes exactly the body sent (name, description, kind, body, parameters, visibility, targets, notice), and a field left out takes its default (as at create), not its old value. Its runs keep their records.",
	}, func(ctx context.Context, in *struct {
		IDInput
		Body scriptrun.ScriptBody
	}) (*struct{ Body scriptrun.Script }, error) {
		sv, err := s.scripts()
		if err != nil {
			return nil, problem(err)
		}
		sc, err := sv.UpdateScript(ctx, principal(ctx), in.ID, in.Body)
		if err != nil {
			var fe *scriptrun.FieldError
			if !errors.As(err, &fe) {
				err = field("path.id", err)
			}
			return nil, problem(bodyField(err))
		}
		s.publish("script", "changed", sc.ID, sc.Owner, "")
		return &struct{ Body scriptrun.Script }{sc}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "deleteScript", Method: http.MethodDelete, Path: "/v1/scripts/{id}", Tags: tags, DefaultStatus: http.StatusNoContent,
		Summary: "Delete a script (its owner or an admin; built-ins cannot go); its runs keep their records",
	}, func(ctx context.Context, in *IDInput) (*struct{}, error) {
		sv, err := s.scripts()
		if err != nil {
			return nil, problem(err)
		}
		if err := sv.DeleteScript(ctx, principal(ctx), in.ID); err != nil {
			return nil, problem(field("path.id", err))
		}
		s.publish("script", "deleted", in.ID, "", "")
		return nil, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "runScript", Method: http.MethodPost, Path: "/v1/scripts/{id}/runs", Tags: tags, DefaultStatus: http.StatusAccepted,
		Summary: "Run a script on VMs and nodes",
		Description: "Starts a script.run task. Targets are the VMs and nodes named, and those carrying all the tags given; each must be admitted by the script's target filter. " +
			"Arguments reach the script as data (environment variables, Ansible extra vars), never as code. Output streams into the task's log with hidden values masked; " +
			"the run's record (GET /v1/script-runs/{id}) holds each target's exit code and output. Canceling the task kills the script's process group on every target.",
		MaxBodyBytes: maxScriptRequest,
	}, func(ctx context.Context, in *struct {
		IDInput
		Body scriptrun.RunBody
	}) (*ScriptRunOutput, error) {
		sv, err := s.scripts()
		if err != nil {
			return nil, problem(err)
		}
		sub, err := sv.SubmitRun(ctx, principal(ctx), in.ID, in.Body)
		if err != nil {
			var fe *scriptrun.FieldError
			if !errors.As(err, &fe) {
				err = field("path.id", err)
			}
			return nil, problem(bodyField(err))
		}
		out := &ScriptRunOutput{}
		out.Body.Run, out.Body.Task = sub.Run, viewTask(sub.Task)
		s.publish("task", "created", sub.Task.ID, sub.Task.Owner, string(sub.Task.State))
		return out, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "listScriptRuns", Method: http.MethodGet, Path: "/v1/script-runs", Tags: tags, Summary: "List the caller's script runs (admins: all)",
	}, func(ctx context.Context, in *PageInput) (*struct{ Body Page[scriptrun.Run] }, error) {
		sv, err := s.scripts()
		if err != nil {
			return nil, problem(err)
		}
		items, next, err := sv.Runs(ctx, principal(ctx), in.After, in.Limit)
		return &struct{ Body Page[scriptrun.Run] }{Page[scriptrun.Run]{Items: items, Next: next}}, problem(err)
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "getScriptRun", Method: http.MethodGet, Path: "/v1/script-runs/{id}", Tags: tags, Summary: "A script run: state, and exit code and masked output per target",
	}, func(ctx context.Context, in *IDInput) (*struct{ Body scriptrun.Run }, error) {
		sv, err := s.scripts()
		if err != nil {
			return nil, problem(err)
		}
		r, err := sv.GetRun(ctx, principal(ctx), in.ID)
		return &struct{ Body scriptrun.Run }{r}, problem(field("path.id", err))
	})

	vtags := []string{"script variables"}
	huma.Register(s.api, huma.Operation{
		OperationID: "listScriptVariables", Method: http.MethodGet, Path: "/v1/script-variables", Tags: vtags,
		Summary: "List the global variables and the caller's local ones (admins: all); hidden values are never shown",
	}, func(ctx context.Context, _ *struct{}) (*struct{ Body Page[scriptrun.Variable] }, error) {
		sv, err := s.scripts()
		if err != nil {
			return nil, problem(err)
		}
		items, err := sv.Variables(ctx, principal(ctx))
		return &struct{ Body Page[scriptrun.Variable] }{Page[scriptrun.Variable]{Items: items}}, problem(err)
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "createScriptVariable", Method: http.MethodPost, Path: "/v1/script-variables", Tags: vtags, DefaultStatus: http.StatusCreated,
		Summary: "Add a variable: global (admins) or local to the caller", MaxBodyBytes: maxScriptRequest,
	}, func(ctx context.Context, in *struct{ Body scriptrun.VariableBody }) (*struct{ Body scriptrun.Variable }, error) {
		sv, err := s.scripts()
		if err != nil {
			return nil, problem(err)
		}
		v, err := sv.CreateVariable(ctx, principal(ctx), in.Body)
		return &struct{ Body scriptrun.Variable }{v}, problem(bodyField(err))
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "getScriptVariable", Method: http.MethodGet, Path: "/v1/script-variables/{id}", Tags: vtags, Summary: "Get a variable (a hidden one without its value)",
	}, func(ctx context.Context, in *IDInput) (*struct{ Body scriptrun.Variable }, error) {
		sv, err := s.scripts()
		if err != nil {
			return nil, problem(err)
		}
		v, err := sv.Variable(ctx, principal(ctx), in.ID)
		return &struct{ Body scriptrun.Variable }{v}, problem(field("path.id", err))
	})
	type setVariable struct {
		IDInput
		Body struct {
			Value  string `json:"value" maxLength:"65536"`
			Hidden bool   `json:"hidden,omitempty" doc:"a hidden variable stays hidden"`
		}
	}
	huma.Register(s.api, huma.Operation{
		OperationID: "updateScriptVariable", Method: http.MethodPut, Path: "/v1/script-variables/{id}", Tags: vtags,
		Summary: "Set a variable's value (globals: admins)", MaxBodyBytes: maxScriptRequest,
	}, func(ctx context.Context, in *setVariable) (*struct{ Body scriptrun.Variable }, error) {
		sv, err := s.scripts()
		if err != nil {
			return nil, problem(err)
		}
		v, err := sv.UpdateVariable(ctx, principal(ctx), in.ID, in.Body.Value, in.Body.Hidden)
		if err != nil {
			var fe *scriptrun.FieldError
			if !errors.As(err, &fe) {
				err = field("path.id", err)
			}
		}
		return &struct{ Body scriptrun.Variable }{v}, problem(bodyField(err))
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "deleteScriptVariable", Method: http.MethodDelete, Path: "/v1/script-variables/{id}", Tags: vtags, DefaultStatus: http.StatusNoContent,
		Summary: "Delete a variable (globals: admins)",
	}, func(ctx context.Context, in *IDInput) (*struct{}, error) {
		sv, err := s.scripts()
		if err != nil {
			return nil, problem(err)
		}
		return nil, problem(field("path.id", sv.DeleteVariable(ctx, principal(ctx), in.ID)))
	})

	type setTags struct {
		IDInput
		Body struct {
			Tags []string `json:"tags" maxItems:"32" doc:"the object's own tags (scripts' target filters also see the implicit vm/node, os:, image:, cluster: and virt: tags)"`
		}
	}
	huma.Register(s.api, huma.Operation{
		OperationID: "setVMTags", Method: http.MethodPut, Path: "/v1/vms/{id}/tags", Tags: []string{"vms"},
		Summary: "Set a VM's tags, which scripts select their targets by",
	}, func(ctx context.Context, in *setTags) (*struct{ Body model.VM }, error) {
		if err := model.ValidTags("tags", in.Body.Tags); err != nil {
			return nil, problem(field("body.tags", err))
		}
		var vm model.VM
		err := s.st.Update(ctx, func(tx store.Tx) error {
			v, o, err := s.vm(ctx, tx, in.ID)
			if err != nil {
				return err
			}
			v.Tags = in.Body.Tags
			if o.Data, err = encode(v); err != nil {
				return err
			}
			vm = v
			return tx.UpdateObject(ctx, &o)
		})
		if err != nil {
			return nil, problem(err)
		}
		s.publish("vm", "changed", vm.ID, vm.Owner, vm.State)
		return &struct{ Body model.VM }{vm}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "setNodeTags", Method: http.MethodPut, Path: "/v1/nodes/{id}/tags", Tags: []string{"nodes"},
		Summary: "Set a node's tags, which scripts select their targets by (admin)",
	}, func(ctx context.Context, in *setTags) (*struct{ Body model.Node }, error) {
		if err := requireAdmin(ctx); err != nil {
			return nil, problem(err)
		}
		if err := model.ValidTags("tags", in.Body.Tags); err != nil {
			return nil, problem(field("body.tags", err))
		}
		var n model.Node
		err := s.st.Update(ctx, func(tx store.Tx) error {
			v, o, err := getObject[model.Node](ctx, tx, store.KindNode, in.ID, "path.id")
			if err != nil {
				return err
			}
			v.Tags = in.Body.Tags
			if o.Data, err = encode(v); err != nil {
				return err
			}
			n = v
			return tx.UpdateObject(ctx, &o)
		})
		if err != nil {
			return nil, problem(err)
		}
		s.publish("node", "changed", n.ID, "", n.State)
		return &struct{ Body model.Node }{n}, nil
	})
}

// prepareVMScripts gives a VM being created its script key and checks the
// script to run once it is up, if one is asked for.
func (s *Server) prepareVMScripts(ctx context.Context, vm *model.VM, b VMCreateBody) error {
	if err := model.ValidTags("tags", b.Tags); err != nil {
		return field("body.tags", err)
	}
	vm.Tags = b.Tags
	if s.cfg.Scripts == nil {
		if b.Script != nil {
			return field("body.script", virtplane.Errorf(virtplane.ErrNotImplemented, "scripts are not wired into this daemon"))
		}
		return nil
	}
	key, err := s.cfg.Scripts.VMScriptKey(ctx, vm.ID)
	if err != nil {
		return err
	}
	vm.ScriptKey = key
	if b.Script != nil {
		p := principal(ctx)
		// The run is the owner's: a VM an admin orders for a customer
		// runs the customer's script with the customer's variables.
		if vm.Owner != p.UserID {
			p.UserID, p.Role = vm.Owner, model.RoleUser
		}
		if err := s.cfg.Scripts.CheckOnCreate(ctx, p, *vm, *b.Script); err != nil {
			var fe *scriptrun.FieldError
			if errors.As(err, &fe) {
				return field("body.script."+fe.Field, err)
			}
			return field("body.script", err)
		}
	}
	return nil
}

// submitOnCreate starts, in the create's transaction, the run asked for.
func (s *Server) submitOnCreate(ctx context.Context, tx store.Tx, vm model.VM, oc *scriptrun.OnCreate) (*scriptrun.Submitted, error) {
	if oc == nil || s.cfg.Scripts == nil {
		return nil, nil
	}
	sub, err := s.cfg.Scripts.SubmitOnCreateTx(ctx, tx, vm.Owner, vm, *oc)
	if err != nil {
		return nil, field("body.script", err)
	}
	return &sub, nil
}
