package storage

import (
	"path/filepath"
	"strings"

	"github.com/virtplane/virtplane"
)

// MaxNameLen bounds volume and snapshot names. LVM allows 127 characters,
// RBD more; the smaller bound keeps a name valid on every backend.
const MaxNameLen = 100

// ValidateName checks a volume or snapshot name. A name becomes a file name,
// an LV name, an RBD image name and a command argument, so it is held to the
// intersection of what those allow: ASCII letters, digits, '.', '_', '+' and
// '-', not starting with '-' or '.' (no option injection, no "..", no hidden
// files), no '/' (no path traversal). field names the argument in the error.
func ValidateName(field, name string) error {
	if name == "" {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "%s is empty", field)
	}
	if len(name) > MaxNameLen {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "%s %q is longer than %d characters", field, name, MaxNameLen)
	}
	if name[0] == '-' || name[0] == '.' {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "%s %q must not start with %q", field, name, name[:1])
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '+' || c == '-'
		if !ok {
			return virtplane.Errorf(virtplane.ErrInvalidArgument, "%s %q contains %q; allowed are letters, digits and . _ + -", field, name, string(c))
		}
	}
	return nil
}

// ValidatePath checks a path that will be passed to a command: absolute,
// already clean (no "..", no "//"), and free of characters a tool could read
// as an option or a protocol prefix (qemu-img treats "x:" as a protocol).
func ValidatePath(field, p string) error {
	if p == "" {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "%s is empty", field)
	}
	if !filepath.IsAbs(p) {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "%s %q is not an absolute path", field, p)
	}
	if filepath.Clean(p) != p {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "%s %q is not a clean path", field, p)
	}
	if strings.ContainsAny(p, ":,\x00\n") {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "%s %q contains ':', ',', NUL or newline", field, p)
	}
	return nil
}

// ValidateSpec checks a VolumeSpec against the formats a pool accepts and
// fills in the default format.
func ValidateSpec(spec VolumeSpec, formats []Format) (VolumeSpec, error) {
	if err := ValidateName("volume name", spec.Name); err != nil {
		return spec, err
	}
	if spec.Size <= 0 {
		return spec, virtplane.Errorf(virtplane.ErrInvalidArgument, "volume %q: size %d must be positive", spec.Name, spec.Size)
	}
	if spec.Format == "" && len(formats) > 0 {
		spec.Format = formats[0]
	}
	for _, f := range formats {
		if f == spec.Format {
			return spec, nil
		}
	}
	return spec, virtplane.Errorf(virtplane.ErrInvalidArgument, "volume %q: format %q is not supported here (supported: %v)", spec.Name, spec.Format, formats)
}
