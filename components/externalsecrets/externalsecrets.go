// Package externalsecrets provides ExternalSecretsStack: the External Secrets
// Operator (ESO) installed from its Helm chart, a dedicated service account
// that is ESO's only identity towards Vault, a SecretStore that reaches
// Vault over HTTPS and trusts only Vault's CA, and the ExternalSecrets that
// copy Vault entries into Kubernetes Secrets.
//
// ESO is scoped to the namespace: it watches only there, and its rights over
// Secrets and service account tokens are a Role there, not a ClusterRole.
// Its CRDs are kept when the release goes (helm.sh/resource-policy: keep).
//
// The chart installs cluster-scoped objects with fixed names (its CRDs and
// the ValidatingWebhookConfigurations "secretstore-validate" and
// "externalsecret-validate"), so one cluster holds one ExternalSecretsStack;
// every other name derives from the component name.
package externalsecrets

import (
	"errors"
	"fmt"

	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apiextensions"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	helmv3 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/helm/v3"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/secrets-platform/secrets-platform/components/validate"
)

// TypeToken is the Pulumi type of the ExternalSecretsStack component.
const TypeToken = "platform:externalsecrets:ExternalSecretsStack"

// DefaultChartVersion is the external-secrets chart DefaultConfig pins.
const DefaultChartVersion = "2.9.0"

// ESO API of the custom resources (DESIGN decision 4: v1beta1 is no longer
// served) and the kinds this component creates.
const (
	APIVersion         = "external-secrets.io/v1"
	KindSecretStore    = "SecretStore"
	KindExternalSecret = "ExternalSecret"
)

// ExternalSecretsStackArgs configures ExternalSecretsStack: its Config and
// the inputs that come from NamespaceGuardrails and HardenedVault.
type ExternalSecretsStackArgs struct {
	Config
	// Namespace is the workload namespace (from NamespaceGuardrails). ESO,
	// the dedicated service account, the store and the ExternalSecrets all
	// live in it, and ESO acts in it only. Required.
	Namespace pulumi.StringInput
	// VaultAddress is Vault's https:// address (from HardenedVault). Required.
	VaultAddress pulumi.StringInput
	// VaultCACertPEM is the PEM of the CA that signed Vault's certificate
	// (from HardenedVault); the store trusts it and nothing else. Required.
	VaultCACertPEM pulumi.StringInput
	// DatabaseMount is the path of Vault's database secrets engine (the
	// bootstrap's), which the database store reads; required when an
	// ExternalSecret sets staticRole.
	DatabaseMount string
	// DependsOn are resources the store and the ExternalSecrets wait for
	// besides the ESO release: what makes Vault answer them (the platform's
	// bootstrap Job).
	DependsOn []pulumi.Resource
}

// ExternalSecretsStack is ESO with its Vault store and ExternalSecrets.
type ExternalSecretsStack struct {
	pulumi.ResourceState

	// StoreName is the store's metadata.name.
	StoreName pulumi.StringOutput
	// StoreKind is the store's kind, SecretStore.
	StoreKind pulumi.StringOutput
	// ServiceAccountName is the dedicated Vault auth service account, the
	// name the Vault role's bound_service_account_names must list.
	ServiceAccountName pulumi.StringOutput
	// ExternalSecretNames are the ExternalSecrets' metadata.names, in Args order.
	ExternalSecretNames pulumi.StringArrayOutput
	// TargetSecretNames are the Secrets ESO writes, in Args order. Each
	// resolves once its ExternalSecret is registered, so a workload that
	// mounts it through this output is created after it.
	TargetSecretNames pulumi.StringArrayOutput
	// Release is the ESO Helm release.
	Release *helmv3.Release
}

// NewExternalSecretsStack installs ESO and creates the service account, the
// store and the ExternalSecrets.
func NewExternalSecretsStack(ctx *pulumi.Context, name string, args *ExternalSecretsStackArgs, opts ...pulumi.ResourceOption) (*ExternalSecretsStack, error) {
	if err := check(name, args); err != nil {
		return nil, err
	}
	a := args

	comp := &ExternalSecretsStack{}
	if err := ctx.RegisterComponentResource(TypeToken, name, comp, opts...); err != nil {
		return nil, fmt.Errorf("registering %s: %w", name, err)
	}
	parent := pulumi.Parent(comp)

	// Tokens for this account are requested by the controller through the
	// TokenRequest API (serviceAccountRef), which the component's Role
	// allows for this account alone (newControllerTokenRBAC); no pod
	// mounts it.
	sa, err := corev1.NewServiceAccount(ctx, name+"-vault-auth", &corev1.ServiceAccountArgs{
		Metadata: &metav1.ObjectMetaArgs{
			Name:      pulumi.String(a.ServiceAccount),
			Namespace: a.Namespace,
		},
		AutomountServiceAccountToken: pulumi.Bool(false),
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("creating vault auth service account: %w", err)
	}

	// The values are checked once before anything is registered; the
	// release's copy names the namespace it is scoped to.
	if _, err := chartValues(name, "", a); err != nil {
		return nil, err
	}
	values := a.Namespace.ToStringOutput().ApplyT(func(namespace string) (map[string]any, error) {
		return chartValues(name, namespace, a)
	}).(pulumi.MapOutput)
	rbac, err := newCertControllerRBAC(ctx, name, a.Namespace, parent)
	if err != nil {
		return nil, err
	}
	tokenRBAC, err := newControllerTokenRBAC(ctx, name, a.Namespace, sa.Metadata.Name().Elem(), parent)
	if err != nil {
		return nil, err
	}
	rbac = append(rbac, tokenRBAC...)
	release, err := helmv3.NewRelease(ctx, name+"-release", &helmv3.ReleaseArgs{
		Name:           pulumi.String(name),
		Namespace:      a.Namespace,
		Chart:          pulumi.String("external-secrets"),
		Version:        pulumi.String(a.ChartVersion),
		RepositoryOpts: &helmv3.RepositoryOptsArgs{Repo: pulumi.String(a.ChartRepo)},
		Values:         values,
		// The seed's `wait: true`: the release is done when the pods are
		// ready, and a failed install is rolled back.
		Atomic:    pulumi.Bool(true),
		SkipAwait: pulumi.Bool(false),
		Timeout:   pulumi.Int(a.TimeoutSeconds),
		// The controllers get their rights before they start.
	}, parent, pulumi.DependsOn(rbac))
	if err != nil {
		return nil, fmt.Errorf("creating external-secrets release: %w", err)
	}

	// The CRDs come with the release; the store also needs Vault up and the
	// account it authenticates as.
	storeDeps := dependencies(a.DependsOn, release, sa)
	store, err := newStore(ctx, name+"-store", a, sa.Metadata.Name().Elem(), parent, pulumi.DependsOn(storeDeps))
	if err != nil {
		return nil, fmt.Errorf("creating %s: %w", KindSecretStore, err)
	}

	esDeps := dependencies(a.DependsOn, release, store)
	var dbDeps []pulumi.Resource
	if a.usesDatabase() {
		dbStore, err := newStore(ctx, name+"-database-store", a.databaseArgs(), sa.Metadata.Name().Elem(), parent, pulumi.DependsOn(storeDeps))
		if err != nil {
			return nil, fmt.Errorf("creating database %s: %w", KindSecretStore, err)
		}
		dbDeps = dependencies(a.DependsOn, release, dbStore)
	}
	var esNames, targetNames pulumi.StringArray
	for _, es := range a.secrets() {
		deps := esDeps
		if es.StaticRole != "" {
			deps = dbDeps
		}
		res, err := newExternalSecret(ctx, name+"-"+es.Name, a, es, parent, pulumi.DependsOn(deps))
		if err != nil {
			return nil, fmt.Errorf("creating external secret %s: %w", es.Name, err)
		}
		target := es.Target
		esNames = append(esNames, res.Metadata.Name().Elem())
		targetNames = append(targetNames, res.URN().ApplyT(func(pulumi.URN) string { return target }).(pulumi.StringOutput))
	}

	comp.Release = release
	comp.StoreName = store.Metadata.Name().Elem()
	comp.StoreKind = store.Kind
	comp.ServiceAccountName = sa.Metadata.Name().Elem()
	comp.ExternalSecretNames = esNames.ToStringArrayOutput()
	comp.TargetSecretNames = targetNames.ToStringArrayOutput()
	if err := ctx.RegisterResourceOutputs(comp, pulumi.Map{
		"storeName":           comp.StoreName,
		"storeKind":           comp.StoreKind,
		"serviceAccountName":  comp.ServiceAccountName,
		"externalSecretNames": comp.ExternalSecretNames,
		"targetSecretNames":   comp.TargetSecretNames,
	}); err != nil {
		return nil, fmt.Errorf("registering outputs of %s: %w", name, err)
	}
	return comp, nil
}

// dependencies is a fresh slice of the component's own dependencies
// followed by the caller's, so no two resources share a backing array.
func dependencies(extra []pulumi.Resource, own ...pulumi.Resource) []pulumi.Resource {
	out := make([]pulumi.Resource, 0, len(own)+len(extra))
	out = append(out, own...)
	return append(out, extra...)
}

// usesDatabase says an ExternalSecret delivers a static role.
func (a *ExternalSecretsStackArgs) usesDatabase() bool {
	for _, s := range a.Secrets {
		if s.StaticRole != "" {
			return true
		}
	}
	return false
}

// databaseArgs are the args with the database store in place of the KV
// store: same server, CA, identity and Vault role, the database mount.
func (a *ExternalSecretsStackArgs) databaseArgs() *ExternalSecretsStackArgs {
	b := *a
	b.Store = databaseStore(a.Store, a.DatabaseStore, a.DatabaseMount)
	return &b
}

// check validates the Config and requires the inputs, before anything is
// registered.
func check(name string, args *ExternalSecretsStackArgs) error {
	if args == nil {
		return errors.New("externalsecrets: args are required")
	}
	problems := validate.Problems(args.Validate(name))
	// The name becomes the Helm release name and the prefix of every object
	// the chart creates (fullnameOverride); Helm caps release names at 53.
	if errs := validation.IsDNS1123Label(name); len(errs) > 0 || len(name) > 53 {
		problems.Addf(name, "the name must be a DNS label of at most 53 characters (it is the Helm release name)")
	}
	problems.Required("Namespace", args.Namespace)
	problems.Required("VaultAddress", args.VaultAddress)
	problems.Required("VaultCACertPEM", args.VaultCACertPEM)
	if args.usesDatabase() {
		problems.NonEmpty("DatabaseMount", args.DatabaseMount)
	}
	return validate.Err("externalsecrets "+name+": invalid args", problems)
}

// newStore registers the SecretStore in the namespace. Its spec waits for
// the Vault address, the CA and the service account's name.
func newStore(ctx *pulumi.Context, resourceName string, a *ExternalSecretsStackArgs, saName pulumi.StringOutput, opts ...pulumi.ResourceOption) (*apiextensions.CustomResource, error) {
	spec := pulumi.All(a.VaultAddress, a.VaultCACertPEM, saName).ApplyT(func(v []any) (map[string]any, error) {
		return storeSpec(a.Store, v[0].(string), v[1].(string), v[2].(string))
	}).(pulumi.MapOutput)
	return apiextensions.NewCustomResource(ctx, resourceName, &apiextensions.CustomResourceArgs{
		ApiVersion:  pulumi.String(APIVersion),
		Kind:        pulumi.String(KindSecretStore),
		Metadata:    &metav1.ObjectMetaArgs{Name: pulumi.String(a.Store.Name), Namespace: a.Namespace},
		OtherFields: map[string]any{"spec": spec},
	}, opts...)
}

// newExternalSecret registers one ExternalSecret in the namespace.
func newExternalSecret(ctx *pulumi.Context, resourceName string, a *ExternalSecretsStackArgs, es SecretConfig, opts ...pulumi.ResourceOption) (*apiextensions.CustomResource, error) {
	storeName := a.Store.Name
	if es.StaticRole != "" {
		storeName = a.DatabaseStore
	}
	spec, err := externalSecretSpec(es, storeName, KindSecretStore, a.DatabaseMount)
	if err != nil {
		return nil, err
	}
	return apiextensions.NewCustomResource(ctx, resourceName, &apiextensions.CustomResourceArgs{
		ApiVersion:  pulumi.String(APIVersion),
		Kind:        pulumi.String(KindExternalSecret),
		Metadata:    &metav1.ObjectMetaArgs{Name: pulumi.String(es.Name), Namespace: a.Namespace, Annotations: waitFor(es)},
		OtherFields: map[string]any{"spec": pulumi.ToMap(spec)},
	}, opts...)
}

// waitFor is the annotation that makes the Kubernetes provider await an
// ExternalSecret until ESO reports it Ready (synced), when asked to.
func waitFor(es SecretConfig) pulumi.StringMap {
	if !es.WaitForSync {
		return nil
	}
	return pulumi.StringMap{"pulumi.com/waitFor": pulumi.String("condition=Ready")}
}
