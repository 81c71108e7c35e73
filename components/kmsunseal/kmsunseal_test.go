package kmsunseal_test

import (
	"sort"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/secrets-platform/secrets-platform/components/kmsunseal"
	"github.com/secrets-platform/secrets-platform/internal/recorder"
	"github.com/secrets-platform/secrets-platform/tests"
)

const (
	keyType    = "aws:kms/key:Key"
	aliasType  = "aws:kms/alias:Alias"
	roleType   = "aws:iam/role:Role"
	policyType = "aws:iam/rolePolicy:RolePolicy"

	oidcARN    = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/ABC123"
	oidcIssuer = "https://oidc.eks.eu-west-1.amazonaws.com/id/ABC123"
)

func args() *kmsunseal.KMSUnsealArgs {
	c := kmsunseal.DefaultConfig()
	c.AliasName = "alias/production-vault-unseal"
	c.AccountID = recorder.MockAccountID
	c.Tags = map[string]string{"team": "platform"}
	return &kmsunseal.KMSUnsealArgs{
		Config:             c,
		Region:             pulumi.String("eu-west-1"),
		OIDCProviderARN:    pulumi.String(oidcARN),
		OIDCIssuer:         pulumi.String(oidcIssuer),
		Namespace:          pulumi.String("production"),
		ServiceAccountName: pulumi.String("vault"),
	}
}

// outputs holds the component's outputs as the program saw them.
type outputs struct{ keyARN, keyID, alias, role, region string }

func run(t *testing.T, a *kmsunseal.KMSUnsealArgs) (*recorder.Monitor, outputs) {
	t.Helper()
	var out outputs
	mon := tests.RunComponent(t, func(ctx *pulumi.Context) error {
		c, err := kmsunseal.NewKMSUnseal(ctx, "unseal", a)
		if err != nil {
			return err
		}
		return tests.AwaitStrings(ctx, map[*string]pulumi.StringOutput{
			&out.keyARN: c.KeyARN, &out.keyID: c.KeyID, &out.alias: c.AliasName,
			&out.role: c.RoleARN, &out.region: c.Region,
		})
	})
	return mon, out
}

// statement is a statement of the harness's parsed policy documents.
type statement = tests.PolicyStatement

var parsePolicy = tests.ParsePolicy

func sorted(s []string) string {
	c := append([]string(nil), s...)
	sort.Strings(c)
	return strings.Join(c, ",")
}

func TestKeyIsSymmetricRotatedAndProtected(t *testing.T) {
	mon, out := run(t, args())
	key := tests.MustFind(t, mon, keyType, "unseal-key")
	in := tests.PlainMap(key.Inputs)

	if in["enableKeyRotation"] != true {
		t.Errorf("enableKeyRotation = %v, want true", in["enableKeyRotation"])
	}
	if in["deletionWindowInDays"] != float64(30) {
		t.Errorf("deletionWindowInDays = %v, want the default 30", in["deletionWindowInDays"])
	}
	if in["multiRegion"] != true {
		t.Errorf("multiRegion = %v, want true: a replica in the DR region must open what this key wrapped", in["multiRegion"])
	}
	if in["customerMasterKeySpec"] != "SYMMETRIC_DEFAULT" || in["keyUsage"] != "ENCRYPT_DECRYPT" {
		t.Errorf("key spec/usage = %v/%v, want SYMMETRIC_DEFAULT/ENCRYPT_DECRYPT", in["customerMasterKeySpec"], in["keyUsage"])
	}
	if d, _ := in["description"].(string); d == "" {
		t.Error("key has no description")
	}
	if tags, _ := in["tags"].(map[string]any); tags["team"] != "platform" {
		t.Errorf("key tags = %v", in["tags"])
	}
	if !key.Protect || !key.RetainOnDelete {
		t.Errorf("key protect=%v retainOnDelete=%v, want both", key.Protect, key.RetainOnDelete)
	}
	// What is merely derived must stay replaceable.
	if role := tests.MustFind(t, mon, roleType, "unseal-vault"); role.Protect {
		t.Error("the role is protected; only the key should be")
	}

	alias := tests.MustFind(t, mon, aliasType, "unseal-alias")
	ain := tests.PlainMap(alias.Inputs)
	if ain["name"] != "alias/production-vault-unseal" || ain["targetKeyId"] != "unseal-key-id" {
		t.Errorf("alias = %v -> %v", ain["name"], ain["targetKeyId"])
	}

	comp := tests.MustFind(t, mon, kmsunseal.TypeToken, "unseal")
	for _, r := range []recorder.Resource{key, alias} {
		if r.Parent != comp.URN {
			t.Errorf("%s is not parented to the component", r.Name)
		}
	}

	want := outputs{
		keyARN: "arn:aws:kms:us-east-1:123456789012:key/unseal-key-id",
		keyID:  "unseal-key-id",
		alias:  "alias/production-vault-unseal",
		role:   "arn:aws:iam::123456789012:role/unseal-vault",
		region: "eu-west-1",
	}
	if out != want {
		t.Errorf("outputs = %+v, want %+v", out, want)
	}
}

func TestDeletionWindowIsConfigurable(t *testing.T) {
	a := args()
	a.DeletionWindowDays = 7
	mon, _ := run(t, a)
	in := tests.PlainMap(tests.MustFind(t, mon, keyType, "unseal-key").Inputs)
	if in["deletionWindowInDays"] != float64(7) {
		t.Errorf("deletionWindowInDays = %v, want 7", in["deletionWindowInDays"])
	}
}

func TestRolePolicyAllowsOnlySealActionsOnThisKey(t *testing.T) {
	mon, _ := run(t, args())
	key := tests.MustFind(t, mon, keyType, "unseal-key")
	keyARN, _ := tests.PlainMap(key.Outputs)["arn"].(string)
	if keyARN == "" {
		t.Fatal("key has no ARN")
	}

	rp := tests.MustFind(t, mon, policyType, "unseal-vault-kms")
	in := tests.PlainMap(rp.Inputs)
	if in["role"] != "unseal-vault" {
		t.Errorf("policy is attached to %v, want the unseal role", in["role"])
	}
	p := parsePolicy(t, in, "policy")
	if len(p.Statement) != 1 {
		t.Fatalf("want one statement, got %+v", p.Statement)
	}
	s := p.Statement[0]
	if s.Effect != "Allow" || s.Principal != nil || s.Condition != nil {
		t.Errorf("statement = %+v", s)
	}
	if got := sorted(s.Action); got != "kms:Decrypt,kms:DescribeKey,kms:Encrypt" {
		t.Errorf("actions = %s, want exactly Encrypt, Decrypt, DescribeKey", got)
	}
	if len(s.Resource) != 1 || s.Resource[0] != keyARN {
		t.Errorf("resources = %v, want exactly [%s]", s.Resource, keyARN)
	}
}

func TestTrustIsBoundToVaultServiceAccount(t *testing.T) {
	mon, _ := run(t, args())
	p := parsePolicy(t, tests.PlainMap(tests.MustFind(t, mon, roleType, "unseal-vault").Inputs), "assumeRolePolicy")
	if len(p.Statement) != 1 {
		t.Fatalf("want one statement, got %+v", p.Statement)
	}
	s := p.Statement[0]
	if s.Effect != "Allow" || sorted(s.Action) != "sts:AssumeRoleWithWebIdentity" {
		t.Errorf("statement = %+v", s)
	}
	if len(s.Principal) != 1 || s.Principal["Federated"] != oidcARN {
		t.Errorf("principal = %v, want only the OIDC provider", s.Principal)
	}
	issuer := strings.TrimPrefix(oidcIssuer, "https://")
	want := map[string]any{
		issuer + ":sub": "system:serviceaccount:production:vault",
		issuer + ":aud": "sts.amazonaws.com",
	}
	if len(s.Condition) != 1 || len(s.Condition["StringEquals"]) != len(want) {
		t.Fatalf("conditions = %v, want exactly StringEquals sub and aud", s.Condition)
	}
	for k, v := range want {
		if s.Condition["StringEquals"][k] != v {
			t.Errorf("condition %s = %v, want %v", k, s.Condition["StringEquals"][k], v)
		}
	}
}

func TestKeyPolicyAdministersThroughAccountAndLetsOnlyVaultUseTheKey(t *testing.T) {
	mon, _ := run(t, args())
	p := parsePolicy(t, tests.PlainMap(tests.MustFind(t, mon, keyType, "unseal-key").Inputs), "policy")
	if len(p.Statement) != 2 {
		t.Fatalf("want an admin and a usage statement, got %+v", p.Statement)
	}
	byPrincipal := map[string]statement{}
	for _, s := range p.Statement {
		if s.Effect != "Allow" || s.Condition != nil {
			t.Errorf("unexpected statement %+v", s)
		}
		aws, _ := s.Principal["AWS"].(string)
		byPrincipal[aws] = s
	}

	admin, ok := byPrincipal["arn:aws:iam::123456789012:root"]
	if !ok {
		t.Fatalf("no statement for the account root: %+v", p.Statement)
	}
	for _, a := range admin.Action {
		if a == "kms:*" || a == "*" || strings.HasPrefix(a, "kms:Encrypt") || strings.HasPrefix(a, "kms:Decrypt") ||
			strings.HasPrefix(a, "kms:ReEncrypt") || strings.HasPrefix(a, "kms:GenerateDataKey") {
			t.Errorf("administrators may use the key: %s", a)
		}
	}
	// A multi-Region key: replicating it and failing over are asked of
	// its key policy, which IAM cannot override.
	for _, need := range []string{"kms:Put*", "kms:Describe*", "kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion", "kms:ReplicateKey", "kms:UpdatePrimaryRegion"} {
		if !strings.Contains(sorted(admin.Action), need) {
			t.Errorf("administrators cannot %s", need)
		}
	}

	vault, ok := byPrincipal["arn:aws:iam::123456789012:role/unseal-vault"]
	if !ok {
		t.Fatalf("no statement for the Vault role: %+v", p.Statement)
	}
	if got := sorted(vault.Action); got != "kms:Decrypt,kms:DescribeKey,kms:Encrypt" {
		t.Errorf("vault actions = %s", got)
	}
	if len(vault.Resource) != 1 || vault.Resource[0] != "*" {
		t.Errorf("vault resources = %v, want this key (\"*\")", vault.Resource)
	}
}

func TestMissingArgsFail(t *testing.T) {
	cases := map[string]func(a *kmsunseal.KMSUnsealArgs) *kmsunseal.KMSUnsealArgs{
		"nil args": func(*kmsunseal.KMSUnsealArgs) *kmsunseal.KMSUnsealArgs { return nil },
		`unseal.aliasName: "vault-unseal" must start with alias/`: func(a *kmsunseal.KMSUnsealArgs) *kmsunseal.KMSUnsealArgs { a.AliasName = "vault-unseal"; return a },
		"OIDCProviderARN": func(a *kmsunseal.KMSUnsealArgs) *kmsunseal.KMSUnsealArgs { a.OIDCProviderARN = nil; return a },
		`unseal.accountId: "" is not a 12-digit AWS account ID`: func(a *kmsunseal.KMSUnsealArgs) *kmsunseal.KMSUnsealArgs { a.AccountID = ""; return a },
	}
	for field, mutate := range cases {
		t.Run(field, func(t *testing.T) {
			mon, err := recorder.RunComponent(func(ctx *pulumi.Context) error {
				_, err := kmsunseal.NewKMSUnseal(ctx, "unseal", mutate(args()))
				return err
			})
			if err == nil {
				t.Fatal("want an error")
			}
			if field != "nil args" && !strings.Contains(err.Error(), strings.TrimSuffix(field, "/")) {
				t.Errorf("error %q does not name %s", err, field)
			}
			if n := len(mon.Resources()); n != 0 {
				t.Errorf("%d resources registered despite the error", n)
			}
		})
	}
}
