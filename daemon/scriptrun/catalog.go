package scriptrun

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/auth"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/store"
	"github.com/virtplane/virtplane/scripts"
	"github.com/virtplane/virtplane/scripts/builtin"
)

// The store kinds of this package.
const (
	KindScript   store.Kind = "script"
	KindVariable store.Kind = "script.variable"
	KindRun      store.Kind = "script.run"
	kindSecret   store.Kind = "secret"
)

// builtinPrefix starts the IDs of the built-in scripts, which live in the
// binary (scripts/builtin), not in the store.
const builtinPrefix = "builtin:"

// builtinOwner owns the built-ins inside the scripts package's checks; the
// API shows them without an owner.
const builtinOwner = "system"

// Param is a value a script asks for before it runs.
type Param struct {
	Name        string   `json:"name" minLength:"1" maxLength:"64" doc:"an identifier; it becomes the environment variable (shell, PowerShell) or extra var (Ansible)"`
	Description string   `json:"description,omitempty" maxLength:"1024"`
	Type        string   `json:"type" enum:"string,int,bool,choice,password"`
	Required    bool     `json:"required,omitempty"`
	Default     string   `json:"default,omitempty" maxLength:"65536"`
	Pattern     string   `json:"pattern,omitempty" maxLength:"4096" doc:"Go regular expression the whole value must match"`
	Choices     []string `json:"choices,omitempty" maxItems:"256"`
	Min         int64    `json:"min,omitempty"`
	Max         int64    `json:"max,omitempty" doc:"bounds of an int when min < max"`
	MaxLength   int      `json:"max_length,omitempty" minimum:"0" maximum:"65536"`
	Hidden      bool     `json:"hidden,omitempty" doc:"the value is masked in output, logs and answers (passwords always are)"`
	Generate    int      `json:"generate,omitempty" minimum:"0" maximum:"256" doc:"password: length of a random value made when none is given"`
}

func (p Param) lib() scripts.Param {
	return scripts.Param{Name: p.Name, Description: p.Description, Type: scripts.ParamType(p.Type), Required: p.Required,
		Default: p.Default, Pattern: p.Pattern, Choices: p.Choices, Min: p.Min, Max: p.Max, MaxLength: p.MaxLength,
		Hidden: p.Hidden, Generate: p.Generate}
}

func paramOf(p scripts.Param) Param {
	return Param{Name: p.Name, Description: p.Description, Type: string(p.Type), Required: p.Required, Default: p.Default,
		Pattern: p.Pattern, Choices: p.Choices, Min: p.Min, Max: p.Max, MaxLength: p.MaxLength, Hidden: p.Hidden, Generate: p.Generate}
}

// TargetFilter says where a script may run, by the targets' tags.
type TargetFilter struct {
	AllOf  []string `json:"all_of,omitempty" maxItems:"32" doc:"a target carries every one of these"`
	AnyOf  []string `json:"any_of,omitempty" maxItems:"32" doc:"a target carries at least one of these (when set)"`
	NoneOf []string `json:"none_of,omitempty" maxItems:"32" doc:"a target carries none of these"`
}

func (f TargetFilter) lib() scripts.TargetFilter {
	return scripts.TargetFilter{AllOf: f.AllOf, AnyOf: f.AnyOf, NoneOf: f.NoneOf}
}

// Script is an entry of the catalog as the API shows it.
type Script struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	Owner       string `json:"owner,omitempty" doc:"the user who owns it; empty for a built-in"`
	Visibility  string `json:"visibility" enum:"private,everyone"`
	Kind        string `json:"kind" enum:"shell,powershell,ansible"`
	Body        string `json:"body,omitempty" doc:"the script; left out when it is hidden and the caller is neither its owner nor an admin"`
	BodyHidden  bool   `json:"body_hidden" doc:"the body is shown only to its owner and admins, and masked in run output"`
	// Redacted tells the caller that Body (and Notice, and hidden
	// parameters' defaults) were left out for them.
	Redacted bool         `json:"redacted,omitempty" doc:"the body, the notice and hidden defaults were left out for this caller"`
	Params   []Param      `json:"params"`
	Targets  TargetFilter `json:"targets"`
	Notice   string       `json:"notice,omitempty" doc:"text/template mailed after a successful run with mail_result ({{.Values.NAME}}, {{.Targets}})"`
	Builtin  bool         `json:"builtin" doc:"part of the daemon; cannot be changed"`
	Created  time.Time    `json:"created,omitzero"`
	Updated  time.Time    `json:"updated,omitzero"`
}

func (s Script) lib() scripts.Script {
	owner := s.Owner
	if s.Builtin {
		owner = builtinOwner
	}
	ps := make([]scripts.Param, len(s.Params))
	for i, p := range s.Params {
		ps[i] = p.lib()
	}
	return scripts.Script{ID: s.ID, Name: s.Name, Description: s.Description, Owner: owner, Visibility: scripts.Visibility(s.Visibility),
		Kind: scripts.Kind(s.Kind), Body: s.Body, BodyHidden: s.BodyHidden, Params: ps, Targets: s.Targets.lib(), Notice: s.Notice}
}

// String names the script without its body, for logs.
func (s Script) String() string { return s.lib().String() }

// canRun reports whether p may run (and see) the script.
func (s Script) canRun(p auth.Principal) bool {
	return p.Admin() || s.Builtin || s.Owner == p.UserID || s.Visibility == string(scripts.Everyone)
}

// canChange reports whether p may change or delete the script.
func (s Script) canChange(p auth.Principal) bool {
	return !s.Builtin && (p.Admin() || s.Owner == p.UserID)
}

// viewFor returns the script as p may see it.
func (s Script) viewFor(p auth.Principal) Script {
	v := s
	v.Params = append([]Param(nil), s.Params...)
	if s.BodyHidden && !p.Admin() && s.Owner != p.UserID {
		v.Body, v.Notice, v.Redacted = "", "", true
		for i := range v.Params {
			if v.Params[i].lib().IsHidden() {
				v.Params[i].Default = ""
			}
		}
	}
	return v
}

// ScriptBody is what a client sets on a script.
type ScriptBody struct {
	Name        string       `json:"name" minLength:"1" maxLength:"63" doc:"lower-case letters, digits and inner dashes; unique among the owner's scripts"`
	Description string       `json:"description,omitempty" maxLength:"4096"`
	Visibility  string       `json:"visibility,omitempty" enum:"private,everyone" default:"private"`
	Kind        string       `json:"kind" enum:"shell,powershell,ansible"`
	Body        string       `json:"body" minLength:"1" maxLength:"262144" doc:"the script (at most 256 KiB); values never enter it: they arrive as environment variables or extra vars"`
	BodyHidden  bool         `json:"body_hidden,omitempty"`
	Params      []Param      `json:"params,omitempty" maxItems:"64"`
	Targets     TargetFilter `json:"targets,omitzero"`
	Notice      string       `json:"notice,omitempty" maxLength:"65536"`
}

// FieldError is a request field at fault: Field is its location in the
// body ("params[2].pattern"), Err wraps the error class.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(f string, err error) error {
	if err == nil {
		return nil
	}
	var fe *FieldError
	if errors.As(err, &fe) {
		return err
	}
	return &FieldError{Field: f, Err: err}
}

func invalid(f, format string, args ...any) error {
	return fieldErr(f, virtplane.Errorf(virtplane.ErrInvalidArgument, format, args...))
}

// build checks b and makes the script it describes (errors name the field,
// never quote the body).
func (b ScriptBody) build(s *Script) error {
	if err := model.ValidName("name", b.Name); err != nil {
		return fieldErr("name", err)
	}
	if b.Visibility == "" {
		b.Visibility = string(scripts.Private)
	}
	if b.Visibility != string(scripts.Private) && b.Visibility != string(scripts.Everyone) {
		return invalid("visibility", "visibility %q: want private or everyone", b.Visibility)
	}
	if !scripts.Kind(b.Kind).Valid() {
		return invalid("kind", "kind %q: want shell, powershell or ansible", b.Kind)
	}
	if strings.TrimSpace(b.Body) == "" {
		return invalid("body", "body: must not be empty")
	}
	if strings.IndexByte(b.Body, 0) >= 0 {
		return invalid("body", "body: contains a NUL byte")
	}
	seen := map[string]int{}
	for i, p := range b.Params {
		if err := p.lib().Validate(); err != nil {
			return fieldErr(fmt.Sprintf("params[%d]", i), err)
		}
		if j, ok := seen[strings.ToUpper(p.Name)]; ok {
			return invalid(fmt.Sprintf("params[%d].name", i), "parameter %q: the same name as params[%d]", p.Name, j)
		}
		seen[strings.ToUpper(p.Name)] = i
	}
	if err := b.Targets.lib().Validate(); err != nil {
		return fieldErr("targets", err)
	}
	if b.Notice != "" {
		if err := checkNotice(b.Notice); err != nil {
			return fieldErr("notice", err)
		}
	}
	s.Name, s.Description, s.Visibility, s.Kind, s.Body, s.BodyHidden = b.Name, b.Description, b.Visibility, b.Kind, b.Body, b.BodyHidden
	s.Params, s.Targets, s.Notice = b.Params, b.Targets, b.Notice
	if s.Params == nil {
		s.Params = []Param{}
	}
	return fieldErr("body", s.lib().Validate())
}

// Builtins returns the built-in scripts.
func Builtins() ([]Script, error) {
	all, err := builtin.Scripts(builtinOwner)
	if err != nil {
		return nil, err
	}
	out := make([]Script, 0, len(all))
	for _, b := range all {
		out = append(out, scriptOf(b, true))
	}
	return out, nil
}

func scriptOf(b scripts.Script, isBuiltin bool) Script {
	ps := make([]Param, len(b.Params))
	for i, p := range b.Params {
		ps[i] = paramOf(p)
	}
	s := Script{ID: b.ID, Name: b.Name, Description: b.Description, Owner: b.Owner, Visibility: string(b.Visibility),
		Kind: string(b.Kind), Body: b.Body, BodyHidden: b.BodyHidden, Params: ps,
		Targets: TargetFilter{AllOf: b.Targets.AllOf, AnyOf: b.Targets.AnyOf, NoneOf: b.Targets.NoneOf}, Notice: b.Notice, Builtin: isBuiltin}
	if isBuiltin {
		s.Owner = ""
	}
	return s
}

// script reads a script by ID, built-in or stored, without access checks.
func (s *Service) script(ctx context.Context, r store.Reader, id string) (Script, store.Object, error) {
	if name, ok := strings.CutPrefix(id, builtinPrefix); ok {
		b, err := builtin.Script(name, builtinOwner)
		if err != nil {
			return Script{}, store.Object{}, err
		}
		return scriptOf(b, true), store.Object{}, nil
	}
	o, err := r.GetObject(ctx, KindScript, id)
	if err != nil {
		return Script{}, o, err
	}
	v, err := decode[Script](o)
	return v, o, err
}

// Script returns a script p may see; one p may not see is not found.
func (s *Service) Script(ctx context.Context, p auth.Principal, id string) (Script, error) {
	sc, _, err := s.script(ctx, s.st, id)
	if err != nil {
		return Script{}, err
	}
	if !sc.canRun(p) {
		return Script{}, virtplane.Errorf(virtplane.ErrNotFound, "script %q", id)
	}
	return sc.viewFor(p), nil
}

// Scripts lists the scripts p may see: the built-ins (on the first page),
// p's own and those visible to everyone (admins: all), by ID.
func (s *Service) Scripts(ctx context.Context, p auth.Principal, after string, limit int) ([]Script, string, error) {
	if limit <= 0 {
		limit = 100
	}
	var out []Script
	if after == "" {
		b, err := Builtins()
		if err != nil {
			return nil, "", err
		}
		for _, sc := range b {
			out = append(out, sc.viewFor(p))
		}
	}
	// Scripts of others that p may not see are skipped; a page is read
	// until it is full or the store is done.
	cursor := after
	for len(out) < limit {
		objs, err := s.st.ListObjects(ctx, KindScript, store.ListOptions{After: cursor, Limit: limit})
		if err != nil {
			return nil, "", err
		}
		for _, o := range objs {
			sc, err := decode[Script](o)
			if err != nil {
				return nil, "", err
			}
			cursor = o.ID
			if sc.canRun(p) {
				out = append(out, sc.viewFor(p))
				if len(out) == limit {
					return out, cursor, nil
				}
			}
		}
		if len(objs) < limit {
			return out, "", nil
		}
	}
	return out, cursor, nil
}

// CreateScript adds a script owned by p.
func (s *Service) CreateScript(ctx context.Context, p auth.Principal, b ScriptBody) (Script, error) {
	now := time.Now().UTC()
	sc := Script{ID: store.NewID(), Owner: p.UserID, Created: now, Updated: now}
	if err := b.build(&sc); err != nil {
		return Script{}, err
	}
	data, err := json.Marshal(sc)
	if err != nil {
		return Script{}, err
	}
	err = s.st.Update(ctx, func(tx store.Tx) error {
		return tx.CreateObject(ctx, &store.Object{Kind: KindScript, ID: sc.ID, Name: sc.Name, Owner: p.UserID, Parent: p.UserID, Data: data})
	})
	if errors.Is(err, virtplane.ErrAlreadyExists) {
		return Script{}, fieldErr("name", virtplane.Errorf(virtplane.ErrAlreadyExists, "script %q exists", sc.Name))
	}
	return sc, err
}

// UpdateScript replaces a script's settings (its owner or an admin).
func (s *Service) UpdateScript(ctx context.Context, p auth.Principal, id string, b ScriptBody) (Script, error) {
	var sc Script
	err := s.st.Update(ctx, func(tx store.Tx) error {
		cur, o, err := s.changeable(ctx, tx, p, id)
		if err != nil {
			return err
		}
		sc = cur
		if err := b.build(&sc); err != nil {
			return err
		}
		sc.Updated = time.Now().UTC()
		if o.Data, err = json.Marshal(sc); err != nil {
			return err
		}
		o.Name = sc.Name
		if err := tx.UpdateObject(ctx, &o); errors.Is(err, virtplane.ErrAlreadyExists) {
			return fieldErr("name", virtplane.Errorf(virtplane.ErrAlreadyExists, "script %q exists", sc.Name))
		} else if err != nil {
			return err
		}
		return nil
	})
	return sc, err
}

// DeleteScript removes a script (its owner or an admin). Runs of it keep
// their records.
func (s *Service) DeleteScript(ctx context.Context, p auth.Principal, id string) error {
	return s.st.Update(ctx, func(tx store.Tx) error {
		_, o, err := s.changeable(ctx, tx, p, id)
		if err != nil {
			return err
		}
		return tx.DeleteObject(ctx, KindScript, id, o.Version)
	})
}

func (s *Service) changeable(ctx context.Context, tx store.Tx, p auth.Principal, id string) (Script, store.Object, error) {
	sc, o, err := s.script(ctx, tx, id)
	if err != nil {
		return sc, o, err
	}
	switch {
	case !sc.canRun(p):
		return sc, o, virtplane.Errorf(virtplane.ErrNotFound, "script %q", id)
	case sc.Builtin:
		return sc, o, virtplane.Errorf(virtplane.ErrPermissionDenied, "script %s is built in: it cannot be changed or deleted", id)
	case !sc.canChange(p):
		return sc, o, virtplane.Errorf(virtplane.ErrPermissionDenied, "script %s belongs to another user", id)
	}
	return sc, o, nil
}

func decode[T any](o store.Object) (T, error) {
	var v T
	if err := json.Unmarshal(o.Data, &v); err != nil {
		return v, virtplane.Errorf(virtplane.ErrUnavailable, "stored %s %s is unreadable: %v", o.Kind, o.ID, err)
	}
	return v, nil
}
