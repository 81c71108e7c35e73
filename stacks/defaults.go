package stacks

import "github.com/secrets-platform/secrets-platform/components/kube"

// Defaults that are not the seed's numbers: the seed's (quota, voters,
// refresh interval) are written out in Pulumi.production.yaml so they are
// visible where operators look.
const (
	// DefaultVaultChartVersion is the hashicorp/vault chart version used
	// when the stack names none.
	DefaultVaultChartVersion = "0.34.1"
	// DefaultESOChartVersion is the external-secrets chart version used
	// when the stack names none.
	DefaultESOChartVersion = "2.9.0"
)

// defaults returns the configuration a stack starts from. The stack's
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
		Kubernetes: KubernetesConfig{APIServerPort: 443},
		Guardrails: GuardrailsConfig{
			PodSecurityLevel:   "restricted",
			PodSecurityVersion: "v1.33",
			DefaultRequest:     map[string]string{"cpu": "100m", "memory": "128Mi"},
			DefaultLimit:       map[string]string{"cpu": "500m", "memory": "512Mi"},
			AWSCIDRs:           []string{"0.0.0.0/0"},
		},
		Vault: VaultConfig{
			Replicas:       3,
			ChartVersion:   DefaultVaultChartVersion,
			ChartRepo:      "https://helm.releases.hashicorp.com",
			ServiceAccount: "vault",
			TLS: TLSConfig{
				ValidityHours:     24 * 365,
				EarlyRenewalHours: 24 * 30,
				CAValidityHours:   24 * 365 * 10,
				Organization:      "secrets-platform",
			},
			Resources: kube.Resources{
				Requests: map[string]string{"cpu": "250m", "memory": "256Mi"},
				Limits:   map[string]string{"cpu": "1", "memory": "1Gi"},
			},
			DataStorage:    "10Gi",
			AuditStorage:   "5Gi",
			TimeoutSeconds: 600,
		},
		Unseal: UnsealConfig{
			AliasName:          "alias/" + stack + "-vault-unseal",
			DeletionWindowDays: 30,
		},
		Backup: BackupConfig{
			Prefix:                "raft-snapshots",
			RetentionDays:         30,
			NoncurrentVersionDays: 7,
			Schedule:              "0 */6 * * *",
			ServiceAccount:        "vault-snapshot",
			VaultRole:             "raft-snapshot",
			VaultAuthMount:        "kubernetes",
			VaultImage:            "hashicorp/vault:1.20.4",
			AWSCLIImage:           "amazon/aws-cli:2.31.18",
			Resources: kube.Resources{
				Requests: map[string]string{"cpu": "100m", "memory": "128Mi"},
				Limits:   map[string]string{"cpu": "500m", "memory": "256Mi"},
			},
		},
		ExternalSecrets: ExternalSecretsConfig{
			ChartVersion:   DefaultESOChartVersion,
			ChartRepo:      "https://charts.external-secrets.io",
			Replicas:       1,
			ServiceAccount: "external-secrets-vault-auth",
			Resources: ESOResourcesConfig{
				Controller: small(), Webhook: small(), CertController: small(),
			},
			Store: StoreConfig{
				Name: "vault-backend", Path: "secret", Version: "v2",
				AuthMount: "kubernetes", Role: "external-secrets",
			},
			RefreshInterval: "5m",
			TimeoutSeconds:  600,
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
