package runtime

import (
	"go/ast"
	"go/parser"
	"go/token"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestDriftKindsListsEveryConstant: metrics create a series at zero for
// each of DriftKinds, so a Drift* constant missing from it would appear
// only once first counted. The compiler checks every use by name; this
// checks the list.
func TestDriftKindsListsEveryConstant(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "runtime.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, decl := range f.Decls {
		gd, ok := decl.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				if !strings.HasPrefix(name.Name, "Drift") || i >= len(vs.Values) {
					continue
				}
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					continue
				}
				v, _ := strconv.Unquote(lit.Value)
				found++
				if !slices.Contains(DriftKinds, v) {
					t.Errorf("%s = %q is missing from DriftKinds", name.Name, v)
				}
			}
		}
	}
	if found == 0 || found != len(DriftKinds) {
		t.Errorf("found %d Drift constants, DriftKinds lists %d", found, len(DriftKinds))
	}
}
