// Package externalsecrets provides ExternalSecretsStack: the External Secrets
// Operator (ESO) installed from its Helm chart, a dedicated service account
// that is ESO's only identity towards Vault, a SecretStore (or
// ClusterSecretStore) that reaches Vault over HTTPS and trusts only Vault's
// CA, and the ExternalSecrets that copy Vault entries into Kubernetes Secrets.
//
// The chart installs cluster-scoped objects with fixed names (its CRDs and
// the ValidatingWebhookConfigurations "secretstore-validate" and
// "externalsecret-validate"), so one cluster holds one ExternalSecretsStack;
// every namespaced name derives from the component name.
package externalsecrets

import (
	"errors"
	"fmt"
	"strings"

	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apiextensions"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	helmv3 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/helm/v3"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/secrets-platform/secrets-platform/components/kube"
)

// TypeToken is the Pulumi type of the ExternalSecretsStack component.
const TypeToken = "platform:externalsecrets:ExternalSecretsStack"

// Defaults applied to empty Args fields.
const (
	DefaultChartVersion            = "2.9.0"
	DefaultChartRepo               = "https://charts.external-secrets.io"
	DefaultVaultAuthServiceAccount = "external-secrets-vault-auth"
	DefaultKVVersion               = "v2"
	DefaultAuthMountPath           = "kubernetes"
	// DefaultRefreshInterval is the seed's interval (quick win 1: 1h to 5m).
	DefaultRefreshInterval = "5m"
	DefaultTimeoutSeconds  = 600
)

// ESO API of the custom resources (DESIGN decision 4: v1beta1 is no longer
// served) and the kinds this component creates.
const (
	APIVersion             = "external-secrets.io/v1"
	KindSecretStore        = "SecretStore"
	KindClusterSecretStore = "ClusterSecretStore"
	KindExternalSecret     = "ExternalSecret"
)

// ExternalSecretsStackArgs configures ExternalSecretsStack. Plain fields
// decide names and which resources exist; the Vault address, its CA and the
// namespace are inputs because they come from other components.
type ExternalSecretsStackArgs struct {
	// Namespace is the workload namespace (from NamespaceGuardrails). ESO,
	// the dedicated service account, the store (unless cluster-scoped) and
	// the ExternalSecrets all live in it. Required.
	Namespace pulumi.StringInput
	// ChartVersion of the external-secrets chart; DefaultChartVersion when empty.
	ChartVersion string
	// ChartRepo is the chart repository; DefaultChartRepo when empty.
	ChartRepo string
	// Replicas of the controller and of the webhook (0 means 1). Above one,
	// the chart's PodDisruptionBudgets (minAvailable 1) and the controller's
	// leader election are turned on.
	Replicas int
	// Resources are the requests and limits of the three ESO workloads.
	Resources ComponentResources
	// PrometheusOperator says the monitoring stack is installed: the chart
	// then creates its ServiceMonitors. Its Grafana dashboard stays off: the
	// chart would put it in the workload namespace, which Grafana's sidecar
	// does not watch, and the Observability component's dashboards cover ESO.
	PrometheusOperator bool
	// MonitorLabels are put on the chart's ServiceMonitors: the labels the
	// Prometheus of the cluster selects monitors by, the same ones the
	// Observability component puts on its own.
	MonitorLabels map[string]string
	// VaultAuthServiceAccount names the dedicated service account ESO
	// authenticates to Vault as; DefaultVaultAuthServiceAccount when empty.
	VaultAuthServiceAccount string
	// Store is the SecretStore that points at Vault.
	Store StoreArgs
	// ExternalSecrets are synced from Vault through Store.
	ExternalSecrets []ExternalSecretArgs
	// VaultAddress is Vault's https:// address (from HardenedVault). Required.
	VaultAddress pulumi.StringInput
	// VaultCACertPEM is the PEM of the CA that signed Vault's certificate
	// (from HardenedVault); the store trusts it and nothing else. Required.
	VaultCACertPEM pulumi.StringInput
	// DependsOn are resources the store and the ExternalSecrets wait for
	// besides the ESO release, typically the Vault Helm release.
	DependsOn []pulumi.Resource
	// TimeoutSeconds bounds the Helm install/upgrade wait;
	// DefaultTimeoutSeconds when 0.
	TimeoutSeconds int
}

// ComponentResources are the requests and limits of ESO's three workloads.
type ComponentResources struct {
	Controller     kube.Resources
	Webhook        kube.Resources
	CertController kube.Resources
}

// StoreArgs describes the Vault store.
type StoreArgs struct {
	// Name is the store's metadata.name, e.g. "vault-backend". Required.
	Name string
	// Cluster makes it a ClusterSecretStore instead of a SecretStore.
	Cluster bool
	// Path is the KV mount, e.g. "secret". Required.
	Path string
	// Version of the KV engine, "v1" or "v2"; DefaultKVVersion when empty.
	Version string
	// AuthMountPath is where Vault's Kubernetes auth method is mounted;
	// DefaultAuthMountPath when empty.
	AuthMountPath string
	// Role is the Vault role bound to the dedicated service account. Required.
	Role string
}

// ExternalSecretArgs describes one ExternalSecret.
type ExternalSecretArgs struct {
	// Name is the ExternalSecret's metadata.name, e.g. "postgres-credentials". Required.
	Name string
	// RefreshInterval is a Go duration; DefaultRefreshInterval when empty.
	RefreshInterval string
	// TargetSecret is the Kubernetes Secret ESO creates and owns; Name when empty.
	TargetSecret string
	// VaultKey is the entry read from the store's KV mount, e.g. "database/postgres". Required.
	VaultKey string
	// Data maps fields of the Vault entry to keys of the Secret. At least one.
	Data []DataMapping
}

// DataMapping copies one field of a Vault entry into one Secret key.
type DataMapping struct {
	// SecretKey is the key in the Kubernetes Secret.
	SecretKey string
	// Property is the field of the Vault entry.
	Property string
}

// ExternalSecretsStack is ESO with its Vault store and ExternalSecrets.
type ExternalSecretsStack struct {
	pulumi.ResourceState

	// StoreName is the store's metadata.name.
	StoreName pulumi.StringOutput
	// StoreKind is SecretStore or ClusterSecretStore.
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
	a, err := withDefaults(name, args)
	if err != nil {
		return nil, err
	}

	comp := &ExternalSecretsStack{}
	if err := ctx.RegisterComponentResource(TypeToken, name, comp, opts...); err != nil {
		return nil, fmt.Errorf("registering %s: %w", name, err)
	}
	parent := pulumi.Parent(comp)

	// Tokens for this account are requested by the controller through the
	// TokenRequest API (serviceAccountRef), which the chart's controller
	// ClusterRole allows (serviceaccounts/token: create); no pod mounts it.
	sa, err := corev1.NewServiceAccount(ctx, name+"-vault-auth", &corev1.ServiceAccountArgs{
		Metadata: &metav1.ObjectMetaArgs{
			Name:      pulumi.String(a.VaultAuthServiceAccount),
			Namespace: a.Namespace,
		},
		AutomountServiceAccountToken: pulumi.Bool(false),
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("creating vault auth service account: %w", err)
	}

	values, err := chartValues(name, a)
	if err != nil {
		return nil, err
	}
	release, err := helmv3.NewRelease(ctx, name+"-release", &helmv3.ReleaseArgs{
		Name:           pulumi.String(name),
		Namespace:      a.Namespace,
		Chart:          pulumi.String("external-secrets"),
		Version:        pulumi.String(a.ChartVersion),
		RepositoryOpts: &helmv3.RepositoryOptsArgs{Repo: pulumi.String(a.ChartRepo)},
		Values:         pulumi.ToMap(values),
		// The seed's `wait: true`: the release is done when the pods are
		// ready, and a failed install is rolled back.
		Atomic:    pulumi.Bool(true),
		SkipAwait: pulumi.Bool(false),
		Timeout:   pulumi.Int(a.TimeoutSeconds),
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("creating external-secrets release: %w", err)
	}

	// The CRDs come with the release; the store also needs Vault up and the
	// account it authenticates as.
	storeDeps := dependencies(a.DependsOn, release, sa)
	store, err := newStore(ctx, name+"-store", a, sa.Metadata.Name().Elem(), parent, pulumi.DependsOn(storeDeps))
	if err != nil {
		return nil, fmt.Errorf("creating %s: %w", a.storeKind(), err)
	}

	esDeps := dependencies(a.DependsOn, release, store)
	var esNames, targetNames pulumi.StringArray
	for _, es := range a.ExternalSecrets {
		res, err := newExternalSecret(ctx, name+"-"+es.Name, a, es, parent, pulumi.DependsOn(esDeps))
		if err != nil {
			return nil, fmt.Errorf("creating external secret %s: %w", es.Name, err)
		}
		target := es.TargetSecret
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

func (a *ExternalSecretsStackArgs) storeKind() string {
	if a.Store.Cluster {
		return KindClusterSecretStore
	}
	return KindSecretStore
}

// withDefaults checks what the component cannot work without and returns a
// copy of args with the defaults filled in. Value checks (durations, names
// such as "default" for the service account) are the stacks package's job.
func withDefaults(name string, args *ExternalSecretsStackArgs) (*ExternalSecretsStackArgs, error) {
	if args == nil {
		return nil, errors.New("externalsecrets: args are required")
	}
	// The name becomes the Helm release name and the prefix of every object
	// the chart creates (fullnameOverride); Helm caps release names at 53.
	if errs := validation.IsDNS1123Label(name); len(errs) > 0 || len(name) > 53 {
		return nil, fmt.Errorf("externalsecrets: name %q must be a DNS label of at most 53 characters (it is the Helm release name)", name)
	}
	a := *args
	switch {
	case a.Namespace == nil:
		return nil, errors.New("externalsecrets: Namespace is required")
	case a.VaultAddress == nil:
		return nil, errors.New("externalsecrets: VaultAddress is required")
	case a.VaultCACertPEM == nil:
		return nil, errors.New("externalsecrets: VaultCACertPEM is required")
	case a.Store.Name == "":
		return nil, errors.New("externalsecrets: Store.Name is required")
	case a.Store.Path == "":
		return nil, errors.New("externalsecrets: Store.Path (the Vault KV mount) is required")
	case a.Store.Role == "":
		return nil, errors.New("externalsecrets: Store.Role (the Vault role) is required")
	}
	if a.ChartVersion == "" {
		a.ChartVersion = DefaultChartVersion
	}
	if a.ChartRepo == "" {
		a.ChartRepo = DefaultChartRepo
	}
	if a.Replicas == 0 {
		a.Replicas = 1
	}
	if a.Replicas < 0 {
		return nil, fmt.Errorf("externalsecrets: Replicas %d is negative", a.Replicas)
	}
	if a.VaultAuthServiceAccount == "" {
		a.VaultAuthServiceAccount = DefaultVaultAuthServiceAccount
	}
	if a.Store.Version == "" {
		a.Store.Version = DefaultKVVersion
	}
	if a.Store.AuthMountPath == "" {
		a.Store.AuthMountPath = DefaultAuthMountPath
	}
	if a.TimeoutSeconds == 0 {
		a.TimeoutSeconds = DefaultTimeoutSeconds
	}

	seen := map[string]bool{}
	a.ExternalSecrets = make([]ExternalSecretArgs, len(args.ExternalSecrets))
	for i, es := range args.ExternalSecrets {
		switch {
		case es.Name == "":
			return nil, fmt.Errorf("externalsecrets: ExternalSecrets[%d].Name is required", i)
		case seen[es.Name]:
			return nil, fmt.Errorf("externalsecrets: ExternalSecrets[%d].Name %q is listed twice", i, es.Name)
		case es.VaultKey == "":
			return nil, fmt.Errorf("externalsecrets: ExternalSecrets[%d] (%s): VaultKey is required", i, es.Name)
		case len(es.Data) == 0:
			return nil, fmt.Errorf("externalsecrets: ExternalSecrets[%d] (%s): Data needs at least one mapping", i, es.Name)
		}
		for j, d := range es.Data {
			if strings.TrimSpace(d.SecretKey) == "" || strings.TrimSpace(d.Property) == "" {
				return nil, fmt.Errorf("externalsecrets: ExternalSecrets[%d] (%s): Data[%d] needs both SecretKey and Property", i, es.Name, j)
			}
		}
		seen[es.Name] = true
		if es.RefreshInterval == "" {
			es.RefreshInterval = DefaultRefreshInterval
		}
		if es.TargetSecret == "" {
			es.TargetSecret = es.Name
		}
		a.ExternalSecrets[i] = es
	}
	return &a, nil
}

// newStore registers the SecretStore or ClusterSecretStore. Its spec waits
// for the Vault address, the CA and the service account's name.
func newStore(ctx *pulumi.Context, resourceName string, a *ExternalSecretsStackArgs, saName pulumi.StringOutput, opts ...pulumi.ResourceOption) (*apiextensions.CustomResource, error) {
	kind := a.storeKind()
	meta := &metav1.ObjectMetaArgs{Name: pulumi.String(a.Store.Name)}
	if !a.Store.Cluster {
		meta.Namespace = a.Namespace
	}
	spec := pulumi.All(a.VaultAddress, a.VaultCACertPEM, saName, a.Namespace).ApplyT(func(v []any) (map[string]any, error) {
		return storeSpec(a.Store, v[0].(string), v[1].(string), v[2].(string), v[3].(string))
	}).(pulumi.MapOutput)
	return apiextensions.NewCustomResource(ctx, resourceName, &apiextensions.CustomResourceArgs{
		ApiVersion:  pulumi.String(APIVersion),
		Kind:        pulumi.String(kind),
		Metadata:    meta,
		OtherFields: map[string]any{"spec": spec},
	}, opts...)
}

// newExternalSecret registers one ExternalSecret in the namespace.
func newExternalSecret(ctx *pulumi.Context, resourceName string, a *ExternalSecretsStackArgs, es ExternalSecretArgs, opts ...pulumi.ResourceOption) (*apiextensions.CustomResource, error) {
	spec, err := externalSecretSpec(es, a.Store.Name, a.storeKind())
	if err != nil {
		return nil, err
	}
	return apiextensions.NewCustomResource(ctx, resourceName, &apiextensions.CustomResourceArgs{
		ApiVersion:  pulumi.String(APIVersion),
		Kind:        pulumi.String(KindExternalSecret),
		Metadata:    &metav1.ObjectMetaArgs{Name: pulumi.String(es.Name), Namespace: a.Namespace},
		OtherFields: map[string]any{"spec": pulumi.ToMap(spec)},
	}, opts...)
}
