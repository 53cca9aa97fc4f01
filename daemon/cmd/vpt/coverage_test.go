package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane/daemon/client"
)

// notInCLI are the operations of client.Operations() that no vpt command
// calls by the method of their row, each with the reason. Keep it short:
// an operation the CLI lacks belongs here only when it makes no sense at
// a command line.
var notInCLI = map[string]struct {
	// instead is the client method vpt calls for the same operation, if
	// any; the test checks that vpt calls it.
	instead, why string
}{
	// vpt login sends the login operation through LoginToken, which names
	// the token it issues ("vpt") and takes --ttl; Login is the
	// two-argument shorthand of the same call, without them.
	"Login": {instead: "LoginToken", why: "vpt login calls the same operation (login) through LoginToken, with a token name and --ttl"},
}

// clientUses returns the names of the methods the vpt package's non-test
// sources call (x.Name(...)) or hand to a helper that calls them
// (resolve(ctx, "cluster", ref, c.GetCluster, c.ListClusters, ...)).
func clientUses(t *testing.T) map[string][]string {
	t.Helper()
	fset := token.NewFileSet()
	entries, err := os.ReadDir(".")
	require.NoError(t, err)
	uses := map[string][]string{}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, e.Name(), nil, 0)
		require.NoError(t, err)
		require.Equal(t, "main", f.Name.Name, e.Name())
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			for _, x := range append([]ast.Expr{call.Fun}, call.Args...) {
				if sel, ok := x.(*ast.SelectorExpr); ok {
					uses[sel.Sel.Name] = append(uses[sel.Sel.Name], fset.Position(sel.Pos()).String())
				}
			}
			return true
		})
	}
	require.NotEmpty(t, uses, "no calls found: is the test run in daemon/cmd/vpt?")
	return uses
}

// TestCLICoversClientOperations fails for an operation of the client's
// table whose method no vpt command calls: a new API operation needs a
// command (or an entry of notInCLI saying why not).
func TestCLICoversClientOperations(t *testing.T) {
	uses := clientUses(t)
	ops := map[string]client.Op{}
	for _, op := range client.Operations() {
		ops[op.Func] = op
	}
	var missing []string
	for fn, op := range ops {
		ex, excluded := notInCLI[fn]
		switch {
		case excluded && len(uses[fn]) > 0:
			t.Errorf("%s (%s) is in notInCLI but vpt calls it at %v: remove the entry", fn, op.ID, uses[fn])
		case excluded && ex.instead != "" && len(uses[ex.instead]) == 0:
			t.Errorf("%s (%s) is in notInCLI because vpt calls %s instead, but vpt does not call %s", fn, op.ID, ex.instead, ex.instead)
		case excluded:
		case len(uses[fn]) == 0:
			missing = append(missing, fn+" ("+op.Method+" "+op.Path+")")
		}
	}
	for fn := range notInCLI {
		if _, ok := ops[fn]; !ok {
			t.Errorf("notInCLI names %s, which is no method of client.Operations(): remove the entry", fn)
		}
	}
	sort.Strings(missing)
	assert.Empty(t, missing, "client methods of client.Operations() that no vpt command calls: add a command (or a notInCLI entry with the reason)")
}
