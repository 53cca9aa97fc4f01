package daemon

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/storage"
)

// Where the agent lives on an ssh:// node. All of it is under
// /var/lib/virtplane and /run/virtplane, the node's own directories.
const (
	agentSocket   = "/run/virtplane/agent.sock"
	agentStateDir = "/var/lib/virtplane/agent"
	// agentPIDFile and agentLog sit beside the state directory, which the
	// agent locks (one agent per state directory).
	agentPIDFile = "/var/lib/virtplane/agent.pid"
	agentLog     = "/var/lib/virtplane/agent.log"
	// agentStopWait bounds how long a stopped agent may take to let go of
	// its state directory.
	agentStopWait = 15
)

// agentBinary is the binary the daemon installs as the agent on its nodes:
// its own, unless configured; its digest and version are read once.
type agentBinary struct {
	path    string
	version string // configured, else asked of the binary
	once    sync.Once
	digest  string
	err     error
}

func (b *agentBinary) load() error {
	b.once.Do(func() {
		f, err := os.Open(b.path)
		if err != nil {
			b.err = virtplane.Errorf(virtplane.ErrUnavailable, "agent binary: %v", err)
			return
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			b.err = virtplane.Errorf(virtplane.ErrUnavailable, "agent binary %s: %v", b.path, err)
			return
		}
		b.digest = hex.EncodeToString(h.Sum(nil))
		if b.version == "" {
			// The binary says its own version: the agent it becomes reports
			// the same one in its handshake.
			out, err := exec.Command(b.path, "version").Output()
			if err != nil {
				b.err = virtplane.Errorf(virtplane.ErrUnavailable, "agent binary %s: version: %v", b.path, err)
				return
			}
			b.version = strings.TrimSpace(string(out))
		}
	})
	return b.err
}

// agentInstall is how the agent of one node is installed and started.
type agentInstall struct {
	node          string
	bin           *agentBinary
	path          string // the binary on the node
	hypervisor    string // libvirt or lxd
	libvirtSocket string
	domainType    string // auto, kvm or qemu
	netns         string // run the agent in this network namespace
}

// installBinary puts the agent's binary on the node unless the one there
// has its digest. installed says whether the node had none before (so an
// undo removes it).
func (a agentInstall) installBinary(ctx context.Context, ex storage.Executor) (installed bool, err error) {
	if err := a.bin.load(); err != nil {
		return false, err
	}
	out, err := ex.Run(ctx, storage.Command{Name: "sh", Args: []string{"-c", `[ -e "$1" ] || { echo none; exit 0; }; sha256sum "$1"`, "sh", a.path}})
	if err != nil {
		return false, fmt.Errorf("node %s: look for the agent binary: %w", a.node, err)
	}
	have := strings.Fields(string(out))
	if len(have) > 0 && have[0] == a.bin.digest {
		return false, nil
	}
	f, err := os.Open(a.bin.path)
	if err != nil {
		return false, virtplane.Errorf(virtplane.ErrUnavailable, "agent binary: %v", err)
	}
	defer f.Close()
	// Written beside and renamed: a running agent keeps its old binary.
	_, err = ex.Run(ctx, storage.Command{Name: "sh", Args: []string{"-c",
		`set -e; mkdir -p "$(dirname "$1")"; cat > "$1.new"; chmod 0755 "$1.new"; mv -f "$1.new" "$1"`, "sh", a.path}, Stdin: f})
	if err != nil {
		return false, fmt.Errorf("node %s: install the agent at %s: %w", a.node, a.path, err)
	}
	return len(have) > 0 && have[0] == "none", nil
}

// removeBinary undoes an install.
func (a agentInstall) removeBinary(ctx context.Context, ex storage.Executor) error {
	_, err := ex.Run(ctx, storage.Command{Name: "rm", Args: []string{"-f", a.path}})
	return err
}

// commandLine is the agent's command line on the node.
func (a agentInstall) commandLine() []string {
	var argv []string
	if a.netns != "" {
		argv = append(argv, "ip", "netns", "exec", a.netns)
	}
	argv = append(argv, a.path, "agent", "--socket", agentSocket, "--state-dir", agentStateDir, "--pid-file", agentPIDFile, "--hypervisor", a.hypervisor)
	if a.hypervisor == "libvirt" {
		dt := a.domainType
		if dt == "" {
			dt = "auto"
		}
		argv = append(argv, "--libvirt-socket", a.libvirtSocket, "--domain-type", dt)
	}
	return argv
}

// start starts the agent detached from the SSH session (its own session,
// output to its log); the agent records its pid once it holds the state
// directory. An agent already running keeps that lock: the new one exits
// at once without touching the pid file, and the caller's handshake
// reaches the running one.
func (a agentInstall) start(ctx context.Context, ex storage.Executor) error {
	script := `set -e; mkdir -p "$(dirname "$1")" "$(dirname "$2")"; l=$2; shift 2
setsid -f "$@" >>"$l" 2>&1 </dev/null`
	args := append([]string{"-c", script, "sh", agentPIDFile, agentLog}, a.commandLine()...)
	if _, err := ex.Run(ctx, storage.Command{Name: "sh", Args: args}); err != nil {
		return fmt.Errorf("node %s: start the agent: %w", a.node, err)
	}
	return nil
}

// stop stops the agent the pid file names and waits until its state
// directory is free.
func (a agentInstall) stop(ctx context.Context, ex storage.Executor) error {
	script := fmt.Sprintf(`p=$(cat %[1]s 2>/dev/null) && kill "$p" 2>/dev/null; [ -d %[2]s ] || exit 0; touch %[2]s/.lock; flock -w %[3]d %[2]s/.lock true`,
		agentPIDFile, agentStateDir, agentStopWait)
	if _, err := ex.Run(ctx, storage.Command{Name: "sh", Args: []string{"-c", script}}); err != nil {
		return fmt.Errorf("node %s: stop the agent: %w", a.node, err)
	}
	return nil
}

// logTail is the end of the agent's log, for errors of an agent that
// would not come up.
func (a agentInstall) logTail(ctx context.Context, ex storage.Executor) string {
	out, err := ex.Run(ctx, storage.Command{Name: "tail", Args: []string{"-n", "5", agentLog}})
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// authorizeKey appends the daemon's public key to the login's
// authorized_keys unless it is there; added says whether it was not.
func authorizeKey(ctx context.Context, ex storage.Executor, node, pub string) (added bool, err error) {
	out, err := ex.Run(ctx, storage.Command{Name: "sh", Args: []string{"-c",
		`umask 077; mkdir -p "$HOME/.ssh"; f="$HOME/.ssh/authorized_keys"; if grep -qxF "$1" "$f" 2>/dev/null; then echo present; else printf '%s\n' "$1" >> "$f"; echo added; fi`,
		"sh", pub}})
	if err != nil {
		return false, fmt.Errorf("node %s: install the daemon's SSH key: %w", node, err)
	}
	return strings.TrimSpace(string(out)) == "added", nil
}

// unauthorizeKey undoes authorizeKey.
func unauthorizeKey(ctx context.Context, ex storage.Executor, pub string) error {
	_, err := ex.Run(ctx, storage.Command{Name: "sh", Args: []string{"-c",
		`f="$HOME/.ssh/authorized_keys"; [ -f "$f" ] || exit 0; grep -vxF "$1" "$f" > "$f.new" || true; mv -f "$f.new" "$f"`, "sh", pub}})
	return err
}

// waitFor calls try until it succeeds, fails for a reason other than
// errors.Is(err, retry), or d passes.
func waitFor(ctx context.Context, d time.Duration, retry error, try func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for {
		err := try(ctx)
		if err == nil || !errors.Is(err, retry) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(200 * time.Millisecond):
		}
	}
}
