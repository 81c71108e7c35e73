package stacks

import (
	"fmt"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/secrets-platform/secrets-platform/components/backup"
	"github.com/secrets-platform/secrets-platform/components/externalsecrets"
	"github.com/secrets-platform/secrets-platform/components/guardrails"
	"github.com/secrets-platform/secrets-platform/components/kmsunseal"
	"github.com/secrets-platform/secrets-platform/components/observability"
	"github.com/secrets-platform/secrets-platform/components/vault"
)

// Names of the Helm releases and the backup component. The charts derive
// their Services and pod labels from the release name, so the certificate's
// DNS names and the network policies' selectors follow from these.
const (
	vaultRelease = "vault"
	esoRelease   = "external-secrets"
	backupName   = "vault-backup"
)

func guardrailsArgs(cfg *Config) *guardrails.NamespaceGuardrailsArgs {
	monitoring := ""
	if cfg.Observability.PrometheusOperator {
		monitoring = cfg.Observability.MonitoringNamespace
	}
	return &guardrails.NamespaceGuardrailsArgs{
		Config:    cfg.Guardrails,
		Namespace: cfg.Namespace,
		Network: guardrails.NetworkArgs{
			VaultPodLabels: vault.ServerPodLabels(vaultRelease),
			// Every pod of the external-secrets chart carries its release
			// as instance; the name label tells its three deployments apart.
			ExternalSecretsPodLabels: map[string]string{"app.kubernetes.io/instance": esoRelease},
			ExternalSecretsControllerPodLabels: map[string]string{
				"app.kubernetes.io/name":     "external-secrets",
				"app.kubernetes.io/instance": esoRelease,
			},
			ExternalSecretsWebhookPodLabels: map[string]string{
				"app.kubernetes.io/name":     "external-secrets-webhook",
				"app.kubernetes.io/instance": esoRelease,
			},
			SnapshotPodLabels:   backup.PodLabels(backupName),
			KubeAPICIDRs:        cfg.Kubernetes.APIServerCIDRs,
			KubeAPIPort:         cfg.Kubernetes.APIServerPort,
			MonitoringNamespace: monitoring,
			// Metrics and webhook ports: the guardrails' defaults are the
			// charts' (Vault 8200, ESO metrics 8080, ESO webhook 10250).
		},
	}
}

func unsealArgs(ctx *pulumi.Context, cfg *Config, namespace pulumi.StringInput) *kmsunseal.KMSUnsealArgs {
	c := cfg.Unseal
	c.Tags = tags(ctx, cfg.Unseal.Tags)
	return &kmsunseal.KMSUnsealArgs{
		Config:             c,
		Region:             pulumi.String(cfg.Region),
		OIDCProviderARN:    pulumi.String(cfg.Kubernetes.OIDCProviderARN),
		OIDCIssuer:         pulumi.String(cfg.Kubernetes.OIDCIssuer),
		Namespace:          namespace,
		ServiceAccountName: pulumi.String(cfg.Vault.ServiceAccount),
	}
}

func vaultArgs(cfg *Config, namespace pulumi.StringInput, unseal *kmsunseal.KMSUnseal) *vault.HardenedVaultArgs {
	// The Observability component scrapes every voter; the chart's
	// ServiceMonitor would scrape only the active one, so it stays off.
	return &vault.HardenedVaultArgs{
		Config:                cfg.Vault,
		Namespace:             namespace,
		ServiceAccountRoleARN: unseal.RoleARN,
		Seal:                  vault.SealArgs{Region: unseal.Region, KMSKeyID: unseal.AliasName},
	}
}

// monitorLabels are what the cluster's Prometheus selects monitors by: one
// source for the Observability component's monitors and the ESO chart's.
var monitorLabels = observability.DefaultMonitorLabels

func backupArgs(ctx *pulumi.Context, cfg *Config, namespace pulumi.StringInput, v *vault.HardenedVault) *backup.BackupBucketArgs {
	return &backup.BackupBucketArgs{
		Config:          cfg.Backup,
		AccountID:       pulumi.String(cfg.Unseal.AccountID),
		Region:          pulumi.String(cfg.Region),
		OIDCProviderARN: pulumi.String(cfg.Kubernetes.OIDCProviderARN),
		OIDCIssuer:      pulumi.String(cfg.Kubernetes.OIDCIssuer),
		Namespace:       namespace,
		// Snapshots need the leader (see BackupBucketArgs.VaultAddress).
		VaultAddress:      v.ActiveAddress,
		VaultImage:        v.Image,
		VaultCASecretName: v.CASecretName,
		Tags:              pulumi.ToStringMap(tags(ctx, nil)),
	}
}

func esoArgs(cfg *Config, namespace pulumi.StringInput, v *vault.HardenedVault) *externalsecrets.ExternalSecretsStackArgs {
	c := cfg.ExternalSecrets
	c.PrometheusOperator = cfg.Observability.PrometheusOperator
	c.MonitorLabels = monitorLabels
	return &externalsecrets.ExternalSecretsStackArgs{
		Config:         c,
		Namespace:      namespace,
		VaultAddress:   v.Address,
		VaultCACertPEM: v.CACertPEM,
		// The store is useless until Vault answers: wait for its release.
		DependsOn: []pulumi.Resource{v.Release},
	}
}

func observabilityArgs(cfg *Config, namespace pulumi.StringInput, p *Platform) (*observability.ObservabilityArgs, error) {
	interval, err := observability.ScheduleIntervalSeconds(cfg.Backup.Schedule)
	if err != nil {
		return nil, fmt.Errorf("backup.schedule: %w", err)
	}
	return &observability.ObservabilityArgs{
		Namespace:               namespace,
		VaultRelease:            vaultRelease,
		VaultReplicas:           cfg.Vault.Replicas,
		VaultCASecretName:       p.Vault.CASecretName,
		SnapshotCronJobName:     p.Backup.CronJobName,
		SnapshotIntervalSeconds: interval,
		// Grafana's dashboard sidecar watches its own namespace.
		DashboardNamespace: pulumi.String(cfg.Observability.MonitoringNamespace),
		MonitorLabels:      monitorLabels,
	}, nil
}
