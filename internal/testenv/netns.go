package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Netns is a network namespace created for one test and deleted, with every
// process still inside it, when the test ends. Names start with "vpt-" so a
// stray one is easy to recognise and remove (`make env-clean`).
type Netns struct {
	Name string
}

// RequireNetns checks that this process can create network namespaces (root
// and iproute2); it fails under CI and skips elsewhere.
func RequireNetns(t testing.TB) {
	t.Helper()
	SkipShort(t)
	if _, err := exec.LookPath("ip"); err != nil {
		Missing(t, "iproute2", "env-net", err)
	}
	name := "vpt-probe-" + randomHex(4)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		Missing(t, "network namespaces", "env-net", fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out))))
	}
	_ = exec.Command("ip", "netns", "del", name).Run()
}

// NewNetns creates a namespace with loopback up; it is removed at cleanup.
func NewNetns(t testing.TB) *Netns {
	t.Helper()
	RequireNetns(t)
	n := &Netns{Name: "vpt-" + randomHex(5)}
	mustRun(t, "ip", "netns", "add", n.Name)
	t.Cleanup(func() { n.destroy() })
	mustRun(t, "ip", "-n", n.Name, "link", "set", "lo", "up")
	return n
}

func (n *Netns) destroy() {
	// Processes left inside (daemons a test started) are killed first:
	// a namespace with live processes survives `ip netns del`.
	out, _ := exec.Command("ip", "netns", "pids", n.Name).Output()
	for _, pid := range strings.Fields(string(out)) {
		_ = exec.Command("kill", "-9", pid).Run()
	}
	_ = exec.Command("ip", "netns", "del", n.Name).Run()
}

// Command returns a command that runs name with args inside the namespace.
func (n *Netns) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Run runs a command inside the namespace and fails the test if it fails;
// it returns the combined output.
func (n *Netns) Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := n.Command(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("in %s: %s %s: %v\n%s", n.Name, name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Veth joins two namespaces with a veth pair named aIf in a and bIf in b,
// assigns the addresses (CIDR notation, may be empty) and sets both ends up.
// A nil namespace means the root namespace.
func Veth(t testing.TB, a *Netns, aIf, aAddr string, b *Netns, bIf, bAddr string) {
	t.Helper()
	// Create with temporary names and rename after the move: a peer called
	// eth0 would collide with the root namespace's own interfaces.
	tmpA, tmpB := "vpa"+randomHex(4), "vpb"+randomHex(4)
	mustRun(t, "ip", "link", "add", tmpA, "type", "veth", "peer", "name", tmpB)
	for _, end := range []struct {
		ns        *Netns
		tmp, name string
		addr      string
	}{{a, tmpA, aIf, aAddr}, {b, tmpB, bIf, bAddr}} {
		ipn := []string{"ip"}
		if end.ns != nil {
			mustRun(t, "ip", "link", "set", end.tmp, "netns", end.ns.Name)
			ipn = append(ipn, "-n", end.ns.Name)
		} else {
			t.Cleanup(func() { _ = exec.Command("ip", "link", "del", end.name).Run() })
		}
		mustRun(t, append(ipn, "link", "set", end.tmp, "name", end.name)...)
		if end.addr != "" {
			mustRun(t, append(ipn, "addr", "add", end.addr, "dev", end.name)...)
		}
		mustRun(t, append(ipn, "link", "set", end.name, "up")...)
	}
}

func mustRun(t testing.TB, args ...string) {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
