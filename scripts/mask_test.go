package scripts_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/virtplane/virtplane/scripts"
)

func TestMaskerString(t *testing.T) {
	m := scripts.NewMasker("secret", "secretive", "", "pw")
	for _, tc := range []struct{ in, want string }{
		{"nothing to hide", "nothing to hide"},
		{"the secret is out", "the " + scripts.Mask + " is out"},
		{"secretive secrets", scripts.Mask + " " + scripts.Mask + "s"},
		{"pwpw", scripts.Mask + scripts.Mask},
		{"secre", "secre"},
	} {
		assert.Equal(t, tc.want, m.String(tc.in), tc.in)
	}
}

// writeChunked writes s into a MaskingWriter cut at the given points.
func writeChunked(t *testing.T, m *scripts.Masker, s string, cuts []int) string {
	var out bytes.Buffer
	w := scripts.NewMaskingWriter(&out, m)
	prev := 0
	for _, c := range cuts {
		if c < prev || c > len(s) {
			continue
		}
		n, err := w.Write([]byte(s[prev:c]))
		require.NoError(t, err)
		require.Equal(t, c-prev, n)
		prev = c
	}
	_, err := w.Write([]byte(s[prev:]))
	require.NoError(t, err)
	require.NoError(t, w.Close())
	return out.String()
}

func TestMaskingWriterSplitAcrossChunks(t *testing.T) {
	m := scripts.NewMasker("hunter2", "hunter2-long")
	text := "pass=hunter2 and hunter2-long and hunt"
	want := m.String(text)
	for cut := 0; cut <= len(text); cut++ {
		assert.Equal(t, want, writeChunked(t, m, text, []int{cut}), "cut at %d", cut)
	}
	// One byte at a time.
	cuts := make([]int, len(text))
	for i := range cuts {
		cuts[i] = i
	}
	assert.Equal(t, want, writeChunked(t, m, text, cuts))
	assert.NotContains(t, want, "hunter2")
}

// TestMaskingWriterProperty: however a stream is cut into chunks, the
// masked stream equals masking the whole text at once, and no secret
// survives.
func TestMaskingWriterProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		alphabet := rapid.SampledFrom([]rune("ab*\n"))
		word := rapid.StringOfN(alphabet, 2, 6, -1)
		secrets := rapid.SliceOfN(word, 1, 3).Draw(rt, "secrets")
		parts := rapid.SliceOfN(rapid.OneOf(word, rapid.SampledFrom(secrets)), 0, 12).Draw(rt, "parts")
		text := strings.Join(parts, "")
		cuts := rapid.SliceOfN(rapid.IntRange(0, len(text)), 0, 8).Draw(rt, "cuts")
		m := scripts.NewMasker(secrets...)
		got := writeChunked(t, m, text, sortedInts(cuts))
		if got != m.String(text) {
			rt.Fatalf("chunked %q != whole %q", got, m.String(text))
		}
	})
}

func sortedInts(in []int) []int {
	out := append([]int(nil), in...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func TestMaskedOutputHasNoSecret(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		secret := rapid.StringMatching(`[a-z0-9]{4,12}`).Draw(rt, "secret")
		noise := rapid.StringMatching(`[a-z0-9 ]{0,30}`).Draw(rt, "noise")
		text := noise + secret + noise + secret[:len(secret)/2] + secret
		m := scripts.NewMasker(secret)
		cuts := rapid.SliceOfN(rapid.IntRange(0, len(text)), 0, 6).Draw(rt, "cuts")
		got := writeChunked(t, m, text, sortedInts(cuts))
		if strings.Contains(got, secret) {
			rt.Fatalf("secret %q survived in %q", secret, got)
		}
	})
}
