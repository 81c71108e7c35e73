// Package recorder runs a Pulumi program against a mock resource monitor that
// keeps every registration, so tests and the offline render can inspect exactly
// what the program would ask the engine to create. Nothing leaves the process:
// no engine, no cloud, no cluster.
package recorder

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/tokens"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Project is the Pulumi project name the program runs under.
const Project = "secrets-platform"

// MockAccountID is the AWS account the mocks pretend to run in when the
// stack's config names none (components built in isolation).
const MockAccountID = "123456789012"

// accountConfigKey holds the stack's AWS account: unseal.accountId.
const accountConfigKey = Project + ":unseal"

// MockRegion is the AWS region mocks use when a resource does not say.
const MockRegion = "us-east-1"

// Resource is one registration seen by the mock monitor.
type Resource struct {
	URN            string
	Type           string
	Name           string
	ID             string
	Parent         string
	Provider       string
	Custom         bool
	Protect        bool
	RetainOnDelete bool
	DependsOn      []string
	// CreateTimeout and UpdateTimeout are the customTimeouts option's.
	CreateTimeout, UpdateTimeout string
	Inputs                       resource.PropertyMap
	// Outputs is the state the mock answered with: the inputs plus the
	// computed properties a real provider would add (ARNs, PEMs, ...).
	Outputs resource.PropertyMap
}

// Monitor is a pulumi.MockResourceMonitor that records every resource.
type Monitor struct {
	stack string
	// Clock, when set, is when the mock's certificates start; zero means
	// now, which keeps them valid for the tests that verify them. The
	// offline render sets RenderClock, so two renders are identical.
	Clock time.Time

	mu sync.Mutex
	// account is the AWS account the credentials would belong to: the
	// one the stack's config names, set by Run.
	account   string
	resources []Resource
	failures  map[string]error
}

var _ pulumi.MockResourceMonitor = (*Monitor)(nil)

// NewMonitor returns an empty recording monitor for the given stack.
func NewMonitor(stack string) *Monitor {
	return &Monitor{stack: stack, failures: map[string]error{}}
}

// FailOn makes the registration of the resource with this type token and
// name fail with err, to exercise error paths.
func (m *Monitor) FailOn(typeToken, name string, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.failures[typeToken+"::"+name] = err
}

// NewResource records the registration and answers with plausible state.
func (m *Monitor) NewResource(args pulumi.MockResourceArgs) (string, resource.PropertyMap, error) {
	m.mu.Lock()
	failure := m.failures[args.TypeToken+"::"+args.Name]
	m.mu.Unlock()
	if failure != nil {
		return "", nil, failure
	}

	id := args.Name + "-id"
	if args.ID != "" {
		id = args.ID
	}
	outputs, err := m.mockOutputs(args.TypeToken, args.Name, id, args.Inputs)
	if err != nil {
		return "", nil, fmt.Errorf("mocking %s %q: %w", args.TypeToken, args.Name, err)
	}

	rec := Resource{
		Type:    args.TypeToken,
		Name:    args.Name,
		ID:      id,
		Custom:  args.Custom,
		Inputs:  args.Inputs,
		Outputs: outputs,
	}
	if rpc := args.RegisterRPC; rpc != nil {
		rec.Parent = rpc.GetParent()
		rec.Provider = rpc.GetProvider()
		rec.Protect = rpc.GetProtect()
		rec.RetainOnDelete = rpc.GetRetainOnDelete()
		rec.DependsOn = append([]string(nil), rpc.GetDependencies()...)
		if t := rpc.GetCustomTimeouts(); t != nil {
			rec.CreateTimeout, rec.UpdateTimeout = t.GetCreate(), t.GetUpdate()
		}
		rec.URN = m.urn(rpc.GetParent(), args.TypeToken, args.Name)
	}
	if !args.Custom {
		// Components have no provider-side identity.
		id = ""
	}

	m.mu.Lock()
	m.resources = append(m.resources, rec)
	m.mu.Unlock()
	return id, outputs, nil
}

// Call answers the provider functions the program invokes.
func (m *Monitor) Call(args pulumi.MockCallArgs) (resource.PropertyMap, error) {
	switch args.Token {
	case "aws:index/getCallerIdentity:getCallerIdentity":
		account := m.Account()
		return resource.NewPropertyMapFromMap(map[string]any{
			"accountId": account,
			"arn":       "arn:aws:iam::" + account + ":user/mock",
			"userId":    "MOCK",
			"id":        account,
		}), nil
	case "aws:index/getPartition:getPartition":
		return resource.NewPropertyMapFromMap(map[string]any{
			"partition": "aws", "dnsSuffix": "amazonaws.com", "id": "aws",
		}), nil
	}
	return nil, fmt.Errorf("recorder: no mock for function %s", args.Token)
}

// Account is the AWS account the mocks answer for: the caller identity's,
// and the account of every ARN they make up. It is the one the stack's
// config names (unseal.accountId), as that stack's credentials would
// belong to it, so a render shows one account; MockAccountID without one.
func (m *Monitor) Account() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.account == "" {
		return MockAccountID
	}
	return m.account
}

// Resources returns the recorded registrations in registration order.
func (m *Monitor) Resources() []Resource {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Resource(nil), m.resources...)
}

// ByType returns the recorded resources with this type token.
func (m *Monitor) ByType(typeToken string) []Resource {
	var out []Resource
	for _, r := range m.Resources() {
		if r.Type == typeToken {
			out = append(out, r)
		}
	}
	return out
}

// Find returns the resource with this type token and name.
func (m *Monitor) Find(typeToken, name string) (Resource, bool) {
	for _, r := range m.Resources() {
		if r.Type == typeToken && r.Name == name {
			return r, true
		}
	}
	return Resource{}, false
}

// ByURN indexes the recorded resources by URN.
func (m *Monitor) ByURN() map[string]Resource {
	out := map[string]Resource{}
	for _, r := range m.Resources() {
		out[r.URN] = r
	}
	return out
}

// Tree renders the parent/child hierarchy, one resource a line, indented
// under its parent, children sorted by type then name.
func (m *Monitor) Tree() string {
	children := map[string][]Resource{}
	for _, r := range m.Resources() {
		children[r.Parent] = append(children[r.Parent], r)
	}
	for _, list := range children {
		sort.Slice(list, func(i, j int) bool {
			if list[i].Type != list[j].Type {
				return list[i].Type < list[j].Type
			}
			return list[i].Name < list[j].Name
		})
	}
	var b strings.Builder
	var walk func(parent string, depth int)
	walk = func(parent string, depth int) {
		for _, r := range children[parent] {
			flags := ""
			if r.Protect {
				flags += " [protect]"
			}
			if r.RetainOnDelete {
				flags += " [retainOnDelete]"
			}
			fmt.Fprintf(&b, "%s%s %s%s\n", strings.Repeat("  ", depth), r.Type, r.Name, flags)
			walk(r.URN, depth+1)
		}
	}
	stackURN := m.urn("", string(resource.RootStackType), Project+"-"+m.stack)
	fmt.Fprintf(&b, "%s %s-%s\n", resource.RootStackType, Project, m.stack)
	walk(stackURN, 1)
	return b.String()
}

// RenderClock is the fixed start of the certificates in an offline render.
var RenderClock = time.Date(2026, time.January, 1, 0, 0, 0, 0, time.UTC)

func (m *Monitor) now() time.Time {
	if m.Clock.IsZero() {
		return time.Now()
	}
	return m.Clock
}

func (m *Monitor) urn(parent, typ, name string) string {
	parentType := tokens.Type("")
	if p := resource.URN(parent); p != "" && p.QualifiedType() != resource.RootStackType {
		parentType = p.QualifiedType()
	}
	return string(resource.NewURN(tokens.QName(m.stack), tokens.PackageName(Project), parentType, tokens.Type(typ), name))
}
