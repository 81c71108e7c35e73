// Package configkeys finds the configuration a program would silently
// ignore: keys of the project's namespace that it never reads, and fields
// inside a group that its struct does not have. It learns the stack's keys
// the way the Go SDK does, from the config map the engine hands the program
// (pulumi.EnvConfig), or from the context where a mock harness put them.
package configkeys

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"reflect"
	"slices"
	"strings"

	"github.com/agext/levenshtein"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/secrets-platform/secrets-platform/components/validate"
)

type keysKey struct{}

// WithKeys returns ctx carrying the stack's config keys: how a harness that
// runs the program under mocks hands them over, since the engine's
// environment variable is one per process and tests run in parallel.
func WithKeys(ctx context.Context, keys []string) context.Context {
	return context.WithValue(ctx, keysKey{}, slices.Clone(keys))
}

// Keys lists the fully qualified config keys of the stack ("project:key"):
// those on the program's context if a harness put them there, else those of
// the config map the engine passes in the environment.
func Keys(ctx *pulumi.Context) ([]string, error) {
	if keys, ok := ctx.Context().Value(keysKey{}).([]string); ok {
		return keys, nil
	}
	raw := os.Getenv(pulumi.EnvConfig)
	if raw == "" {
		return nil, nil // a stack without any config
	}
	var values map[string]string
	if err := json.Unmarshal([]byte(raw), &values); err != nil {
		return nil, fmt.Errorf("reading the stack's config keys from %s: %w", pulumi.EnvConfig, err)
	}
	return slices.Sorted(maps.Keys(values)), nil
}

// Schema is what a program reads: the fields of its config struct, by json
// name, with their types. Reading a field outside its json name (as
// aws:region is) is said with Skip.
type Schema struct {
	fields map[string]reflect.Type
}

// SchemaOf takes the top-level keys from the json tags of a struct value,
// following embedded structs, minus the names in skip.
func SchemaOf(config any, skip ...string) Schema {
	fields := map[string]reflect.Type{}
	collectFields(reflect.TypeOf(config), fields)
	for _, name := range skip {
		delete(fields, name)
	}
	return Schema{fields: fields}
}

// Unknown returns one problem per key of namespace that the schema does not
// read and per unknown field inside a group's value, each keyed by its whole
// path, saying where it was set (source, for example the stack's file) and
// the nearest known key when one is close. Keys of other namespaces (aws:,
// kubernetes:, pulumi:) are not the program's to judge. value returns a
// key's raw config value.
func (s Schema) Unknown(namespace, source string, keys []string, value func(key string) string) []validate.Problem {
	f := finder{source: source}
	for _, key := range keys {
		name, ok := strings.CutPrefix(key, namespace+":")
		if !ok {
			continue
		}
		typ, known := s.fields[name]
		if !known {
			f.unknownTopLevel(s, namespace, name)
			continue
		}
		// Groups (structs) and lists of them (databases) have fields.
		if structType(typ) == nil && (typ.Kind() != reflect.Slice || structType(typ.Elem()) == nil) {
			continue
		}
		var raw any
		if err := json.Unmarshal([]byte(value(key)), &raw); err != nil {
			continue // not JSON: decoding the group reports it with its key
		}
		f.walk(name, typ, raw)
	}
	return f.problems
}

// finder collects the unknown keys of one config.
type finder struct {
	source   string
	problems validate.Problems
}

// unknown records that path is not read, suggesting the nearest of known
// under the same prefix when it is at most two edits away, or a third of
// name's length for long names (a swap of two letters is two edits).
func (f *finder) unknown(path, prefix, name string, known []string) {
	suggestion := ""
	best := max(2, len(name)/3) + 1
	for _, k := range slices.Sorted(slices.Values(known)) {
		if d := levenshtein.Distance(strings.ToLower(name), strings.ToLower(k), nil); d < best {
			suggestion, best = prefix+k, d
		}
	}
	f.report(path, suggestion)
}

func (f *finder) report(path, suggestion string) {
	msg := "is not a setting of this program (set in " + f.source + ")"
	if suggestion != "" {
		msg += "; did you mean " + suggestion + "?"
	}
	f.problems.Addf(path, "%s", msg)
}

// unknownTopLevel suggests the groups a misplaced field belongs to, or
// else the nearest top-level key.
func (f *finder) unknownTopLevel(s Schema, namespace, name string) {
	names := slices.Sorted(maps.Keys(s.fields))
	var homes []string
	for _, group := range names {
		fields := map[string]reflect.Type{}
		collectFields(s.fields[group], fields)
		if _, ok := fields[name]; ok {
			homes = append(homes, fmt.Sprintf("%s:%s.%s", namespace, group, name))
		}
	}
	if len(homes) > 0 {
		f.report(namespace+":"+name, strings.Join(homes, " or ")+", a field of a group")
		return
	}
	f.unknown(namespace+":"+name, namespace+":", name, names)
}

// walk follows a decoded JSON value along its Go type and reports every
// object key the type has no field for.
func (f *finder) walk(path string, typ reflect.Type, raw any) {
	switch typ.Kind() {
	case reflect.Pointer:
		f.walk(path, typ.Elem(), raw)
	case reflect.Slice, reflect.Array:
		items, _ := raw.([]any)
		for i, item := range items {
			f.walk(validate.Index(path, i), typ.Elem(), item)
		}
	case reflect.Map:
		entries, _ := raw.(map[string]any)
		for _, k := range slices.Sorted(maps.Keys(entries)) {
			f.walk(path+"."+k, typ.Elem(), entries[k])
		}
	case reflect.Struct:
		entries, _ := raw.(map[string]any)
		fields := map[string]reflect.Type{}
		collectFields(typ, fields)
		for _, k := range slices.Sorted(maps.Keys(entries)) {
			ft, ok := lookup(fields, k)
			if !ok {
				f.unknown(path+"."+k, path+".", k, slices.Collect(maps.Keys(fields)))
				continue
			}
			f.walk(path+"."+k, ft, entries[k])
		}
	}
}

// lookup finds a field the way encoding/json does: exact name first, then
// case-insensitively.
func lookup(fields map[string]reflect.Type, name string) (reflect.Type, bool) {
	if t, ok := fields[name]; ok {
		return t, true
	}
	for n, t := range fields {
		if strings.EqualFold(n, name) {
			return t, true
		}
	}
	return nil, false
}

// collectFields maps json names to field types, flattening embedded
// structs as encoding/json does.
func collectFields(typ reflect.Type, into map[string]reflect.Type) {
	typ = structType(typ)
	if typ == nil {
		return
	}
	for i := range typ.NumField() {
		f := typ.Field(i)
		tag := f.Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		if name == "-" || (!f.IsExported() && !f.Anonymous) {
			continue
		}
		if f.Anonymous && name == "" {
			collectFields(f.Type, into)
			continue
		}
		if name == "" {
			name = f.Name
		}
		into[name] = f.Type
	}
}

func structType(typ reflect.Type) reflect.Type {
	for typ != nil && typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	if typ == nil || typ.Kind() != reflect.Struct {
		return nil
	}
	return typ
}
