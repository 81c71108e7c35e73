package stacks

import (
	"fmt"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws"
	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
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

// Run is the program: load and validate the stack's config, then compose
// the platform. Nothing is registered unless the whole config is valid.
func Run(ctx *pulumi.Context) error {
	cfg, err := Load(ctx)
	if err != nil {
		return err
	}
	if err := CheckCapacity(cfg); err != nil {
		return err
	}
	_, err = Compose(ctx, cfg)
	return err
}

// Platform is what Compose built, for callers that add to it.
type Platform struct {
	Guardrails      *guardrails.NamespaceGuardrails
	Unseal          *kmsunseal.KMSUnseal
	Vault           *vault.HardenedVault
	Backup          *backup.BackupBucket
	Bootstrap       *bootstrap.VaultBootstrap
	ExternalSecrets *externalsecrets.ExternalSecretsStack
	// Rollout replaces the voters when their pod template changes.
	Rollout *rollout.VaultRollout
	// Observability is nil unless the Prometheus Operator is there.
	Observability *observability.Observability
}

// Compose registers the providers and the components of one stack from a
// validated config, wiring each component's outputs into the next.
func Compose(ctx *pulumi.Context, cfg *Config) (*Platform, error) {
	k8s, err := kubernetes.NewProvider(ctx, "kubernetes", &kubernetes.ProviderArgs{
		Context:    optionalString(cfg.Kubernetes.Context),
		Kubeconfig: optionalSecret(cfg.Kubernetes.Kubeconfig),
	})
	if err != nil {
		return nil, fmt.Errorf("creating kubernetes provider: %w", err)
	}
	awsProvider, err := aws.NewProvider(ctx, "aws", &aws.ProviderArgs{Region: pulumi.StringPtr(cfg.Region)})
	if err != nil {
		return nil, fmt.Errorf("creating aws provider: %w", err)
	}
	// The DR region's resources are created through a provider of their own.
	var drProvider *aws.Provider
	if cfg.DR.Region != "" {
		drProvider, err = aws.NewProvider(ctx, "aws-dr", &aws.ProviderArgs{Region: pulumi.StringPtr(cfg.DR.Region)})
		if err != nil {
			return nil, fmt.Errorf("creating aws provider for dr.region: %w", err)
		}
	}
	onK8s := pulumi.Provider(k8s)
	onAWS := pulumi.Provider(awsProvider)
	onBoth := pulumi.Providers(k8s, awsProvider)

	p := &Platform{}
	p.Guardrails, err = guardrails.NewNamespaceGuardrails(ctx, cfg.Namespace, guardrailsArgs(cfg), onK8s)
	if err != nil {
		return nil, fmt.Errorf("creating namespace guardrails: %w", err)
	}
	namespace := p.Guardrails.Namespace

	p.Unseal, err = kmsunseal.NewKMSUnseal(ctx, "vault-unseal", unsealArgs(ctx, cfg, namespace, drProvider), onAWS)
	if err != nil {
		return nil, fmt.Errorf("creating unseal key: %w", err)
	}

	p.Vault, err = vault.NewHardenedVault(ctx, vaultRelease, vaultArgs(cfg, namespace, p.Unseal), onK8s)
	if err != nil {
		return nil, fmt.Errorf("creating vault: %w", err)
	}

	// The bootstrap publishes to the backup bucket, and the snapshot job
	// logs in with a role the bootstrap creates: the CronJob waits for the
	// bootstrap's Job, which is created after the bucket.
	bootstrapped, resolveBootstrapped := pulumi.DeferredOutput[[]pulumi.Resource](ctx.Context())
	p.Backup, err = backup.NewBackupBucket(ctx, backupName,
		backupArgs(ctx, cfg, namespace, p.Vault, p.Unseal, drProvider, pulumi.ResourceArrayOutput{OutputState: bootstrapped.OutputState}), onBoth)
	if err != nil {
		return nil, fmt.Errorf("creating backups: %w", err)
	}
	p.Bootstrap, err = bootstrap.NewVaultBootstrap(ctx, bootstrapName, bootstrapArgs(ctx, cfg, p.Vault, p.Backup, drProvider), onBoth)
	if err != nil {
		// Unblock the CronJob's registration; the error ends the run.
		resolveBootstrapped(pulumi.ResourceArray{}.ToResourceArrayOutput())
		return nil, fmt.Errorf("creating vault bootstrap: %w", err)
	}
	resolveBootstrapped(pulumi.ResourceArray{pulumi.NewResourceInput(p.Bootstrap.Job)}.ToResourceArrayOutput())

	p.ExternalSecrets, err = externalsecrets.NewExternalSecretsStack(ctx, esoRelease, esoArgs(cfg, namespace, p.Vault, p.Bootstrap), onK8s)
	if err != nil {
		return nil, fmt.Errorf("creating external secrets: %w", err)
	}

	// After the bootstrap's Job: it writes the rollout's Vault role and
	// leaves the cluster configured and healthy, and a first install's
	// rollout has nothing to do. See the README's section on rollouts.
	p.Rollout, err = rollout.NewVaultRollout(ctx, rolloutName, rolloutArgs(cfg, p), onK8s)
	if err != nil {
		return nil, fmt.Errorf("creating vault rollout: %w", err)
	}

	if cfg.Observability.PrometheusOperator {
		args, err := observabilityArgs(cfg, namespace, p)
		if err != nil {
			return nil, err
		}
		p.Observability, err = observability.NewObservability(ctx, "observability", args, onK8s)
		if err != nil {
			return nil, fmt.Errorf("creating observability: %w", err)
		}
	}

	for name, value := range p.Outputs() {
		ctx.Export(name, value)
	}
	return p, nil
}

// Outputs are the stack outputs operators and the runbooks refer to.
func (p *Platform) Outputs() map[string]pulumi.Output {
	return map[string]pulumi.Output{
		"namespace":             p.Guardrails.Namespace,
		"vaultAddress":          p.Vault.Address,
		"vaultCaCertPem":        p.Vault.CACertPEM,
		"vaultTlsSecret":        p.Vault.TLSSecretName,
		"vaultReleaseStatus":    p.Vault.ReleaseStatus,
		"unsealKeyArn":          p.Unseal.KeyARN,
		"unsealKeyAlias":        p.Unseal.AliasName,
		"vaultRoleArn":          p.Unseal.RoleARN,
		"backupBucket":          p.Backup.BucketName,
		"snapshotCronJob":       p.Backup.CronJobName,
		"replicaBucket":         p.Backup.ReplicaBucketName,
		"replicaUnsealKeyArn":   p.Unseal.ReplicaKeyARN,
		"restoreDrillCronJob":   p.Backup.RestoreDrillCronJobName,
		"restoreDrillRoleArn":   p.Unseal.RestoreDrillRoleARN,
		"bootstrapJob":          p.Bootstrap.JobName,
		"rolloutJob":            p.Rollout.JobName,
		"recoveryKeyArn":        p.Bootstrap.RecoveryKeyARN,
		"recoveryReplicaKeyArn": p.Bootstrap.RecoveryReplicaKeyARN,
		"secretStore":           p.ExternalSecrets.StoreName,
		"externalSecrets":       p.ExternalSecrets.ExternalSecretNames,
		"vaultLogin":            p.Bootstrap.LoginCommands,
	}
}

func optionalString(s string) pulumi.StringPtrInput {
	if s == "" {
		return nil
	}
	return pulumi.StringPtr(s)
}

// optionalSecret keeps a kubeconfig's credentials out of plain state.
func optionalSecret(s string) pulumi.StringPtrInput {
	if s == "" {
		return nil
	}
	return pulumi.ToSecret(pulumi.StringPtr(s)).(pulumi.StringPtrOutput)
}

// tags adds the tags every AWS resource of the platform carries.
func tags(ctx *pulumi.Context, extra map[string]string) map[string]string {
	out := map[string]string{
		"project":    ctx.Project(),
		"stack":      ctx.Stack(),
		"managed-by": "pulumi",
	}
	for k, v := range extra {
		out[k] = v
	}
	return out
}
