package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/sshnode"
	netport "github.com/virtplane/virtplane/network/port"
)

// portCommand is the node side of a remote node's network ports: the
// daemon runs `virtplaned port OP --state-dir D [--netns N]` over SSH with
// a JSON request on stdin (see sshnode.ServePorts). Hidden: it is for the
// daemon, not for people.
func portCommand(in io.Reader, out io.Writer) *cobra.Command {
	var stateDir, ns string
	cmd := &cobra.Command{
		Use:    "port setup|teardown|list",
		Short:  "Manage this host's VM network ports for a remote daemon (JSON on stdin and stdout)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		// The answer on stdout is the only output: errors travel in it.
		SilenceErrors: true,
		SilenceUsage:  true,
		RunE: func(cmd *cobra.Command, args []string) error {
			// The daemon's cancel arrives as SIGTERM: the change in progress
			// is undone (its context ends) before the agent exits.
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
			defer stop()
			cmd.SetContext(ctx)
			p, unlock, err := netport.Ports(nil), func() {}, error(nil)
			if slices.Contains(sshnode.PortOps(), args[0]) {
				p, unlock, err = openPorts(stateDir, ns)
			} else {
				err = virtplane.Errorf(virtplane.ErrInvalidArgument, "port: operation %q (one of %s)", args[0], strings.Join(sshnode.PortOps(), ", "))
			}
			if err != nil {
				_ = sshnode.ServePorts(cmd.Context(), failingPorts{err}, args[0], in, out)
				return err
			}
			defer unlock()
			return sshnode.ServePorts(cmd.Context(), p, args[0], in, out)
		},
	}
	cmd.Flags().StringVar(&stateDir, "state-dir", "", "directory of the port records (required)")
	cmd.Flags().StringVar(&ns, "netns", "", "network namespace of the ports (ip netns name; default: this one)")
	return cmd
}

// openPorts opens the kernel ports of the namespace ns, holding the lock
// of stateDir: daemons reaching this host run one agent at a time on it.
func openPorts(stateDir, ns string) (netport.Ports, func(), error) {
	if !filepath.IsAbs(stateDir) {
		return nil, nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "port: --state-dir %q must be an absolute path", stateDir)
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, nil, virtplane.Errorf(virtplane.ErrUnavailable, "port: state directory %s: %v", stateDir, err)
	}
	lock, err := os.OpenFile(filepath.Join(stateDir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, nil, virtplane.Errorf(virtplane.ErrUnavailable, "port: lock: %v", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		_ = lock.Close()
		return nil, nil, virtplane.Errorf(virtplane.ErrUnavailable, "port: lock: %v", err)
	}
	p, closeNS, err := netport.OpenKernelHost(stateDir, ns)
	closeAll := func() {
		if closeNS != nil {
			_ = closeNS()
		}
		_ = lock.Close() // releases the lock
	}
	if err != nil {
		closeAll()
		return nil, nil, fmt.Errorf("port: %w", err)
	}
	return p, closeAll, nil
}

// failingPorts answers every operation with the error that kept the real
// ports from opening, so the daemon reads it in the usual answer.
type failingPorts struct{ err error }

func (f failingPorts) Setup(context.Context, netport.Spec) error    { return f.err }
func (f failingPorts) Teardown(context.Context, string) error       { return f.err }
func (f failingPorts) List(context.Context) ([]netport.Spec, error) { return nil, f.err }
