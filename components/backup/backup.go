// Package backup provides BackupBucket: a hardened S3 bucket for Vault's
// Raft snapshots, the narrowly scoped IRSA role that may write them, and the
// CronJob that takes a snapshot over TLS and uploads it.
//
// Automated snapshots are a Vault Enterprise feature, hence the CronJob.
package backup

import (
	"errors"
	"fmt"
	"strings"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/iam"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/kms"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/s3"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/secrets-platform/secrets-platform/components/awsiam"
	"github.com/secrets-platform/secrets-platform/components/kube"
)

// TypeToken is the Pulumi type of the BackupBucket component.
const TypeToken = "platform:aws:BackupBucket"

// Defaults for the Args left empty.
const (
	// DefaultSchedule takes a snapshot every 6 hours.
	DefaultSchedule = "0 */6 * * *"
	// DefaultVaultAuthMount is the path the Kubernetes auth method is
	// usually enabled at.
	DefaultVaultAuthMount = "kubernetes"
	// DefaultVaultRole is the Kubernetes auth role of the snapshot job.
	DefaultVaultRole = "raft-snapshot"
	// DefaultKeyDeletionWindowDays is the deletion window of a dedicated key.
	DefaultKeyDeletionWindowDays = 30
)

// abortMultipartDays is when incomplete multipart uploads are cleaned up.
const abortMultipartDays = 7

// BackupBucketArgs configures BackupBucket.
type BackupBucketArgs struct {
	// BucketName is the bucket's name; "" lets Pulumi derive a unique one
	// from the component's name.
	BucketName string
	// Prefix is the key prefix snapshots are written under, e.g.
	// "raft-snapshots" (required; slashes at either end are ignored).
	Prefix string
	// RetentionDays expires snapshots this many days after upload (>= 1).
	RetentionDays int
	// NoncurrentVersionDays deletes a version this many days after it stops
	// being current (>= 1).
	NoncurrentVersionDays int
	// ObjectLockDays > 0 enables S3 Object Lock with a GOVERNANCE default
	// retention of that many days. Object Lock can only be turned on when
	// the bucket is created, and uploads to such a bucket must carry a
	// checksum (the AWS CLI sends one by default since 2.23).
	ObjectLockDays int
	// KMSKeyARN is the key to encrypt snapshots with (a key ARN, not an
	// alias). Its key policy must let IAM policies of this account grant
	// its use. nil creates a dedicated key.
	KMSKeyARN pulumi.StringInput
	// KeyDeletionWindowDays is the deletion window of the dedicated key,
	// 7 to 30; 0 means DefaultKeyDeletionWindowDays.
	KeyDeletionWindowDays int
	// AccountID is the account that owns the bucket (required): the
	// expected bucket owner, and the account administering the dedicated
	// key.
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
	// ServiceAccountName is the snapshot job's service account, created
	// here; "" means the CronJob's name.
	ServiceAccountName string
	// Schedule is the CronJob's schedule (UTC); "" means DefaultSchedule.
	Schedule string
	// VaultAddress is Vault's https:// address, preferably its active
	// service (required).
	VaultAddress pulumi.StringInput
	// VaultCASecretName is the Secret holding the CA that signed Vault's
	// certificate under the key "ca.crt" (required).
	VaultCASecretName pulumi.StringInput
	// VaultAuthMount is the Kubernetes auth method's mount path; "" means
	// DefaultVaultAuthMount.
	VaultAuthMount string
	// VaultRole is the job's role in that auth method, bound to its service
	// account and to SnapshotPolicy; "" means DefaultVaultRole.
	VaultRole string
	// VaultTokenAudience is the audience of the service account token the
	// job logs in to Vault with; it must match the Vault role's audience.
	// "" gives the API server's default audience.
	VaultTokenAudience string
	// VaultImage is the Vault CLI image, pinned by version (required).
	VaultImage string
	// AWSCLIImage is the AWS CLI image, pinned by version (required).
	AWSCLIImage string
	// Resources are the requests and limits of each container (both
	// required).
	Resources kube.Resources
	// Tags are set on every AWS resource that takes tags.
	Tags pulumi.StringMapInput
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
}

// NewBackupBucket creates the bucket, its guards, the job's role, and the
// snapshot CronJob.
//
// The bucket and a dedicated key are protected and retained on delete. The
// bucket's guards (public access block, policy, encryption, versioning,
// ownership, lifecycle, object lock) are retained on delete, so the bucket
// is never left behind without them, and a replaced guard is never removed
// after its replacement was written.
func NewBackupBucket(ctx *pulumi.Context, name string, args *BackupBucketArgs, opts ...pulumi.ResourceOption) (*BackupBucket, error) {
	cfg, err := resolve(name, args)
	if err != nil {
		return nil, err
	}

	comp := &BackupBucket{}
	if err := ctx.RegisterComponentResource(TypeToken, name, comp, opts...); err != nil {
		return nil, fmt.Errorf("registering %s: %w", TypeToken, err)
	}
	parent := pulumi.Parent(comp)
	keep := []pulumi.ResourceOption{parent, pulumi.Protect(true), pulumi.RetainOnDelete(true)}
	guard := []pulumi.ResourceOption{parent, pulumi.RetainOnDelete(true)}
	owner := args.AccountID.ToStringOutput()

	var keyARN pulumi.StringOutput
	if args.KMSKeyARN != nil {
		keyARN = args.KMSKeyARN.ToStringOutput()
	} else {
		keyPolicy := pulumi.All(args.OIDCProviderARN, args.AccountID).ApplyT(func(v []any) (string, error) {
			return accountKeyPolicy(v[0].(string), v[1].(string))
		}).(pulumi.StringOutput)
		key, err := kms.NewKey(ctx, name+"-key", &kms.KeyArgs{
			Description:           pulumi.Sprintf("Vault Raft snapshots (%s)", name),
			CustomerMasterKeySpec: pulumi.String("SYMMETRIC_DEFAULT"),
			KeyUsage:              pulumi.String("ENCRYPT_DECRYPT"),
			EnableKeyRotation:     pulumi.Bool(true),
			DeletionWindowInDays:  pulumi.Int(cfg.keyWindow),
			Policy:                keyPolicy,
			Tags:                  args.Tags,
		}, keep...)
		if err != nil {
			return nil, fmt.Errorf("creating snapshot key: %w", err)
		}
		keyARN = key.Arn
	}

	bucketArgs := &s3.BucketV2Args{
		ForceDestroy: pulumi.Bool(false),
		Tags:         args.Tags,
	}
	if args.BucketName != "" {
		bucketArgs.Bucket = pulumi.String(args.BucketName)
	}
	if args.ObjectLockDays > 0 {
		// Only possible at creation; it also turns versioning on.
		bucketArgs.ObjectLockEnabled = pulumi.Bool(true)
	}
	bucket, err := s3.NewBucketV2(ctx, name+"-bucket", bucketArgs, keep...)
	if err != nil {
		return nil, fmt.Errorf("creating snapshot bucket: %w", err)
	}

	pab, err := s3.NewBucketPublicAccessBlock(ctx, name+"-public-access", &s3.BucketPublicAccessBlockArgs{
		Bucket:                bucket.ID(),
		BlockPublicAcls:       pulumi.Bool(true),
		BlockPublicPolicy:     pulumi.Bool(true),
		IgnorePublicAcls:      pulumi.Bool(true),
		RestrictPublicBuckets: pulumi.Bool(true),
	}, guard...)
	if err != nil {
		return nil, fmt.Errorf("blocking public access: %w", err)
	}

	bucketPolicy := pulumi.All(bucket.Arn, keyARN).ApplyT(func(v []any) (string, error) {
		return BucketPolicy(v[0].(string), v[1].(string))
	}).(pulumi.StringOutput)
	// After the public access block, as the Terraform module does: S3
	// rejects concurrent changes to a bucket's access settings.
	policy, err := s3.NewBucketPolicy(ctx, name+"-policy", &s3.BucketPolicyArgs{
		Bucket: bucket.ID(),
		Policy: bucketPolicy,
	}, append(guard, pulumi.DependsOn([]pulumi.Resource{pab}))...)
	if err != nil {
		return nil, fmt.Errorf("creating bucket policy: %w", err)
	}

	if _, err := s3.NewBucketOwnershipControls(ctx, name+"-ownership", &s3.BucketOwnershipControlsArgs{
		Bucket: bucket.ID(),
		Rule:   &s3.BucketOwnershipControlsRuleArgs{ObjectOwnership: pulumi.String("BucketOwnerEnforced")},
	}, append(guard, pulumi.DependsOn([]pulumi.Resource{policy}))...); err != nil {
		return nil, fmt.Errorf("enforcing bucket ownership: %w", err)
	}

	versioning, err := s3.NewBucketVersioningV2(ctx, name+"-versioning", &s3.BucketVersioningV2Args{
		Bucket:                  bucket.ID(),
		ExpectedBucketOwner:     owner,
		VersioningConfiguration: &s3.BucketVersioningV2VersioningConfigurationArgs{Status: pulumi.String("Enabled")},
	}, guard...)
	if err != nil {
		return nil, fmt.Errorf("enabling versioning: %w", err)
	}

	if _, err := s3.NewBucketServerSideEncryptionConfigurationV2(ctx, name+"-encryption", &s3.BucketServerSideEncryptionConfigurationV2Args{
		Bucket:              bucket.ID(),
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
	}, guard...); err != nil {
		return nil, fmt.Errorf("configuring bucket encryption: %w", err)
	}

	if _, err := s3.NewBucketLifecycleConfigurationV2(ctx, name+"-lifecycle", &s3.BucketLifecycleConfigurationV2Args{
		Bucket:              bucket.ID(),
		ExpectedBucketOwner: owner,
		Rules: s3.BucketLifecycleConfigurationV2RuleArray{
			// With Days set, S3 also removes the delete markers left once
			// the noncurrent versions are gone.
			&s3.BucketLifecycleConfigurationV2RuleArgs{
				Id:     pulumi.String("expire-snapshots"),
				Status: pulumi.String("Enabled"),
				Filter: &s3.BucketLifecycleConfigurationV2RuleFilterArgs{Prefix: pulumi.String(cfg.prefix + "/")},
				Expiration: &s3.BucketLifecycleConfigurationV2RuleExpirationArgs{
					Days: pulumi.Int(args.RetentionDays),
				},
				NoncurrentVersionExpiration: &s3.BucketLifecycleConfigurationV2RuleNoncurrentVersionExpirationArgs{
					NoncurrentDays: pulumi.Int(args.NoncurrentVersionDays),
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
		},
		// Lifecycle rules on versions need versioning first.
	}, append(guard, pulumi.DependsOn([]pulumi.Resource{versioning}))...); err != nil {
		return nil, fmt.Errorf("configuring bucket lifecycle: %w", err)
	}

	if args.ObjectLockDays > 0 {
		if _, err := s3.NewBucketObjectLockConfigurationV2(ctx, name+"-object-lock", &s3.BucketObjectLockConfigurationV2Args{
			Bucket:              bucket.ID(),
			ExpectedBucketOwner: owner,
			Rule: &s3.BucketObjectLockConfigurationV2RuleArgs{
				DefaultRetention: &s3.BucketObjectLockConfigurationV2RuleDefaultRetentionArgs{
					Mode: pulumi.String("GOVERNANCE"),
					Days: pulumi.Int(args.ObjectLockDays),
				},
			},
		}, append(guard, pulumi.DependsOn([]pulumi.Resource{versioning}))...); err != nil {
			return nil, fmt.Errorf("configuring object lock: %w", err)
		}
	}

	trust := pulumi.All(args.OIDCProviderARN, args.OIDCIssuer, args.Namespace).ApplyT(func(v []any) (string, error) {
		return awsiam.IRSATrust(v[0].(string), v[1].(string), v[2].(string), cfg.serviceAccount).JSON()
	}).(pulumi.StringOutput)
	role, err := iam.NewRole(ctx, name+"-job", &iam.RoleArgs{
		Description:      pulumi.String("Vault Raft snapshot upload (IRSA)"),
		AssumeRolePolicy: trust,
		Tags:             args.Tags,
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("creating snapshot job role: %w", err)
	}
	rolePolicy := pulumi.All(bucket.Arn, keyARN, args.Region).ApplyT(func(v []any) (string, error) {
		return UploadPolicy(v[0].(string), cfg.prefix, v[1].(string), v[2].(string))
	}).(pulumi.StringOutput)
	if _, err := iam.NewRolePolicy(ctx, name+"-job-upload", &iam.RolePolicyArgs{
		Role:   role.Name,
		Policy: rolePolicy,
	}, parent); err != nil {
		return nil, fmt.Errorf("creating snapshot job role policy: %w", err)
	}

	cronJob, err := newSnapshotJob(ctx, name, cfg, args, jobTargets{
		bucket: bucket.Bucket, keyARN: keyARN, roleARN: role.Arn,
	}, parent)
	if err != nil {
		return nil, err
	}

	comp.BucketName = bucket.Bucket
	comp.BucketARN = bucket.Arn
	comp.RoleARN = role.Arn
	comp.CronJobName = cronJob.Metadata.Name().Elem()
	comp.KMSKeyARN = keyARN
	if err := ctx.RegisterResourceOutputs(comp, pulumi.Map{
		"bucketName":  comp.BucketName,
		"bucketArn":   comp.BucketARN,
		"roleArn":     comp.RoleARN,
		"cronJobName": comp.CronJobName,
		"kmsKeyArn":   comp.KMSKeyARN,
	}); err != nil {
		return nil, fmt.Errorf("registering %s outputs: %w", TypeToken, err)
	}
	return comp, nil
}

// settings are the Args with defaults filled in.
type settings struct {
	prefix         string
	keyWindow      int
	serviceAccount string
	cronJobName    string
	schedule       string
	authMount      string
	vaultRole      string
}

// maxCronJobName: the CronJob controller appends an 11-character suffix to
// name its Jobs, which must fit in 63.
const maxCronJobName = 52

func resolve(name string, args *BackupBucketArgs) (settings, error) {
	if args == nil {
		return settings{}, errors.New("backup: args are required")
	}
	s := settings{
		prefix:         strings.Trim(args.Prefix, "/"),
		keyWindow:      args.KeyDeletionWindowDays,
		serviceAccount: args.ServiceAccountName,
		cronJobName:    name + "-snapshot",
		schedule:       args.Schedule,
		authMount:      strings.Trim(args.VaultAuthMount, "/"),
		vaultRole:      args.VaultRole,
	}
	if s.keyWindow == 0 {
		s.keyWindow = DefaultKeyDeletionWindowDays
	}
	if s.serviceAccount == "" {
		s.serviceAccount = s.cronJobName
	}
	if s.schedule == "" {
		s.schedule = DefaultSchedule
	}
	if s.authMount == "" {
		s.authMount = DefaultVaultAuthMount
	}
	if s.vaultRole == "" {
		s.vaultRole = DefaultVaultRole
	}

	switch {
	case s.prefix == "":
		return s, errors.New("backup: Prefix is required")
	case args.RetentionDays < 1:
		return s, fmt.Errorf("backup: RetentionDays is %d, must be at least 1", args.RetentionDays)
	case args.NoncurrentVersionDays < 1:
		return s, fmt.Errorf("backup: NoncurrentVersionDays is %d, must be at least 1", args.NoncurrentVersionDays)
	case args.ObjectLockDays < 0:
		return s, fmt.Errorf("backup: ObjectLockDays is %d, must be 0 (off) or more", args.ObjectLockDays)
	case len(s.cronJobName) > maxCronJobName:
		return s, fmt.Errorf("backup: CronJob name %q is longer than %d characters; use a shorter component name", s.cronJobName, maxCronJobName)
	case args.VaultImage == "" || args.AWSCLIImage == "":
		return s, errors.New("backup: VaultImage and AWSCLIImage are required")
	case len(args.Resources.Requests) == 0 || len(args.Resources.Limits) == 0:
		return s, errors.New("backup: Resources needs both requests and limits")
	}
	if _, err := args.Resources.Requirements(); err != nil {
		return s, fmt.Errorf("backup: Resources: %w", err)
	}
	required := []struct {
		field string
		value pulumi.StringInput
	}{
		{"AccountID", args.AccountID},
		{"Region", args.Region},
		{"OIDCProviderARN", args.OIDCProviderARN},
		{"OIDCIssuer", args.OIDCIssuer},
		{"Namespace", args.Namespace},
		{"VaultAddress", args.VaultAddress},
		{"VaultCASecretName", args.VaultCASecretName},
	}
	for _, r := range required {
		if r.value == nil {
			return s, fmt.Errorf("backup: %s is required", r.field)
		}
	}
	return s, nil
}
