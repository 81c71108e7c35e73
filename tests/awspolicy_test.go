package tests

import (
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/secrets-platform/secrets-platform/internal/awspolicy"
	"github.com/secrets-platform/secrets-platform/internal/recorder"
	"github.com/secrets-platform/secrets-platform/stacks"
)

// The AWS side of a render, indexed for the policy evaluator: every key,
// bucket and role with the policies the program writes for them.
type awsRender struct {
	account string
	keys    map[string]renderedKey
	buckets map[string]renderedBucket
	roles   map[string]renderedRole
}

type renderedKey struct {
	typ, arn, region string
	multiRegion      bool
	policy           awspolicy.Policy
}

type renderedBucket struct {
	arn, region string
	// policy is nil for a bucket without one.
	policy *awspolicy.Policy
}

type renderedRole struct {
	arn      string
	trust    awspolicy.Policy
	policies []awspolicy.Policy
}

const (
	keyType         = "aws:kms/key:Key"
	replicaKeyType  = "aws:kms/replicaKey:ReplicaKey"
	bucketType      = "aws:s3/bucketV2:BucketV2"
	bucketPolicyTyp = "aws:s3/bucketPolicy:BucketPolicy"
	roleType        = "aws:iam/role:Role"
	rolePolicyType  = "aws:iam/rolePolicy:RolePolicy"
)

// indexAWS reads the render's keys, buckets, roles and their policies.
// Identity policies the evaluator would not see (managed policies and
// their attachments) fail the test rather than be ignored.
func indexAWS(t *testing.T, mon *recorder.Monitor, account string) awsRender {
	t.Helper()
	parse := func(r recorder.Resource, key string) awspolicy.Policy {
		t.Helper()
		text, _ := PlainMap(r.Inputs)[key].(string)
		p, err := awspolicy.Parse(r.Type+" "+r.Name, text)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	out := func(r recorder.Resource, key string) string {
		s, _ := PlainMap(r.Outputs)[key].(string)
		return s
	}
	regions := map[string]string{}
	for _, p := range mon.ByType("pulumi:providers:aws") {
		regions[p.URN], _ = PlainMap(p.Inputs)["region"].(string)
	}
	regionOf := func(r recorder.Resource) string {
		t.Helper()
		// A provider reference is "<provider URN>::<provider ID>".
		urn := r.Provider
		if i := strings.LastIndex(urn, "::"); i >= 0 {
			urn = urn[:i]
		}
		region := regions[urn]
		if region == "" {
			t.Fatalf("%s %s: no AWS provider with a region (provider %q; providers %v)", r.Type, r.Name, r.Provider, regions)
		}
		return region
	}

	a := awsRender{account: account, keys: map[string]renderedKey{}, buckets: map[string]renderedBucket{}, roles: map[string]renderedRole{}}
	for _, r := range mon.Resources() {
		switch r.Type {
		case keyType, replicaKeyType:
			multi, _ := PlainMap(r.Inputs)["multiRegion"].(bool)
			a.keys[r.Name] = renderedKey{typ: r.Type, arn: out(r, "arn"), region: regionOf(r), multiRegion: multi, policy: parse(r, "policy")}
		case bucketType:
			a.buckets[r.Name] = renderedBucket{arn: out(r, "arn"), region: regionOf(r)}
		case roleType:
			a.roles[r.Name] = renderedRole{arn: out(r, "arn"), trust: parse(r, "assumeRolePolicy")}
		case "aws:iam/policy:Policy", "aws:iam/rolePolicyAttachment:RolePolicyAttachment", "aws:iam/policyAttachment:PolicyAttachment":
			t.Fatalf("%s %s: managed policies are not indexed for the evaluator yet; add them to indexAWS", r.Type, r.Name)
		}
	}
	// Policies name their bucket by its name (the bucket's ID) and their
	// role by its name (a role's ID is its name).
	for _, r := range mon.ByType(bucketPolicyTyp) {
		name, _ := PlainMap(r.Inputs)["bucket"].(string)
		found := false
		for n, b := range a.buckets {
			if bucket := MustFind(t, mon, bucketType, n); out(bucket, "bucket") == name {
				p := parse(r, "policy")
				b.policy = &p
				a.buckets[n] = b
				found = true
			}
		}
		if !found {
			t.Fatalf("bucket policy %s is for bucket %q, which the program does not create", r.Name, name)
		}
	}
	for _, r := range mon.ByType(rolePolicyType) {
		name, _ := PlainMap(r.Inputs)["role"].(string)
		found := false
		for n, role := range a.roles {
			if rr := MustFind(t, mon, roleType, n); out(rr, "name") == name || rr.ID == name {
				role.policies = append(role.policies, parse(r, "policy"))
				a.roles[n] = role
				found = true
			}
		}
		if !found {
			t.Fatalf("role policy %s is for role %q, which the program does not create", r.Name, name)
		}
	}
	return a
}

// deployer is whoever runs `pulumi up`: a principal of the account whose
// IAM policies let it do anything, so that only the key and bucket
// policies can refuse it.
const deployerRole = "deployer"

var administrator = awspolicy.MustParse("the deployer's IAM policy (AdministratorAccess)",
	`{"Version":"2012-10-17","Statement":[{"Sid":"Admin","Effect":"Allow","Action":"*","Resource":"*"}]}`)

// call is one AWS call of the table: who makes it, the action, on which
// key or bucket (by Pulumi name), on which object of a bucket, with which
// request context beyond TLS 1.2 (the SDKs' and the CLI's floor).
type call struct {
	who     string
	action  string
	on      string
	object  string
	context map[string]string
	allowed bool
	// why says who performs it and when.
	why string
}

// What creating, updating, rotating, replicating and deleting a key asks
// of its key policy, for the deployer. CreateKey and ReplicateKey run AWS's
// policy lockout check: the caller must be allowed kms:PutKeyPolicy by the
// new key's policy. kms:CreateKey itself, kms:ListAliases and the alias
// side of the alias calls are authorised by IAM alone (resource "*" or an
// alias ARN), so the key policy cannot refuse them.
var (
	keyLifecycle = []call{
		{action: "kms:PutKeyPolicy", why: "create (lockout check) and update the key policy"},
		{action: "kms:DescribeKey", why: "create, refresh"},
		{action: "kms:GetKeyPolicy", why: "refresh"},
		{action: "kms:ListResourceTags", why: "refresh"},
		{action: "kms:UpdateKeyDescription", why: "update"},
		{action: "kms:TagResource", why: "update tags"},
		{action: "kms:UntagResource", why: "update tags"},
		{action: "kms:EnableKey", why: "update"},
		{action: "kms:DisableKey", why: "update"},
		{action: "kms:CreateAlias", why: "create the alias (the key's side)"},
		{action: "kms:UpdateAlias", why: "move the alias (the key's side)"},
		{action: "kms:DeleteAlias", why: "delete the alias (the key's side)"},
		{action: "kms:ScheduleKeyDeletion", why: "delete"},
		{action: "kms:CancelKeyDeletion", why: "undo a delete"},
		{action: "kms:GetKeyRotationStatus", why: "refresh"},
	}
	// A replica shares its primary's key material and rotation.
	primaryRotation = []call{
		{action: "kms:EnableKeyRotation", why: "create, rotate"},
		{action: "kms:DisableKeyRotation", why: "update"},
		{action: "kms:RotateKeyOnDemand", why: "rotate now"},
		{action: "kms:ListKeyRotations", why: "rotate"},
	}
	// ReplicateKey is authorised on the primary; failing over
	// (UpdatePrimaryRegion) on the primary and on the replica.
	multiRegionPrimary = []call{
		{action: "kms:ReplicateKey", why: "create the replica in dr.region"},
		{action: "kms:UpdatePrimaryRegion", why: "fail over to dr.region"},
	}
	multiRegionReplica = []call{
		{action: "kms:UpdatePrimaryRegion", why: "fail over to dr.region"},
	}
	// What the AWS provider asks of a bucket when creating, refreshing,
	// updating and deleting it and its guards; the bucket policy must not
	// lock the deployer out.
	bucketLifecycle = []call{
		{action: "s3:CreateBucket", why: "create"},
		{action: "s3:ListBucket", why: "HeadBucket on create and refresh"},
		{action: "s3:GetBucketPolicy", why: "refresh"},
		{action: "s3:PutBucketPolicy", why: "create, update"},
		{action: "s3:DeleteBucketPolicy", why: "delete"},
		{action: "s3:PutBucketPublicAccessBlock", why: "create"},
		{action: "s3:PutBucketOwnershipControls", why: "create"},
		{action: "s3:GetBucketVersioning", why: "refresh"},
		{action: "s3:PutBucketVersioning", why: "create"},
		{action: "s3:PutEncryptionConfiguration", why: "create"},
		{action: "s3:GetEncryptionConfiguration", why: "refresh"},
		{action: "s3:PutLifecycleConfiguration", why: "create"},
		{action: "s3:PutBucketObjectLockConfiguration", why: "create"},
		{action: "s3:PutReplicationConfiguration", why: "create replication"},
		{action: "s3:GetReplicationConfiguration", why: "refresh"},
		{action: "s3:PutBucketTagging", why: "create, update"},
		{action: "s3:DeleteBucket", why: "delete"},
	}
)

// keyKind says which lifecycle a key has; the table states it, and the
// test checks it against the render.
type keyKind int

const (
	singleRegionKey keyKind = iota
	multiRegionPrimaryKey
	multiRegionReplicaKey
)

// owned lists every key and bucket of the production render. A key or a
// bucket the program starts creating must be added here, with the calls
// its workloads make below.
var owned = []struct {
	typ, name string
	kind      keyKind
	// usedOnlyBy: the key policy grants using the key to named roles
	// only, so the deployer may administer it but never decrypt.
	usedOnlyBy bool
}{
	{keyType, "vault-unseal-key", multiRegionPrimaryKey, true},
	{replicaKeyType, "vault-unseal-replica-key", multiRegionReplicaKey, true},
	{keyType, "vault-bootstrap-recovery", multiRegionPrimaryKey, true},
	{replicaKeyType, "vault-bootstrap-recovery-replica", multiRegionReplicaKey, true},
	{keyType, "vault-backup-key", singleRegionKey, false},
	{keyType, "vault-backup-replica-key", singleRegionKey, false},
	{bucketType, "vault-backup-bucket", 0, false},
	{bucketType, "vault-backup-replica-bucket", 0, false},
}

// Roles of the production render, by Pulumi name.
const (
	sealRole        = "vault-unseal-vault"
	drillRole       = "vault-unseal-restore-drill"
	snapshotRole    = "vault-backup-job"
	bootstrapRole   = "vault-bootstrap"
	replicationRole = "vault-backup-replication"
)

// workloadCalls are what the workloads do at run time, and what they must
// not be able to do. Objects are under the snapshot prefix (production's
// backup.prefix, raft-snapshots) or the bootstrap's init/.
func workloadCalls(a awsRender) []call {
	backupKey, replicaKey := a.keys["vault-backup-key"].arn, a.keys["vault-backup-replica-key"].arn
	bucket, replica := a.buckets["vault-backup-bucket"], a.buckets["vault-backup-replica-bucket"]
	viaS3 := func(b renderedBucket) map[string]string {
		// Bucket keys are on: S3 asks KMS with the bucket's ARN as the
		// encryption context.
		return map[string]string{"kms:ViaService": "s3." + b.region + ".amazonaws.com", "kms:EncryptionContext:aws:s3:arn": b.arn}
	}
	sse := func(keyARN string) map[string]string {
		return map[string]string{"s3:x-amz-server-side-encryption": "aws:kms", "s3:x-amz-server-side-encryption-aws-kms-key-id": keyARN}
	}
	initContext := map[string]string{"kms:EncryptionContext:purpose": "vault-init"}
	const snap, initObject = "raft-snapshots/20260113T000000Z.snap", "init/vault-init.json.enc"
	plainHTTP := map[string]string{"aws:SecureTransport": "false"}

	calls := []call{
		// Vault's awskms seal.
		{who: sealRole, action: "kms:DescribeKey", on: "vault-unseal-key", allowed: true, why: "Vault starts"},
		{who: sealRole, action: "kms:Encrypt", on: "vault-unseal-key", allowed: true, why: "Vault wraps its root key"},
		{who: sealRole, action: "kms:Decrypt", on: "vault-unseal-key", allowed: true, why: "Vault unseals"},
		{who: sealRole, action: "kms:Decrypt", on: "vault-bootstrap-recovery", context: initContext, allowed: false, why: "Vault must not open the init object"},
		{who: sealRole, action: "kms:ScheduleKeyDeletion", on: "vault-unseal-key", allowed: false, why: "Vault must not delete its key"},
		{who: sealRole, action: "kms:PutKeyPolicy", on: "vault-unseal-key", allowed: false, why: "Vault must not change who uses its key"},

		// The restore drill: fetch the newest snapshot, unseal a throwaway Vault.
		{who: drillRole, action: "kms:DescribeKey", on: "vault-unseal-key", allowed: true, why: "the drill's Vault starts"},
		{who: drillRole, action: "kms:Decrypt", on: "vault-unseal-key", allowed: true, why: "the drill's Vault unseals"},
		{who: drillRole, action: "s3:ListBucket", on: "vault-backup-bucket", context: map[string]string{"s3:prefix": "raft-snapshots/"}, allowed: true, why: "list-objects-v2 --prefix raft-snapshots/"},
		{who: drillRole, action: "s3:GetObject", on: "vault-backup-bucket", object: snap, allowed: true, why: "download the snapshot"},
		{who: drillRole, action: "kms:Decrypt", on: "vault-backup-key", context: viaS3(bucket), allowed: true, why: "S3 decrypts the snapshot for the drill"},
		{who: drillRole, action: "s3:GetObject", on: "vault-backup-bucket", object: initObject, allowed: false, why: "the drill has no business with init/"},
		{who: drillRole, action: "s3:ListBucket", on: "vault-backup-bucket", context: map[string]string{"s3:prefix": "init/"}, allowed: false, why: "nor with listing it"},
		{who: drillRole, action: "kms:Decrypt", on: "vault-backup-key", allowed: false, why: "the bucket key only through S3"},
		{who: drillRole, action: "s3:PutObject", on: "vault-backup-bucket", object: snap, context: sse(backupKey), allowed: false, why: "the drill only reads"},

		// The snapshot job's upload (aws s3 cp --sse aws:kms --sse-kms-key-id).
		{who: snapshotRole, action: "s3:PutObject", on: "vault-backup-bucket", object: snap, context: sse(backupKey), allowed: true, why: "upload a snapshot"},
		{who: snapshotRole, action: "s3:PutObject", on: "vault-backup-bucket", object: snap, allowed: true, why: "UploadPart carries no encryption headers"},
		{who: snapshotRole, action: "kms:GenerateDataKey", on: "vault-backup-key", context: viaS3(bucket), allowed: true, why: "S3 encrypts the upload"},
		{who: snapshotRole, action: "kms:Decrypt", on: "vault-backup-key", context: viaS3(bucket), allowed: true, why: "S3 completes a multipart upload"},
		{who: snapshotRole, action: "s3:DeleteObject", on: "vault-backup-bucket", object: snap, allowed: false, why: "the job must not delete snapshots"},
		{who: snapshotRole, action: "s3:PutObject", on: "vault-backup-bucket", object: snap, context: sse(replicaKey), allowed: false, why: "the bucket admits its own key only"},
		{who: snapshotRole, action: "s3:PutObject", on: "vault-backup-bucket", object: snap, context: map[string]string{"s3:x-amz-server-side-encryption": "AES256"}, allowed: false, why: "SSE-KMS only"},
		{who: snapshotRole, action: "s3:PutObject", on: "vault-backup-bucket", object: snap, context: merge2(sse(backupKey), plainHTTP), allowed: false, why: "TLS only"},
		{who: snapshotRole, action: "s3:PutObject", on: "vault-backup-bucket", object: initObject, context: sse(backupKey), allowed: false, why: "the job writes snapshots only"},
		{who: snapshotRole, action: "kms:GenerateDataKey", on: "vault-backup-key", allowed: false, why: "the bucket key only through S3"},
		{who: snapshotRole, action: "kms:Decrypt", on: "vault-unseal-key", allowed: false, why: "the job never unseals"},

		// The bootstrap's publish step: encrypt init's output with the
		// recovery key, upload it under init/.
		{who: bootstrapRole, action: "kms:Encrypt", on: "vault-bootstrap-recovery", context: initContext, allowed: true, why: "encrypt the init output"},
		{who: bootstrapRole, action: "s3:PutObject", on: "vault-backup-bucket", object: initObject, context: sse(backupKey), allowed: true, why: "upload the init object"},
		{who: bootstrapRole, action: "kms:GenerateDataKey", on: "vault-backup-key", context: viaS3(bucket), allowed: true, why: "S3 encrypts the upload"},
		{who: bootstrapRole, action: "kms:Decrypt", on: "vault-bootstrap-recovery", context: initContext, allowed: false, why: "only break-glass holders open the init object"},
		{who: bootstrapRole, action: "kms:Encrypt", on: "vault-bootstrap-recovery", allowed: false, why: "only with the init object's encryption context"},
		{who: bootstrapRole, action: "kms:Encrypt", on: "vault-bootstrap-recovery", context: map[string]string{"kms:EncryptionContext:purpose": "other"}, allowed: false, why: "only with the init object's encryption context"},
		{who: bootstrapRole, action: "s3:PutObject", on: "vault-backup-bucket", object: snap, context: sse(backupKey), allowed: false, why: "the bootstrap writes init/ only"},
		{who: bootstrapRole, action: "s3:GetObject", on: "vault-backup-bucket", object: initObject, allowed: false, why: "the bootstrap never reads back"},
		{who: bootstrapRole, action: "kms:Decrypt", on: "vault-unseal-key", allowed: false, why: "the bootstrap never unseals"},

		// S3 replication, as the replication role.
		{who: replicationRole, action: "s3:GetReplicationConfiguration", on: "vault-backup-bucket", allowed: true, why: "replication reads its rules"},
		{who: replicationRole, action: "s3:ListBucket", on: "vault-backup-bucket", allowed: true, why: "replication lists the source"},
		{who: replicationRole, action: "s3:GetObjectVersionForReplication", on: "vault-backup-bucket", object: snap, allowed: true, why: "read a snapshot version"},
		{who: replicationRole, action: "s3:GetObjectVersionForReplication", on: "vault-backup-bucket", object: initObject, allowed: true, why: "read the init object's version"},
		{who: replicationRole, action: "s3:GetObjectVersionAcl", on: "vault-backup-bucket", object: snap, allowed: true, why: "copy the version's ACL"},
		{who: replicationRole, action: "s3:GetObjectVersionTagging", on: "vault-backup-bucket", object: snap, allowed: true, why: "copy the version's tags"},
		{who: replicationRole, action: "s3:GetObjectRetention", on: "vault-backup-bucket", object: snap, allowed: true, why: "copy the object lock retention"},
		{who: replicationRole, action: "s3:GetObjectLegalHold", on: "vault-backup-bucket", object: snap, allowed: true, why: "copy the legal hold"},
		{who: replicationRole, action: "kms:Decrypt", on: "vault-backup-key", context: viaS3(bucket), allowed: true, why: "S3 decrypts the source object"},
		{who: replicationRole, action: "s3:ReplicateObject", on: "vault-backup-replica-bucket", object: snap, context: sse(replicaKey), allowed: true, why: "write the replica"},
		{who: replicationRole, action: "s3:ReplicateObject", on: "vault-backup-replica-bucket", object: initObject, context: sse(replicaKey), allowed: true, why: "write the init object's replica"},
		{who: replicationRole, action: "s3:ReplicateTags", on: "vault-backup-replica-bucket", object: snap, allowed: true, why: "write the replica's tags"},
		{who: replicationRole, action: "kms:Encrypt", on: "vault-backup-replica-key", context: viaS3(replica), allowed: true, why: "S3 encrypts the replica in dr.region"},
		{who: replicationRole, action: "s3:ReplicateObject", on: "vault-backup-bucket", object: snap, allowed: false, why: "never into the source"},
		{who: replicationRole, action: "s3:DeleteObject", on: "vault-backup-replica-bucket", object: snap, allowed: false, why: "replication never deletes"},
		{who: replicationRole, action: "kms:Decrypt", on: "vault-backup-replica-key", context: viaS3(replica), allowed: false, why: "the replica's key only encrypts"},
		{who: replicationRole, action: "kms:Encrypt", on: "vault-backup-replica-key", context: viaS3(bucket), allowed: false, why: "only through S3 in dr.region"},

		// The deployer over plain HTTP.
		{who: deployerRole, action: "s3:GetBucketPolicy", on: "vault-backup-bucket", context: plainHTTP, allowed: false, why: "TLS only, for everyone"},
		{who: deployerRole, action: "s3:GetObject", on: "vault-backup-replica-bucket", object: snap, context: plainHTTP, allowed: false, why: "TLS only, for everyone"},
	}
	return calls
}

func merge2(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range []map[string]string{a, b} {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// lifecycleCalls are the deployer's calls on every key and bucket of the
// table, by kind.
func lifecycleCalls(a awsRender) []call {
	var calls []call
	add := func(on string, list []call) {
		for _, c := range list {
			c.who, c.on, c.allowed = deployerRole, on, true
			calls = append(calls, c)
		}
	}
	for _, o := range owned {
		if o.typ == bucketType {
			add(o.name, bucketLifecycle)
			continue
		}
		add(o.name, keyLifecycle)
		switch o.kind {
		case singleRegionKey:
			add(o.name, primaryRotation)
		case multiRegionPrimaryKey:
			add(o.name, primaryRotation)
			add(o.name, multiRegionPrimary)
		case multiRegionReplicaKey:
			add(o.name, multiRegionReplica)
		}
		if o.usedOnlyBy {
			for _, action := range []string{"kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:ReEncryptFrom"} {
				calls = append(calls, call{who: deployerRole, action: action, on: o.name, allowed: false, why: "administrators do not use this key"})
			}
		}
	}
	return calls
}

// TestEveryKeyAndBucketAllowsWhatItsDeployerAndWorkloadsDo evaluates, with
// internal/awspolicy, every AWS call that deploying and running the
// production stack makes on its KMS keys and S3 buckets against the
// rendered key, bucket and role policies; and calls that must be refused.
// The table covers every key and bucket of the render.
func TestEveryKeyAndBucketAllowsWhatItsDeployerAndWorkloadsDo(t *testing.T) {
	cfg := StackConfig(t, "production", nil)
	account := stackAccount(t, cfg)
	mon := Run(t, "production", cfg, stacks.Run)
	a := indexAWS(t, mon, account)

	// The table covers the render, and says what kind each key is.
	listed := map[string]bool{}
	for _, o := range owned {
		listed[o.typ+" "+o.name] = true
		if o.typ == bucketType {
			if _, ok := a.buckets[o.name]; !ok {
				t.Errorf("the table lists bucket %s, which the render does not create", o.name)
			}
			continue
		}
		k, ok := a.keys[o.name]
		switch {
		case !ok || k.typ != o.typ:
			t.Errorf("the table lists %s %s, which the render does not create", o.typ, o.name)
		case (o.kind == multiRegionPrimaryKey) != k.multiRegion:
			t.Errorf("%s: multiRegion=%v in the render; the table says kind %d", o.name, k.multiRegion, o.kind)
		}
	}
	for name, k := range a.keys {
		if !listed[k.typ+" "+name] {
			t.Errorf("%s %s has no rows in the table: list it in owned, with the calls its workloads make", k.typ, name)
		}
	}
	for name := range a.buckets {
		if !listed[bucketType+" "+name] {
			t.Errorf("bucket %s has no rows in the table: list it in owned, with the calls its workloads make", name)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	calls := append(lifecycleCalls(a), workloadCalls(a)...)
	refused := 0
	for _, c := range calls {
		if !c.allowed {
			refused++
		}
	}
	t.Logf("%d calls on %d keys and %d buckets, %d of them to be refused", len(calls), len(a.keys), len(a.buckets), refused)
	for _, c := range calls {
		d, err := a.authorize(c)
		if err != nil {
			t.Errorf("%s %s on %s: %v", c.who, c.action, c.on, err)
			continue
		}
		if d.Allowed != c.allowed {
			verb := "refused"
			if d.Allowed {
				verb = "allowed"
			}
			t.Errorf("%s %s on %s (%s) is %s: %s", c.who, c.action, c.on, c.why, verb, d.Reason)
		}
	}
	// Every role the program creates is exercised by the table.
	used := map[string]bool{}
	for _, c := range calls {
		used[c.who] = true
	}
	for name := range a.roles {
		if !used[name] {
			t.Errorf("role %s makes no call in the table", name)
		}
	}
}

// authorize evaluates one call of the table against the render.
func (a awsRender) authorize(c call) (awspolicy.Decision, error) {
	var principal awspolicy.Principal
	var identity []awspolicy.Policy
	if c.who == deployerRole {
		principal = awspolicy.Principal{ARN: "arn:aws:iam::" + a.account + ":role/" + deployerRole}
		identity = []awspolicy.Policy{administrator}
	} else {
		role, ok := a.roles[c.who]
		if !ok {
			return awspolicy.Decision{}, fmt.Errorf("no role %s in the render", c.who)
		}
		principal, identity = awspolicy.Principal{ARN: role.arn}, role.policies
	}
	ctx := map[string]string{"aws:SecureTransport": "true", "s3:TlsVersion": "1.2"}
	for k, v := range c.context {
		ctx[k] = v
	}
	req := awspolicy.Request{Principal: principal, Action: c.action, Context: ctx}
	access := awspolicy.Access{Identity: identity}
	if k, ok := a.keys[c.on]; ok {
		p := k.policy
		req.Resource = k.arn
		access.Resource, access.ResourceAccount, access.ResourcePolicyRequired = &p, awspolicy.ARNAccount(k.arn), true
	} else if b, ok := a.buckets[c.on]; ok {
		req.Resource = b.arn
		if c.object != "" {
			req.Resource += "/" + c.object
		}
		// A bucket's ARN names no account: its owner is the stack's.
		access.Resource, access.ResourceAccount = b.policy, a.account
	} else {
		return awspolicy.Decision{}, fmt.Errorf("no key or bucket %s in the render", c.on)
	}
	return awspolicy.Authorize(req, access)
}

// TestReplicationRoleIsForS3OfThisAccountOnly evaluates the replication
// role's trust policy: S3 may assume it for this account's buckets.
func TestReplicationRoleIsForS3OfThisAccountOnly(t *testing.T) {
	cfg := StackConfig(t, "production", nil)
	account := stackAccount(t, cfg)
	a := indexAWS(t, Run(t, "production", cfg, stacks.Run), account)
	role := a.roles[replicationRole]
	for _, c := range []struct {
		who     awspolicy.Principal
		source  string
		allowed bool
	}{
		{awspolicy.Principal{Service: "s3.amazonaws.com"}, account, true},
		{awspolicy.Principal{Service: "s3.amazonaws.com"}, "999999999999", false},
		{awspolicy.Principal{Service: "batchoperations.s3.amazonaws.com"}, account, false},
		{awspolicy.Principal{ARN: "arn:aws:iam::" + account + ":role/" + deployerRole}, account, false},
	} {
		d, err := awspolicy.Authorize(awspolicy.Request{
			Principal: c.who, Action: "sts:AssumeRole", Resource: role.arn,
			Context: map[string]string{"aws:SourceAccount": c.source},
		}, awspolicy.Access{Resource: &role.trust, ResourceAccount: account, ResourcePolicyRequired: true})
		if err != nil {
			t.Fatal(err)
		}
		if d.Allowed != c.allowed {
			t.Errorf("%s for account %s: %s", c.who, c.source, d.Reason)
		}
	}
}

// TestEveryAnnotatedServiceAccountMayAssumeItsRole evaluates the IRSA
// trust policies: each service account annotated with a role (the
// Kubernetes objects, and Vault's in the chart's values) may assume it
// with a token of the cluster's OIDC provider for the STS audience; no
// other service account may, nor a token for another audience; and every
// role that trusts a web identity is some service account's.
func TestEveryAnnotatedServiceAccountMayAssumeItsRole(t *testing.T) {
	cfg := StackConfig(t, "production", nil)
	account := stackAccount(t, cfg)
	mon := Run(t, "production", cfg, stacks.Run)
	a := indexAWS(t, mon, account)
	cluster := decodeGroup(t, cfg, recorder.Project+":kubernetes")
	provider, _ := cluster["oidcProviderArn"].(string)
	issuer, _ := cluster["oidcIssuer"].(string)
	issuer = strings.TrimPrefix(issuer, "https://")

	const annotation = "eks.amazonaws.com/role-arn"
	type serviceAccount struct{ namespace, name, role string }
	var accounts []serviceAccount
	for _, r := range mon.ByType("kubernetes:core/v1:ServiceAccount") {
		var sa corev1.ServiceAccount
		Decode(t, r.Inputs, &sa)
		if role := sa.Annotations[annotation]; role != "" {
			accounts = append(accounts, serviceAccount{sa.Namespace, sa.Name, role})
		}
	}
	for _, r := range mon.ByType("kubernetes:helm.sh/v3:Release") {
		values := HelmValues(t, r)
		role, _ := Path(values, "server", "serviceAccount", "annotations", annotation).(string)
		name, _ := Path(values, "server", "serviceAccount", "name").(string)
		namespace, _ := PlainMap(r.Inputs)["namespace"].(string)
		if role != "" {
			accounts = append(accounts, serviceAccount{namespace, name, role})
		}
	}

	assume := func(sa serviceAccount, audience string) awspolicy.Decision {
		t.Helper()
		var trust *awspolicy.Policy
		for _, role := range a.roles {
			if role.arn == sa.role {
				trust = &role.trust
			}
		}
		if trust == nil {
			t.Fatalf("service account %s/%s names role %s, which the program does not create", sa.namespace, sa.name, sa.role)
		}
		d, err := awspolicy.Authorize(awspolicy.Request{
			Principal: awspolicy.Principal{Federated: provider},
			Action:    "sts:AssumeRoleWithWebIdentity",
			Resource:  sa.role,
			Context: map[string]string{
				issuer + ":sub": "system:serviceaccount:" + sa.namespace + ":" + sa.name,
				issuer + ":aud": audience,
			},
		}, awspolicy.Access{Resource: trust, ResourceAccount: account, ResourcePolicyRequired: true})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	assumed := map[string]bool{}
	for _, sa := range accounts {
		assumed[sa.role] = true
		if d := assume(sa, "sts.amazonaws.com"); !d.Allowed {
			t.Errorf("%s/%s cannot assume its role: %s", sa.namespace, sa.name, d.Reason)
		}
		if d := assume(sa, "vault"); d.Allowed {
			t.Errorf("%s/%s assumes its role with a token for another audience: %s", sa.namespace, sa.name, d.Reason)
		}
		other := sa
		other.name = "default"
		if d := assume(other, "sts.amazonaws.com"); d.Allowed {
			t.Errorf("%s/default assumes %s: %s", sa.namespace, sa.role, d.Reason)
		}
	}
	if len(accounts) == 0 {
		t.Fatal("no service account is annotated with a role")
	}
	t.Logf("%d service accounts annotated with a role", len(accounts))
	for name, role := range a.roles {
		for _, s := range role.trust.Statement {
			if s.Principal != nil && len(s.Principal.Federated) > 0 && !assumed[role.arn] {
				t.Errorf("role %s trusts a web identity, but no service account names it", name)
			}
		}
	}
}
