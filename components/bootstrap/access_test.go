package bootstrap

// Tests of the access levels (access.go) inside the package: levelRules,
// mergeRules, configuratorRules and newPlan are unexported, so this file is
// package bootstrap, beside the external bootstrap_test files, and has
// helpers of its own. The policies are checked as rules here; real Vault
// parses the rendered HCL in the integration suite.

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/internals"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/secrets-platform/secrets-platform/internal/recorder"
	"github.com/secrets-platform/secrets-platform/tests"
)

// IAM roles people assume, as the stack config binds them.
const (
	oncallARN   = "arn:aws:iam::111122223333:role/platform-oncall"
	auditorARN  = "arn:aws:iam::111122223333:role/platform-auditor"
	adminARN    = "arn:aws:iam::111122223333:role/platform-admin"
	accessKV    = "secret"
	accessNS    = "prod"
	accessLogin = "vault.prod.svc"
)

// accessSetup is the Vault setup the tests render the levels with.
var accessSetup = VaultSetup{KVMount: accessKV, AuthMount: "kubernetes"}

// accessConfig is the default config with levels bound.
func accessConfig(access map[string][]string) Config {
	c := DefaultConfig()
	c.Access = access
	return c
}

// accessArgs are valid component args whose config binds access.
func accessArgs(access map[string][]string) *VaultBootstrapArgs {
	return &VaultBootstrapArgs{
		Config: accessConfig(access),
		Setup:  accessSetup,
		Voters: []Voter{
			{Name: "vault-0", Address: "https://vault-0.vault-internal:8200"},
		},
		Namespace:          accessNS,
		VaultAddress:       pulumi.String("https://vault-active.prod.svc:8200"),
		VaultImage:         pulumi.String("hashicorp/vault:2.0.4"),
		AWSCLIImage:        "amazon/aws-cli:2.31.18",
		VaultCASecretName:  pulumi.String("vault-ca"),
		AuditFile:          "/vault/audit/vault_audit.log",
		PodLabels:          map[string]string{"app.kubernetes.io/name": "vault-bootstrap"},
		ReconcilePodLabels: map[string]string{"app.kubernetes.io/name": "vault-reconcile"},
		AccountID:          "111122223333",
		Region:             "eu-west-1",
		LoginServerID:      accessLogin,
		OIDCProviderARN:    "arn:aws:iam::111122223333:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/X",
		OIDCIssuer:         "https://oidc.eks.eu-west-1.amazonaws.com/id/X",
		Bucket:             pulumi.String("backups"),
		BucketARN:          pulumi.String("arn:aws:s3:::backups"),
		BucketKeyARN:       pulumi.String("arn:aws:kms:eu-west-1:111122223333:key/bucket"),
		InitPrefix:         "init",
	}
}

// accessRun is what one component run under mocks rendered.
type accessRun struct {
	mon *recorder.Monitor
	// files are the ConfigMap's, settings the configure step's environment.
	files, settings map[string]string
	// logins is the LoginCommands output.
	logins map[string]string
}

// runAccess builds one VaultBootstrap called boot under mocks and reads its
// ConfigMap, its configure step's environment and its LoginCommands.
func runAccess(t *testing.T, a *VaultBootstrapArgs) accessRun {
	t.Helper()
	var r accessRun
	var logins internals.UnsafeAwaitOutputResult
	r.mon = tests.RunComponent(t, func(ctx *pulumi.Context) error {
		b, err := NewVaultBootstrap(ctx, "boot", a)
		if err != nil {
			return err
		}
		out, err := tests.Await(ctx, map[string]pulumi.Output{"logins": b.LoginCommands})
		logins = out["logins"]
		return err
	})
	if !logins.Known || logins.Secret {
		t.Errorf("LoginCommands is known %v, secret %v; want known and plain", logins.Known, logins.Secret)
	}
	tests.Decode(t, logins.Value, &r.logins)
	var cm corev1.ConfigMap
	tests.Decode(t, tests.MustFind(t, r.mon, "kubernetes:core/v1:ConfigMap", "boot").Inputs, &cm)
	r.files = cm.Data
	var j batchv1.Job
	tests.Decode(t, tests.MustFind(t, r.mon, "kubernetes:batch/v1:Job", "boot").Inputs, &j)
	r.settings = map[string]string{}
	for _, c := range j.Spec.Template.Spec.Containers {
		if c.Name == "configure" {
			for _, e := range c.Env {
				r.settings[e.Name] = e.Value
			}
		}
	}
	if len(r.settings) == 0 {
		t.Fatal("the Job has no configure step with an environment")
	}
	return r
}

// problemStrings are Validate's problems as they are printed.
func problemStrings(c Config) []string {
	var out []string
	for _, p := range c.Validate("bootstrap") {
		out = append(out, p.String())
	}
	return out
}

// TestAccessConfigNamesTheKeyTheValueAndWhatIsAllowed: each invalid access
// setting is one problem at its key path, quoting the value and saying what
// would be accepted.
func TestAccessConfigNamesTheKeyTheValueAndWhatIsAllowed(t *testing.T) {
	const notARole = "is not an IAM role ARN such as arn:aws:iam::111122223333:role/platform-oncall (people log in with a role they assume; users, sessions and wildcards are not accepted)"
	const ttlRule = "must be a Go duration from 5m to 1h, such as 15m"
	long := "arn:aws:iam::111122223333:role/" + strings.Repeat("r", 65)
	cases := []struct {
		name   string
		access map[string][]string
		ttl    *string // nil: the default, 15m
		path   string
		parts  []string
	}{
		{"an IAM user", map[string][]string{"operator": {"arn:aws:iam::111122223333:user/alice"}}, nil,
			"bootstrap.access.operator[0]", []string{`"arn:aws:iam::111122223333:user/alice" ` + notARole}},
		{"an STS session", map[string][]string{"operator": {"arn:aws:sts::111122223333:assumed-role/platform-oncall/alice"}}, nil,
			"bootstrap.access.operator[0]", []string{`"arn:aws:sts::111122223333:assumed-role/platform-oncall/alice" ` + notARole}},
		{"an S3 bucket", map[string][]string{"operator": {"arn:aws:s3:::backups"}}, nil,
			"bootstrap.access.operator[0]", []string{`"arn:aws:s3:::backups" ` + notARole}},
		{"a wildcard role", map[string][]string{"operator": {"arn:aws:iam::111122223333:role/*"}}, nil,
			"bootstrap.access.operator[0]", []string{`"arn:aws:iam::111122223333:role/*" ` + notARole}},
		{"a wildcard under a path", map[string][]string{"operator": {"arn:aws:iam::111122223333:role/teams/*"}}, nil,
			"bootstrap.access.operator[0]", []string{`"arn:aws:iam::111122223333:role/teams/*" ` + notARole}},
		{"a role name over 64 characters", map[string][]string{"operator": {long}}, nil,
			"bootstrap.access.operator[0]", []string{`"` + long + `" ` + notARole}},
		{"an account of 11 digits", map[string][]string{"operator": {"arn:aws:iam::11112222333:role/platform-oncall"}}, nil,
			"bootstrap.access.operator[0]", []string{`"arn:aws:iam::11112222333:role/platform-oncall" ` + notARole}},
		{"the second ARN of admin", map[string][]string{"admin": {adminARN, "platform-admin"}}, nil,
			"bootstrap.access.admin[1]", []string{`"platform-admin" ` + notARole}},
		{"a role with a path", map[string][]string{"operator": {"arn:aws:iam::111122223333:role/teams/platform/platform-oncall"}}, nil,
			"bootstrap.access.operator[0]", []string{
				`"arn:aws:iam::111122223333:role/teams/platform/platform-oncall" has a path: give arn:aws:iam::111122223333:role/platform-oncall; `,
				"Vault matches the role in the caller's session ARN, which carries no path",
			}},
		{"a GovCloud role with a path", map[string][]string{"admin": {"arn:aws-us-gov:iam::111122223333:role/ops/platform-admin"}}, nil,
			"bootstrap.access.admin[0]", []string{
				`"arn:aws-us-gov:iam::111122223333:role/ops/platform-admin" has a path: give arn:aws-us-gov:iam::111122223333:role/platform-admin; `,
			}},
		{"an unknown level", map[string][]string{"readonly": {oncallARN}}, nil,
			"bootstrap.access.readonly", []string{`unknown access level "readonly"; the levels are operator, admin`}},
		{"an empty list", map[string][]string{"operator": {}}, nil,
			"bootstrap.access.operator", []string{"no IAM role ARNs: give at least one, or remove the level"}},
		{"a level without a list", map[string][]string{"admin": nil}, nil,
			"bootstrap.access.admin", []string{"no IAM role ARNs: give at least one, or remove the level"}},
		{"an ARN listed twice", map[string][]string{"operator": {oncallARN, auditorARN, oncallARN}}, nil,
			"bootstrap.access.operator[2]", []string{`"` + oncallARN + `" is listed twice`}},
		{"a TTL under 5m", nil, new("1m"), "bootstrap.accessTokenTtl", []string{`"1m" ` + ttlRule}},
		{"a TTL just under 5m", nil, new("4m59s"), "bootstrap.accessTokenTtl", []string{`"4m59s" ` + ttlRule}},
		{"a TTL over 1h", nil, new("2h"), "bootstrap.accessTokenTtl", []string{`"2h" ` + ttlRule}},
		{"a TTL just over 1h", nil, new("1h0m1s"), "bootstrap.accessTokenTtl", []string{`"1h0m1s" ` + ttlRule}},
		{"a TTL that is no duration", nil, new("soon"), "bootstrap.accessTokenTtl", []string{`"soon" ` + ttlRule}},
		{"no TTL", nil, new(""), "bootstrap.accessTokenTtl", []string{`"" ` + ttlRule}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := accessConfig(tc.access)
			if tc.ttl != nil {
				c.AccessTokenTTL = *tc.ttl
			}
			problems := c.Validate("bootstrap")
			if len(problems) != 1 {
				t.Fatalf("%d problems %q; want one, at %s", len(problems), problemStrings(c), tc.path)
			}
			if problems[0].Path != tc.path {
				t.Errorf("problem at %q (%s); want it at %q", problems[0].Path, problems[0].Message, tc.path)
			}
			for _, part := range tc.parts {
				if !strings.Contains(problems[0].Message, part) {
					t.Errorf("message %q does not say %q", problems[0].Message, part)
				}
			}
		})
	}
}

// TestAccessConfigAcceptsRolesOfEveryPartition: role ARNs of the three
// partitions at both levels (the same role at both, as staging binds it),
// a name of 64 characters and the TTL's bounds are valid.
func TestAccessConfigAcceptsRolesOfEveryPartition(t *testing.T) {
	for _, ttl := range []string{"5m", "15m", "1h", "60m"} {
		c := accessConfig(map[string][]string{
			"operator": {oncallARN, "arn:aws-us-gov:iam::111122223333:role/gov-oncall", "arn:aws-cn:iam::111122223333:role/cn-oncall"},
			"admin":    {oncallARN, "arn:aws:iam::111122223333:role/" + strings.Repeat("a", 64), "arn:aws:iam::111122223333:role/A+b=c,d.e@f_g-h"},
		})
		c.AccessTokenTTL = ttl
		if p := problemStrings(c); len(p) != 0 {
			t.Errorf("accessTokenTtl %s and valid role ARNs: %q", ttl, p)
		}
	}
	if c := DefaultConfig(); c.AccessTokenTTL != "15m" || c.Access != nil {
		t.Errorf("defaults: access %v, accessTokenTtl %q; want none and 15m", c.Access, c.AccessTokenTTL)
	}
}

// TestAccessPlanBindsEachLevelToItsRolesAndItsPolicyAlone: one policy and
// one AWS-auth role per bound level, none for an unbound level; each role
// binds exactly the config's ARNs, compares ARNs without calling IAM, gives
// the level's own policy alone and tokens that live accessTokenTtl, not
// renewable past it.
func TestAccessPlanBindsEachLevelToItsRolesAndItsPolicyAlone(t *testing.T) {
	a := accessArgs(map[string][]string{"operator": {oncallARN, auditorARN}})
	a.AccessTokenTTL = "20m"
	r := runAccess(t, a)
	operator := prefixedName("operator")
	want := "auth_type=iam\n" +
		"bound_iam_principal_arn=" + oncallARN + "," + auditorARN + "\n" +
		"resolve_aws_unique_ids=false\n" +
		"token_policies=" + operator + "\n" +
		"token_ttl=1200\n" +
		"token_max_ttl=1200\n"
	if got := r.files["aws-role-"+operator+".args"]; got != want {
		t.Errorf("aws-role-%s.args is\n%s\nwant\n%s", operator, got, want)
	}
	if got, want := r.files["policy-"+operator+".hcl"], string(PolicyHCL(levelRules(a.Config, a.Setup, OperatorLevel))); got != want {
		t.Errorf("policy-%s.hcl is\n%s\nwant the operator's rules\n%s", operator, got, want)
	}
	if got := awsRoleFiles(r.files); !slices.Equal(got, []string{"aws-role-" + operator + ".args"}) {
		t.Errorf("AWS-auth roles %v; want the operator's alone (admin is not bound)", got)
	}
	for name := range r.files {
		if strings.Contains(name, "admin") {
			t.Errorf("the plan has %s for admin, a level the config does not bind", name)
		}
	}
	// A Kubernetes-auth role file would be applied with the wrong method.
	if _, ok := r.files["role-"+operator+".args"]; ok {
		t.Errorf("the operator level has a Kubernetes-auth role")
	}

	a = accessArgs(map[string][]string{"operator": {oncallARN}, "admin": {adminARN}})
	r = runAccess(t, a)
	for level, arn := range map[string]string{OperatorLevel: oncallARN, AdminLevel: adminARN} {
		name := prefixedName(level)
		args := argLines(r.files["aws-role-"+name+".args"])
		if args["bound_iam_principal_arn"] != arn || args["token_policies"] != name ||
			args["token_ttl"] != "900" || args["token_max_ttl"] != "900" {
			t.Errorf("aws-role-%s.args binds %q with policies %q, ttl %q/%q; want %q, its own policy alone, 900/900 (15m)",
				name, args["bound_iam_principal_arn"], args["token_policies"], args["token_ttl"], args["token_max_ttl"], arn)
		}
		if got, want := r.files["policy-"+name+".hcl"], string(PolicyHCL(levelRules(a.Config, a.Setup, level))); got != want {
			t.Errorf("policy-%s.hcl is\n%s\nwant the %s level's rules\n%s", name, got, level, want)
		}
	}
	if got := awsRoleFiles(r.files); len(got) != 2 {
		t.Errorf("AWS-auth roles %v; want one per bound level", got)
	}

	r = runAccess(t, accessArgs(nil))
	if got := awsRoleFiles(r.files); len(got) != 0 {
		t.Errorf("AWS-auth roles %v with no level bound", got)
	}
	for _, level := range AccessLevels {
		if _, ok := r.files["policy-"+prefixedName(level)+".hcl"]; ok {
			t.Errorf("a policy for %s with no level bound", level)
		}
	}
}

// prefixedName is the default prefix's name of a level or role.
func prefixedName(s string) string { return DefaultConfig().NamePrefix + s }

// awsRoleFiles are the plan's AWS-auth role files, sorted.
func awsRoleFiles(files map[string]string) []string {
	var out []string
	for name := range files {
		if strings.HasPrefix(name, "aws-role-") {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// argLines reads a role's arguments, one key=value a line.
func argLines(text string) map[string]string {
	kv := map[string]string{}
	for line := range strings.Lines(text) {
		k, v, _ := strings.Cut(strings.TrimSpace(line), "=")
		kv[k] = v
	}
	return kv
}

// TestAccessSettingsPointVaultAtTheRegionalSTS: the configure step reads
// the AWS auth method's mount, the region's STS endpoint and the server ID
// logins must sign from its environment; China's regions have an endpoint
// of their own domain.
func TestAccessSettingsPointVaultAtTheRegionalSTS(t *testing.T) {
	r := runAccess(t, accessArgs(map[string][]string{"operator": {oncallARN}}))
	want := map[string]string{
		"AWS_AUTH_MOUNT":     "aws",
		"AWS_STS_ENDPOINT":   "https://sts.eu-west-1.amazonaws.com",
		"AWS_STS_REGION":     "eu-west-1",
		"AWS_AUTH_SERVER_ID": accessLogin,
	}
	for k, v := range want {
		if r.settings[k] != v {
			t.Errorf("configure step: %s = %q; want %q", k, r.settings[k], v)
		}
	}

	for region, endpoint := range map[string]string{
		"eu-west-1":      "https://sts.eu-west-1.amazonaws.com",
		"us-gov-west-1":  "https://sts.us-gov-west-1.amazonaws.com",
		"cn-north-1":     "https://sts.cn-north-1.amazonaws.com.cn",
		"cn-northwest-1": "https://sts.cn-northwest-1.amazonaws.com.cn",
	} {
		if got := (AWSLogin{Region: region}).STSEndpoint(); got != endpoint {
			t.Errorf("STS endpoint of %s: %q; want %q", region, got, endpoint)
		}
	}
}

// TestAccessChangesRunANewJob: who may log in, for how long, and the server
// ID are what the Job applies, so each change names a new Job revision.
func TestAccessChangesRunANewJob(t *testing.T) {
	jobName := func(a *VaultBootstrapArgs) string {
		var j batchv1.Job
		tests.Decode(t, tests.MustFind(t, runAccess(t, a).mon, "kubernetes:batch/v1:Job", "boot").Inputs, &j)
		return j.Name
	}
	base := jobName(accessArgs(map[string][]string{"operator": {oncallARN}}))
	edits := map[string]func(*VaultBootstrapArgs){
		"another ARN":       func(a *VaultBootstrapArgs) { a.Access["operator"] = append(a.Access["operator"], auditorARN) },
		"another level":     func(a *VaultBootstrapArgs) { a.Access["admin"] = []string{adminARN} },
		"no level":          func(a *VaultBootstrapArgs) { a.Access = nil },
		"another TTL":       func(a *VaultBootstrapArgs) { a.AccessTokenTTL = "30m" },
		"another server ID": func(a *VaultBootstrapArgs) { a.LoginServerID = "vault.staging.svc" },
	}
	for what, edit := range edits {
		a := accessArgs(map[string][]string{"operator": {oncallARN}})
		edit(a)
		if got := jobName(a); got == base {
			t.Errorf("%s: the Job is still %s; want a new revision", what, got)
		}
	}
}

// byPath are rules' capabilities by path; a path listed twice gets both
// lists, one after the other.
func byPath(rules []Rule) map[string][]string {
	out := map[string][]string{}
	for _, r := range rules {
		out[r.Path] = append(out[r.Path], r.Capabilities...)
	}
	return out
}

// reaches says whether a rule's path grants on path as Vault matches it:
// the same path, or a prefix of it ending in *. It knows no + segment,
// which TestLevelPoliciesGrantEachPathOnceAndNoSecretOrRootPath forbids.
func reaches(rule, path string) bool {
	prefix, wildcard := strings.CutSuffix(rule, "*")
	return rule == path || wildcard && strings.HasPrefix(path, prefix)
}

// TestOperatorPolicyOnlyReads: the operator level reads and lists, and has
// sudo only where Vault requires it to list the audit devices.
func TestOperatorPolicyOnlyReads(t *testing.T) {
	rules := levelRules(DefaultConfig(), accessSetup, OperatorLevel)
	for _, r := range rules {
		if r.Path == "sys/audit" {
			continue
		}
		for _, c := range r.Capabilities {
			if c != "read" && c != "list" {
				t.Errorf("operator: %s grants %s; the operator level only reads", r.Path, c)
			}
		}
	}
	// What the runbooks run at this level.
	operator := byPath(rules)
	for path, caps := range map[string][]string{
		"sys/audit":                        {"read", "sudo"}, // vault audit list
		"sys/storage/raft/configuration":   {"read"},
		"sys/storage/raft/autopilot/state": {"read"},
		"sys/storage/raft/snapshot":        {"read"},
		accessKV + "/metadata/*":           {"read", "list"},
	} {
		if !slices.Equal(operator[path], caps) {
			t.Errorf("operator: %s grants %v; want %v", path, operator[path], caps)
		}
	}
}

// TestAdminPolicyIsOperatorAndMore: every path of the operator's is in the
// admin's with at least its capabilities; admin restores snapshots, steps
// the leader down, finds tokens and writes KV values.
func TestAdminPolicyIsOperatorAndMore(t *testing.T) {
	operator := levelRules(DefaultConfig(), accessSetup, OperatorLevel)
	admin := byPath(levelRules(DefaultConfig(), accessSetup, AdminLevel))
	for _, r := range operator {
		for _, c := range r.Capabilities {
			if !slices.Contains(admin[r.Path], c) {
				t.Errorf("admin: %s grants %v, without the operator's %s", r.Path, admin[r.Path], c)
			}
		}
	}
	if len(admin) <= len(byPath(operator)) {
		t.Errorf("admin has %d paths, the operator %d; want more", len(admin), len(byPath(operator)))
	}
	for path, caps := range map[string][]string{
		// read (operator's save) and update, sudo (restore): one rule.
		"sys/storage/raft/snapshot":       {"read", "update", "sudo"},
		"sys/storage/raft/snapshot-force": {"update", "sudo"},
		"sys/step-down":                   {"update", "sudo"},
		accessKV + "/data/*":              {"create", "update", "patch"},
		"auth/token/accessors":            {"list", "sudo"},
	} {
		if !slices.Equal(admin[path], caps) {
			t.Errorf("admin: %s grants %v; want %v", path, admin[path], caps)
		}
	}
}

// TestLevelPoliciesGrantEachPathOnceAndNoSecretOrRootPath: one rule per
// path (a second would be a second place to grant it); no level may read a
// KV value, and none reaches the raw storage, root generation, rekeying,
// sealing or every path.
func TestLevelPoliciesGrantEachPathOnceAndNoSecretOrRootPath(t *testing.T) {
	forbidden := []string{
		"sys/raw", "sys/raw/core/keyring",
		"sys/generate-root", "sys/generate-root/attempt", "sys/generate-root/update",
		"sys/rekey/init", "sys/rekey/update", "sys/rekey-recovery-key/init",
		"sys/seal", "any/path/at/all",
	}
	for _, level := range AccessLevels {
		seen := map[string]bool{}
		for _, r := range levelRules(DefaultConfig(), accessSetup, level) {
			if seen[r.Path] {
				t.Errorf("%s: a second rule for %s", level, r.Path)
			}
			seen[r.Path] = true
			if r.Path == "*" || r.Path == "" {
				t.Errorf("%s grants %v on every path", level, r.Capabilities)
			}
			if slices.Contains(strings.Split(r.Path, "/"), "+") {
				t.Errorf("%s: %s has a + segment, which reaches does not match", level, r.Path)
			}
			for _, path := range forbidden {
				if reaches(r.Path, path) {
					t.Errorf("%s: %s grants %v on %s", level, r.Path, r.Capabilities, path)
				}
			}
			if reaches(r.Path, accessKV+"/data/app/password") && slices.Contains(r.Capabilities, "read") {
				t.Errorf("%s: %s grants read on KV values (%v)", level, r.Path, r.Capabilities)
			}
		}
	}
}

// TestMergeRulesUnitesCapabilitiesInVaultsOrder: one rule per path, in the
// order paths first appear, with every capability any list grants it, each
// once, in Vault's order.
func TestMergeRulesUnitesCapabilitiesInVaultsOrder(t *testing.T) {
	cases := []struct {
		name  string
		lists [][]Rule
		want  []Rule
	}{
		{"capabilities of two lists", [][]Rule{
			{{Path: "a", Capabilities: []string{"read"}}},
			{{Path: "b", Capabilities: []string{"list"}}, {Path: "a", Capabilities: []string{"sudo", "update"}}},
		}, []Rule{
			{Path: "a", Capabilities: []string{"read", "update", "sudo"}},
			{Path: "b", Capabilities: []string{"list"}},
		}},
		{"a path twice in one list", [][]Rule{
			{{Path: "a", Capabilities: []string{"read"}}, {Path: "a", Capabilities: []string{"list", "read"}}},
		}, []Rule{
			{Path: "a", Capabilities: []string{"read", "list"}},
		}},
		{"every capability, reversed", [][]Rule{
			{{Path: "a", Capabilities: []string{"sudo", "list", "delete", "patch", "update", "read", "create"}}},
		}, []Rule{
			{Path: "a", Capabilities: []string{"create", "read", "update", "patch", "delete", "list", "sudo"}},
		}},
		{"first appearance decides the order", [][]Rule{
			{{Path: "c", Capabilities: []string{"read"}}},
			{{Path: "a", Capabilities: []string{"read"}}, {Path: "c", Capabilities: []string{"list"}}, {Path: "b", Capabilities: []string{"read"}}},
			{{Path: "b", Capabilities: []string{"create"}}, {Path: "d", Capabilities: []string{"delete"}}},
		}, []Rule{
			{Path: "c", Capabilities: []string{"read", "list"}},
			{Path: "a", Capabilities: []string{"read"}},
			{Path: "b", Capabilities: []string{"create", "read"}},
			{Path: "d", Capabilities: []string{"delete"}},
		}},
	}
	for _, tc := range cases {
		if got := mergeRules(tc.lists...); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: merged %v; want %v", tc.name, got, tc.want)
		}
	}
	if got := mergeRules(); len(got) != 0 {
		t.Errorf("nothing merged: %v", got)
	}
	// The lists are not changed.
	in := []Rule{{Path: "a", Capabilities: []string{"update", "read"}}}
	mergeRules(in, []Rule{{Path: "a", Capabilities: []string{"list"}}})
	if !slices.Equal(in[0].Capabilities, []string{"update", "read"}) {
		t.Errorf("mergeRules changed its input: %v", in[0].Capabilities)
	}
}

// TestLoginCommandIsTheOneCommandOfALevel: the command signs for the
// regional STS endpoint and the server ID, and names the level's role; the
// component outputs one per bound level.
func TestLoginCommandIsTheOneCommandOfALevel(t *testing.T) {
	got := DefaultConfig().LoginCommand(AWSLogin{Region: "eu-west-1", ServerID: accessLogin}, OperatorLevel)
	want := "AWS_STS_REGIONAL_ENDPOINTS=regional vault login -method=aws region=eu-west-1 header_value=vault.prod.svc role=secrets-platform-operator"
	if got != want {
		t.Errorf("login command\n%s\nwant\n%s", got, want)
	}
	c := DefaultConfig()
	c.NamePrefix = "team-"
	if got := c.LoginCommand(AWSLogin{Region: "us-east-2", ServerID: "vault.team.svc"}, AdminLevel); got != "AWS_STS_REGIONAL_ENDPOINTS=regional vault login -method=aws region=us-east-2 header_value=vault.team.svc role=team-admin" {
		t.Errorf("login command with prefix team- in us-east-2: %s", got)
	}

	r := runAccess(t, accessArgs(map[string][]string{"operator": {oncallARN}}))
	if want := map[string]string{"operator": want}; !reflect.DeepEqual(r.logins, want) {
		t.Errorf("LoginCommands %v; want %v", r.logins, want)
	}
	r = runAccess(t, accessArgs(map[string][]string{"operator": {oncallARN}, "admin": {adminARN}}))
	if len(r.logins) != 2 || r.logins["operator"] != want || !strings.HasSuffix(r.logins["admin"], " role=secrets-platform-admin") {
		t.Errorf("LoginCommands %v; want the operator's and the admin's", r.logins)
	}
	if r := runAccess(t, accessArgs(nil)); len(r.logins) != 0 {
		t.Errorf("LoginCommands %v with no level bound", r.logins)
	}
}

// TestConfiguratorMayPruneTheRolesOfARemovedLevel: the configurator's
// policy manages the AWS auth method and the roles with the prefix whether
// or not a level is bound, so the run after a level (or the last one)
// leaves the config can remove its role (the script's prune, which
// TestScriptAppliesAccessOnceAndPrunesARemovedLevel runs).
func TestConfiguratorMayPruneTheRolesOfARemovedLevel(t *testing.T) {
	file := policyPrefix + prefixedName(ConfiguratorName) + ".hcl"
	bound := accessPlan(t, map[string][]string{"operator": {oncallARN}, "admin": {adminARN}}).Files[file]
	if none := accessPlan(t, nil).Files[file]; bound == "" || bound != none {
		t.Errorf("the configurator's policy depends on the levels bound:\n%s\nwith none:\n%s", bound, none)
	}
	configurator := byPath(configuratorRules(DefaultConfig().NamePrefix, accessSetup))
	for path, caps := range map[string][]string{
		"sys/auth/aws":                       {"create", "read", "update", "sudo"},
		"auth/aws/config/client":             {"create", "read", "update"},
		"auth/aws/role":                      {"list"},
		"auth/aws/role/" + prefixedName("*"): {"create", "read", "update", "delete"},
	} {
		for _, c := range caps {
			if !slices.Contains(configurator[path], c) {
				t.Errorf("configurator: %s grants %v; want %s among them", path, configurator[path], c)
			}
		}
	}
}

// fakeVault is a vault CLI for the script's AWS-auth functions: paths are
// directories under $FAKE_VAULT, fields files in them; it prints list
// fields as Vault does ([a b]) and records each write and delete.
const fakeVault = `#!/bin/sh
st=${FAKE_VAULT:?}
cmd=$1
shift
case $cmd in
read)
  field=""
  case $1 in -field=*) field=${1#-field=}; shift ;; esac
  d="$st/paths/$1"
  [ -d "$d" ] || { echo "no value found at $1" >&2; exit 2; }
  [ -n "$field" ] || exit 0
  [ -f "$d/$field" ] || { echo "field $field not present" >&2; exit 2; }
  v=$(cat "$d/$field")
  case $field in
    bound_iam_principal_arn|token_policies) echo "[$(echo "$v" | tr ',' ' ')]" ;;
    *) echo "$v" ;;
  esac
  ;;
write)
  echo "write $*" >>"$st/log"
  d="$st/paths/$1"
  shift
  mkdir -p "$d"
  for kv in "$@"; do printf '%s\n' "${kv#*=}" >"$d/${kv%%=*}"; done
  ;;
list)
  [ "$1" = -format=json ] && shift
  d="$st/paths/$1"
  [ -d "$d" ] || exit 2
  echo "["
  for e in "$d"/*; do echo "  \"${e##*/}\","; done
  echo "]"
  ;;
delete)
  echo "delete $1" >>"$st/log"
  rm -rf "${st:?}/paths/$1"
  ;;
auth)
  [ "$1" = enable ] || exit 2
  echo "auth enable $2 $3" >>"$st/log"
  mkdir -p "$st/paths/sys/auth/${2#-path=}"
  ;;
policy)
  [ "$1" = list ] || exit 2
  ;;
*) exit 2 ;;
esac
`

// scriptRun applies a plan's AWS auth with the script's own functions
// (setup_aws_auth, then prune) against the fake Vault in state, as the
// reconcile step does, and returns the drift it recorded.
func scriptRun(t *testing.T, state string, p plan) string {
	t.Helper()
	cut := strings.LastIndex(Script, "\ncase \"${1:-}\" in")
	if cut < 0 {
		t.Fatal("the script has no step dispatch to cut off")
	}
	dir := t.TempDir()
	configDir, secretsDir, bin := filepath.Join(dir, "config"), filepath.Join(dir, "secrets"), filepath.Join(dir, "bin")
	for _, d := range []string{configDir, secretsDir, bin} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for name, text := range p.Files {
		if err := os.WriteFile(filepath.Join(configDir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(bin, "vault"), []byte(fakeVault), 0o700); err != nil {
		t.Fatal(err)
	}
	functions := filepath.Join(dir, "functions.sh")
	if err := os.WriteFile(functions, []byte(Script[:cut+1]), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/bin/sh", "-c", `. "$1"; : >"$corrections"; setup_aws_auth; prune`, "sh", functions)
	cmd.Env = []string{
		"PATH=" + bin + ":" + os.Getenv("PATH"), "FAKE_VAULT=" + state,
		"CONFIG_DIR=" + configDir, "SECRETS_DIR=" + secretsDir, "RECONCILE=true",
	}
	for k, v := range p.Settings {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("setup_aws_auth; prune failed: %v\n%s", err, out)
	}
	data, err := os.ReadFile(filepath.Join(secretsDir, "corrections"))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// accessPlan is the plan of access with the test's setup.
func accessPlan(t *testing.T, access map[string][]string) plan {
	t.Helper()
	p, err := newPlan(planInput{
		Config: accessConfig(access),
		Setup:  accessSetup, Namespace: accessNS,
		Login: AWSLogin{Region: "eu-west-1", ServerID: accessLogin},
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestScriptAppliesAccessOnceAndPrunesARemovedLevel runs the script's
// setup_aws_auth and prune against a fake Vault: the first run enables the
// method, configures it and writes both roles; a second run finds nothing
// to correct (Vault prints the lists as [a b], the config writes a,b); a
// role changed in Vault is written back; a level that leaves the config
// loses its role, and the other level keeps its own.
func TestScriptAppliesAccessOnceAndPrunesARemovedLevel(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	state := t.TempDir()
	both := accessPlan(t, map[string][]string{"operator": {oncallARN, auditorARN}, "admin": {adminARN}})
	operator, admin := prefixedName("operator"), prefixedName("admin")

	first := scriptRun(t, state, both)
	for _, want := range []string{
		"drift corrected: auth method aws/, was not enabled",
		"drift corrected: auth/aws/config/client, was sts_endpoint=unset sts_region=unset iam_server_id_header_value=unset",
		"drift corrected: role " + operator + ", was missing",
		"drift corrected: role " + admin + ", was missing",
	} {
		if !strings.Contains(first, want) {
			t.Errorf("first run: corrections\n%s\ndo not say %q", first, want)
		}
	}
	read := func(path, field string) string {
		b, _ := os.ReadFile(filepath.Join(state, "paths", path, field))
		return strings.TrimSpace(string(b))
	}
	if got := read("auth/aws/config/client", "sts_endpoint"); got != "https://sts.eu-west-1.amazonaws.com" {
		t.Errorf("sts_endpoint %q", got)
	}
	if got := read("auth/aws/config/client", "iam_server_id_header_value"); got != accessLogin {
		t.Errorf("iam_server_id_header_value %q", got)
	}
	if got := read("auth/aws/role/"+operator, "bound_iam_principal_arn"); got != oncallARN+","+auditorARN {
		t.Errorf("operator role binds %q", got)
	}

	if again := scriptRun(t, state, both); again != "" {
		t.Errorf("a second run with nothing changed corrected:\n%s", again)
	}

	// Someone binds another role in Vault.
	arns := filepath.Join(state, "paths", "auth/aws/role", operator, "bound_iam_principal_arn")
	if err := os.WriteFile(arns, []byte(oncallARN+",arn:aws:iam::999988887777:role/intruder\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	drift := scriptRun(t, state, both)
	if want := "drift corrected: role " + operator + ", was bound_iam_principal_arn=[" + oncallARN + " arn:aws:iam::999988887777:role/intruder]"; !strings.Contains(drift, want) {
		t.Errorf("a role changed in Vault: corrections\n%s\ndo not say %q", drift, want)
	}
	if got := read("auth/aws/role/"+operator, "bound_iam_principal_arn"); got != oncallARN+","+auditorARN {
		t.Errorf("after the correction the operator role binds %q", got)
	}

	// admin leaves the config.
	pruned := scriptRun(t, state, accessPlan(t, map[string][]string{"operator": {oncallARN, auditorARN}}))
	if want := "drift corrected: role " + admin + " removed, was not in the config"; !strings.Contains(pruned, want) {
		t.Errorf("admin removed: corrections\n%s\ndo not say %q", pruned, want)
	}
	if strings.Contains(pruned, operator) {
		t.Errorf("admin removed: the operator's role was touched:\n%s", pruned)
	}
	if _, err := os.Stat(filepath.Join(state, "paths", "auth/aws/role", admin)); !os.IsNotExist(err) {
		t.Errorf("the admin role is still in Vault (%v)", err)
	}

	// The last level leaves: the method stays, the role goes.
	last := scriptRun(t, state, accessPlan(t, nil))
	if want := "drift corrected: role " + operator + " removed, was not in the config"; !strings.Contains(last, want) {
		t.Errorf("no level left: corrections\n%s\ndo not say %q", last, want)
	}
	if _, err := os.Stat(filepath.Join(state, "paths", "sys/auth/aws")); err != nil {
		t.Errorf("the AWS auth method was removed with the last level: %v", err)
	}
}
