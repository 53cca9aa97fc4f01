package model

import (
	"regexp"
	"slices"

	"github.com/virtplane/virtplane"
)

// AuthorizedKeys are the public keys cloud-init authorizes in the guest:
// the user's, then the daemon's script key.
func (vm VM) AuthorizedKeys() []string {
	if vm.ScriptKey == "" {
		return vm.SSHKeys
	}
	return append(slices.Clone(vm.SSHKeys), vm.ScriptKey)
}

// tagPattern is what a tag looks like; scripts' target filters use the
// same form (scripts.TargetFilter).
var tagPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:=/-]{0,127}$`)

// MaxTags bounds the tags of one VM or node.
const MaxTags = 32

// ValidTags checks a list of tags (well formed, no duplicates, at most
// MaxTags) and names the field at fault.
func ValidTags(field string, tags []string) error {
	if len(tags) > MaxTags {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "%s: at most %d tags", field, MaxTags)
	}
	for i, t := range tags {
		if !tagPattern.MatchString(t) {
			return virtplane.Errorf(virtplane.ErrInvalidArgument, "%s[%d] %q: a tag is a letter or digit then up to 127 of letters, digits and _.:=/-", field, i, t)
		}
		if slices.Index(tags, t) != i {
			return virtplane.Errorf(virtplane.ErrInvalidArgument, "%s[%d] %q: listed twice", field, i, t)
		}
	}
	return nil
}
