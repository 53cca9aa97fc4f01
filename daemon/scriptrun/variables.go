package scriptrun

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"text/template"
	"time"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/auth"
	"github.com/virtplane/virtplane/daemon/store"
	"github.com/virtplane/virtplane/scripts"
)

func checkNotice(n string) error {
	if _, err := template.New("notice").Option("missingkey=error").Parse(n); err != nil {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "notice: not a text/template: %v", err)
	}
	return nil
}

// Variable is a named value handed to every script (global) or to every
// script of one user (local). A hidden variable's value is write-only: no
// answer shows it, to anyone, and run output masks it.
type Variable struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Value   string    `json:"value,omitempty" doc:"left out when hidden"`
	Scope   string    `json:"scope" enum:"global,local"`
	Hidden  bool      `json:"hidden"`
	Owner   string    `json:"owner,omitempty" doc:"the user of a local variable"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
}

// variableRecord is how a variable is stored: with its value.
type variableRecord struct {
	Variable
	Secret string `json:"secret_value,omitempty"`
}

func (r variableRecord) value() string {
	if r.Hidden {
		return r.Secret
	}
	return r.Value
}

func (r variableRecord) lib() scripts.Variable {
	return scripts.Variable{Name: r.Name, Value: r.value(), Scope: scripts.Scope(r.Scope), Hidden: r.Hidden, Owner: r.Owner}
}

// view is the variable as answers show it.
func (r variableRecord) view() Variable {
	v := r.Variable
	if v.Hidden {
		v.Value = ""
	}
	return v
}

// VariableBody sets a variable.
type VariableBody struct {
	Name   string `json:"name" minLength:"1" maxLength:"64" doc:"an identifier, not one that changes how interpreters behave (PATH, LD_*, ...)"`
	Value  string `json:"value" maxLength:"65536"`
	Scope  string `json:"scope,omitempty" enum:"global,local" default:"local" doc:"global (admins): every script; local: the caller's scripts"`
	Hidden bool   `json:"hidden,omitempty" doc:"a secret: never shown again, masked in output"`
}

// parent is the store parent of variables of a scope: "global" or the owner.
func varParent(scope, owner string) string {
	if scope == string(scripts.Global) {
		return "global"
	}
	return owner
}

func (b VariableBody) check(p auth.Principal) error {
	if b.Scope == "" {
		b.Scope = string(scripts.Local)
	}
	v := scripts.Variable{Name: b.Name, Value: b.Value, Scope: scripts.Scope(b.Scope), Hidden: b.Hidden}
	if err := v.Validate(); err != nil {
		field := "value"
		if scripts.ValidateName("variable", b.Name) != nil {
			field = "name"
		} else if v.Scope != scripts.Global && v.Scope != scripts.Local {
			field = "scope"
		}
		return fieldErr(field, err)
	}
	if b.Scope == string(scripts.Global) && !p.Admin() {
		return fieldErr("scope", virtplane.Errorf(virtplane.ErrPermissionDenied, "scope global: admins only"))
	}
	return nil
}

// CreateVariable adds a variable: global (admins) or local to p.
func (s *Service) CreateVariable(ctx context.Context, p auth.Principal, b VariableBody) (Variable, error) {
	if b.Scope == "" {
		b.Scope = string(scripts.Local)
	}
	if err := b.check(p); err != nil {
		return Variable{}, err
	}
	now := time.Now().UTC()
	r := variableRecord{Variable: Variable{ID: store.NewID(), Name: b.Name, Scope: b.Scope, Hidden: b.Hidden, Created: now, Updated: now}}
	if b.Scope == string(scripts.Local) {
		r.Owner = p.UserID
	}
	r.set(b.Value)
	data, err := json.Marshal(r)
	if err != nil {
		return Variable{}, err
	}
	err = s.st.Update(ctx, func(tx store.Tx) error {
		// Names are case-insensitive: a script's environment does not tell
		// DB_HOST from db_host apart everywhere (Windows).
		return tx.CreateObject(ctx, &store.Object{Kind: KindVariable, ID: r.ID, Name: strings.ToUpper(r.Name), Owner: r.Owner,
			Parent: varParent(r.Scope, r.Owner), Data: data})
	})
	if errors.Is(err, virtplane.ErrAlreadyExists) {
		return Variable{}, fieldErr("name", virtplane.Errorf(virtplane.ErrAlreadyExists, "%s variable %q exists", r.Scope, r.Name))
	}
	return r.view(), err
}

func (r *variableRecord) set(value string) {
	if r.Hidden {
		r.Value, r.Secret = "", value
	} else {
		r.Value, r.Secret = value, ""
	}
}

// variable reads a variable p may see: a global or p's own (admins: any).
func (s *Service) variable(ctx context.Context, r store.Reader, p auth.Principal, id string) (variableRecord, store.Object, error) {
	o, err := r.GetObject(ctx, KindVariable, id)
	if err != nil {
		return variableRecord{}, o, err
	}
	v, err := decode[variableRecord](o)
	if err != nil {
		return v, o, err
	}
	if v.Scope == string(scripts.Local) && v.Owner != p.UserID && !p.Admin() {
		return variableRecord{}, store.Object{}, virtplane.Errorf(virtplane.ErrNotFound, "variable %q", id)
	}
	return v, o, nil
}

// Variable returns a variable p may see.
func (s *Service) Variable(ctx context.Context, p auth.Principal, id string) (Variable, error) {
	v, _, err := s.variable(ctx, s.st, p, id)
	return v.view(), err
}

// Variables lists the globals and p's locals (admins: every local too).
func (s *Service) Variables(ctx context.Context, p auth.Principal) ([]Variable, error) {
	out := []Variable{}
	all, err := listAll[variableRecord](ctx, s.st, KindVariable, store.ListOptions{})
	if err != nil {
		return nil, err
	}
	for _, v := range all {
		if v.Scope == string(scripts.Global) || v.Owner == p.UserID || p.Admin() {
			out = append(out, v.view())
		}
	}
	return out, nil
}

// UpdateVariable sets a variable's value and hiddenness (a hidden variable
// stays hidden: its old value must not become readable by unhiding it).
func (s *Service) UpdateVariable(ctx context.Context, p auth.Principal, id string, value string, hidden bool) (Variable, error) {
	var out Variable
	err := s.st.Update(ctx, func(tx store.Tx) error {
		v, o, err := s.variable(ctx, tx, p, id)
		if err != nil {
			return err
		}
		if err := s.canChangeVariable(p, v); err != nil {
			return err
		}
		if v.Hidden && !hidden {
			return fieldErr("hidden", virtplane.Errorf(virtplane.ErrInvalidArgument, "variable %s is hidden: it stays hidden (delete it and make a new one)", v.Name))
		}
		if err := (VariableBody{Name: v.Name, Value: value, Scope: v.Scope, Hidden: hidden}).check(p); err != nil {
			return err
		}
		v.Hidden = hidden
		v.set(value)
		v.Updated = time.Now().UTC()
		if o.Data, err = json.Marshal(v); err != nil {
			return err
		}
		out = v.view()
		return tx.UpdateObject(ctx, &o)
	})
	return out, err
}

// DeleteVariable removes a variable.
func (s *Service) DeleteVariable(ctx context.Context, p auth.Principal, id string) error {
	return s.st.Update(ctx, func(tx store.Tx) error {
		v, o, err := s.variable(ctx, tx, p, id)
		if err != nil {
			return err
		}
		if err := s.canChangeVariable(p, v); err != nil {
			return err
		}
		return tx.DeleteObject(ctx, KindVariable, id, o.Version)
	})
}

func (s *Service) canChangeVariable(p auth.Principal, v variableRecord) error {
	if v.Scope == string(scripts.Global) && !p.Admin() {
		return virtplane.Errorf(virtplane.ErrPermissionDenied, "global variable %s: admins only", v.Name)
	}
	return nil
}

// valuesFor returns the globals and the locals of user, for a run.
func (s *Service) valuesFor(ctx context.Context, user string) (globals, locals []scripts.Variable, err error) {
	g, err := listAll[variableRecord](ctx, s.st, KindVariable, store.ListOptions{Parent: "global"})
	if err != nil {
		return nil, nil, err
	}
	l, err := listAll[variableRecord](ctx, s.st, KindVariable, store.ListOptions{Parent: user})
	if err != nil {
		return nil, nil, err
	}
	for _, v := range g {
		globals = append(globals, v.lib())
	}
	for _, v := range l {
		if v.Scope == string(scripts.Local) {
			locals = append(locals, v.lib())
		}
	}
	return globals, locals, nil
}

func listAll[T any](ctx context.Context, r store.Reader, kind store.Kind, opts store.ListOptions) ([]T, error) {
	opts.Limit = 1000
	var out []T
	for {
		objs, err := r.ListObjects(ctx, kind, opts)
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			v, err := decode[T](o)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		if len(objs) < opts.Limit {
			return out, nil
		}
		opts.After = objs[len(objs)-1].ID
	}
}
