package nettest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TrafficEnv switches a test binary into a traffic helper (see RunTraffic).
const TrafficEnv = "VPT_NETTEST_TRAFFIC"

// RunTrafficIfHelper runs the traffic helper and exits when the test binary
// was started as one; call it first in TestMain. The helper modes are:
//
//	serve ADDR            accept TCP connections, read each to EOF, print one JSON Transfer per connection
//	dial ADDR N HOLD      open N TCP connections (1 s timeout each), print "connected K", hold them for HOLD
//	send ADDR DURATION    stream zeros to ADDR for DURATION, then close
func RunTrafficIfHelper() {
	args := os.Getenv(TrafficEnv)
	if args == "" {
		return
	}
	if err := runTraffic(strings.Fields(args)); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// Transfer is what the serve mode reports for each connection.
type Transfer struct {
	Bytes   int64
	Seconds float64 // from the first to the last byte
}

// Mbps returns the transfer's rate in megabits per second.
func (tr Transfer) Mbps() float64 {
	if tr.Seconds == 0 {
		return 0
	}
	return float64(tr.Bytes) * 8 / tr.Seconds / 1e6
}

func runTraffic(a []string) error {
	switch {
	case len(a) == 2 && a[0] == "serve":
		l, err := net.Listen("tcp", a[1])
		if err != nil {
			return err
		}
		fmt.Println("ready")
		out := json.NewEncoder(os.Stdout)
		for {
			c, err := l.Accept()
			if err != nil {
				return err
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 64<<10)
				var tr Transfer
				var first time.Time
				for {
					n, err := c.Read(buf)
					if n > 0 {
						if first.IsZero() {
							first = time.Now()
						}
						tr.Bytes += int64(n)
						tr.Seconds = time.Since(first).Seconds()
					}
					if err != nil {
						break
					}
				}
				_ = out.Encode(tr)
			}()
		}
	case len(a) == 4 && a[0] == "dial":
		n, err := strconv.Atoi(a[2])
		if err != nil {
			return err
		}
		hold, err := time.ParseDuration(a[3])
		if err != nil {
			return err
		}
		var conns []net.Conn
		for range n {
			c, err := net.DialTimeout("tcp", a[1], time.Second)
			if err == nil {
				conns = append(conns, c)
			}
		}
		fmt.Printf("connected %d\n", len(conns))
		time.Sleep(hold)
		for _, c := range conns {
			_ = c.Close()
		}
		return nil
	case len(a) == 3 && a[0] == "send":
		d, err := time.ParseDuration(a[2])
		if err != nil {
			return err
		}
		c, err := net.DialTimeout("tcp", a[1], 2*time.Second)
		if err != nil {
			return err
		}
		buf := make([]byte, 16<<10)
		end := time.Now().Add(d)
		_ = c.SetWriteDeadline(end)
		for time.Now().Before(end) {
			if _, err := c.Write(buf); err != nil {
				break
			}
		}
		return c.Close()
	}
	return fmt.Errorf("traffic helper: bad arguments %q", a)
}

// TrafficCommand returns a command that runs this test binary as a traffic
// helper inside the named namespace.
func TrafficCommand(ctx context.Context, nsName string, args ...string) *exec.Cmd {
	exe, _ := os.Executable()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", nsName, exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), TrafficEnv+"="+strings.Join(args, " "))
	return cmd
}

// Server is a running serve helper.
type Server struct {
	out *bufio.Reader
}

// Serve starts a TCP sink on addr inside the namespace; it is killed at cleanup.
func Serve(t testing.TB, nsName, addr string) *Server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := TrafficCommand(ctx, nsName, "serve", addr)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	s := &Server{out: bufio.NewReader(out)}
	line, err := s.out.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "ready\n", line)
	return s
}

// Next returns the report of the next finished connection.
func (s *Server) Next(t testing.TB) Transfer {
	t.Helper()
	line, err := s.out.ReadString('\n')
	require.NoError(t, err)
	var tr Transfer
	require.NoError(t, json.Unmarshal([]byte(line), &tr))
	return tr
}

// Dial opens n connections to addr from inside the namespace and returns how
// many were established.
func Dial(t testing.TB, nsName, addr string, n int) int {
	t.Helper()
	out, err := TrafficCommand(t.Context(), nsName, "dial", addr, strconv.Itoa(n), "0s").Output()
	require.NoError(t, err)
	var k int
	_, err = fmt.Sscanf(string(out), "connected %d", &k)
	require.NoError(t, err, string(out))
	return k
}

// DialHold opens n connections and keeps them open for hold, in the background.
func DialHold(t testing.TB, nsName, addr string, n int, hold time.Duration) (connected func() int) {
	t.Helper()
	cmd := TrafficCommand(t.Context(), nsName, "dial", addr, strconv.Itoa(n), hold.String())
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	r := bufio.NewReader(out)
	return func() int {
		line, err := r.ReadString('\n')
		require.NoError(t, err)
		var k int
		_, err = fmt.Sscanf(line, "connected %d", &k)
		require.NoError(t, err, line)
		return k
	}
}

// Send streams to addr from inside the namespace for d.
func Send(t testing.TB, nsName, addr string, d time.Duration) {
	t.Helper()
	out, err := TrafficCommand(t.Context(), nsName, "send", addr, d.String()).CombinedOutput()
	require.NoError(t, err, string(out))
}
