package backup

import (
	"fmt"
	"strings"

	"github.com/secrets-platform/secrets-platform/components/awsiam"
)

// SnapshotPath is what the job's Vault role (VaultRole) may read, and all it
// may: `vault operator raft snapshot save` reads it.
const SnapshotPath = "sys/storage/raft/snapshot"

// S3 condition keys of the request headers that choose an object's
// encryption.
const (
	sseHeader      = "s3:x-amz-server-side-encryption"
	sseKeyHeader   = "s3:x-amz-server-side-encryption-aws-kms-key-id"
	sseCustomerAlg = "s3:x-amz-server-side-encryption-customer-algorithm"
)

// everyone is the principal of the bucket policy's deny statements.
var everyone = map[string]any{"AWS": "*"}

// BucketPolicy denies every request made without TLS (or with TLS older
// than 1.2) and every upload that asks for an encryption other than SSE-KMS
// with keyARN.
//
// An upload that names no encryption is not denied: the bucket's default
// encryption applies keyARN to it. Denying absent headers, as the Terraform
// module's "deny unencrypted uploads" does, would break multipart uploads:
// UploadPart is authorised as s3:PutObject but carries no encryption
// headers (the encryption is chosen once, by CreateMultipartUpload), and
// `aws s3 cp` uploads anything over 8 MiB in parts. Each deny on a header
// is therefore conditioned on the header being present (Null = false).
func BucketPolicy(bucketARN, keyARN string) (string, error) {
	objects := bucketARN + "/*"
	return awsiam.Document(
		awsiam.Statement{
			Sid:       "DenyInsecureTransport",
			Effect:    "Deny",
			Principal: everyone,
			Action:    []string{"s3:*"},
			Resource:  []string{bucketARN, objects},
			Condition: map[string]map[string]any{"Bool": {"aws:SecureTransport": "false"}},
		},
		awsiam.Statement{
			Sid:       "DenyOutdatedTLS",
			Effect:    "Deny",
			Principal: everyone,
			Action:    []string{"s3:*"},
			Resource:  []string{bucketARN, objects},
			Condition: map[string]map[string]any{"NumericLessThan": {"s3:TlsVersion": "1.2"}},
		},
		awsiam.Statement{
			Sid:       "DenyOtherEncryption",
			Effect:    "Deny",
			Principal: everyone,
			Action:    []string{"s3:PutObject"},
			Resource:  []string{objects},
			Condition: map[string]map[string]any{
				"StringNotEquals": {sseHeader: "aws:kms"},
				"Null":            {sseHeader: "false"},
			},
		},
		awsiam.Statement{
			Sid:       "DenyOtherKMSKey",
			Effect:    "Deny",
			Principal: everyone,
			Action:    []string{"s3:PutObject"},
			Resource:  []string{objects},
			Condition: map[string]map[string]any{
				"StringNotEquals": {sseKeyHeader: keyARN},
				"Null":            {sseKeyHeader: "false"},
			},
		},
		// SSE-KMS without a key ID would use the AWS managed key aws/s3.
		awsiam.Statement{
			Sid:       "DenyKMSWithoutKeyID",
			Effect:    "Deny",
			Principal: everyone,
			Action:    []string{"s3:PutObject"},
			Resource:  []string{objects},
			Condition: map[string]map[string]any{
				"Null": {sseHeader: "false", sseKeyHeader: "true"},
			},
		},
		awsiam.Statement{
			Sid:       "DenyCustomerProvidedKeys",
			Effect:    "Deny",
			Principal: everyone,
			Action:    []string{"s3:PutObject"},
			Resource:  []string{objects},
			Condition: map[string]map[string]any{"Null": {sseCustomerAlg: "false"}},
		},
	).JSON()
}

// UploadPolicy is the snapshot job's role policy: write objects under the
// prefix, and use the key only through S3 in region, for this bucket
// (awsiam.PutObjectsWithKMS).
func UploadPolicy(bucketARN, prefix, keyARN, region string) (string, error) {
	return awsiam.Document(awsiam.PutObjectsWithKMS(bucketARN, prefix, keyARN, region)...).JSON()
}

// accountKeyPolicy is the dedicated key's policy, AWS's default one: the
// account's IAM policies decide who uses and administers the key. Unlike
// the unseal key, people must be able to decrypt with it (to restore a
// snapshot), and who may do that is an IAM decision, not this component's.
func accountKeyPolicy(oidcProviderARN, accountID string) (string, error) {
	parts := strings.SplitN(oidcProviderARN, ":", 3)
	if len(parts) < 3 || parts[0] != "arn" || parts[1] == "" {
		return "", fmt.Errorf("OIDC provider %q is not an ARN", oidcProviderARN)
	}
	return awsiam.Document(awsiam.Statement{
		Sid:       "EnableIAMPolicies",
		Effect:    "Allow",
		Principal: map[string]any{"AWS": "arn:" + parts[1] + ":iam::" + accountID + ":root"},
		Action:    []string{"kms:*"},
		Resource:  []string{"*"},
	}).JSON()
}
