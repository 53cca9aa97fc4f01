package scripts

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/virtplane/virtplane"
)

// Kind is the language of a script and decides how it is rendered and run.
type Kind string

const (
	// Shell is a POSIX shell script for Linux targets, run by bash.
	Shell Kind = "shell"
	// PowerShell is a PowerShell script for Windows targets.
	PowerShell Kind = "powershell"
	// Ansible is an Ansible playbook for nodes, run by ansible-playbook.
	Ansible Kind = "ansible"
)

// Valid reports whether k is one of the known kinds.
func (k Kind) Valid() bool { return k == Shell || k == PowerShell || k == Ansible }

// Visibility says who besides the owner may see and run a script.
type Visibility string

const (
	// Private scripts are seen and run by their owner only.
	Private Visibility = "private"
	// Everyone may see a public script's description and run it; its body
	// stays hidden if BodyHidden is set.
	Everyone Visibility = "everyone"
)

// Script is one entry of the catalog.
type Script struct {
	ID          string
	Name        string
	Description string
	Owner       string
	Visibility  Visibility
	Kind        Kind
	// Body is the script text. It is never spliced with values: parameters
	// and variables reach it as environment variables (shell, PowerShell) or
	// as unsafe-tagged extra vars (Ansible).
	Body string
	// BodyHidden hides Body from everyone but Owner: it may hold licence keys
	// or passwords. Lines of a hidden body are also masked in run output.
	BodyHidden bool
	Params     []Param
	// Targets restricts where the script may run.
	Targets TargetFilter
	// Notice is an optional text/template mailed to the user after a
	// successful run (for example the connection details of a database),
	// given .Values (by name), .Targets (their names) and .Hosts (the
	// targets' hosts, from their addresses). It
	// sees every value, hidden ones included, because the mail goes only to
	// the user who ran the script; it never enters a Result.
	Notice string
}

// identifier is what parameter and variable names must look like: they
// become environment variable names and Ansible variable names.
var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

// reservedNames are environment variables that change how a shell, the
// dynamic linker or an interpreter behaves. A parameter with such a name
// could alter which commands run without touching the body, so names are
// compared case-insensitively (Windows environment names are).
func reservedName(name string) bool {
	u := strings.ToUpper(name)
	switch u {
	case "PATH", "IFS", "HOME", "ENV", "BASH_ENV", "SHELLOPTS", "BASHOPTS", "CDPATH",
		"GLOBIGNORE", "PS1", "PS2", "PS3", "PS4", "PROMPT_COMMAND", "POSIXLY_CORRECT",
		"SHELL", "PWD", "OLDPWD", "UID", "EUID", "PPID", "RANDOM", "SECONDS", "LINENO",
		"HOSTNAME", "OPTIND", "OPTARG", "OPTERR", "FUNCNAME", "GROUPS", "TMOUT", "TERM",
		"USER", "LOGNAME", "TMPDIR", "TMP", "TEMP", "LANG", "LANGUAGE", "INPUTRC",
		"MAIL", "MAILPATH", "MAILCHECK", "HISTFILE", "HISTCONTROL", "EXECIGNORE",
		"FIGNORE", "PATHEXT", "COMSPEC", "SYSTEMROOT", "WINDIR", "PSMODULEPATH",
		"IFS_", "NODE_OPTIONS", "PERL5OPT", "PERL5LIB", "PYTHONPATH", "PYTHONSTARTUP",
		"PYTHONHOME", "RUBYOPT", "RUBYLIB", "GCONV_PATH", "HOSTALIASES", "RESOLV_HOST_CONF",
		"LOCALDOMAIN", "NLSPATH", "TZDIR", "MALLOC_CHECK_", "SUDO_ASKPASS",
		// Ansible magic variables and Jinja names an extra var would shadow.
		"HOSTVARS", "GROUP_NAMES", "INVENTORY_HOSTNAME", "INVENTORY_HOSTNAME_SHORT",
		"INVENTORY_DIR", "INVENTORY_FILE", "PLAY_HOSTS", "OMIT", "VARS", "ENVIRONMENT",
		"ROLE_NAME", "ROLE_PATH", "PLAYBOOK_DIR", "ITEM", "LOOKUP", "QUERY", "Q", "TRUE",
		"FALSE", "NONE", "RANGE", "DICT", "LIPSUM", "CYCLER", "JOINER", "NAMESPACE":
		return true
	}
	for _, p := range []string{"LD_", "BASH", "LC_", "PYTHON", "PERL", "RUBY", "DYLD_",
		"ANSIBLE_", "SSH_", "GIT_", "GLIBC_", "VIRTPLANE_", "_"} {
		if strings.HasPrefix(u, p) {
			return true
		}
	}
	return false
}

// ValidateName checks that name may be used as a parameter or variable name:
// an identifier of at most 64 characters that is not reserved.
func ValidateName(field, name string) error {
	if !identifier.MatchString(name) {
		return virtplane.Errorf(virtplane.ErrInvalidArgument,
			"%s %q: must be an identifier ([A-Za-z_][A-Za-z0-9_]*, at most 64 characters)", field, name)
	}
	if reservedName(name) {
		return virtplane.Errorf(virtplane.ErrInvalidArgument,
			"%s %q: reserved name (it changes how the interpreter behaves)", field, name)
	}
	return nil
}

// Validate checks the script's fields; the error names the field at fault.
// It never quotes the body.
func (s Script) Validate() error {
	if strings.TrimSpace(s.Name) == "" {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "script name: must not be empty")
	}
	if s.Owner == "" {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "script %q owner: must not be empty", s.Name)
	}
	if s.Visibility != Private && s.Visibility != Everyone {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "script %q visibility %q: want %q or %q", s.Name, s.Visibility, Private, Everyone)
	}
	if !s.Kind.Valid() {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "script %q kind %q: want shell, powershell or ansible", s.Name, s.Kind)
	}
	if strings.TrimSpace(s.Body) == "" {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "script %q body: must not be empty", s.Name)
	}
	if strings.IndexByte(s.Body, 0) >= 0 {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "script %q body: contains a NUL byte", s.Name)
	}
	seen := map[string]bool{}
	for i, p := range s.Params {
		if err := p.Validate(); err != nil {
			return fmt.Errorf("script %q params[%d]: %w", s.Name, i, err)
		}
		key := strings.ToUpper(p.Name)
		if seen[key] {
			return virtplane.Errorf(virtplane.ErrInvalidArgument, "script %q params[%d] %q: duplicate name", s.Name, i, p.Name)
		}
		seen[key] = true
	}
	if err := s.Targets.Validate(); err != nil {
		return fmt.Errorf("script %q targets: %w", s.Name, err)
	}
	return nil
}

// CanRun reports whether user may run the script.
func (s Script) CanRun(user string) bool {
	return user != "" && (user == s.Owner || s.Visibility == Everyone)
}

// ViewFor returns the script as user may see it: its body is removed when
// it is hidden and user is not the owner. ok is false when user may not see
// the script at all.
func (s Script) ViewFor(user string) (view Script, ok bool) {
	if !s.CanRun(user) {
		return Script{}, false
	}
	view = s
	view.Params = slices.Clone(s.Params)
	view.Targets = s.Targets.clone()
	if s.BodyHidden && user != s.Owner {
		view.Body = ""
		view.Notice = ""
	}
	return view, true
}

// String describes the script without its body, so that a script printed by
// mistake in a log line leaks nothing.
func (s Script) String() string {
	return fmt.Sprintf("script %q (%s, owner %s, %s)", s.Name, s.Kind, s.Owner, s.Visibility)
}

// TargetFilter selects targets by tags. An empty filter admits every target.
type TargetFilter struct {
	// AllOf: a target must carry every one of these tags.
	AllOf []string
	// AnyOf: when not empty, a target must carry at least one of these.
	AnyOf []string
	// NoneOf: a target must carry none of these.
	NoneOf []string
}

var tagPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:=/-]{0,127}$`)

// Validate checks that every tag is well formed.
func (f TargetFilter) Validate() error {
	for _, set := range [][]string{f.AllOf, f.AnyOf, f.NoneOf} {
		for _, t := range set {
			if !tagPattern.MatchString(t) {
				return virtplane.Errorf(virtplane.ErrInvalidArgument, "tag %q: malformed", t)
			}
		}
	}
	return nil
}

// Matches reports whether a target with these tags passes the filter.
func (f TargetFilter) Matches(tags []string) bool {
	for _, t := range f.AllOf {
		if !slices.Contains(tags, t) {
			return false
		}
	}
	for _, t := range f.NoneOf {
		if slices.Contains(tags, t) {
			return false
		}
	}
	if len(f.AnyOf) == 0 {
		return true
	}
	for _, t := range f.AnyOf {
		if slices.Contains(tags, t) {
			return true
		}
	}
	return false
}

func (f TargetFilter) clone() TargetFilter {
	return TargetFilter{AllOf: slices.Clone(f.AllOf), AnyOf: slices.Clone(f.AnyOf), NoneOf: slices.Clone(f.NoneOf)}
}

// Target is a machine a script runs on: a VM or a node.
type Target struct {
	// Name identifies the target in results; it is also its inventory name
	// for Ansible, so it must be a hostname-like word.
	Name string
	// Address is host:port of its SSH server.
	Address string
	// User overrides the runner's login user when not empty.
	User string
	Tags []string
}

var targetName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)

// Validate checks the target's name and address.
func (t Target) Validate() error {
	if !targetName.MatchString(t.Name) {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "target name %q: must be a hostname-like word", t.Name)
	}
	if strings.ContainsAny(t.Address, " \t\r\n'\"\\{}%$`;") {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "target %q address %q: malformed", t.Name, t.Address)
	}
	if t.User != "" && !targetName.MatchString(t.User) {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "target %q user %q: malformed", t.Name, t.User)
	}
	return nil
}
