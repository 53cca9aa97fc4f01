package testenv

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// WaitConsole waits until the serial console log at path holds want and
// returns the log. It gives up after timeout (or when ctx ends) with an
// error that quotes the end of the log: a guest that never boots fails its
// test with what it printed, not the package's timeout.
func WaitConsole(ctx context.Context, path, want string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		b, _ := os.ReadFile(path)
		if strings.Contains(string(b), want) {
			return string(b), nil
		}
		select {
		case <-ctx.Done():
			if len(b) > 2000 {
				b = b[len(b)-2000:]
			}
			return string(b), fmt.Errorf("no %q in %s: %w\n%s", want, path, ctx.Err(), b)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// GuestSeed returns what the test guest printed of its cloud-init seed
// file (meta-data, user-data, network-config) in a console log, one line
// per line of the file.
func GuestSeed(console, file string) []string {
	var lines []string
	for _, l := range strings.Split(console, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimRight(l, "\r"), "VPT-SEED "+file+": "); ok {
			lines = append(lines, v)
		}
	}
	return lines
}

// GuestProgress counts, in a console log of the test guest, its boots
// (markers) and the last heartbeat ("VPT-TICK n") after the last boot:
// a guest that keeps running across a migration or a snapshot keeps one
// boot and a growing tick.
func GuestProgress(console, marker string) (boots, lastTick int) {
	for _, l := range strings.Split(console, "\n") {
		if strings.Contains(l, marker) {
			boots++
			lastTick = 0
		}
		if i := strings.Index(l, "VPT-TICK "); i >= 0 {
			if n, err := strconv.Atoi(strings.TrimSpace(l[i+len("VPT-TICK "):])); err == nil {
				lastTick = n
			}
		}
	}
	return boots, lastTick
}
