// Package backup provides BackupBucket: a hardened S3 bucket for Vault's
// Raft snapshots, the narrowly scoped IRSA role that may write them, the
// CronJob that takes a snapshot over TLS and uploads it, a replica of the
// bucket in a disaster-recovery region, and the restore drill that proves
// the newest snapshot restores.
//
// Automated snapshots are a Vault Enterprise feature, hence the CronJob.
package backup

import (
	"errors"
	"fmt"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/iam"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/kms"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/s3"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/secrets-platform/secrets-platform/components/awsiam"
	"github.com/secrets-platform/secrets-platform/components/validate"
)

// TypeToken is the Pulumi type of the BackupBucket component.
const TypeToken = "platform:aws:BackupBucket"

// abortMultipartDays is when incomplete multipart uploads are cleaned up.
const abortMultipartDays = 7

// maxCronJobName: the CronJob controller appends an 11-character suffix to
// name its Jobs, which must fit in 63.
const maxCronJobName = 52

// BackupBucketArgs configures BackupBucket: its Config and the inputs that
// come from the cluster, the account and HardenedVault.
type BackupBucketArgs struct {
	Config
	// AccountID is the account that owns the bucket (required): the
	// expected bucket owner, and the account administering a created key.
	AccountID pulumi.StringInput
	// Region is the bucket's region (required): the upload's AWS_REGION
	// and the only S3 endpoint the role may use the key through.
	Region pulumi.StringInput
	// OIDCProviderARN is the EKS cluster's IAM OIDC provider (required).
	OIDCProviderARN pulumi.StringInput
	// OIDCIssuer is the cluster's OIDC issuer URL, with or without
	// "https://" (required).
	OIDCIssuer pulumi.StringInput
	// Namespace is where the CronJob and its service account live, Vault's
	// namespace (required).
	Namespace pulumi.StringInput
	// VaultAddress is the address of Vault's active node (required):
	// through a standby, the snapshot request is redirected to the active
	// node's api_addr, which the job would have to reach and trust too.
	VaultAddress pulumi.StringInput
	// VaultImage runs the snapshot: the servers' image, so the CLI speaks
	// their version (required).
	VaultImage pulumi.StringInput
	// VaultCASecretName is the Secret holding the CA that signed Vault's
	// certificate under the key "ca.crt" (required).
	VaultCASecretName pulumi.StringInput
	// Tags are set on every AWS resource that takes tags.
	Tags pulumi.StringMapInput
	// SnapshotsAfter are resources the CronJob is created after: what makes
	// Vault accept its login (the platform's bootstrap Job). An input, so
	// they may be created after this component, from its bucket.
	SnapshotsAfter pulumi.ResourceArrayInput
	// Replica replicates the snapshots and init/ to a bucket in another
	// region; nil replicates nothing.
	Replica *ReplicaArgs
	// RestoreDrill is what the restore drill needs from KMSUnseal (required
	// when Config.Drill.Enabled).
	RestoreDrill *RestoreDrillArgs
}

// ReplicaArgs is the disaster-recovery copy of the bucket.
type ReplicaArgs struct {
	// Region is the DR region (required), not Region.
	Region string
	// Provider is an AWS provider for Region (required): the replica bucket
	// and its key are created through it.
	Provider pulumi.ProviderResource
	// ReplicationTimeControl turns on S3 Replication Time Control (15
	// minutes, at extra cost) with its metrics.
	ReplicationTimeControl bool
}

// RestoreDrillArgs is the drill's identity and the seal its throwaway Vault
// unseals with: KMSUnseal's outputs.
type RestoreDrillArgs struct {
	// RoleARN is the drill's IRSA role, which may use the unseal key as
	// Vault does (required). The component adds the read of snapshots.
	RoleARN pulumi.StringInput
	// RoleName is that role's name (required).
	RoleName pulumi.StringInput
	// SealRegion and SealKMSKeyID are the awskms seal of Vault (required):
	// the restored root key is wrapped by that key, and only it opens it.
	SealRegion   pulumi.StringInput
	SealKMSKeyID pulumi.StringInput
	// AuditDir is the directory the cluster's file audit device writes to
	// (an absolute path; "" for none). The snapshot carries the device and
	// the restored Vault opens it, so the drill mounts a writable volume
	// there: its root filesystem is read-only.
	AuditDir string
}

// BackupBucket is the snapshot bucket, its writer role and the CronJob.
type BackupBucket struct {
	pulumi.ResourceState

	// BucketName is the bucket's name.
	BucketName pulumi.StringOutput
	// BucketARN is the bucket's ARN.
	BucketARN pulumi.StringOutput
	// RoleARN is the snapshot job's IRSA role.
	RoleARN pulumi.StringOutput
	// CronJobName is the CronJob's metadata.name.
	CronJobName pulumi.StringOutput
	// KMSKeyARN is the key snapshots are encrypted with.
	KMSKeyARN pulumi.StringOutput
	// ReplicaBucketName and ReplicaBucketARN are the replica in the DR
	// region; empty without Replica.
	ReplicaBucketName pulumi.StringOutput
	ReplicaBucketARN  pulumi.StringOutput
	// ReplicaKMSKeyARN encrypts the replica; empty without Replica.
	ReplicaKMSKeyARN pulumi.StringOutput
	// RestoreDrillCronJobName is the drill CronJob's metadata.name; empty
	// without the drill.
	RestoreDrillCronJobName pulumi.StringOutput
}

// NewBackupBucket validates args, then creates the snapshot key (unless
// Config.KMSKeyARN names one), the hardened bucket, the job's upload role,
// the snapshot CronJob, with Replica the replica bucket in the DR region and
// the replication, and with Config.Drill the restore drill, in that order.
//
// The buckets and created keys are protected and retained on delete. The
// bucket's guards (public access block, policy, encryption, versioning,
// ownership, lifecycle, object lock) are retained on delete, so the bucket
// is never left behind without them, and a replaced guard is never removed
// after its replacement was written.
func NewBackupBucket(ctx *pulumi.Context, name string, args *BackupBucketArgs, opts ...pulumi.ResourceOption) (*BackupBucket, error) {
	if err := check(name, args); err != nil {
		return nil, err
	}
	comp := &BackupBucket{}
	if err := ctx.RegisterComponentResource(TypeToken, name, comp, opts...); err != nil {
		return nil, fmt.Errorf("registering %s: %w", TypeToken, err)
	}
	b := &build{ctx: ctx, name: name, args: args, parent: pulumi.Parent(comp)}

	keyARN, err := b.newSnapshotKey()
	if err != nil {
		return nil, err
	}
	primary, err := b.newHardenedBucket(bucketSpec{prefix: name, bucketName: args.BucketName, keyARN: keyARN})
	if err != nil {
		return nil, err
	}
	bucket := primary.bucket
	role, err := b.newUploadRole(bucket.Arn, keyARN)
	if err != nil {
		return nil, err
	}
	cronJob, err := b.newSnapshotJob(jobTargets{bucket: bucket.Bucket, keyARN: keyARN, roleARN: role.Arn})
	if err != nil {
		return nil, err
	}

	comp.BucketName = bucket.Bucket
	comp.BucketARN = bucket.Arn
	comp.RoleARN = role.Arn
	comp.CronJobName = cronJob.Metadata.Name().Elem()
	comp.KMSKeyARN = keyARN
	empty := pulumi.String("").ToStringOutput()
	comp.ReplicaBucketName, comp.ReplicaBucketARN, comp.ReplicaKMSKeyARN = empty, empty, empty
	if args.Replica != nil {
		replica, replicaKey, err := b.newReplica(primary, keyARN)
		if err != nil {
			return nil, err
		}
		comp.ReplicaBucketName, comp.ReplicaBucketARN, comp.ReplicaKMSKeyARN = replica.Bucket, replica.Arn, replicaKey
	}
	comp.RestoreDrillCronJobName = empty
	if args.Drill.Enabled {
		drill, err := b.newRestoreDrill(bucket, keyARN)
		if err != nil {
			return nil, err
		}
		comp.RestoreDrillCronJobName = drill.Metadata.Name().Elem()
	}
	if err := ctx.RegisterResourceOutputs(comp, pulumi.Map{
		"bucketName":              comp.BucketName,
		"bucketArn":               comp.BucketARN,
		"roleArn":                 comp.RoleARN,
		"cronJobName":             comp.CronJobName,
		"kmsKeyArn":               comp.KMSKeyARN,
		"replicaBucketName":       comp.ReplicaBucketName,
		"replicaBucketArn":        comp.ReplicaBucketARN,
		"replicaKmsKeyArn":        comp.ReplicaKMSKeyARN,
		"restoreDrillCronJobName": comp.RestoreDrillCronJobName,
	}); err != nil {
		return nil, fmt.Errorf("registering %s outputs: %w", TypeToken, err)
	}
	return comp, nil
}

// build is one BackupBucket under construction: the validated args every
// step reads, and the component its resources belong to.
type build struct {
	ctx    *pulumi.Context
	name   string
	args   *BackupBucketArgs
	parent pulumi.ResourceOption
}

// keep protects what holds the snapshots: the buckets and created keys;
// with adds options such as the DR region's provider.
func (b *build) keep(with ...pulumi.ResourceOption) []pulumi.ResourceOption {
	return append([]pulumi.ResourceOption{b.parent, pulumi.Protect(true), pulumi.RetainOnDelete(true)}, with...)
}

// guard keeps a bucket guard on delete; after lists what it must follow.
func (b *build) guard(with []pulumi.ResourceOption, after ...pulumi.Resource) []pulumi.ResourceOption {
	opts := append([]pulumi.ResourceOption{b.parent, pulumi.RetainOnDelete(true)}, with...)
	if len(after) > 0 {
		opts = append(opts, pulumi.DependsOn(after))
	}
	return opts
}

// cronJobName is the CronJob's metadata.name for the component name.
func cronJobName(name string) string { return name + "-snapshot" }

// newSnapshotKey returns the ARN of Config.KMSKeyARN, or creates a
// dedicated key that only IAM policies of the account (and so the upload
// role) may grant.
func (b *build) newSnapshotKey() (pulumi.StringOutput, error) {
	if a := b.args; a.KMSKeyARN != "" {
		return pulumi.String(a.KMSKeyARN).ToStringOutput(), nil
	}
	key, err := b.newBucketKey(b.name+"-key", pulumi.Sprintf("Vault Raft snapshots (%s)", b.name))
	if err != nil {
		return pulumi.StringOutput{}, fmt.Errorf("creating snapshot key: %w", err)
	}
	return key, nil
}

// newBucketKey creates a protected bucket key whose use the account's IAM
// policies grant; with adds options such as the DR region's provider.
func (b *build) newBucketKey(name string, description pulumi.StringInput, with ...pulumi.ResourceOption) (pulumi.StringOutput, error) {
	a := b.args
	keyPolicy := pulumi.All(a.OIDCProviderARN, a.AccountID).ApplyT(func(v []any) (string, error) {
		return accountKeyPolicy(v[0].(string), v[1].(string))
	}).(pulumi.StringOutput)
	key, err := kms.NewKey(b.ctx, name, &kms.KeyArgs{
		Description:           description,
		CustomerMasterKeySpec: pulumi.String("SYMMETRIC_DEFAULT"),
		KeyUsage:              pulumi.String("ENCRYPT_DECRYPT"),
		EnableKeyRotation:     pulumi.Bool(true),
		DeletionWindowInDays:  pulumi.Int(a.KeyDeletionWindowDays),
		Policy:                keyPolicy,
		Tags:                  a.Tags,
	}, b.keep(with...)...)
	if err != nil {
		return pulumi.StringOutput{}, err
	}
	return key.Arn, nil
}

// bucketSpec says which hardened bucket to create: the snapshot bucket or
// its replica in the DR region.
type bucketSpec struct {
	// prefix starts the Pulumi names of the bucket and its guards.
	prefix string
	// bucketName is the bucket's name; "" lets Pulumi name it.
	bucketName string
	// keyARN is the bucket's default encryption key, the only one the
	// bucket policy admits.
	keyARN pulumi.StringOutput
	// with adds options to every resource, such as a provider.
	with []pulumi.ResourceOption
}

// hardenedBucket is a bucket and the guard that replication must follow.
type hardenedBucket struct {
	bucket     *s3.BucketV2
	versioning *s3.BucketVersioningV2
}

// newHardenedBucket creates the bucket and its six guards. Their order is
// S3's, not a style: the DependsOn edges say which guard must follow which.
func (b *build) newHardenedBucket(spec bucketSpec) (hardenedBucket, error) {
	a := b.args
	keyARN, with := spec.keyARN, spec.with
	bucketArgs := &s3.BucketV2Args{ForceDestroy: pulumi.Bool(false), Tags: a.Tags}
	if spec.bucketName != "" {
		bucketArgs.Bucket = pulumi.String(spec.bucketName)
	}
	if a.ObjectLockDays > 0 {
		// Only possible at creation; it also turns versioning on.
		bucketArgs.ObjectLockEnabled = pulumi.Bool(true)
	}
	bucket, err := s3.NewBucketV2(b.ctx, spec.prefix+"-bucket", bucketArgs, b.keep(with...)...)
	if err != nil {
		return hardenedBucket{}, fmt.Errorf("creating snapshot bucket: %w", err)
	}
	id, owner := bucket.ID(), a.AccountID.ToStringOutput()

	pab, err := s3.NewBucketPublicAccessBlock(b.ctx, spec.prefix+"-public-access", &s3.BucketPublicAccessBlockArgs{
		Bucket:                id,
		BlockPublicAcls:       pulumi.Bool(true),
		BlockPublicPolicy:     pulumi.Bool(true),
		IgnorePublicAcls:      pulumi.Bool(true),
		RestrictPublicBuckets: pulumi.Bool(true),
	}, b.guard(with)...)
	if err != nil {
		return hardenedBucket{}, fmt.Errorf("blocking public access: %w", err)
	}

	bucketPolicy := pulumi.All(bucket.Arn, keyARN).ApplyT(func(v []any) (string, error) {
		return BucketPolicy(v[0].(string), v[1].(string))
	}).(pulumi.StringOutput)
	// The policy after the public access block, and ownership after the
	// policy, as the Terraform module does: S3 rejects concurrent changes
	// to a bucket's access settings.
	policy, err := s3.NewBucketPolicy(b.ctx, spec.prefix+"-policy", &s3.BucketPolicyArgs{
		Bucket: id,
		Policy: bucketPolicy,
	}, b.guard(with, pab)...)
	if err != nil {
		return hardenedBucket{}, fmt.Errorf("creating bucket policy: %w", err)
	}
	if _, err := s3.NewBucketOwnershipControls(b.ctx, spec.prefix+"-ownership", &s3.BucketOwnershipControlsArgs{
		Bucket: id,
		Rule:   &s3.BucketOwnershipControlsRuleArgs{ObjectOwnership: pulumi.String("BucketOwnerEnforced")},
	}, b.guard(with, policy)...); err != nil {
		return hardenedBucket{}, fmt.Errorf("enforcing bucket ownership: %w", err)
	}

	versioning, err := s3.NewBucketVersioningV2(b.ctx, spec.prefix+"-versioning", &s3.BucketVersioningV2Args{
		Bucket:                  id,
		ExpectedBucketOwner:     owner,
		VersioningConfiguration: &s3.BucketVersioningV2VersioningConfigurationArgs{Status: pulumi.String("Enabled")},
	}, b.guard(with)...)
	if err != nil {
		return hardenedBucket{}, fmt.Errorf("enabling versioning: %w", err)
	}

	if _, err := s3.NewBucketServerSideEncryptionConfigurationV2(b.ctx, spec.prefix+"-encryption", &s3.BucketServerSideEncryptionConfigurationV2Args{
		Bucket:              id,
		ExpectedBucketOwner: owner,
		Rules: s3.BucketServerSideEncryptionConfigurationV2RuleArray{
			&s3.BucketServerSideEncryptionConfigurationV2RuleArgs{
				ApplyServerSideEncryptionByDefault: &s3.BucketServerSideEncryptionConfigurationV2RuleApplyServerSideEncryptionByDefaultArgs{
					SseAlgorithm:   pulumi.String("aws:kms"),
					KmsMasterKeyId: keyARN,
				},
				// One KMS request per bucket key instead of per object.
				BucketKeyEnabled: pulumi.Bool(true),
			},
		},
	}, b.guard(with)...); err != nil {
		return hardenedBucket{}, fmt.Errorf("configuring bucket encryption: %w", err)
	}

	// Lifecycle rules on versions, and object lock, need versioning first.
	if _, err := s3.NewBucketLifecycleConfigurationV2(b.ctx, spec.prefix+"-lifecycle", &s3.BucketLifecycleConfigurationV2Args{
		Bucket:              id,
		ExpectedBucketOwner: owner,
		Rules:               lifecycleRules(a.Config),
	}, b.guard(with, versioning)...); err != nil {
		return hardenedBucket{}, fmt.Errorf("configuring bucket lifecycle: %w", err)
	}
	if a.ObjectLockDays > 0 {
		if _, err := s3.NewBucketObjectLockConfigurationV2(b.ctx, spec.prefix+"-object-lock", &s3.BucketObjectLockConfigurationV2Args{
			Bucket:              id,
			ExpectedBucketOwner: owner,
			Rule: &s3.BucketObjectLockConfigurationV2RuleArgs{
				DefaultRetention: &s3.BucketObjectLockConfigurationV2RuleDefaultRetentionArgs{
					Mode: pulumi.String("GOVERNANCE"),
					Days: pulumi.Int(a.ObjectLockDays),
				},
			},
		}, b.guard(with, versioning)...); err != nil {
			return hardenedBucket{}, fmt.Errorf("configuring object lock: %w", err)
		}
	}
	return hardenedBucket{bucket: bucket, versioning: versioning}, nil
}

// lifecycleRules expire snapshots and their old versions under the prefix,
// and incomplete uploads anywhere in the bucket.
func lifecycleRules(c Config) s3.BucketLifecycleConfigurationV2RuleArray {
	return s3.BucketLifecycleConfigurationV2RuleArray{
		// With Days set, S3 also removes the delete markers left once the
		// noncurrent versions are gone.
		&s3.BucketLifecycleConfigurationV2RuleArgs{
			Id:     pulumi.String("expire-snapshots"),
			Status: pulumi.String("Enabled"),
			Filter: &s3.BucketLifecycleConfigurationV2RuleFilterArgs{Prefix: pulumi.String(c.Prefix + "/")},
			Expiration: &s3.BucketLifecycleConfigurationV2RuleExpirationArgs{
				Days: pulumi.Int(c.RetentionDays),
			},
			NoncurrentVersionExpiration: &s3.BucketLifecycleConfigurationV2RuleNoncurrentVersionExpirationArgs{
				NoncurrentDays: pulumi.Int(c.NoncurrentVersionDays),
			},
		},
		&s3.BucketLifecycleConfigurationV2RuleArgs{
			Id:     pulumi.String("abort-incomplete-multipart-uploads"),
			Status: pulumi.String("Enabled"),
			Filter: &s3.BucketLifecycleConfigurationV2RuleFilterArgs{}, // the whole bucket
			AbortIncompleteMultipartUpload: &s3.BucketLifecycleConfigurationV2RuleAbortIncompleteMultipartUploadArgs{
				DaysAfterInitiation: pulumi.Int(abortMultipartDays),
			},
		},
	}
}

// newUploadRole creates the job's IRSA role, which only its service account
// may assume, allowed to write under the prefix with the bucket's key.
func (b *build) newUploadRole(bucketARN, keyARN pulumi.StringOutput) (*iam.Role, error) {
	a := b.args
	role, err := awsiam.NewIRSARole(b.ctx, b.name+"-job", awsiam.IRSARoleArgs{
		Description:     "Vault Raft snapshot upload (IRSA)",
		OIDCProviderARN: a.OIDCProviderARN, OIDCIssuer: a.OIDCIssuer,
		Namespace: a.Namespace, ServiceAccount: pulumi.String(a.ServiceAccount),
		Tags: a.Tags,
	}, b.parent)
	if err != nil {
		return nil, err
	}
	rolePolicy := pulumi.All(bucketARN, keyARN, a.Region).ApplyT(func(v []any) (string, error) {
		return UploadPolicy(v[0].(string), a.Prefix, v[1].(string), v[2].(string))
	}).(pulumi.StringOutput)
	if _, err := iam.NewRolePolicy(b.ctx, b.name+"-job-upload", &iam.RolePolicyArgs{
		Role:   role.Name,
		Policy: rolePolicy,
	}, b.parent); err != nil {
		return nil, fmt.Errorf("creating snapshot job role policy: %w", err)
	}
	return role, nil
}

// check validates the Config and requires the inputs, before anything is
// registered.
func check(name string, args *BackupBucketArgs) error {
	if args == nil {
		return errors.New("backup: args are required")
	}
	problems := validate.Problems(args.Validate(name))
	if n := cronJobName(name); len(n) > maxCronJobName {
		problems.Addf(name, "the CronJob name %q is longer than %d characters; use a shorter component name", n, maxCronJobName)
	}
	problems.Required("AccountID", args.AccountID)
	problems.Required("Region", args.Region)
	problems.Required("OIDCProviderARN", args.OIDCProviderARN)
	problems.Required("OIDCIssuer", args.OIDCIssuer)
	problems.Required("Namespace", args.Namespace)
	problems.Required("VaultAddress", args.VaultAddress)
	problems.Required("VaultImage", args.VaultImage)
	problems.Required("VaultCASecretName", args.VaultCASecretName)
	if r := args.Replica; r != nil {
		problems = append(problems, args.ValidateReplica(name, r.Region)...)
		switch {
		case !validate.IsRegion(r.Region):
			problems.Addf("Replica.Region", "%q is not an AWS region such as eu-central-1", r.Region)
		case r.Provider == nil:
			problems.Addf("Replica.Provider", "required: an AWS provider for %s", r.Region)
		}
	}
	if args.Drill.Enabled {
		if n := drillCronJobName(name); len(n) > maxCronJobName {
			problems.Addf(name, "the CronJob name %q is longer than %d characters; use a shorter component name", n, maxCronJobName)
		}
		if d := args.RestoreDrill; d == nil {
			problems.Addf("RestoreDrill", "required while %s is true: the drill's role and Vault's seal", validate.Join(name, "drill.enabled"))
		} else {
			problems.Required("RestoreDrill.RoleARN", d.RoleARN)
			problems.Required("RestoreDrill.RoleName", d.RoleName)
			problems.Required("RestoreDrill.SealRegion", d.SealRegion)
			problems.Required("RestoreDrill.SealKMSKeyID", d.SealKMSKeyID)
			checkAuditDir(&problems, d.AuditDir)
		}
	}
	return validate.Err("backup "+name+": invalid args", problems)
}
