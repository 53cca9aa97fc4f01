package scripts

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"unicode/utf8"
)

// Mask replaces hidden values in output, logs and errors.
const Mask = "********"

// Rendered is a script ready to run: the body untouched, and the values in a
// separate preamble (shell, PowerShell) or extra-vars document (Ansible) that
// only assigns data. Rendered holds hidden values: it prints as a redacted
// placeholder and must not be stored or logged.
type Rendered struct {
	ScriptID   string
	ScriptName string
	Kind       Kind
	// Preamble assigns every value (shell and PowerShell; empty for Ansible).
	Preamble string
	// Body is the script's body, byte for byte.
	Body string
	// ExtraVars is the YAML document of values for ansible-playbook -e @file
	// (Ansible only): every value is tagged !unsafe so that Jinja never
	// evaluates it.
	ExtraVars string
	// Values are the names and values the script receives.
	Values []Value
	// Secrets are the strings runners and results must mask: hidden values
	// and, for a hidden body, its lines.
	Secrets []string
	// Notice is the script's notice template (see Script.Notice).
	Notice string
}

// Text is the program a runner executes: Preamble followed by Body.
func (r Rendered) Text() string { return r.Preamble + r.Body }

// String redacts everything: a Rendered may hold hidden values.
func (r Rendered) String() string {
	return fmt.Sprintf("rendered %s script %q (%d values, redacted)", r.Kind, r.ScriptName, len(r.Values))
}

// GoString redacts everything, like String.
func (r Rendered) GoString() string { return r.String() }

// LogValue redacts everything, like String.
func (r Rendered) LogValue() slog.Value { return slog.StringValue(r.String()) }

// RenderInput is what a run supplies besides the script.
type RenderInput struct {
	Args    map[string]string
	Globals []Variable
	Locals  []Variable
	// Random feeds password generation (crypto/rand when nil).
	Random io.Reader
}

// minMaskedLine is the shortest body line masked in output when the body is
// hidden: shorter lines ("fi", "done") are too common to mean anything.
const minMaskedLine = 8

// Render checks the script and the input and renders the script. It is pure:
// no I/O besides reading Random.
func Render(s Script, in RenderInput) (Rendered, error) {
	if err := s.Validate(); err != nil {
		return Rendered{}, err
	}
	params, err := ResolveParams(s.Params, in.Args, in.Random)
	if err != nil {
		return Rendered{}, fmt.Errorf("script %q: %w", s.Name, err)
	}
	values, secrets, err := MergeValues(in.Globals, in.Locals, params)
	if err != nil {
		return Rendered{}, fmt.Errorf("script %q: %w", s.Name, err)
	}
	r := Rendered{ScriptID: s.ID, ScriptName: s.Name, Kind: s.Kind, Body: s.Body, Values: values, Notice: s.Notice}
	switch s.Kind {
	case Shell:
		r.Preamble = ShellPreamble(values)
	case PowerShell:
		r.Preamble = PowerShellPreamble(values)
	case Ansible:
		r.ExtraVars = AnsibleExtraVars(values)
	}
	if s.BodyHidden {
		for _, line := range strings.Split(s.Body, "\n") {
			if line = strings.TrimSpace(line); len(line) >= minMaskedLine {
				secrets = append(secrets, line)
			}
		}
	}
	r.Secrets = secrets
	return r, nil
}

// ShellQuote quotes v for a POSIX shell: inside single quotes nothing is
// special except the quote itself, which is closed, escaped and reopened.
func ShellQuote(v string) string {
	return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'"
}

// shellPreambleHeader marks where the generated assignments start; a script
// author sees it in traces and knows the lines are data.
const shellPreambleHeader = "# virtplane: values as data; the script body follows unchanged\n"

// ShellPreamble assigns and exports every value. Names are identifiers
// (checked earlier); values are single-quoted, so no value can end the
// assignment or start a command.
func ShellPreamble(values []Value) string {
	var b strings.Builder
	b.WriteString(shellPreambleHeader)
	for _, v := range values {
		b.WriteString("export ")
		b.WriteString(v.Name)
		b.WriteByte('=')
		b.WriteString(ShellQuote(v.Value))
		b.WriteByte('\n')
	}
	return b.String()
}

// PowerShellQuote quotes v as a PowerShell verbatim (single-quoted) string.
// PowerShell treats the typographic single quotes U+2018..U+201B as quote
// characters too, so each of them is doubled like the ASCII one.
func PowerShellQuote(v string) string {
	var b strings.Builder
	b.Grow(len(v) + 2)
	b.WriteByte('\'')
	for _, r := range v {
		switch r {
		case '\'', '\u2018', '\u2019', '\u201a', '\u201b':
			b.WriteRune(r)
		}
		b.WriteRune(r)
	}
	b.WriteByte('\'')
	return b.String()
}

const powerShellPreambleHeader = "# virtplane: values as data; the script body follows unchanged\n"

// PowerShellPreamble sets one environment variable per value
// ($env:NAME = '...'), so values never clobber PowerShell's automatic
// variables.
func PowerShellPreamble(values []Value) string {
	var b strings.Builder
	b.WriteString(powerShellPreambleHeader)
	for _, v := range values {
		b.WriteString("$env:")
		b.WriteString(v.Name)
		b.WriteString(" = ")
		b.WriteString(PowerShellQuote(v.Value))
		b.WriteByte('\n')
	}
	return b.String()
}

// YAMLQuote quotes v as a YAML double-quoted scalar made of printable ASCII
// only: everything else is escaped (\uXXXX, \UXXXXXXXX), so no reader sees
// a line break, a control character or an unpaired surrogate.
func YAMLQuote(v string) string {
	var b strings.Builder
	b.Grow(len(v) + 2)
	b.WriteByte('"')
	for _, r := range v {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r >= 0x20 && r < 0x7f:
			b.WriteRune(r)
		case r == utf8.RuneError:
			b.WriteString(`\uFFFD`)
		case r <= 0xffff:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			fmt.Fprintf(&b, `\U%08X`, r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// AnsibleExtraVars renders the values as a YAML mapping for
// `ansible-playbook -e @file`. The !unsafe tag tells Ansible never to
// template the value, so "{{ lookup('pipe', ...) }}" stays text.
func AnsibleExtraVars(values []Value) string {
	var b strings.Builder
	b.WriteString("---\n")
	for _, v := range values {
		b.WriteString(v.Name)
		b.WriteString(": !unsafe ")
		b.WriteString(YAMLQuote(v.Value))
		b.WriteByte('\n')
	}
	return b.String()
}
