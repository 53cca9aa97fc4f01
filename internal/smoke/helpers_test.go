package smoke

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"
)

// uniqueName returns a name with the vpt- prefix that `make env-clean` sweeps.
func uniqueName(kind string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return "vpt-" + kind + "-" + hex.EncodeToString(b)
}

// waitFileContains polls path until it contains want or the timeout passes,
// and returns the last content read.
func waitFileContains(t *testing.T, path, want string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(path)
		last = string(b)
		if strings.Contains(last, want) {
			return last
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s: %q did not appear within %s; content:\n%s", path, want, timeout, last)
	return last
}
