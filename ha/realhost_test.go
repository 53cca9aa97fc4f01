package ha_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netns"

	"github.com/virtplane/virtplane/ha"
	"github.com/virtplane/virtplane/internal/testenv"
)

// alive says whether pid is a live process (not a zombie).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] != 'Z'
}

// nsDialer opens TCP connections from inside a network namespace: one
// goroutine, locked to an OS thread that joined the namespace, creates the
// sockets (a socket belongs to the namespace of the thread that created it;
// the connection is then usable from any goroutine). The thread is never
// unlocked, so it dies with the goroutine instead of returning to the pool
// in the wrong namespace.
type nsDialer struct {
	reqs chan nsDial
}

type nsDial struct {
	ctx  context.Context
	addr string
	res  chan nsDialResult
}

type nsDialResult struct {
	c   net.Conn
	err error
}

func newNSDialer(t *testing.T, ns *testenv.Netns) *nsDialer {
	t.Helper()
	d := &nsDialer{reqs: make(chan nsDial)}
	ready := make(chan error, 1)
	stop := make(chan struct{})
	var spawn func()
	onThread := make(chan struct{}) // closed once a worker holds a thread other than the main one
	spawn = func() {
		go func() {
			runtime.LockOSThread() // never unlocked once in the namespace: see nsDialer
			if syscall.Gettid() == os.Getpid() {
				// The main thread: moved into the namespace it would make
				// `ip netns pids` list (and the namespace cleanup kill) this
				// process. Hold it until a worker runs on another thread.
				spawn()
				<-onThread
				runtime.UnlockOSThread()
				return
			}
			close(onThread)
			h, err := netns.GetFromName(ns.Name)
			if err == nil {
				err = netns.Set(h)
				_ = h.Close()
			}
			ready <- err
			if err != nil {
				return
			}
			for {
				select {
				case <-stop:
					return
				case r := <-d.reqs:
					var nd net.Dialer
					c, err := nd.DialContext(r.ctx, "tcp", r.addr)
					r.res <- nsDialResult{c, err}
				}
			}
		}()
	}
	spawn()
	require.NoError(t, <-ready, "join namespace %s", ns.Name)
	t.Cleanup(func() { close(stop) })
	return d
}

func (d *nsDialer) Dial(ctx context.Context, addr string) (net.Conn, error) {
	r := nsDial{ctx: ctx, addr: addr, res: make(chan nsDialResult, 1)}
	select {
	case d.reqs <- r:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case res := <-r.res:
		return res.c, res.err
	case <-ctx.Done():
		go func() {
			if res := <-r.res; res.c != nil {
				_ = res.c.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

// heartbeatServer is the controller's end of the agents' heartbeat
// transport: one line "NODE CHECKOK" in, "ok" out when the controller took
// it. It listens on the root namespace's end of a host's link, so a cut
// link silences the host's agent.
func heartbeatServer(t *testing.T, ctx context.Context, ip string, sink ha.HeartbeatSink) string {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(2 * time.Second))
				line, err := bufio.NewReader(c).ReadString('\n')
				if err != nil {
					return // a check-address probe: connect and close
				}
				f := strings.Fields(line)
				if len(f) != 2 {
					return
				}
				if sink.Heartbeat(ctx, ha.Heartbeat{Node: f[0], CheckOK: f[1] == "true"}) == nil {
					_, _ = c.Write([]byte("ok\n"))
				}
			}()
		}
	}()
	return l.Addr().String()
}

// netSink is the agent's end: it sends each heartbeat over a TCP
// connection opened inside the host's namespace.
type netSink struct {
	d    *nsDialer
	addr string
}

func (s netSink) Heartbeat(ctx context.Context, hb ha.Heartbeat) error {
	c, err := s.d.Dial(ctx, s.addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if _, err := fmt.Fprintf(c, "%s %v\n", hb.Node, hb.CheckOK); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "ok" {
		return fmt.Errorf("heartbeat not acknowledged: %q", line)
	}
	return nil
}

// netCheck probes the check address (the root namespace's end of the link)
// from inside the host's namespace.
type netCheck struct {
	d    *nsDialer
	addr string
}

func (c netCheck) ProbeCheck(ctx context.Context) error {
	conn, err := c.d.Dial(ctx, c.addr)
	if err != nil {
		return err
	}
	return conn.Close()
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
