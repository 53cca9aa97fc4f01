package scripts

import (
	"crypto/rand"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/virtplane/virtplane"
)

// ParamType is the type of a parameter's value.
type ParamType string

const (
	// String accepts any text (no NUL byte), optionally matching Pattern.
	String ParamType = "string"
	// Int accepts a decimal integer, optionally within Min and Max.
	Int ParamType = "int"
	// Bool accepts "true" or "false".
	Bool ParamType = "bool"
	// Choice accepts one of Choices.
	Choice ParamType = "choice"
	// Password is a hidden string; with Generate set, a random one is made
	// when the user gives none.
	Password ParamType = "password"
)

// maxValueLen bounds every value: values travel in environment variables.
const maxValueLen = 64 << 10

// Param is a value asked from the user before a run.
type Param struct {
	Name        string
	Description string
	Type        ParamType
	Required    bool
	// Default is used when the user gives no value.
	Default string
	// Pattern, when set, must match the whole value (Go regexp syntax).
	Pattern string
	// Choices lists the accepted values of a Choice parameter.
	Choices []string
	// Min and Max bound an Int parameter when Min < Max.
	Min, Max int64
	// MaxLength bounds the value's length in bytes when positive.
	MaxLength int
	// Hidden values never appear in output, logs or API answers. Password
	// parameters are always hidden.
	Hidden bool
	// Generate is the length of a random value made for a Password
	// parameter the user leaves empty (0: none is made).
	Generate int
}

// IsHidden reports whether the parameter's value must be masked.
func (p Param) IsHidden() bool { return p.Hidden || p.Type == Password }

// Validate checks the parameter's declaration.
func (p Param) Validate() error {
	if err := ValidateName("parameter", p.Name); err != nil {
		return err
	}
	switch p.Type {
	case String, Int, Bool, Password:
	case Choice:
		if len(p.Choices) == 0 {
			return virtplane.Errorf(virtplane.ErrInvalidArgument, "parameter %q: choice without choices", p.Name)
		}
	default:
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "parameter %q type %q: want string, int, bool, choice or password", p.Name, p.Type)
	}
	if p.Pattern != "" {
		if _, err := regexp.Compile(p.Pattern); err != nil {
			return virtplane.Errorf(virtplane.ErrInvalidArgument, "parameter %q pattern: %v", p.Name, err)
		}
	}
	if p.Generate < 0 || p.Generate > 256 || (p.Generate > 0 && p.Type != Password) {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "parameter %q generate %d: only for passwords, 1..256", p.Name, p.Generate)
	}
	if p.Default != "" {
		if err := p.check(p.Default); err != nil {
			return fmt.Errorf("default: %w", err)
		}
	}
	return nil
}

// check validates one value against the declaration. Messages quote the
// value only when the parameter is not hidden.
func (p Param) check(v string) error {
	shown := strconv.Quote(v)
	if p.IsHidden() {
		shown = "(hidden)"
	}
	bad := func(why string) error {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "parameter %q value %s: %s", p.Name, shown, why)
	}
	if len(v) > maxValueLen {
		return bad("too long")
	}
	if p.MaxLength > 0 && len(v) > p.MaxLength {
		return bad(fmt.Sprintf("longer than %d bytes", p.MaxLength))
	}
	if err := checkValue(v); err != nil {
		return bad(err.Error())
	}
	switch p.Type {
	case Int:
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return bad("not a decimal integer")
		}
		if p.Min < p.Max && (n < p.Min || n > p.Max) {
			return bad(fmt.Sprintf("out of range %d..%d", p.Min, p.Max))
		}
	case Bool:
		if v != "true" && v != "false" {
			return bad("want true or false")
		}
	case Choice:
		if !slices.Contains(p.Choices, v) {
			return bad("not one of the choices")
		}
	}
	if p.Pattern != "" {
		re, err := regexp.Compile(`^(?:` + p.Pattern + `)$`)
		if err != nil || !re.MatchString(v) {
			return bad("does not match the pattern")
		}
	}
	return nil
}

// checkValue holds what every value must satisfy to travel as data: no NUL
// (environment strings end at NUL) and valid UTF-8. The UTF-8 rule is the
// same for every kind of script, shell included, although a shell could
// carry raw bytes: Ansible's YAML and PowerShell's UTF-16 cannot, and the
// daemon's JSON API cannot either, so a value that a shell script accepted
// would change meaning, or be refused, once the same script ran as another
// kind or through the API. Refusing it everywhere keeps one value one
// meaning; binary data travels encoded (base64) by the caller's choice.
func checkValue(v string) error {
	for i := 0; i < len(v); i++ {
		if v[i] == 0 {
			return fmt.Errorf("contains a NUL byte at offset %d", i)
		}
	}
	if !utf8.ValidString(v) {
		return fmt.Errorf("not valid UTF-8 (first bad byte at offset %d): values are text; encode binary data, e.g. as base64", firstInvalidUTF8(v))
	}
	return nil
}

// firstInvalidUTF8 returns the offset of the first byte of v that does not
// start a valid UTF-8 sequence, or -1.
func firstInvalidUTF8(v string) int {
	for i := 0; i < len(v); {
		r, n := utf8.DecodeRuneInString(v[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return -1
}

// passwordAlphabet avoids characters that are awkward to type or to paste
// into a connection string, so generated passwords survive copy and paste.
const passwordAlphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"

func generatePassword(r io.Reader, n int) (string, error) {
	out := make([]byte, 0, n)
	buf := make([]byte, 1)
	// Rejection sampling keeps the distribution uniform.
	limit := 256 - 256%len(passwordAlphabet)
	for len(out) < n {
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", virtplane.Errorf(virtplane.ErrUnavailable, "generate password: %v", err)
		}
		if int(buf[0]) < limit {
			out = append(out, passwordAlphabet[int(buf[0])%len(passwordAlphabet)])
		}
	}
	return string(out), nil
}

// ResolveParams checks args against the declared parameters and returns the
// value of every parameter: given, default or generated. An argument for an
// undeclared parameter is an error. random feeds password generation
// (crypto/rand when nil).
func ResolveParams(params []Param, args map[string]string, random io.Reader) ([]Value, error) {
	if random == nil {
		random = rand.Reader
	}
	for name := range args {
		if !slices.ContainsFunc(params, func(p Param) bool { return p.Name == name }) {
			return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "argument %q: no such parameter", name)
		}
	}
	values := make([]Value, 0, len(params))
	for _, p := range params {
		v, given := args[p.Name]
		switch {
		case given && v != "":
		case p.Default != "":
			v = p.Default
		case p.Generate > 0:
			g, err := generatePassword(random, p.Generate)
			if err != nil {
				return nil, err
			}
			v = g
		case p.Required:
			return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "parameter %q: required", p.Name)
		}
		if v != "" || given {
			if err := p.check(v); err != nil {
				return nil, err
			}
		}
		values = append(values, Value{Name: p.Name, Value: v, Hidden: p.IsHidden()})
	}
	return values, nil
}
