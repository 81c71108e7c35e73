package bootstrap

import (
	"fmt"

	"github.com/secrets-platform/secrets-platform/components/awsiam"
)

// initContext is the encryption context of the init object: encrypting and
// decrypting both name it, and the recovery key's policy requires it, so
// the key opens nothing else.
var initContext = map[string]any{"kms:EncryptionContext:purpose": "vault-init"}

// RecoveryKeyPolicy is the recovery key's policy: the account administers
// the key, the bootstrap role may only encrypt the init object, and only
// the break-glass principals may decrypt it; with none, the account's IAM
// policies decide who may (its administrators).
func RecoveryKeyPolicy(accountID, partition, bootstrapRoleARN string, breakGlass []string) (string, error) {
	if accountID == "" || bootstrapRoleARN == "" {
		return "", fmt.Errorf("recovery key policy: account and bootstrap role are required")
	}
	account := awsiam.AccountRoot(partition, accountID)
	decrypters := breakGlass
	if len(decrypters) == 0 {
		decrypters = []string{account}
	}
	return awsiam.Document(
		// The recovery key is multi-Region (newRecoveryKey), and its
		// replica carries this policy.
		awsiam.AccountAdministersKey(partition, accountID, true),
		awsiam.Statement{
			Sid:       "BootstrapEncryptsInitOutput",
			Effect:    "Allow",
			Principal: map[string]any{"AWS": bootstrapRoleARN},
			Action:    []string{"kms:Encrypt"},
			Resource:  []string{"*"},
			Condition: map[string]map[string]any{"StringEquals": initContext},
		},
		awsiam.Statement{
			Sid:       "BreakGlassDecryptsInitOutput",
			Effect:    "Allow",
			Principal: map[string]any{"AWS": decrypters},
			Action:    []string{"kms:Decrypt"},
			Resource:  []string{"*"},
			Condition: map[string]map[string]any{"StringEquals": initContext},
		},
	).JSON()
}

// PublishPolicy is the bootstrap role's policy: put objects under prefix
// in the backup bucket with its key, and, in KMS mode (recoveryKeyARN set),
// encrypt the init output with the recovery key.
func PublishPolicy(bucketARN, prefix, bucketKeyARN, recoveryKeyARN, region string) (string, error) {
	statements := awsiam.PutObjectsWithKMS(bucketARN, prefix, bucketKeyARN, region)
	if recoveryKeyARN != "" {
		statements = append(statements, awsiam.Statement{
			Sid:       "EncryptInitOutput",
			Effect:    "Allow",
			Action:    []string{"kms:Encrypt"},
			Resource:  []string{recoveryKeyARN},
			Condition: map[string]map[string]any{"StringEquals": initContext},
		})
	}
	return awsiam.Document(statements...).JSON()
}
