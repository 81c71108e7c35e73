package stacks

import (
	"github.com/secrets-platform/secrets-platform/components/backup"
	"github.com/secrets-platform/secrets-platform/components/externalsecrets"
	"github.com/secrets-platform/secrets-platform/components/guardrails"
	"github.com/secrets-platform/secrets-platform/components/kmsunseal"
	"github.com/secrets-platform/secrets-platform/components/vault"
)

// defaults returns the configuration a stack starts from: the components'
// own defaults where they have one. The seed's numbers (quota, voters,
// refresh interval) are written out in Pulumi.production.yaml, where
// operators look. The stack's
// values are decoded over it, so a key that is set, even to 0, replaces its
// default and is validated as given; maps are merged key by key.
func defaults() Config {
	return Config{
		Kubernetes: KubernetesConfig{APIServerPort: guardrails.DefaultKubeAPIPort},
		Guardrails: GuardrailsConfig{
			PodSecurityLevel:   guardrails.LevelRestricted,
			PodSecurityVersion: "v1.33",
			DefaultRequest:     map[string]string{"cpu": "100m", "memory": "128Mi"},
			DefaultLimit:       map[string]string{"cpu": "500m", "memory": "512Mi"},
			AWSCIDRs:           []string{"0.0.0.0/0"},
		},
		Vault:           vault.DefaultConfig(),
		Unseal:          kmsunseal.DefaultConfig(),
		Backup:          backup.DefaultConfig(),
		ExternalSecrets: externalsecrets.DefaultConfig(),
		Observability:   ObservabilityConfig{MonitoringNamespace: "monitoring"},
	}
}

// fillItemDefaults completes list items, whose defaults come from their
// group once the group is decoded.
func (c *Config) fillItemDefaults() {
	for i := range c.Guardrails.ExtraAllows {
		for j := range c.Guardrails.ExtraAllows[i].Ports {
			if c.Guardrails.ExtraAllows[i].Ports[j].Protocol == "" {
				c.Guardrails.ExtraAllows[i].Ports[j].Protocol = "TCP"
			}
		}
	}
}
