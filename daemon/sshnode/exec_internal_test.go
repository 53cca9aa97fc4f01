package sshnode

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane/storage"
)

func TestPidWriterSplitsTheFirstLine(t *testing.T) {
	for _, chunks := range [][]string{
		{"1234\nerr"},
		{"12", "34", "\n", "e", "rr"},
		{"1234\n", "err"},
		{"1", "234\nerr"},
	} {
		var w pidWriter
		for _, c := range chunks {
			n, err := w.Write([]byte(c))
			require.NoError(t, err)
			assert.Equal(t, len(c), n)
		}
		pid, rest := w.result()
		assert.Equal(t, 1234, pid, "%q", chunks)
		assert.Equal(t, "err", rest, "%q", chunks)
	}
	var w pidWriter
	_, _ = w.Write([]byte("no newline yet"))
	pid, rest := w.result()
	assert.Zero(t, pid)
	assert.Equal(t, "no newline yet", rest)
}

// FuzzCommandLine: the rendered line, run by the shells a node's login
// shell may be, passes every argument and environment value to the
// program unchanged, or the command is refused.
func FuzzCommandLine(f *testing.F) {
	for _, s := range []string{"plain", "", "it's", `"$HOME"`, "$(id)", "`id`", "a\nb", "'\\''", "\\", "!event", "~root", "*", "-n", "\x01"} {
		f.Add(s, "x")
	}
	shells := []string{"sh", "bash"}
	f.Fuzz(func(t *testing.T, arg, env string) {
		cmd := storage.Command{Name: "printf", Args: []string{`%s\0`, arg, arg + arg}, Env: []string{"VPT_FUZZ=" + env}}
		line, err := CommandLine(cmd)
		if err != nil {
			if !strings.ContainsRune(arg, 0) && !strings.ContainsRune(env, 0) {
				t.Fatalf("refused %q / %q: %v", arg, env, err)
			}
			return
		}
		for _, sh := range shells {
			var stdout, stderr bytes.Buffer
			c := exec.Command(sh, "-c", line)
			c.Stdout, c.Stderr = &stdout, &stderr
			if err := c.Run(); err != nil {
				t.Fatalf("%s -c %q: %v: %s", sh, line, err, stderr.String())
			}
			if want := arg + "\x00" + arg + arg + "\x00"; stdout.String() != want {
				t.Fatalf("%s: %q came back as %q", sh, want, stdout.String())
			}
		}
		// The environment value too.
		line, err = CommandLine(storage.Command{Name: "printenv", Args: []string{"VPT_FUZZ"}, Env: []string{"VPT_FUZZ=" + env}})
		require.NoError(t, err)
		out, err := exec.Command("sh", "-c", line).Output()
		require.NoError(t, err)
		if string(out) != env+"\n" {
			t.Fatalf("env %q came back as %q", env, out)
		}
	})
}
