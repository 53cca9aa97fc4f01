package opener

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/storage"
)

// Spec describes a pool to open. It is also the node agent's wire form.
type Spec struct {
	// Name is the pool's name (storage.ValidateName rules).
	Name string `json:"name"`
	// Driver names the registered driver.
	Driver string `json:"driver"`
	// Path is the driver's location: a directory (file), a volume group
	// (lvm, san-lvm), a RADOS pool (ceph), a target IQN (san-iscsi).
	Path string            `json:"path,omitempty"`
	Tags map[string]string `json:"tags,omitempty"`
	// Options are the driver's further settings; a driver refuses those it
	// does not read.
	Options map[string]string `json:"options,omitempty"`
}

// Equal reports whether two specs describe the same pool.
func (s Spec) Equal(o Spec) bool {
	return s.Name == o.Name && s.Driver == o.Driver && s.Path == o.Path && maps.Equal(s.Tags, o.Tags) && maps.Equal(s.Options, o.Options)
}

// Option is one setting a driver reads.
type Option struct {
	Name string
	// Doc says what the value is, for errors and the API documentation.
	Doc string
	// Required options must be set.
	Required bool
	// Flag options take "true" or "false".
	Flag bool
	// Check validates a value (nil: any value); its error names the value,
	// Validate adds the field.
	Check func(v string) error
}

// Driver is one kind of pool.
type Driver struct {
	// Name is what Spec.Driver says ("lvm").
	Name string
	// Shared drivers keep one backend for every node of a cluster (Ceph, a
	// SAN): each node reaches the same volumes, so a VM on one moves
	// without copying its disks. Local drivers have a backend per node.
	Shared bool
	// Path says what Spec.Path is ("volume group"); empty: the driver
	// takes no path.
	Path string
	// CheckPath validates Spec.Path (nil: any non-empty path).
	CheckPath func(field, path string) error
	Options   []Option
	// Open opens the pool of a spec that Validate accepted; ex runs the
	// driver's commands on the node.
	Open func(ctx context.Context, spec Spec, ex storage.Executor) (storage.Pool, error)
}

// SpecError is an error about one field of a Spec: Field is "name",
// "driver", "path" or "options.NAME".
type SpecError struct {
	Field string
	Err   error
}

func (e *SpecError) Error() string { return e.Err.Error() }
func (e *SpecError) Unwrap() error { return e.Err }

func specError(field string, class error, format string, args ...any) error {
	return &SpecError{Field: field, Err: virtplane.Errorf(class, format, args...)}
}

// Registry is a set of registered drivers.
type Registry struct {
	byName map[string]Driver
}

// New registers drivers; a later driver with an earlier one's name
// replaces it (a program overrides a built-in driver that way).
func New(drivers ...Driver) (*Registry, error) {
	r := &Registry{byName: map[string]Driver{}}
	for _, d := range drivers {
		if err := storage.ValidateName("storage driver name", d.Name); err != nil {
			return nil, err
		}
		if d.Open == nil {
			return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "storage driver %s has no Open", d.Name)
		}
		r.byName[d.Name] = d
	}
	return r, nil
}

// Names lists the registered drivers, sorted.
func (r *Registry) Names() []string { return slices.Sorted(maps.Keys(r.byName)) }

// Driver returns the driver named name; an unknown name is a *SpecError on
// "driver" listing the drivers there are.
func (r *Registry) Driver(name string) (Driver, error) {
	d, ok := r.byName[name]
	if !ok {
		return Driver{}, specError("driver", virtplane.ErrInvalidArgument, "storage driver %q is not known (known: %s)", name, strings.Join(r.Names(), ", "))
	}
	return d, nil
}

// Validate checks spec against its driver without touching the backend.
func (r *Registry) Validate(spec Spec) error {
	if err := storage.ValidateName("storage name", spec.Name); err != nil {
		return &SpecError{Field: "name", Err: err}
	}
	d, err := r.Driver(spec.Driver)
	if err != nil {
		return err
	}
	switch {
	case d.Path == "" && spec.Path != "":
		return specError("path", virtplane.ErrInvalidArgument, "storage %s: the %s driver takes no path", spec.Name, d.Name)
	case d.Path != "" && spec.Path == "":
		return specError("path", virtplane.ErrInvalidArgument, "storage %s: the %s driver needs a path (the %s)", spec.Name, d.Name, d.Path)
	case d.Path != "" && d.CheckPath != nil:
		if err := d.CheckPath(d.Path, spec.Path); err != nil {
			return &SpecError{Field: "path", Err: fmt.Errorf("storage %s: %w", spec.Name, err)}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(spec.Options)) {
		i := slices.IndexFunc(d.Options, func(o Option) bool { return o.Name == k })
		if i < 0 {
			return specError("options."+k, virtplane.ErrInvalidArgument, "storage %s: the %s driver has no option %q (it has %s)", spec.Name, d.Name, k, optionNames(d))
		}
		o, v := d.Options[i], spec.Options[k]
		if o.Flag && v != "true" && v != "false" {
			return specError("options."+k, virtplane.ErrInvalidArgument, "storage %s: option %s %q: want true or false", spec.Name, k, v)
		}
		if o.Check != nil {
			if err := o.Check(v); err != nil {
				return &SpecError{Field: "options." + k, Err: fmt.Errorf("storage %s: option %s: %w", spec.Name, k, err)}
			}
		}
	}
	for _, o := range d.Options {
		if o.Required && spec.Options[o.Name] == "" {
			return specError("options."+o.Name, virtplane.ErrInvalidArgument, "storage %s: the %s driver needs option %s (%s)", spec.Name, d.Name, o.Name, o.Doc)
		}
	}
	return nil
}

func optionNames(d Driver) string {
	if len(d.Options) == 0 {
		return "none"
	}
	names := make([]string, len(d.Options))
	for i, o := range d.Options {
		names[i] = o.Name
	}
	return strings.Join(names, ", ")
}

// Open validates spec and opens its pool with its driver.
func (r *Registry) Open(ctx context.Context, spec Spec, ex storage.Executor) (storage.Pool, error) {
	if err := r.Validate(spec); err != nil {
		return nil, err
	}
	if ex == nil {
		ex = storage.LocalExecutor{}
	}
	return r.byName[spec.Driver].Open(ctx, spec, ex)
}

// Shared reports whether driver keeps one backend for a whole cluster; an
// unknown driver is not shared.
func (r *Registry) Shared(driver string) bool { return r.byName[driver].Shared }
