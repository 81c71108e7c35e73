// Package awsiam builds IAM policy documents from typed Go values, the
// IRSA trust policy that binds a role to exactly one Kubernetes service
// account, and the roles that carry it.
package awsiam

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/iam"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// PolicyDocument is an IAM policy document.
type PolicyDocument struct {
	Version   string      `json:"Version"`
	Statement []Statement `json:"Statement"`
}

// Statement is one statement of a policy document.
type Statement struct {
	Sid       string                    `json:"Sid,omitempty"`
	Effect    string                    `json:"Effect"`
	Principal map[string]any            `json:"Principal,omitempty"`
	Action    []string                  `json:"Action"`
	Resource  []string                  `json:"Resource,omitempty"`
	Condition map[string]map[string]any `json:"Condition,omitempty"`
}

// PolicyVersion is the current IAM policy language version.
const PolicyVersion = "2012-10-17"

// Document returns a policy document of the given statements.
func Document(statements ...Statement) PolicyDocument {
	return PolicyDocument{Version: PolicyVersion, Statement: statements}
}

// JSON encodes the document as IAM expects it.
func (d PolicyDocument) JSON() (string, error) {
	raw, err := json.Marshal(d)
	if err != nil {
		return "", fmt.Errorf("encoding policy document: %w", err)
	}
	return string(raw), nil
}

// keyAdministration are the actions of a key's administrators in AWS's
// default key policy: manage the key, never use it (no Encrypt, Decrypt,
// ReEncrypt or GenerateDataKey).
var keyAdministration = []string{
	"kms:Create*", "kms:Describe*", "kms:Enable*", "kms:List*", "kms:Put*",
	"kms:Update*", "kms:Revoke*", "kms:Disable*", "kms:Get*", "kms:Delete*",
	"kms:TagResource", "kms:UntagResource", "kms:ScheduleKeyDeletion",
	"kms:CancelKeyDeletion", "kms:RotateKeyOnDemand",
}

// multiRegionAdministration are what a multi-Region key's administrators
// need besides: kms:ReplicateKey, which creating a replica asks of the
// primary's key policy and which none of the wildcards above matches, and
// kms:UpdatePrimaryRegion, which failing over asks of the primary's and
// the replica's (kms:Update* matches it; it is named so that narrowing
// that wildcard cannot break a failover). AWS's default key policy adds
// both to multi-Region keys.
var multiRegionAdministration = []string{"kms:ReplicateKey", "kms:UpdatePrimaryRegion"}

// KeyAdministration returns the actions of a key's administrators: AWS's
// default key policy's, and for a multi-Region key (or its replica) the
// replication and failover actions too.
func KeyAdministration(multiRegion bool) []string {
	actions := append([]string(nil), keyAdministration...)
	if multiRegion {
		actions = append(actions, multiRegionAdministration...)
	}
	return actions
}

// AccountRoot is the ARN of an account's root principal: in a key policy,
// the account's IAM policies decide who may do what the statement allows.
func AccountRoot(partition, accountID string) string {
	return "arn:" + partition + ":iam::" + accountID + ":root"
}

// AccountAdministersKey is the key policy statement that lets the
// account's IAM policies decide who administers the key, and no one use
// it: a key policy that does not allow an action cannot be overridden by
// IAM, and one that names admin roles locks the key out the day such a
// role is renamed. A replica carries its primary's policy, so multiRegion
// is the primary's.
func AccountAdministersKey(partition, accountID string, multiRegion bool) Statement {
	return Statement{
		Sid:       "AccountAdministersKey",
		Effect:    "Allow",
		Principal: map[string]any{"AWS": AccountRoot(partition, accountID)},
		Action:    KeyAdministration(multiRegion),
		Resource:  []string{"*"}, // in a key policy, "*" is this key
	}
}

// ServiceAccountSubject is the `sub` claim of a projected service account
// token: system:serviceaccount:<namespace>:<name>.
func ServiceAccountSubject(namespace, serviceAccount string) string {
	return "system:serviceaccount:" + namespace + ":" + serviceAccount
}

// IRSATrust is the trust policy of a role assumed through IAM Roles for
// Service Accounts: only tokens issued by the cluster's OIDC provider, for
// exactly this service account and the STS audience.
func IRSATrust(oidcProviderARN, oidcIssuer, namespace, serviceAccount string) PolicyDocument {
	issuer := strings.TrimPrefix(oidcIssuer, "https://")
	return Document(Statement{
		Sid:       "AssumeFromServiceAccount",
		Effect:    "Allow",
		Principal: map[string]any{"Federated": oidcProviderARN},
		Action:    []string{"sts:AssumeRoleWithWebIdentity"},
		Condition: map[string]map[string]any{
			"StringEquals": {
				issuer + ":sub": ServiceAccountSubject(namespace, serviceAccount),
				issuer + ":aud": "sts.amazonaws.com",
			},
		},
	})
}

// PutObjectsWithKMS are the statements of a writer that may put objects
// under prefix/ in a bucket encrypted with SSE-KMS, and use the key only
// through S3 in region, for this bucket.
//
// s3:ListBucket is not granted: `aws s3 cp` of a local file to a full key
// never lists. S3 asks KMS for a data key (kms:GenerateDataKey) on upload,
// and a multipart upload also needs kms:Decrypt to combine the parts;
// kms:Encrypt is never called for SSE-KMS. With a bucket key, the
// encryption context is the bucket's ARN, otherwise the object's.
func PutObjectsWithKMS(bucketARN, prefix, keyARN, region string) []Statement {
	objects := bucketARN + "/" + prefix + "/*"
	return []Statement{
		{
			Sid:      "PutObjects",
			Effect:   "Allow",
			Action:   []string{"s3:PutObject"},
			Resource: []string{objects},
		},
		{
			Sid:      "EncryptObjectsThroughS3",
			Effect:   "Allow",
			Action:   []string{"kms:GenerateDataKey", "kms:Decrypt"},
			Resource: []string{keyARN},
			Condition: map[string]map[string]any{
				"StringEquals": {"kms:ViaService": "s3." + region + ".amazonaws.com"},
				"StringLike":   {"kms:EncryptionContext:aws:s3:arn": []string{bucketARN, objects}},
			},
		},
	}
}

// IRSARoleArgs says who may assume a role through IRSA: the service account
// ServiceAccount of Namespace, with tokens of the cluster's OIDC provider.
type IRSARoleArgs struct {
	// Description of the role.
	Description string
	// OIDCProviderARN and OIDCIssuer are the cluster's OIDC provider.
	OIDCProviderARN, OIDCIssuer pulumi.StringInput
	// Namespace and ServiceAccount are the only identity that may assume it.
	Namespace, ServiceAccount pulumi.StringInput
	// Tags are set on the role.
	Tags pulumi.StringMapInput
}

// NewIRSARole creates a role with the IRSATrust of args and no permissions
// yet; its policies are the caller's.
func NewIRSARole(ctx *pulumi.Context, name string, args IRSARoleArgs, opts ...pulumi.ResourceOption) (*iam.Role, error) {
	trust := pulumi.All(args.OIDCProviderARN, args.OIDCIssuer, args.Namespace, args.ServiceAccount).
		ApplyT(func(v []any) (string, error) {
			return IRSATrust(v[0].(string), v[1].(string), v[2].(string), v[3].(string)).JSON()
		}).(pulumi.StringOutput)
	role, err := iam.NewRole(ctx, name, &iam.RoleArgs{
		Description:      pulumi.String(args.Description),
		AssumeRolePolicy: trust,
		Tags:             args.Tags,
	}, opts...)
	if err != nil {
		return nil, fmt.Errorf("creating role %s: %w", name, err)
	}
	return role, nil
}
