package scripts_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/virtplane/virtplane/scripts"
)

// naiveSplice is the reference: what a template engine without quoting does,
// substituting ${NAME} in the body. It is unsafe and only a speed baseline.
func naiveSplice(body string, values map[string]string) string {
	pairs := make([]string, 0, 2*len(values))
	for k, v := range values {
		pairs = append(pairs, "${"+k+"}", v)
	}
	return strings.NewReplacer(pairs...).Replace(body)
}

func BenchmarkRender(b *testing.B) {
	params := make([]scripts.Param, 8)
	args := map[string]string{}
	var body strings.Builder
	for i := range params {
		name := fmt.Sprintf("P%d", i)
		params[i] = scripts.Param{Name: name, Type: scripts.String, Pattern: `[^\x00]*`}
		args[name] = fmt.Sprintf("value %d with 'quotes' and $(stuff)", i)
		fmt.Fprintf(&body, "echo \"${%s}\"\n", name)
	}
	body.WriteString(strings.Repeat("# filler line of a realistic script body\n", 40))
	s := scripts.Script{Name: "bench", Owner: "o", Visibility: scripts.Private, Kind: scripts.Shell, Body: body.String(), Params: params}
	globals := []scripts.Variable{{Name: "G1", Value: "g", Scope: scripts.Global}, {Name: "G2", Value: "h", Scope: scripts.Global, Hidden: true}}

	var safe, naive float64
	b.Run("safe", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := scripts.Render(s, scripts.RenderInput{Args: args, Globals: globals}); err != nil {
				b.Fatal(err)
			}
		}
		safe = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	})
	b.Run("naive-splice", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = naiveSplice(s.Body, args)
		}
		naive = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	})
	b.Run("ratio", func(b *testing.B) {
		for b.Loop() {
		}
		if naive > 0 {
			b.ReportMetric(safe/naive, "safe/naive")
			b.ReportMetric(safe, "safe-ns/render")
			b.ReportMetric(naive, "naive-ns/render")
		}
	})
}

func BenchmarkMaskingWriter(b *testing.B) {
	m := scripts.NewMasker("hunter2-password", "api-key-0123456789")
	chunk := []byte(strings.Repeat("log line with nothing secret in it, then hunter2-password and more\n", 64))
	var direct, masked float64
	b.Run("masked", func(b *testing.B) {
		b.SetBytes(int64(len(chunk)))
		w := scripts.NewMaskingWriter(discard{}, m)
		for b.Loop() {
			_, _ = w.Write(chunk)
		}
		masked = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	})
	b.Run("replace-reference", func(b *testing.B) {
		b.SetBytes(int64(len(chunk)))
		r := strings.NewReplacer("hunter2-password", scripts.Mask, "api-key-0123456789", scripts.Mask)
		for b.Loop() {
			_ = r.Replace(string(chunk))
		}
		direct = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	})
	b.Run("ratio", func(b *testing.B) {
		for b.Loop() {
		}
		if direct > 0 {
			b.ReportMetric(masked/direct, "streaming/replacer")
		}
	})
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
