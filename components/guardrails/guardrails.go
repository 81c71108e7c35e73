// Package guardrails provides NamespaceGuardrails: the namespace the secrets
// platform lives in, with Pod Security admission labels, a ResourceQuota, a
// LimitRange that gives every container requests and limits, and network
// policies that deny everything but the flows the platform needs.
package guardrails

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
	psaapi "k8s.io/pod-security-admission/api"
)

// TypeToken is the Pulumi type of the NamespaceGuardrails component.
const TypeToken = "platform:guardrails:NamespaceGuardrails"

// Pod Security Standard levels a guarded namespace may enforce. Privileged is
// not offered: it would not be a guardrail.
const (
	LevelRestricted = "restricted"
	LevelBaseline   = "baseline"
)

// DefaultPodSecurityVersion is written to the -version labels when no
// version is pinned; it is what Kubernetes assumes when the label is absent.
const DefaultPodSecurityVersion = "latest"

// NamespaceGuardrailsArgs configures NamespaceGuardrails. All fields are
// plain values: they decide names and which resources exist.
type NamespaceGuardrailsArgs struct {
	// Namespace is the name of the namespace to create (required).
	Namespace string
	// PodSecurityLevel is enforced, audited and warned on: "restricted"
	// (the default when empty) or "baseline".
	PodSecurityLevel string
	// PodSecurityVersion pins the policy version of the -version labels,
	// e.g. "v1.33"; empty means "latest".
	PodSecurityVersion string
	// Quota is the ResourceQuota's spec.hard, e.g. "requests.cpu": "8"
	// (required, quantities).
	Quota map[string]string
	// DefaultRequest is the LimitRange's container defaultRequest
	// (e.g. "cpu", "memory"): with a cpu/memory quota, a pod that sets no
	// requests is rejected unless the LimitRange fills them in.
	DefaultRequest map[string]string
	// DefaultLimit is the LimitRange's container default limit.
	DefaultLimit map[string]string
	// Network selects the platform's pods and says where they may talk to.
	Network NetworkArgs
}

// NamespaceGuardrails is a namespace with its admission, quota and network
// guardrails.
type NamespaceGuardrails struct {
	pulumi.ResourceState

	// Namespace is the namespace's name. It resolves only once every
	// guardrail (quota, LimitRange, network policies) is registered, so a
	// workload placed in it with this output never runs unguarded.
	Namespace pulumi.StringOutput
	// QuotaName is the metadata.name of the ResourceQuota.
	QuotaName pulumi.StringOutput
}

// NewNamespaceGuardrails creates the namespace and its guardrails.
func NewNamespaceGuardrails(ctx *pulumi.Context, name string, args *NamespaceGuardrailsArgs, opts ...pulumi.ResourceOption) (*NamespaceGuardrails, error) {
	if args == nil {
		return nil, errors.New("guardrails: args are required")
	}
	level, version, err := podSecurity(args)
	if err != nil {
		return nil, err
	}
	if err := checkQuantities(args); err != nil {
		return nil, err
	}
	policies, err := networkPolicies(name, args.Network)
	if err != nil {
		return nil, err
	}

	comp := &NamespaceGuardrails{}
	if err := ctx.RegisterComponentResource(TypeToken, name, comp, opts...); err != nil {
		return nil, fmt.Errorf("registering %s: %w", name, err)
	}
	parent := pulumi.Parent(comp)

	ns, err := corev1.NewNamespace(ctx, name+"-namespace", &corev1.NamespaceArgs{
		Metadata: &metav1.ObjectMetaArgs{
			Name: pulumi.String(args.Namespace),
			// https://kubernetes.io/docs/concepts/security/pod-security-admission/#pod-security-admission-labels-for-namespaces
			Labels: pulumi.StringMap{
				"pod-security.kubernetes.io/enforce":         pulumi.String(level),
				"pod-security.kubernetes.io/enforce-version": pulumi.String(version),
				"pod-security.kubernetes.io/audit":           pulumi.String(level),
				"pod-security.kubernetes.io/audit-version":   pulumi.String(version),
				"pod-security.kubernetes.io/warn":            pulumi.String(level),
				"pod-security.kubernetes.io/warn-version":    pulumi.String(version),
			},
		},
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("creating namespace: %w", err)
	}
	// Children take the namespace from the Namespace resource, not from
	// args, so each of them depends on it.
	nsName := ns.Metadata.Name().Elem()
	meta := func(objectName string) *metav1.ObjectMetaArgs {
		return &metav1.ObjectMetaArgs{Name: pulumi.String(objectName), Namespace: nsName}
	}

	quota, err := corev1.NewResourceQuota(ctx, name+"-quota", &corev1.ResourceQuotaArgs{
		Metadata: meta(name + "-quota"),
		Spec:     &corev1.ResourceQuotaSpecArgs{Hard: pulumi.ToStringMap(args.Quota)},
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("creating resource quota: %w", err)
	}

	limits, err := corev1.NewLimitRange(ctx, name+"-limits", &corev1.LimitRangeArgs{
		Metadata: meta(name + "-limits"),
		Spec: &corev1.LimitRangeSpecArgs{
			Limits: corev1.LimitRangeItemArray{corev1.LimitRangeItemArgs{
				Type:           pulumi.String("Container"),
				Default:        pulumi.ToStringMap(args.DefaultLimit),
				DefaultRequest: pulumi.ToStringMap(args.DefaultRequest),
			}},
		},
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("creating limit range: %w", err)
	}

	guards := []pulumi.Resource{quota, limits}
	for _, p := range policies {
		np, err := newNetworkPolicy(ctx, p, nsName, parent)
		if err != nil {
			return nil, err
		}
		guards = append(guards, np)
	}

	// URNs are known at preview, unlike IDs: the dependency is carried
	// without making the namespace unknown to dependents.
	all := []any{nsName}
	for _, g := range guards {
		all = append(all, g.URN())
	}
	comp.Namespace = pulumi.All(all...).ApplyT(func(v []any) string {
		return v[0].(string)
	}).(pulumi.StringOutput)
	comp.QuotaName = quota.Metadata.Name().Elem()

	if err := ctx.RegisterResourceOutputs(comp, pulumi.Map{
		"namespace": comp.Namespace,
		"quotaName": comp.QuotaName,
	}); err != nil {
		return nil, fmt.Errorf("registering outputs of %s: %w", name, err)
	}
	return comp, nil
}

// podSecurity returns the level and version for the admission labels.
func podSecurity(args *NamespaceGuardrailsArgs) (level, version string, err error) {
	if args.Namespace == "" {
		return "", "", errors.New("guardrails: Namespace is required")
	}
	if errs := validation.IsDNS1123Label(args.Namespace); len(errs) > 0 {
		return "", "", fmt.Errorf("guardrails: Namespace %q is not a valid namespace name: %s", args.Namespace, strings.Join(errs, "; "))
	}
	level = args.PodSecurityLevel
	switch level {
	case "":
		level = LevelRestricted
	case LevelRestricted, LevelBaseline:
	default:
		return "", "", fmt.Errorf("guardrails: PodSecurityLevel %q is not allowed; use %q or %q", level, LevelRestricted, LevelBaseline)
	}
	version = args.PodSecurityVersion
	if version == "" {
		version = DefaultPodSecurityVersion
	}
	// The admission plugin's own parser: "latest" or "v1.<minor>".
	if _, err := psaapi.ParseVersion(version); err != nil {
		return "", "", fmt.Errorf("guardrails: PodSecurityVersion %q: %w", version, err)
	}
	return level, version, nil
}

// checkQuantities rejects an empty quota and any value that is not a
// Kubernetes quantity, so a typo fails here rather than at the API server.
// A quota on a container resource also needs a LimitRange default for it:
// without one, every pod that does not set it is rejected.
func checkQuantities(args *NamespaceGuardrailsArgs) error {
	if len(args.Quota) == 0 {
		return errors.New("guardrails: Quota is required")
	}
	for _, f := range []struct {
		field string
		m     map[string]string
	}{{"Quota", args.Quota}, {"DefaultRequest", args.DefaultRequest}, {"DefaultLimit", args.DefaultLimit}} {
		for _, k := range sortedKeys(f.m) {
			if _, err := resource.ParseQuantity(f.m[k]); err != nil {
				return fmt.Errorf("guardrails: %s[%s]: %q is not a quantity: %w", f.field, k, f.m[k], err)
			}
		}
	}
	for _, r := range []string{"cpu", "memory", "ephemeral-storage"} {
		_, hasRequest := args.DefaultRequest[r]
		_, hasLimit := args.DefaultLimit[r]
		// A LimitRange without defaultRequest uses the default limit as
		// the request.
		if (has(args.Quota, r) || has(args.Quota, "requests."+r)) && !hasRequest && !hasLimit {
			return fmt.Errorf("guardrails: Quota limits requests of %s, so DefaultRequest (or DefaultLimit) must set %s", r, r)
		}
		if has(args.Quota, "limits."+r) && !hasLimit {
			return fmt.Errorf("guardrails: Quota limits limits.%s, so DefaultLimit must set %s", r, r)
		}
	}
	return nil
}

func has(m map[string]string, key string) bool {
	_, ok := m[key]
	return ok
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
