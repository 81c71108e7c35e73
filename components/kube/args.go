package kube

import (
	"fmt"

	pcorev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	corev1 "k8s.io/api/core/v1"
)

// PodSecurityContextArgs carries a pod security context (such as
// RestrictedPodSecurityContext's) over to the Pulumi type, field by field.
func PodSecurityContextArgs(sc *corev1.PodSecurityContext) *pcorev1.PodSecurityContextArgs {
	out := &pcorev1.PodSecurityContextArgs{
		RunAsNonRoot: boolPtr(sc.RunAsNonRoot),
		RunAsUser:    intPtr(sc.RunAsUser),
		RunAsGroup:   intPtr(sc.RunAsGroup),
		FsGroup:      intPtr(sc.FSGroup),
	}
	if sc.SeccompProfile != nil {
		out.SeccompProfile = &pcorev1.SeccompProfileArgs{Type: pulumi.String(string(sc.SeccompProfile.Type))}
	}
	return out
}

// SecurityContextArgs carries a container security context (such as
// RestrictedContainerSecurityContext's) over to the Pulumi type, field by field.
func SecurityContextArgs(sc *corev1.SecurityContext) *pcorev1.SecurityContextArgs {
	out := &pcorev1.SecurityContextArgs{
		AllowPrivilegeEscalation: boolPtr(sc.AllowPrivilegeEscalation),
		RunAsNonRoot:             boolPtr(sc.RunAsNonRoot),
		RunAsUser:                intPtr(sc.RunAsUser),
		RunAsGroup:               intPtr(sc.RunAsGroup),
		ReadOnlyRootFilesystem:   boolPtr(sc.ReadOnlyRootFilesystem),
	}
	if sc.Capabilities != nil {
		out.Capabilities = &pcorev1.CapabilitiesArgs{
			Add:  capabilities(sc.Capabilities.Add),
			Drop: capabilities(sc.Capabilities.Drop),
		}
	}
	if sc.SeccompProfile != nil {
		out.SeccompProfile = &pcorev1.SeccompProfileArgs{Type: pulumi.String(string(sc.SeccompProfile.Type))}
	}
	return out
}

func boolPtr(b *bool) pulumi.BoolPtrInput {
	if b == nil {
		return nil
	}
	return pulumi.Bool(*b)
}

func intPtr(i *int64) pulumi.IntPtrInput {
	if i == nil {
		return nil
	}
	return pulumi.Int(int(*i))
}

func capabilities(cs []corev1.Capability) pulumi.StringArrayInput {
	if len(cs) == 0 {
		return nil
	}
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = string(c)
	}
	return pulumi.ToStringArray(out)
}

// NewIRSAServiceAccount creates the service account name in namespace,
// annotated with the IAM role its pods assume through IRSA (the EKS webhook
// projects the web identity token), with no API token automounted: the
// pods mount only the tokens they project themselves.
func NewIRSAServiceAccount(ctx *pulumi.Context, resourceName string, name, namespace pulumi.StringInput, labels pulumi.StringMap, roleARN pulumi.StringInput, opts ...pulumi.ResourceOption) (*pcorev1.ServiceAccount, error) {
	sa, err := pcorev1.NewServiceAccount(ctx, resourceName, &pcorev1.ServiceAccountArgs{
		Metadata: &metav1.ObjectMetaArgs{
			Name:        name,
			Namespace:   namespace,
			Labels:      labels,
			Annotations: pulumi.StringMap{"eks.amazonaws.com/role-arn": roleARN},
		},
		AutomountServiceAccountToken: pulumi.Bool(false),
	}, opts...)
	if err != nil {
		return nil, fmt.Errorf("creating service account %s: %w", resourceName, err)
	}
	return sa, nil
}

// Args carries r over to the Pulumi type of a container's resources.
func (r Resources) Args() *pcorev1.ResourceRequirementsArgs {
	return &pcorev1.ResourceRequirementsArgs{
		Requests: pulumi.ToStringMap(r.Requests),
		Limits:   pulumi.ToStringMap(r.Limits),
	}
}
