package backup_test

import (
	"os/exec"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/secrets-platform/secrets-platform/components/backup"
	"github.com/secrets-platform/secrets-platform/components/kube"
	"github.com/secrets-platform/secrets-platform/internal/recorder"
	"github.com/secrets-platform/secrets-platform/tests"
)

const (
	keyType        = "aws:kms/key:Key"
	bucketType     = "aws:s3/bucketV2:BucketV2"
	pabType        = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
	policyType     = "aws:s3/bucketPolicy:BucketPolicy"
	ownershipType  = "aws:s3/bucketOwnershipControls:BucketOwnershipControls"
	versioningType = "aws:s3/bucketVersioningV2:BucketVersioningV2"
	sseType        = "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2"
	lifecycleType  = "aws:s3/bucketLifecycleConfigurationV2:BucketLifecycleConfigurationV2"
	lockType       = "aws:s3/bucketObjectLockConfigurationV2:BucketObjectLockConfigurationV2"
	roleType       = "aws:iam/role:Role"
	rolePolicyType = "aws:iam/rolePolicy:RolePolicy"
	saType         = "kubernetes:core/v1:ServiceAccount"
	cronJobType    = "kubernetes:batch/v1:CronJob"

	oidcARN    = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/ABC123"
	oidcIssuer = "https://oidc.eks.eu-west-1.amazonaws.com/id/ABC123"
	vaultAddr  = "https://vault-active.production.svc:8200"

	// What the mocks answer for the resources of a BackupBucket "snap".
	bucketName = "snap-bucket-id"
	bucketARN  = "arn:aws:s3:::" + bucketName
	keyARN     = "arn:aws:kms:us-east-1:123456789012:key/snap-key-id"
	roleARN    = "arn:aws:iam::123456789012:role/snap-job"
	// The drill's role, as KMSUnseal would answer.
	drillRoleARN = "arn:aws:iam::123456789012:role/unseal-restore-drill"
)

func args() *backup.BackupBucketArgs {
	c := backup.DefaultConfig()
	c.AWSCLIImage = "amazon/aws-cli:2.31.0"
	c.Resources = kube.Resources{
		Requests: map[string]string{"cpu": "50m", "memory": "64Mi"},
		Limits:   map[string]string{"cpu": "500m", "memory": "256Mi"},
	}
	return &backup.BackupBucketArgs{
		Config:            c,
		AccountID:         pulumi.String(recorder.MockAccountID),
		Region:            pulumi.String("eu-west-1"),
		OIDCProviderARN:   pulumi.String(oidcARN),
		OIDCIssuer:        pulumi.String(oidcIssuer),
		Namespace:         pulumi.String("production"),
		VaultAddress:      pulumi.String(vaultAddr),
		VaultImage:        pulumi.String("hashicorp/vault:2.0.4"),
		VaultCASecretName: pulumi.String("vault-ca"),
		Tags:              pulumi.StringMap{"team": pulumi.String("platform")},
		RestoreDrill: &backup.RestoreDrillArgs{
			RoleARN:      pulumi.String(drillRoleARN),
			RoleName:     pulumi.String("unseal-restore-drill"),
			SealRegion:   pulumi.String("eu-west-1"),
			SealKMSKeyID: pulumi.String("alias/production-vault-unseal"),
			AuditDir:     "/vault/audit",
		},
	}
}

type outputs struct{ bucketName, bucketARN, roleARN, cronJobName, keyARN string }

func run(t *testing.T, a *backup.BackupBucketArgs) (*recorder.Monitor, outputs) {
	t.Helper()
	var out outputs
	mon := tests.RunComponent(t, func(ctx *pulumi.Context) error {
		c, err := backup.NewBackupBucket(ctx, "snap", a)
		if err != nil {
			return err
		}
		return tests.AwaitStrings(ctx, map[*string]pulumi.StringOutput{
			&out.bucketName: c.BucketName, &out.bucketARN: c.BucketARN, &out.roleARN: c.RoleARN,
			&out.cronJobName: c.CronJobName, &out.keyARN: c.KMSKeyARN,
		})
	})
	return mon, out
}

func inputs(t *testing.T, mon *recorder.Monitor, typ, name string) map[string]any {
	t.Helper()
	return tests.PlainMap(tests.MustFind(t, mon, typ, name).Inputs)
}

func TestBucketAndKeyAreProtectedAndGuardsRetained(t *testing.T) {
	mon, out := run(t, args())

	bucket := tests.MustFind(t, mon, bucketType, "snap-bucket")
	if !bucket.Protect || !bucket.RetainOnDelete {
		t.Errorf("bucket protect=%v retainOnDelete=%v, want both", bucket.Protect, bucket.RetainOnDelete)
	}
	in := tests.PlainMap(bucket.Inputs)
	if in["forceDestroy"] != false {
		t.Errorf("forceDestroy = %v, want false", in["forceDestroy"])
	}
	if in["objectLockEnabled"] == true {
		t.Error("object lock is enabled without ObjectLockDays")
	}

	key := tests.MustFind(t, mon, keyType, "snap-key")
	kin := tests.PlainMap(key.Inputs)
	if !key.Protect || !key.RetainOnDelete {
		t.Errorf("key protect=%v retainOnDelete=%v, want both", key.Protect, key.RetainOnDelete)
	}
	if kin["enableKeyRotation"] != true || kin["deletionWindowInDays"] != float64(30) {
		t.Errorf("key rotation=%v window=%v, want true and 30", kin["enableKeyRotation"], kin["deletionWindowInDays"])
	}

	for _, g := range []struct{ typ, name string }{
		{pabType, "snap-public-access"}, {policyType, "snap-policy"}, {ownershipType, "snap-ownership"},
		{versioningType, "snap-versioning"}, {sseType, "snap-encryption"}, {lifecycleType, "snap-lifecycle"},
	} {
		r := tests.MustFind(t, mon, g.typ, g.name)
		if !r.RetainOnDelete || r.Protect {
			t.Errorf("%s: retainOnDelete=%v protect=%v, want retained and not protected", g.name, r.RetainOnDelete, r.Protect)
		}
		if r.Parent != tests.MustFind(t, mon, backup.TypeToken, "snap").URN {
			t.Errorf("%s is not parented to the component", g.name)
		}
	}
	if tests.MustFind(t, mon, roleType, "snap-job").Protect {
		t.Error("the job role is protected; it is derived and must stay replaceable")
	}

	want := outputs{bucketName: bucketName, bucketARN: bucketARN, roleARN: roleARN, cronJobName: "snap-snapshot", keyARN: keyARN}
	if out != want {
		t.Errorf("outputs = %+v, want %+v", out, want)
	}
}

func TestBucketIsVersionedPrivateAndEncryptedWithItsKey(t *testing.T) {
	mon, _ := run(t, args())

	v := inputs(t, mon, versioningType, "snap-versioning")
	if got := tests.Path(v, "versioningConfiguration", "status"); got != "Enabled" {
		t.Errorf("versioning = %v, want Enabled", got)
	}
	if v["bucket"] != bucketName {
		t.Errorf("versioning is on bucket %v", v["bucket"])
	}

	pab := inputs(t, mon, pabType, "snap-public-access")
	for _, k := range []string{"blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"} {
		if pab[k] != true {
			t.Errorf("%s = %v, want true", k, pab[k])
		}
	}

	own := inputs(t, mon, ownershipType, "snap-ownership")
	if got := tests.Path(own, "rule", "objectOwnership"); got != "BucketOwnerEnforced" {
		t.Errorf("object ownership = %v", got)
	}

	sse := inputs(t, mon, sseType, "snap-encryption")
	rules, _ := sse["rules"].([]any)
	if len(rules) != 1 {
		t.Fatalf("encryption rules = %v", sse["rules"])
	}
	if got := tests.Path(rules[0], "applyServerSideEncryptionByDefault", "sseAlgorithm"); got != "aws:kms" {
		t.Errorf("sseAlgorithm = %v, want aws:kms", got)
	}
	if got := tests.Path(rules[0], "applyServerSideEncryptionByDefault", "kmsMasterKeyId"); got != keyARN {
		t.Errorf("kmsMasterKeyId = %v, want the dedicated key %s", got, keyARN)
	}
	if got := tests.Path(rules[0], "bucketKeyEnabled"); got != true {
		t.Errorf("bucketKeyEnabled = %v, want true", got)
	}
}

func TestLifecycleExpiresSnapshotsVersionsAndUploads(t *testing.T) {
	mon, _ := run(t, args())
	lc := inputs(t, mon, lifecycleType, "snap-lifecycle")
	rules := map[string]any{}
	list, _ := lc["rules"].([]any)
	for _, r := range list {
		id, _ := tests.Path(r, "id").(string)
		if tests.Path(r, "status") != "Enabled" {
			t.Errorf("rule %s is not enabled", id)
		}
		rules[id] = r
	}
	exp, ok := rules["expire-snapshots"]
	if !ok {
		t.Fatalf("no expire-snapshots rule in %v", list)
	}
	if got := tests.Path(exp, "filter", "prefix"); got != "raft-snapshots/" {
		t.Errorf("expiry prefix = %v", got)
	}
	if got := tests.Path(exp, "expiration", "days"); got != float64(30) {
		t.Errorf("expiration days = %v, want RetentionDays 30", got)
	}
	if got := tests.Path(exp, "noncurrentVersionExpiration", "noncurrentDays"); got != float64(7) {
		t.Errorf("noncurrent days = %v, want NoncurrentVersionDays 7", got)
	}
	abort, ok := rules["abort-incomplete-multipart-uploads"]
	if !ok {
		t.Fatalf("no abort rule in %v", list)
	}
	if got := tests.Path(abort, "abortIncompleteMultipartUpload", "daysAfterInitiation"); got != float64(7) {
		t.Errorf("abort after %v days, want 7", got)
	}
}

func TestObjectLockOnlyWhenConfigured(t *testing.T) {
	mon, _ := run(t, args())
	if locks := mon.ByType(lockType); len(locks) != 0 {
		t.Errorf("object lock configured without ObjectLockDays: %v", locks)
	}

	a := args()
	a.ObjectLockDays = 14
	mon, _ = run(t, a)
	if got := inputs(t, mon, bucketType, "snap-bucket")["objectLockEnabled"]; got != true {
		t.Errorf("bucket objectLockEnabled = %v, want true (only settable at creation)", got)
	}
	lock := inputs(t, mon, lockType, "snap-object-lock")
	if got := tests.Path(lock, "rule", "defaultRetention", "mode"); got != "GOVERNANCE" {
		t.Errorf("lock mode = %v, want GOVERNANCE", got)
	}
	if got := tests.Path(lock, "rule", "defaultRetention", "days"); got != float64(14) {
		t.Errorf("lock days = %v, want 14", got)
	}
}

func TestConfiguredKeyIsUsedAndNoneCreated(t *testing.T) {
	const given = "arn:aws:kms:eu-west-1:123456789012:key/11111111-2222-3333-4444-555555555555"
	a := args()
	a.KMSKeyARN = given
	mon, out := run(t, a)
	if keys := mon.ByType(keyType); len(keys) != 0 {
		t.Errorf("a key was created although one was given: %d", len(keys))
	}
	sse := inputs(t, mon, sseType, "snap-encryption")
	if got := tests.Path(sse["rules"].([]any)[0], "applyServerSideEncryptionByDefault", "kmsMasterKeyId"); got != given {
		t.Errorf("kmsMasterKeyId = %v, want %s", got, given)
	}
	if out.keyARN != given {
		t.Errorf("KMSKeyARN output = %s", out.keyARN)
	}
	if !strings.Contains(inputs(t, mon, policyType, "snap-policy")["policy"].(string), given) {
		t.Error("the bucket policy does not name the configured key")
	}
}

// policy and statement are the harness's parsed policy documents.
type (
	policy    = tests.PolicyDocument
	statement = tests.PolicyStatement
)

var parsePolicy = tests.ParsePolicy

func TestBucketPolicyDeniesInsecureTransport(t *testing.T) {
	mon, _ := run(t, args())
	p := parsePolicy(t, inputs(t, mon, policyType, "snap-policy"), "policy")
	for _, s := range p.Statement {
		if s.Effect != "Deny" {
			t.Errorf("the bucket policy grants something: %+v", s)
		}
		if s.Condition["Bool"]["aws:SecureTransport"] == "false" {
			if sorted(s.Action) != "s3:*" || sorted(s.Resource) != bucketARN+","+bucketARN+"/*" || s.Principal["AWS"] != "*" {
				t.Errorf("insecure transport deny does not cover everything: %+v", s)
			}
			return
		}
	}
	t.Errorf("no statement denies aws:SecureTransport = false: %+v", p.Statement)
}

// TestBucketPolicyDecisions evaluates the bucket policy on requests, with
// IAM's rules for the operators it uses: a missing key makes Bool,
// NumericLessThan and StringEquals false but StringNotEquals true; Null
// "true" means missing.
func TestBucketPolicyDecisions(t *testing.T) {
	mon, _ := run(t, args())
	p := parsePolicy(t, inputs(t, mon, policyType, "snap-policy"), "policy")

	const object = bucketARN + "/raft-snapshots/20260113T000000Z.snap"
	tls := map[string]string{"aws:SecureTransport": "true", "s3:TlsVersion": "1.3"}
	with := func(extra map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range tls {
			out[k] = v
		}
		for k, v := range extra {
			out[k] = v
		}
		return out
	}
	cases := []struct {
		name     string
		action   string
		resource string
		context  map[string]string
		denied   bool
	}{
		{"upload with this key", "s3:PutObject", object, with(map[string]string{
			"s3:x-amz-server-side-encryption": "aws:kms", "s3:x-amz-server-side-encryption-aws-kms-key-id": keyARN}), false},
		// Also what UploadPart looks like: it carries no encryption headers.
		{"upload without headers gets the default key", "s3:PutObject", object, with(nil), false},
		{"upload with another key", "s3:PutObject", object, with(map[string]string{
			"s3:x-amz-server-side-encryption": "aws:kms", "s3:x-amz-server-side-encryption-aws-kms-key-id": "arn:aws:kms:eu-west-1:123456789012:key/other"}), true},
		{"upload with aws:kms but no key (aws/s3)", "s3:PutObject", object, with(map[string]string{
			"s3:x-amz-server-side-encryption": "aws:kms"}), true},
		{"upload with SSE-S3", "s3:PutObject", object, with(map[string]string{
			"s3:x-amz-server-side-encryption": "AES256"}), true},
		{"upload with a customer key", "s3:PutObject", object, with(map[string]string{
			"s3:x-amz-server-side-encryption-customer-algorithm": "AES256"}), true},
		{"read without TLS", "s3:GetObject", object, map[string]string{"aws:SecureTransport": "false"}, true},
		{"list without TLS", "s3:ListBucket", bucketARN, map[string]string{"aws:SecureTransport": "false"}, true},
		{"read over TLS 1.1", "s3:GetObject", object, map[string]string{"aws:SecureTransport": "true", "s3:TlsVersion": "1.1"}, true},
		{"read over TLS 1.3", "s3:GetObject", object, with(nil), false},
	}
	for _, c := range cases {
		by := deniedBy(t, p, c.action, c.resource, c.context)
		if (by != "") != c.denied {
			t.Errorf("%s: denied by %q, want denied=%v", c.name, by, c.denied)
		}
	}
}

// deniedBy returns the Sid of the first Deny statement that matches.
func deniedBy(t *testing.T, p policy, action, resource string, ctx map[string]string) string {
	t.Helper()
	for _, s := range p.Statement {
		if s.Effect == "Deny" && matchesAny(s.Action, action) && matchesAny(s.Resource, resource) && conditionsHold(t, s.Condition, ctx) {
			return s.Sid
		}
	}
	return ""
}

func matchesAny(patterns []string, value string) bool {
	for _, p := range patterns {
		re := "^" + strings.ReplaceAll(regexp.QuoteMeta(p), `\*`, ".*") + "$"
		if regexp.MustCompile(re).MatchString(value) {
			return true
		}
	}
	return false
}

func conditionsHold(t *testing.T, cond map[string]map[string]any, ctx map[string]string) bool {
	t.Helper()
	for op, keys := range cond {
		for key, want := range keys {
			wants := []string{}
			switch w := want.(type) {
			case string:
				wants = append(wants, w)
			case []any:
				for _, e := range w {
					wants = append(wants, e.(string))
				}
			}
			got, present := ctx[key]
			var holds bool
			switch op {
			case "Bool", "StringEquals":
				holds = present && contains(wants, got)
			case "StringNotEquals":
				holds = !present || !contains(wants, got)
			case "NumericLessThan":
				g, _ := strconv.ParseFloat(got, 64)
				w, _ := strconv.ParseFloat(wants[0], 64)
				holds = present && g < w
			case "Null":
				holds = (wants[0] == "true") == !present
			default:
				t.Fatalf("the test's evaluator does not know operator %s", op)
			}
			if !holds {
				return false
			}
		}
	}
	return true
}

func contains(list []string, v string) bool {
	for _, e := range list {
		if e == v {
			return true
		}
	}
	return false
}

func sorted(s []string) string {
	c := append([]string(nil), s...)
	sort.Strings(c)
	return strings.Join(c, ",")
}

func TestJobRoleMayOnlyWriteSnapshots(t *testing.T) {
	mon, _ := run(t, args())
	rp := inputs(t, mon, rolePolicyType, "snap-job-upload")
	if rp["role"] != "snap-job" {
		t.Errorf("policy attached to %v", rp["role"])
	}
	p := parsePolicy(t, rp, "policy")
	var s3Stmt, kmsStmt *statement
	for i, s := range p.Statement {
		if s.Effect != "Allow" {
			t.Errorf("unexpected statement %+v", s)
		}
		for _, a := range s.Action {
			switch {
			case strings.HasPrefix(a, "s3:"):
				s3Stmt = &p.Statement[i]
			case strings.HasPrefix(a, "kms:"):
				kmsStmt = &p.Statement[i]
			default:
				t.Errorf("unexpected action %s", a)
			}
		}
	}
	if len(p.Statement) != 2 || s3Stmt == nil || kmsStmt == nil {
		t.Fatalf("want one S3 and one KMS statement, got %+v", p.Statement)
	}
	if sorted(s3Stmt.Action) != "s3:PutObject" || sorted(s3Stmt.Resource) != bucketARN+"/raft-snapshots/*" {
		t.Errorf("S3 grant = %v on %v, want only s3:PutObject under the prefix", s3Stmt.Action, s3Stmt.Resource)
	}
	if sorted(kmsStmt.Action) != "kms:Decrypt,kms:GenerateDataKey" || sorted(kmsStmt.Resource) != keyARN {
		t.Errorf("KMS grant = %v on %v", kmsStmt.Action, kmsStmt.Resource)
	}
	if got := kmsStmt.Condition["StringEquals"]["kms:ViaService"]; got != "s3.eu-west-1.amazonaws.com" {
		t.Errorf("kms:ViaService = %v, want S3 in the bucket's region", got)
	}
}

func TestJobTrustIsBoundToItsServiceAccount(t *testing.T) {
	mon, _ := run(t, args())
	p := parsePolicy(t, inputs(t, mon, roleType, "snap-job"), "assumeRolePolicy")
	if len(p.Statement) != 1 {
		t.Fatalf("want one statement, got %+v", p.Statement)
	}
	s := p.Statement[0]
	if s.Effect != "Allow" || sorted(s.Action) != "sts:AssumeRoleWithWebIdentity" || s.Principal["Federated"] != oidcARN {
		t.Errorf("statement = %+v", s)
	}
	issuer := strings.TrimPrefix(oidcIssuer, "https://")
	eq := s.Condition["StringEquals"]
	if len(s.Condition) != 1 || len(eq) != 2 ||
		eq[issuer+":sub"] != "system:serviceaccount:production:vault-snapshot" ||
		eq[issuer+":aud"] != "sts.amazonaws.com" {
		t.Errorf("conditions = %v, want exactly the job's service account and the STS audience", s.Condition)
	}
}

func cronJob(t *testing.T, mon *recorder.Monitor) batchv1.CronJob {
	t.Helper()
	var cj batchv1.CronJob
	tests.Decode(t, tests.MustFind(t, mon, cronJobType, "snap-snapshot").Inputs, &cj)
	return cj
}

func TestCronJobScheduleAndLimits(t *testing.T) {
	mon, _ := run(t, args())
	cj := cronJob(t, mon)
	if cj.Name != "snap-snapshot" || cj.Namespace != "production" {
		t.Errorf("CronJob is %s/%s", cj.Namespace, cj.Name)
	}
	if cj.Spec.Schedule != "0 */6 * * *" {
		t.Errorf("schedule = %q, want every 6 hours by default", cj.Spec.Schedule)
	}
	if cj.Spec.ConcurrencyPolicy != batchv1.ForbidConcurrent {
		t.Errorf("concurrencyPolicy = %q", cj.Spec.ConcurrencyPolicy)
	}
	if cj.Spec.SuccessfulJobsHistoryLimit == nil || cj.Spec.FailedJobsHistoryLimit == nil || cj.Spec.StartingDeadlineSeconds == nil {
		t.Error("history limits or starting deadline unset")
	}
	// Unset, a suspend made by hand is not drift that `up --refresh` undoes.
	if cj.Spec.Suspend == nil || *cj.Spec.Suspend {
		t.Errorf("suspend = %v, want false stated explicitly", cj.Spec.Suspend)
	}
	job := cj.Spec.JobTemplate.Spec
	if job.BackoffLimit == nil || job.ActiveDeadlineSeconds == nil || *job.ActiveDeadlineSeconds <= 0 {
		t.Error("backoffLimit or activeDeadlineSeconds unset")
	}
	if job.Template.Spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("restartPolicy = %q", job.Template.Spec.RestartPolicy)
	}

	if got := *job.ActiveDeadlineSeconds; got != 1800 {
		t.Errorf("activeDeadlineSeconds = %d, want the default 1800", got)
	}

	a := args()
	a.Schedule = "30 2 * * *"
	a.ActiveDeadlineSeconds = 3600
	mon, _ = run(t, a)
	spec := cronJob(t, mon).Spec
	if spec.Schedule != "30 2 * * *" {
		t.Errorf("schedule = %q, want the configured one", spec.Schedule)
	}
	if got := spec.JobTemplate.Spec.ActiveDeadlineSeconds; got == nil || *got != 3600 {
		t.Errorf("activeDeadlineSeconds = %v, want the configured 3600", got)
	}
}

// TestConfigValidateKeysProblemsByPath checks the Config without the
// engine: every problem is reported at once, under the given path.
func TestConfigValidateKeysProblemsByPath(t *testing.T) {
	if p := backup.DefaultConfig().Validate("backup"); len(p) != 0 {
		t.Fatalf("the defaults are invalid: %v", p)
	}
	c := backup.DefaultConfig()
	c.ObjectLockDays = 31 // above the 30 days of retention
	c.ActiveDeadlineSeconds = 0
	var got []string
	for _, p := range c.Validate("backup") {
		got = append(got, p.String())
	}
	want := []string{
		"backup.objectLockDays: 31 must be between 0 (off) and backup.retentionDays (30)",
		"backup.activeDeadlineSeconds: 0 must be positive",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestSnapshotPodIsRestrictedAndBounded(t *testing.T) {
	mon, _ := run(t, args())
	tmpl := cronJob(t, mon).Spec.JobTemplate.Spec.Template
	v, err := tests.PodSecurityViolations("restricted", "latest", tmpl.ObjectMeta, tmpl.Spec)
	if err != nil {
		t.Fatal(err)
	}
	if len(v) > 0 {
		t.Errorf("snapshot pod violates restricted:%s", tests.JoinViolations(v))
	}

	all := append(append([]corev1.Container{}, tmpl.Spec.InitContainers...), tmpl.Spec.Containers...)
	if len(all) != 2 {
		t.Fatalf("want an init and a main container, got %d", len(all))
	}
	for _, c := range all {
		for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			req, lim := c.Resources.Requests[res], c.Resources.Limits[res]
			if req.IsZero() || lim.IsZero() {
				t.Errorf("%s: %s request %v limit %v, want both", c.Name, res, req.String(), lim.String())
			}
		}
		if c.Resources.Limits.Memory().String() != "256Mi" {
			t.Errorf("%s: memory limit %s, want the configured 256Mi", c.Name, c.Resources.Limits.Memory())
		}
		if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("%s: root filesystem is writable", c.Name)
		}
		if !strings.Contains(c.Image, ":") || strings.HasSuffix(c.Image, ":latest") {
			t.Errorf("%s: image %q is not pinned", c.Name, c.Image)
		}
	}

	labels := backup.PodLabels("snap")
	for k, want := range labels {
		if tmpl.Labels[k] != want {
			t.Errorf("pod label %s = %q, want %q", k, tmpl.Labels[k], want)
		}
	}
	if backup.PodLabels("other")["app.kubernetes.io/instance"] == labels["app.kubernetes.io/instance"] {
		t.Error("two BackupBuckets' pods share labels")
	}
}

// mountedVolume returns the volume mounted in c at the directory of file.
func mountedVolume(t *testing.T, spec corev1.PodSpec, c corev1.Container, file string) (corev1.Volume, string) {
	t.Helper()
	for _, m := range c.VolumeMounts {
		if path.Dir(file) == path.Clean(m.MountPath) {
			for _, v := range spec.Volumes {
				if v.Name == m.Name {
					return v, path.Base(file)
				}
			}
		}
	}
	t.Fatalf("%s: nothing is mounted at %s", c.Name, path.Dir(file))
	return corev1.Volume{}, ""
}

func env(c corev1.Container) map[string]string {
	out := map[string]string{}
	for _, e := range c.Env {
		out[e.Name] = e.Value
	}
	return out
}

func TestSnapshotRunsOverTLSWithTheCA(t *testing.T) {
	mon, _ := run(t, args())
	spec := cronJob(t, mon).Spec.JobTemplate.Spec.Template.Spec
	if len(spec.InitContainers) != 1 {
		t.Fatalf("init containers = %d", len(spec.InitContainers))
	}
	save := spec.InitContainers[0]
	e := env(save)

	if !strings.HasPrefix(e["VAULT_ADDR"], "https://") || e["VAULT_ADDR"] != vaultAddr {
		t.Errorf("VAULT_ADDR = %q, want the https address given", e["VAULT_ADDR"])
	}
	ca, file := mountedVolume(t, spec, save, e["VAULT_CACERT"])
	if ca.Secret == nil || ca.Secret.SecretName != "vault-ca" {
		t.Fatalf("VAULT_CACERT %s is not from the CA secret: %+v", e["VAULT_CACERT"], ca.VolumeSource)
	}
	if len(ca.Secret.Items) != 1 || ca.Secret.Items[0].Key != "ca.crt" || ca.Secret.Items[0].Path != file {
		t.Errorf("CA secret items = %+v, want ca.crt at %s", ca.Secret.Items, file)
	}

	script := strings.Join(save.Command, " ")
	for _, want := range []string{"vault operator raft snapshot save /snapshots/", "auth/${VAULT_AUTH_MOUNT}/login", `jwt=@"${VAULT_JWT_FILE}"`} {
		if !strings.Contains(script, want) {
			t.Errorf("snapshot command lacks %q:\n%s", want, script)
		}
	}
	if e["VAULT_JWT_FILE"] != backup.VaultTokenPath {
		t.Errorf("VAULT_JWT_FILE = %q, want the projected token %s", e["VAULT_JWT_FILE"], backup.VaultTokenPath)
	}
	if e["VAULT_AUTH_MOUNT"] != "kubernetes" || e["VAULT_AUTH_ROLE"] != "secrets-platform-raft-snapshot" {
		t.Errorf("auth mount/role = %q/%q, want the defaults", e["VAULT_AUTH_MOUNT"], e["VAULT_AUTH_ROLE"])
	}
	tok, _ := mountedVolume(t, spec, save, backup.VaultTokenPath)
	if tok.Projected == nil || len(tok.Projected.Sources) != 1 || tok.Projected.Sources[0].ServiceAccountToken == nil {
		t.Errorf("the Vault login token is not a projected service account token: %+v", tok.VolumeSource)
	}
	// The upload container gets no Kubernetes token at all.
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Error("the pod automounts a service account token")
	}
	for _, m := range spec.Containers[0].VolumeMounts {
		if m.Name == tok.Name {
			t.Error("the upload container mounts the Vault login token")
		}
	}
}

func TestUploadGoesToThePrefixWithTheKey(t *testing.T) {
	mon, _ := run(t, args())
	spec := cronJob(t, mon).Spec.JobTemplate.Spec.Template.Spec
	if len(spec.Containers) != 1 {
		t.Fatalf("containers = %d", len(spec.Containers))
	}
	up := spec.Containers[0]
	e := env(up)
	if e["SNAPSHOT_BUCKET"] != bucketName || e["SNAPSHOT_PREFIX"] != "raft-snapshots" || e["SNAPSHOT_KMS_KEY_ARN"] != keyARN || e["AWS_REGION"] != "eu-west-1" {
		t.Errorf("upload env = %v", e)
	}
	script := strings.Join(up.Command, " ")
	for _, want := range []string{
		`aws s3 cp /snapshots/vault.snap "s3://${SNAPSHOT_BUCKET}/${key}"`,
		`key="${SNAPSHOT_PREFIX}/$(date -u +%Y%m%dT%H%M%SZ).snap"`,
		`--sse aws:kms --sse-kms-key-id "${SNAPSHOT_KMS_KEY_ARN}"`,
	} {
		if !strings.Contains(script, want) {
			t.Errorf("upload command lacks %q:\n%s", want, script)
		}
	}

	// Both containers share the snapshot directory, an emptyDir.
	save := spec.InitContainers[0]
	a, _ := mountedVolume(t, spec, save, "/snapshots/vault.snap")
	b, _ := mountedVolume(t, spec, up, "/snapshots/vault.snap")
	if a.Name != b.Name || a.EmptyDir == nil {
		t.Errorf("snapshot volumes %q and %q, want one shared emptyDir", a.Name, b.Name)
	}

	var sa corev1.ServiceAccount
	tests.Decode(t, tests.MustFind(t, mon, saType, "snap-job").Inputs, &sa)
	if sa.Name != "vault-snapshot" || sa.Namespace != "production" || spec.ServiceAccountName != sa.Name {
		t.Errorf("service account %s/%s, pod uses %q", sa.Namespace, sa.Name, spec.ServiceAccountName)
	}
	if sa.Annotations["eks.amazonaws.com/role-arn"] != roleARN {
		t.Errorf("IRSA annotation = %q, want %s", sa.Annotations["eks.amazonaws.com/role-arn"], roleARN)
	}
}

// TestScriptsParse runs the shell's syntax check over both scripts.
func TestScriptsParse(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh on this machine")
	}
	mon, _ := run(t, args())
	spec := cronJob(t, mon).Spec.JobTemplate.Spec.Template.Spec
	for _, c := range append(spec.InitContainers, spec.Containers...) {
		if len(c.Command) != 3 || c.Command[0] != "/bin/sh" || c.Command[1] != "-c" {
			t.Fatalf("%s: command %q", c.Name, c.Command)
		}
		if out, err := exec.Command(sh, "-n", "-c", c.Command[2]).CombinedOutput(); err != nil {
			t.Errorf("%s: script does not parse: %v\n%s", c.Name, err, out)
		}
	}
}

func TestMissingArgsFail(t *testing.T) {
	cases := map[string]func(a *backup.BackupBucketArgs) *backup.BackupBucketArgs{
		"args are required":                               func(*backup.BackupBucketArgs) *backup.BackupBucketArgs { return nil },
		"snap.retentionDays: 0 must be at least 1 day":    func(a *backup.BackupBucketArgs) *backup.BackupBucketArgs { a.RetentionDays = 0; return a },
		"OIDCProviderARN: is required":                    func(a *backup.BackupBucketArgs) *backup.BackupBucketArgs { a.OIDCProviderARN = nil; return a },
		`snap.prefix: "/" must be a non-empty key prefix`: func(a *backup.BackupBucketArgs) *backup.BackupBucketArgs { a.Prefix = "/"; return a },
		"snap.resources.limits.cpu: required": func(a *backup.BackupBucketArgs) *backup.BackupBucketArgs {
			a.Resources.Limits = nil
			return a
		},
		"VaultAddress: is required": func(a *backup.BackupBucketArgs) *backup.BackupBucketArgs { a.VaultAddress = nil; return a },
		"VaultImage: is required":   func(a *backup.BackupBucketArgs) *backup.BackupBucketArgs { a.VaultImage = nil; return a },
	}
	for want, mutate := range cases {
		t.Run(want, func(t *testing.T) {
			mon, err := recorder.RunComponent(func(ctx *pulumi.Context) error {
				_, err := backup.NewBackupBucket(ctx, "snap", mutate(args()))
				return err
			})
			if err == nil {
				t.Fatal("want an error")
			}
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not mention %s", err, want)
			}
			if n := len(mon.Resources()); n != 0 {
				t.Errorf("%d resources registered despite the error", n)
			}
		})
	}
}

// TestBucketGuardsAreOrdered pins the DependsOn edges that order the
// bucket's guards; none of them follows from an input, so a dropped edge
// would show only as a failed or racing update against S3.
func TestBucketGuardsAreOrdered(t *testing.T) {
	a := args()
	a.ObjectLockDays = 7
	mon, _ := run(t, a)
	edges := []struct {
		what, typ, name, afterType, afterName string
	}{
		// S3 rejects concurrent changes to a bucket's access settings.
		{"the policy after the public access block", policyType, "snap-policy", pabType, "snap-public-access"},
		{"ownership after the policy", ownershipType, "snap-ownership", policyType, "snap-policy"},
		// Rules on versions need versioning first.
		{"the lifecycle after versioning", lifecycleType, "snap-lifecycle", versioningType, "snap-versioning"},
		{"object lock after versioning", lockType, "snap-object-lock", versioningType, "snap-versioning"},
	}
	for _, e := range edges {
		r := tests.MustFind(t, mon, e.typ, e.name)
		after := tests.MustFind(t, mon, e.afterType, e.afterName)
		if !contains(r.DependsOn, after.URN) {
			t.Errorf("%s: %s does not depend on %s; its dependencies: %v", e.what, e.name, e.afterName, r.DependsOn)
		}
	}
}
