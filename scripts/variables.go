package scripts

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/virtplane/virtplane"
)

// Scope says where a variable is defined.
type Scope string

const (
	// Global variables are set by the operator and reach every script.
	Global Scope = "global"
	// Local variables belong to one user (or one script) and override
	// globals of the same name.
	Local Scope = "local"
)

// Variable is a named value handed to scripts. Hidden variables carry
// secrets: their value is masked in output and never printed, logged or
// marshalled.
type Variable struct {
	Name   string
	Value  string
	Scope  Scope
	Hidden bool
	// Owner is the user a local variable belongs to (empty for globals).
	Owner string
}

// Validate checks the variable's name, scope and value.
func (v Variable) Validate() error {
	if err := ValidateName("variable", v.Name); err != nil {
		return err
	}
	if v.Scope != Global && v.Scope != Local {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "variable %q scope %q: want global or local", v.Name, v.Scope)
	}
	if len(v.Value) > maxValueLen {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "variable %q value: too long", v.Name)
	}
	if err := checkValue(v.Value); err != nil {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "variable %q value: %v", v.Name, err)
	}
	return nil
}

// Redacted returns the variable as an API answer may show it: a hidden
// variable's value is empty.
func (v Variable) Redacted() Variable {
	if v.Hidden {
		v.Value = ""
	}
	return v
}

// String prints the variable, masking a hidden value.
func (v Variable) String() string {
	if v.Hidden {
		return fmt.Sprintf("%s=%s (%s, hidden)", v.Name, Mask, v.Scope)
	}
	return fmt.Sprintf("%s=%q (%s)", v.Name, v.Value, v.Scope)
}

// GoString keeps %#v from printing a hidden value.
func (v Variable) GoString() string { return "scripts.Variable{" + v.String() + "}" }

// LogValue keeps slog from printing a hidden value.
func (v Variable) LogValue() slog.Value {
	val := v.Value
	if v.Hidden {
		val = Mask
	}
	return slog.GroupValue(slog.String("name", v.Name), slog.String("scope", string(v.Scope)),
		slog.String("value", val), slog.Bool("hidden", v.Hidden))
}

// MarshalJSON writes the variable with a hidden value left out: JSON is what
// API answers are made of, so the safe form is the default one.
func (v Variable) MarshalJSON() ([]byte, error) {
	type wire struct {
		Name   string `json:"name"`
		Value  string `json:"value,omitempty"`
		Scope  Scope  `json:"scope"`
		Hidden bool   `json:"hidden,omitempty"`
		Owner  string `json:"owner,omitempty"`
	}
	r := v.Redacted()
	return json.Marshal(wire(r))
}

// Value is one resolved name and value as a script receives it.
type Value struct {
	Name   string
	Value  string
	Hidden bool
}

// String prints the value, masking it when hidden.
func (v Value) String() string {
	if v.Hidden {
		return v.Name + "=" + Mask
	}
	return fmt.Sprintf("%s=%q", v.Name, v.Value)
}

// GoString keeps %#v from printing a hidden value.
func (v Value) GoString() string { return "scripts.Value{" + v.String() + "}" }

// LogValue keeps slog from printing a hidden value.
func (v Value) LogValue() slog.Value { return slog.StringValue(v.String()) }

// MergeValues layers globals, then locals, then parameter values: a later
// layer overrides an earlier one by name. A name hidden in any layer stays
// hidden, and the values it overrode are returned as secrets too, so that
// masking covers them even though the script never receives them.
func MergeValues(globals, locals []Variable, params []Value) (values []Value, secrets []string, err error) {
	byName := map[string]int{}
	hiddenNames := map[string]bool{}
	put := func(v Value) {
		key := strings.ToUpper(v.Name)
		if v.Hidden {
			hiddenNames[key] = true
			if v.Value != "" {
				secrets = append(secrets, v.Value)
			}
		}
		if i, ok := byName[key]; ok {
			values[i] = v
			return
		}
		byName[key] = len(values)
		values = append(values, v)
	}
	for _, layer := range []struct {
		scope Scope
		vars  []Variable
	}{{Global, globals}, {Local, locals}} {
		for _, v := range layer.vars {
			if err := v.Validate(); err != nil {
				return nil, nil, err
			}
			if v.Scope != layer.scope {
				return nil, nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "variable %q: scope %q given as %s", v.Name, v.Scope, layer.scope)
			}
			put(Value{Name: v.Name, Value: v.Value, Hidden: v.Hidden})
		}
	}
	for _, v := range params {
		if err := ValidateName("parameter", v.Name); err != nil {
			return nil, nil, err
		}
		put(v)
	}
	for i := range values {
		if hiddenNames[strings.ToUpper(values[i].Name)] {
			values[i].Hidden = true
		}
	}
	slices.Sort(secrets)
	return values, slices.Compact(secrets), nil
}
