package ansible

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/scripts"
)

// Config holds what a Runner needs.
type Config struct {
	// User logs in on the nodes unless a target names its own.
	User string
	// PrivateKeyFile is the SSH key ansible uses.
	PrivateKeyFile string
	// KnownHostsFile holds the nodes' host keys; ansible runs with strict
	// host key checking against it.
	KnownHostsFile string
	// Playbook is the ansible-playbook binary (default "ansible-playbook").
	Playbook string
	// PythonInterpreter on the nodes (default /usr/bin/python3).
	PythonInterpreter string
}

// Runner runs Ansible playbooks on one node at a time with ansible-playbook.
type Runner struct {
	cfg Config
}

var _ scripts.Runner = (*Runner)(nil)

// New checks cfg and returns a Runner.
func New(cfg Config) (*Runner, error) {
	if cfg.User == "" || cfg.PrivateKeyFile == "" || cfg.KnownHostsFile == "" {
		return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "ansible runner: user, private key file and known hosts file are required")
	}
	if cfg.Playbook == "" {
		cfg.Playbook = "ansible-playbook"
	}
	if cfg.PythonInterpreter == "" {
		cfg.PythonInterpreter = "/usr/bin/python3"
	}
	if _, err := exec.LookPath(cfg.Playbook); err != nil {
		return nil, virtplane.Errorf(virtplane.ErrUnavailable, "ansible runner: %s not found", cfg.Playbook)
	}
	return &Runner{cfg: cfg}, nil
}

// Inventory returns the inventory (JSON, read by Ansible's yaml plugin) that
// puts t alone in group "all".
func (r *Runner) Inventory(t scripts.Target) ([]byte, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	host, port, err := net.SplitHostPort(t.Address)
	if err != nil {
		host, port = t.Address, "22"
	}
	p, err := strconv.Atoi(port)
	if err != nil || host == "" {
		return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "target %q address %q: want host:port", t.Name, t.Address)
	}
	user := r.cfg.User
	if t.User != "" {
		user = t.User
	}
	vars := map[string]any{
		"ansible_host":                 host,
		"ansible_port":                 p,
		"ansible_user":                 user,
		"ansible_ssh_private_key_file": r.cfg.PrivateKeyFile,
		"ansible_ssh_common_args": "-o StrictHostKeyChecking=yes -o UserKnownHostsFile=" +
			scripts.ShellQuote(r.cfg.KnownHostsFile),
		"ansible_python_interpreter": r.cfg.PythonInterpreter,
	}
	return json.MarshalIndent(map[string]any{"all": map[string]any{"hosts": map[string]any{t.Name: vars}}}, "", "  ")
}

// Run implements scripts.Runner: it writes the playbook, the extra vars and
// the inventory into a private directory and runs ansible-playbook, whose
// exit code it returns (2: a task failed, 4: the node was unreachable). On
// timeout or cancel the whole ansible-playbook process group is killed,
// which drops its SSH connections; a task already running on the node is
// not guaranteed to stop (Ansible has no remote kill).
func (r *Runner) Run(ctx context.Context, job scripts.Job) (int, error) {
	if job.Script.Kind != scripts.Ansible {
		return -1, virtplane.Errorf(virtplane.ErrInvalidArgument, "ansible runner: cannot run %s script %q", job.Script.Kind, job.Script.ScriptName)
	}
	inv, err := r.Inventory(job.Target)
	if err != nil {
		return -1, err
	}
	dir, err := os.MkdirTemp("", "virtplane-ansible-")
	if err != nil {
		return -1, virtplane.Errorf(virtplane.ErrUnavailable, "ansible runner: %v", err)
	}
	defer os.RemoveAll(dir)
	files := map[string][]byte{
		"inventory.json": inv,
		"vars.yml":       []byte(job.Script.ExtraVars),
		"playbook.yml":   []byte(job.Script.Body),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return -1, virtplane.Errorf(virtplane.ErrUnavailable, "ansible runner: write %s: %v", name, err)
		}
	}
	ctx, cancel := job.WithTimeout(ctx)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.cfg.Playbook, "-i", filepath.Join(dir, "inventory.json"),
		"-e", "@"+filepath.Join(dir, "vars.yml"), filepath.Join(dir, "playbook.yml"))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"ANSIBLE_PIPELINING=True", "ANSIBLE_HOST_KEY_CHECKING=True", "ANSIBLE_NOCOLOR=1",
		"ANSIBLE_RETRY_FILES_ENABLED=False", "ANSIBLE_LOCAL_TEMP="+filepath.Join(dir, "tmp"),
		"ANSIBLE_FORCE_COLOR=0", "ANSIBLE_STDOUT_CALLBACK=default")
	cmd.Stdout, cmd.Stderr = job.Writers()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	err = cmd.Run()
	if e := scripts.RunError(ctx, job.Target.Name); e != nil {
		return -1, e
	}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return 0, nil
	case errors.As(err, &exitErr) && exitErr.ExitCode() >= 0:
		return exitErr.ExitCode(), nil
	default:
		return -1, virtplane.Errorf(virtplane.ErrUnavailable, "ansible-playbook on %s: %v", job.Target.Name, err)
	}
}
