package fabric_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"

	"github.com/virtplane/virtplane/internal/testenv"
	"github.com/virtplane/virtplane/network/fabric"
	"github.com/virtplane/virtplane/network/vxlan"
)

// The speaker must dial from the host's namespace, and a Go program's
// goroutines move between threads: the test binary re-executes itself under
// `ip netns exec` as a helper that runs one speaker, driven over stdin.
const helperEnv = "VPT_FABRIC_HELPER"

func TestMain(m *testing.M) {
	if cfg := os.Getenv(helperEnv); cfg != "" {
		os.Exit(runHelper(cfg))
	}
	os.Exit(m.Run())
}

type request struct {
	Op     string
	Prefix netip.Prefix     `json:",omitzero"`
	Addr   netip.Addr       `json:",omitzero"`
	EVPN   fabric.EVPNRoute `json:",omitzero"`
	Device string           `json:",omitempty"`
	Local  netip.Addr       `json:",omitzero"`
}

type response struct {
	Err          string
	Established  int
	Routes       []fabric.Route
	EVPN         []fabric.EVPNRoute
	Reachability fabric.Reachability
	Added        int
	Removed      int
}

func runHelper(cfgJSON string) int {
	var cfg fabric.Config
	if err := json.Unmarshal([]byte(cfgJSON), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx := context.Background()
	sp, err := fabric.Start(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer func() { _ = sp.Stop(ctx) }()
	in := bufio.NewScanner(os.Stdin)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		var req request
		var resp response
		if err := json.Unmarshal(in.Bytes(), &req); err != nil {
			resp.Err = err.Error()
			_ = out.Encode(resp)
			continue
		}
		switch req.Op {
		case "established":
			resp.Established, err = sp.Established(ctx)
		case "announce":
			err = sp.Announce(ctx, req.Prefix)
		case "withdraw":
			err = sp.Withdraw(ctx, req.Prefix)
		case "learned":
			resp.Routes, err = sp.Learned(ctx)
		case "check":
			resp.Reachability, err = fabric.CheckAddress(ctx, req.Addr)
		case "announce-evpn":
			err = sp.AnnounceEVPN(ctx, req.EVPN)
		case "withdraw-evpn":
			err = sp.WithdrawEVPN(ctx, req.EVPN)
		case "learned-evpn":
			resp.EVPN, err = sp.LearnedEVPN(ctx)
		case "sync-fdb":
			// The EVPN control loop: learned routes become FDB entries.
			var routes []fabric.EVPNRoute
			routes, err = sp.LearnedEVPN(ctx)
			if err == nil {
				var h *netlink.Handle
				h, err = netlink.NewHandle()
				if err == nil {
					resp.Added, resp.Removed, err = vxlan.SyncFDB(ctx, h, req.Device, fabric.FDBEntries(routes, req.EVPN.VNI, req.Local))
					h.Close()
				}
			}
		case "sync-kernel":
			var routes []fabric.Route
			routes, err = sp.Learned(ctx)
			if err == nil {
				var h *netlink.Handle
				h, err = netlink.NewHandle()
				if err == nil {
					resp.Added, resp.Removed, err = fabric.SyncKernel(ctx, h, routes)
					h.Close()
				}
			}
		case "stop":
			return 0
		default:
			err = fmt.Errorf("unknown op %q", req.Op)
		}
		if err != nil {
			resp.Err = err.Error()
		}
		_ = out.Encode(resp)
	}
	return 0
}

// speaker is a test's handle on a helper process.
type speaker struct {
	t   *testing.T
	in  io.WriteCloser
	out *json.Decoder
}

func startSpeaker(t *testing.T, ns *testenv.Netns, cfg fabric.Config) *speaker {
	cfgJSON, err := json.Marshal(cfg)
	require.NoError(t, err)
	exe, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command("ip", "netns", "exec", ns.Name, exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+string(cfgJSON))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	require.NoError(t, err)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = in.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	return &speaker{t: t, in: in, out: json.NewDecoder(out)}
}

func (s *speaker) do(req request) response {
	s.t.Helper()
	b, err := json.Marshal(req)
	require.NoError(s.t, err)
	_, err = s.in.Write(append(b, '\n'))
	require.NoError(s.t, err)
	var resp response
	require.NoError(s.t, s.out.Decode(&resp))
	require.Empty(s.t, resp.Err, "%s", req.Op)
	return resp
}

func (s *speaker) stop() {
	b, _ := json.Marshal(request{Op: "stop"})
	_, _ = s.in.Write(append(b, '\n'))
}

// eventually polls cond every 100 ms for up to 20 s.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	var last string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var ok bool
		if ok, last = cond(); ok {
			return
		}
	}
	t.Fatalf("%s: not reached in 20 s; last state:\n%s", what, strings.TrimSpace(last))
}
