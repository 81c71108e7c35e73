// Package tests is the mock harness shared by every test in the repository,
// and home of the stack-level tests. It runs programs under the recording
// monitor of internal/recorder and decodes what they registered into the
// types of k8s.io/api, so assertions read like Kubernetes objects.
package tests

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/internals"

	"github.com/secrets-platform/secrets-platform/internal/recorder"
)

// RepoRoot is the repository's top directory, where the stack files live.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

// StackConfig loads Pulumi.<stack>.yaml from the repository, applying
// overrides (fully qualified key to value; nil deletes the key).
func StackConfig(t testing.TB, stack string, overrides map[string]any) recorder.StackConfig {
	t.Helper()
	cfg, err := recorder.LoadStackFile(RepoRoot(), stack)
	if err != nil {
		t.Fatalf("loading stack %s: %v", stack, err)
	}
	for key, value := range overrides {
		if value == nil {
			delete(cfg.Values, key)
			continue
		}
		if err := cfg.Set(key, value); err != nil {
			t.Fatal(err)
		}
	}
	return cfg
}

// Run executes program under mocks and fails the test if it errors.
func Run(t testing.TB, stack string, cfg recorder.StackConfig, program pulumi.RunFunc) *recorder.Monitor {
	t.Helper()
	mon, err := recorder.Run(stack, cfg, program)
	if err != nil {
		t.Fatalf("program failed under mocks: %v", err)
	}
	return mon
}

// RunComponent executes program under mocks with an empty config (the way
// component tests build one component in isolation) and fails the test if
// it errors.
func RunComponent(t testing.TB, program pulumi.RunFunc) *recorder.Monitor {
	t.Helper()
	mon, err := recorder.RunComponent(program)
	if err != nil {
		t.Fatalf("program failed under mocks: %v", err)
	}
	return mon
}

// Await resolves outputs, by key, inside a running program: their values,
// and whether each is known and secret.
func Await(ctx *pulumi.Context, outputs map[string]pulumi.Output) (map[string]internals.UnsafeAwaitOutputResult, error) {
	out := make(map[string]internals.UnsafeAwaitOutputResult, len(outputs))
	for key, o := range outputs {
		r, err := internals.UnsafeAwaitOutput(ctx.Context(), o)
		if err != nil {
			return nil, fmt.Errorf("awaiting %s: %w", key, err)
		}
		out[key] = r
	}
	return out, nil
}

// AwaitStrings resolves string outputs into the variables they are keyed by.
func AwaitStrings(ctx *pulumi.Context, outputs map[*string]pulumi.StringOutput) error {
	for dst, o := range outputs {
		r, err := internals.UnsafeAwaitOutput(ctx.Context(), o)
		if err != nil {
			return err
		}
		*dst, _ = r.Value.(string)
	}
	return nil
}

// MustFind returns the resource with this type and name or fails the test.
func MustFind(t testing.TB, mon *recorder.Monitor, typeToken, name string) recorder.Resource {
	t.Helper()
	r, ok := mon.Find(typeToken, name)
	if !ok {
		t.Fatalf("no %s named %q was registered; registered:\n%s", typeToken, name, mon.Tree())
	}
	return r
}

// Plain turns recorded properties into plain Go values (maps, slices,
// strings, float64, bool), unwrapping secrets and outputs.
func Plain(v resource.PropertyValue) any {
	switch {
	case v.IsSecret():
		return Plain(v.SecretValue().Element)
	case v.IsOutput():
		return Plain(v.OutputValue().Element)
	case v.IsObject():
		out := map[string]any{}
		for k, e := range v.ObjectValue() {
			out[string(k)] = Plain(e)
		}
		return out
	case v.IsArray():
		out := make([]any, 0, len(v.ArrayValue()))
		for _, e := range v.ArrayValue() {
			out = append(out, Plain(e))
		}
		return out
	case v.IsNull(), v.IsComputed():
		return nil
	}
	return v.V
}

// PlainMap is Plain for a whole property map.
func PlainMap(m resource.PropertyMap) map[string]any {
	return Plain(resource.NewObjectProperty(m)).(map[string]any)
}

// Decode converts recorded inputs (or any plain value) into out, typically a
// k8s.io/api type, through JSON, failing the test on error.
func Decode(t testing.TB, in any, out any) {
	t.Helper()
	if m, ok := in.(resource.PropertyMap); ok {
		in = PlainMap(m)
	}
	raw, err := json.Marshal(in)
	if err != nil {
		t.Fatalf("encoding: %v", err)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatalf("decoding into %T: %v\n%s", out, err, raw)
	}
}

// IsSecret reports whether the recorded input key was a secret.
func IsSecret(m resource.PropertyMap, key string) bool {
	v, ok := m[resource.PropertyKey(key)]
	return ok && v.ContainsSecrets()
}

// HelmValues returns the values given to a recorded helm.v3 Release.
func HelmValues(t testing.TB, release recorder.Resource) map[string]any {
	t.Helper()
	v, ok := release.Inputs["values"]
	if !ok {
		t.Fatalf("release %s has no values", release.Name)
	}
	m, _ := Plain(v).(map[string]any)
	return m
}

// Path walks nested maps by keys and returns what it finds, or nil.
func Path(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// PolicyDocument is a parsed IAM or resource policy document, as the
// platform's components write them (Action and Resource always lists).
type PolicyDocument struct {
	Version   string
	Statement []PolicyStatement
}

// PolicyStatement is one statement of a PolicyDocument.
type PolicyStatement struct {
	Sid       string
	Effect    string
	Principal map[string]any
	Action    []string
	Resource  []string
	Condition map[string]map[string]any
}

// ParsePolicy parses the JSON policy document held by inputs[key] and
// checks its language version, failing the test if it is not one.
func ParsePolicy(t testing.TB, inputs map[string]any, key string) PolicyDocument {
	t.Helper()
	raw, ok := inputs[key].(string)
	if !ok {
		t.Fatalf("%s is not a JSON string: %#v", key, inputs[key])
	}
	var p PolicyDocument
	if err := json.Unmarshal([]byte(raw), &p); err != nil {
		t.Fatalf("%s does not parse: %v\n%s", key, err, raw)
	}
	if p.Version != "2012-10-17" {
		t.Errorf("%s version = %q", key, p.Version)
	}
	return p
}

// awsProvider is an explicit provider of the aws package, registered
// without linking that package's huge root into every test binary.
type awsProvider struct{ pulumi.ProviderResourceState }

// AWSProvider registers an AWS provider for region, as stacks.Compose
// does for dr.region, for component tests that take one.
func AWSProvider(ctx *pulumi.Context, name, region string) (pulumi.ProviderResource, error) {
	p := &awsProvider{}
	if err := ctx.RegisterResource("pulumi:providers:aws", name, pulumi.Map{"region": pulumi.String(region)}, p); err != nil {
		return nil, err
	}
	return p, nil
}
