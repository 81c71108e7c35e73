package stacks

import (
	"github.com/secrets-platform/secrets-platform/components/backup"
	"github.com/secrets-platform/secrets-platform/components/externalsecrets"
	"github.com/secrets-platform/secrets-platform/components/guardrails"
	"github.com/secrets-platform/secrets-platform/components/kmsunseal"
	"github.com/secrets-platform/secrets-platform/components/observability"
	"github.com/secrets-platform/secrets-platform/components/vault"
)

// defaults returns the configuration a stack starts from: each group is its
// component's DefaultConfig, where that default is stated once. The seed's
// numbers (quota, voters, refresh interval) are written out in
// Pulumi.production.yaml, where operators look. The stack's values are
// decoded over it, so a key that is set, even to 0, replaces its default and
// is validated as given; maps are merged key by key.
func defaults() Config {
	return Config{
		Kubernetes:      KubernetesConfig{APIServerPort: guardrails.DefaultKubeAPIPort},
		Guardrails:      guardrails.DefaultConfig(),
		Vault:           vault.DefaultConfig(),
		Unseal:          kmsunseal.DefaultConfig(),
		Backup:          backup.DefaultConfig(),
		ExternalSecrets: externalsecrets.DefaultConfig(),
		Observability:   observability.DefaultConfig(),
	}
}
