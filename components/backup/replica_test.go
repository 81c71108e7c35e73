package backup_test

import (
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/secrets-platform/secrets-platform/components/backup"
	"github.com/secrets-platform/secrets-platform/internal/recorder"
	"github.com/secrets-platform/secrets-platform/tests"
)

const (
	replicationType = "aws:s3/bucketReplicationConfig:BucketReplicationConfig"
	drRegion        = "eu-central-1"
	// What the mocks answer for the replica of a BackupBucket "snap".
	replicaName   = "snap-replica-bucket-id"
	replicaARN    = "arn:aws:s3:::" + replicaName
	replicaKeyARN = "arn:aws:kms:us-east-1:123456789012:key/snap-replica-key-id"
)

type replicaOutputs struct{ bucket, bucketARN, keyARN string }

// runWithReplica runs a BackupBucket "snap" whose args mutate sets, with a
// replica through an explicit provider "aws-dr" for eu-central-1.
func runWithReplica(t *testing.T, mutate func(*backup.BackupBucketArgs)) (*recorder.Monitor, replicaOutputs) {
	t.Helper()
	var out replicaOutputs
	mon := tests.RunComponent(t, func(ctx *pulumi.Context) error {
		dr, err := tests.AWSProvider(ctx, "aws-dr", drRegion)
		if err != nil {
			return err
		}
		a := args()
		a.Replica = &backup.ReplicaArgs{Region: drRegion, Provider: dr}
		if mutate != nil {
			mutate(a)
		}
		c, err := backup.NewBackupBucket(ctx, "snap", a)
		if err != nil {
			return err
		}
		return tests.AwaitStrings(ctx, map[*string]pulumi.StringOutput{
			&out.bucket: c.ReplicaBucketName, &out.bucketARN: c.ReplicaBucketARN, &out.keyARN: c.ReplicaKMSKeyARN,
		})
	})
	return mon, out
}

func inDR(r recorder.Resource) bool { return strings.Contains(r.Provider, "::aws-dr::") }

// TestReplicaIsHardenedAndKeptLikeThePrimaryInTheDRRegion: the replica
// bucket and its key exist through the DR region's provider, protected and
// retained like the primaries, with the same six guards.
func TestReplicaIsHardenedAndKeptLikeThePrimaryInTheDRRegion(t *testing.T) {
	mon, out := runWithReplica(t, func(a *backup.BackupBucketArgs) { a.ObjectLockDays = 7 })
	comp := tests.MustFind(t, mon, backup.TypeToken, "snap")
	for _, name := range []struct{ typ, primary, replica string }{
		{bucketType, "snap-bucket", "snap-replica-bucket"},
		{keyType, "snap-key", "snap-replica-key"},
	} {
		p, r := tests.MustFind(t, mon, name.typ, name.primary), tests.MustFind(t, mon, name.typ, name.replica)
		if !r.Protect || !r.RetainOnDelete || r.Protect != p.Protect || r.RetainOnDelete != p.RetainOnDelete {
			t.Errorf("%s: protect=%v retainOnDelete=%v, want both, as %s", r.Name, r.Protect, r.RetainOnDelete, p.Name)
		}
		if !inDR(r) || inDR(p) {
			t.Errorf("%s provider %q, %s provider %q: want only the replica through aws-dr", r.Name, r.Provider, p.Name, p.Provider)
		}
		if r.Parent != comp.URN {
			t.Errorf("%s is not parented to the component", r.Name)
		}
	}
	if kin := inputs(t, mon, keyType, "snap-replica-key"); kin["enableKeyRotation"] != true || kin["deletionWindowInDays"] != float64(30) {
		t.Errorf("replica key rotation=%v window=%v, want the primary's true and 30", kin["enableKeyRotation"], kin["deletionWindowInDays"])
	}
	if in := inputs(t, mon, bucketType, "snap-replica-bucket"); in["forceDestroy"] != false || in["objectLockEnabled"] != true {
		t.Errorf("replica bucket forceDestroy=%v objectLockEnabled=%v, want false and true (the primary has object lock)", in["forceDestroy"], in["objectLockEnabled"])
	}
	for _, g := range []struct{ typ, suffix string }{
		{pabType, "public-access"}, {policyType, "policy"}, {ownershipType, "ownership"},
		{versioningType, "versioning"}, {sseType, "encryption"}, {lifecycleType, "lifecycle"}, {lockType, "object-lock"},
	} {
		p, r := tests.MustFind(t, mon, g.typ, "snap-"+g.suffix), tests.MustFind(t, mon, g.typ, "snap-replica-"+g.suffix)
		if !r.RetainOnDelete || r.Protect || !inDR(r) {
			t.Errorf("%s: retainOnDelete=%v protect=%v provider=%q; want retained, unprotected, through aws-dr", r.Name, r.RetainOnDelete, r.Protect, r.Provider)
		}
		if len(r.DependsOn) != len(p.DependsOn) {
			t.Errorf("%s depends on %v; %s on %v: the ordering differs", r.Name, r.DependsOn, p.Name, p.DependsOn)
		}
	}

	sse := inputs(t, mon, sseType, "snap-replica-encryption")
	if got := tests.Path(sse, "rules"); tests.Path(got.([]any)[0], "applyServerSideEncryptionByDefault", "kmsMasterKeyId") != replicaKeyARN {
		t.Errorf("replica encryption = %v, want its own key %s", got, replicaKeyARN)
	}
	if v := inputs(t, mon, versioningType, "snap-replica-versioning"); tests.Path(v, "versioningConfiguration", "status") != "Enabled" || v["bucket"] != replicaName {
		t.Errorf("replica versioning = %v", v)
	}
	policy := parsePolicy(t, inputs(t, mon, policyType, "snap-replica-policy"), "policy")
	for _, s := range policy.Statement {
		if s.Effect != "Deny" {
			t.Errorf("the replica's bucket policy grants something: %+v", s)
		}
		if s.Sid == "DenyOtherKMSKey" && s.Condition["StringNotEquals"]["s3:x-amz-server-side-encryption-aws-kms-key-id"] != replicaKeyARN {
			t.Errorf("the replica's policy admits another key: %+v", s)
		}
		if s.Sid == "DenyInsecureTransport" && sorted(s.Resource) != replicaARN+","+replicaARN+"/*" {
			t.Errorf("the replica's TLS deny covers %v", s.Resource)
		}
	}
	if lc := inputs(t, mon, lifecycleType, "snap-replica-lifecycle"); sorted(lifecycleIDs(lc)) != "abort-incomplete-multipart-uploads,expire-snapshots" {
		t.Errorf("replica lifecycle rules = %v", lc["rules"])
	}
	if got := tests.Path(inputs(t, mon, lockType, "snap-replica-object-lock"), "rule", "defaultRetention", "days"); got != float64(7) {
		t.Errorf("replica object lock days = %v, want the primary's 7", got)
	}

	want := replicaOutputs{bucket: replicaName, bucketARN: replicaARN, keyARN: replicaKeyARN}
	if out != want {
		t.Errorf("outputs = %+v, want %+v", out, want)
	}
}

func lifecycleIDs(lc map[string]any) []string {
	var ids []string
	list, _ := lc["rules"].([]any)
	for _, r := range list {
		id, _ := tests.Path(r, "id").(string)
		ids = append(ids, id)
	}
	return ids
}

// TestReplicationCopiesSnapshotsAndInitReencrypted: one rule per prefix,
// KMS-encrypted objects selected and re-encrypted with the replica's key,
// delete markers kept home, no Replication Time Control unless asked.
func TestReplicationCopiesSnapshotsAndInitReencrypted(t *testing.T) {
	for _, rtc := range []bool{false, true} {
		mon, _ := runWithReplica(t, func(a *backup.BackupBucketArgs) { a.Replica.ReplicationTimeControl = rtc })
		repl := tests.MustFind(t, mon, replicationType, "snap-replication")
		if inDR(repl) {
			t.Error("the replication configuration is on the source bucket, in the primary region, not through aws-dr")
		}
		in := tests.PlainMap(repl.Inputs)
		if in["bucket"] != bucketName || in["role"] != "arn:aws:iam::123456789012:role/snap-replication" {
			t.Errorf("replication of %v as %v", in["bucket"], in["role"])
		}
		rules, _ := in["rules"].([]any)
		var prefixes []string
		for _, r := range rules {
			prefixes = append(prefixes, tests.Path(r, "filter", "prefix").(string))
			for path, want := range map[string]any{
				"status":                         "Enabled",
				"deleteMarkerReplication.status": "Disabled",
				"sourceSelectionCriteria.sseKmsEncryptedObjects.status": "Enabled",
				"destination.bucket": replicaARN,
				"destination.encryptionConfiguration.replicaKmsKeyId": replicaKeyARN,
			} {
				if got := tests.Path(r, strings.Split(path, ".")...); got != want {
					t.Errorf("rtc=%v rule %v: %s = %v, want %v", rtc, prefixes[len(prefixes)-1], path, got, want)
				}
			}
			gotRTC := tests.Path(r, "destination", "replicationTime", "status")
			if (gotRTC == "Enabled") != rtc || (rtc && tests.Path(r, "destination", "metrics", "status") != "Enabled") {
				t.Errorf("rtc=%v: replicationTime %v, metrics %v", rtc, tests.Path(r, "destination", "replicationTime"), tests.Path(r, "destination", "metrics"))
			}
		}
		if sorted(prefixes) != "init/,raft-snapshots/" {
			t.Errorf("replicated prefixes = %v, want the snapshots' and init/", prefixes)
		}
		for _, after := range []struct{ typ, name string }{
			{versioningType, "snap-versioning"}, {versioningType, "snap-replica-versioning"}, {rolePolicyType, "snap-replication"},
		} {
			if !contains(repl.DependsOn, tests.MustFind(t, mon, after.typ, after.name).URN) {
				t.Errorf("replication does not wait for %s", after.name)
			}
		}
	}
}

// TestReplicationRoleReadsOnlyTheSourcePrefixesAndWritesOnlyTheReplica
// reads the role's trust and policy statement by statement.
func TestReplicationRoleReadsOnlyTheSourcePrefixesAndWritesOnlyTheReplica(t *testing.T) {
	mon, _ := runWithReplica(t, nil)
	trust := parsePolicy(t, inputs(t, mon, roleType, "snap-replication"), "assumeRolePolicy")
	if len(trust.Statement) != 1 || trust.Statement[0].Principal["Service"] != "s3.amazonaws.com" ||
		trust.Statement[0].Condition["StringEquals"]["aws:SourceAccount"] != recorder.MockAccountID {
		t.Errorf("trust = %+v, want S3 for this account only", trust.Statement)
	}
	policy := parsePolicy(t, inputs(t, mon, rolePolicyType, "snap-replication"), "policy")
	srcUnder := bucketARN + "/init/*," + bucketARN + "/raft-snapshots/*"
	want := map[string]struct{ actions, resources string }{
		"ReadReplicationConfiguration": {"s3:GetReplicationConfiguration,s3:ListBucket", bucketARN},
		"ReadSourceVersions":           {"s3:GetObjectVersionAcl,s3:GetObjectVersionForReplication,s3:GetObjectVersionTagging", srcUnder},
		"WriteReplicas":                {"s3:ReplicateDelete,s3:ReplicateObject,s3:ReplicateTags", replicaARN + "/init/*," + replicaARN + "/raft-snapshots/*"},
		"DecryptSourceThroughS3":       {"kms:Decrypt", keyARN},
		"EncryptReplicasThroughS3":     {"kms:Encrypt", replicaKeyARN},
	}
	if len(policy.Statement) != len(want) {
		t.Errorf("%d statements, want %d: %+v", len(policy.Statement), len(want), policy.Statement)
	}
	for _, s := range policy.Statement {
		w, ok := want[s.Sid]
		if !ok || s.Effect != "Allow" || sorted(s.Action) != w.actions || sorted(s.Resource) != w.resources {
			t.Errorf("statement %s: %v on %v; want %+v", s.Sid, s.Action, s.Resource, w)
		}
	}
	for _, s := range policy.Statement {
		switch s.Sid {
		case "DecryptSourceThroughS3":
			if s.Condition["StringEquals"]["kms:ViaService"] != "s3.eu-west-1.amazonaws.com" {
				t.Errorf("source key used through %v", s.Condition)
			}
		case "EncryptReplicasThroughS3":
			if s.Condition["StringEquals"]["kms:ViaService"] != "s3."+drRegion+".amazonaws.com" {
				t.Errorf("replica key used through %v", s.Condition)
			}
		}
	}
}

// TestReplicaWithExistingKeys: with kmsKeyArn, the replica needs its own
// key named, and no key is created in either region.
func TestReplicaWithExistingKeys(t *testing.T) {
	const existing = "arn:aws:kms:eu-central-1:123456789012:key/replica"
	mon, out := runWithReplica(t, func(a *backup.BackupBucketArgs) {
		a.KMSKeyARN = "arn:aws:kms:eu-west-1:123456789012:key/primary"
		a.ReplicaKMSKeyARN = existing
	})
	if n := len(mon.ByType(keyType)); n != 0 {
		t.Errorf("%d keys created; both are given", n)
	}
	if out.keyARN != existing {
		t.Errorf("replica key = %s, want %s", out.keyARN, existing)
	}

	_, err := recorder.RunComponent(func(ctx *pulumi.Context) error {
		dr, err := tests.AWSProvider(ctx, "aws-dr", drRegion)
		if err != nil {
			return err
		}
		a := args()
		a.KMSKeyARN = "arn:aws:kms:eu-west-1:123456789012:key/primary"
		a.Replica = &backup.ReplicaArgs{Region: drRegion, Provider: dr}
		_, err = backup.NewBackupBucket(ctx, "snap", a)
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "snap.replicaKmsKeyArn: required with dr.region") {
		t.Errorf("error = %v, want snap.replicaKmsKeyArn required", err)
	}
}

// TestNoReplicaWithoutDR: nothing of the replication exists by default.
func TestNoReplicaWithoutDR(t *testing.T) {
	mon, _ := run(t, args())
	for _, r := range mon.Resources() {
		if strings.Contains(r.Name, "replica") || r.Type == replicationType || inDR(r) {
			t.Errorf("%s %s exists without a DR region", r.Type, r.Name)
		}
	}
}
