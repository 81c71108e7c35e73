package tests

import (
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/secrets-platform/secrets-platform/components/backup"
	"github.com/secrets-platform/secrets-platform/components/bootstrap"
	"github.com/secrets-platform/secrets-platform/components/externalsecrets"
	"github.com/secrets-platform/secrets-platform/components/kube"
	"github.com/secrets-platform/secrets-platform/components/observability"
	"github.com/secrets-platform/secrets-platform/components/vault"
	"github.com/secrets-platform/secrets-platform/internal/recorder"
)

// TestTwoCopiesInOneNamespaceDoNotCollide builds two copies of every
// workload component under different names in one namespace: every
// Kubernetes object and Helm release they register must have its own name.
// Names that are configuration (the ESO service account, store and
// ExternalSecrets) differ between the copies as an operator would set them.
func TestTwoCopiesInOneNamespaceDoNotCollide(t *testing.T) {
	caPEM, _ := NewTestCA(t)
	ns := pulumi.String("production")
	small := kube.Resources{
		Requests: map[string]string{"cpu": "100m", "memory": "128Mi"},
		Limits:   map[string]string{"cpu": "500m", "memory": "512Mi"},
	}
	mon := RunComponent(t, func(ctx *pulumi.Context) error {
		for _, name := range []string{"vault", "vault-dr"} {
			vaultConfig := vault.DefaultConfig()
			vaultConfig.ServiceAccount = name // the default is one per namespace
			vaultConfig.Resources = small
			v, err := vault.NewHardenedVault(ctx, name, &vault.HardenedVaultArgs{
				Config:                vaultConfig,
				Namespace:             ns,
				ServiceAccountRoleARN: pulumi.String("arn:aws:iam::" + recorder.MockAccountID + ":role/" + name),
				Seal:                  vault.SealArgs{Region: pulumi.String("eu-west-1"), KMSKeyID: pulumi.String("alias/" + name)},
			})
			if err != nil {
				return err
			}
			backupConfig := backup.DefaultConfig()
			backupConfig.ServiceAccount = name + "-snapshot" // the default is one per namespace
			backupConfig.Drill.ServiceAccount = name + "-restore-drill"
			backupConfig.Resources = small
			b, err := backup.NewBackupBucket(ctx, name+"-backup", &backup.BackupBucketArgs{
				Config:          backupConfig,
				AccountID:       pulumi.String(recorder.MockAccountID),
				Region:          pulumi.String("eu-west-1"),
				OIDCProviderARN: pulumi.String("arn:aws:iam::" + recorder.MockAccountID + ":oidc-provider/oidc.example/id/X"),
				OIDCIssuer:      pulumi.String("https://oidc.example/id/X"),
				Namespace:       ns,
				VaultAddress:    v.ActiveAddress, VaultImage: v.Image, VaultCASecretName: v.CASecretName,
				RestoreDrill: &backup.RestoreDrillArgs{
					RoleARN:    pulumi.String("arn:aws:iam::" + recorder.MockAccountID + ":role/" + name + "-drill"),
					RoleName:   pulumi.String(name + "-drill"),
					SealRegion: pulumi.String("eu-west-1"), SealKMSKeyID: pulumi.String("alias/" + name),
				},
			})
			if err != nil {
				return err
			}
			bootConfig := bootstrap.DefaultConfig()
			bootConfig.ServiceAccount = name + "-bootstrap" // the default is one per namespace
			if _, err := bootstrap.NewVaultBootstrap(ctx, name+"-bootstrap", &bootstrap.VaultBootstrapArgs{
				Config:       bootConfig,
				Setup:        bootstrap.VaultSetup{KVMount: "secret", AuthMount: "kubernetes"},
				Namespace:    "production",
				Voters:       []bootstrap.Voter{{Name: name + "-0", Address: vault.PodAddress(name, 0)}},
				VaultAddress: v.ActiveAddress, VaultImage: v.Image, VaultCASecretName: v.CASecretName,
				AWSCLIImage: backupConfig.AWSCLIImage, AuditFile: vault.AuditLogFile,
				PodLabels:          map[string]string{"app.kubernetes.io/instance": name + "-bootstrap"},
				ReconcilePodLabels: map[string]string{"app.kubernetes.io/instance": name + "-reconcile"},
				AccountID:          recorder.MockAccountID, Region: "eu-west-1", LoginServerID: name + ".production.svc",
				OIDCProviderARN: "arn:aws:iam::" + recorder.MockAccountID + ":oidc-provider/oidc.example/id/X",
				OIDCIssuer:      "https://oidc.example/id/X",
				Bucket:          b.BucketName, BucketARN: b.BucketARN, BucketKeyARN: b.KMSKeyARN, InitPrefix: backup.InitPrefix,
			}); err != nil {
				return err
			}
			esoConfig := externalsecrets.DefaultConfig()
			esoConfig.ServiceAccount = name + "-eso-auth"
			esoConfig.Store.Name = name + "-store"
			esoConfig.Secrets = []externalsecrets.SecretConfig{{
				Name: name + "-postgres", VaultKey: "database/postgres",
				Data: []externalsecrets.DataConfig{{SecretKey: "password", Property: "password"}},
			}}
			if _, err := externalsecrets.NewExternalSecretsStack(ctx, name+"-eso", &externalsecrets.ExternalSecretsStackArgs{
				Config:         esoConfig,
				Namespace:      ns,
				VaultAddress:   v.Address,
				VaultCACertPEM: pulumi.String(caPEM),
				DependsOn:      []pulumi.Resource{v.Release},
			}); err != nil {
				return err
			}
			if _, err := observability.NewObservability(ctx, name+"-observability", &observability.ObservabilityArgs{
				Namespace: ns, VaultRelease: name, VaultCASecretName: v.CASecretName,
				SnapshotCronJobName: b.CronJobName, SnapshotIntervalSeconds: 6 * 3600, BootstrapJob: name + "-bootstrap",
				RestoreDrillCronJobName: b.RestoreDrillCronJobName, RestoreDrillIntervalSeconds: 7 * 86400,
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if n := len(mon.ByType("kubernetes:helm.sh/v3:Release")); n != 4 {
		t.Fatalf("%d releases registered; want 2 Vault and 2 ESO", n)
	}
	expectNoFindings(t, "unique names", DuplicateObjectFindings(mon.Resources()))
}
