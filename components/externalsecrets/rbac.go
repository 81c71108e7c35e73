package externalsecrets

import (
	"fmt"

	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	rbacv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/rbac/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// RBAC the component writes instead of the chart's, narrower.
//
// The controller's right to request tokens: the chart's Role would grant
// serviceaccounts/token create on every account of the namespace
// (rbac.serviceAccountTokenCreate), which would let ESO act as Vault's or
// the jobs' IRSA accounts; the component grants it the Vault auth account
// only.
//
// The cert controller's RBAC, which the component writes instead of the
// chart (certController.rbac.create is off): the chart's ClusterRole lets it
// get, list and watch every Secret of the cluster, while it only reads and
// rewrites the webhook's certificate Secret, by name and without a cache
// (cmd/controller/certcontroller.go of external-secrets v2.9.0 disables
// the client cache for Secrets). What it needs cluster-wide (the CRDs and
// webhook configurations it injects the CA into, the webhook's endpoints,
// events) stays in a ClusterRole without Secrets; the Secret and its
// leader-election lease are granted in the namespace only.

// webhookConfigurations are the chart's ValidatingWebhookConfigurations,
// whose names it fixes (templates/validatingwebhook.yaml).
var webhookConfigurations = []string{"secretstore-validate", "externalsecret-validate"}

// injectedCRDs are the CRDs whose conversion webhook CA the cert controller
// keeps: those the chart passes as --crd-names when it renders no
// ClusterSecretStore CRD.
var injectedCRDs = []string{"externalsecrets.external-secrets.io", "secretstores.external-secrets.io"}

type rule struct {
	groups, resources, names, verbs []string
}

func (r rule) args() rbacv1.PolicyRuleArgs {
	a := rbacv1.PolicyRuleArgs{
		ApiGroups: pulumi.ToStringArray(r.groups),
		Resources: pulumi.ToStringArray(r.resources),
		Verbs:     pulumi.ToStringArray(r.verbs),
	}
	if len(r.names) > 0 {
		a.ResourceNames = pulumi.ToStringArray(r.names)
	}
	return a
}

func rulesArgs(rules []rule) rbacv1.PolicyRuleArray {
	out := make(rbacv1.PolicyRuleArray, 0, len(rules))
	for _, r := range rules {
		out = append(out, r.args())
	}
	return out
}

// certControllerClusterRules are the cert controller's cluster-wide needs:
// no Secrets.
func certControllerClusterRules() []rule {
	read := []string{"get", "list", "watch"}
	return []rule{
		{groups: []string{"apiextensions.k8s.io"}, resources: []string{"customresourcedefinitions"}, verbs: read},
		{groups: []string{"apiextensions.k8s.io"}, resources: []string{"customresourcedefinitions"}, names: injectedCRDs, verbs: []string{"update", "patch"}},
		{groups: []string{"admissionregistration.k8s.io"}, resources: []string{"validatingwebhookconfigurations"}, verbs: read},
		{groups: []string{"admissionregistration.k8s.io"}, resources: []string{"validatingwebhookconfigurations"}, names: webhookConfigurations, verbs: []string{"update", "patch"}},
		{groups: []string{""}, resources: []string{"endpoints"}, verbs: read},
		{groups: []string{"discovery.k8s.io"}, resources: []string{"endpointslices"}, verbs: read},
		{groups: []string{""}, resources: []string{"events"}, verbs: []string{"create", "patch"}},
	}
}

// certControllerNamespaceRules are its needs in the namespace: the
// webhook's certificate Secret, by name, and the leader-election lease.
func certControllerNamespaceRules(name string) []rule {
	return []rule{
		{groups: []string{""}, resources: []string{"secrets"}, names: []string{webhookSecretName(name)}, verbs: []string{"get", "update", "patch"}},
		{groups: []string{"coordination.k8s.io"}, resources: []string{"leases"}, verbs: []string{"get", "create", "update", "patch"}},
	}
}

// webhookSecretName is the chart's Secret of the webhook's certificate:
// "<fullname>-webhook", fullname being the release name here.
func webhookSecretName(name string) string { return name + "-webhook" }

// certControllerAccount is the cert controller's service account, which
// the release's values name.
func certControllerAccount(name string) string { return name + "-cert-controller" }

// newCertControllerRBAC creates the cert controller's ClusterRole and Role
// and binds them to its service account in the namespace.
func newCertControllerRBAC(ctx *pulumi.Context, name string, namespace pulumi.StringInput, opts ...pulumi.ResourceOption) ([]pulumi.Resource, error) {
	account := certControllerAccount(name)
	subjects := rbacv1.SubjectArray{rbacv1.SubjectArgs{Kind: pulumi.String("ServiceAccount"), Name: pulumi.String(account), Namespace: namespace}}
	ref := func(kind string) rbacv1.RoleRefArgs {
		return rbacv1.RoleRefArgs{ApiGroup: pulumi.String("rbac.authorization.k8s.io"), Kind: pulumi.String(kind), Name: pulumi.String(account)}
	}
	clusterRole, err := rbacv1.NewClusterRole(ctx, name+"-cert-controller", &rbacv1.ClusterRoleArgs{
		Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(account)},
		Rules:    rulesArgs(certControllerClusterRules()),
	}, opts...)
	if err != nil {
		return nil, fmt.Errorf("creating cert controller cluster role: %w", err)
	}
	clusterBinding, err := rbacv1.NewClusterRoleBinding(ctx, name+"-cert-controller", &rbacv1.ClusterRoleBindingArgs{
		Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(account)},
		RoleRef:  ref("ClusterRole"),
		Subjects: subjects,
	}, opts...)
	if err != nil {
		return nil, fmt.Errorf("creating cert controller cluster role binding: %w", err)
	}
	role, err := rbacv1.NewRole(ctx, name+"-cert-controller", &rbacv1.RoleArgs{
		Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(account), Namespace: namespace},
		Rules:    rulesArgs(certControllerNamespaceRules(name)),
	}, opts...)
	if err != nil {
		return nil, fmt.Errorf("creating cert controller role: %w", err)
	}
	binding, err := rbacv1.NewRoleBinding(ctx, name+"-cert-controller", &rbacv1.RoleBindingArgs{
		Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(account), Namespace: namespace},
		RoleRef:  ref("Role"),
		Subjects: subjects,
	}, opts...)
	if err != nil {
		return nil, fmt.Errorf("creating cert controller role binding: %w", err)
	}
	return []pulumi.Resource{clusterRole, clusterBinding, role, binding}, nil
}

// newControllerTokenRBAC lets the ESO controller (the chart's service
// account, named after the release) request tokens for the Vault auth
// account, and no other, in the namespace.
func newControllerTokenRBAC(ctx *pulumi.Context, name string, namespace pulumi.StringInput, vaultAuthAccount pulumi.StringOutput, opts ...pulumi.ResourceOption) ([]pulumi.Resource, error) {
	objectName := name + "-token-request"
	role, err := rbacv1.NewRole(ctx, objectName, &rbacv1.RoleArgs{
		Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(objectName), Namespace: namespace},
		Rules: rbacv1.PolicyRuleArray{rbacv1.PolicyRuleArgs{
			ApiGroups:     pulumi.ToStringArray([]string{""}),
			Resources:     pulumi.ToStringArray([]string{"serviceaccounts/token"}),
			ResourceNames: pulumi.StringArray{vaultAuthAccount},
			Verbs:         pulumi.ToStringArray([]string{"create"}),
		}},
	}, opts...)
	if err != nil {
		return nil, fmt.Errorf("creating token request role: %w", err)
	}
	binding, err := rbacv1.NewRoleBinding(ctx, objectName, &rbacv1.RoleBindingArgs{
		Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(objectName), Namespace: namespace},
		RoleRef:  rbacv1.RoleRefArgs{ApiGroup: pulumi.String("rbac.authorization.k8s.io"), Kind: pulumi.String("Role"), Name: pulumi.String(objectName)},
		Subjects: rbacv1.SubjectArray{rbacv1.SubjectArgs{Kind: pulumi.String("ServiceAccount"), Name: pulumi.String(name), Namespace: namespace}},
	}, opts...)
	if err != nil {
		return nil, fmt.Errorf("creating token request role binding: %w", err)
	}
	return []pulumi.Resource{role, binding}, nil
}
