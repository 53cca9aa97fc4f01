package scripts_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/scripts"
)

// probeBody prints every value NUL-terminated, in order, with one command.
func probeBody(names []string) string {
	var b strings.Builder
	b.WriteString("printf '%s\\0'")
	for _, n := range names {
		fmt.Fprintf(&b, ` "$%s"`, n)
	}
	b.WriteString("\n")
	return b.String()
}

// runSandboxed executes the rendered script with bash in an empty
// environment and an empty working directory, tracing every command with a
// random marker. It returns stdout, the number of simple commands that ran,
// and the files the script left in its directory.
func runSandboxed(t *testing.T, text string) (stdout []byte, commands int, files []string) {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(t.TempDir(), "script.sh")
	require.NoError(t, os.WriteFile(file, []byte(text), 0o600))
	nonce := make([]byte, 8)
	_, _ = rand.Read(nonce)
	marker := "XTRACE-" + hex.EncodeToString(nonce)
	var trace bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// bash running as root ignores PS4 from the environment: set it inside.
	cmd := exec.CommandContext(ctx, "env", "-i", "PATH=/usr/bin:/bin",
		"bash", "--noprofile", "--norc", "-c", `PS4="$0 "; set -x; . "$1"`, marker, file)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &trace
	require.NoError(t, cmd.Run(), "stderr: %q", trace.String())
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		files = append(files, e.Name())
	}
	// The source command itself is traced once.
	return out.Bytes(), strings.Count(trace.String(), marker) - 1, files
}

// FuzzShellRendering feeds arbitrary values and names to Render and checks
// that no value changes the script's commands: the rendered text is exactly
// the preamble of the values followed by the untouched body, and running it
// in a sandboxed bash executes exactly one export per value plus the body's
// one command, creates nothing, and hands the script every value unchanged.
func FuzzShellRendering(f *testing.F) {
	for _, seed := range [][3]string{
		{"A", "plain", "B"},
		{"NAME", `'; touch pwned; '`, "other"},
		{"X", "$(touch pwned)", "`touch pwned`"},
		{"Y", "a'b\"c\\d\ne;f|g&h", "${IFS}*?[a]~"},
		{"db_pass", "‘quote’ «» \t\r\n", "'\\''"},
		{"Z", "", "\x01\x7f\xff"},
		{"PATH", "/tmp/evil", "x"},
		{"1bad", "v", "w"},
		{"A", "end\n'\nexport B=pwned\n", "B"},
	} {
		f.Add(seed[0], seed[1], seed[2])
	}
	f.Fuzz(func(t *testing.T, name, v1, v2 string) {
		s := scripts.Script{Name: "fuzz", Owner: "o", Visibility: scripts.Private, Kind: scripts.Shell,
			Params: []scripts.Param{{Name: name, Type: scripts.String}, {Name: "SECOND", Type: scripts.Password}}}
		s.Body = probeBody([]string{name, "SECOND", "GLOBAL_V"})
		r, err := scripts.Render(s, scripts.RenderInput{
			Args:    map[string]string{name: v1, "SECOND": v2},
			Globals: []scripts.Variable{{Name: "GLOBAL_V", Value: v2 + v1, Scope: scripts.Global, Hidden: true}},
		})
		if err != nil {
			// Refusals are typed and name the offending field.
			require.ErrorIs(t, err, virtplane.ErrInvalidArgument)
			// Each value is checked on its own: "\xcf" and "\x80" are both
			// refused although their concatenation is valid UTF-8 ("π").
			badValue := func(v string) bool { return strings.ContainsRune(v, 0) || !utf8.ValidString(v) }
			badName := scripts.ValidateName("parameter", name) != nil || strings.EqualFold(name, "SECOND") || strings.EqualFold(name, "GLOBAL_V")
			require.True(t, badName || badValue(v1) || badValue(v2) || badValue(v2+v1), "unexpected refusal: %v", err)
			if !badName && !strings.ContainsRune(v1+v2, 0) {
				assert.Contains(t, err.Error(), "not valid UTF-8", "a non-UTF-8 value is refused as such")
			}
			return
		}
		for _, v := range []string{v1, v2} {
			require.True(t, utf8.ValidString(v) && !strings.ContainsRune(v, 0), "a value that is not UTF-8 text was accepted: %q", v)
		}
		want := r.Values
		assert.Equal(t, scripts.ShellPreamble(want)+s.Body, r.Text(), "rendered = preamble(values) + body, byte for byte")
		out, commands, files := runSandboxed(t, r.Text())
		// bash traces each export twice (the command and its assignment).
		assert.Equal(t, 2*len(want)+1, commands, "one export per value and the body's printf ran, nothing else")
		assert.Empty(t, files, "the script created nothing")
		got := strings.Split(string(out), "\x00")
		require.Len(t, got, 4)
		assert.Equal(t, []string{v1, v2, v2 + v1}, got[:3], "every value arrives unchanged")
	})
}

// psUnquote reads one PowerShell verbatim string per the language
// specification (a doubled quote character of any of the five kinds stands
// for itself, any single one ends the string) and returns the rest.
func psUnquote(s string) (value, rest string, ok bool) {
	isQuote := func(r rune) bool { return strings.ContainsRune("'\u2018\u2019\u201a\u201b", r) }
	rs := []rune(s)
	if len(rs) == 0 || !isQuote(rs[0]) {
		return "", "", false
	}
	var b strings.Builder
	for i := 1; i < len(rs); i++ {
		if isQuote(rs[i]) {
			if i+1 < len(rs) && isQuote(rs[i+1]) {
				b.WriteRune(rs[i+1])
				i++
				continue
			}
			return b.String(), string(rs[i+1:]), true
		}
		b.WriteRune(rs[i])
	}
	return "", "", false
}

// FuzzPowerShellQuote checks against a reader of PowerShell's verbatim
// string grammar that a quoted value is read back whole and nothing follows
// it on the line. (No PowerShell runs here: this machine has none.)
func FuzzPowerShellQuote(f *testing.F) {
	for _, s := range []string{"", "plain", "it's", "‘smart’ ‚quotes‛", "'; Remove-Item C:\\ -Recurse; '", "$(Get-Process)", "`n\"\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if !utf8.ValidString(v) {
			return
		}
		q := scripts.PowerShellQuote(v)
		got, rest, ok := psUnquote(q)
		require.True(t, ok)
		assert.Equal(t, v, got)
		assert.Empty(t, rest, "nothing may follow the closing quote")
	})
}

// FuzzYAMLQuote checks that Ansible extra vars are printable ASCII on one
// line per value, and decode back to the value.
func FuzzYAMLQuote(f *testing.F) {
	for _, s := range []string{"", "{{ lookup('pipe','id') }}", "a\"b\\c\nd", "😀\u2028\x7f", "!unsafe", "- item: x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if !utf8.ValidString(v) {
			return
		}
		q := scripts.YAMLQuote(v)
		for _, c := range []byte(q) {
			require.True(t, c >= 0x20 && c < 0x7f, "byte %#x in %q", c, q)
		}
		got, err := yamlUnquote(q)
		require.NoError(t, err)
		assert.Equal(t, v, got)
	})
}

// yamlUnquote decodes the subset of YAML double-quoted escapes YAMLQuote emits.
func yamlUnquote(q string) (string, error) {
	if len(q) < 2 || q[0] != '"' || q[len(q)-1] != '"' {
		return "", fmt.Errorf("not quoted")
	}
	var b strings.Builder
	s := q[1 : len(q)-1]
	for i := 0; i < len(s); i++ {
		if s[i] == '"' {
			return "", fmt.Errorf("bare quote at %d", i)
		}
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		i++
		switch {
		case s[i] == '"' || s[i] == '\\':
			b.WriteByte(s[i])
		case s[i] == 'u' || s[i] == 'U':
			n := 4
			if s[i] == 'U' {
				n = 8
			}
			var r rune
			if _, err := fmt.Sscanf(s[i+1:i+1+n], "%X", &r); err != nil {
				return "", err
			}
			b.WriteRune(r)
			i += n
		default:
			return "", fmt.Errorf("escape %q", s[i])
		}
	}
	return b.String(), nil
}

func TestAnsibleExtraVarsParseWithPyYAML(t *testing.T) {
	values := []scripts.Value{{Name: "a", Value: "{{ lookup('pipe','id') }}"}, {Name: "b", Value: "line\n\"q\"\\ 😀 \x7f"}}
	doc := scripts.AnsibleExtraVars(values)
	py := `import sys, json, yaml
class L(yaml.SafeLoader): pass
L.add_constructor('!unsafe', lambda l, n: l.construct_scalar(n))
print(json.dumps(yaml.load(sys.stdin.read(), Loader=L)))`
	cmd := exec.Command("python3", "-c", py)
	cmd.Stdin = strings.NewReader(doc)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	assert.JSONEq(t, `{"a":"{{ lookup('pipe','id') }}","b":"line\n\"q\"\\ 😀 \u007f"}`, string(out))
}

func TestRenderRejects(t *testing.T) {
	base := scripts.Script{Name: "s", Owner: "o", Visibility: scripts.Private, Kind: scripts.Shell, Body: "true\n"}
	for _, tc := range []struct {
		name   string
		mutate func(*scripts.Script, *scripts.RenderInput)
		field  string
	}{
		{"reserved PATH", func(s *scripts.Script, _ *scripts.RenderInput) {
			s.Params = []scripts.Param{{Name: "PATH", Type: scripts.String}}
		}, `"PATH"`},
		{"reserved LD_PRELOAD variable", func(_ *scripts.Script, in *scripts.RenderInput) {
			in.Globals = []scripts.Variable{{Name: "LD_PRELOAD", Value: "x", Scope: scripts.Global}}
		}, `"LD_PRELOAD"`},
		{"not an identifier", func(s *scripts.Script, _ *scripts.RenderInput) {
			s.Params = []scripts.Param{{Name: "a b", Type: scripts.String}}
		}, `"a b"`},
		{"duplicate name", func(s *scripts.Script, _ *scripts.RenderInput) {
			s.Params = []scripts.Param{{Name: "A", Type: scripts.String}, {Name: "a", Type: scripts.String}}
		}, `"a"`},
		{"missing required", func(s *scripts.Script, _ *scripts.RenderInput) {
			s.Params = []scripts.Param{{Name: "A", Type: scripts.String, Required: true}}
		}, `"A"`},
		{"unknown argument", func(_ *scripts.Script, in *scripts.RenderInput) { in.Args = map[string]string{"NOPE": "1"} }, `"NOPE"`},
		{"int out of range", func(s *scripts.Script, in *scripts.RenderInput) {
			s.Params = []scripts.Param{{Name: "N", Type: scripts.Int, Min: 1, Max: 10}}
			in.Args = map[string]string{"N": "11"}
		}, `"N"`},
		{"pattern", func(s *scripts.Script, in *scripts.RenderInput) {
			s.Params = []scripts.Param{{Name: "DB", Type: scripts.String, Pattern: `[a-z_]+`}}
			in.Args = map[string]string{"DB": "x; drop"}
		}, `"DB"`},
		{"choice", func(s *scripts.Script, in *scripts.RenderInput) {
			s.Params = []scripts.Param{{Name: "E", Type: scripts.Choice, Choices: []string{"pg", "mariadb"}}}
			in.Args = map[string]string{"E": "oracle"}
		}, `"E"`},
		{"bool", func(s *scripts.Script, in *scripts.RenderInput) {
			s.Params = []scripts.Param{{Name: "B", Type: scripts.Bool}}
			in.Args = map[string]string{"B": "yes"}
		}, `"B"`},
		{"NUL in value", func(s *scripts.Script, in *scripts.RenderInput) {
			s.Params = []scripts.Param{{Name: "A", Type: scripts.String}}
			in.Args = map[string]string{"A": "a\x00b"}
		}, `"A"`},
		{"bad kind", func(s *scripts.Script, _ *scripts.RenderInput) { s.Kind = "perl" }, `"perl"`},
		{"bad visibility", func(s *scripts.Script, _ *scripts.RenderInput) { s.Visibility = "friends" }, `"friends"`},
		{"bad tag", func(s *scripts.Script, _ *scripts.RenderInput) { s.Targets.AllOf = []string{"a b"} }, `"a b"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, in := base, scripts.RenderInput{}
			tc.mutate(&s, &in)
			_, err := scripts.Render(s, in)
			require.ErrorIs(t, err, virtplane.ErrInvalidArgument)
			assert.Contains(t, err.Error(), tc.field)
		})
	}
}

func TestHiddenParamErrorsDoNotQuoteValue(t *testing.T) {
	s := scripts.Script{Name: "s", Owner: "o", Visibility: scripts.Private, Kind: scripts.Shell, Body: "true\n",
		Params: []scripts.Param{{Name: "PW", Type: scripts.Password, Pattern: `[a-z]+`}}}
	_, err := scripts.Render(s, scripts.RenderInput{Args: map[string]string{"PW": "Secret123"}})
	require.ErrorIs(t, err, virtplane.ErrInvalidArgument)
	assert.NotContains(t, err.Error(), "Secret123")
}

func TestPrecedenceAndGeneratedPassword(t *testing.T) {
	s := scripts.Script{Name: "s", Owner: "o", Visibility: scripts.Private, Kind: scripts.Shell, Body: "true\n",
		Params: []scripts.Param{{Name: "REGION", Type: scripts.String}, {Name: "PW", Type: scripts.Password, Generate: 20}}}
	r, err := scripts.Render(s, scripts.RenderInput{
		Args: map[string]string{"REGION": "eu"},
		Globals: []scripts.Variable{
			{Name: "REGION", Value: "us", Scope: scripts.Global},
			{Name: "API_KEY", Value: "global-key", Scope: scripts.Global, Hidden: true},
			{Name: "MIRROR", Value: "global", Scope: scripts.Global},
		},
		Locals: []scripts.Variable{{Name: "MIRROR", Value: "local", Scope: scripts.Local}, {Name: "API_KEY", Value: "local-key", Scope: scripts.Local}},
	})
	require.NoError(t, err)
	byName := map[string]scripts.Value{}
	for _, v := range r.Values {
		byName[v.Name] = v
	}
	assert.Equal(t, "eu", byName["REGION"].Value, "parameter beats global")
	assert.Equal(t, "local", byName["MIRROR"].Value, "local beats global")
	assert.Equal(t, "local-key", byName["API_KEY"].Value)
	assert.True(t, byName["API_KEY"].Hidden, "hidden in any layer stays hidden")
	assert.Len(t, byName["PW"].Value, 20)
	assert.True(t, byName["PW"].Hidden)
	assert.Contains(t, r.Secrets, "global-key", "overridden hidden values are masked too")
	assert.Contains(t, r.Secrets, byName["PW"].Value)
	for _, printed := range []string{fmt.Sprint(r), fmt.Sprintf("%+v %#v", r, r), fmt.Sprint(byName["PW"])} {
		assert.NotContains(t, printed, byName["PW"].Value)
		assert.NotContains(t, printed, "local-key")
	}
}

func TestVisibilityAndTargets(t *testing.T) {
	s := scripts.Script{Name: "s", Owner: "alice", Visibility: scripts.Private, Kind: scripts.Shell, Body: "licence=XYZ\n", BodyHidden: true,
		Targets: scripts.TargetFilter{AllOf: []string{"linux"}, NoneOf: []string{"prod"}, AnyOf: []string{"debian", "ubuntu"}}}
	_, ok := s.ViewFor("bob")
	assert.False(t, ok, "private scripts are invisible to others")
	v, ok := s.ViewFor("alice")
	require.True(t, ok)
	assert.Equal(t, s.Body, v.Body, "the owner sees the body")
	s.Visibility = scripts.Everyone
	v, ok = s.ViewFor("bob")
	require.True(t, ok)
	assert.Empty(t, v.Body, "hidden body is hidden from others")
	assert.NotContains(t, fmt.Sprint(s), "XYZ")
	for _, tc := range []struct {
		tags []string
		want bool
	}{
		{[]string{"linux", "debian"}, true},
		{[]string{"linux", "ubuntu", "dev"}, true},
		{[]string{"linux"}, false},
		{[]string{"debian"}, false},
		{[]string{"linux", "debian", "prod"}, false},
	} {
		assert.Equal(t, tc.want, s.Targets.Matches(tc.tags), "%v", tc.tags)
	}
}

func TestVariableRedaction(t *testing.T) {
	v := scripts.Variable{Name: "TOKEN", Value: "tok-123", Scope: scripts.Global, Hidden: true}
	b, err := v.MarshalJSON()
	require.NoError(t, err)
	assert.NotContains(t, string(b), "tok-123")
	assert.NotContains(t, fmt.Sprintf("%v %+v %#v %s", v, v, v, v), "tok-123")
	assert.Empty(t, v.Redacted().Value)
	plain := scripts.Variable{Name: "REGION", Value: "eu", Scope: scripts.Global}
	b, err = plain.MarshalJSON()
	require.NoError(t, err)
	assert.Contains(t, string(b), `"value":"eu"`)
}

// TestNonUTF8ValuesRefusedForEveryKind states the rule FuzzShellRendering
// holds: a value that is not valid UTF-8 is refused with an error naming
// the parameter (or variable) and the offset, for every kind of script —
// each value on its own, so two halves of one character are both refused.
func TestNonUTF8ValuesRefusedForEveryKind(t *testing.T) {
	for _, kind := range []scripts.Kind{scripts.Shell, scripts.PowerShell, scripts.Ansible} {
		s := scripts.Script{Name: "s", Owner: "o", Visibility: scripts.Private, Kind: kind, Body: "true\n",
			Params: []scripts.Param{{Name: "A", Type: scripts.String}, {Name: "B", Type: scripts.String}}}
		for _, tc := range []struct {
			args    map[string]string
			globals []scripts.Variable
			want    string
		}{
			{args: map[string]string{"A": "\xcf"}, want: `parameter "A" value "\xcf": not valid UTF-8 (first bad byte at offset 0)`},
			{args: map[string]string{"A": "ok", "B": "x\x80"}, want: `parameter "B" value "x\x80": not valid UTF-8 (first bad byte at offset 1)`},
			{args: map[string]string{"A": "\xcf", "B": "\x80"}, want: `parameter "A"`},
			{globals: []scripts.Variable{{Name: "G", Value: "\xff", Scope: scripts.Global}}, want: `variable "G" value: not valid UTF-8`},
		} {
			_, err := scripts.Render(s, scripts.RenderInput{Args: tc.args, Globals: tc.globals})
			require.ErrorIs(t, err, virtplane.ErrInvalidArgument, "%s %q", kind, tc.args)
			assert.Contains(t, err.Error(), tc.want, kind)
		}
		_, err := scripts.Render(s, scripts.RenderInput{Args: map[string]string{"A": "π ‘x’ \u2028"}})
		require.NoError(t, err, "valid UTF-8 of any script is data")
	}
	hidden := scripts.Script{Name: "s", Owner: "o", Visibility: scripts.Private, Kind: scripts.Shell, Body: "true\n",
		Params: []scripts.Param{{Name: "PW", Type: scripts.Password}}}
	_, err := scripts.Render(hidden, scripts.RenderInput{Args: map[string]string{"PW": "sécret\xcf"}})
	require.ErrorIs(t, err, virtplane.ErrInvalidArgument)
	assert.Contains(t, err.Error(), `parameter "PW" value (hidden): not valid UTF-8`)
	assert.NotContains(t, err.Error(), "sécret")
}
