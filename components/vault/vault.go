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
	"github.com/secrets-platform/secrets-platform/components/validate"
)

// TypeToken is the Pulumi type of the HardenedVault component.
const TypeToken = "platform:vault:HardenedVault"

// DefaultChartVersion is the hashicorp/vault chart DefaultConfig pins.
const DefaultChartVersion = "0.34.1"

// HardenedVaultArgs configures HardenedVault: its Config and the inputs that
// come from NamespaceGuardrails and KMSUnseal.
type HardenedVaultArgs struct {
	Config
	// Namespace to install into, normally NamespaceGuardrails' output so
	// that Vault waits for its guardrails (required). DNS names, secrets and
	// the release derive from it.
	Namespace pulumi.StringInput
	// ServiceAccountRoleARN is the IAM role Vault assumes through IRSA to use
	// the unseal key (required).
	ServiceAccountRoleARN pulumi.StringInput
	// Seal is the AWS KMS key that unseals Vault (required).
	Seal SealArgs
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
	// Image is the Vault image the servers run, for jobs that run the
	// Vault CLI: one Vault version everywhere.
	Image pulumi.StringOutput
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
	// ServerPodTemplate is what shapes the server pods' template (chart
	// version, image, HCL, the values the chart renders into the pods), as
	// a JSON document: it changes exactly when the voters must be replaced
	// to run what was deployed (VaultRollout).
	ServerPodTemplate pulumi.StringOutput
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
	if err := check(name, args); err != nil {
		return nil, err
	}
	a := args

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
	reloaderName := name + "-tls-reloader"
	reloaderScript, err := corev1.NewConfigMap(ctx, reloaderName, &corev1.ConfigMapArgs{
		Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(reloaderName), Namespace: ns},
		Data:     pulumi.StringMap{reloadScriptKey: pulumi.String(ReloadScript)},
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("creating TLS reloader script: %w", err)
	}

	typedValues := pulumi.All(ns, a.ServiceAccountRoleARN, a.Seal.Region, a.Seal.KMSKeyID).ApplyT(
		func(v []any) (*chartValues, error) {
			namespace, roleARN, region, keyID := v[0].(string), v[1].(string), v[2].(string), v[3].(string)
			config, err := serverConfig(configParams{
				Name:     name,
				Replicas: a.Replicas,
				TLSDir:   tlsDir(tlsSecretName),
				Region:   region,
				KMSKeyID: keyID,
				Mlock:    a.Mlock,

				BreakGlass: a.BreakGlass,
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
				ServiceAccountName: a.ServiceAccount,
				RoleARN:            roleARN,
				Resources:          a.Resources,
				DataStorageSize:    a.DataStorage,
				AuditStorageSize:   a.AuditStorage,
				StorageClass:       a.StorageClass,
				Mlock:              a.Mlock,
				PrometheusOperator: a.PrometheusOperator,
				Reloader:           a.TLSReloader,
				ReloaderConfigMap:  reloaderName,
			})
			if err != nil {
				return nil, err
			}
			return typed, nil
		})
	values := typedValues.ApplyT(func(v any) (map[string]any, error) {
		return kube.ValuesMap(v.(*chartValues))
	}).(pulumi.MapOutput)
	podTemplate := typedValues.ApplyT(func(v any) (string, error) {
		return serverPodTemplate(a.ChartVersion, *v.(*chartValues))
	}).(pulumi.StringOutput)

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
	}, parent, pulumi.DependsOn([]pulumi.Resource{tlsSecret, caSecret, reloaderScript})) // the pods mount them
	if err != nil {
		return nil, fmt.Errorf("creating vault release: %w", err)
	}

	comp.Address = pulumi.Sprintf("https://%s.%s.svc:%d", name, ns, apiPort)
	comp.ActiveAddress = pulumi.Sprintf("https://%s-active.%s.svc:%d", name, ns, apiPort)
	comp.Image = pulumi.String(a.Image).ToStringOutput()
	comp.CACertPEM = certs.caCertPEM
	comp.ServerPrivateKeyPEM = certs.serverKeyPEM
	comp.TLSSecretName = tlsSecret.Metadata.Name().Elem()
	comp.CASecretName = caSecret.Metadata.Name().Elem()
	comp.ServiceAccountName = pulumi.String(a.ServiceAccount).ToStringOutput()
	comp.ReleaseStatus = release.Status.Status()
	comp.Release = release
	comp.ServerPodTemplate = podTemplate

	if err := ctx.RegisterResourceOutputs(comp, pulumi.Map{
		"address":             comp.Address,
		"activeAddress":       comp.ActiveAddress,
		"image":               comp.Image,
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

// check validates the Config and requires the inputs, before anything is
// registered.
func check(name string, args *HardenedVaultArgs) error {
	if args == nil {
		return errors.New("vault: args are required")
	}
	problems := validate.Problems(args.Validate(name))
	problems.Required("Namespace", args.Namespace)
	problems.Required("ServiceAccountRoleARN (the IRSA role for the KMS seal)", args.ServiceAccountRoleARN)
	problems.Required("Seal.Region", args.Seal.Region)
	problems.Required("Seal.KMSKeyID", args.Seal.KMSKeyID)
	return validate.Err("vault "+name+": invalid args", problems)
}
