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

// adminActions are the key administrators' actions of AWS's default key
// policy: manage the key, never use it to encrypt or decrypt.
var adminActions = []string{
	"kms:Create*", "kms:Describe*", "kms:Enable*", "kms:List*", "kms:Put*",
	"kms:Update*", "kms:Revoke*", "kms:Disable*", "kms:Get*", "kms:Delete*",
	"kms:TagResource", "kms:UntagResource", "kms:ScheduleKeyDeletion",
	"kms:CancelKeyDeletion", "kms:RotateKeyOnDemand",
}

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
}

// KMSUnseal is Vault's auto-unseal key with its alias and IRSA role.
type KMSUnseal struct {
	pulumi.ResourceState

	// KeyARN is the key's ARN.
	KeyARN pulumi.StringOutput
	// KeyID is the key's ID.
	KeyID pulumi.StringOutput
	// AliasName is the alias ("alias/..."), for the seal stanza's kms_key_id.
	AliasName pulumi.StringOutput
	// RoleARN is the IRSA role to annotate Vault's service account with
	// (eks.amazonaws.com/role-arn).
	RoleARN pulumi.StringOutput
	// Region is the key's region, for the seal stanza.
	Region pulumi.StringOutput
}

// NewKMSUnseal creates the unseal key, its alias, and Vault's role.
//
// The key policy and the role refer to each other; the cycle is broken by
// creating the role with its trust policy only, then the key whose policy
// names the role, then the role's inline policy naming the key.
//
// The key policy has two statements. The account root gets the
// administrative actions of AWS's default key policy, so the account's IAM
// policies decide who manages the key and the key can never become
// unmanageable; naming admin roles in the key policy instead would lock the
// key out the day such a role is renamed. Encrypt and Decrypt are not among
// them: only the Vault role may use the key.
//
// The key is protected and retained on delete: losing it makes Vault's data
// unrecoverable. The alias is retained on delete too, because Vault's seal
// stanza finds the key through it.
func NewKMSUnseal(ctx *pulumi.Context, name string, args *KMSUnsealArgs, opts ...pulumi.ResourceOption) (*KMSUnseal, error) {
	if err := check(name, args); err != nil {
		return nil, err
	}
	tags := pulumi.ToStringMap(args.Tags)

	comp := &KMSUnseal{}
	if err := ctx.RegisterComponentResource(TypeToken, name, comp, opts...); err != nil {
		return nil, fmt.Errorf("registering %s: %w", TypeToken, err)
	}
	parent := pulumi.Parent(comp)

	trust := pulumi.All(args.OIDCProviderARN, args.OIDCIssuer, args.Namespace, args.ServiceAccountName).
		ApplyT(func(v []any) (string, error) {
			return awsiam.IRSATrust(v[0].(string), v[1].(string), v[2].(string), v[3].(string)).JSON()
		}).(pulumi.StringOutput)
	role, err := iam.NewRole(ctx, name+"-vault", &iam.RoleArgs{
		Description:      pulumi.String("Vault auto-unseal through KMS (IRSA)"),
		AssumeRolePolicy: trust,
		Tags:             tags,
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("creating unseal role: %w", err)
	}

	keyPolicy := role.Arn.ApplyT(func(roleARN string) (string, error) {
		return KeyPolicy(args.AccountID, roleARN)
	}).(pulumi.StringOutput)
	key, err := kms.NewKey(ctx, name+"-key", &kms.KeyArgs{
		Description:           pulumi.Sprintf("Vault auto-unseal key (%s)", name),
		CustomerMasterKeySpec: pulumi.String("SYMMETRIC_DEFAULT"),
		KeyUsage:              pulumi.String("ENCRYPT_DECRYPT"),
		EnableKeyRotation:     pulumi.Bool(true),
		DeletionWindowInDays:  pulumi.Int(args.DeletionWindowDays),
		Policy:                keyPolicy,
		Tags:                  tags,
	}, parent, pulumi.Protect(true), pulumi.RetainOnDelete(true))
	if err != nil {
		return nil, fmt.Errorf("creating unseal key: %w", err)
	}

	alias, err := kms.NewAlias(ctx, name+"-alias", &kms.AliasArgs{
		Name:        pulumi.String(args.aliasName(ctx.Stack(), name)),
		TargetKeyId: key.KeyId,
	}, parent, pulumi.RetainOnDelete(true))
	if err != nil {
		return nil, fmt.Errorf("creating unseal key alias: %w", err)
	}

	usePolicy := key.Arn.ApplyT(func(keyARN string) (string, error) {
		return awsiam.Document(awsiam.Statement{
			Sid:      "UseUnsealKey",
			Effect:   "Allow",
			Action:   SealActions,
			Resource: []string{keyARN},
		}).JSON()
	}).(pulumi.StringOutput)
	if _, err := iam.NewRolePolicy(ctx, name+"-vault-kms", &iam.RolePolicyArgs{
		Role:   role.Name,
		Policy: usePolicy,
	}, parent); err != nil {
		return nil, fmt.Errorf("creating unseal role policy: %w", err)
	}

	comp.KeyARN = key.Arn
	comp.KeyID = key.KeyId
	comp.AliasName = alias.Name
	comp.RoleARN = role.Arn
	comp.Region = args.Region.ToStringOutput()
	if err := ctx.RegisterResourceOutputs(comp, pulumi.Map{
		"keyArn":    comp.KeyARN,
		"keyId":     comp.KeyID,
		"aliasName": comp.AliasName,
		"roleArn":   comp.RoleARN,
		"region":    comp.Region,
	}); err != nil {
		return nil, fmt.Errorf("registering %s outputs: %w", TypeToken, err)
	}
	return comp, nil
}

// KeyPolicy is the unseal key's policy: the account administers the key
// through IAM, the Vault role uses it, nobody else has any access.
func KeyPolicy(accountID, vaultRoleARN string) (string, error) {
	partition, err := arnPartition(vaultRoleARN)
	if err != nil {
		return "", err
	}
	return awsiam.Document(
		awsiam.Statement{
			Sid:       "AccountAdministersKey",
			Effect:    "Allow",
			Principal: map[string]any{"AWS": "arn:" + partition + ":iam::" + accountID + ":root"},
			Action:    adminActions,
			Resource:  []string{"*"}, // in a key policy, "*" is this key
		},
		awsiam.Statement{
			Sid:       "VaultUsesKey",
			Effect:    "Allow",
			Principal: map[string]any{"AWS": vaultRoleARN},
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
	return validate.Err("kmsunseal "+name+": invalid args", problems)
}
