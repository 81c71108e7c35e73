// Package bootstrap provides VaultBootstrap: the Job that makes `pulumi up`
// end with Vault initialised, configured from the stack's config and
// healthy. It initialises Vault once, only when every voter answers
// uninitialised and a preflight has written a probe the way the init object
// will be written (recovery shares encrypted to PGP holders or the whole
// init output to a KMS key, published to the backup bucket before anything
// else can fail), configures audit devices, the KV
// engine, Kubernetes auth, one least-privilege policy and role per client,
// and then waits until every voter is unsealed and Raft is healthy. The Job
// is named after a hash of what it applies, so a change runs a new one and
// Pulumi awaits it; whatever needs Vault depends on it.
package bootstrap

import (
	_ "embed"
	"errors"
	"fmt"
	"strings"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/iam"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/kms"
	batchv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/batch/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/secrets-platform/secrets-platform/components/awsiam"
	"github.com/secrets-platform/secrets-platform/components/kube"
	"github.com/secrets-platform/secrets-platform/components/validate"
)

// TypeToken is the Pulumi type of the VaultBootstrap component.
const TypeToken = "platform:vault:VaultBootstrap"

// Script is the Job's script (bootstrap.sh): POSIX sh using the vault CLI
// and busybox tools of the Vault image, and the AWS CLI in its preflight and
// publish steps.
//
//go:embed bootstrap.sh
var Script string

// Where the Job's pod mounts what it uses.
const (
	// ConfigDir holds the ConfigMap: the script, policies, roles, PGP keys.
	ConfigDir = "/bootstrap"
	// SecretsDir is the memory-backed emptyDir for init's output.
	SecretsDir = "/secrets"
	// CACertPath is VAULT_CACERT, from VaultCASecretName's ca.crt.
	CACertPath = "/vault/tls/ca.crt"
	// TokenPath is the projected token the configurator logs in with.
	TokenPath = "/var/run/secrets/vault/token"
)

// IDs the containers run as: the hashicorp/vault image's vault user.
const (
	runAsUser  = 100
	runAsGroup = 1000
	// tokenLifetime is the shortest a projected token may live; the Job
	// logs in once, at the start of its configure step.
	tokenLifetime = 10 * 60
	// secretsLimit bounds the memory-backed emptyDir: init's output is a
	// few kilobytes.
	secretsLimit = "1Mi"
)

// VaultBootstrapArgs configures VaultBootstrap: its Config and the inputs
// that come from HardenedVault, BackupBucket and the cluster.
type VaultBootstrapArgs struct {
	Config
	// Setup is what to configure in Vault (required).
	Setup VaultSetup
	// Namespace is Vault's namespace, where the Job runs (required).
	Namespace string
	// Voters are the servers the Job surveys (it initialises the first only
	// when every one answers uninitialised) and checks, by addresses that
	// answer before a pod is ready (required).
	Voters []Voter
	// VaultAddress is the active node's address, for configuration (required).
	VaultAddress pulumi.StringInput
	// VaultImage runs the survey, init and configure steps: the servers'
	// (required).
	VaultImage pulumi.StringInput
	// AWSCLIImage runs the preflight and publish steps (required).
	AWSCLIImage string
	// VaultCASecretName holds the CA of Vault's certificate as ca.crt (required).
	VaultCASecretName pulumi.StringInput
	// AuditFile is the file audit device's path on the servers (required).
	AuditFile string
	// KubernetesHost is the API server address Vault reviews tokens with.
	// Default: https://kubernetes.default.svc.
	KubernetesHost string
	// PodLabels label the Job's pods, for network policies (required).
	PodLabels map[string]string
	// ReconcilePodLabels label the reconcile CronJob's pods, for network
	// policies: they reach Vault and nothing else (required).
	ReconcilePodLabels map[string]string
	// AccountID, Region, OIDCProviderARN and OIDCIssuer: where the
	// recovery key and the publishing role live, and who may assume it;
	// Region is the STS region of AWS logins too (required).
	AccountID, Region, OIDCProviderARN, OIDCIssuer string
	// LoginServerID is the server ID every AWS login signs (AWSLogin):
	// the name clients know Vault by (required).
	LoginServerID string
	// Bucket, BucketARN and BucketKeyARN are the backup bucket the init
	// object goes to, and its key (required).
	Bucket, BucketARN, BucketKeyARN pulumi.StringInput
	// InitPrefix is the key prefix the init object goes under, which the
	// bucket protects and replicates like the snapshots (required).
	InitPrefix string
	// Tags are set on every AWS resource that takes tags.
	Tags pulumi.StringMapInput
	// DependsOn are what the Job waits for besides its own resources: the
	// Vault release, so the Job's wait for voter 0 starts once it exists.
	DependsOn []pulumi.Resource
	// DRProvider, an AWS provider for the DR region, replicates the recovery
	// key there: the init object is replicated with the snapshots, and
	// without the key it could not be opened once the region is lost. Nil
	// replicates nothing.
	DRProvider pulumi.ProviderResource
}

// VaultBootstrap is the bootstrap Job and what it needs.
type VaultBootstrap struct {
	pulumi.ResourceState

	// Job is the Job of this revision: whatever needs a configured, healthy
	// Vault depends on it.
	Job *batchv1.Job
	// JobName is the Job's name, <name>-<hash of what it applies>.
	JobName pulumi.StringOutput
	// RecoveryKeyARN is the key the init output is encrypted with; empty
	// in PGP mode.
	RecoveryKeyARN pulumi.StringOutput
	// RecoveryReplicaKeyARN is its replica in the DR region; empty in PGP
	// mode or without DRProvider.
	RecoveryReplicaKeyARN pulumi.StringOutput
	// RoleARN is the Job's IRSA role, which may only publish under init/.
	RoleARN pulumi.StringOutput
	// ReconcileCronJobName is the reconcile CronJob's name, <name>-reconcile.
	ReconcileCronJobName pulumi.StringOutput
	// LoginCommands are the `vault login -method=aws` commands of the
	// access levels Config.Access binds, by level.
	LoginCommands pulumi.StringMapOutput
}

// NewVaultBootstrap validates args, renders the Vault-side configuration,
// and creates the publishing role, the recovery key (KMS mode), the Job's
// service account, its ConfigMap and the Job.
func NewVaultBootstrap(ctx *pulumi.Context, name string, args *VaultBootstrapArgs, opts ...pulumi.ResourceOption) (*VaultBootstrap, error) {
	if err := check(name, args); err != nil {
		return nil, err
	}
	a := args
	host := a.KubernetesHost
	if host == "" {
		host = "https://kubernetes.default.svc"
	}
	login := AWSLogin{Region: a.Region, ServerID: a.LoginServerID}
	p, err := newPlan(planInput{
		Config: a.Config, Setup: a.Setup, Namespace: a.Namespace, Voters: a.Voters,
		AuditFile: a.AuditFile, KubernetesHost: host,
		Login: login,
	})
	if err != nil {
		return nil, err
	}

	comp := &VaultBootstrap{}
	if err := ctx.RegisterComponentResource(TypeToken, name, comp, opts...); err != nil {
		return nil, fmt.Errorf("registering %s: %w", name, err)
	}
	b := &build{ctx: ctx, name: name, args: a, parent: pulumi.Parent(comp)}

	role, err := b.newRole()
	if err != nil {
		return nil, err
	}
	recoveryKey, replicaKey := pulumi.String("").ToStringOutput(), pulumi.String("").ToStringOutput()
	if !a.PGPMode() {
		if recoveryKey, replicaKey, err = b.newRecoveryKey(role.Arn); err != nil {
			return nil, err
		}
	}
	publishPolicy, err := b.newRolePolicy(role, recoveryKey)
	if err != nil {
		return nil, err
	}
	if err := b.newIntakeServiceAccount(); err != nil {
		return nil, err
	}
	job, err := b.newJob(p, role.Arn, recoveryKey, publishPolicy)
	if err != nil {
		return nil, err
	}
	reconcile, err := b.newReconcile(p, job)
	if err != nil {
		return nil, err
	}
	comp.ReconcileCronJobName = reconcile.Metadata.Name().Elem()

	comp.Job = job
	comp.JobName = job.Metadata.Name().Elem()
	comp.RecoveryKeyARN = recoveryKey
	comp.RecoveryReplicaKeyARN = replicaKey
	comp.RoleARN = role.Arn
	commands := map[string]string{}
	for level := range a.Access {
		commands[level] = a.LoginCommand(login, level)
	}
	comp.LoginCommands = pulumi.ToStringMap(commands).ToStringMapOutput()
	if err := ctx.RegisterResourceOutputs(comp, pulumi.Map{
		"jobName":               comp.JobName,
		"recoveryKeyArn":        comp.RecoveryKeyARN,
		"recoveryReplicaKeyArn": comp.RecoveryReplicaKeyARN,
		"roleArn":               comp.RoleARN,
		"reconcileCronJobName":  comp.ReconcileCronJobName,
		"loginCommands":         comp.LoginCommands,
	}); err != nil {
		return nil, fmt.Errorf("registering %s outputs: %w", TypeToken, err)
	}
	return comp, nil
}

// build is one VaultBootstrap under construction.
type build struct {
	ctx    *pulumi.Context
	name   string
	args   *VaultBootstrapArgs
	parent pulumi.ResourceOption
}

// newRole creates the Job's IRSA role, which only its service account may
// assume.
func (b *build) newRole() (*iam.Role, error) {
	a := b.args
	return awsiam.NewIRSARole(b.ctx, b.name, awsiam.IRSARoleArgs{
		Description:     "Vault bootstrap: publish the init object (IRSA)",
		OIDCProviderARN: pulumi.String(a.OIDCProviderARN), OIDCIssuer: pulumi.String(a.OIDCIssuer),
		Namespace: pulumi.String(a.Namespace), ServiceAccount: pulumi.String(a.ServiceAccount),
		Tags: a.Tags,
	}, b.parent)
}

// newRecoveryKey creates the key the init output is encrypted with, and
// its replica in the DR region (DRProvider), both protected and kept:
// without them the init object cannot be opened. It is a multi-Region key
// even without DR, so that a DR region can be added later without
// replacing it.
func (b *build) newRecoveryKey(roleARN pulumi.StringOutput) (key, replica pulumi.StringOutput, err error) {
	a := b.args
	policy := roleARN.ApplyT(func(role string) (string, error) {
		return RecoveryKeyPolicy(a.AccountID, partition(a.OIDCProviderARN), role, a.BreakGlassPrincipals)
	}).(pulumi.StringOutput)
	keep := []pulumi.ResourceOption{b.parent, pulumi.Protect(true), pulumi.RetainOnDelete(true)}
	primary, err := kms.NewKey(b.ctx, b.name+"-recovery", &kms.KeyArgs{
		Description:           pulumi.Sprintf("Vault init output (%s): recovery shares and the revoked root token", b.name),
		CustomerMasterKeySpec: pulumi.String("SYMMETRIC_DEFAULT"),
		KeyUsage:              pulumi.String("ENCRYPT_DECRYPT"),
		MultiRegion:           pulumi.Bool(true),
		EnableKeyRotation:     pulumi.Bool(true),
		DeletionWindowInDays:  pulumi.Int(a.KeyDeletionWindowDays),
		Policy:                policy,
		Tags:                  a.Tags,
	}, keep...)
	if err != nil {
		return key, replica, fmt.Errorf("creating recovery key: %w", err)
	}
	replica = pulumi.String("").ToStringOutput()
	if a.DRProvider != nil {
		r, err := kms.NewReplicaKey(b.ctx, b.name+"-recovery-replica", &kms.ReplicaKeyArgs{
			Description:          pulumi.Sprintf("Vault init output (%s), replica", b.name),
			PrimaryKeyArn:        primary.Arn,
			DeletionWindowInDays: pulumi.Int(a.KeyDeletionWindowDays),
			Policy:               policy,
			Tags:                 a.Tags,
		}, append(keep, pulumi.Provider(a.DRProvider))...)
		if err != nil {
			return key, replica, fmt.Errorf("creating recovery key replica: %w", err)
		}
		replica = r.Arn
	}
	return primary.Arn, replica, nil
}

// newRolePolicy lets the role put objects under init/ only, and encrypt
// with the recovery key (KMS mode). The Job depends on it, not only on the
// role: a role without its policy fails the publish preflight.
func (b *build) newRolePolicy(role *iam.Role, recoveryKey pulumi.StringOutput) (*iam.RolePolicy, error) {
	a := b.args
	doc := pulumi.All(a.BucketARN, a.BucketKeyARN, recoveryKey).ApplyT(func(v []any) (string, error) {
		return PublishPolicy(v[0].(string), a.InitPrefix, v[1].(string), v[2].(string), a.Region)
	}).(pulumi.StringOutput)
	policy, err := iam.NewRolePolicy(b.ctx, b.name+"-publish", &iam.RolePolicyArgs{
		Role:   role.ID(),
		Policy: doc,
	}, b.parent)
	if err != nil {
		return nil, fmt.Errorf("creating bootstrap role policy: %w", err)
	}
	return policy, nil
}

// newIntakeServiceAccount creates, with databases, the identity that may
// only write their one-time admin passwords (Config.IntakeRole). No pod
// runs as it: an operator asks the API server for a token of it
// (Config.IntakeCommand), so who may is whoever Kubernetes RBAC lets
// create its tokens.
func (b *build) newIntakeServiceAccount() error {
	a := b.args
	if len(a.Setup.Databases) == 0 {
		return nil
	}
	if _, err := corev1.NewServiceAccount(b.ctx, b.name+"-"+IntakeName, &corev1.ServiceAccountArgs{
		Metadata: &metav1.ObjectMetaArgs{
			Name: pulumi.String(a.IntakeServiceAccount()), Namespace: pulumi.String(a.Namespace),
			Labels: pulumi.ToStringMap(a.PodLabels),
		},
		AutomountServiceAccountToken: pulumi.Bool(false),
	}, b.parent); err != nil {
		return fmt.Errorf("creating database intake service account: %w", err)
	}
	return nil
}

// newJob creates the service account, the ConfigMap of this revision and
// its Job, which waits for the role's policy as well.
func (b *build) newJob(p plan, roleARN, recoveryKey pulumi.StringOutput, publishPolicy *iam.RolePolicy) (*batchv1.Job, error) {
	a := b.args
	labels := pulumi.ToStringMap(a.PodLabels)
	revision := b.name + "-" + p.hash()

	sa, err := kube.NewIRSAServiceAccount(b.ctx, b.name, pulumi.String(a.ServiceAccount), pulumi.String(a.Namespace), labels, roleARN, b.parent)
	if err != nil {
		return nil, err
	}
	cm, err := corev1.NewConfigMap(b.ctx, b.name, &corev1.ConfigMapArgs{
		Metadata:  &metav1.ObjectMetaArgs{Name: pulumi.String(revision), Namespace: pulumi.String(a.Namespace), Labels: labels},
		Data:      pulumi.ToStringMap(p.Files),
		Immutable: pulumi.Bool(true),
	}, b.parent)
	if err != nil {
		return nil, fmt.Errorf("creating bootstrap ConfigMap: %w", err)
	}

	survey, preflight, init, publish, configure := b.containers(p, recoveryKey)
	pod := &corev1.PodSpecArgs{
		ServiceAccountName:           sa.Metadata.Name(),
		AutomountServiceAccountToken: pulumi.Bool(false),
		EnableServiceLinks:           pulumi.Bool(false),
		RestartPolicy:                pulumi.String("Never"),
		SecurityContext:              kube.PodSecurityContextArgs(kube.RestrictedPodSecurityContext(runAsUser, runAsGroup, runAsGroup)),
		InitContainers:               corev1.ContainerArray{survey, preflight, init, publish},
		Containers:                   corev1.ContainerArray{configure},
		Volumes:                      b.volumes(cm.Metadata.Name()),
	}
	// One attempt: a retry would find init done and its output gone.
	job, err := kube.NewAwaitedJob(b.ctx, b.name, pulumi.String(revision), a.Namespace, labels, pod, a.TimeoutSeconds,
		b.parent, pulumi.DependsOn(append([]pulumi.Resource{sa, publishPolicy}, a.DependsOn...)))
	if err != nil {
		return nil, fmt.Errorf("creating bootstrap Job: %w", err)
	}
	return job, nil
}

// volumes are the pod's volumes: the revision's ConfigMap, the
// memory-backed secrets directory, /tmp, Vault's CA and the projected
// token the configurator logs in with.
func (b *build) volumes(configMap pulumi.StringPtrInput) corev1.VolumeArray {
	return corev1.VolumeArray{
		&corev1.VolumeArgs{Name: pulumi.String("config"), ConfigMap: &corev1.ConfigMapVolumeSourceArgs{Name: configMap}},
		&corev1.VolumeArgs{Name: pulumi.String("secrets"), EmptyDir: &corev1.EmptyDirVolumeSourceArgs{
			Medium: pulumi.String("Memory"), SizeLimit: pulumi.String(secretsLimit),
		}},
		&corev1.VolumeArgs{Name: pulumi.String("tmp"), EmptyDir: &corev1.EmptyDirVolumeSourceArgs{SizeLimit: pulumi.String("64Mi")}},
		&corev1.VolumeArgs{Name: pulumi.String("vault-ca"), Secret: &corev1.SecretVolumeSourceArgs{
			SecretName: b.args.VaultCASecretName,
			Items:      corev1.KeyToPathArray{&corev1.KeyToPathArgs{Key: pulumi.String("ca.crt"), Path: pulumi.String("ca.crt")}},
		}},
		&corev1.VolumeArgs{Name: pulumi.String("vault-token"), Projected: &corev1.ProjectedVolumeSourceArgs{
			Sources: corev1.VolumeProjectionArray{&corev1.VolumeProjectionArgs{
				ServiceAccountToken: &corev1.ServiceAccountTokenProjectionArgs{
					Path: pulumi.String("token"), Audience: pulumi.String(Audience), ExpirationSeconds: pulumi.Int(tokenLifetime),
				},
			}},
		}},
	}
}

// containers are the pod's five steps, each running Script: survey (Vault
// image), preflight (AWS CLI), init (Vault image), publish (AWS CLI),
// configure and gate (Vault image).
func (b *build) containers(p plan, recoveryKey pulumi.StringOutput) (survey, preflight, init, publish, configure *corev1.ContainerArgs) {
	a := b.args
	env := func(name string, value pulumi.StringInput) *corev1.EnvVarArgs {
		return &corev1.EnvVarArgs{Name: pulumi.String(name), Value: value}
	}
	common := corev1.EnvVarArray{
		env("CONFIG_DIR", pulumi.String(ConfigDir)),
		env("SECRETS_DIR", pulumi.String(SecretsDir)),
		env("HOME", pulumi.String("/tmp")),
	}
	for _, k := range validate.SortedKeys(p.Settings) {
		common = append(common, env(k, pulumi.String(p.Settings[k])))
	}
	vaultEnv := append(corev1.EnvVarArray{
		env("VAULT_ADDR", a.VaultAddress),
		env("VAULT_CACERT", pulumi.String(CACertPath)),
		env("JWT_FILE", pulumi.String(TokenPath)),
	}, common...)
	awsEnv := append(corev1.EnvVarArray{
		env("INIT_BUCKET", a.Bucket),
		env("INIT_PREFIX", pulumi.String(a.InitPrefix)),
		env("BUCKET_KEY_ARN", a.BucketKeyARN),
		env("RECOVERY_KEY_ID", recoveryKey),
		env("AWS_REGION", pulumi.String(a.Region)),
	}, common...)

	mount := func(volume, path string, readOnly bool) *corev1.VolumeMountArgs {
		return &corev1.VolumeMountArgs{Name: pulumi.String(volume), MountPath: pulumi.String(path), ReadOnly: pulumi.Bool(readOnly)}
	}
	base := corev1.VolumeMountArray{mount("config", ConfigDir, true), mount("secrets", SecretsDir, false), mount("tmp", "/tmp", false)}
	vaultMounts := append(corev1.VolumeMountArray{
		mount("vault-ca", "/vault/tls", true), mount("vault-token", "/var/run/secrets/vault", true),
	}, base...)

	step := func(name string, image pulumi.StringInput, env corev1.EnvVarArray, mounts corev1.VolumeMountArray) *corev1.ContainerArgs {
		return &corev1.ContainerArgs{
			Name:            pulumi.String(name),
			Image:           image,
			Command:         pulumi.ToStringArray([]string{"/bin/sh", ConfigDir + "/" + scriptFile, name}),
			Env:             env,
			VolumeMounts:    mounts,
			Resources:       a.Resources.Args(),
			SecurityContext: kube.SecurityContextArgs(kube.RestrictedContainerSecurityContext(runAsUser, runAsGroup, true)),
		}
	}
	return step("survey", a.VaultImage, vaultEnv, vaultMounts),
		step("preflight", pulumi.String(a.AWSCLIImage), awsEnv, base),
		step("init", a.VaultImage, vaultEnv, vaultMounts),
		step("publish", pulumi.String(a.AWSCLIImage), awsEnv, base),
		step("configure", a.VaultImage, vaultEnv, vaultMounts)
}

// partition is the AWS partition of an ARN, "aws" when it names none.
func partition(arn string) string {
	if parts := strings.SplitN(arn, ":", 3); len(parts) == 3 && parts[0] == "arn" && parts[1] != "" {
		return parts[1]
	}
	return "aws"
}

func check(name string, args *VaultBootstrapArgs) error {
	if args == nil {
		return errors.New("bootstrap: args are required")
	}
	problems := validate.Problems(args.Validate(name))
	problems.DNSLabel("Namespace", args.Namespace)
	if len(args.Voters) == 0 {
		problems.Addf("Voters", "at least one voter is required")
	}
	problems.NonEmpty("Setup.KVMount", args.Setup.KVMount)
	problems.NonEmpty("Setup.AuthMount", args.Setup.AuthMount)
	if args.Setup.AuthMount == AWSAuthMount {
		problems.Addf("Setup.AuthMount", "%q is the AWS auth method's path (the access levels); mount the Kubernetes auth method elsewhere", AWSAuthMount)
	}
	problems = append(problems, ValidateDatabases("Setup.Databases", args.Setup.Databases)...)
	if len(args.Setup.Databases) > 0 && args.TimeoutSeconds > args.GateTimeoutSeconds && args.TimeoutSeconds <= 2*args.GateTimeoutSeconds {
		problems.Addf(name+".timeoutSeconds", "%d must exceed twice gateTimeoutSeconds (%d) with databases: the Job may wait that long for a database's one-time admin password, and as long again for the gate", args.TimeoutSeconds, args.GateTimeoutSeconds)
	}
	problems.NonEmpty("AuditFile", args.AuditFile)
	problems.NonEmpty("InitPrefix", args.InitPrefix)
	problems.PinnedImage("AWSCLIImage", args.AWSCLIImage)
	if len(args.PodLabels) == 0 {
		problems.Addf("PodLabels", "required: network policies select the Job's pods by them")
	}
	if len(args.ReconcilePodLabels) == 0 {
		problems.Addf("ReconcilePodLabels", "required: network policies select the reconcile CronJob's pods by them")
	}
	problems.NonEmpty("AccountID", args.AccountID)
	problems.NonEmpty("Region", args.Region)
	problems.NonEmpty("LoginServerID", args.LoginServerID)
	problems.NonEmpty("OIDCProviderARN", args.OIDCProviderARN)
	problems.NonEmpty("OIDCIssuer", args.OIDCIssuer)
	problems.Required("VaultAddress", args.VaultAddress)
	problems.Required("VaultImage", args.VaultImage)
	problems.Required("VaultCASecretName", args.VaultCASecretName)
	problems.Required("Bucket", args.Bucket)
	problems.Required("BucketARN", args.BucketARN)
	problems.Required("BucketKeyARN", args.BucketKeyARN)
	if n := len(name) + 11; n > 63 {
		problems.Addf(name, "the Job name <name>-<hash> would be %d characters, over 63; use a shorter component name", n)
	}
	return validate.Err("bootstrap "+name+": invalid args", problems)
}
