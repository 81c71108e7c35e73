// Package vault provides HardenedVault: HashiCorp Vault in HA on integrated
// Raft storage, installed with the official chart, with TLS end to end from
// a pulumi-tls PKI, AWS KMS auto-unseal and pods that meet the restricted
// Pod Security Standard.
package vault

import (
	"errors"
	"fmt"

	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	helmv3 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/helm/v3"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/secrets-platform/secrets-platform/components/kube"
)

// TypeToken is the Pulumi type of the HardenedVault component.
const TypeToken = "platform:vault:HardenedVault"

// Defaults for the zero values of HardenedVaultArgs.
const (
	DefaultChartVersion      = "0.34.1"
	DefaultChartRepo         = "https://helm.releases.hashicorp.com"
	DefaultTimeoutSeconds    = 600
	DefaultStorageSize       = "10Gi"
	DefaultClusterDomain     = "cluster.local"
	DefaultValidityHours     = 8760  // one year
	DefaultEarlyRenewalHours = 720   // re-issue in the last 30 days
	DefaultCAValidityHours   = 87600 // ten years
	// DefaultImage is the server image of chart 0.34.1 (its
	// server.image.tag), set explicitly so a chart bump cannot change the
	// Vault version unseen; the jobs that run the Vault CLI reuse it.
	DefaultImage    = "hashicorp/vault:2.0.4"
	defaultReplicas = 3
)

// HardenedVaultArgs configures HardenedVault. Values are expected to be
// validated by the caller (package stacks); the component only rejects what
// it cannot build at all.
type HardenedVaultArgs struct {
	// Namespace to install into, normally NamespaceGuardrails' output so
	// that Vault waits for its guardrails (required). DNS names, secrets and
	// the release derive from it.
	Namespace pulumi.StringInput
	// Replicas is the number of Raft voters, 3 or 5; 0 means 3.
	Replicas int
	// ChartVersion of hashicorp/vault; "" means DefaultChartVersion.
	ChartVersion string
	// ChartRepo is the Helm repository; "" means DefaultChartRepo.
	ChartRepo string
	// Image is the server image, repository:tag; "" means DefaultImage.
	Image string
	// ServiceAccountName is the name of Vault's service account, which the
	// IRSA role's trust policy names; "" means the component name.
	ServiceAccountName string
	// ServiceAccountRoleARN is the IAM role Vault assumes through IRSA to use
	// the unseal key (required).
	ServiceAccountRoleARN pulumi.StringInput
	// TLS configures the CA and the server certificate.
	TLS TLSArgs
	// Seal is the AWS KMS key that unseals Vault (required).
	Seal SealArgs
	// Resources are the Vault container's requests and limits.
	Resources kube.Resources
	// DataStorageSize is each voter's Raft volume; "" means 10Gi.
	DataStorageSize string
	// AuditStorageSize is each voter's audit log volume; "" means 10Gi.
	AuditStorageSize string
	// StorageClass of both volumes; "" means the cluster's default.
	StorageClass string
	// ClusterDomain is the cluster's DNS domain; "" means cluster.local.
	ClusterDomain string
	// Mlock lets Vault lock its memory: disable_mlock = false and the
	// IPC_LOCK capability, which no Pod Security level but privileged
	// admits. false (the default) is DESIGN decision 1.
	Mlock bool
	// PrometheusOperator turns on the chart's ServiceMonitor, which needs
	// the Prometheus Operator's CRDs in the cluster.
	PrometheusOperator bool
	// TimeoutSeconds bounds the Helm install or upgrade, which waits for
	// readiness; 0 means DefaultTimeoutSeconds.
	TimeoutSeconds int
}

// TLSArgs configures the PKI. With CACertPEM and CAKeyPEM both set the
// server certificate is signed by that CA and no CA is created (bring your
// own CA); with neither, a self-signed CA is created.
type TLSArgs struct {
	// ValidityHours of the server certificate; 0 means 8760.
	ValidityHours int
	// EarlyRenewalHours: `pulumi up` re-issues the server certificate this
	// long before it expires; 0 means 720.
	EarlyRenewalHours int
	// CAValidityHours of the self-signed CA; 0 means 87600.
	CAValidityHours int
	// CAEarlyRenewalHours of the self-signed CA; 0 renews it only when it
	// has expired. The key stays, so certificates it signed stay valid.
	CAEarlyRenewalHours int
	// Organization in the certificates' subjects; optional.
	Organization string
	// CACertPEM is the certificate of a CA to sign with (optional).
	CACertPEM pulumi.StringInput
	// CAKeyPEM is that CA's private key, a secret (optional).
	CAKeyPEM pulumi.StringInput
}

// SealArgs is the awskms seal, normally KMSUnseal's outputs.
type SealArgs struct {
	// Region of the key (required).
	Region pulumi.StringInput
	// KMSKeyID is the key id, ARN or alias ("alias/...") (required).
	KMSKeyID pulumi.StringInput
}

// HardenedVault is Vault in HA with TLS end to end.
type HardenedVault struct {
	pulumi.ResourceState

	// Address is the in-cluster address of the Vault service,
	// https://<name>.<namespace>.svc:8200, which balances over every
	// unsealed voter: for clients that any voter can serve.
	Address pulumi.StringOutput
	// ActiveAddress is the address of the active node's service,
	// https://<name>-active.<namespace>.svc:8200: for whoever needs the
	// leader (snapshots, the bootstrap), so no request is redirected.
	ActiveAddress pulumi.StringOutput
	// CACertPEM is the certificate of the CA that signed Vault's
	// certificate: what clients trust. Public.
	CACertPEM pulumi.StringOutput
	// ServerPrivateKeyPEM is the key of Vault's certificate. Secret.
	ServerPrivateKeyPEM pulumi.StringOutput
	// TLSSecretName is the kubernetes.io/tls secret with Vault's certificate
	// (tls.crt, tls.key, ca.crt).
	TLSSecretName pulumi.StringOutput
	// CASecretName is the secret holding only the CA certificate (ca.crt),
	// for clients such as an External Secrets SecretStore's caProvider.
	CASecretName pulumi.StringOutput
	// ServiceAccountName is Vault's service account.
	ServiceAccountName pulumi.StringOutput
	// ReleaseStatus is the Helm release's status, "deployed" once installed.
	ReleaseStatus pulumi.StringOutput
	// Release is the Helm release; dependents that need a running Vault
	// depend on it.
	Release *helmv3.Release
}

// ServerPodLabels are the labels the chart puts on the Vault server pods of
// the component (release) called name: what pod anti-affinity, the topology
// spread and network policies select.
func ServerPodLabels(name string) map[string]string {
	return map[string]string{
		"app.kubernetes.io/name":     "vault",
		"app.kubernetes.io/instance": name,
		"component":                  "server",
	}
}

// NewHardenedVault creates the PKI, the TLS secrets and the Vault release.
func NewHardenedVault(ctx *pulumi.Context, name string, args *HardenedVaultArgs, opts ...pulumi.ResourceOption) (*HardenedVault, error) {
	if args == nil {
		return nil, errors.New("vault: args are required")
	}
	a, err := withDefaults(name, *args)
	if err != nil {
		return nil, err
	}

	comp := &HardenedVault{}
	if err := ctx.RegisterComponentResource(TypeToken, name, comp, opts...); err != nil {
		return nil, fmt.Errorf("registering %s: %w", name, err)
	}
	parent := pulumi.Parent(comp)

	ns := a.Namespace.ToStringOutput()
	names := ns.ApplyT(func(ns string) []string {
		return dnsNames(name, ns, a.ClusterDomain, a.Replicas)
	}).(pulumi.StringArrayOutput)
	certs, err := newPKI(ctx, name, a.TLS, names, pulumi.Sprintf("%s.%s.svc", name, ns), parent)
	if err != nil {
		return nil, err
	}

	tlsSecretName, caSecretName := name+"-tls", name+"-ca"
	tlsSecret, err := corev1.NewSecret(ctx, name+"-tls", &corev1.SecretArgs{
		Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(tlsSecretName), Namespace: ns},
		Type:     pulumi.String("kubernetes.io/tls"),
		StringData: pulumi.StringMap{
			"tls.crt": certs.serverCertPEM,
			"tls.key": certs.serverKeyPEM,
			"ca.crt":  certs.caCertPEM,
		},
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("creating TLS secret: %w", err)
	}
	// Public material only: the CA key never enters the cluster.
	caSecret, err := corev1.NewSecret(ctx, name+"-ca", &corev1.SecretArgs{
		Metadata:   &metav1.ObjectMetaArgs{Name: pulumi.String(caSecretName), Namespace: ns},
		Type:       pulumi.String("Opaque"),
		StringData: pulumi.StringMap{"ca.crt": certs.caCertPEM},
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("creating CA secret: %w", err)
	}

	values := pulumi.All(ns, a.ServiceAccountRoleARN, a.Seal.Region, a.Seal.KMSKeyID).ApplyT(
		func(v []any) (map[string]any, error) {
			namespace, roleARN, region, keyID := v[0].(string), v[1].(string), v[2].(string), v[3].(string)
			config, err := serverConfig(configParams{
				Name:     name,
				Replicas: a.Replicas,
				TLSDir:   tlsDir(tlsSecretName),
				Region:   region,
				KMSKeyID: keyID,
				Mlock:    a.Mlock,
			})
			if err != nil {
				return nil, err
			}
			typed, err := chartValuesFor(valuesParams{
				Name:               name,
				Namespace:          namespace,
				Replicas:           a.Replicas,
				Image:              a.Image,
				Config:             string(config),
				TLSSecretName:      tlsSecretName,
				CASecretName:       caSecretName,
				ServiceAccountName: a.ServiceAccountName,
				RoleARN:            roleARN,
				Resources:          a.Resources,
				DataStorageSize:    a.DataStorageSize,
				AuditStorageSize:   a.AuditStorageSize,
				StorageClass:       a.StorageClass,
				Mlock:              a.Mlock,
				PrometheusOperator: a.PrometheusOperator,
			})
			if err != nil {
				return nil, err
			}
			return kube.ValuesMap(typed)
		}).(pulumi.MapOutput)

	release, err := helmv3.NewRelease(ctx, name+"-release", &helmv3.ReleaseArgs{
		// Release name = fullnameOverride = name: the services are <name>,
		// <name>-active, <name>-internal, the names the certificate covers.
		Name:           pulumi.String(name),
		Namespace:      ns,
		Chart:          pulumi.String("vault"),
		Version:        pulumi.String(a.ChartVersion),
		RepositoryOpts: &helmv3.RepositoryOptsArgs{Repo: pulumi.String(a.ChartRepo)},
		Values:         values,
		// Wait for readiness and roll back on failure: the seed's health
		// check waits.
		Atomic:          pulumi.Bool(true),
		SkipAwait:       pulumi.Bool(false),
		Timeout:         pulumi.Int(a.TimeoutSeconds),
		CreateNamespace: pulumi.Bool(false),
	}, parent, pulumi.DependsOn([]pulumi.Resource{tlsSecret, caSecret})) // the pods mount them
	if err != nil {
		return nil, fmt.Errorf("creating vault release: %w", err)
	}

	comp.Address = pulumi.Sprintf("https://%s.%s.svc:%d", name, ns, apiPort)
	comp.ActiveAddress = pulumi.Sprintf("https://%s-active.%s.svc:%d", name, ns, apiPort)
	comp.CACertPEM = certs.caCertPEM
	comp.ServerPrivateKeyPEM = certs.serverKeyPEM
	comp.TLSSecretName = tlsSecret.Metadata.Name().Elem()
	comp.CASecretName = caSecret.Metadata.Name().Elem()
	comp.ServiceAccountName = pulumi.String(a.ServiceAccountName).ToStringOutput()
	comp.ReleaseStatus = release.Status.Status()
	comp.Release = release

	if err := ctx.RegisterResourceOutputs(comp, pulumi.Map{
		"address":             comp.Address,
		"activeAddress":       comp.ActiveAddress,
		"caCertPem":           comp.CACertPEM,
		"serverPrivateKeyPem": comp.ServerPrivateKeyPEM,
		"tlsSecretName":       comp.TLSSecretName,
		"caSecretName":        comp.CASecretName,
		"serviceAccountName":  comp.ServiceAccountName,
		"releaseStatus":       comp.ReleaseStatus,
	}); err != nil {
		return nil, fmt.Errorf("registering outputs of %s: %w", name, err)
	}
	return comp, nil
}

// withDefaults checks what the component cannot do without and fills the
// zero values with defaults.
func withDefaults(name string, a HardenedVaultArgs) (HardenedVaultArgs, error) {
	switch {
	case name == "":
		return a, errors.New("vault: a name is required")
	case a.Namespace == nil:
		return a, errors.New("vault: Namespace is required")
	case a.ServiceAccountRoleARN == nil:
		return a, errors.New("vault: ServiceAccountRoleARN is required (IRSA role for the KMS seal)")
	case a.Seal.Region == nil || a.Seal.KMSKeyID == nil:
		return a, errors.New("vault: Seal.Region and Seal.KMSKeyID are required")
	case (a.TLS.CACertPEM == nil) != (a.TLS.CAKeyPEM == nil):
		return a, errors.New("vault: TLS.CACertPEM and TLS.CAKeyPEM go together: give both to sign with your CA, or neither")
	case a.Replicas < 0:
		return a, fmt.Errorf("vault: Replicas %d is negative", a.Replicas)
	}
	if a.Image != "" {
		if _, _, err := kube.SplitImage(a.Image); err != nil {
			return a, fmt.Errorf("vault: Image: %w", err)
		}
	}
	setDefault(&a.Replicas, defaultReplicas)
	setDefault(&a.ChartVersion, DefaultChartVersion)
	setDefault(&a.ChartRepo, DefaultChartRepo)
	setDefault(&a.Image, DefaultImage)
	setDefault(&a.ServiceAccountName, name)
	setDefault(&a.DataStorageSize, DefaultStorageSize)
	setDefault(&a.AuditStorageSize, DefaultStorageSize)
	setDefault(&a.ClusterDomain, DefaultClusterDomain)
	setDefault(&a.TimeoutSeconds, DefaultTimeoutSeconds)
	setDefault(&a.TLS.ValidityHours, DefaultValidityHours)
	setDefault(&a.TLS.EarlyRenewalHours, DefaultEarlyRenewalHours)
	setDefault(&a.TLS.CAValidityHours, DefaultCAValidityHours)
	if a.TLS.EarlyRenewalHours >= a.TLS.ValidityHours {
		return a, fmt.Errorf("vault: TLS.EarlyRenewalHours %d must be below ValidityHours %d", a.TLS.EarlyRenewalHours, a.TLS.ValidityHours)
	}
	return a, nil
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}
