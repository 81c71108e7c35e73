// Package guardrails provides NamespaceGuardrails: the namespace the secrets
// platform lives in, with Pod Security admission labels, a ResourceQuota, a
// LimitRange that gives every container requests and limits, and network
// policies that deny everything but the flows the platform needs.
package guardrails

import (
	"errors"
	"fmt"

	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/secrets-platform/secrets-platform/components/validate"
)

// TypeToken is the Pulumi type of the NamespaceGuardrails component.
const TypeToken = "platform:guardrails:NamespaceGuardrails"

// Pod Security Standard levels a guarded namespace may enforce. Privileged is
// not offered: it would not be a guardrail.
const (
	LevelRestricted = "restricted"
	LevelBaseline   = "baseline"
)

// NamespaceGuardrailsArgs configures NamespaceGuardrails: its Config, the
// namespace, and the platform's pods and endpoints. All are plain values:
// they decide names and which resources exist.
type NamespaceGuardrailsArgs struct {
	Config
	// Namespace is the name of the namespace to create (required).
	Namespace string
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
	if err := check(name, args); err != nil {
		return nil, err
	}
	policies, err := networkPolicies(name, args.Network, args.Config)
	if err != nil {
		return nil, err
	}
	level, version := args.PodSecurityLevel, args.PodSecurityVersion

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

// check validates the Config and the namespace's name before anything is
// registered.
func check(name string, args *NamespaceGuardrailsArgs) error {
	problems := validate.Problems(args.Validate(name))
	if args.Namespace == "" {
		problems.Addf("Namespace", "is required")
	} else {
		problems.DNSLabel("Namespace", args.Namespace)
	}
	return validate.Err("guardrails "+name+": invalid args", problems)
}
