package stacks

import (
	"fmt"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws"
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
			SnapshotPodLabels:     backup.PodLabels(backupName),
			RestoreDrillPodLabels: drillLabels(cfg),
			KubeAPICIDRs:          cfg.Kubernetes.APIServerCIDRs,
			KubeAPIPort:           cfg.Kubernetes.APIServerPort,
			MonitoringNamespace:   monitoring,
			// Metrics and webhook ports: the guardrails' defaults are the
			// charts' (Vault 8200, ESO metrics 8080, ESO webhook 10250).
		},
	}
}

// drillLabels select the restore drill's pods; nil without the drill.
func drillLabels(cfg *Config) map[string]string {
	if !cfg.Backup.Drill.Enabled {
		return nil
	}
	return backup.DrillPodLabels(backupName)
}

func unsealArgs(ctx *pulumi.Context, cfg *Config, namespace pulumi.StringInput, drProvider *aws.Provider) *kmsunseal.KMSUnsealArgs {
	c := cfg.Unseal
	c.Tags = tags(ctx, cfg.Unseal.Tags)
	var dr *kmsunseal.DRArgs
	if drProvider != nil {
		dr = &kmsunseal.DRArgs{Region: cfg.DR.Region, Provider: drProvider}
	}
	drill := ""
	if cfg.Backup.Drill.Enabled {
		drill = cfg.Backup.Drill.ServiceAccount
	}
	return &kmsunseal.KMSUnsealArgs{
		RestoreDrillServiceAccount: drill,
		DR:                         dr,
		Config:                     c,
		Region:                     pulumi.String(cfg.Region),
		OIDCProviderARN:            pulumi.String(cfg.Kubernetes.OIDCProviderARN),
		OIDCIssuer:                 pulumi.String(cfg.Kubernetes.OIDCIssuer),
		Namespace:                  namespace,
		ServiceAccountName:         pulumi.String(cfg.Vault.ServiceAccount),
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

func backupArgs(ctx *pulumi.Context, cfg *Config, namespace pulumi.StringInput, v *vault.HardenedVault, unseal *kmsunseal.KMSUnseal, drProvider *aws.Provider) *backup.BackupBucketArgs {
	var replica *backup.ReplicaArgs
	if drProvider != nil {
		replica = &backup.ReplicaArgs{Region: cfg.DR.Region, Provider: drProvider, ReplicationTimeControl: cfg.DR.ReplicationTimeControl}
	}
	return &backup.BackupBucketArgs{
		Replica: replica,
		// The drill unseals its throwaway Vault as the voters do.
		RestoreDrill: &backup.RestoreDrillArgs{
			RoleARN:      unseal.RestoreDrillRoleARN,
			RoleName:     unseal.RestoreDrillRoleName,
			SealRegion:   unseal.Region,
			SealKMSKeyID: unseal.AliasName,
		},
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
	var drillCronJob pulumi.StringInput
	drillInterval := 0
	if cfg.Backup.Drill.Enabled {
		if drillInterval, err = observability.ScheduleIntervalSeconds(cfg.Backup.Drill.Schedule); err != nil {
			return nil, fmt.Errorf("backup.drill.schedule: %w", err)
		}
		drillCronJob = p.Backup.RestoreDrillCronJobName
	}
	return &observability.ObservabilityArgs{
		RestoreDrillCronJobName:     drillCronJob,
		RestoreDrillIntervalSeconds: drillInterval,
		Namespace:                   namespace,
		VaultRelease:                vaultRelease,
		VaultReplicas:               cfg.Vault.Replicas,
		VaultCASecretName:           p.Vault.CASecretName,
		SnapshotCronJobName:         p.Backup.CronJobName,
		SnapshotIntervalSeconds:     interval,
		// Grafana's dashboard sidecar watches its own namespace.
		DashboardNamespace: pulumi.String(cfg.Observability.MonitoringNamespace),
		MonitorLabels:      monitorLabels,
	}, nil
}
