package stacks

import (
	"github.com/secrets-platform/secrets-platform/components/backup"
	"github.com/secrets-platform/secrets-platform/components/externalsecrets"
	"github.com/secrets-platform/secrets-platform/components/guardrails"
	"github.com/secrets-platform/secrets-platform/components/kmsunseal"
	"github.com/secrets-platform/secrets-platform/components/kube"
	"github.com/secrets-platform/secrets-platform/components/vault"
)

// defaults returns the configuration a stack starts from: the components'
// own defaults where they have one. The seed's numbers (quota, voters,
// refresh interval) are written out in Pulumi.production.yaml, where
// operators look. The stack's
// values are decoded over it, so a key that is set, even to 0, replaces its
// default and is validated as given; maps are merged key by key.
func defaults(stack string) Config {
	small := func() kube.Resources {
		return kube.Resources{
			Requests: map[string]string{"cpu": "50m", "memory": "64Mi"},
			Limits:   map[string]string{"cpu": "200m", "memory": "256Mi"},
		}
	}
	return Config{
		Kubernetes: KubernetesConfig{APIServerPort: guardrails.DefaultKubeAPIPort},
		Guardrails: GuardrailsConfig{
			PodSecurityLevel:   guardrails.LevelRestricted,
			PodSecurityVersion: "v1.33",
			DefaultRequest:     map[string]string{"cpu": "100m", "memory": "128Mi"},
			DefaultLimit:       map[string]string{"cpu": "500m", "memory": "512Mi"},
			AWSCIDRs:           []string{"0.0.0.0/0"},
		},
		Vault:  vault.DefaultConfig(),
		Unseal: kmsunseal.DefaultConfig(),
		Backup: backup.DefaultConfig(),
		ExternalSecrets: ExternalSecretsConfig{
			ChartVersion:   externalsecrets.DefaultChartVersion,
			ChartRepo:      externalsecrets.DefaultChartRepo,
			Replicas:       1,
			ServiceAccount: externalsecrets.DefaultVaultAuthServiceAccount,
			Resources: ESOResourcesConfig{
				Controller: small(), Webhook: small(), CertController: small(),
			},
			Store: StoreConfig{
				Name: "vault-backend", Path: "secret", Version: externalsecrets.DefaultKVVersion,
				AuthMount: externalsecrets.DefaultAuthMountPath, Role: "external-secrets",
			},
			RefreshInterval: externalsecrets.DefaultRefreshInterval,
			TimeoutSeconds:  externalsecrets.DefaultTimeoutSeconds,
		},
		Observability: ObservabilityConfig{MonitoringNamespace: "monitoring"},
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
	for i := range c.ExternalSecrets.Secrets {
		s := &c.ExternalSecrets.Secrets[i]
		if s.RefreshInterval == "" {
			s.RefreshInterval = c.ExternalSecrets.RefreshInterval
		}
		if s.Target == "" {
			s.Target = s.Name
		}
	}
}
