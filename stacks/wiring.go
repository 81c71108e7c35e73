package stacks

import (
	"fmt"
	"path"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/secrets-platform/secrets-platform/components/backup"
	"github.com/secrets-platform/secrets-platform/components/bootstrap"
	"github.com/secrets-platform/secrets-platform/components/externalsecrets"
	"github.com/secrets-platform/secrets-platform/components/guardrails"
	"github.com/secrets-platform/secrets-platform/components/kmsunseal"
	"github.com/secrets-platform/secrets-platform/components/observability"
	"github.com/secrets-platform/secrets-platform/components/rollout"
	"github.com/secrets-platform/secrets-platform/components/vault"
)

// Names of the Helm releases and the backup component. The charts derive
// their Services and pod labels from the release name, so the certificate's
// DNS names and the network policies' selectors follow from these.
const (
	vaultRelease  = "vault"
	esoRelease    = "external-secrets"
	backupName    = "vault-backup"
	bootstrapName = "vault-bootstrap"
	rolloutName   = "vault-rollout"
)

// rolloutSnapshotMargin is how much longer than the snapshot Job's own
// deadline (backup.activeDeadlineSeconds) the rollout waits for it: the
// time to schedule its pod.
const rolloutSnapshotMargin = 60

// rolloutPodLabels label the rollout Job's pods, for network policies.
var rolloutPodLabels = map[string]string{
	"app.kubernetes.io/name":      "vault-rollout",
	"app.kubernetes.io/instance":  rolloutName,
	"app.kubernetes.io/component": "rollout",
	"app.kubernetes.io/part-of":   "secrets-platform",
}

// bootstrapPodLabels label the bootstrap Job's pods, for network policies.
var bootstrapPodLabels = map[string]string{
	"app.kubernetes.io/name":      "vault-bootstrap",
	"app.kubernetes.io/instance":  bootstrapName,
	"app.kubernetes.io/component": "bootstrap",
	"app.kubernetes.io/part-of":   "secrets-platform",
}

// reconcilePodLabels label the reconcile CronJob's pods: apart from the
// bootstrap's, since they reach Vault only (no AWS).
var reconcilePodLabels = map[string]string{
	"app.kubernetes.io/name":      "vault-reconcile",
	"app.kubernetes.io/instance":  bootstrap.ReconcileName(bootstrapName),
	"app.kubernetes.io/component": "reconcile",
	"app.kubernetes.io/part-of":   "secrets-platform",
}

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
			BootstrapPodLabels:    bootstrapPodLabels,
			RolloutPodLabels:      rolloutPodLabels,
			ReconcilePodLabels:    reconcilePodLabels,
			KubeAPICIDRs:          cfg.Kubernetes.APIServerCIDRs,
			KubeAPIPort:           cfg.Kubernetes.APIServerPort,
			KubeAPIClusterIP:      cfg.Kubernetes.APIServerClusterIP,
			MonitoringNamespace:   monitoring,
			Databases:             databaseFlows(cfg),
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

func backupArgs(ctx *pulumi.Context, cfg *Config, namespace pulumi.StringInput, v *vault.HardenedVault, unseal *kmsunseal.KMSUnseal, drProvider *aws.Provider, after pulumi.ResourceArrayInput) *backup.BackupBucketArgs {
	c := cfg.Backup
	c.VaultTokenAudience = bootstrap.Audience
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
			// The bootstrap's file audit device writes there; the
			// snapshot carries it.
			AuditDir: path.Dir(vault.AuditLogFile),
		},
		Config:          c,
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
		// The job logs in with the role the bootstrap creates.
		SnapshotsAfter: after,
	}
}

// voterName is the pod name of voter i: the chart's StatefulSet is named
// after the release.
func voterName(i int) string { return fmt.Sprintf("%s-%d", vaultRelease, i) }

func bootstrapArgs(ctx *pulumi.Context, cfg *Config, v *vault.HardenedVault, b *backup.BackupBucket, drProvider *aws.Provider) *bootstrap.VaultBootstrapArgs {
	voters := make([]bootstrap.Voter, cfg.Vault.Replicas)
	for i := range voters {
		voters[i] = bootstrap.Voter{Name: voterName(i), Address: vault.PodAddress(vaultRelease, i)}
	}
	args := &bootstrap.VaultBootstrapArgs{
		Config:             cfg.Bootstrap,
		Setup:              vaultSetup(cfg),
		Namespace:          cfg.Namespace,
		Voters:             voters,
		VaultAddress:       v.ActiveAddress,
		VaultImage:         v.Image,
		AWSCLIImage:        cfg.Backup.AWSCLIImage,
		VaultCASecretName:  v.CASecretName,
		AuditFile:          vault.AuditLogFile,
		PodLabels:          bootstrapPodLabels,
		ReconcilePodLabels: reconcilePodLabels,
		AccountID:          cfg.Unseal.AccountID,
		Region:             cfg.Region,
		LoginServerID:      loginServerID(cfg),
		OIDCProviderARN:    cfg.Kubernetes.OIDCProviderARN,
		OIDCIssuer:         cfg.Kubernetes.OIDCIssuer,
		Bucket:             b.BucketName,
		BucketARN:          b.BucketARN,
		BucketKeyARN:       b.KMSKeyARN,
		InitPrefix:         backup.InitPrefix,
		Tags:               pulumi.ToStringMap(tags(ctx, nil)),
		DependsOn:          []pulumi.Resource{v.Release},
	}
	// The init object is replicated with the snapshots: its key too. (A
	// nil *aws.Provider would be a non-nil ProviderResource.)
	if drProvider != nil {
		args.DRProvider = drProvider
	}
	return args
}

// loginServerID is the server ID AWS logins sign: the Vault Service's
// name in the cluster, which its certificate covers.
func loginServerID(cfg *Config) string { return vaultRelease + "." + cfg.Namespace + ".svc" }

// vaultSetup is Vault's side of the clients the stack configures: ESO may
// read exactly the paths of its ExternalSecrets, the snapshot job may save
// snapshots; each logs in as its own service account.
func vaultSetup(cfg *Config) bootstrap.VaultSetup {
	e, b := cfg.ExternalSecrets, cfg.Backup
	var esoRules []bootstrap.Rule
	var esoPolicies []bootstrap.Policy
	for _, s := range e.Secrets {
		if s.StaticRole != "" {
			// A policy per ExternalSecret of a static role: exactly its
			// credentials, nothing else of the database mount.
			esoPolicies = append(esoPolicies, bootstrap.Policy{
				Name:  DatabaseSecretPolicy(cfg, s.Name),
				Rules: []bootstrap.Rule{{Path: cfg.Bootstrap.StaticCredsPath(s.StaticRole), Capabilities: []string{"read"}}},
			})
			continue
		}
		esoRules = append(esoRules, bootstrap.Rule{Path: e.Store.Path + "/data/" + s.VaultKey, Capabilities: []string{"read"}})
	}
	return bootstrap.VaultSetup{
		Databases: cfg.Databases,
		KVMount:   e.Store.Path,
		AuthMount: e.Store.AuthMount,
		Clients: []bootstrap.Client{
			{Name: e.Store.Role, ServiceAccount: e.ServiceAccount, Namespace: cfg.Namespace, Rules: esoRules, Policies: esoPolicies},
			{Name: b.VaultRole, ServiceAccount: b.ServiceAccount, Namespace: cfg.Namespace, Rules: []bootstrap.Rule{
				{Path: backup.SnapshotPath, Capabilities: []string{"read"}},
			}},
			// The rollout reads autopilot's state: the voters, their health,
			// the leader and the failure tolerance. The rest it reads from
			// endpoints that need no token (sys/seal-status, sys/leader).
			{Name: cfg.Rollout.VaultRole, ServiceAccount: cfg.Rollout.ServiceAccount, Namespace: cfg.Namespace, Rules: []bootstrap.Rule{
				{Path: "sys/storage/raft/autopilot/state", Capabilities: []string{"read"}},
			}},
		},
	}
}

// DatabaseSecretPolicy names the policy that lets ESO read the static
// role an ExternalSecret delivers: ESO's role, then the ExternalSecret.
func DatabaseSecretPolicy(cfg *Config, externalSecret string) string {
	return cfg.ExternalSecrets.Store.Role + "-" + externalSecret
}

// databaseSecrets are the ExternalSecrets that deliver static roles.
func databaseSecrets(cfg *Config) []string {
	var out []string
	for _, s := range cfg.ExternalSecrets.Secrets {
		if s.StaticRole != "" {
			out = append(out, s.Name)
		}
	}
	return out
}

// databaseFlows are where Vault may reach each database.
func databaseFlows(cfg *Config) []guardrails.DatabaseFlow {
	var out []guardrails.DatabaseFlow
	for _, d := range bootstrap.ResolveDatabases(cfg.Databases) {
		out = append(out, guardrails.DatabaseFlow{Name: d.Name, PodLabels: d.PodLabels, CIDRs: d.CIDRs, Port: d.Port})
	}
	return out
}

func esoArgs(cfg *Config, namespace pulumi.StringInput, v *vault.HardenedVault, boot *bootstrap.VaultBootstrap) *externalsecrets.ExternalSecretsStackArgs {
	c := cfg.ExternalSecrets
	c.PrometheusOperator = cfg.Observability.PrometheusOperator
	c.MonitorLabels = monitorLabels
	c.Store.Audiences = []string{bootstrap.Audience}
	return &externalsecrets.ExternalSecretsStackArgs{
		Config:         c,
		Namespace:      namespace,
		VaultAddress:   v.Address,
		VaultCACertPEM: v.CACertPEM,
		DatabaseMount:  cfg.Bootstrap.DatabaseMount(),
		// The store is useless until Vault is configured and healthy.
		DependsOn: []pulumi.Resource{boot.Job},
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
		BootstrapJob:                bootstrapName,
		RolloutJob:                  rolloutName,
		SnapshotIntervalSeconds:     interval,
		DatabaseExternalSecrets:     databaseSecrets(cfg),
		// Grafana's dashboard sidecar watches its own namespace.
		DashboardNamespace: pulumi.String(cfg.Observability.MonitoringNamespace),
		MonitorLabels:      monitorLabels,
		BreakGlass:         cfg.Vault.BreakGlass,
		ReconcileCronJob:   bootstrap.ReconcileName(bootstrapName),
	}, nil
}

// rolloutArgs wire the rollout after what it needs: the Vault release (the
// StatefulSet's new template), the bootstrap's Job (its Vault role, a
// configured and healthy cluster) and the snapshot CronJob it runs first
// (through its name).
func rolloutArgs(cfg *Config, p *Platform) *rollout.VaultRolloutArgs {
	voters := make([]rollout.Voter, cfg.Vault.Replicas)
	for i := range voters {
		voters[i] = rollout.Voter{Name: voterName(i), Address: vault.PodAddress(vaultRelease, i)}
	}
	return &rollout.VaultRolloutArgs{
		Config:                 cfg.Rollout,
		Namespace:              cfg.Namespace,
		StatefulSet:            vaultRelease,
		Voters:                 voters,
		ServerPodTemplate:      p.Vault.ServerPodTemplate,
		VaultAddress:           p.Vault.ActiveAddress,
		VaultImage:             p.Vault.Image,
		VaultCASecretName:      p.Vault.CASecretName,
		AuthMount:              cfg.ExternalSecrets.Store.AuthMount,
		Audience:               bootstrap.Audience,
		SnapshotCronJobName:    p.Backup.CronJobName,
		SnapshotTimeoutSeconds: cfg.Backup.ActiveDeadlineSeconds + rolloutSnapshotMargin,
		PodLabels:              rolloutPodLabels,
		DependsOn:              []pulumi.Resource{p.Vault.Release, p.Bootstrap.Job},
	}
}
