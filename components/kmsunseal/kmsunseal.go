// Package kmsunseal provides KMSUnseal: the AWS KMS key Vault auto-unseals
// with, its alias, and the IRSA role that lets Vault's service account (and
// nothing else) use it.
package kmsunseal

import (
	"errors"
	"fmt"
	"strings"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/iam"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/kms"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/secrets-platform/secrets-platform/components/awsiam"
	"github.com/secrets-platform/secrets-platform/components/validate"
)

// TypeToken is the Pulumi type of the KMSUnseal component.
const TypeToken = "platform:aws:KMSUnseal"

// SealActions are the KMS actions Vault's awskms seal calls: DescribeKey
// when it starts, Encrypt and Decrypt to wrap and unwrap its root key.
var SealActions = []string{"kms:Encrypt", "kms:Decrypt", "kms:DescribeKey"}

// KMSUnsealArgs configures KMSUnseal: its Config and the inputs that come
// from the cluster and HardenedVault.
type KMSUnsealArgs struct {
	Config
	// Region is the key's region, passed through to the Region output for
	// Vault's seal stanza (required).
	Region pulumi.StringInput
	// OIDCProviderARN is the EKS cluster's IAM OIDC provider (required).
	OIDCProviderARN pulumi.StringInput
	// OIDCIssuer is the cluster's OIDC issuer URL, with or without
	// "https://" (required).
	OIDCIssuer pulumi.StringInput
	// Namespace is Vault's namespace (required).
	Namespace pulumi.StringInput
	// ServiceAccountName is the service account Vault's pods run as
	// (required). Only its tokens can assume the role.
	ServiceAccountName pulumi.StringInput
	// RestoreDrillServiceAccount is the service account of a restore drill
	// (BackupBucket's), in Namespace: it gets a role of its own that may use
	// the key exactly as Vault does, since the drill unseals a throwaway
	// Vault with it. "" creates no such role.
	RestoreDrillServiceAccount string
	// DR places a replica of the key in another region; nil places none.
	DR *DRArgs
}

// DRArgs is the disaster-recovery region of the key's replica.
type DRArgs struct {
	// Region is the DR region (required); it must differ from Region.
	Region string
	// Provider is an AWS provider for Region (required): the replica and
	// its alias are created through it.
	Provider pulumi.ProviderResource
}

// KMSUnseal is Vault's auto-unseal key with its alias and IRSA role.
type KMSUnseal struct {
	pulumi.ResourceState

	// KeyARN is the key's ARN.
	KeyARN pulumi.StringOutput
	// KeyID is the key's ID.
	KeyID pulumi.StringOutput
	// AliasName is the alias ("alias/..."), for the seal stanza's
	// kms_key_id; with Config.KeyARN it is that ARN, which kms_key_id
	// takes as well.
	AliasName pulumi.StringOutput
	// RoleARN is the IRSA role to annotate Vault's service account with
	// (eks.amazonaws.com/role-arn).
	RoleARN pulumi.StringOutput
	// Region is the key's region, for the seal stanza.
	Region pulumi.StringOutput
	// RestoreDrillRoleARN and RestoreDrillRoleName are the restore drill's
	// IRSA role; empty without RestoreDrillServiceAccount.
	RestoreDrillRoleARN  pulumi.StringOutput
	RestoreDrillRoleName pulumi.StringOutput
	// ReplicaKeyARN is the key's replica in the DR region; empty without DR.
	ReplicaKeyARN pulumi.StringOutput
	// ReplicaAliasName is the replica's alias in the DR region (the same
	// name as AliasName); empty without DR.
	ReplicaAliasName pulumi.StringOutput
}

// NewKMSUnseal creates the unseal key (a multi-region primary), its alias,
// Vault's role, the restore drill's role, and with DR a replica of the key
// and its alias in the DR region.
//
// The key policy and the roles refer to each other; the cycle is broken by
// creating the roles with their trust policies only, then the key whose
// policy names the roles, then the roles' inline policies naming the key.
//
// The key policy has two statements. The account root gets the
// administrative actions of AWS's default key policy for a multi-Region
// key (replicating and failing over included), so the account's IAM
// policies decide who manages the key and the key can never become
// unmanageable; naming admin roles in the key policy instead would lock the
// key out the day such a role is renamed. Encrypt and Decrypt are not among
// them: only the Vault role (and the restore drill's) may use the key. The
// replica carries the same policy.
//
// The key is multi-region so that a replica in another region can unwrap
// the root key Vault stores: a copy of the snapshots is useless without
// it. The key and its replica are protected and retained on delete: losing
// them makes Vault's data unrecoverable. The aliases are retained on delete
// too, because Vault's seal stanza finds the key through them.
//
// With Config.KeyARN no key, alias or replica is created: the roles may use
// the named key, whose policy must grant them.
func NewKMSUnseal(ctx *pulumi.Context, name string, args *KMSUnsealArgs, opts ...pulumi.ResourceOption) (*KMSUnseal, error) {
	if err := check(name, args); err != nil {
		return nil, err
	}
	comp := &KMSUnseal{}
	if err := ctx.RegisterComponentResource(TypeToken, name, comp, opts...); err != nil {
		return nil, fmt.Errorf("registering %s: %w", TypeToken, err)
	}
	b := &build{ctx: ctx, name: name, args: args, parent: pulumi.Parent(comp), tags: pulumi.ToStringMap(args.Tags)}

	role, err := b.newIRSARole(name+"-vault", "Vault auto-unseal through KMS (IRSA)", args.ServiceAccountName)
	if err != nil {
		return nil, fmt.Errorf("creating unseal role: %w", err)
	}
	users := []*iam.Role{role}
	comp.RestoreDrillRoleARN = pulumi.String("").ToStringOutput()
	comp.RestoreDrillRoleName = pulumi.String("").ToStringOutput()
	if args.RestoreDrillServiceAccount != "" {
		drill, err := b.newIRSARole(name+"-restore-drill", "Vault restore drill: the unseal key as Vault uses it (IRSA)", pulumi.String(args.RestoreDrillServiceAccount))
		if err != nil {
			return nil, fmt.Errorf("creating restore drill role: %w", err)
		}
		users = append(users, drill)
		comp.RestoreDrillRoleARN, comp.RestoreDrillRoleName = drill.Arn, drill.Name
	}

	// An existing key (Config.KeyARN): kms_key_id takes its ARN.
	keyARN := pulumi.String(args.KeyARN).ToStringOutput()
	keyID := pulumi.String(args.KeyARN[strings.LastIndex(args.KeyARN, "/")+1:]).ToStringOutput()
	alias := keyARN
	comp.ReplicaKeyARN = pulumi.String("").ToStringOutput()
	comp.ReplicaAliasName = pulumi.String("").ToStringOutput()
	if args.KeyARN == "" {
		keyPolicy := keyPolicyOf(args.AccountID, users)
		key, err := kms.NewKey(ctx, name+"-key", &kms.KeyArgs{
			Description:           pulumi.Sprintf("Vault auto-unseal key (%s)", name),
			CustomerMasterKeySpec: pulumi.String("SYMMETRIC_DEFAULT"),
			KeyUsage:              pulumi.String("ENCRYPT_DECRYPT"),
			EnableKeyRotation:     pulumi.Bool(true),
			DeletionWindowInDays:  pulumi.Int(args.DeletionWindowDays),
			MultiRegion:           pulumi.Bool(true),
			Policy:                keyPolicy,
			Tags:                  b.tags,
		}, b.keep()...)
		if err != nil {
			return nil, fmt.Errorf("creating unseal key: %w", err)
		}
		aliasName := args.aliasName(ctx.Stack(), name)
		a, err := kms.NewAlias(ctx, name+"-alias", &kms.AliasArgs{
			Name:        pulumi.String(aliasName),
			TargetKeyId: key.KeyId,
		}, b.parent, pulumi.RetainOnDelete(true))
		if err != nil {
			return nil, fmt.Errorf("creating unseal key alias: %w", err)
		}
		keyARN, keyID, alias = key.Arn, key.KeyId, a.Name
		if args.DR != nil {
			if comp.ReplicaKeyARN, comp.ReplicaAliasName, err = b.newReplica(key, aliasName, keyPolicy); err != nil {
				return nil, err
			}
		}
	}

	usePolicy := keyARN.ApplyT(func(keyARN string) (string, error) {
		return awsiam.Document(awsiam.Statement{
			Sid:      "UseUnsealKey",
			Effect:   "Allow",
			Action:   SealActions,
			Resource: []string{keyARN},
		}).JSON()
	}).(pulumi.StringOutput)
	// Vault's policy keeps its name; the drill's follows it.
	policyNames := []string{name + "-vault-kms", name + "-restore-drill-kms"}
	for i, user := range users {
		if _, err := iam.NewRolePolicy(ctx, policyNames[i], &iam.RolePolicyArgs{
			Role:   user.Name,
			Policy: usePolicy,
		}, b.parent); err != nil {
			return nil, fmt.Errorf("creating %s role policy: %w", policyNames[i], err)
		}
	}

	comp.KeyARN = keyARN
	comp.KeyID = keyID
	comp.AliasName = alias
	comp.RoleARN = role.Arn
	comp.Region = args.Region.ToStringOutput()
	if err := ctx.RegisterResourceOutputs(comp, pulumi.Map{
		"keyArn":               comp.KeyARN,
		"keyId":                comp.KeyID,
		"aliasName":            comp.AliasName,
		"roleArn":              comp.RoleARN,
		"region":               comp.Region,
		"restoreDrillRoleArn":  comp.RestoreDrillRoleARN,
		"restoreDrillRoleName": comp.RestoreDrillRoleName,
		"replicaKeyArn":        comp.ReplicaKeyARN,
		"replicaAliasName":     comp.ReplicaAliasName,
	}); err != nil {
		return nil, fmt.Errorf("registering %s outputs: %w", TypeToken, err)
	}
	return comp, nil
}

// build is one KMSUnseal under construction.
type build struct {
	ctx    *pulumi.Context
	name   string
	args   *KMSUnsealArgs
	parent pulumi.ResourceOption
	tags   pulumi.StringMap
}

// keep protects what Vault's data depends on: the key and its replica.
func (b *build) keep(extra ...pulumi.ResourceOption) []pulumi.ResourceOption {
	return append([]pulumi.ResourceOption{b.parent, pulumi.Protect(true), pulumi.RetainOnDelete(true)}, extra...)
}

// newIRSARole creates a role that only the service account serviceAccount
// of the namespace may assume, with no permissions yet.
func (b *build) newIRSARole(name, description string, serviceAccount pulumi.StringInput) (*iam.Role, error) {
	a := b.args
	return awsiam.NewIRSARole(b.ctx, name, awsiam.IRSARoleArgs{
		Description:     description,
		OIDCProviderARN: a.OIDCProviderARN, OIDCIssuer: a.OIDCIssuer,
		Namespace: a.Namespace, ServiceAccount: serviceAccount,
		Tags: b.tags,
	}, b.parent)
}

// keyPolicyOf is KeyPolicy for the roles, once their ARNs are known.
func keyPolicyOf(accountID string, users []*iam.Role) pulumi.StringOutput {
	arns := make([]any, len(users))
	for i, u := range users {
		arns[i] = u.Arn
	}
	return pulumi.All(arns...).ApplyT(func(v []any) (string, error) {
		roles := make([]string, len(v))
		for i, arn := range v {
			roles[i] = arn.(string)
		}
		return KeyPolicy(accountID, roles...)
	}).(pulumi.StringOutput)
}

// newReplica creates the key's replica in the DR region, with the primary's
// deletion window, policy and tags (rotation is the primary's: a replica
// shares its key material), and the same alias there, so that a stack in
// the DR region names it as Vault names the primary.
func (b *build) newReplica(primary *kms.Key, aliasName string, policy pulumi.StringOutput) (pulumi.StringOutput, pulumi.StringOutput, error) {
	dr := pulumi.Provider(b.args.DR.Provider)
	replica, err := kms.NewReplicaKey(b.ctx, b.name+"-replica-key", &kms.ReplicaKeyArgs{
		Description:          pulumi.Sprintf("Vault auto-unseal key (%s), replica in %s", b.name, b.args.DR.Region),
		PrimaryKeyArn:        primary.Arn,
		DeletionWindowInDays: pulumi.Int(b.args.DeletionWindowDays),
		Policy:               policy,
		Tags:                 b.tags,
	}, b.keep(dr)...)
	if err != nil {
		return pulumi.StringOutput{}, pulumi.StringOutput{}, fmt.Errorf("creating unseal key replica: %w", err)
	}
	alias, err := kms.NewAlias(b.ctx, b.name+"-replica-alias", &kms.AliasArgs{
		Name:        pulumi.String(aliasName),
		TargetKeyId: replica.KeyId,
	}, b.parent, dr, pulumi.RetainOnDelete(true))
	if err != nil {
		return pulumi.StringOutput{}, pulumi.StringOutput{}, fmt.Errorf("creating unseal key replica alias: %w", err)
	}
	return replica.Arn, alias.Name, nil
}

// KeyPolicy is the unseal key's policy: the account administers the key
// through IAM, the roles (Vault's first) use it, nobody else has any access.
func KeyPolicy(accountID string, roleARNs ...string) (string, error) {
	if len(roleARNs) == 0 {
		return "", errors.New("the unseal key policy needs Vault's role")
	}
	partition, err := arnPartition(roleARNs[0])
	if err != nil {
		return "", err
	}
	var users any = roleARNs[0]
	if len(roleARNs) > 1 {
		users = roleARNs
	}
	return awsiam.Document(
		// The key is multi-Region (and so is its replica, which carries
		// this policy): administrators replicate it and fail over.
		awsiam.AccountAdministersKey(partition, accountID, true),
		awsiam.Statement{
			Sid:       "VaultUsesKey",
			Effect:    "Allow",
			Principal: map[string]any{"AWS": users},
			Action:    SealActions,
			Resource:  []string{"*"},
		},
	).JSON()
}

// arnPartition returns the partition ("aws", "aws-cn", ...) of an ARN, so
// the root principal matches the partition the role lives in.
func arnPartition(arn string) (string, error) {
	parts := strings.SplitN(arn, ":", 3)
	if len(parts) < 3 || parts[0] != "arn" || parts[1] == "" {
		return "", fmt.Errorf("%q is not an ARN", arn)
	}
	return parts[1], nil
}

// check validates the Config and requires the inputs, before anything is
// registered.
func check(name string, args *KMSUnsealArgs) error {
	if args == nil {
		return errors.New("kmsunseal: args are required")
	}
	problems := validate.Problems(args.Validate(name))
	problems.Required("Region", args.Region)
	problems.Required("OIDCProviderARN", args.OIDCProviderARN)
	problems.Required("OIDCIssuer", args.OIDCIssuer)
	problems.Required("Namespace", args.Namespace)
	problems.Required("ServiceAccountName", args.ServiceAccountName)
	if args.RestoreDrillServiceAccount != "" {
		problems.DNSSubdomain("RestoreDrillServiceAccount", args.RestoreDrillServiceAccount)
	}
	if dr := args.DR; dr != nil {
		switch {
		case !validate.IsRegion(dr.Region):
			problems.Addf("DR.Region", "%q is not an AWS region such as eu-central-1", dr.Region)
		case dr.Provider == nil:
			problems.Addf("DR.Provider", "required: an AWS provider for %s", dr.Region)
		case args.KeyARN != "":
			problems.Addf("DR", "a replica is made of a key this component creates; %s uses an existing key", validate.Join(name, "keyArn"))
		}
	}
	return validate.Err("kmsunseal "+name+": invalid args", problems)
}
