package kmsunseal_test

import (
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/secrets-platform/secrets-platform/components/kmsunseal"
	"github.com/secrets-platform/secrets-platform/internal/recorder"
	"github.com/secrets-platform/secrets-platform/tests"
)

const (
	replicaKeyType = "aws:kms/replicaKey:ReplicaKey"
	drRegion       = "eu-central-1"
	drillRoleARN   = "arn:aws:iam::123456789012:role/unseal-restore-drill"
	vaultRoleARN   = "arn:aws:iam::123456789012:role/unseal-vault"
)

type drOutputs struct{ replicaKey, replicaAlias, drillRole, drillRoleName string }

// runDR runs KMSUnseal "unseal" with the drill's service account and, with
// dr, a replica through an explicit provider "aws-dr".
func runDR(t *testing.T, dr bool, mutate func(*kmsunseal.KMSUnsealArgs)) (*recorder.Monitor, drOutputs) {
	t.Helper()
	var out drOutputs
	mon := tests.RunComponent(t, func(ctx *pulumi.Context) error {
		a := args()
		a.RestoreDrillServiceAccount = "vault-restore-drill"
		if dr {
			p, err := tests.AWSProvider(ctx, "aws-dr", drRegion)
			if err != nil {
				return err
			}
			a.DR = &kmsunseal.DRArgs{Region: drRegion, Provider: p}
		}
		if mutate != nil {
			mutate(a)
		}
		c, err := kmsunseal.NewKMSUnseal(ctx, "unseal", a)
		if err != nil {
			return err
		}
		return tests.AwaitStrings(ctx, map[*string]pulumi.StringOutput{
			&out.replicaKey: c.ReplicaKeyARN, &out.replicaAlias: c.ReplicaAliasName,
			&out.drillRole: c.RestoreDrillRoleARN, &out.drillRoleName: c.RestoreDrillRoleName,
		})
	})
	return mon, out
}

func inDR(r recorder.Resource) bool { return strings.Contains(r.Provider, "::aws-dr::") }

// TestReplicaKeyLivesInTheDRRegionLikeThePrimary: the replica of the
// multi-region key, through the DR provider, protected and retained, with
// the primary's deletion window, policy and tags, and the same alias there.
func TestReplicaKeyLivesInTheDRRegionLikeThePrimary(t *testing.T) {
	mon, out := runDR(t, true, nil)
	key := tests.MustFind(t, mon, keyType, "unseal-key")
	replica := tests.MustFind(t, mon, replicaKeyType, "unseal-replica-key")
	if !replica.Protect || !replica.RetainOnDelete {
		t.Errorf("replica protect=%v retainOnDelete=%v, want both, as the primary", replica.Protect, replica.RetainOnDelete)
	}
	if !inDR(replica) || inDR(key) {
		t.Errorf("replica provider %q, key provider %q: want only the replica through aws-dr", replica.Provider, key.Provider)
	}
	if replica.Parent != tests.MustFind(t, mon, kmsunseal.TypeToken, "unseal").URN {
		t.Error("the replica is not parented to the component")
	}
	kin, rin := tests.PlainMap(key.Inputs), tests.PlainMap(replica.Inputs)
	keyARN, _ := tests.PlainMap(key.Outputs)["arn"].(string)
	if rin["primaryKeyArn"] != keyARN {
		t.Errorf("primaryKeyArn = %v, want %s", rin["primaryKeyArn"], keyARN)
	}
	for _, k := range []string{"deletionWindowInDays", "policy"} {
		if rin[k] != kin[k] {
			t.Errorf("replica %s = %v, primary %v; want the same", k, rin[k], kin[k])
		}
	}
	if tags, _ := rin["tags"].(map[string]any); tags["team"] != "platform" {
		t.Errorf("replica tags = %v", rin["tags"])
	}
	alias := tests.MustFind(t, mon, aliasType, "unseal-replica-alias")
	ain := tests.PlainMap(alias.Inputs)
	if !inDR(alias) || !alias.RetainOnDelete || ain["name"] != "alias/production-vault-unseal" || ain["targetKeyId"] != "unseal-replica-key-id" {
		t.Errorf("replica alias %v -> %v, provider %q, retained %v", ain["name"], ain["targetKeyId"], alias.Provider, alias.RetainOnDelete)
	}
	if out.replicaKey != "arn:aws:kms:us-east-1:123456789012:key/unseal-replica-key-id" || out.replicaAlias != "alias/production-vault-unseal" {
		t.Errorf("outputs = %+v", out)
	}
}

// TestKeyPolicyGrantsVaultAndTheDrill: both key policies let the Vault role
// and the drill's role, and no one else, use the key.
func TestKeyPolicyGrantsVaultAndTheDrill(t *testing.T) {
	mon, out := runDR(t, true, nil)
	if out.drillRole != drillRoleARN || out.drillRoleName != "unseal-restore-drill" {
		t.Errorf("drill role = %s (%s)", out.drillRole, out.drillRoleName)
	}
	for _, r := range []recorder.Resource{tests.MustFind(t, mon, keyType, "unseal-key"), tests.MustFind(t, mon, replicaKeyType, "unseal-replica-key")} {
		p := parsePolicy(t, tests.PlainMap(r.Inputs), "policy")
		var users []string
		for _, s := range p.Statement {
			if strings.Contains(sorted(s.Action), "kms:Decrypt") {
				list, _ := s.Principal["AWS"].([]any)
				for _, u := range list {
					users = append(users, u.(string))
				}
				if got := sorted(s.Action); got != "kms:Decrypt,kms:DescribeKey,kms:Encrypt" {
					t.Errorf("%s: users may %s", r.Name, got)
				}
			}
		}
		if sorted(users) != drillRoleARN+","+vaultRoleARN {
			t.Errorf("%s: key users %v, want the Vault role and the drill's", r.Name, users)
		}
	}
}

// TestDrillRoleUsesTheKeyAsVaultDoes: its own trust (the drill's service
// account) and exactly the seal's actions on this key.
func TestDrillRoleUsesTheKeyAsVaultDoes(t *testing.T) {
	mon, _ := runDR(t, false, nil)
	trust := parsePolicy(t, tests.PlainMap(tests.MustFind(t, mon, roleType, "unseal-restore-drill").Inputs), "assumeRolePolicy")
	issuer := strings.TrimPrefix(oidcIssuer, "https://")
	if len(trust.Statement) != 1 || trust.Statement[0].Condition["StringEquals"][issuer+":sub"] != "system:serviceaccount:production:vault-restore-drill" {
		t.Errorf("drill trust = %+v", trust.Statement)
	}
	in := tests.PlainMap(tests.MustFind(t, mon, policyType, "unseal-restore-drill-kms").Inputs)
	p := parsePolicy(t, in, "policy")
	keyARN, _ := tests.PlainMap(tests.MustFind(t, mon, keyType, "unseal-key").Outputs)["arn"].(string)
	if in["role"] != "unseal-restore-drill" || len(p.Statement) != 1 || sorted(p.Statement[0].Action) != "kms:Decrypt,kms:DescribeKey,kms:Encrypt" ||
		sorted(p.Statement[0].Resource) != keyARN {
		t.Errorf("drill policy on %v = %+v", in["role"], p.Statement)
	}
}

// TestWithoutDRNoReplica: no replica, no alias in another region, no
// provider but the component's.
func TestWithoutDRNoReplica(t *testing.T) {
	mon, out := runDR(t, false, nil)
	if n := len(mon.ByType(replicaKeyType)); n != 0 {
		t.Errorf("%d replica keys without DR", n)
	}
	for _, r := range mon.Resources() {
		if inDR(r) || strings.Contains(r.Name, "replica") {
			t.Errorf("%s %s exists without DR", r.Type, r.Name)
		}
	}
	if out.replicaKey != "" || out.replicaAlias != "" {
		t.Errorf("replica outputs %+v without DR", out)
	}
}

// TestExistingKey: a DR stack names the replica it restores with; nothing
// is created but the roles, which may use that key.
func TestExistingKey(t *testing.T) {
	const replica = "arn:aws:kms:eu-central-1:123456789012:key/mrk-1234abcd"
	var alias, keyARN, keyID string
	mon := tests.RunComponent(t, func(ctx *pulumi.Context) error {
		a := args()
		a.AliasName = ""
		a.KeyARN = replica
		c, err := kmsunseal.NewKMSUnseal(ctx, "unseal", a)
		if err != nil {
			return err
		}
		return tests.AwaitStrings(ctx, map[*string]pulumi.StringOutput{&alias: c.AliasName, &keyARN: c.KeyARN, &keyID: c.KeyID})
	})
	if n := len(mon.ByType(keyType)) + len(mon.ByType(aliasType)); n != 0 {
		t.Errorf("%d keys and aliases created for an existing key", n)
	}
	if alias != replica || keyARN != replica || keyID != "mrk-1234abcd" {
		t.Errorf("seal key id %s, key %s; want %s", alias, keyARN, replica)
	}
	p := parsePolicy(t, tests.PlainMap(tests.MustFind(t, mon, policyType, "unseal-vault-kms").Inputs), "policy")
	if sorted(p.Statement[0].Resource) != replica {
		t.Errorf("Vault may use %v, want %s", p.Statement[0].Resource, replica)
	}
}

func TestDRArgsErrors(t *testing.T) {
	cases := map[string]func(ctx *pulumi.Context, a *kmsunseal.KMSUnsealArgs){
		`DR.Region: "EU-CENTRAL-1" is not an AWS region`: func(_ *pulumi.Context, a *kmsunseal.KMSUnsealArgs) {
			a.DR = &kmsunseal.DRArgs{Region: "EU-CENTRAL-1"}
		},
		"DR.Provider: required": func(_ *pulumi.Context, a *kmsunseal.KMSUnsealArgs) {
			a.DR = &kmsunseal.DRArgs{Region: drRegion}
		},
		`unseal.keyArn: "arn:aws:kms:eu-central-1:1:key/x" is not a KMS key ARN`: func(_ *pulumi.Context, a *kmsunseal.KMSUnsealArgs) {
			a.KeyARN = "arn:aws:kms:eu-central-1:1:key/x"
		},
	}
	for want, mutate := range cases {
		t.Run(want, func(t *testing.T) {
			mon, err := recorder.RunComponent(func(ctx *pulumi.Context) error {
				a := args()
				mutate(ctx, a)
				_, err := kmsunseal.NewKMSUnseal(ctx, "unseal", a)
				return err
			})
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("error = %v, want %q", err, want)
			}
			if n := len(mon.Resources()); n != 0 {
				t.Errorf("%d resources registered despite the error", n)
			}
		})
	}
}
