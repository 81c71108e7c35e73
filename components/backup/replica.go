package backup

import (
	"fmt"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/iam"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/s3"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/secrets-platform/secrets-platform/components/awsiam"
)

// InitPrefix is the key prefix, beside the snapshots, where the bootstrap
// publishes what a restore needs besides a snapshot (the recovery shares,
// encrypted to their holders); it is replicated with the snapshots.
const InitPrefix = "init"

// replicationTimeMinutes is S3 Replication Time Control's only threshold.
const replicationTimeMinutes = 15

// replicatedPrefixes are the key prefixes copied to the DR region.
func (c Config) replicatedPrefixes() []string { return []string{c.Prefix, InitPrefix} }

// newReplica creates, in the DR region, the replica's key (unless
// Config.ReplicaKMSKeyARN names one) and the replica bucket with the
// primary's hardening, then the replication role and configuration. It
// returns the replica bucket and its key's ARN.
//
// Delete markers are not replicated: a deletion in the primary region,
// mistaken or malicious, must not reach the copy. The replica's own
// lifecycle expires old snapshots.
func (b *build) newReplica(source hardenedBucket, sourceKeyARN pulumi.StringOutput) (*s3.BucketV2, pulumi.StringOutput, error) {
	a, r := b.args, b.args.Replica
	inDR := pulumi.Provider(r.Provider)
	replicaKey := pulumi.String(a.ReplicaKMSKeyARN).ToStringOutput()
	if a.ReplicaKMSKeyARN == "" {
		key, err := b.newBucketKey(b.name+"-replica-key", pulumi.Sprintf("Vault Raft snapshots (%s), replica in %s", b.name, r.Region), inDR)
		if err != nil {
			return nil, pulumi.StringOutput{}, fmt.Errorf("creating replica key: %w", err)
		}
		replicaKey = key
	}
	name := ""
	if a.BucketName != "" {
		name = a.BucketName + replicaSuffix
	}
	replica, err := b.newHardenedBucket(bucketSpec{
		prefix: b.name + "-replica", bucketName: name, keyARN: replicaKey,
		with: []pulumi.ResourceOption{inDR},
	})
	if err != nil {
		return nil, pulumi.StringOutput{}, fmt.Errorf("replica: %w", err)
	}

	role, err := iam.NewRole(b.ctx, b.name+"-replication", &iam.RoleArgs{
		Description:      pulumi.Sprintf("S3 replication of Vault snapshots to %s", r.Region),
		AssumeRolePolicy: a.AccountID.ToStringOutput().ApplyT(ReplicationTrust).(pulumi.StringOutput),
		Tags:             a.Tags,
	}, b.parent)
	if err != nil {
		return nil, pulumi.StringOutput{}, fmt.Errorf("creating replication role: %w", err)
	}
	policy := pulumi.All(source.bucket.Arn, sourceKeyARN, a.Region, replica.bucket.Arn, replicaKey).ApplyT(func(v []any) (string, error) {
		return ReplicationPolicy(ReplicationEnds{
			SourceBucketARN: v[0].(string), SourceKeyARN: v[1].(string), SourceRegion: v[2].(string),
			ReplicaBucketARN: v[3].(string), ReplicaKeyARN: v[4].(string), ReplicaRegion: r.Region,
			Prefixes: a.replicatedPrefixes(), ObjectLock: a.ObjectLockDays > 0,
		})
	}).(pulumi.StringOutput)
	rolePolicy, err := iam.NewRolePolicy(b.ctx, b.name+"-replication", &iam.RolePolicyArgs{
		Role:   role.Name,
		Policy: policy,
	}, b.parent)
	if err != nil {
		return nil, pulumi.StringOutput{}, fmt.Errorf("creating replication role policy: %w", err)
	}

	var rules s3.BucketReplicationConfigRuleArray
	for i, prefix := range a.replicatedPrefixes() {
		rules = append(rules, &s3.BucketReplicationConfigRuleArgs{
			Id:       pulumi.String("replicate-" + prefix),
			Status:   pulumi.String("Enabled"),
			Priority: pulumi.Int(i + 1),
			Filter:   &s3.BucketReplicationConfigRuleFilterArgs{Prefix: pulumi.String(prefix + "/")},
			DeleteMarkerReplication: &s3.BucketReplicationConfigRuleDeleteMarkerReplicationArgs{
				Status: pulumi.String("Disabled"),
			},
			// Every object is SSE-KMS: without this S3 replicates none.
			SourceSelectionCriteria: &s3.BucketReplicationConfigRuleSourceSelectionCriteriaArgs{
				SseKmsEncryptedObjects: &s3.BucketReplicationConfigRuleSourceSelectionCriteriaSseKmsEncryptedObjectsArgs{
					Status: pulumi.String("Enabled"),
				},
			},
			Destination: replicationDestination(replica.bucket.Arn, replicaKey, r.ReplicationTimeControl),
		})
	}
	// Both buckets must be versioned, and the role able to act, first.
	if _, err := s3.NewBucketReplicationConfig(b.ctx, b.name+"-replication", &s3.BucketReplicationConfigArgs{
		Bucket: source.bucket.ID(),
		Role:   role.Arn,
		Rules:  rules,
	}, b.parent, pulumi.DependsOn([]pulumi.Resource{source.versioning, replica.versioning, rolePolicy})); err != nil {
		return nil, pulumi.StringOutput{}, fmt.Errorf("configuring replication: %w", err)
	}
	return replica.bucket, replicaKey, nil
}

// replicationDestination writes replicas to the bucket re-encrypted with
// its key; with rtc, within S3 Replication Time Control's 15 minutes, which
// needs its metrics too.
func replicationDestination(bucketARN, keyARN pulumi.StringOutput, rtc bool) *s3.BucketReplicationConfigRuleDestinationArgs {
	d := &s3.BucketReplicationConfigRuleDestinationArgs{
		Bucket:       bucketARN,
		StorageClass: pulumi.String("STANDARD"),
		EncryptionConfiguration: &s3.BucketReplicationConfigRuleDestinationEncryptionConfigurationArgs{
			ReplicaKmsKeyId: keyARN,
		},
	}
	if rtc {
		d.ReplicationTime = &s3.BucketReplicationConfigRuleDestinationReplicationTimeArgs{
			Status: pulumi.String("Enabled"),
			Time:   &s3.BucketReplicationConfigRuleDestinationReplicationTimeTimeArgs{Minutes: pulumi.Int(replicationTimeMinutes)},
		}
		d.Metrics = &s3.BucketReplicationConfigRuleDestinationMetricsArgs{
			Status:         pulumi.String("Enabled"),
			EventThreshold: &s3.BucketReplicationConfigRuleDestinationMetricsEventThresholdArgs{Minutes: pulumi.Int(replicationTimeMinutes)},
		}
	}
	return d
}

// ReplicationTrust lets S3, and nothing else, assume the replication role,
// and only on behalf of the account's own buckets (the confused deputy).
func ReplicationTrust(accountID string) (string, error) {
	return awsiam.Document(awsiam.Statement{
		Sid:       "S3ReplicatesForThisAccount",
		Effect:    "Allow",
		Principal: map[string]any{"Service": "s3.amazonaws.com"},
		Action:    []string{"sts:AssumeRole"},
		Condition: map[string]map[string]any{"StringEquals": {"aws:SourceAccount": accountID}},
	}).JSON()
}

// ReplicationEnds are the two ends of the replication and what it copies.
type ReplicationEnds struct {
	SourceBucketARN, SourceKeyARN, SourceRegion    string
	ReplicaBucketARN, ReplicaKeyARN, ReplicaRegion string
	// Prefixes are the key prefixes replicated, without a trailing "/".
	Prefixes []string
	// ObjectLock: the source's objects carry a retention to copy.
	ObjectLock bool
}

// ReplicationPolicy is the replication role's policy, AWS's documented one
// for SSE-KMS objects narrowed to the prefixes: read the source's
// replication configuration and its object versions under the prefixes,
// decrypt them through S3 in the source region, write replicas under the
// same prefixes and encrypt them through S3 in the replica's region.
func ReplicationPolicy(e ReplicationEnds) (string, error) {
	under := func(bucketARN string) []string {
		out := make([]string, len(e.Prefixes))
		for i, p := range e.Prefixes {
			out[i] = bucketARN + "/" + p + "/*"
		}
		return out
	}
	read := []string{"s3:GetObjectVersionForReplication", "s3:GetObjectVersionAcl", "s3:GetObjectVersionTagging"}
	if e.ObjectLock {
		read = append(read, "s3:GetObjectRetention", "s3:GetObjectLegalHold")
	}
	// With a bucket key the encryption context is the bucket's ARN,
	// otherwise the object's.
	context := func(bucketARN string) []string { return append([]string{bucketARN}, under(bucketARN)...) }
	return awsiam.Document(
		awsiam.Statement{
			Sid:      "ReadReplicationConfiguration",
			Effect:   "Allow",
			Action:   []string{"s3:GetReplicationConfiguration", "s3:ListBucket"},
			Resource: []string{e.SourceBucketARN},
		},
		awsiam.Statement{
			Sid:      "ReadSourceVersions",
			Effect:   "Allow",
			Action:   read,
			Resource: under(e.SourceBucketARN),
		},
		awsiam.Statement{
			Sid:      "WriteReplicas",
			Effect:   "Allow",
			Action:   []string{"s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags"},
			Resource: under(e.ReplicaBucketARN),
		},
		awsiam.Statement{
			Sid:      "DecryptSourceThroughS3",
			Effect:   "Allow",
			Action:   []string{"kms:Decrypt"},
			Resource: []string{e.SourceKeyARN},
			Condition: map[string]map[string]any{
				"StringEquals": {"kms:ViaService": "s3." + e.SourceRegion + ".amazonaws.com"},
				"StringLike":   {"kms:EncryptionContext:aws:s3:arn": context(e.SourceBucketARN)},
			},
		},
		awsiam.Statement{
			Sid:      "EncryptReplicasThroughS3",
			Effect:   "Allow",
			Action:   []string{"kms:Encrypt"},
			Resource: []string{e.ReplicaKeyARN},
			Condition: map[string]map[string]any{
				"StringEquals": {"kms:ViaService": "s3." + e.ReplicaRegion + ".amazonaws.com"},
				"StringLike":   {"kms:EncryptionContext:aws:s3:arn": context(e.ReplicaBucketARN)},
			},
		},
	).JSON()
}
