package agent

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// interfacesOf lists the interface types package dir declares.
func interfacesOf(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range file.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.TYPE {
				continue
			}
			for _, s := range g.Specs {
				ts := s.(*ast.TypeSpec)
				if _, ok := ts.Type.(*ast.InterfaceType); ok && ts.Name.IsExported() {
					out = append(out, ts.Name.Name)
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

// TestEveryOptionalInterfaceIsCarried: each optional interface of package
// vmm and storage is in the agent's capability tables and implemented by
// its clients, so a new capability cannot be forgotten (a client lacking
// it would make vmm.As false for every node behind an agent).
func TestEveryOptionalInterfaceIsCarried(t *testing.T) {
	for _, c := range []struct {
		dir    string
		caps   map[string]reflect.Type
		client reflect.Type
		not    []string // interfaces that are not capabilities of the driver
	}{
		{"../vmm", vmmCapabilities(), reflect.TypeFor[*remoteVMM](), []string{"Driver", "CapabilityReporter"}},
		{"../storage", storageCapabilities(), reflect.TypeFor[*remotePool](), []string{"Pool", "CapabilityReporter", "Executor", "StreamExecutor"}},
	} {
		for _, name := range interfacesOf(t, c.dir) {
			if slices.Contains(c.not, name) {
				continue
			}
			it, ok := c.caps[name]
			if !ok {
				t.Errorf("%s.%s is not in the agent's capability table", filepath.Base(c.dir), name)
				continue
			}
			if it.Name() != name {
				t.Errorf("capability %q is the type %v", name, it)
			}
			if !c.client.Implements(it) {
				t.Errorf("%v does not implement %s.%s", c.client, filepath.Base(c.dir), name)
			}
		}
	}
}
