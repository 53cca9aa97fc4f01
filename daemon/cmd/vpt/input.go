package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/virtplane/virtplane"
)

// readInput reads what a flag names: a file, or stdin for "-".
func (a *app) readInput(flag, path string) (string, error) {
	var b []byte
	var err error
	if path == "-" {
		b, err = io.ReadAll(a.stdin)
	} else {
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return "", virtplane.Errorf(virtplane.ErrInvalidArgument, "--%s: %v", flag, err)
	}
	return string(b), nil
}

// seconds turns a duration flag into the whole seconds the API takes.
func seconds(flag string, d time.Duration) (int, error) {
	if d < 0 || d%time.Second != 0 {
		return 0, usageError{fmt.Errorf("--%s %s: a whole number of seconds, not negative", flag, d)}
	}
	return int(d / time.Second), nil
}

// tagArgs reads the tags of a tags command: the arguments after the
// object's, or none with --none.
func tagArgs(cmd *cobra.Command, args []string, none bool) ([]string, error) {
	tags := args[1:]
	switch {
	case none && len(tags) > 0:
		return nil, usageError{fmt.Errorf("%s: give tags or --none, not both", cmd.CommandPath())}
	case !none && len(tags) == 0:
		return nil, usageError{fmt.Errorf("%s: give the tags (they replace the current ones) or --none", cmd.CommandPath())}
	}
	return append([]string{}, tags...), nil
}

// minArgs is cobra.MinimumNArgs that reports a usage error.
func minArgs(n int, names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < n {
			return usageError{fmt.Errorf("%s takes at least %d argument(s): %s", cmd.CommandPath(), n, strings.Join(names, " "))}
		}
		return nil
	}
}

// excludes reports two flags given together as a usage error.
func excludes(cmd *cobra.Command, a, b string) error {
	if cmd.Flags().Changed(a) && cmd.Flags().Changed(b) {
		return usageError{fmt.Errorf("%s: --%s and --%s exclude each other", cmd.CommandPath(), a, b)}
	}
	return nil
}

// decodeSettings reads JSON or YAML text (YAML is a superset of JSON)
// into v: the keys in ignore are dropped from a mapping (fields the daemon
// keeps itself, as a get prints them), any other key v lacks is an error.
func decodeSettings(flag, text string, v any, ignore ...string) error {
	var x any
	if err := yaml.Unmarshal([]byte(text), &x); err != nil {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "--%s: %v", flag, err)
	}
	if x == nil {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "--%s: empty", flag)
	}
	if m, ok := x.(map[string]any); ok {
		for _, k := range ignore {
			delete(m, k)
		}
	}
	b, err := json.Marshal(x)
	if err != nil {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "--%s: %v", flag, err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "--%s: %v", flag, err)
	}
	return nil
}
