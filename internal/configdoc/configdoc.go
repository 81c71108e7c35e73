// Package configdoc generates the README's config reference from the Go
// structs of stacks/config.go: the keys are their json tags, the types their
// Go types, and the descriptions their doc comments, so the table cannot
// drift from the code.
package configdoc

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"reflect"
	"strings"
)

// Row is one configuration key.
type Row struct {
	Key, Type, Description string
}

// topLevelKeys are the Config fields whose keys are not a group of the
// project namespace.
var topLevelKeys = map[string]string{"region": "aws:region"}

// Reference parses the Go file holding the Config struct and returns one row
// per leaf key, in declaration order.
func Reference(configFile string) ([]Row, error) {
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, configFile, nil, parser.ParseComments)
	if err != nil {
		return nil, err
	}
	structs := map[string]*ast.StructType{}
	ast.Inspect(file, func(n ast.Node) bool {
		if ts, ok := n.(*ast.TypeSpec); ok {
			if st, ok := ts.Type.(*ast.StructType); ok {
				structs[ts.Name.Name] = st
			}
		}
		return true
	})
	root, ok := structs["Config"]
	if !ok {
		return nil, fmt.Errorf("%s has no Config struct", configFile)
	}
	var rows []Row
	var walk func(prefix string, st *ast.StructType)
	walk = func(prefix string, st *ast.StructType) {
		for _, field := range st.Fields.List {
			if field.Tag == nil || len(field.Names) == 0 {
				continue
			}
			tag := reflect.StructTag(strings.Trim(field.Tag.Value, "`")).Get("json")
			name := strings.Split(tag, ",")[0]
			key := prefix + name
			if prefix == "" {
				if k, ok := topLevelKeys[name]; ok {
					key = k
				}
			}
			typ := typeString(field.Type)
			if nested, ok := structs[typ]; ok {
				walk(key+".", nested)
				continue
			}
			rows = append(rows, Row{Key: key, Type: typ, Description: doc(field)})
			// The fields of list items are keys too: group.list[].field.
			if arr, ok := field.Type.(*ast.ArrayType); ok {
				if nested, ok := structs[typeString(arr.Elt)]; ok {
					walk(key+"[].", nested)
				}
			}
		}
	}
	walk("", root)
	return rows, nil
}

// Markdown renders rows as the README's table.
func Markdown(rows []Row) string {
	var b strings.Builder
	b.WriteString("| key | type | description |\n|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", r.Key, r.Type, r.Description)
	}
	return b.String()
}

func doc(field *ast.Field) string {
	text := strings.Join(strings.Fields(field.Doc.Text()), " ")
	return strings.ReplaceAll(text, "|", "\\|")
}

func typeString(e ast.Expr) string {
	switch t := e.(type) {
	case *ast.Ident:
		return t.Name
	case *ast.SelectorExpr:
		if t.Sel.Name == "Resources" {
			return "resources ({requests, limits} of cpu and memory)"
		}
		return t.Sel.Name
	case *ast.ArrayType:
		return "list of " + typeString(t.Elt)
	case *ast.MapType:
		return "map of " + typeString(t.Value)
	}
	return fmt.Sprintf("%T", e)
}
