// Package configdoc generates the README's config reference from the Go
// structs of stacks/config.go and, through them, from the Config structs of
// the component packages they name: the keys are their json tags, the types
// their Go types, and the descriptions their doc comments, so the table
// cannot drift from the code.
package configdoc

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"

	"golang.org/x/mod/modfile"
)

// Row is one configuration key.
type Row struct {
	Key, Type, Description string
}

// topLevelKeys are the Config fields whose keys are not a group of the
// project namespace.
var topLevelKeys = map[string]string{"region": "aws:region"}

// declared is a struct type with the imports of the file declaring it, to
// resolve the package-qualified types of its fields.
type declared struct {
	st      *ast.StructType
	imports map[string]string // local name -> import path
	dir     string
}

// reader parses the module's packages on demand.
type reader struct {
	module, root string
	structs      map[string]declared // "<dir>.<Type>"
	parsed       map[string]bool
}

// Reference parses the Go file holding the Config struct and returns one row
// per leaf key, in declaration order. Fields of another package of the
// module (such as backup.Config) are followed into it; json:"-" fields are
// not keys.
func Reference(configFile string) ([]Row, error) {
	root, module, err := findModule(filepath.Dir(configFile))
	if err != nil {
		return nil, err
	}
	r := &reader{module: module, root: root, structs: map[string]declared{}, parsed: map[string]bool{}}
	dir := filepath.Dir(configFile)
	if err := r.parseDir(dir); err != nil {
		return nil, err
	}
	top, ok := r.structs[dir+".Config"]
	if !ok {
		return nil, fmt.Errorf("%s has no Config struct", dir)
	}
	var rows []Row
	if err := r.walk("", top, &rows); err != nil {
		return nil, err
	}
	return rows, nil
}

func (r *reader) walk(prefix string, d declared, rows *[]Row) error {
	for _, field := range d.st.Fields.List {
		if field.Tag == nil || len(field.Names) == 0 {
			continue
		}
		tag := reflect.StructTag(strings.Trim(field.Tag.Value, "`")).Get("json")
		name := strings.Split(tag, ",")[0]
		if name == "-" {
			continue
		}
		key := prefix + name
		if prefix == "" {
			if k, ok := topLevelKeys[name]; ok {
				key = k
			}
		}
		nested, err := r.resolve(d, field.Type)
		if err != nil {
			return err
		}
		if nested != nil {
			if err := r.walk(key+".", *nested, rows); err != nil {
				return err
			}
			continue
		}
		*rows = append(*rows, Row{Key: key, Type: typeString(field.Type), Description: doc(field)})
		// The fields of list items are keys too: group.list[].field.
		if arr, ok := field.Type.(*ast.ArrayType); ok {
			item, err := r.resolve(d, arr.Elt)
			if err != nil {
				return err
			}
			if item != nil {
				if err := r.walk(key+"[].", *item, rows); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// resolve returns the struct a field's type names, in this package or in
// another package of the module, or nil for a leaf.
func (r *reader) resolve(in declared, e ast.Expr) (*declared, error) {
	switch t := e.(type) {
	case *ast.Ident:
		if d, ok := r.structs[in.dir+"."+t.Name]; ok {
			return &d, nil
		}
	case *ast.SelectorExpr:
		pkg, ok := t.X.(*ast.Ident)
		if !ok || t.Sel.Name == "Resources" { // kube.Resources is one leaf
			return nil, nil
		}
		path, ok := in.imports[pkg.Name]
		if !ok || !strings.HasPrefix(path, r.module+"/") {
			return nil, nil
		}
		dir := filepath.Join(r.root, strings.TrimPrefix(path, r.module+"/"))
		if err := r.parseDir(dir); err != nil {
			return nil, err
		}
		if d, ok := r.structs[dir+"."+t.Sel.Name]; ok {
			return &d, nil
		}
	}
	return nil, nil
}

// parseDir records the struct types of a package's non-test files.
func (r *reader) parseDir(dir string) error {
	if r.parsed[dir] {
		return nil
	}
	r.parsed[dir] = true
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return err
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, name, nil, parser.ParseComments)
		if err != nil {
			return err
		}
		imports := map[string]string{}
		for _, imp := range file.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			local := path[strings.LastIndex(path, "/")+1:]
			if imp.Name != nil {
				local = imp.Name.Name
			}
			imports[local] = path
		}
		ast.Inspect(file, func(n ast.Node) bool {
			if ts, ok := n.(*ast.TypeSpec); ok {
				if st, ok := ts.Type.(*ast.StructType); ok {
					r.structs[dir+"."+ts.Name.Name] = declared{st: st, imports: imports, dir: dir}
				}
			}
			return true
		})
	}
	return nil
}

// findModule returns the directory holding go.mod, from dir upwards, and
// the module's path.
func findModule(dir string) (root, module string, err error) {
	dir, err = filepath.Abs(dir)
	if err != nil {
		return "", "", err
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod")) // #nosec G304 -- the go.mod above the config file
		if err == nil {
			if module := modfile.ModulePath(data); module != "" {
				return dir, module, nil
			}
			return "", "", fmt.Errorf("%s/go.mod names no module", dir)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", "", errors.New("no go.mod above the config file")
		}
		dir = parent
	}
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
