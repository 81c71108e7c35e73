package bootstrap_test

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/secrets-platform/secrets-platform/components/bootstrap"
	"github.com/secrets-platform/secrets-platform/internal/recorder"
	"github.com/secrets-platform/secrets-platform/tests"
)

const (
	jobType       = "kubernetes:batch/v1:Job"
	configMapType = "kubernetes:core/v1:ConfigMap"
	keyType       = "aws:kms/key:Key"
	policyType    = "aws:iam/rolePolicy:RolePolicy"
	prefix        = "secrets-platform-"
)

func args() *bootstrap.VaultBootstrapArgs {
	return &bootstrap.VaultBootstrapArgs{
		Config: bootstrap.DefaultConfig(),
		Setup: bootstrap.VaultSetup{
			KVMount: "secret", AuthMount: "kubernetes",
			Clients: []bootstrap.Client{
				{Name: prefix + "eso", ServiceAccount: "eso", Namespace: "prod", Rules: []bootstrap.Rule{
					{Path: "secret/data/db/a", Capabilities: []string{"read"}},
					{Path: "secret/data/db/b", Capabilities: []string{"read"}},
				}},
				{Name: prefix + "snap", ServiceAccount: "snap", Namespace: "prod", Rules: []bootstrap.Rule{
					{Path: "sys/storage/raft/snapshot", Capabilities: []string{"read"}},
				}},
			},
		},
		Namespace: "prod",
		Voters: []bootstrap.Voter{
			{Name: "vault-0", Address: "https://vault-0.vault-internal:8200"},
			{Name: "vault-1", Address: "https://vault-1.vault-internal:8200"},
			{Name: "vault-2", Address: "https://vault-2.vault-internal:8200"},
		},
		VaultAddress:       pulumi.String("https://vault-active.prod.svc:8200"),
		VaultImage:         pulumi.String("hashicorp/vault:2.0.4"),
		AWSCLIImage:        "amazon/aws-cli:2.31.18",
		VaultCASecretName:  pulumi.String("vault-ca"),
		AuditFile:          "/vault/audit/vault_audit.log",
		PodLabels:          map[string]string{"app.kubernetes.io/name": "vault-bootstrap"},
		ReconcilePodLabels: map[string]string{"app.kubernetes.io/name": "vault-reconcile"},
		AccountID:          "111122223333",
		Region:             "eu-west-1",
		LoginServerID:      "vault.prod.svc",
		OIDCProviderARN:    "arn:aws:iam::111122223333:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/X",
		OIDCIssuer:         "https://oidc.eks.eu-west-1.amazonaws.com/id/X",
		Bucket:             pulumi.String("backups"),
		BucketARN:          pulumi.String("arn:aws:s3:::backups"),
		BucketKeyARN:       pulumi.String("arn:aws:kms:eu-west-1:111122223333:key/bucket"),
		InitPrefix:         "init",
	}
}

func run(t *testing.T, a *bootstrap.VaultBootstrapArgs) *recorder.Monitor {
	t.Helper()
	return tests.RunComponent(t, func(ctx *pulumi.Context) error {
		_, err := bootstrap.NewVaultBootstrap(ctx, "boot", a)
		return err
	})
}

func job(t *testing.T, mon *recorder.Monitor) batchv1.Job {
	t.Helper()
	var j batchv1.Job
	tests.Decode(t, tests.MustFind(t, mon, jobType, "boot").Inputs, &j)
	return j
}

func files(t *testing.T, mon *recorder.Monitor) map[string]string {
	t.Helper()
	var cm corev1.ConfigMap
	tests.Decode(t, tests.MustFind(t, mon, configMapType, "boot").Inputs, &cm)
	return cm.Data
}

// TestJobNameChangesWithWhatItAppliesOnly: a new policy, TTL or gate runs a
// new Job; resources and images, which change how it runs but not what it
// applies, keep the revision.
func TestJobNameChangesWithWhatItAppliesOnly(t *testing.T) {
	base := job(t, run(t, args())).Name
	if !strings.HasPrefix(base, "boot-") || len(base) != len("boot-")+10 {
		t.Fatalf("Job name %q; want boot-<10 hex>", base)
	}
	cases := []struct {
		what    string
		edit    func(*bootstrap.VaultBootstrapArgs)
		changes bool
	}{
		{"another path for ESO", func(a *bootstrap.VaultBootstrapArgs) {
			a.Setup.Clients[0].Rules = append(a.Setup.Clients[0].Rules, bootstrap.Rule{Path: "secret/data/db/c", Capabilities: []string{"read"}})
		}, true},
		{"a shorter token TTL", func(a *bootstrap.VaultBootstrapArgs) { a.TokenTTL = "5m" }, true},
		{"a shorter gate", func(a *bootstrap.VaultBootstrapArgs) { a.GateTimeoutSeconds = 200 }, true},
		{"PGP holders", func(a *bootstrap.VaultBootstrapArgs) { a.RecoveryShares, a.RecoveryThreshold = 3, 2 }, true},
		{"more memory", func(a *bootstrap.VaultBootstrapArgs) {
			a.Resources.Limits = map[string]string{"cpu": "1", "memory": "1Gi"}
		}, false},
		{"another Vault image", func(a *bootstrap.VaultBootstrapArgs) { a.VaultImage = pulumi.String("hashicorp/vault:2.0.5") }, false},
		{"another bucket", func(a *bootstrap.VaultBootstrapArgs) { a.Bucket = pulumi.String("other") }, false},
	}
	for _, tc := range cases {
		a := args()
		tc.edit(a)
		got := job(t, run(t, a)).Name
		if (got != base) != tc.changes {
			t.Errorf("%s: Job name %q (was %q); want a new name: %v", tc.what, got, base, tc.changes)
		}
	}
}

// policy is a parsed Vault ACL policy.
type policy struct {
	Paths []struct {
		Path         string   `hcl:"path,label"`
		Capabilities []string `hcl:"capabilities"`
	} `hcl:"path,block"`
}

func parsePolicy(t *testing.T, text string) map[string][]string {
	t.Helper()
	f, diags := hclsyntax.ParseConfig([]byte(text), "policy.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatalf("policy does not parse: %v\n%s", diags, text)
	}
	var p policy
	if diags := gohcl.DecodeBody(f.Body, nil, &p); diags.HasErrors() {
		t.Fatalf("policy does not decode: %v\n%s", diags, text)
	}
	out := map[string][]string{}
	for _, b := range p.Paths {
		out[b.Path] = b.Capabilities
	}
	return out
}

// TestClientPoliciesGrantExactlyTheirPaths parses each client's policy back:
// read on exactly the configured paths, nothing else.
func TestClientPoliciesGrantExactlyTheirPaths(t *testing.T) {
	f := files(t, run(t, args()))
	want := map[string]map[string][]string{
		prefix + "eso":  {"secret/data/db/a": {"read"}, "secret/data/db/b": {"read"}},
		prefix + "snap": {"sys/storage/raft/snapshot": {"read"}},
	}
	for name, paths := range want {
		got := parsePolicy(t, f["policy-"+name+".hcl"])
		if len(got) != len(paths) {
			t.Errorf("%s grants %v; want exactly %v", name, got, paths)
		}
		for path, caps := range paths {
			if !slices.Equal(got[path], caps) {
				t.Errorf("%s grants %v on %s; want %v", name, got[path], path, caps)
			}
		}
	}
	// The configurator manages only names with its prefix, or what lies
	// under a mount or path with it (the database engine, the one-time
	// admin passwords).
	for path := range parsePolicy(t, f["policy-"+prefix+bootstrap.ConfiguratorName+".hcl"]) {
		under := false
		segments := strings.Split(path, "/")
		for _, s := range segments[:len(segments)-1] {
			under = under || strings.HasPrefix(s, prefix)
		}
		if strings.HasSuffix(path, "*") && !strings.HasSuffix(path, prefix+"*") && !under {
			t.Errorf("the configurator's policy has a wildcard beyond its prefix: %s", path)
		}
	}
}

// TestRolesBindOneAccountOneNamespaceAndTheVaultAudience reads every role's
// arguments back.
func TestRolesBindOneAccountOneNamespaceAndTheVaultAudience(t *testing.T) {
	f := files(t, run(t, args()))
	roles := 0
	for file, text := range f {
		name, ok := strings.CutPrefix(file, "role-")
		if !ok {
			continue
		}
		roles++
		name = strings.TrimSuffix(name, ".args")
		kv := map[string]string{}
		for line := range strings.Lines(text) {
			k, v, _ := strings.Cut(strings.TrimSpace(line), "=")
			kv[k] = v
		}
		for _, k := range []string{"bound_service_account_names", "bound_service_account_namespaces"} {
			if v := kv[k]; v == "" || strings.ContainsAny(v, ",*") {
				t.Errorf("role %s: %s = %q; want exactly one", name, k, v)
			}
		}
		if kv["bound_service_account_namespaces"] != "prod" {
			t.Errorf("role %s is bound to namespace %q; want prod", name, kv["bound_service_account_namespaces"])
		}
		if kv["audience"] != bootstrap.Audience || kv["token_policies"] != name {
			t.Errorf("role %s: audience %q, policies %q; want %q and its own policy", name, kv["audience"], kv["token_policies"], bootstrap.Audience)
		}
	}
	if roles != 3 {
		t.Errorf("%d roles; want the two clients' and the configurator's", roles)
	}
}

// TestJobRunsRestrictedWithMemoryBackedSecrets: the pod passes restricted,
// keeps init's output in memory, runs once, stays after it finishes, and
// mounts no API token.
func TestJobRunsRestrictedWithMemoryBackedSecrets(t *testing.T) {
	mon := run(t, args())
	if findings := tests.PodSecurityFindings(mon.Resources(), "restricted", "v1.33"); len(findings) > 0 {
		t.Errorf("the Job's pod fails restricted:\n%s", strings.Join(findings, "\n"))
	}
	j := job(t, mon)
	spec := j.Spec.Template.Spec
	if j.Spec.TTLSecondsAfterFinished != nil || j.Spec.BackoffLimit == nil || *j.Spec.BackoffLimit != 0 {
		t.Errorf("ttlSecondsAfterFinished %v, backoffLimit %v; want unset and 0", j.Spec.TTLSecondsAfterFinished, j.Spec.BackoffLimit)
	}
	if r := tests.MustFind(t, mon, jobType, "boot"); r.CreateTimeout != "1500s" || r.UpdateTimeout != "1500s" {
		t.Errorf("the Job's customTimeouts are %q/%q; want timeoutSeconds (1500s) for both", r.CreateTimeout, r.UpdateTimeout)
	}
	if d := j.Spec.ActiveDeadlineSeconds; d == nil || *d != 1500 {
		t.Errorf("the Job's activeDeadlineSeconds is %s; want timeoutSeconds (1500)", deref(d))
	}
	if j.Annotations["pulumi.com/replaceUnready"] != "true" {
		t.Error("a failed Job would be awaited again instead of replaced")
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Error("the pod mounts an API token")
	}
	for _, v := range spec.Volumes {
		if v.Name == "secrets" && (v.EmptyDir == nil || v.EmptyDir.Medium != corev1.StorageMediumMemory) {
			t.Errorf("the secrets volume is %+v; want a memory-backed emptyDir", v.VolumeSource)
		}
		if v.Projected != nil && v.Projected.Sources[0].ServiceAccountToken.Audience != bootstrap.Audience {
			t.Errorf("the projected token's audience is %q; want %q", v.Projected.Sources[0].ServiceAccountToken.Audience, bootstrap.Audience)
		}
	}
	steps := append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...)
	var names []string
	for _, c := range steps {
		names = append(names, c.Name)
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
			t.Errorf("step %s has no requests or limits", c.Name)
		}
	}
	if want := []string{"survey", "preflight", "init", "publish", "configure"}; !slices.Equal(names, want) {
		t.Errorf("steps %v; want %v in that order: publishing is proven before init", names, want)
	}
}

// TestNothingSecretIsAnInput: the bootstrap's inputs carry no secret (it has
// none to carry: init's output never leaves the pod in clear).
func TestNothingSecretIsAnInput(t *testing.T) {
	mon := run(t, args())
	for _, r := range mon.Resources() {
		if r.Type == "kubernetes:core/v1:Secret" {
			t.Errorf("the bootstrap registers a Secret %s", r.Name)
		}
		for key, v := range r.Inputs {
			if v.ContainsSecrets() {
				t.Errorf("%s %s input %s is a secret", r.Type, r.Name, key)
			}
		}
	}
	if findings := tests.SecretFindings(mon.Resources(), []string{"hvs."}); len(findings) > 0 {
		t.Errorf("inputs hold secret material:\n%s", strings.Join(findings, "\n"))
	}
}

// TestRecoveryKeyEncryptsForTheJobDecryptsForBreakGlass checks the two
// modes: KMS mode keeps a protected recovery key the Job may only encrypt
// with; PGP mode creates none and the role cannot use KMS beyond S3.
func TestRecoveryKeyEncryptsForTheJobDecryptsForBreakGlass(t *testing.T) {
	a := args()
	a.BreakGlassPrincipals = []string{"arn:aws:iam::111122223333:role/break-glass"}
	mon := run(t, a)
	key := tests.MustFind(t, mon, keyType, "boot-recovery")
	if !key.Protect || !key.RetainOnDelete {
		t.Error("the recovery key is not protected and retained")
	}
	doc := tests.ParsePolicy(t, tests.PlainMap(key.Inputs), "policy")
	for _, s := range doc.Statement {
		principals := awsPrincipals(s)
		switch {
		case slices.Contains(s.Action, "kms:Decrypt"):
			if !slices.Equal(principals, a.BreakGlassPrincipals) || len(s.Action) != 1 {
				t.Errorf("decrypt is granted to %v with %v; want only the break-glass role", principals, s.Action)
			}
		case slices.Contains(s.Action, "kms:Encrypt"):
			if len(principals) != 1 || !strings.Contains(principals[0], ":role/") || len(s.Action) != 1 {
				t.Errorf("encrypt is granted to %v with %v; want only the bootstrap role", principals, s.Action)
			}
		default:
			for _, action := range s.Action {
				if action == "kms:*" || strings.HasPrefix(action, "kms:Decrypt") || strings.HasPrefix(action, "kms:Encrypt") || strings.HasPrefix(action, "kms:ReEncrypt") || strings.HasPrefix(action, "kms:GenerateDataKey") {
					t.Errorf("statement %s grants %s", s.Sid, action)
				}
			}
		}
	}

	a = args()
	a.RecoveryShares, a.RecoveryThreshold = 1, 1
	a.PGPKeys = []string{testPublicKey(t)}
	mon = run(t, a)
	if _, ok := mon.Find(keyType, "boot-recovery"); ok {
		t.Error("PGP mode creates a recovery key")
	}
	publish := tests.ParsePolicy(t, tests.PlainMap(tests.MustFind(t, mon, policyType, "boot-publish").Inputs), "policy")
	for _, s := range publish.Statement {
		if slices.Contains(s.Action, "kms:Encrypt") {
			t.Errorf("PGP mode's role may kms:Encrypt (%s)", s.Sid)
		}
	}
	if f := files(t, mon); f["pgp-0.key"] != a.PGPKeys[0] {
		t.Error("the holder's public key is not in the ConfigMap as pgp-0.key")
	}
}

// awsPrincipals are a statement's AWS principals, one or a list.
func awsPrincipals(s tests.PolicyStatement) []string {
	switch v := s.Principal["AWS"].(type) {
	case string:
		return []string{v}
	case []any:
		out := make([]string, len(v))
		for i, p := range v {
			out[i], _ = p.(string)
		}
		return out
	}
	return nil
}

// TestRecoveryKeyFollowsTheInitObjectToTheDRRegion: the init object is
// replicated with the snapshots, so its key is a multi-Region key with a
// replica in the DR region, protected and retained like the primary, under
// the same policy; without a DR provider there is no replica.
func TestRecoveryKeyFollowsTheInitObjectToTheDRRegion(t *testing.T) {
	const replicaType = "aws:kms/replicaKey:ReplicaKey"
	mon := tests.RunComponent(t, func(ctx *pulumi.Context) error {
		dr, err := tests.AWSProvider(ctx, "aws-dr", "eu-central-1")
		if err != nil {
			return err
		}
		a := args()
		a.DRProvider = dr
		_, err = bootstrap.NewVaultBootstrap(ctx, "boot", a)
		return err
	})
	key := tests.MustFind(t, mon, keyType, "boot-recovery")
	if in := tests.PlainMap(key.Inputs); in["multiRegion"] != true {
		t.Errorf("the recovery key is not multi-Region: %v", in["multiRegion"])
	}
	replica := tests.MustFind(t, mon, replicaType, "boot-recovery-replica")
	if !strings.Contains(replica.Provider, "::aws-dr::") || strings.Contains(key.Provider, "::aws-dr::") {
		t.Errorf("replica through %q, primary through %q; want only the replica through aws-dr", replica.Provider, key.Provider)
	}
	if !replica.Protect || !replica.RetainOnDelete {
		t.Error("the recovery key's replica is not protected and retained")
	}
	in, primaryIn := tests.PlainMap(replica.Inputs), tests.PlainMap(key.Inputs)
	if in["policy"] != primaryIn["policy"] || in["deletionWindowInDays"] != primaryIn["deletionWindowInDays"] {
		t.Errorf("the replica's policy or deletion window differs from the primary's")
	}

	if _, ok := run(t, args()).Find(replicaType, "boot-recovery-replica"); ok {
		t.Error("a replica exists without a DR provider")
	}
}

// TestJobWaitsForItsRolesPolicy: the Job depends on the role's policy, not
// only on the role (through the service account): a role created without
// its policy yet fails the publish preflight.
func TestJobWaitsForItsRolesPolicy(t *testing.T) {
	mon := run(t, args())
	policy := tests.MustFind(t, mon, policyType, "boot-publish")
	if j := tests.MustFind(t, mon, jobType, "boot"); !slices.Contains(j.DependsOn, policy.URN) {
		t.Errorf("the Job depends on %v; want the role's policy %s among them", j.DependsOn, policy.URN)
	}
}

// TestAWSCallsAreBoundedAsTheDeadlineCounts: the publish steps bound every
// AWS call as Config.Validate assumes (5 s to connect, 15 s to read, two
// attempts), and the script passes the bounds to the CLI.
func TestAWSCallsAreBoundedAsTheDeadlineCounts(t *testing.T) {
	spec := job(t, run(t, args())).Spec.Template.Spec
	want := map[string]string{"AWS_CONNECT_TIMEOUT": "5", "AWS_READ_TIMEOUT": "15", "AWS_MAX_ATTEMPTS": "2"}
	for _, c := range spec.InitContainers {
		if c.Name != "preflight" && c.Name != "publish" {
			continue
		}
		env := map[string]string{}
		for _, e := range c.Env {
			env[e.Name] = e.Value
		}
		for k, v := range want {
			if env[k] != v {
				t.Errorf("step %s: %s = %q; want %q", c.Name, k, env[k], v)
			}
		}
	}
	for _, opt := range []string{`--cli-connect-timeout "${AWS_CONNECT_TIMEOUT:?}"`, `--cli-read-timeout "${AWS_READ_TIMEOUT:?}"`} {
		if !strings.Contains(bootstrap.Script, opt) {
			t.Errorf("the script does not pass %s to the AWS CLI", opt)
		}
	}
}

// deref shows an optional number, or that it is unset.
func deref(p *int64) string {
	if p == nil {
		return "unset"
	}
	return strconv.FormatInt(*p, 10)
}
